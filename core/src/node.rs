//! What one node knows and decides: the wanted links, the registered pod interfaces, what OVS
//! has, what the peers report, and every link's status.
//!
//! [`NodeState`] is plain data with synchronous methods. Each change returns the
//! [`LinkEvent`]s it causes (or says that nothing changed), so the agent's async shell only
//! has to lock it, call one method, publish the events and ask for a reconcile round. Every
//! rule about ports, MTUs, admin states and peers lives here and is unit-tested without OVS.

use std::collections::{BTreeMap, BTreeSet};

use crate::attach::{AttachError, AttachRequest, Attachment};
use crate::impair::LinkImpairment;
use crate::model::{AdminState, DEFAULT_MTU, EndpointKey, LinkKey, LinkSpec};
use crate::naming::impair_ifnames;
use crate::naming::{FIRST_OFPORT, LAST_OFPORT, host_ifname};
use crate::peers::{self, Here, PeerView};
use crate::plan::{
    Elsewhere, Endpoint, ImpairPort, ImpairPorts, Observed, ObservedPort, OfPort, OfportState,
    OperState, Plan, PortWant, World,
};
use crate::stats::Direction;

/// Bytes VXLAN over IPv4 adds to a frame's payload on the underlay: outer IPv4 (20), UDP (8),
/// VXLAN (8) and the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// What the agent recorded in OVSDB about links, beyond their ports: kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Links set administratively down, by [`LinkKey`]'s display name.
    pub down: BTreeSet<String>,
    /// Impairments set through the API, by [`LinkKey`]'s display name.
    pub impair: BTreeMap<String, LinkImpairment>,
}

/// A change in a link's state, for watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// The link.
    pub link: LinkSpec,
    /// Its state now.
    pub status: OperState,
    /// The link left the topology.
    pub removed: bool,
    /// What happened beyond the state, when something did (a changed impairment).
    pub note: Option<String>,
}

/// What this node tells a peer: its endpoints with the readiness of their cross-node half, and
/// the keys it chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every local endpoint, and whether its half of a cross-node wire is in place.
    pub endpoints: BTreeMap<EndpointKey, bool>,
    /// Keys this node chose, with the node at the link's far end.
    pub keys: BTreeMap<LinkKey, (String, u32)>,
    /// Grows with every report (the agent's incarnation, then a counter), so peers can drop a
    /// report that arrives after a newer one. The agent stamps it when it sends.
    pub generation: u64,
}

/// How many starts of a peer's agent a report may claim since the last report heard from it.
pub const MAX_INCARNATION_LEAP: u64 = 1 << 20;

/// Where a link's ends are and what it can carry, for status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// The node of end `a` (empty while unknown).
    pub node_a: String,
    /// The node of end `b` (empty while unknown).
    pub node_b: String,
    /// The VXLAN key of a cross-node link.
    pub tunnel_key: Option<u32>,
    /// The largest payload the wire carries end to end.
    pub effective_mtu: u32,
    /// Why `effective_mtu` is below the link's MTU.
    pub mtu_note: Option<String>,
}

/// What an ADD has to do, as [`NodeState::reserve`] decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The interface is already registered for this container: return it as it is.
    Existing(Attachment),
    /// Create the veth pair the attachment describes (names, MACs, MTU, the pod's namespace),
    /// then call [`NodeState::complete_attach`]; the port number is held until then.
    New {
        /// The OpenFlow port number the host end requests.
        ofport: u32,
        /// The interface to make.
        attachment: Attachment,
    },
}

