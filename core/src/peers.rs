//! What the agent knows of other nodes, and how it turns the peers' reports into the
//! [`Elsewhere`] the planner uses: which endpoints live where, the tunnel ports needed, and the
//! tunnel key of every cross-node link.
//!
//! Tunnel keys only need to be unique per pair of nodes (a frame is told apart by the tunnel
//! port it arrives on and its key), so the node of a pair whose name sorts first chooses the
//! keys of the links between them and reports them; the other node uses what it reports.
//! Nobody else is asked. Keys stay as chosen: a restarted agent reads them back from its flows.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{EndpointKey, LinkKey, LinkSpec};
use crate::naming::{
    MAX_TUNNEL_KEY, link_cookie, preferred_tunnel_key, segment_trunk, tunnel_name,
};
use crate::plan::{Elsewhere, Endpoint, Observed, RemoteEnd, TUNNEL_KEY, Tunnel, World};

/// The last report of one peer node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerView {
    /// Its underlay address, where tunnels to it go.
    pub underlay_ip: Option<String>,
    /// Its underlay MTU (0 when unknown).
    pub underlay_mtu: u32,
    /// Pod interfaces registered there, and whether its half of their wire is in place.
    pub endpoints: BTreeMap<EndpointKey, bool>,
    /// Keys it chose for links between it and this node.
    pub keys: BTreeMap<LinkKey, u32>,
    /// LAN segments (lab, segment) it has members of, as read back from this node's flows at
    /// start; its reports say this with its endpoints instead.
    pub segments: BTreeSet<(String, String)>,
    /// A report arrived since this agent started (the view is not only what the agent read
    /// back from OVS at start).
    pub heard: bool,
    /// The generation of the report this view comes from.
    pub generation: u64,
}

/// This node's identity among its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Here {
    /// The node's name.
    pub node: String,
    /// Its underlay address, when configured.
    pub underlay_ip: Option<String>,
    /// Its underlay MTU (0 when unknown).
    pub underlay_mtu: u32,
}

/// Rebuilds what is known elsewhere from the peers' views. `prev` keeps tunnel ports and the
/// keys this node chose; `alloc` hands out free OpenFlow port numbers for new tunnels.
pub fn rebuild(
    here: &Here,
    links: &BTreeMap<LinkKey, LinkSpec>,
    local: &BTreeMap<EndpointKey, Endpoint>,
    peers: &BTreeMap<String, PeerView>,
    prev: &Elsewhere,
    alloc: &mut dyn FnMut() -> Option<u32>,
) -> Elsewhere {
    let mut next = Elsewhere::default();
    for (node, view) in peers {
        for (key, ready) in &view.endpoints {
            if !local.contains_key(key) {
                next.endpoints.entry(key.clone()).or_insert(RemoteEnd {
                    node: node.clone(),
                    ready: *ready,
                });
            }
        }
    }
    let mut cross: Vec<(LinkKey, String)> = World::new(links, local, &next)
        .cross_links()
        .into_iter()
        .map(|(l, _, node)| (l.key.clone(), node))
        .collect();
    for (trunk, node) in segment_trunks(here, links, local, &next.endpoints, peers) {
        next.trunks.insert(trunk.clone(), node.clone());
        cross.push((trunk, node));
    }

    // Keys: kept ones first, so that new links never take a key in use.
    let mut used: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    let mut choose = Vec::new();
    let mut given = Vec::new();
    for (link, node) in &cross {
        if here.node.as_str() < node.as_str() {
            match prev.keys.get(link) {
                Some(&k) if used.entry(node).or_default().insert(k) => {
                    next.keys.insert(link.clone(), k);
                }
                _ => choose.push((link, node)),
            }
        } else if let Some(&k) = peers.get(node).and_then(|v| v.keys.get(link)) {
            given.push((link, node.as_str(), k));
        }
    }
    // A key the leader gives two links to this node (or one out of range) would let one
    // ingress flow carry the frames of both: neither link takes it, and both wait.
    let mut times: BTreeMap<(&str, u32), usize> = BTreeMap::new();
    for (_, node, k) in &given {
        *times.entry((node, *k)).or_default() += 1;
    }
    for (link, node, k) in given {
        if (1..=MAX_TUNNEL_KEY).contains(&k) && times[&(node, k)] == 1 {
            next.keys.insert(link.clone(), k);
        }
    }
    for (link, node) in choose {
        let taken = used.entry(node).or_default();
        let mut k = preferred_tunnel_key(link);
        while taken.contains(&k) {
            k = if k == MAX_TUNNEL_KEY { 1 } else { k + 1 };
        }
        taken.insert(k);
        next.keys.insert(link.clone(), k);
    }

    // Tunnels to the nodes that hold far ends.
    let needed: BTreeSet<&String> = cross.iter().map(|(_, n)| n).collect();
    for node in needed {
        if here.underlay_ip.is_none() {
            next.unreachable.insert(
                node.clone(),
                "this node has no underlay address; start the agent with --underlay-ip".into(),
            );
            continue;
        }
        let Some(ip) = peers.get(node).and_then(|v| v.underlay_ip.clone()) else {
            next.unreachable.insert(
                node.clone(),
                "its underlay address is not known; configure it as a peer".into(),
            );
            continue;
        };
        let ofport = match prev.tunnels.get(node) {
            Some(t) => Some(t.ofport),
            None => alloc(),
        };
        match ofport {
            Some(ofport) => {
                next.tunnels.insert(
                    node.clone(),
                    Tunnel {
                        name: tunnel_name(node),
                        ofport,
                        remote_ip: ip,
                    },
                );
            }
            None => {
                next.unreachable.insert(
                    node.clone(),
                    "all OpenFlow port numbers 32768-65279 are in use".into(),
                );
            }
        }
    }
    next
}

