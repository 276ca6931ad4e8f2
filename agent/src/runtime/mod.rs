//! The running agent: shared state, the reconcile loop, and the [`Attacher`] the CNI layer
//! calls. Everything it decides comes from [`ovswire_core::plan`]; this module only moves data
//! between OVS, the kernel and that planner.

pub mod args;
pub mod kube;
pub mod ovs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tracing::{debug, info, warn};

use crate::netdev::{Netdev, NetdevError, VethSpec};
use ovs::Ovs;
use ovswire_core::attach::{AttachError, AttachRequest, Attacher, Attachment};
use ovswire_core::model::{AdminState, DEFAULT_MTU, EndpointKey, LinkKey, LinkSpec};
use ovswire_core::naming::{FIRST_OFPORT, LAST_OFPORT, host_ifname};
use ovswire_core::peers::{self, Here, PeerView};
use ovswire_core::plan::{Elsewhere, Endpoint, LinkStatus, Observed, OfportState, Plan, World};

/// What the reconcile loop does after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Nothing left: wait for a change.
    Done,
    /// Read OVS again, then plan (OVSDB changed: new ports have their numbers now).
    Observe,
    /// Plan again from the recorded state.
    Replan,
}

/// A change in a link's state, for watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// The link.
    pub link: LinkSpec,
    /// Its state now.
    pub status: LinkStatus,
    /// The link left the topology.
    pub removed: bool,
}

#[derive(Debug, Default)]
struct State {
    links: BTreeMap<LinkKey, LinkSpec>,
    endpoints: BTreeMap<EndpointKey, Endpoint>,
    /// (container id, ifname) → endpoint, for CNI lookups.
    by_container: BTreeMap<(String, String), EndpointKey>,
    /// Endpoints whose veth is being created: their ofport and name are taken.
    reserved: BTreeMap<(String, String), (EndpointKey, u32)>,
    observed: Observed,
    statuses: BTreeMap<LinkKey, LinkStatus>,
    ready: bool,
    /// This node among its peers.
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
}

/// What this node tells a peer: its endpoints with the readiness of their cross-node half, and
/// the keys it chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every local endpoint, and whether its half of a cross-node wire is in place.
    pub endpoints: BTreeMap<EndpointKey, bool>,
    /// Keys this node chose, with the node at the link's far end.
    pub keys: BTreeMap<LinkKey, (String, u32)>,
    /// Grows with every report (wall-clock nanoseconds, kept strictly increasing), so peers
    /// can drop a report that arrives after a newer one.
    pub generation: u64,
}

