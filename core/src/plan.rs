//! The reconciler's pure core: wanted links + registered endpoints → desired OVS state →
//! a [`Plan`] (the difference from what OVS has), as plain data with no I/O.
//!
//! Applying a plan and observing again converges: a new link takes two rounds (ports and flows
//! first, then the host ends come up once OVS has the ports), and a converged state plans
//! nothing, so re-applying sends no OVSDB transaction and no flow mod.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::model::{AdminState, EndpointKey, LinkKey, LinkSpec};
use crate::naming::{OWNER_KEY, OWNER_VALUE, link_cookie};
use crate::stats::{Counting, Direction, PortSide};

/// Priority of every wire flow; ovswire owns table 0 at this priority.
pub const FLOW_PRIORITY: u16 = 100;

/// A pod interface the agent created, as registered by CNI ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Which lab, pod and interface.
    pub key: EndpointKey,
    /// The container (sandbox) id from CNI.
    pub container_id: String,
    /// Path of the pod's network namespace.
    pub netns: PathBuf,
    /// Name of the host end of the veth pair, which is the OVS port.
    pub host_ifname: String,
    /// The OpenFlow port number requested for the host end.
    pub ofport: u32,
    /// The MTU both veth ends were given.
    pub mtu: u32,
    /// The network (CNI configuration `name`) it was added for; empty in records made before
    /// networks were recorded.
    pub network: String,
}

impl Endpoint {
    /// The `external_ids` that mark the port as the agent's and let a restarted agent rebuild
    /// this record from OVSDB alone.
    pub fn external_ids(&self) -> BTreeMap<String, String> {
        [
            (OWNER_KEY, OWNER_VALUE),
            ("ovswire-lab", self.key.lab.as_str()),
            ("ovswire-pod", self.key.pod.as_str()),
            ("ovswire-ifname", self.key.ifname.as_str()),
            ("ovswire-container", self.container_id.as_str()),
            ("ovswire-netns", &self.netns.display().to_string()),
            ("ovswire-mtu", &self.mtu.to_string()),
            ("ovswire-network", &self.network),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Rebuilds a record from a port's name, requested ofport and `external_ids`; `None` if the
    /// port is not one of the agent's or the ids are incomplete.
    pub fn from_external_ids(
        host_ifname: &str,
        ofport: u32,
        ids: &BTreeMap<String, String>,
    ) -> Option<Self> {
        if ids.get(OWNER_KEY).map(String::as_str) != Some(OWNER_VALUE) {
            return None;
        }
        let get = |k: &str| ids.get(k).cloned();
        let key = EndpointKey::new(
            &get("ovswire-lab")?,
            &get("ovswire-pod")?,
            &get("ovswire-ifname")?,
        )
        .ok()?;
        Some(Self {
            key,
            container_id: get("ovswire-container")?,
            netns: get("ovswire-netns")?.into(),
            host_ifname: host_ifname.to_owned(),
            ofport,
            mtu: get("ovswire-mtu")?.parse().ok()?,
            network: get("ovswire-network").unwrap_or_default(),
        })
    }
}

/// A port the agent wants on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortWant {
    /// Port and interface name (the host veth end, or a tunnel).
    pub name: String,
    /// Requested OpenFlow port number.
    pub ofport: u32,
    /// Interface type: `None` for a system device (a veth end), `Some("vxlan")` for a tunnel.
    pub kind: Option<String>,
    /// Interface `options` (a tunnel's `remote_ip` and `key=flow`).
    pub options: BTreeMap<String, String>,
    /// Interface `bfd` (a tunnel's BFD session, see [`TUNNEL_BFD`]).
    pub bfd: BTreeMap<String, String>,
    /// Ownership and identity.
    pub external_ids: BTreeMap<String, String>,
}

/// One wire flow in table 0 at [`FLOW_PRIORITY`]: `in_port=in_port[,tun_id=tun_match] →
/// output:out_ports..., [set_field:key->tun_id, output:port]...` (the plain outputs first, then
/// each tunnel with its key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    /// The link's cookie.
    pub cookie: u64,
    /// Matched input port.
    pub in_port: u32,
    /// Matched tunnel key, for frames arriving from a tunnel port.
    pub tun_match: Option<u32>,
    /// Output ports: one for a wire, the other members for a LAN segment (none and no tunnel
    /// drops the frame, while a segment has no other member yet).
    pub out_ports: Vec<u32>,
    /// Tunnel ports to output to, each with the key the frame carries through it.
    pub tunnels: Vec<TunnelOut>,
}

/// An output into a tunnel port with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TunnelOut {
    /// The tunnel port.
    pub port: u32,
    /// The VXLAN key.
    pub key: u32,
}

impl Flow {
    /// A same-node flow: `in_port → output`.
    pub fn wire(cookie: u64, in_port: u32, out_port: u32) -> Self {
        Self::fan(cookie, in_port, vec![out_port])
    }

    /// A flow copying each frame to every port of `out_ports`.
    pub fn fan(cookie: u64, in_port: u32, out_ports: Vec<u32>) -> Self {
        Self {
            cookie,
            in_port,
            tun_match: None,
            out_ports,
            tunnels: Vec::new(),
        }
    }

    /// A flow into one tunnel with `key`.
    pub fn into_tunnel(cookie: u64, in_port: u32, port: u32, key: u32) -> Self {
        Self {
            tunnels: vec![TunnelOut { port, key }],
            ..Self::fan(cookie, in_port, Vec::new())
        }
    }

    /// Every port the flow outputs to.
    pub fn outputs(&self) -> impl Iterator<Item = u32> + '_ {
        self.out_ports
            .iter()
            .copied()
            .chain(self.tunnels.iter().map(|t| t.port))
    }

    /// What the flow matches on, which identifies it in the table.
    pub fn key(&self) -> FlowKey {
        (self.in_port, self.tun_match)
    }
}

/// A flow's match: input port and, for flows from a tunnel, the tunnel key.
pub type FlowKey = (u32, Option<u32>);

/// A pod interface registered on another node, as that node's agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEnd {
    /// The node.
    pub node: String,
    /// That node's half of the wire is in place (its port, tunnel and flows).
    pub ready: bool,
}

/// A tunnel port to another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// Port and interface name.
    pub name: String,
    /// Requested OpenFlow port number.
    pub ofport: u32,
    /// The node's underlay address.
    pub remote_ip: String,
}

/// The BFD session on every tunnel: Open vSwitch's own liveness check of the far node's
/// datapath, with control packets every 600 ms, so a far node (or its ovs-vswitchd) that stops
/// is seen within 1.8 s (three packets missed), whatever its agent does, and a datapath that
/// stalls for less than that does not flap its wires.
pub const TUNNEL_BFD: [(&str, &str); 3] =
    [("enable", "true"), ("min_rx", "600"), ("min_tx", "600")];