/// The trunk to each other node with members of a LAN segment that has members here.
fn segment_trunks(
    here: &Here,
    links: &BTreeMap<LinkKey, LinkSpec>,
    local: &BTreeMap<EndpointKey, Endpoint>,
    remote: &BTreeMap<EndpointKey, RemoteEnd>,
    peers: &BTreeMap<String, PeerView>,
) -> Vec<(LinkKey, String)> {
    let mut here_on = BTreeSet::new();
    let mut there: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    for l in links.values() {
        let (Some(seg), Some(member)) = (&l.segment, l.member()) else {
            continue;
        };
        if local.contains_key(member) {
            here_on.insert((l.key.lab(), seg.as_str()));
        } else if let Some(r) = remote.get(member) {
            there.insert((l.key.lab(), seg, &r.node));
        }
    }
    for (node, view) in peers {
        there.extend(
            view.segments
                .iter()
                .map(|(l, s)| (l.as_str(), s.as_str(), node.as_str())),
        );
    }
    there
        .into_iter()
        .filter(|(lab, seg, _)| here_on.contains(&(*lab, *seg)))
        .filter_map(|(lab, seg, node)| {
            Some((segment_trunk(lab, seg, &here.node, node)?, node.to_owned()))
        })
        .collect()
}

/// Reads back, from what OVS has, the cross-node wiring a previous run left: tunnel ports,
/// and for each link whose flows go into a tunnel, the far end's node and the link's key. The
/// result stands in for the peers' reports until they arrive, so a restarted agent plans
/// nothing for wires that are in place.
pub fn adopt(
    here: &Here,
    links: &BTreeMap<LinkKey, LinkSpec>,
    local: &BTreeMap<EndpointKey, Endpoint>,
    observed: &Observed,
) -> (BTreeMap<String, PeerView>, Elsewhere) {
    let mut peers: BTreeMap<String, PeerView> = BTreeMap::new();
    let mut elsewhere = Elsewhere::default();
    let mut by_ofport = BTreeMap::new();
    for port in observed.ports.values() {
        let (Some(node), Some(ofport)) = (port.external_ids.get(TUNNEL_KEY), port.ofport_request)
        else {
            continue;
        };
        let ip = port.external_ids.get("ovswire-remote-ip").cloned();
        peers.entry(node.clone()).or_default().underlay_ip = ip.clone();
        by_ofport.insert(ofport, node.clone());
        elsewhere.tunnels.insert(
            node.clone(),
            Tunnel {
                name: port.name.clone(),
                ofport,
                remote_ip: ip.unwrap_or_default(),
            },
        );
    }
    for link in links.values() {
        let (a, b) = (link.key.a(), link.key.b());
        let (mine, far) = match (local.get(a), local.get(b)) {
            (Some(ep), None) => (ep, b),
            (None, Some(ep)) => (ep, a),
            _ => continue,
        };
        let Some(flow) = observed.flows.get(&(mine.ofport, None)) else {
            continue;
        };
        let ([], [out]) = (flow.out_ports.as_slice(), flow.tunnels.as_slice()) else {
            continue;
        };
        let (key, Some(node)) = (out.key, by_ofport.get(&out.port)) else {
            continue;
        };
        if flow.cookie != link_cookie(&link.key) {
            continue;
        }
        let view = peers.entry(node.clone()).or_default();
        view.endpoints.insert(far.clone(), true);
        if here.node.as_str() < node.as_str() {
            elsewhere.keys.insert(link.key.clone(), key);
        } else {
            view.keys.insert(link.key.clone(), key);
        }
    }
    // LAN segments: the tunnels a local member's frames go into, with their keys.
    let member_wires: BTreeMap<u64, &LinkSpec> = links
        .values()
        .filter(|l| l.member().is_some_and(|m| local.contains_key(m)))
        .map(|l| (link_cookie(&l.key), l))
        .collect();
    for flow in observed.flows.values() {
        let Some(link) = member_wires.get(&flow.cookie) else {
            continue;
        };
        let seg = link.segment.clone().unwrap_or_default();
        for t in &flow.tunnels {
            let Some(node) = by_ofport.get(&t.port) else {
                continue;
            };
            let Some(trunk) = segment_trunk(link.key.lab(), &seg, &here.node, node) else {
                continue;
            };
            let view = peers.entry(node.clone()).or_default();
            view.segments
                .insert((link.key.lab().to_owned(), seg.clone()));
            if here.node.as_str() < node.as_str() {
                elsewhere.keys.insert(trunk, t.key);
            } else {
                view.keys.insert(trunk, t.key);
            }
        }
    }
    (peers, elsewhere)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AdminState;

    fn link(lab: &str, a: &str, b: &str) -> LinkSpec {
        let key = LinkKey::new(
            EndpointKey::parse(lab, a).unwrap(),
            EndpointKey::parse(lab, b).unwrap(),
        )
        .unwrap();
        LinkSpec {
            key,
            mtu: 9000,
            admin: AdminState::Up,
            impair: Default::default(),
            segment: None,
        }
    }

    fn local(lab: &str, e: &str, ofport: u32) -> (EndpointKey, Endpoint) {
        let key = EndpointKey::parse(lab, e).unwrap();
        (
            key.clone(),
            Endpoint {
                key,
                container_id: format!("c-{e}"),
                netns: "/run/netns/x".into(),
                host_ifname: crate::naming::host_ifname(&format!("c-{e}"), "eth1"),
                ofport,
                mtu: 9000,
                network: "ovswire".into(),
            },
        )
    }

    /// Links by their key, as the agent holds them.
    fn by_key<const N: usize>(links: [LinkSpec; N]) -> BTreeMap<LinkKey, LinkSpec> {
        links.into_iter().map(|l| (l.key.clone(), l)).collect()
    }

    /// Hands out OpenFlow port numbers from 40001, as the agent's allocator would.
    fn port_numbers() -> impl FnMut() -> Option<u32> {
        let mut next = 40000;
        move || {
            next += 1;
            Some(next)
        }
    }

    fn here(node: &str) -> Here {
        Here {
            node: node.into(),
            underlay_ip: Some("192.0.2.1".into()),
            underlay_mtu: 1500,
        }
    }

    #[test]
    fn two_labs_with_the_same_link_names_get_different_keys() {
        // The same link name in two labs, and the same preferred key forced by probing: the
        // chooser never hands one key to two links between the same nodes.
        let l1 = link("lab1", "r1:eth1", "r2:eth1");
        let l2 = link("lab2", "r1:eth1", "r2:eth1");
        let links = by_key([l1.clone(), l2.clone()]);
        let eps = BTreeMap::from([
            local("lab1", "r1:eth1", 32768),
            local("lab2", "r1:eth1", 32769),
        ]);
        let mut view = PeerView {
            underlay_ip: Some("192.0.2.2".into()),
            ..PeerView::default()
        };
        for l in [&l1, &l2] {
            view.endpoints.insert(l.key.b().clone(), true);
        }
        let peers = BTreeMap::from([("b".to_owned(), view)]);
        let mut alloc = port_numbers();
        let e = rebuild(
            &here("a"),
            &links,
            &eps,
            &peers,
            &Elsewhere::default(),
            &mut alloc,
        );
        assert_eq!(e.keys.len(), 2);
        assert_ne!(e.keys[&l1.key], e.keys[&l2.key]);
        assert_eq!(e.tunnels.len(), 1, "one tunnel per node");
        assert_eq!(e.tunnels["b"].remote_ip, "192.0.2.2");

        // Kept across rebuilds, even when a third link prefers a taken key.
        let again = rebuild(&here("a"), &links, &eps, &peers, &e, &mut alloc);
        assert_eq!(again.keys, e.keys);
        assert_eq!(again.tunnels, e.tunnels, "the tunnel keeps its port number");

        // The follower takes the leader's keys and chooses none itself.
        let follower = rebuild(
            &here("c"),
            &links,
            &eps,
            &BTreeMap::from([(
                "b".to_owned(),
                PeerView {
                    underlay_ip: Some("192.0.2.2".into()),
                    endpoints: peers["b"].endpoints.clone(),
                    keys: BTreeMap::from([(l1.key.clone(), 9)]),
                    heard: true,
                    underlay_mtu: 0,
                    generation: 1,
                    segments: BTreeSet::new(),
                },
            )]),
            &Elsewhere::default(),
            &mut alloc,
        );
        assert_eq!(follower.keys, BTreeMap::from([(l1.key.clone(), 9)]));

        // A leader giving one key to two links (or a key out of range) is not followed.
        let follow = |keys: BTreeMap<LinkKey, u32>| {
            let view = PeerView {
                underlay_ip: Some("192.0.2.2".into()),
                endpoints: peers["b"].endpoints.clone(),
                keys,
                heard: true,
                underlay_mtu: 0,
                generation: 1,
                segments: BTreeSet::new(),
            };
            rebuild(
                &here("c"),
                &links,
                &eps,
                &BTreeMap::from([("b".to_owned(), view)]),
                &Elsewhere::default(),
                &mut || Some(40000),
            )
            .keys
        };
        let twice = BTreeMap::from([(l1.key.clone(), 9), (l2.key.clone(), 9)]);
        assert!(follow(twice).is_empty());
        let out_of_range = BTreeMap::from([(l1.key.clone(), 0), (l2.key.clone(), 1 << 24)]);
        assert!(follow(out_of_range).is_empty());
        let distinct = BTreeMap::from([(l1.key.clone(), 9), (l2.key.clone(), 10)]);
        assert_eq!(follow(distinct.clone()), distinct);
    }

    #[test]
    fn colliding_preferred_keys_are_probed() {
        let l = link("lab", "r1:eth1", "r2:eth1");
        let pref = preferred_tunnel_key(&l.key);
        let other = link("lab", "r3:eth1", "r4:eth1");
        let links: BTreeMap<_, _> = [l.clone(), other.clone()]
            .into_iter()
            .map(|l| (l.key.clone(), l))
            .collect();
        let eps: BTreeMap<_, _> = [
            local("lab", "r1:eth1", 32768),
            local("lab", "r3:eth1", 32769),
        ]
        .into_iter()
        .collect();
        let view = PeerView {
            underlay_ip: Some("192.0.2.2".into()),
            endpoints: [(l.key.b().clone(), true), (other.key.b().clone(), true)].into(),
            ..PeerView::default()
        };
        // `other` already holds l's preferred key.
        let prev = Elsewhere {
            keys: BTreeMap::from([(other.key.clone(), pref)]),
            ..Elsewhere::default()
        };
        let e = rebuild(
            &here("a"),
            &links,
            &eps,
            &BTreeMap::from([("b".to_owned(), view)]),
            &prev,
            &mut || Some(40000),
        );
        assert_eq!(e.keys[&other.key], pref);
        assert_eq!(
            e.keys[&l.key],
            if pref == MAX_TUNNEL_KEY { 1 } else { pref + 1 }
        );
    }

    #[test]
    fn without_an_underlay_the_far_node_is_unreachable() {
        let l = link("lab", "r1:eth1", "r2:eth1");
        let links = BTreeMap::from([(l.key.clone(), l.clone())]);
        let eps: BTreeMap<_, _> = [local("lab", "r1:eth1", 32768)].into_iter().collect();
        let view = PeerView {
            endpoints: [(l.key.b().clone(), true)].into(),
            ..PeerView::default()
        };
        let peers = BTreeMap::from([("b".to_owned(), view)]);
        let e = rebuild(
            &here("a"),
            &links,
            &eps,
            &peers,
            &Elsewhere::default(),
            &mut || Some(1),
        );
        assert!(e.unreachable["b"].contains("underlay address is not known"));
        let mut alone = here("a");
        alone.underlay_ip = None;
        let e = rebuild(
            &alone,
            &links,
            &eps,
            &peers,
            &Elsewhere::default(),
            &mut || Some(1),
        );
        assert!(e.unreachable["b"].contains("--underlay-ip"));
    }

    #[test]
    fn a_segment_across_nodes_gets_one_trunk_per_node_that_a_restart_reads_back() {
        let member = |pod: &str, n: u32| LinkSpec {
            segment: Some("lan".into()),
            ..link("lab", &format!("{pod}:eth1"), &format!("lan:e{n}"))
        };
        let links = by_key([
            member("r1", 1),
            member("r2", 2),
            member("r3", 3),
            member("r4", 4),
        ]);
        let eps = BTreeMap::from([
            local("lab", "r1:eth1", 32768),
            local("lab", "r2:eth1", 32769),
        ]);
        let view = |ip: &str, member: &str| PeerView {
            underlay_ip: Some(ip.into()),
            endpoints: [(EndpointKey::parse("lab", member).unwrap(), true)].into(),
            ..PeerView::default()
        };
        let peers = BTreeMap::from([
            ("b".to_owned(), view("192.0.2.2", "r3:eth1")),
            ("c".to_owned(), view("192.0.2.3", "r4:eth1")),
        ]);
        let mut alloc = port_numbers();
        let e = rebuild(
            &here("a"),
            &links,
            &eps,
            &peers,
            &Elsewhere::default(),
            &mut alloc,
        );
        let to_b = segment_trunk("lab", "lan", "a", "b").unwrap();
        let to_c = segment_trunk("lab", "lan", "c", "a").unwrap();
        assert_eq!(
            to_b,
            segment_trunk("lab", "lan", "b", "a").unwrap(),
            "either way"
        );
        assert_eq!(
            e.trunks,
            BTreeMap::from([(to_b.clone(), "b".into()), (to_c.clone(), "c".into())])
        );
        assert!(e.keys.contains_key(&to_b) && e.keys.contains_key(&to_c));
        assert_eq!(e.tunnels.len(), 2);

        // Each member's frames go to the other member here and once into each tunnel.
        let world = World::new(&links, &eps, &e);
        let flows = world.desired_flows();
        let (tb, tc) = (e.tunnels["b"].ofport, e.tunnels["c"].ofport);
        let r1 = &flows[&(32768, None)];
        assert_eq!(r1.out_ports, [32769]);
        let ports: Vec<u32> = r1.tunnels.iter().map(|t| t.port).collect();
        assert_eq!(ports, [tb, tc]);
        let from_b = &flows[&(tb, Some(e.keys[&to_b]))];
        assert_eq!(from_b.out_ports, [32768, 32769]);

        // A restarted agent reads the trunks back from the flows and keeps their keys.
        let mut observed = Observed::default();
        for (node, t) in &e.tunnels {
            let want = t.want(node);
            observed.ports.insert(
                t.name.clone(),
                crate::plan::ObservedPort {
                    name: t.name.clone(),
                    ofport_request: Some(t.ofport),
                    ofport: crate::plan::OfportState::Assigned(t.ofport),
                    external_ids: want.external_ids,
                    bfd: want.bfd,
                    forwarding: Some(true),
                },
            );
        }
        observed.flows = flows.clone();
        let (views, adopted) = adopt(&here("a"), &links, &eps, &observed);
        assert!(views["b"].segments.contains(&("lab".into(), "lan".into())));
        let again = rebuild(&here("a"), &links, &eps, &views, &adopted, &mut alloc);
        assert_eq!(again.trunks, e.trunks);
        assert_eq!(
            (again.keys[&to_b], again.keys[&to_c]),
            (e.keys[&to_b], e.keys[&to_c])
        );
        assert_eq!(World::new(&links, &eps, &again).desired_flows(), flows);
    }
}