/// The generation for a new report: the clock, or one more than the last when the clock has
/// not moved on.
fn next_generation(last: &std::sync::atomic::AtomicU64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut prev = last.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match last.compare_exchange(
            prev,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// Where a link's ends are and what it can carry, for status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// The node of each end (empty while unknown).
    pub node_a: String,
    /// See `node_a`.
    pub node_b: String,
    /// The VXLAN key of a cross-node link.
    pub tunnel_key: Option<u32>,
    /// The largest payload the wire carries end to end.
    pub effective_mtu: u32,
    /// Why `effective_mtu` is below the link's MTU.
    pub mtu_note: Option<String>,
}

/// Bytes VXLAN over IPv4 adds to a frame's payload on the underlay: outer IPv4 (20), UDP (8),
/// VXLAN (8) and the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;

impl State {
    fn world(&self) -> World<'_> {
        World::new(&self.links, &self.endpoints, &self.elsewhere)
    }

    fn used_ofports(&self) -> BTreeSet<u32> {
        self.endpoints
            .values()
            .map(|e| e.ofport)
            .chain(self.reserved.values().map(|(_, p)| *p))
            .chain(self.elsewhere.tunnels.values().map(|t| t.ofport))
            .chain(
                self.observed
                    .ports
                    .values()
                    .filter_map(|p| p.ofport_request),
            )
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
        changed
    }

    /// What this node reports, without a generation (see [`Agent::report`]).
    fn report(&self) -> Report {
        let world = self.world();
        let endpoints = self
            .endpoints
            .keys()
            .map(|k| (k.clone(), world.half_ready(k, &self.observed)))
            .collect();
        let keys = world
            .cross_links()
            .into_iter()
            .filter(|(_, _, node)| self.here.node.as_str() < node.as_str())
            .filter_map(|(l, _, node)| {
                Some((l.key.clone(), (node, *self.elsewhere.keys.get(&l.key)?)))
            })
            .collect();
        Report {
            endpoints,
            keys,
            generation: 0,
        }
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
    fn refresh_statuses(&mut self) -> Vec<LinkEvent> {
        self.rebuild_elsewhere();
        let world = World::new(&self.links, &self.endpoints, &self.elsewhere);
        let mut events = Vec::new();
        let mut next = BTreeMap::new();
        for link in self.links.values() {
            let status = world.status(link, &self.observed);
            if self.statuses.get(&link.key) != Some(&status) {
                events.push(LinkEvent {
                    link: link.clone(),
                    status: status.clone(),
                    removed: false,
                });
            }
            next.insert(link.key.clone(), status);
        }
        self.statuses = next;
        events
    }
}

fn key_has_local_end(st: &State, key: &LinkKey) -> bool {
    st.endpoints.contains_key(key.a()) || st.endpoints.contains_key(key.b())
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Open vSwitch could not be set up or read.
    #[error(transparent)]
    Ovs(#[from] ovs::OvsError),
    /// Netlink is not available.
    #[error("netlink: {0}")]
    Netdev(#[from] NetdevError),
}

/// Settings of a running agent.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bridge and where its management socket lives.
    pub bridge: ovs::BridgeConfig,
    /// This node's name and underlay.
    pub here: Here,
    /// Peer nodes known from the start, with their underlay addresses.
    pub peers: BTreeMap<String, String>,
}

/// Locally administered MACs derived from the container and interface, so a record rebuilt
/// after a restart names the same addresses.
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

/// The running agent, shared by the gRPC services and the reconcile loop.
#[derive(Debug)]
pub struct Agent {
    ovs: tokio::sync::RwLock<Ovs>,
    netdev: Netdev,
    state: Mutex<State>,
    wake: Notify,
    /// Completed reconcile rounds, so callers can wait for their change to be applied.
    rounds: watch::Sender<u64>,
    requested: std::sync::atomic::AtomicU64,
    /// Plans sent to OVS since start (each one OVSDB transaction and/or one bundle).
    applied: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<LinkEvent>,
    /// Woken when what this node reports to its peers changed.
    peer_wake: Notify,
    /// The generation of the last report sent.
    generation: std::sync::atomic::AtomicU64,
    /// The agent itself, so work that must finish even when its caller goes away (a CNI
    /// request cancelled mid-ADD) can run in its own task.
    me: std::sync::Weak<Self>,
}

impl Agent {
    /// Connects to OVS, adopts what a previous run left (ports, flows and link states stay as
    /// they are), and returns the agent with the OpenFlow event stream to feed to [`Self::run`].
    pub async fn start(
        db: ovswire_ovsdb::Client,
        config: Config,
        links: BTreeMap<LinkKey, LinkSpec>,
    ) -> Result<(Arc<Self>, ovswire_openflow::conn::Events), StartError> {
        let (ovs, events) = Ovs::connect(db, config.bridge).await?;
        let netdev = Netdev::new()?;
        let mut state = State {
            links,
            ..State::default()
        };
        state.source_links = state.links.clone();
        for name in ovs.admin_down_links().await? {
            if let Some(link) = state.links.values_mut().find(|l| l.key.to_string() == name) {
                link.admin = AdminState::Down;
            }
            state.persisted_down.insert(name);
        }
        let observed = ovs.observe().await?;
        for port in observed.ports.values() {
            let Some(ofport) = port.ofport_request else {
                continue;
            };
            if let Some(ep) = Endpoint::from_external_ids(&port.name, ofport, &port.external_ids) {
                state.insert_endpoint(ep);
            }
        }
        info!(
            endpoints = state.endpoints.len(),
            links = state.links.len(),
            "adopted existing state"
        );
        let (peers, elsewhere) =
            peers::adopt(&config.here, &state.links, &state.endpoints, &observed);
        state.peers = peers;
        for (node, ip) in &config.peers {
            state.peers.entry(node.clone()).or_default().underlay_ip = Some(ip.clone());
        }
        state.elsewhere = elsewhere;
        state.here = config.here.clone();
        state.observed = observed;
        state.refresh_statuses();
        state.last_report = Some(state.report());
        state.ready = true;
        let agent = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            ovs: tokio::sync::RwLock::new(ovs),
            netdev,
            state: Mutex::new(state),
            wake: Notify::new(),
            rounds: watch::channel(0).0,
            requested: 0.into(),
            applied: 0.into(),
            events: broadcast::channel(1024).0,
            peer_wake: Notify::new(),
            generation: 0.into(),
        });
        Ok((agent, events))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a reconcile round; returns its number, for [`Self::wait_round`].
    pub fn kick(&self) -> u64 {
        let n = self
            .requested
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.wake.notify_one();
        n
    }

    /// Waits until round `n` (or a later one) has been applied.
    pub async fn wait_round(&self, n: u64, timeout: Duration) -> bool {
        let mut rx = self.rounds.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|done| *done >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many plans the agent has sent to OVS since it started; zero after a restart that
    /// found everything in place.
    pub fn plans_applied(&self) -> u64 {
        self.applied.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Subscribes to link state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.events.subscribe()
    }

    /// Every link with its state.
    pub fn links(&self) -> Vec<(LinkSpec, LinkStatus)> {
        let st = self.state();
        st.links
            .values()
            .map(|l| {
                let status = st.statuses.get(&l.key).cloned();
                (
                    l.clone(),
                    status.unwrap_or_else(|| LinkStatus::Pending("not planned yet".into())),
                )
            })
            .collect()
    }

    /// This node's name and underlay.
    pub fn here(&self) -> Here {
        self.state().here.clone()
    }

    /// What this node reports to its peers now, with a fresh generation.
    pub fn report(&self) -> Report {
        let st = self.state();
        let mut report = st.report();
        report.generation = next_generation(&self.generation);
        report
    }

    /// Resolves when what this node reports may have changed.
    pub async fn report_changed(&self) {
        self.peer_wake.notified().await;
    }

    /// The peer nodes known, with their underlay addresses when known.
    pub fn peers(&self) -> BTreeMap<String, Option<String>> {
        self.state()
            .peers
            .iter()
            .map(|(n, v)| (n.clone(), v.underlay_ip.clone()))
            .collect()
    }

    /// Adds or moves a peer node (from configuration or discovery).
    pub fn set_peer_address(&self, node: &str, underlay_ip: Option<String>) {
        let changed = {
            let mut st = self.state();
            let view = st.peers.entry(node.to_owned()).or_default();
            let changed = view.underlay_ip != underlay_ip;
            view.underlay_ip = underlay_ip;
            changed
        };
        if changed {
            self.kick();
            self.peer_wake.notify_one();
        }
    }

    /// Takes in a peer's report; replans when it changes anything.
    pub fn absorb_peer(&self, node: &str, mut view: PeerView) {
        let changed = {
            let mut st = self.state();
            if node == st.here.node {
                return;
            }
            view.heard = true;
            let entry = st.peers.entry(node.to_owned()).or_default();
            if entry.heard && view.generation < entry.generation {
                debug!(
                    peer = node,
                    "dropping a report older than one already taken"
                );
                return;
            }
            if view.underlay_ip.is_none() {
                view.underlay_ip = entry.underlay_ip.clone();
            }
            let changed = *entry != view;
            *entry = view;
            changed && st.rebuild_elsewhere()
        };
        if changed {
            let events = self.state().refresh_statuses();
            self.publish(events);
            self.kick();
        }
    }

    /// A peer stopped answering: its endpoints are gone until it reports again, so the wires
    /// to it lose carrier here.
    pub fn peer_lost(&self, node: &str) {
        let changed = {
            let mut st = self.state();
            let Some(view) = st.peers.get_mut(node) else {
                return;
            };
            if view.endpoints.is_empty() {
                return;
            }
            warn!(peer = node, "peer unreachable; its wires lose carrier here");
            view.endpoints.clear();
            st.rebuild_elsewhere()
        };
        if changed {
            let events = self.state().refresh_statuses();
            self.publish(events);
            self.kick();
        }
    }

    /// The node holding the far end of `key` when that end is on another node.
    pub fn far_node(&self, key: &LinkKey) -> Option<String> {
        let st = self.state();
        [key.a(), key.b()]
            .into_iter()
            .find(|e| !st.endpoints.contains_key(*e))
            .and_then(|e| st.elsewhere.endpoints.get(e))
            .filter(|_| key_has_local_end(&st, key))
            .map(|r| r.node.clone())
    }

    /// Where a link's ends are and what it carries.
    pub fn link_info(&self, spec: &LinkSpec) -> LinkInfo {
        let st = self.state();
        let at = |e: &EndpointKey| {
            if st.endpoints.contains_key(e) {
                st.here.node.clone()
            } else {
                st.elsewhere
                    .endpoints
                    .get(e)
                    .map(|r| r.node.clone())
                    .unwrap_or_default()
            }
        };
        let (node_a, node_b) = (at(spec.key.a()), at(spec.key.b()));
        let mut info = LinkInfo {
            node_a,
            node_b,
            tunnel_key: st.elsewhere.keys.get(&spec.key).copied(),
            effective_mtu: spec.mtu,
            mtu_note: None,
        };
        let Some(far) = [spec.key.a(), spec.key.b()]
            .into_iter()
            .find_map(|e| st.elsewhere.endpoints.get(e))
            .filter(|_| key_has_local_end(&st, &spec.key))
        else {
            return info;
        };
        let peer_mtu = st.peers.get(&far.node).map_or(0, |v| v.underlay_mtu);
        let limits = [
            (st.here.underlay_mtu, st.here.node.as_str()),
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

    /// Replaces the wanted links with a new set from the topology source (a live edit): links
    /// that stay keep their wiring, and their admin state unless the source changed it; new
    /// links are wired as their ends register; removed links are unwired. Nothing else is
    /// touched.
    pub fn set_links(&self, links: BTreeMap<LinkKey, LinkSpec>) {
        let events = {
            let mut st = self.state();
            let mut next = BTreeMap::new();
            for (key, spec) in &links {
                let mut spec = spec.clone();
                match st.links.get(key) {
                    // The source did not change its admin state: keep the current one, which
                    // the Wires API may have set.
                    Some(cur) if st.source_links.get(key).map(|p| p.admin) == Some(spec.admin) => {
                        spec.admin = cur.admin;
                    }
                    Some(_) => {}
                    None if st.persisted_down.contains(&key.to_string()) => {
                        spec.admin = AdminState::Down;
                    }
                    None => {}
                }
                next.insert(key.clone(), spec);
            }
            let removed: Vec<LinkEvent> = st
                .links
                .values()
                .filter(|l| !next.contains_key(&l.key))
                .map(|l| LinkEvent {
                    link: l.clone(),
                    status: LinkStatus::Pending("removed from the topology".into()),
                    removed: true,
                })
                .collect();
            if next == st.links && removed.is_empty() {
                st.source_links = links;
                return;
            }
            info!(
                links = next.len(),
                removed = removed.len(),
                "topology changed"
            );
            st.source_links = links;
            st.links = next;
            let mut events = removed;
            events.extend(st.refresh_statuses());
            events
        };
        self.publish(events);
        self.kick();
    }

    /// Sets a link's admin state, records it in OVSDB, and waits until OVS has it.
    pub async fn set_admin(&self, key: &LinkKey, admin: AdminState) -> Result<LinkSpec, String> {
        {
            let st = self.state();
            if !st.links.contains_key(key) {
                return Err(format!("no link {key} in the topology"));
            }
        }
        self.ovs
            .read()
            .await
            .set_admin_down(&key.to_string(), admin == AdminState::Down)
            .await
            .map_err(|e| format!("cannot record the link state in OVSDB: {e}"))?;
        let spec = {
            let mut st = self.state();
            let link = st
                .links
                .get_mut(key)
                .ok_or_else(|| format!("no link {key}"))?;
            link.admin = admin;
            link.clone()
        };
        let round = self.kick();
        if !self.wait_round(round, Duration::from_secs(30)).await {
            return Err(format!(
                "link {key}: OVS did not apply the change within 30 s"
            ));
        }
        Ok(spec)
    }

    /// The reconcile loop: runs until the process ends, applying one plan per round and
    /// re-reading OVS after changes. `events` is the OpenFlow connection's async stream: a
    /// PORT_STATUS means the kernel or OVS changed a port, and the stream ending means the
    /// connection died (ovs-vswitchd restarted), after which the loop reconnects and replays.
    pub async fn run(self: Arc<Self>, mut events: ovswire_openflow::conn::Events) {
        let mut backoff = Duration::from_millis(50);
        let mut dirty = true;
        loop {
            let requested = self.requested.load(std::sync::atomic::Ordering::SeqCst);
            match self.round(dirty).await {
                Ok(next) => {
                    backoff = Duration::from_millis(50);
                    dirty = next == Next::Observe;
                    if next != Next::Done {
                        continue;
                    }
                    self.rounds.send_replace(requested);
                }
                Err(e) => {
                    warn!(error = %e, "reconcile failed; retrying");
                    dirty = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    if self.ovs.read().await.flow().is_closed() {
                        match self.ovs.write().await.reconnect_flow().await {
                            Ok(ev) => {
                                info!("reconnected to the bridge; replaying flows");
                                events = ev;
                            }
                            Err(e) => warn!(error = %e, "cannot reconnect to the bridge yet"),
                        }
                    }
                    continue;
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                ev = events.recv() => match ev {
                    Some(frame) => {
                        // Take every event already queued: one round answers them all.
                        let mut frames = vec![frame];
                        while let Some(more) = events.try_recv() {
                            frames.push(more);
                        }
                        dirty |= self.absorb_events(&frames);
                    }
                    None => {
                        warn!("OpenFlow connection to the bridge lost");
                        dirty = true;
                        loop {
                            match self.ovs.write().await.reconnect_flow().await {
                                Ok(ev) => { events = ev; break; }
                                Err(e) => {
                                    debug!(error = %e, "bridge not back yet");
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            }
                        }
                        info!("reconnected to the bridge; replaying flows");
                    }
                },
            }
        }
    }

    /// Applies PORT_STATUS messages to the observed OpenFlow ports, so a round needs no new
    /// port dump; returns whether a full observation is needed (a port of the agent vanished,
    /// or a message it does not follow arrived).
    fn absorb_events(&self, frames: &[ovswire_openflow::Frame]) -> bool {
        use ovswire_openflow::Message;
        use ovswire_openflow::msg::PortReason;
        let mut observe = false;
        let events = {
            let mut st = self.state();
            for frame in frames {
                let Message::PortStatus(ps) = &frame.message else {
                    debug!(msg_type = frame.message.msg_type(), "OpenFlow event");
                    observe = true;
                    continue;
                };
                let port = &ps.port;
                if ps.reason == PortReason::Delete {
                    st.observed.of_ports.remove(&port.port_no);
                    // OVSDB now shows the port as failed: the pod may be gone.
                    observe = true;
                } else {
                    st.observed.of_ports.insert(
                        port.port_no,
                        ovswire_core::plan::OfPort {
                            mac: port.hw_addr.0,
                            down: port.config
                                & ovswire_openflow::types::port_config::OFPPC_PORT_DOWN
                                != 0,
                        },
                    );
                }
            }
            st.refresh_statuses()
        };
        self.publish(events);
        observe
    }

    /// One round: observe if needed, plan, apply. Says what the next round needs.
    async fn round(&self, observe: bool) -> Result<Next, ovs::OvsError> {
        let ovs = self.ovs.read().await.clone();
        if observe {
            let observed = ovs.observe().await?;
            self.absorb(observed).await;
        }
        let plan = {
            let mut st = self.state();
            st.rebuild_elsewhere();
            st.world().plan(&st.observed)
        };
        if plan.is_empty() {
            self.report_changes();
            return Ok(Next::Done);
        }
        debug!(
            add_ports = plan.add_ports.len(),
            del_ports = plan.del_ports.len(),
            add_flows = plan.add_flows.len(),
            del_flows = plan.del_flows.len(),
            port_states = plan.port_states.len(),
            "applying plan"
        );
        self.applied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ovs.apply(&plan).await?;
        if plan.touches_ovsdb() {
            // New ports got their OpenFlow numbers; read them back and plan again.
            return Ok(Next::Observe);
        }
        self.record(&plan);
        self.report_changes();
        // New flows can complete a wire whose host ends may now come up: plan once more from
        // what was just recorded (an empty plan ends the rounds).
        Ok(if plan.add_flows.is_empty() && plan.del_flows.is_empty() {
            Next::Done
        } else {
            Next::Replan
        })
    }

    /// Wakes the peer exchange when what this node reports changed.
    fn report_changes(&self) {
        let changed = {
            let mut st = self.state();
            let report = st.report();
            let changed = st.last_report.as_ref() != Some(&report);
            st.last_report = Some(report);
            changed
        };
        if changed {
            self.peer_wake.notify_one();
        }
    }

    /// Takes in a fresh observation: drops endpoints whose veth vanished (the pod is gone),
    /// then publishes status changes.
    async fn absorb(&self, observed: Observed) {
        let failed: Vec<(EndpointKey, String)> = {
            let st = self.state();
            st.endpoints
                .values()
                .filter(|e| {
                    matches!(
                        observed.ports.get(&e.host_ifname).map(|p| &p.ofport),
                        Some(OfportState::Failed(_))
                    )
                })
                .map(|e| (e.key.clone(), e.host_ifname.clone()))
                .collect()
        };
        let mut gone = Vec::new();
        for (key, host) in failed {
            if !self.netdev.exists(&host).await.unwrap_or(true) {
                gone.push(key);
            }
        }
        let events = {
            let mut st = self.state();
            for key in gone {
                info!(endpoint = %key, "pod interface is gone; unwiring it");
                st.remove_endpoint(&key);
            }
            st.observed = observed;
            st.refresh_statuses()
        };
        self.publish(events);
    }

    /// Records a plan that OVS accepted as a whole (one atomic bundle) into the observed state.
    fn record(&self, plan: &Plan) {
        let events = {
            let mut st = self.state();
            for f in &plan.del_flows {
                st.observed.flows.remove(&f.key());
            }
            for f in &plan.add_flows {
                st.observed.flows.insert(f.key(), *f);
            }
            for s in &plan.port_states {
                if let Some(p) = st.observed.of_ports.get_mut(&s.ofport) {
                    p.down = !s.up;
                }
            }
            st.refresh_statuses()
        };
        self.publish(events);
    }

    fn publish(&self, events: Vec<LinkEvent>) {
        for ev in events {
            info!(link = %ev.link.key, status = ?ev.status, "link state");
            let _ = self.events.send(ev);
        }
    }

    /// Creates the veth pair for a reserved `(container, ifname)` and registers the endpoint;
    /// the reservation is released whatever happens.
    async fn create_endpoint(
        &self,
        req: AttachRequest,
        ofport: u32,
        mtu: u32,
    ) -> Result<Attachment, AttachError> {
        let id = (req.container_id.clone(), req.key.ifname.clone());
        let host = host_ifname(&req.container_id, &req.key.ifname);
        let (host_mac, pod_mac) = macs(&req.container_id, &req.key.ifname);
        let created = self
            .netdev
            .create_veth(&VethSpec {
                host: &host,
                host_mac,
                netns: &req.netns,
                ifname: &req.key.ifname,
                pod_mac,
                mtu,
            })
            .await;
        let mut st = self.state();
        st.reserved.remove(&id);
        created.map_err(|e| match e {
            NetdevError::Netns { .. } => AttachError::Netns(e.to_string()),
            NetdevError::Exists { .. } => AttachError::Exists(e.to_string()),
            other => AttachError::Internal(other.to_string()),
        })?;
        let ep = Endpoint {
            key: req.key.clone(),
            container_id: req.container_id.clone(),
            netns: req.netns.display().to_string(),
            host_ifname: host,
            ofport,
            mtu,
        };
        let attachment = Self::attachment_of(&ep);
        if let Some(old) = st.remove_endpoint(&req.key) {
            info!(endpoint = %req.key, old = %old.container_id, new = %req.container_id, "replacing the pod's interface");
        }
        st.insert_endpoint(ep);
        drop(st);
        self.kick();
        Ok(attachment)
    }

    /// The attachment record for an endpoint.
    fn attachment_of(ep: &Endpoint) -> Attachment {
        let (host_mac, pod_mac) = macs(&ep.container_id, &ep.key.ifname);
        Attachment {
            key: ep.key.clone(),
            container_id: ep.container_id.clone(),
            netns: PathBuf::from(&ep.netns),
            host_ifname: ep.host_ifname.clone(),
            host_mac,
            pod_mac,
            mtu: ep.mtu,
        }
    }
}

impl Attacher for Agent {
    async fn attach(&self, req: AttachRequest) -> Result<Attachment, AttachError> {
        let id = (req.container_id.clone(), req.key.ifname.clone());
        let (ofport, mtu) = {
            let mut st = self.state();
            if let Some(key) = st.by_container.get(&id)
                && let Some(ep) = st.endpoints.get(key)
            {
                return Ok(Self::attachment_of(ep));
            }
            if st.reserved.contains_key(&id) {
                return Err(AttachError::NotReady(format!(
                    "{}:{} is being attached by another request; try again",
                    req.key.pod, req.key.ifname
                )));
            }
            if let Some(other) = st.endpoints.get(&req.key) {
                // The same pod interface from a new sandbox: the old one is being replaced.
                debug!(endpoint = %req.key, old = %other.container_id, "pod restarted");
            }
            let ofport = st.free_ofport().ok_or_else(|| {
                AttachError::Internal("all OpenFlow port numbers 32768-65279 are in use".into())
            })?;
            let mtu = st
                .links
                .values()
                .find(|l| l.key.peer_of(&req.key).is_some())
                .map(|l| l.mtu)
                .or(req.mtu)
                .unwrap_or(DEFAULT_MTU);
            st.reserved.insert(id.clone(), (req.key.clone(), ofport));
            (ofport, mtu)
        };
        // The veth pair is created and recorded in a task of its own: if the caller goes away
        // midway (the plugin timed out, the runtime cancelled), the interface is still either
        // fully registered, so a retried ADD returns it, or not there at all.
        let this = self
            .me
            .upgrade()
            .ok_or_else(|| AttachError::Internal("the agent is shutting down; try again".into()))?;
        tokio::spawn(async move { this.create_endpoint(req, ofport, mtu).await })
            .await
            .map_err(|e| AttachError::Internal(format!("attaching the interface failed: {e}")))?
    }

    async fn detach(&self, container_id: &str, ifname: &str) -> Result<(), AttachError> {
        let (ep, events) = {
            let mut st = self.state();
            let key = st
                .by_container
                .get(&(container_id.to_owned(), ifname.to_owned()))
                .cloned();
            let ep = key.and_then(|k| st.remove_endpoint(&k));
            // The link is pending from now on, before its flows are even gone.
            let events = if ep.is_some() {
                st.refresh_statuses()
            } else {
                Vec::new()
            };
            (ep, events)
        };
        self.publish(events);
        let host = ep.map_or_else(|| host_ifname(container_id, ifname), |e| e.host_ifname);
        self.kick();
        self.netdev
            .delete(&host)
            .await
            .map(drop)
            .map_err(|e| AttachError::Internal(format!("cannot delete {host}: {e}")))
    }

    async fn attachment(&self, container_id: &str, ifname: &str) -> Option<Attachment> {
        let st = self.state();
        let key = st
            .by_container
            .get(&(container_id.to_owned(), ifname.to_owned()))?;
        st.endpoints.get(key).map(Self::attachment_of)
    }

    async fn attachments(&self) -> Vec<(String, String)> {
        self.state().by_container.keys().cloned().collect()
    }

    async fn ready(&self) -> Result<(), String> {
        if !self.state().ready {
            return Err("the agent is still adopting the existing OVS state".into());
        }
        if self.ovs.read().await.flow().is_closed() {
            return Err("the agent has lost its OpenFlow connection to the bridge".into());
        }
        Ok(())
    }
}