impl Tunnel {
    /// The tunnel to `node` as a port the agent wants.
    pub fn want(&self, node: &str) -> PortWant {
        PortWant {
            name: self.name.clone(),
            ofport: self.ofport,
            kind: Some("vxlan".into()),
            options: [("remote_ip", self.remote_ip.as_str()), ("key", "flow")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            bfd: TUNNEL_BFD
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            external_ids: [
                (OWNER_KEY, OWNER_VALUE),
                (TUNNEL_KEY, node),
                ("ovswire-remote-ip", self.remote_ip.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }
}

/// `external_ids` key naming the link (`lab/a--b`) an impairment port serves.
pub const IMPAIR_LINK_KEY: &str = "ovswire-impair-link";
/// `external_ids` key naming the direction (`a->b`, `b->a`) an impairment port serves.
pub const IMPAIR_DIR_KEY: &str = "ovswire-impair-direction";

/// The port one impaired direction of a link goes through: frames from the sending end are
/// output to it, cross the veth pair to the agent's impairment stage, and come back in
/// through it to go on to the receiving end (or the tunnel). Only the node of the sending end
/// has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpairPort {
    /// The port on the bridge (the pair's OVS end).
    pub name: String,
    /// The pair's other end, which the stage reads and writes.
    pub stage_end: String,
    /// Requested OpenFlow port number.
    pub ofport: u32,
    /// The MTU of both ends (the link's).
    pub mtu: u32,
    /// OVS has the port with its number: the flows may use it.
    pub active: bool,
}

impl ImpairPort {
    /// The port as the agent wants it on the bridge.
    pub fn want(&self, link: &LinkKey, dir: Direction) -> PortWant {
        PortWant {
            name: self.name.clone(),
            ofport: self.ofport,
            kind: None,
            options: BTreeMap::new(),
            bfd: BTreeMap::new(),
            external_ids: [
                (OWNER_KEY, OWNER_VALUE),
                (IMPAIR_LINK_KEY, link.to_string().as_str()),
                (IMPAIR_DIR_KEY, &dir.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }
}

/// Impairment ports by link and direction.
pub type ImpairPorts = BTreeMap<(LinkKey, Direction), ImpairPort>;

/// `external_ids` key naming the node a tunnel port leads to.
pub const TUNNEL_KEY: &str = "ovswire-tunnel";

/// What the agent knows beyond its node, for links whose other end is elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Elsewhere {
    /// Endpoints registered on other nodes.
    pub endpoints: BTreeMap<EndpointKey, RemoteEnd>,
    /// Tunnel ports the agent wants, by the node they lead to.
    pub tunnels: BTreeMap<String, Tunnel>,
    /// Agreed tunnel keys of cross-node links, and of LAN segments' trunks.
    pub keys: BTreeMap<LinkKey, u32>,
    /// The trunks of LAN segments with members here and on another node (one per segment and
    /// node, see [`crate::naming::segment_trunk`]), by the node they lead to.
    pub trunks: BTreeMap<LinkKey, String>,
    /// Why a node cannot be reached by tunnel (no underlay address known), by node.
    pub unreachable: BTreeMap<String, String>,
}

/// What ovs-vswitchd reports for an OVSDB interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfportState {
    /// Not yet processed by ovs-vswitchd.
    Pending,
    /// Has this OpenFlow port number.
    Assigned(u32),
    /// Could not be created; the reason from `Interface.error`.
    Failed(String),
}

/// One of the agent's ports as OVSDB shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPort {
    /// Port and interface name.
    pub name: String,
    /// `Interface.ofport_request`.
    pub ofport_request: Option<u32>,
    /// `Interface.ofport` / `error`.
    pub ofport: OfportState,
    /// `Interface.external_ids`.
    pub external_ids: BTreeMap<String, String>,
    /// `Interface.bfd`.
    pub bfd: BTreeMap<String, String>,
    /// Whether its BFD session says the far end forwards (`bfd_status:forwarding`); `None`
    /// without a session.
    pub forwarding: Option<bool>,
}

/// A port as OpenFlow shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfPort {
    /// Its MAC, which PORT_MOD must repeat.
    pub mac: [u8; 6],
    /// `OFPPC_PORT_DOWN` is set: administratively down, the pod end has no carrier.
    pub down: bool,
    /// `OFPPS_LINK_DOWN` is set: the host end has no carrier, because the pod end is down or
    /// gone (with its namespace: the pod died).
    pub link_down: bool,
}

impl OfPort {
    /// Whether the host end may have vanished, so the kernel should be asked: it has no
    /// carrier although nobody took it down, or OVS reads no MAC from it (a device that is gone
    /// shows as down, link down and `00:00:00:00:00:00` on the userspace datapath, which keeps
    /// its port).
    pub fn maybe_gone(&self) -> bool {
        self.link_down && (!self.down || self.mac == [0; 6])
    }
}

/// What OVS has, restricted to what the agent owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The agent's ports in OVSDB, by name.
    pub ports: BTreeMap<String, ObservedPort>,
    /// The agent's flows (cookie tag, table 0, [`FLOW_PRIORITY`]), by match.
    pub flows: BTreeMap<FlowKey, Flow>,
    /// Every OpenFlow port of the bridge, by number.
    pub of_ports: BTreeMap<u32, OfPort>,
}

/// A host end to take up or down (administratively, on the host: its pod end's carrier
/// follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortState {
    /// OpenFlow port number.
    pub ofport: u32,
    /// The host interface.
    pub name: String,
    /// Up (true) or down.
    pub up: bool,
}

/// What to change in OVS, as one OVSDB transaction and one OpenFlow bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ports to add to the bridge.
    pub add_ports: Vec<PortWant>,
    /// Ports (by name) to remove from the bridge.
    pub del_ports: Vec<String>,
    /// Flows to add; an add replaces the flow with the same match and priority.
    pub add_flows: Vec<Flow>,
    /// Flows to delete (strictly, by match and priority).
    pub del_flows: Vec<Flow>,
    /// Host ends to take up or down.
    pub port_states: Vec<PortState>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add_ports.is_empty()
            && self.del_ports.is_empty()
            && self.add_flows.is_empty()
            && self.del_flows.is_empty()
            && self.port_states.is_empty()
    }

    /// Whether the plan changes OVSDB.
    pub fn touches_ovsdb(&self) -> bool {
        !self.add_ports.is_empty() || !self.del_ports.is_empty()
    }
}

/// How a link stands, for status and the wire API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperState {
    /// Waiting: the reason names what is missing.
    Pending(String),
    /// Both host ends up: frames cross.
    Up,
    /// Wired, administratively down.
    Down,
    /// Cannot be wired: the reason says why.
    Error(String),
}

/// How a link's two ends stand from this node.
#[derive(Debug, Clone, Copy)]
enum Ends<'a> {
    /// Both registered here.
    Local(&'a Endpoint, &'a Endpoint),
    /// One here, one on another node.
    Cross {
        local: &'a Endpoint,
        remote: &'a EndpointKey,
        end: &'a RemoteEnd,
    },
    /// A LAN segment's member wire whose member is registered here.
    Member {
        local: &'a Endpoint,
        /// Frames from the member travel this way (towards the segment).
        out_dir: Direction,
    },
    /// Not both known yet.
    Missing,
}

/// The whole input of a reconcile round, indexed once.
#[derive(Debug)]
pub struct World<'a> {
    links: &'a BTreeMap<LinkKey, LinkSpec>,
    endpoints: &'a BTreeMap<EndpointKey, Endpoint>,
    elsewhere: &'a Elsewhere,
    by_end: BTreeMap<&'a EndpointKey, &'a LinkSpec>,
    /// The member wires of each LAN segment, by lab and segment name.
    segments: BTreeMap<(&'a str, &'a str), Vec<&'a LinkSpec>>,
    flows: BTreeMap<FlowKey, Flow>,
    impairs: Option<&'a ImpairPorts>,
}