/// Locally administered MACs, `(host end, pod end)`, derived from the container and the
/// interface, so a record rebuilt after a restart names the same addresses.
pub fn macs(container_id: &str, ifname: &str) -> ([u8; 6], [u8; 6]) {
    let name = host_ifname(container_id, ifname);
    let hex = &name[name.len() - 10..];
    let mut host = [0x02, 0, 0, 0, 0, 0];
    for i in 0..5 {
        host[i + 1] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    let mut pod = host;
    pod[0] = 0x06;
    (host, pod)
}

/// The attachment record of a registered endpoint.
fn attachment_of(ep: &Endpoint) -> Attachment {
    let (host_mac, pod_mac) = macs(&ep.container_id, &ep.key.ifname);
    Attachment {
        key: ep.key.clone(),
        container_id: ep.container_id.clone(),
        netns: ep.netns.clone(),
        host_ifname: ep.host_ifname.clone(),
        host_mac,
        pod_mac,
        mtu: ep.mtu,
        network: ep.network.clone(),
    }
}

/// (container id, interface name): how CNI names a pod interface.
type ContainerIf = (String, String);

/// Everything one node knows; see the module docs.
#[derive(Debug, Default)]
pub struct NodeState {
    links: BTreeMap<LinkKey, LinkSpec>,
    endpoints: BTreeMap<EndpointKey, Endpoint>,
    by_container: BTreeMap<ContainerIf, EndpointKey>,
    /// Endpoints whose veth is being created: their port number is taken.
    reserved: BTreeMap<ContainerIf, (EndpointKey, u32)>,
    /// ADDs being made that must not register when they complete, with why: their sandbox was
    /// deleted meanwhile, or a newer sandbox asked for the same endpoint.
    cancelled: BTreeMap<ContainerIf, String>,
    /// Tunnel ports whose BFD session has said the far end forwards at least once: only then
    /// does its saying otherwise take carrier away (a session still coming up says so too).
    bfd_seen_up: BTreeSet<String>,
    observed: Observed,
    statuses: BTreeMap<LinkKey, OperState>,
    here: Here,
    /// The last report of every peer node.
    peers: BTreeMap<String, PeerView>,
    /// What the peers' reports mean for the planner.
    elsewhere: Elsewhere,
    /// The report last sent to peers, to tell them only about changes.
    last_report: Option<Report>,
    /// The links as the topology source last gave them (before API admin changes).
    source_links: BTreeMap<LinkKey, LinkSpec>,
    /// Links recorded as administratively down in OVSDB when the agent started.
    persisted_down: BTreeSet<String>,
    /// Impairments set through the API and recorded in OVSDB when the agent started, by
    /// [`LinkKey`]'s display name.
    persisted_impair: BTreeMap<String, LinkImpairment>,
    /// The ports this node's impaired directions go through.
    impairs: ImpairPorts,
    /// Ports committed to OVSDB since the last observation.
    committed: BTreeSet<String>,
}

impl NodeState {
    /// The state of a node that starts with `links` wanted and finds `observed` in OVS:
    /// endpoints a previous run registered are adopted from their ports' `external_ids`,
    /// links recorded down (`persisted_down`, by [`LinkKey`]'s display name) stay down, the
    /// peers' endpoints and keys are read back from the tunnel flows, and `configured_peers`
    /// (node → underlay address) are added.
    pub fn adopt(
        here: Here,
        links: BTreeMap<LinkKey, LinkSpec>,
        persisted: Persisted,
        configured_peers: &BTreeMap<String, String>,
        observed: Observed,
    ) -> Self {
        let mut st = Self {
            source_links: links.clone(),
            links,
            ..Self::default()
        };
        for link in st.links.values_mut() {
            let name = link.key.to_string();
            if persisted.down.contains(&name) {
                link.admin = AdminState::Down;
            }
            if let Some(imp) = persisted.impair.get(&name) {
                link.impair = *imp;
            }
        }
        st.persisted_down = persisted.down;
        st.persisted_impair = persisted.impair;
        for port in observed.ports.values() {
            let Some(ofport) = port.ofport_request else {
                continue;
            };
            if let Some(ep) = Endpoint::from_external_ids(&port.name, ofport, &port.external_ids) {
                st.insert_endpoint(ep);
            }
        }
        let (peers, elsewhere) = peers::adopt(&here, &st.links, &st.endpoints, &observed);
        st.peers = peers;
        for (node, ip) in configured_peers {
            st.peers.entry(node.clone()).or_default().underlay_ip = Some(ip.clone());
        }
        st.elsewhere = elsewhere;
        st.here = here;
        st.take_observed(observed);
        st.refresh_statuses();
        st.last_report = Some(st.report());
        st
    }

    fn world(&self) -> World<'_> {
        World::with_impairs(&self.links, &self.endpoints, &self.elsewhere, &self.impairs)
    }

    /// The ports this node's impaired directions go through, with the impairment each applies.
    pub fn impair_ports(&self) -> Vec<(LinkKey, Direction, ImpairPort, crate::impair::Impairment)> {
        self.impairs
            .iter()
            .filter_map(|((key, dir), port)| {
                let imp = *self.links.get(key)?.impair.get(*dir);
                Some((key.clone(), *dir, port.clone(), imp))
            })
            .collect()
    }

    /// Recomputes the impairment ports: one for each impaired direction whose sending end is
    /// registered here, keeping the numbers of those that stay (or that OVS has from an earlier
    /// run, found by their derived names); whether anything changed.
    fn rebuild_impairs(&mut self) -> bool {
        let mut wanted = Vec::new();
        for link in self.links.values() {
            for dir in Direction::BOTH {
                // The sending end's node impairs a direction; a segment's member wire is
                // impaired both ways on its member's node.
                let at = link.member().unwrap_or(match dir {
                    Direction::AtoB => link.key.a(),
                    Direction::BtoA => link.key.b(),
                });
                if !link.impair.get(dir).is_none() && self.endpoints.contains_key(at) {
                    wanted.push((link.key.clone(), dir, link.mtu));
                }
            }
        }
        let mut used = self.used_ofports();
        let mut next = ImpairPorts::new();
        for (key, dir, mtu) in wanted {
            let (name, stage_end) = impair_ifnames(&key, dir);
            let observed = self.observed.ports.get(&name);
            let ofport = match self.impairs.get(&(key.clone(), dir)) {
                Some(p) => Some(p.ofport),
                None => observed.and_then(|p| p.ofport_request).or_else(|| {
                    let p = (FIRST_OFPORT..=LAST_OFPORT).find(|p| !used.contains(p))?;
                    used.insert(p);
                    Some(p)
                }),
            };
            let Some(ofport) = ofport else { continue };
            let active = observed.is_some_and(|p| p.ofport == OfportState::Assigned(ofport))
                && self.observed.of_ports.contains_key(&ofport);
            next.insert(
                (key, dir),
                ImpairPort {
                    name,
                    stage_end,
                    ofport,
                    mtu,
                    active,
                },
            );
        }
        let changed = next != self.impairs;
        self.impairs = next;
        changed
    }

    /// This node's name and underlay.
    pub fn here(&self) -> &Here {
        &self.here
    }

    /// How many endpoints are registered.
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// Every wanted link with its status.
    pub fn links(&self) -> Vec<(LinkSpec, OperState)> {
        self.links
            .values()
            .map(|l| {
                let status = self.statuses.get(&l.key).cloned();
                (
                    l.clone(),
                    status.unwrap_or_else(|| OperState::Pending("not planned yet".into())),
                )
            })
            .collect()
    }

    /// Whether `key` is a wanted link.
    pub fn has_link(&self, key: &LinkKey) -> bool {
        self.links.contains_key(key)
    }

    fn used_ofports(&self) -> BTreeSet<u32> {
        self.endpoints
            .values()
            .map(|e| e.ofport)
            .chain(self.reserved.values().map(|(_, p)| *p))
            .chain(self.elsewhere.tunnels.values().map(|t| t.ofport))
            .chain(self.impairs.values().map(|p| p.ofport))
            .chain(
                self.observed
                    .ports
                    .values()
                    .filter_map(|p| p.ofport_request),
            )
            // Every port on the bridge, ovswire's or not: a number another port holds cannot
            // be had, and OVS would give the new port another one.
            .chain(self.observed.of_ports.keys().copied())
            .collect()
    }

    fn free_ofport(&self) -> Option<u32> {
        let used = self.used_ofports();
        (FIRST_OFPORT..=LAST_OFPORT).find(|p| !used.contains(p))
    }

    /// Recomputes what the peers' reports mean; whether anything changed.
    fn rebuild_elsewhere(&mut self) -> bool {
        let mut used = self.used_ofports();
        let mut alloc = || {
            let p = (FIRST_OFPORT..=LAST_OFPORT).find(|p| !used.contains(p))?;
            used.insert(p);
            Some(p)
        };
        let next = peers::rebuild(
            &self.here,
            &self.links,
            &self.endpoints,
            &self.peers,
            &self.elsewhere,
            &mut alloc,
        );
        let changed = next != self.elsewhere;
        self.elsewhere = next;
        self.rebuild_impairs() | changed
    }

    /// What this node reports to its peers, with generation 0 (the sender stamps it).
    pub fn report(&self) -> Report {
        let world = self.world();
        let endpoints = self
            .endpoints
            .keys()
            .map(|k| (k.clone(), world.half_ready(k, &self.observed)))
            .collect();
        let trunks = self
            .elsewhere
            .trunks
            .iter()
            .map(|(trunk, node)| (trunk, node.clone()));
        let keys = world
            .cross_links()
            .into_iter()
            .map(|(l, _, node)| (&l.key, node))
            .chain(trunks)
            .filter(|(_, node)| self.here.node.as_str() < node.as_str())
            .filter_map(|(key, node)| Some((key.clone(), (node, *self.elsewhere.keys.get(key)?))))
            .collect();
        Report {
            endpoints,
            keys,
            generation: 0,
        }
    }

    /// Whether the report changed since this was last asked, so peers need to hear it.
    pub fn report_changed(&mut self) -> bool {
        let report = self.report();
        let changed = self.last_report.as_ref() != Some(&report);
        self.last_report = Some(report);
        changed
    }

    fn insert_endpoint(&mut self, ep: Endpoint) {
        self.by_container.insert(
            (ep.container_id.clone(), ep.key.ifname.clone()),
            ep.key.clone(),
        );
        self.endpoints.insert(ep.key.clone(), ep);
    }

    fn remove_endpoint(&mut self, key: &EndpointKey) -> Option<Endpoint> {
        let ep = self.endpoints.remove(key)?;
        self.by_container
            .remove(&(ep.container_id.clone(), ep.key.ifname.clone()));
        Some(ep)
    }

    /// Recomputes every link's status; returns the ones that changed.
    pub fn refresh_statuses(&mut self) -> Vec<LinkEvent> {
        self.rebuild_elsewhere();
        let world =
            World::with_impairs(&self.links, &self.endpoints, &self.elsewhere, &self.impairs);
        let mut events = Vec::new();
        let mut next = BTreeMap::new();
        for link in self.links.values() {
            let status = world.status(link, &self.observed);
            if self.statuses.get(&link.key) != Some(&status) {
                events.push(LinkEvent {
                    link: link.clone(),
                    status: status.clone(),
                    removed: false,
                    note: None,
                });
            }
            next.insert(link.key.clone(), status);
        }
        self.statuses = next;
        events
    }

    /// Where this node counts each link it carries (see [`crate::stats`]).
    pub fn counting(&mut self) -> BTreeMap<LinkKey, crate::stats::Counting> {
        self.rebuild_elsewhere();
        self.world().counting()
    }

    /// The plan from what OVS has to what is wanted.
    pub fn plan(&mut self) -> Plan {
        self.rebuild_elsewhere();
        self.world().plan(&self.observed)
    }

    /// The host ends of registered endpoints that OVS has not got (committed ones count as
    /// got): what a plan would add for them now, without planning anything else.
    pub fn missing_endpoint_ports(&self) -> Vec<PortWant> {
        crate::plan::missing_endpoint_ports(&self.endpoints, &self.observed)
    }

    /// Records a plan that OVS accepted as a whole (one atomic bundle) into the observed state.
    pub fn record(&mut self, plan: &Plan) -> Vec<LinkEvent> {
        for f in &plan.del_flows {
            self.observed.flows.remove(&f.key());
        }
        for f in &plan.add_flows {
            self.observed.flows.insert(f.key(), f.clone());
        }
        for s in &plan.port_states {
            if let Some(p) = self.observed.of_ports.get_mut(&s.ofport) {
                p.down = !s.up;
            }
        }
        self.refresh_statuses()
    }

    /// A port's OpenFlow state changed (`None`: the port was deleted), as a PORT_STATUS says.
    /// Call [`Self::refresh_statuses`] once a batch of them is in.
    pub fn port_changed(&mut self, port_no: u32, port: Option<OfPort>) {
        match port {
            Some(p) => {
                self.observed.of_ports.insert(port_no, p);
            }
            None => {
                self.observed.of_ports.remove(&port_no);
            }
        }
    }

    /// Registered endpoints whose veth may be gone, with their host interface names, for the
    /// caller to check against the kernel: their OVS port failed, or OpenFlow shows it as
    /// [`OfPort::maybe_gone`] (the userspace datapath keeps the port of a vanished device).
    pub fn failed_endpoints(&self, observed: &Observed) -> Vec<(EndpointKey, String)> {
        self.endpoints
            .values()
            .filter(
                |e| match observed.ports.get(&e.host_ifname).map(|p| &p.ofport) {
                    Some(OfportState::Failed(_)) => true,
                    Some(OfportState::Assigned(n)) => {
                        observed.of_ports.get(n).is_some_and(OfPort::maybe_gone)
                    }
                    _ => false,
                },
            )
            .map(|e| (e.key.clone(), e.host_ifname.clone()))
            .collect()
    }

    /// Whether the agent has tunnel ports to other nodes, whose BFD sessions are worth reading.
    pub fn has_tunnels(&self) -> bool {
        !self.elsewhere.tunnels.is_empty()
    }

    /// Takes in the BFD state of the agent's tunnel ports, by port name (see
    /// [`crate::plan::ObservedPort::forwarding`]); the events it makes, `None` when nothing
    /// changed.
    pub fn observe_forwarding(
        &mut self,
        forwarding: &BTreeMap<String, Option<bool>>,
    ) -> Option<Vec<LinkEvent>> {
        let mut changed = false;
        for (name, f) in forwarding {
            let f = self.bfd_heard(name, *f);
            if let Some(p) = self.observed.ports.get_mut(name)
                && p.forwarding != f
            {
                p.forwarding = f;
                changed = true;
            }
        }
        changed.then(|| self.refresh_statuses())
    }

    /// What a tunnel's BFD session says, as the planner takes it: `Some(false)` only from a
    /// session that has been up before.
    fn bfd_heard(&mut self, port: &str, forwarding: Option<bool>) -> Option<bool> {
        match forwarding {
            Some(true) => {
                self.bfd_seen_up.insert(port.to_owned());
                Some(true)
            }
            Some(false) if self.bfd_seen_up.contains(port) => Some(false),
            _ => None,
        }
    }

    /// Takes in a fresh observation and drops the endpoints in `gone` (their veth vanished:
    /// the pod is gone).
    pub fn observe(&mut self, observed: Observed, gone: &[EndpointKey]) -> Vec<LinkEvent> {
        for key in gone {
            self.remove_endpoint(key);
        }
        self.take_observed(observed);
        // Ports ovs-vswitchd has not numbered yet stay to be read back once it has.
        let observed = &self.observed.ports;
        self.committed.retain(|n| {
            observed
                .get(n)
                .is_some_and(|p| p.ofport == OfportState::Pending)
        });
        self.refresh_statuses()
    }

    /// The ports the agent committed that no observation has shown numbered yet.
    pub fn committed_ports(&self) -> Vec<String> {
        self.committed.iter().cloned().collect()
    }

    /// Takes in what OVS now says of some of the agent's ports (those it committed, once
    /// ovs-vswitchd applied them): the rest of the observation stands.
    pub fn observe_ports(&mut self, ports: Vec<ObservedPort>) -> Vec<LinkEvent> {
        for mut p in ports {
            if p.ofport != OfportState::Pending {
                self.committed.remove(&p.name);
            }
            p.forwarding = self.bfd_heard(&p.name, p.forwarding);
            self.observed.ports.insert(p.name.clone(), p);
        }
        self.refresh_statuses()
    }

    /// Keeps `observed` as what OVS has, with its tunnels' BFD state as the planner takes it
    /// (see [`Self::bfd_heard`]).
    fn take_observed(&mut self, mut observed: Observed) {
        for (name, p) in &mut observed.ports {
            p.forwarding = self.bfd_heard(name, p.forwarding);
        }
        self.bfd_seen_up
            .retain(|name| observed.ports.contains_key(name));
        self.observed = observed;
    }

    /// The first half of an ADD: the existing attachment when this container's interface is
    /// registered, or a port number held for it and the MTU its veth gets. The MTU is the one
    /// of the link naming the interface; only an interface no link names takes the request's
    /// (the network configuration's) MTU, and [`DEFAULT_MTU`] without one.
    pub fn reserve(&mut self, req: &AttachRequest) -> Result<Reservation, AttachError> {
        let id = (req.container_id.clone(), req.key.ifname.clone());
        if let Some(key) = self.by_container.get(&id)
            && let Some(ep) = self.endpoints.get(key)
        {
            return Ok(Reservation::Existing(attachment_of(ep)));
        }
        if let Some(link) = self.links.values().find(|l| l.is_segment_end(&req.key)) {
            return Err(AttachError::InvalidRequest(format!(
                "{} in lab {} is a LAN segment, not a pod: it has no interfaces to add; rename \
                 the pod or the segment",
                req.key.pod,
                link.key.lab()
            )));
        }
        if self.reserved.contains_key(&id) {
            return Err(AttachError::NotReady(format!(
                "{}:{} is being attached by another request; try again",
                req.key.pod, req.key.ifname
            )));
        }
        let ofport = self.free_ofport().ok_or_else(|| {
            AttachError::Internal(format!(
                "all OpenFlow port numbers {FIRST_OFPORT}-{LAST_OFPORT} are in use"
            ))
        })?;
        let mtu = self
            .links
            .values()
            .find(|l| l.key.peer_of(&req.key).is_some())
            .map(|l| l.mtu)
            .or(req.mtu)
            .unwrap_or(DEFAULT_MTU);
        // Two sandboxes racing for one endpoint: the later request is the pod's live sandbox
        // (a runtime makes a new one after the old one died), whichever veth is made first.
        for (other, (key, _)) in &self.reserved {
            if *key == req.key {
                self.cancelled.insert(
                    other.clone(),
                    format!(
                        "a newer sandbox ({}) asked for {}:{} while this ADD was made; its \
                         interface is removed",
                        req.container_id, req.key.pod, req.key.ifname
                    ),
                );
            }
        }
        self.reserved.insert(id, (req.key.clone(), ofport));
        let ep = Endpoint {
            key: req.key.clone(),
            container_id: req.container_id.clone(),
            netns: req.netns.clone(),
            host_ifname: host_ifname(&req.container_id, &req.key.ifname),
            ofport,
            mtu,
            network: req.network.clone(),
        };
        Ok(Reservation::New {
            ofport,
            attachment: attachment_of(&ep),
        })
    }

    /// The second half of an ADD: releases the reservation and, when the veth pair of
    /// `attachment` was `created`, registers the endpoint with port number `ofport` (replacing
    /// one of an older sandbox of the same pod). Returns the endpoint it replaced, whose host
    /// interface the caller removes (the old sandbox's interface goes with it). Fails, when the
    /// pair was made, if the ADD was cancelled meanwhile (a DEL of its sandbox, or a newer
    /// sandbox's ADD for the same endpoint): the caller removes the pair it made.
    pub fn complete_attach(
        &mut self,
        attachment: &Attachment,
        ofport: u32,
        created: Result<(), AttachError>,
    ) -> Result<Option<Endpoint>, AttachError> {
        let id = (
            attachment.container_id.clone(),
            attachment.key.ifname.clone(),
        );
        self.reserved.remove(&id);
        let cancelled = self.cancelled.remove(&id);
        created?;
        if let Some(why) = cancelled {
            return Err(AttachError::NotReady(why));
        }
        let replaced = self.remove_endpoint(&attachment.key);
        self.insert_endpoint(Endpoint {
            key: attachment.key.clone(),
            container_id: attachment.container_id.clone(),
            netns: attachment.netns.clone(),
            host_ifname: attachment.host_ifname.clone(),
            ofport,
            mtu: attachment.mtu,
            network: attachment.network.clone(),
        });
        Ok(replaced)
    }

    /// A DEL: forgets the container's interface; returns the host interface to delete (the
    /// derived name when nothing was registered, so a repeated DEL still cleans up) and the
    /// events (its link is pending from now on, before its flows are even gone).
    pub fn detach(&mut self, container_id: &str, ifname: &str) -> (String, Vec<LinkEvent>) {
        let id = (container_id.to_owned(), ifname.to_owned());
        if self.reserved.contains_key(&id) {
            // Its ADD is being made: it must not register when it completes.
            self.cancelled.insert(
                id.clone(),
                "the sandbox was deleted while this ADD was made; its interface is removed".into(),
            );
        }
        let key = self.by_container.get(&id).cloned();
        match key.and_then(|k| self.remove_endpoint(&k)) {
            Some(ep) => (ep.host_ifname, self.refresh_statuses()),
            None => (host_ifname(container_id, ifname), Vec::new()),
        }
    }

    /// The registered attachment of a container's interface.
    pub fn attachment(&self, container_id: &str, ifname: &str) -> Option<Attachment> {
        let key = self
            .by_container
            .get(&(container_id.to_owned(), ifname.to_owned()))?;
        self.endpoints.get(key).map(attachment_of)
    }

    /// Whether the OVS port of the endpoint with host interface `host_ifname` is in OVSDB with
    /// the number asked for: then the endpoint survives a restart of the agent.
    pub fn persisted(&self, host_ifname: &str) -> bool {
        let wanted = self
            .endpoints
            .values()
            .find(|e| e.host_ifname == host_ifname)
            .map(|e| e.ofport);
        let observed = self
            .observed
            .ports
            .get(host_ifname)
            .is_some_and(|p| p.ofport_request.is_some() && p.ofport_request == wanted);
        observed || (wanted.is_some() && self.committed.contains(host_ifname))
    }

    /// Records an OVSDB transaction of the agent's as committed: the ports of `added` are in
    /// OVSDB with the numbers the planner asked for (pending until ovs-vswitchd numbers them
    /// and an observation shows it), the ports of `deleted` are gone. The next plans build on
    /// this without waiting for ovs-vswitchd.
    pub fn committed(&mut self, added: &[PortWant], deleted: &[String]) {
        for name in deleted {
            self.observed.ports.remove(name);
            self.committed.remove(name);
        }
        for p in added {
            self.committed.insert(p.name.clone());
            self.observed.ports.insert(
                p.name.clone(),
                ObservedPort {
                    name: p.name.clone(),
                    ofport_request: Some(p.ofport),
                    ofport: OfportState::Pending,
                    external_ids: p.external_ids.clone(),
                    bfd: p.bfd.clone(),
                    forwarding: None,
                },
            );
        }
    }

    /// Every registered (container id, interface name).
    pub fn attachments(&self, network: &str) -> Vec<(String, String)> {
        self.by_container
            .iter()
            .filter(|(_, key)| {
                self.endpoints
                    .get(*key)
                    .is_some_and(|e| e.network.is_empty() || e.network == network)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The peer nodes known, with their underlay addresses when known.
    pub fn peers(&self) -> BTreeMap<String, Option<String>> {
        self.peers
            .iter()
            .map(|(n, v)| (n.clone(), v.underlay_ip.clone()))
            .collect()
    }

    /// Adds or moves a peer node; whether its address changed.
    pub fn set_peer_address(&mut self, node: &str, underlay_ip: Option<String>) -> bool {
        let view = self.peers.entry(node.to_owned()).or_default();
        let changed = view.underlay_ip != underlay_ip;
        view.underlay_ip = underlay_ip;
        changed
    }

    /// Checks a report's generation against the last one heard from `node`: the high 32 bits
    /// (the sender's incarnation, one more per start of its agent) may not leap more than
    /// [`MAX_INCARNATION_LEAP`] ahead, or one report would make every later one look old.
    pub fn check_generation(&self, node: &str, generation: u64) -> Result<(), String> {
        let Some(last) = self
            .peers
            .get(node)
            .filter(|v| v.heard)
            .map(|v| v.generation)
        else {
            return Ok(());
        };
        if (generation >> 32) > (last >> 32) + MAX_INCARNATION_LEAP {
            return Err(format!(
                "generation {generation:#x} of node {node} leaps far beyond the last one heard \
                 ({last:#x}); a report's generation is its agent's incarnation and a counter"
            ));
        }
        Ok(())
    }

    /// Takes in a peer's report. `None` when it changes nothing: it is this node's own, older
    /// than one already taken, or the same as the last; otherwise the events it causes (the
    /// wiring needs a new plan).
    pub fn absorb_peer(&mut self, node: &str, mut view: PeerView) -> Option<Vec<LinkEvent>> {
        if node == self.here.node {
            return None;
        }
        view.heard = true;
        let entry = self.peers.entry(node.to_owned()).or_default();
        if entry.heard && view.generation < entry.generation {
            return None;
        }
        // Where a node's tunnel goes is this node's to know (configured, or its Node object),
        // never what a report says.
        view.underlay_ip = entry.underlay_ip.clone();
        let changed = *entry != view;
        *entry = view;
        (changed && self.rebuild_elsewhere()).then(|| self.refresh_statuses())
    }

    fn has_local_end(&self, key: &LinkKey) -> bool {
        self.endpoints.contains_key(key.a()) || self.endpoints.contains_key(key.b())
    }

    /// The node holding the far end of `key` when that end is on another node.
    pub fn far_node(&self, key: &LinkKey) -> Option<String> {
        [key.a(), key.b()]
            .into_iter()
            .find(|e| !self.endpoints.contains_key(*e))
            .and_then(|e| self.elsewhere.endpoints.get(e))
            .filter(|_| self.has_local_end(key))
            .map(|r| r.node.clone())
    }

    /// Where a link's ends are and what it carries: a cross-node link carries at most the
    /// smaller underlay MTU of its two nodes less [`VXLAN_OVERHEAD`].
    pub fn link_info(&self, spec: &LinkSpec) -> LinkInfo {
        let at = |e: &EndpointKey| {
            // A segment is wherever its members are; locally, here.
            if self.endpoints.contains_key(e) || spec.is_segment_end(e) {
                self.here.node.clone()
            } else {
                self.elsewhere
                    .endpoints
                    .get(e)
                    .map(|r| r.node.clone())
                    .unwrap_or_default()
            }
        };
        let mut info = LinkInfo {
            node_a: at(spec.key.a()),
            node_b: at(spec.key.b()),
            tunnel_key: self.elsewhere.keys.get(&spec.key).copied(),
            effective_mtu: spec.mtu,
            mtu_note: None,
        };
        let Some(far) = [spec.key.a(), spec.key.b()]
            .into_iter()
            .find_map(|e| self.elsewhere.endpoints.get(e))
            .filter(|_| self.has_local_end(&spec.key))
        else {
            return info;
        };
        let peer_mtu = self.peers.get(&far.node).map_or(0, |v| v.underlay_mtu);
        let limits = [
            (self.here.underlay_mtu, self.here.node.as_str()),
            (peer_mtu, far.node.as_str()),
        ];
        for (underlay, node) in limits {
            if underlay > VXLAN_OVERHEAD && underlay - VXLAN_OVERHEAD < info.effective_mtu {
                info.effective_mtu = underlay - VXLAN_OVERHEAD;
                info.mtu_note = Some(format!(
                    "frames over {} bytes are dropped: the underlay MTU of node {node} is \
                     {underlay} and VXLAN adds {VXLAN_OVERHEAD}; raise the underlay MTU to \
                     {} or lower the link's MTU",
                    info.effective_mtu,
                    spec.mtu + VXLAN_OVERHEAD
                ));
            }
        }
        info
    }

    /// Replaces the wanted links with a new set from the topology source (a live edit). Links
    /// that stay keep their admin state unless the source changed it (the Wires API may have
    /// set it); a new link recorded down in OVSDB at start stays down. `None` when the wanted
    /// links did not change; otherwise the events: removed links first, then status changes.
    pub fn set_links(&mut self, links: BTreeMap<LinkKey, LinkSpec>) -> Option<Vec<LinkEvent>> {
        let mut next = BTreeMap::new();
        for (key, spec) in &links {
            let mut spec = spec.clone();
            let source = self.source_links.get(key);
            match self.links.get(key) {
                Some(cur) => {
                    if source.map(|p| p.admin) == Some(spec.admin) {
                        spec.admin = cur.admin;
                    }
                    if source.map(|p| p.impair) == Some(spec.impair) {
                        spec.impair = cur.impair;
                    }
                }
                None => {
                    if self.persisted_down.contains(&key.to_string()) {
                        spec.admin = AdminState::Down;
                    }
                    if let Some(imp) = self.persisted_impair.get(&key.to_string()) {
                        spec.impair = *imp;
                    }
                }
            }
            next.insert(key.clone(), spec);
        }
        let mut events: Vec<LinkEvent> = self
            .links
            .values()
            .filter(|l| !next.contains_key(&l.key))
            .map(|l| LinkEvent {
                link: l.clone(),
                status: OperState::Pending("removed from the topology".into()),
                removed: true,
                note: None,
            })
            .collect();
        self.source_links = links;
        if next == self.links && events.is_empty() {
            return None;
        }
        let impaired: Vec<LinkSpec> = next
            .values()
            .filter(|l| self.links.get(&l.key).is_some_and(|c| c.impair != l.impair))
            .cloned()
            .collect();
        self.links = next;
        events.extend(self.refresh_statuses());
        events.extend(impaired.into_iter().map(|l| self.impair_event(l)));
        Some(events)
    }

    /// Sets a wanted link's impairments; the event it makes (the link's state, noted with the
    /// new impairments), `None` when `key` is not wanted. Only the path of the impaired
    /// directions changes: the link keeps carrier.
    pub fn set_impair(&mut self, key: &LinkKey, impair: LinkImpairment) -> Option<LinkEvent> {
        let link = self.links.get_mut(key)?;
        link.impair = impair;
        let link = link.clone();
        self.rebuild_impairs();
        Some(self.impair_event(link))
    }

    fn impair_event(&self, link: LinkSpec) -> LinkEvent {
        let status = self
            .statuses
            .get(&link.key)
            .cloned()
            .unwrap_or_else(|| OperState::Pending("not planned yet".into()));
        LinkEvent {
            note: Some(format!("impairment: {}", link.impair)),
            link,
            status,
            removed: false,
        }
    }

    /// Sets a wanted link's admin state; the link as it is now, `None` when `key` is not
    /// wanted.
    pub fn set_admin(&mut self, key: &LinkKey, admin: AdminState) -> Option<LinkSpec> {
        let link = self.links.get_mut(key)?;
        link.admin = admin;
        Some(link.clone())
    }
}

#[cfg(test)]
mod tests;