/// The ports of registered endpoints (their host ends) that OVS has not got.
pub fn missing_endpoint_ports(
    endpoints: &BTreeMap<EndpointKey, Endpoint>,
    observed: &Observed,
) -> Vec<PortWant> {
    endpoints
        .values()
        .filter(|ep| !observed.ports.contains_key(&ep.host_ifname))
        .map(|ep| PortWant {
            name: ep.host_ifname.clone(),
            ofport: ep.ofport,
            kind: None,
            options: BTreeMap::new(),
            bfd: BTreeMap::new(),
            external_ids: ep.external_ids(),
        })
        .collect()
}

impl<'a> World<'a> {
    /// Wanted links, the endpoints registered on this node, and what is known of other nodes.
    pub fn new(
        links: &'a BTreeMap<LinkKey, LinkSpec>,
        endpoints: &'a BTreeMap<EndpointKey, Endpoint>,
        elsewhere: &'a Elsewhere,
    ) -> Self {
        Self::build(links, endpoints, elsewhere, None)
    }

    /// The same with impaired directions: their frames go through their [`ImpairPort`]s once
    /// OVS has them.
    pub fn with_impairs(
        links: &'a BTreeMap<LinkKey, LinkSpec>,
        endpoints: &'a BTreeMap<EndpointKey, Endpoint>,
        elsewhere: &'a Elsewhere,
        impairs: &'a ImpairPorts,
    ) -> Self {
        Self::build(links, endpoints, elsewhere, Some(impairs))
    }

    fn build(
        links: &'a BTreeMap<LinkKey, LinkSpec>,
        endpoints: &'a BTreeMap<EndpointKey, Endpoint>,
        elsewhere: &'a Elsewhere,
        impairs: Option<&'a ImpairPorts>,
    ) -> Self {
        let mut by_end = BTreeMap::new();
        let mut segments: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for link in links.values() {
            by_end.insert(link.key.a(), link);
            by_end.insert(link.key.b(), link);
            if let Some(seg) = &link.segment {
                segments
                    .entry((link.key.lab(), seg.as_str()))
                    .or_default()
                    .push(link);
            }
        }
        let mut world = Self {
            links,
            endpoints,
            elsewhere,
            by_end,
            segments,
            flows: BTreeMap::new(),
            impairs,
        };
        world.flows = world.compute_flows();
        world
    }

    /// The active impairment port of `dir` of `link`, when frames go through one.
    fn impair_port(&self, link: &LinkKey, dir: Direction) -> Option<&'a ImpairPort> {
        self.impairs?.get(&(link.clone(), dir)).filter(|p| p.active)
    }

    fn ends(&self, link: &LinkSpec) -> Ends<'a> {
        let (a, b) = (link.key.a(), link.key.b());
        if let Some(member) = link.member() {
            let out_dir = if member == a {
                Direction::AtoB
            } else {
                Direction::BtoA
            };
            return match self.endpoints.get(member) {
                Some(local) => Ends::Member { local, out_dir },
                None => Ends::Missing,
            };
        }
        match (self.endpoints.get(a), self.endpoints.get(b)) {
            (Some(x), Some(y)) => Ends::Local(x, y),
            (Some(local), None) | (None, Some(local)) => {
                let remote = if local.key == *a { b } else { a };
                match self.elsewhere.endpoints.get_key_value(remote) {
                    Some((remote, end)) => Ends::Cross { local, remote, end },
                    None => Ends::Missing,
                }
            }
            (None, None) => Ends::Missing,
        }
    }

    /// The tunnel and key a cross-node link needs, when both are known.
    fn tunnel_of(&self, link: &LinkSpec, end: &RemoteEnd) -> Option<(&'a Tunnel, u32)> {
        Some((
            self.elsewhere.tunnels.get(&end.node)?,
            *self.elsewhere.keys.get(&link.key)?,
        ))
    }

    fn compute_flows(&self) -> BTreeMap<FlowKey, Flow> {
        let mut flows = BTreeMap::new();
        let mut put = |f: Flow| {
            flows.insert(f.key(), f);
        };
        for link in self.links.values() {
            let cookie = link_cookie(&link.key);
            // `from → to` for direction `dir`, through its impairment port when it has one.
            let mut hop =
                |dir: Direction, from: u32, to: Flow| match self.impair_port(&link.key, dir) {
                    Some(p) => {
                        put(Flow::wire(cookie, from, p.ofport));
                        put(Flow {
                            in_port: p.ofport,
                            ..to
                        });
                    }
                    None => put(Flow {
                        in_port: from,
                        ..to
                    }),
                };
            match self.ends(link) {
                Ends::Local(a, b) => {
                    hop(Direction::AtoB, a.ofport, Flow::wire(cookie, 0, b.ofport));
                    hop(Direction::BtoA, b.ofport, Flow::wire(cookie, 0, a.ofport));
                }
                Ends::Cross { local, end, .. } => {
                    if let Some((tunnel, key)) = self.tunnel_of(link, end) {
                        let out_dir = if local.key == *link.key.a() {
                            Direction::AtoB
                        } else {
                            Direction::BtoA
                        };
                        hop(
                            out_dir,
                            local.ofport,
                            Flow::into_tunnel(cookie, 0, tunnel.ofport, key),
                        );
                        put(Flow {
                            tun_match: Some(key),
                            ..Flow::wire(cookie, tunnel.ofport, local.ofport)
                        });
                    }
                }
                // A segment's wires are wired together, below.
                Ends::Member { .. } | Ends::Missing => {}
            }
        }
        for wires in self.segments.values() {
            for f in self.segment_flows(wires) {
                put(f);
            }
        }
        flows
    }

    /// The flows of one LAN segment's member wires registered here: each member's frames go
    /// to every other member here (through the impairment port of the direction when it has
    /// one) and once into the tunnel to each other node with members, with the key agreed with
    /// that node; what a tunnel brings with that key goes to every member here.
    fn segment_flows(&self, wires: &[&'a LinkSpec]) -> Vec<Flow> {
        // Each member here: its wire, its port, its two directions, and where frames for it go.
        let members: Vec<_> = wires
            .iter()
            .filter_map(|link| match self.ends(link) {
                Ends::Member { local, out_dir } => {
                    let into = self.impair_port(&link.key, out_dir.reverse());
                    let deliver = into.map_or(local.ofport, |p| p.ofport);
                    Some((*link, local, out_dir, into, deliver))
                }
                _ => None,
            })
            .collect();
        let mut flows = Vec::new();
        let Some(first) = members.first() else {
            return flows;
        };
        let (lab, segment) = (first.0.key.lab(), first.0.segment.as_deref().unwrap_or(""));
        let tunnels: Vec<TunnelOut> = self
            .elsewhere
            .trunks
            .iter()
            .filter(|(trunk, _)| trunk.lab() == lab && trunk.a().pod == segment)
            .filter_map(|(trunk, node)| {
                Some(TunnelOut {
                    port: self.elsewhere.tunnels.get(node)?.ofport,
                    key: *self.elsewhere.keys.get(trunk)?,
                })
            })
            .collect();
        let cookie = crate::naming::segment_cookie(lab, segment);
        for t in &tunnels {
            flows.push(Flow {
                tun_match: Some(t.key),
                ..Flow::fan(cookie, t.port, members.iter().map(|m| m.4).collect())
            });
        }
        for (i, (link, local, out_dir, into, _)) in members.iter().enumerate() {
            let cookie = link_cookie(&link.key);
            let others: Vec<u32> = members
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, m)| m.4)
                .collect();
            let fan = |in_port| Flow {
                tunnels: tunnels.clone(),
                ..Flow::fan(cookie, in_port, others.clone())
            };
            match self.impair_port(&link.key, *out_dir) {
                Some(p) => {
                    flows.push(Flow::wire(cookie, local.ofport, p.ofport));
                    flows.push(fan(p.ofport));
                }
                None => flows.push(fan(local.ofport)),
            }
            if let Some(p) = into {
                flows.push(Flow::wire(cookie, p.ofport, local.ofport));
            }
        }
        flows
    }

    /// The flows of every link whose ends are known, by match.
    pub fn desired_flows(&self) -> &BTreeMap<FlowKey, Flow> {
        &self.flows
    }

    /// The flows that carry `link` from this node (two for a same-node link, two for this
    /// node's half of a cross-node link).
    fn link_flows(&self, link: &LinkSpec) -> Vec<(FlowKey, &Flow)> {
        let cookie = link_cookie(&link.key);
        self.flows
            .iter()
            .filter(|(_, f)| f.cookie == cookie)
            .map(|(k, f)| (*k, f))
            .collect()
    }

    /// Where this node counts each link it carries: the direction of each of its flows here,
    /// and of its host ports (see [`crate::stats`]).
    pub fn counting(&self) -> BTreeMap<LinkKey, Counting> {
        let mut out = BTreeMap::new();
        for link in self.links.values() {
            let c = match self.ends(link) {
                Ends::Local(a, b) => Counting {
                    flows: vec![
                        ((a.ofport, None), Direction::AtoB),
                        ((b.ofport, None), Direction::BtoA),
                    ],
                    ports: vec![
                        (a.ofport, Direction::AtoB, PortSide::Ingress),
                        (b.ofport, Direction::AtoB, PortSide::Egress),
                        (b.ofport, Direction::BtoA, PortSide::Ingress),
                        (a.ofport, Direction::BtoA, PortSide::Egress),
                    ],
                },
                Ends::Cross { local, end, .. } => {
                    let Some((tunnel, key)) = self.tunnel_of(link, end) else {
                        continue;
                    };
                    // What the local pod sends goes into the wire; what the tunnel brings is
                    // the other direction.
                    let out_dir = if local.key == *link.key.a() {
                        Direction::AtoB
                    } else {
                        Direction::BtoA
                    };
                    Counting {
                        flows: vec![
                            ((local.ofport, None), out_dir),
                            ((tunnel.ofport, Some(key)), out_dir.reverse()),
                        ],
                        ports: vec![
                            (local.ofport, out_dir, PortSide::Ingress),
                            (local.ofport, out_dir.reverse(), PortSide::Egress),
                        ],
                    }
                }
                // What the member sends goes into the segment; what it receives, from all the
                // other members, is counted where it leaves to the member.
                Ends::Member { local, out_dir } => Counting {
                    flows: vec![((local.ofport, None), out_dir)],
                    ports: vec![
                        (local.ofport, out_dir, PortSide::Ingress),
                        (local.ofport, out_dir.reverse(), PortSide::Egress),
                    ],
                },
                Ends::Missing => continue,
            };
            out.insert(link.key.clone(), c);
        }
        out
    }

    /// Whether this node's part of a link is complete in `observed`: its ports exist in
    /// OpenFlow and its flows are in.
    fn complete(&self, link: &LinkSpec, observed: &Observed) -> bool {
        self.complete_with(link, observed, &[])
    }

    /// [`Self::complete`] once the flows `adding` are in as well.
    fn complete_with(&self, link: &LinkSpec, observed: &Observed, adding: &[Flow]) -> bool {
        // The ports the link's flows use, and how many flows it has at least.
        let (mut ports, min_flows) = match self.ends(link) {
            Ends::Local(a, b) => (vec![a.ofport, b.ofport], 2),
            Ends::Cross { local, end, .. } => match self.tunnel_of(link, end) {
                Some((tunnel, _)) => (vec![local.ofport, tunnel.ofport], 2),
                None => return false,
            },
            // The other members' ports are theirs: a member is plugged in once its own flow
            // is in, whoever else is on the segment.
            Ends::Member { local, .. } => (vec![local.ofport], 1),
            Ends::Missing => return false,
        };
        ports.extend(
            Direction::BOTH
                .iter()
                .filter_map(|d| self.impair_port(&link.key, *d).map(|p| p.ofport)),
        );
        let flows = self.link_flows(link);
        flows.len() >= min_flows
            && ports.iter().all(|p| observed.of_ports.contains_key(p))
            && flows
                .iter()
                .all(|(k, f)| observed.flows.get(k) == Some(*f) || adding.contains(f))
    }

    /// Whether the half of a cross-node wire on this node is in place for the local endpoint
    /// `key`, which its peer needs to know before bringing its end up.
    pub fn half_ready(&self, key: &EndpointKey, observed: &Observed) -> bool {
        self.by_end.get(key).is_some_and(|link| {
            matches!(self.ends(link), Ends::Cross { .. }) && self.complete(link, observed)
        })
    }

    /// Whether the tunnel to `node` carries frames as far as its BFD session tells: not when
    /// the session says the far end does not forward (the node, its ovs-vswitchd or the underlay
    /// between is down), whatever the node's agent does.
    fn forwards(&self, node: &str, observed: &Observed) -> bool {
        self.elsewhere
            .tunnels
            .get(node)
            .and_then(|t| observed.ports.get(&t.name))
            .is_none_or(|p| p.forwarding != Some(false))
    }

    /// Nodes that hold the far end of a link with a local end: the tunnels needed.
    pub fn needed_nodes(&self) -> BTreeSet<String> {
        self.links
            .values()
            .filter_map(|l| match self.ends(l) {
                Ends::Cross { end, .. } => Some(end.node.clone()),
                _ => None,
            })
            .collect()
    }

    /// Cross-node links with their local endpoint and the far end's node.
    pub fn cross_links(&self) -> Vec<(&'a LinkSpec, &'a Endpoint, String)> {
        self.links
            .values()
            .filter_map(|l| match self.ends(l) {
                Ends::Cross { local, end, .. } => Some((l, local, end.node.clone())),
                _ => None,
            })
            .collect()
    }

    /// The difference between what these links and endpoints need and what OVS has.
    pub fn plan(&self, observed: &Observed) -> Plan {
        let mut plan = Plan::default();

        let mut wanted: BTreeSet<&str> = self
            .endpoints
            .values()
            .map(|ep| ep.host_ifname.as_str())
            .collect();
        plan.add_ports = missing_endpoint_ports(self.endpoints, observed);
        for ((link, dir), port) in self.impairs.into_iter().flatten() {
            wanted.insert(&port.name);
            if !observed.ports.contains_key(&port.name) {
                plan.add_ports.push(port.want(link, *dir));
            }
        }
        for (node, tunnel) in &self.elsewhere.tunnels {
            wanted.insert(&tunnel.name);
            let want = tunnel.want(node);
            let same = observed.ports.get(&tunnel.name).is_some_and(|p| {
                p.ofport_request == Some(tunnel.ofport)
                    && p.external_ids == want.external_ids
                    && p.bfd == want.bfd
            });
            if !same {
                if observed.ports.contains_key(&tunnel.name) {
                    // The peer moved to a new address: replace the port.
                    plan.del_ports.push(tunnel.name.clone());
                }
                plan.add_ports.push(want);
            }
        }
        plan.del_ports.extend(
            observed
                .ports
                .keys()
                .filter(|n| !wanted.contains(n.as_str()))
                .cloned(),
        );

        // A port OVS numbered otherwise than asked: frames for that number would reach another
        // port, so no flow may use it.
        let misnumbered: BTreeSet<u32> =
            self.endpoints
                .values()
                .filter(|ep| {
                    observed.ports.get(&ep.host_ifname).is_some_and(
                        |p| matches!(p.ofport, OfportState::Assigned(n) if n != ep.ofport),
                    )
                })
                .map(|ep| ep.ofport)
                .collect();
        let usable = |f: &Flow| {
            !misnumbered.contains(&f.in_port) && !f.outputs().any(|p| misnumbered.contains(&p))
        };
        for (key, flow) in &self.flows {
            if usable(flow) && observed.flows.get(key) != Some(flow) {
                plan.add_flows.push(flow.clone());
            }
        }
        for (key, flow) in &observed.flows {
            if !self.flows.contains_key(key) || !usable(flow) {
                plan.del_flows.push(flow.clone());
            }
        }

        for ep in self.endpoints.values() {
            // The port at a misnumbered endpoint's number is another one: leave it alone.
            if misnumbered.contains(&ep.ofport) {
                continue;
            }
            let Some(of) = observed.of_ports.get(&ep.ofport) else {
                continue;
            };
            // An end that is up stays up while its link's flows are replaced in this very plan
            // (an impairment set or cleared): the flows go in before any port changes.
            let adding: &[Flow] = if of.down { &[] } else { &plan.add_flows };
            let up = self.by_end.get(&ep.key).is_some_and(|link| {
                link.admin == AdminState::Up
                    && self.complete_with(link, observed, adding)
                    && match self.ends(link) {
                        Ends::Cross { end, .. } => end.ready && self.forwards(&end.node, observed),
                        _ => true,
                    }
            });
            if of.down == up {
                plan.port_states.push(PortState {
                    ofport: ep.ofport,
                    name: ep.host_ifname.clone(),
                    up,
                });
            }
        }
        plan
    }

    /// How `link` stands in `observed`.
    pub fn status(&self, link: &LinkSpec, observed: &Observed) -> OperState {
        let mut missing = Vec::new();
        for end in [link.key.a(), link.key.b()] {
            if link.is_segment_end(end) {
                continue;
            }
            match self.endpoints.get(end) {
                None if self.elsewhere.endpoints.contains_key(end) => {}
                None => missing.push(format!("{end} to register")),
                Some(ep) => match observed.ports.get(&ep.host_ifname).map(|p| &p.ofport) {
                    Some(OfportState::Failed(why)) => {
                        return OperState::Error(format!("the port of {end} failed: {why}"));
                    }
                    Some(OfportState::Assigned(n)) if *n != ep.ofport => {
                        return OperState::Error(format!(
                            "OVS gave the port of {end} OpenFlow number {n}, not the {} \
                             requested (another port of the bridge holds it); its flows are \
                             held back: remove the other port or re-create the pod",
                            ep.ofport
                        ));
                    }
                    Some(OfportState::Assigned(_)) => {}
                    _ => missing.push(format!("the port of {end}")),
                },
            }
        }
        if !missing.is_empty() {
            return OperState::Pending(format!("waiting for {}", missing.join(" and ")));
        }
        let up = |p: u32| observed.of_ports.get(&p).is_some_and(|o| !o.down);
        match self.ends(link) {
            Ends::Missing => {
                // Both ends are elsewhere: this node has no part in the wire.
                OperState::Pending("both ends are on other nodes".into())
            }
            Ends::Local(a, b) => {
                if !self.complete(link, observed) {
                    return OperState::Pending("waiting for the flows".to_owned());
                }
                match link.admin {
                    AdminState::Down => OperState::Down,
                    AdminState::Up if up(a.ofport) && up(b.ofport) => OperState::Up,
                    AdminState::Up => {
                        OperState::Pending("waiting for the host ends to come up".into())
                    }
                }
            }
            Ends::Member { local, .. } => {
                if !self.complete(link, observed) {
                    return OperState::Pending("waiting for the flows".to_owned());
                }
                match link.admin {
                    AdminState::Down => OperState::Down,
                    AdminState::Up if up(local.ofport) => OperState::Up,
                    AdminState::Up => {
                        OperState::Pending("waiting for the host end to come up".into())
                    }
                }
            }
            Ends::Cross { local, remote, end } => {
                if let Some(why) = self.elsewhere.unreachable.get(&end.node) {
                    return OperState::Error(format!(
                        "{remote} is on node {}, which cannot be reached: {why}",
                        end.node
                    ));
                }
                match self.elsewhere.tunnels.get(&end.node) {
                    None => {
                        return OperState::Pending(format!(
                            "waiting for the tunnel to node {}",
                            end.node
                        ));
                    }
                    Some(t) => match observed.ports.get(&t.name).map(|p| &p.ofport) {
                        Some(OfportState::Failed(why)) => {
                            return OperState::Error(format!(
                                "the tunnel to node {} failed: {why}",
                                end.node
                            ));
                        }
                        Some(OfportState::Assigned(_)) => {}
                        _ => {
                            return OperState::Pending(format!(
                                "waiting for the tunnel to node {}",
                                end.node
                            ));
                        }
                    },
                }
                if !self.elsewhere.keys.contains_key(&link.key) {
                    return OperState::Pending(format!(
                        "waiting for the tunnel key from node {}",
                        end.node
                    ));
                }
                if !self.complete(link, observed) {
                    return OperState::Pending("waiting for the flows".to_owned());
                }
                if !end.ready {
                    return OperState::Pending(format!(
                        "waiting for node {} to wire {remote}",
                        end.node
                    ));
                }
                if !self.forwards(&end.node, observed) {
                    return OperState::Pending(format!(
                        "node {} does not answer through the tunnel (BFD): the node or its Open \
                         vSwitch is down or unreachable over the underlay; the wire comes back \
                         with it",
                        end.node
                    ));
                }
                match link.admin {
                    AdminState::Down => OperState::Down,
                    AdminState::Up if up(local.ofport) => OperState::Up,
                    AdminState::Up => {
                        OperState::Pending("waiting for the host end to come up".into())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a plan to an observed state the way OVS does, so convergence can be checked.
    fn apply(plan: &Plan, obs: &mut Observed) {
        for name in &plan.del_ports {
            if let Some(p) = obs.ports.remove(name) {
                if let Some(n) = p.ofport_request {
                    obs.of_ports.remove(&n);
                }
            }
        }
        for p in &plan.add_ports {
            obs.ports.insert(
                p.name.clone(),
                ObservedPort {
                    name: p.name.clone(),
                    ofport_request: Some(p.ofport),
                    ofport: OfportState::Assigned(p.ofport),
                    external_ids: p.external_ids.clone(),
                    bfd: p.bfd.clone(),
                    forwarding: None,
                },
            );
            // A new veth end starts administratively down.
            obs.of_ports.insert(
                p.ofport,
                OfPort {
                    mac: [2, 0, 0, 0, 0, p.ofport as u8],
                    down: true,
                    link_down: false,
                },
            );
        }
        for f in &plan.del_flows {
            obs.flows.remove(&f.key());
        }
        for f in &plan.add_flows {
            obs.flows.insert(f.key(), f.clone());
        }
        for s in &plan.port_states {
            obs.of_ports.get_mut(&s.ofport).unwrap().down = !s.up;
        }
    }

    fn ep(pod: &str, ofport: u32, container: &str) -> Endpoint {
        let key = EndpointKey::parse("lab", &format!("{pod}:eth1")).unwrap();
        Endpoint {
            host_ifname: crate::naming::host_ifname(container, "eth1"),
            key,
            container_id: container.to_owned(),
            netns: format!("/run/netns/{container}").into(),
            ofport,
            mtu: 9000,
            network: "ovswire".into(),
        }
    }

    fn link(a: &str, b: &str) -> LinkSpec {
        let key = LinkKey::new(
            EndpointKey::parse("lab", &format!("{a}:eth1")).unwrap(),
            EndpointKey::parse("lab", &format!("{b}:eth1")).unwrap(),
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

    struct Lab {
        links: BTreeMap<LinkKey, LinkSpec>,
        eps: BTreeMap<EndpointKey, Endpoint>,
        elsewhere: Elsewhere,
        obs: Observed,
    }

    impl Lab {
        fn new(links: &[LinkSpec], eps: &[Endpoint]) -> Self {
            Self {
                links: links.iter().map(|l| (l.key.clone(), l.clone())).collect(),
                eps: eps.iter().map(|e| (e.key.clone(), e.clone())).collect(),
                elsewhere: Elsewhere::default(),
                obs: Observed::default(),
            }
        }

        fn plan(&self) -> Plan {
            World::new(&self.links, &self.eps, &self.elsewhere).plan(&self.obs)
        }

        /// Plans and applies until nothing is left; returns the plans that did something.
        fn converge(&mut self) -> Vec<Plan> {
            let mut rounds = Vec::new();
            loop {
                let plan = self.plan();
                if plan.is_empty() {
                    return rounds;
                }
                apply(&plan, &mut self.obs);
                rounds.push(plan);
                assert!(rounds.len() < 5, "does not converge: {rounds:#?}");
            }
        }

        fn status(&self, a: &str, b: &str) -> OperState {
            let l = link(a, b);
            World::new(&self.links, &self.eps, &self.elsewhere)
                .status(&self.links[&l.key], &self.obs)
        }

        fn up(&self, ofport: u32) -> bool {
            !self.obs.of_ports[&ofport].down
        }
    }

    #[test]
    fn a_link_is_wired_in_two_rounds_then_nothing() {
        let mut lab = Lab::new(
            &[link("r1", "r2")],
            &[ep("r1", 32768, "c1"), ep("r2", 32769, "c2")],
        );
        let rounds = lab.converge();
        assert_eq!(rounds.len(), 2);
        assert_eq!(rounds[0].add_ports.len(), 2);
        assert_eq!(rounds[0].add_flows.len(), 2);
        assert!(
            rounds[0].port_states.is_empty(),
            "ports come up only once the wire is in"
        );
        assert!(!rounds[1].touches_ovsdb());
        assert_eq!(rounds[1].port_states.len(), 2);
        assert!(lab.up(32768) && lab.up(32769));
        assert_eq!(lab.status("r1", "r2"), OperState::Up);
        assert!(lab.plan().is_empty(), "a converged state plans nothing");
    }

    #[test]
    fn a_same_node_link_is_counted_both_ways_on_its_flows_and_ports() {
        let lab = Lab::new(
            &[link("r1", "r2")],
            &[ep("r1", 32768, "c1"), ep("r2", 32769, "c2")],
        );
        let counting = World::new(&lab.links, &lab.eps, &lab.elsewhere).counting();
        let c = counting.values().next().unwrap();
        assert_eq!(
            c.flows,
            [
                ((32768, None), Direction::AtoB),
                ((32769, None), Direction::BtoA)
            ]
        );
        assert!(
            c.ports
                .contains(&(32769, Direction::AtoB, PortSide::Egress))
        );
        assert_eq!(c.ports.len(), 4);
    }

    #[test]
    fn a_link_with_one_end_stays_pending_and_down() {
        let mut lab = Lab::new(&[link("r1", "r2")], &[ep("r1", 32768, "c1")]);
        lab.converge();
        assert!(!lab.up(32768), "no carrier until the peer is there");
        assert!(lab.obs.flows.is_empty());
        assert_eq!(
            lab.status("r1", "r2"),
            OperState::Pending("waiting for r2:eth1 to register".into())
        );
    }

    #[test]
    fn admin_down_takes_both_ends_down_and_back() {
        let mut lab = Lab::new(
            &[link("r1", "r2")],
            &[ep("r1", 32768, "c1"), ep("r2", 32769, "c2")],
        );
        lab.converge();
        lab.links.values_mut().next().unwrap().admin = AdminState::Down;
        let rounds = lab.converge();
        assert_eq!(rounds.len(), 1);
        assert!(rounds[0].add_flows.is_empty() && !rounds[0].touches_ovsdb());
        assert!(!lab.up(32768) && !lab.up(32769));
        assert_eq!(lab.status("r1", "r2"), OperState::Down);
        lab.links.values_mut().next().unwrap().admin = AdminState::Up;
        lab.converge();
        assert!(lab.up(32768) && lab.up(32769));
    }

    #[test]
    fn a_pod_restart_rewires_only_its_link() {
        let mut lab = Lab::new(
            &[link("r1", "r2"), link("r3", "r4")],
            &[
                ep("r1", 32768, "c1"),
                ep("r2", 32769, "c2"),
                ep("r3", 32770, "c3"),
                ep("r4", 32771, "c4"),
            ],
        );
        lab.converge();
        let r3r4: Vec<_> = [32770, 32771]
            .iter()
            .map(|p| lab.obs.flows[&(*p, None)].clone())
            .collect();
        // r2 comes back in a new sandbox with a new veth and port.
        let r2 = ep("r2", 32772, "c2-new");
        lab.eps.insert(r2.key.clone(), r2);
        let rounds = lab.converge();
        let all_flows: Vec<_> = rounds
            .iter()
            .flat_map(|r| r.add_flows.iter().chain(&r.del_flows))
            .collect();
        assert!(
            all_flows
                .iter()
                .all(|f| ![32770, 32771].contains(&f.in_port)),
            "r3-r4 untouched"
        );
        assert_eq!(
            rounds[0].del_ports,
            vec![crate::naming::host_ifname("c2", "eth1")]
        );
        assert_eq!(
            r3r4,
            [32770, 32771]
                .iter()
                .map(|p| lab.obs.flows[&(*p, None)].clone())
                .collect::<Vec<_>>()
        );
        assert!(lab.up(32768) && lab.up(32772));
        assert_eq!(lab.status("r1", "r2"), OperState::Up);
    }

    #[test]
    fn a_peer_leaving_drops_carrier_on_the_survivor() {
        let mut lab = Lab::new(
            &[link("r1", "r2")],
            &[ep("r1", 32768, "c1"), ep("r2", 32769, "c2")],
        );
        lab.converge();
        lab.eps.retain(|k, _| k.pod != "r2");
        let rounds = lab.converge();
        assert_eq!(rounds[0].del_flows.len(), 2);
        assert_eq!(rounds[0].del_ports.len(), 1);
        assert!(!lab.up(32768));
    }

    #[test]
    fn foreign_ports_and_flows_are_not_in_observed_so_never_touched() {
        let mut lab = Lab::new(&[], &[]);
        lab.obs.of_ports.insert(
            1,
            OfPort {
                mac: [0; 6],
                down: false,
                link_down: false,
            },
        );
        assert!(lab.plan().is_empty());
    }

    #[test]
    fn records_survive_a_round_trip_through_external_ids() {
        let e = ep("r1", 32768, "c1");
        let back = Endpoint::from_external_ids(&e.host_ifname, e.ofport, &e.external_ids());
        assert_eq!(back, Some(e.clone()));
        // A record made before networks were recorded belongs to every network.
        let mut older = e.external_ids();
        older.remove("ovswire-network");
        let back = Endpoint::from_external_ids(&e.host_ifname, e.ofport, &older).unwrap();
        assert_eq!(back.network, "");
        let mut foreign = e.external_ids();
        foreign.remove(OWNER_KEY);
        assert_eq!(
            Endpoint::from_external_ids(&e.host_ifname, 1, &foreign),
            None
        );
    }

    #[test]
    fn a_failed_port_makes_the_link_an_error() {
        let mut lab = Lab::new(
            &[link("r1", "r2")],
            &[ep("r1", 32768, "c1"), ep("r2", 32769, "c2")],
        );
        lab.converge();
        let name = lab.eps.values().next().unwrap().host_ifname.clone();
        lab.obs.ports.get_mut(&name).unwrap().ofport = OfportState::Failed("No such device".into());
        assert!(
            matches!(lab.status("r1", "r2"), OperState::Error(e) if e.contains("No such device"))
        );
    }

    #[test]
    fn a_port_numbered_otherwise_than_asked_gets_no_flows_and_is_an_error() {
        let mut lab = Lab::new(
            &[link("r1", "r2")],
            &[ep("r1", 32768, "c1"), ep("r2", 32769, "c2")],
        );
        // Another port of the bridge already holds 32768; OVS numbers r1's port 40000.
        let foreign = OfPort {
            mac: [2, 0xff, 0, 0, 0, 1],
            down: false,
            link_down: false,
        };
        lab.obs.of_ports.insert(32768, foreign);
        let plan = lab.plan();
        apply(&plan, &mut lab.obs);
        let r1 = lab.eps.values().next().unwrap().host_ifname.clone();
        lab.obs.ports.get_mut(&r1).unwrap().ofport = OfportState::Assigned(40000);
        lab.obs.of_ports.insert(32768, foreign);
        // Flows put in before OVS answered are taken out; none goes to or from 32768.
        let plan = lab.plan();
        apply(&plan, &mut lab.obs);
        assert!(
            lab.obs
                .flows
                .values()
                .all(|f| f.in_port != 32768 && !f.outputs().any(|p| p == 32768)),
            "{:?}",
            lab.obs.flows
        );
        assert!(
            plan.port_states.iter().all(|p| p.ofport != 32768),
            "the other port was taken up or down: {plan:?}"
        );
        assert_eq!(lab.obs.of_ports[&32768], foreign);
        assert!(
            matches!(lab.status("r1", "r2"), OperState::Error(e) if e.contains("40000")),
            "{:?}",
            lab.status("r1", "r2")
        );
        assert!(lab.plan().add_flows.is_empty(), "flows held back for good");
    }

    #[test]
    fn a_cross_node_link_waits_for_key_tunnel_and_far_half_then_comes_up() {
        let mut lab = Lab::new(&[link("r1", "r2")], &[ep("r1", 32768, "c1")]);
        let r2 = EndpointKey::parse("lab", "r2:eth1").unwrap();
        lab.elsewhere.endpoints.insert(
            r2.clone(),
            RemoteEnd {
                node: "b".into(),
                ready: false,
            },
        );
        lab.converge();
        assert_eq!(
            lab.status("r1", "r2"),
            OperState::Pending("waiting for the tunnel to node b".into())
        );
        let tunnel = Tunnel {
            name: "vxtest".into(),
            ofport: 32769,
            remote_ip: "192.0.2.2".into(),
        };
        lab.elsewhere.tunnels.insert("b".into(), tunnel.clone());
        let rounds = lab.converge();
        let added: Vec<_> = rounds.iter().flat_map(|r| &r.add_ports).collect();
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].kind.as_deref(), Some("vxlan"));
        assert_eq!(added[0].options["remote_ip"], "192.0.2.2");
        assert_eq!(added[0].options["key"], "flow");
        assert_eq!(
            lab.status("r1", "r2"),
            OperState::Pending("waiting for the tunnel key from node b".into())
        );
        let key = lab.links.keys().next().unwrap().clone();
        lab.elsewhere.keys.insert(key.clone(), 77);
        lab.converge();
        let out = &lab.obs.flows[&(32768, None)];
        assert_eq!(
            out.tunnels,
            [TunnelOut {
                port: 32769,
                key: 77
            }]
        );
        let back = &lab.obs.flows[&(32769, Some(77))];
        assert_eq!(
            (&back.out_ports[..], &back.tunnels[..]),
            (&[32768][..], &[][..])
        );
        let world = World::new(&lab.links, &lab.eps, &lab.elsewhere);
        assert!(world.half_ready(&EndpointKey::parse("lab", "r1:eth1").unwrap(), &lab.obs));
        assert!(!lab.up(32768), "no carrier until the far half is in place");
        assert!(
            matches!(lab.status("r1", "r2"), OperState::Pending(r) if r.contains("node b to wire"))
        );

        lab.elsewhere.endpoints.get_mut(&r2).unwrap().ready = true;
        lab.converge();
        assert!(lab.up(32768));
        assert_eq!(lab.status("r1", "r2"), OperState::Up);
        assert!(lab.plan().is_empty());
        // r1 is end a: what it sends is a->b, what the tunnel brings b->a.
        let counting = World::new(&lab.links, &lab.eps, &lab.elsewhere).counting();
        assert_eq!(
            counting[&key].flows,
            [
                ((32768, None), Direction::AtoB),
                ((32769, Some(77)), Direction::BtoA)
            ]
        );

        // The far end goes away: carrier drops, flows and tunnel go.
        lab.elsewhere.endpoints.clear();
        lab.elsewhere.tunnels.clear();
        lab.converge();
        assert!(!lab.up(32768));
        assert!(lab.obs.flows.is_empty());
        assert!(!lab.obs.ports.contains_key("vxtest"));
    }

    #[test]
    fn two_links_on_one_tunnel_are_told_apart_by_key() {
        let l1 = link("r1", "r2");
        let l2 = link("r3", "r4");
        let mut lab = Lab::new(
            &[l1.clone(), l2.clone()],
            &[ep("r1", 32768, "c1"), ep("r3", 32770, "c3")],
        );
        for pod in ["r2", "r4"] {
            lab.elsewhere.endpoints.insert(
                EndpointKey::parse("lab", &format!("{pod}:eth1")).unwrap(),
                RemoteEnd {
                    node: "b".into(),
                    ready: true,
                },
            );
        }
        lab.elsewhere.tunnels.insert(
            "b".into(),
            Tunnel {
                name: "vxtest".into(),
                ofport: 32771,
                remote_ip: "192.0.2.2".into(),
            },
        );
        lab.elsewhere.keys.insert(l1.key.clone(), 5);
        lab.elsewhere.keys.insert(l2.key.clone(), 6);
        lab.converge();
        assert_eq!(lab.obs.flows[&(32771, Some(5))].out_ports, [32768]);
        assert_eq!(lab.obs.flows[&(32771, Some(6))].out_ports, [32770]);
        assert!(lab.up(32768) && lab.up(32770));
    }

    /// Member `pod:eth1`'s wire to segment `lan`, at the segment's interface `e{n}`.
    fn member(pod: &str, n: u32) -> LinkSpec {
        let key = LinkKey::new(
            EndpointKey::parse("lab", &format!("{pod}:eth1")).unwrap(),
            EndpointKey::parse("lab", &format!("lan:e{n}")).unwrap(),
        )
        .unwrap();
        LinkSpec {
            segment: Some("lan".into()),
            ..link("x", "y")
        }
        .with_key(key)
    }

    impl LinkSpec {
        fn with_key(self, key: LinkKey) -> Self {
            Self { key, ..self }
        }
    }

    #[test]
    fn a_segment_copies_each_members_frames_to_every_other_member() {
        let mut lab = Lab::new(
            &[member("r1", 1), member("r2", 2), member("r3", 3)],
            &[
                ep("r1", 32768, "c1"),
                ep("r2", 32769, "c2"),
                ep("r3", 32770, "c3"),
            ],
        );
        let rounds = lab.converge();
        assert_eq!(rounds.len(), 2, "{rounds:#?}");
        let outs = |p: u32| lab.obs.flows[&(p, None)].out_ports.clone();
        assert_eq!(outs(32768), [32769, 32770]);
        assert_eq!(outs(32769), [32768, 32770]);
        assert_eq!(outs(32770), [32768, 32769]);
        assert_eq!(lab.obs.flows.len(), 3);
        assert!(lab.up(32768) && lab.up(32769) && lab.up(32770));
        let st = World::new(&lab.links, &lab.eps, &lab.elsewhere);
        for l in lab.links.values() {
            assert_eq!(st.status(l, &lab.obs), OperState::Up, "{}", l.key);
        }
        // Each member's wire counts what it sends (into the segment) and what it receives.
        let counting = st.counting();
        let r2 = &counting[&member("r2", 2).key];
        // lan sorts before r2, so r2 → segment is b->a.
        assert_eq!(r2.flows, [((32769, None), Direction::BtoA)]);
        assert!(
            r2.ports
                .contains(&(32769, Direction::AtoB, PortSide::Egress))
        );
    }

    #[test]
    fn a_member_alone_on_its_segment_is_plugged_in_and_the_next_one_joins() {
        let mut lab = Lab::new(
            &[member("r1", 1), member("r2", 2), member("r3", 3)],
            &[ep("r1", 32768, "c1")],
        );
        lab.converge();
        assert!(lab.obs.flows[&(32768, None)].out_ports.is_empty(), "drops");
        assert!(lab.up(32768), "its cable is in the switch");
        let w = World::new(&lab.links, &lab.eps, &lab.elsewhere);
        assert_eq!(
            w.status(&lab.links[&member("r2", 2).key], &lab.obs),
            OperState::Pending("waiting for r2:eth1 to register".into())
        );
        let r2 = ep("r2", 32769, "c2");
        lab.eps.insert(r2.key.clone(), r2);
        let rounds = lab.converge();
        // r1's flow is replaced in the same bundle that adds r2's.
        assert_eq!(rounds[0].add_flows.len(), 2);
        assert_eq!(lab.obs.flows[&(32768, None)].out_ports, [32769]);
        assert!(lab.up(32768) && lab.up(32769));
    }

    #[test]
    fn a_member_taken_down_loses_carrier_alone() {
        let mut lab = Lab::new(
            &[member("r1", 1), member("r2", 2), member("r3", 3)],
            &[
                ep("r1", 32768, "c1"),
                ep("r2", 32769, "c2"),
                ep("r3", 32770, "c3"),
            ],
        );
        lab.converge();
        lab.links.get_mut(&member("r2", 2).key).unwrap().admin = AdminState::Down;
        let rounds = lab.converge();
        assert_eq!(rounds.len(), 1);
        assert_eq!(rounds[0].port_states.len(), 1);
        assert!(!lab.up(32769) && lab.up(32768) && lab.up(32770));
        let w = World::new(&lab.links, &lab.eps, &lab.elsewhere);
        assert_eq!(
            w.status(&lab.links[&member("r2", 2).key], &lab.obs),
            OperState::Down
        );
    }

    #[test]
    fn a_members_impaired_directions_go_through_their_ports() {
        let links: BTreeMap<_, _> = [member("r1", 1), member("r2", 2), member("r3", 3)]
            .into_iter()
            .map(|l| (l.key.clone(), l))
            .collect();
        let eps: BTreeMap<_, _> = [
            ep("r1", 32768, "c1"),
            ep("r2", 32769, "c2"),
            ep("r3", 32770, "c3"),
        ]
        .into_iter()
        .map(|e| (e.key.clone(), e))
        .collect();
        let port = |ofport| ImpairPort {
            name: format!("oi{ofport}"),
            stage_end: format!("oj{ofport}"),
            ofport,
            mtu: 9000,
            active: true,
        };
        // r2's wire: into the segment (b->a) through 40000, out of it (a->b) through 40001.
        let r2 = member("r2", 2).key;
        let impairs: ImpairPorts = [
            ((r2.clone(), Direction::BtoA), port(40000)),
            ((r2, Direction::AtoB), port(40001)),
        ]
        .into();
        let elsewhere = Elsewhere::default();
        let w = World::with_impairs(&links, &eps, &elsewhere, &impairs);
        let flows = w.desired_flows();
        let outs = |p: u32| flows[&(p, None)].out_ports.clone();
        assert_eq!(outs(32769), [40000]);
        assert_eq!(outs(40000), [32768, 32770]);
        assert_eq!(outs(40001), [32769]);
        // The others deliver to r2 through its impairment port.
        assert_eq!(outs(32768), [40001, 32770]);
        assert_eq!(outs(32770), [32768, 40001]);
    }

    #[test]
    fn a_cross_node_wire_loses_carrier_while_its_tunnel_does_not_forward_and_stays_wired() {
        let mut lab = Lab::new(&[link("r1", "r2")], &[ep("r1", 32768, "c1")]);
        let r2 = EndpointKey::parse("lab", "r2:eth1").unwrap();
        lab.elsewhere.endpoints.insert(
            r2,
            RemoteEnd {
                node: "b".into(),
                ready: true,
            },
        );
        let tunnel = Tunnel {
            name: "vxtest".into(),
            ofport: 32769,
            remote_ip: "192.0.2.2".into(),
        };
        lab.elsewhere.tunnels.insert("b".into(), tunnel);
        let key = lab.links.keys().next().unwrap().clone();
        lab.elsewhere.keys.insert(key, 77);
        let rounds = lab.converge();
        // The tunnel asks Open vSwitch for a BFD session.
        let added: Vec<_> = rounds.iter().flat_map(|r| &r.add_ports).collect();
        let tunnel = added.iter().find(|p| p.name == "vxtest").unwrap();
        assert_eq!(tunnel.bfd["enable"], "true");
        assert!(lab.up(32768));

        // BFD says the far datapath stopped: carrier goes, the flows and the port stay.
        lab.obs.ports.get_mut("vxtest").unwrap().forwarding = Some(false);
        let rounds = lab.converge();
        assert_eq!(rounds.len(), 1);
        assert!(rounds[0].add_flows.is_empty() && rounds[0].del_flows.is_empty());
        assert!(!rounds[0].touches_ovsdb());
        assert!(!lab.up(32768));
        let OperState::Pending(why) = lab.status("r1", "r2") else {
            panic!("pending");
        };
        assert!(
            why.contains("node b does not answer through the tunnel"),
            "{why}"
        );

        // It forwards again: carrier is back.
        lab.obs.ports.get_mut("vxtest").unwrap().forwarding = Some(true);
        lab.converge();
        assert!(lab.up(32768));
        assert_eq!(lab.status("r1", "r2"), OperState::Up);
    }
}
