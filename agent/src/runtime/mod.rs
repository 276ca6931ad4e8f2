//! The running agent: the async shell around [`NodeState`]. It holds the state behind a lock,
//! runs the reconcile loop (observe OVS, plan, apply, record), creates and deletes veth pairs
//! for the CNI layer, and publishes link events. Every decision is [`NodeState`]'s or the
//! planner's; this module only moves data between OVS, the kernel and them.

pub mod args;
pub mod impair;
pub mod kube;
pub mod ovs;
pub mod peers;
pub mod telemetry;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ovswire_core::attach::{AttachError, AttachRequest, Attacher, Attachment};
use ovswire_core::impair::LinkImpairment;
use ovswire_core::model::{AdminState, LinkKey, LinkSpec};
use ovswire_core::node::{LinkEvent, LinkInfo, NodeState, Persisted, Report, Reservation};
use ovswire_core::peers::{Here, PeerView};
use ovswire_core::plan::{OfPort, OperState};
use ovswire_core::stats::{FlowCount, LinkCounters, PortCount};
use telemetry::Step;
use tokio::sync::{Notify, broadcast, watch};
use tracing::{debug, info, warn};

use crate::error::{Error, OvsError};
use crate::netdev::{Netdev, NetdevError, VethSpec};
use ovs::Ovs;

/// How long [`Agent::set_admin`] waits for OVS to apply a change.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the BFD sessions of the tunnels to other nodes are read: with their 1.8 s
/// detection time, a far node that stops takes carrier away within about 2.1 s.
const BFD_POLL: Duration = Duration::from_millis(250);
/// How long an ADD waits for its port to be recorded in OVSDB (the plugin gives an ADD 10 s).
const DURABLE_WITHIN: Duration = Duration::from_secs(8);

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

/// The generation for a new report: the agent's incarnation (its starts, counted in OVSDB) in
/// the high 32 bits and a counter of its reports in the low ones, so a restarted agent's reports
/// are newer than all of its last run's, whatever the clock does.
fn next_generation(last: &AtomicU64) -> u64 {
    last.fetch_add(1, Ordering::Relaxed) + 1
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
    /// How many link events the history keeps.
    pub history: usize,
}

/// The running agent, shared by the gRPC services, the peer exchange and the reconcile loop.
#[derive(Debug)]
pub struct Agent {
    ovs: tokio::sync::RwLock<Ovs>,
    netdev: Netdev,
    state: Mutex<NodeState>,
    wake: Notify,
    /// Completed reconcile rounds, so callers can wait for their change to be applied.
    rounds: watch::Sender<u64>,
    /// Observations of OVS taken in, so an ADD can wait for its port to be seen recorded.
    observations: watch::Sender<u64>,
    /// The configuration number of the agent's last committed port change, which ovs-vswitchd
    /// applies in its own time (see [`Self::watch_applied`]).
    committed_cfg: watch::Sender<i64>,
    /// Set once ovs-vswitchd applied committed ports: the next round observes their numbers.
    applied_since: std::sync::atomic::AtomicBool,
    /// The configuration ovs-vswitchd is known to have applied, and the one the last
    /// observation of OVS was taken after: rounds count as done only once it reached
    /// `committed_cfg`, so a caller waiting for a round sees the ports numbered.
    applied_cfg: std::sync::atomic::AtomicI64,
    observed_cfg: std::sync::atomic::AtomicI64,
    requested: AtomicU64,
    /// Plans sent to OVS since start (each one OVSDB transaction and/or one bundle).
    applied: AtomicU64,
    events: broadcast::Sender<LinkEvent>,
    /// Woken when what this node reports to its peers changed.
    peer_wake: Notify,
    /// The generation of the last report sent.
    generation: AtomicU64,
    /// Counters, carrier changes, history and health.
    telemetry: telemetry::Telemetry,
    /// The impairment stages of this node's impaired directions.
    stages: impair::Stages,
}

impl Agent {
    /// Connects to OVS, adopts what a previous run left (ports, flows and link states stay as
    /// they are), and returns the agent with the OpenFlow event stream to feed to [`Self::run`].
    pub async fn start(
        db: ovswire_ovsdb::Client,
        config: Config,
        links: BTreeMap<LinkKey, LinkSpec>,
    ) -> Result<(Arc<Self>, ovswire_openflow::conn::Events), Error> {
        let (ovs, events) = Ovs::connect(db, config.bridge).await?;
        let netdev = Netdev::new()?;
        let persisted = Persisted {
            down: ovs.admin_down_links().await?.into_iter().collect(),
            impair: ovs.impaired_links().await?,
        };
        let observed = ovs.observe().await?;
        let incarnation = ovs.next_incarnation().await?;
        let state = NodeState::adopt(config.here, links, persisted, &config.peers, observed);
        info!(
            endpoints = state.endpoint_count(),
            links = state.links().len(),
            "adopted existing state"
        );
        let agent = Arc::new(Self {
            ovs: tokio::sync::RwLock::new(ovs),
            netdev,
            state: Mutex::new(state),
            wake: Notify::new(),
            rounds: watch::channel(0).0,
            observations: watch::channel(0).0,
            committed_cfg: watch::channel(0).0,
            applied_since: std::sync::atomic::AtomicBool::new(false),
            applied_cfg: std::sync::atomic::AtomicI64::new(0),
            observed_cfg: std::sync::atomic::AtomicI64::new(0),
            requested: 0.into(),
            applied: 0.into(),
            events: broadcast::channel(1024).0,
            peer_wake: Notify::new(),
            generation: (u64::from(incarnation) << 32).into(),
            telemetry: telemetry::Telemetry::new(config.history),
            stages: impair::Stages::default(),
        });
        Ok((agent, events))
    }

    fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `attachment` once its OVS port is in OVSDB, the agent's only record that outlives it: an
    /// ADD succeeds only then, so a `kill -9` right after it loses nothing. Concurrent ADDs
    /// share the round (and the transaction) that records them.
    async fn durable(&self, attachment: Attachment) -> Result<Attachment, AttachError> {
        // Subscribed before the kick, so no observation after it is missed; the round that
        // adds the port observes OVS right after, well before the wire is complete.
        let mut seen = self.observations.subscribe();
        self.kick();
        let began = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + DURABLE_WITHIN;
        loop {
            if self.state().persisted(&attachment.host_ifname) {
                self.telemetry.step(Step::Durable, began.elapsed());
                return Ok(attachment);
            }
            match tokio::time::timeout_at(deadline, seen.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        Err(AttachError::NotReady(format!(
            "{} is made but Open vSwitch has not recorded its port within {} s; the runtime \
             retries",
            attachment.key,
            DURABLE_WITHIN.as_secs()
        )))
    }

    /// Asks for a reconcile round; returns its number, for [`Self::wait_round`].
    pub fn kick(&self) -> u64 {
        let n = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
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
        self.applied.load(Ordering::Relaxed)
    }

    /// Subscribes to link state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.events.subscribe()
    }

    /// Every link with its state.
    pub fn links(&self) -> Vec<(LinkSpec, OperState)> {
        self.state().links()
    }

    /// This node's name and underlay.
    pub fn here(&self) -> Here {
        self.state().here().clone()
    }

    /// What this node reports to its peers now, with a fresh generation.
    pub fn report(&self) -> Report {
        let mut report = self.state().report();
        report.generation = next_generation(&self.generation);
        report
    }

    /// Resolves when what this node reports may have changed.
    pub async fn report_changed(&self) {
        self.peer_wake.notified().await;
    }

    /// The peer nodes known, with their underlay addresses when known.
    pub fn peers(&self) -> BTreeMap<String, Option<String>> {
        self.state().peers()
    }

    /// Adds or moves a peer node (from configuration or discovery).
    pub fn set_peer_address(&self, node: &str, underlay_ip: Option<String>) {
        if self.state().set_peer_address(node, underlay_ip) {
            self.kick();
            self.peer_wake.notify_one();
        }
    }

    /// Whether a report's generation from `node` is believable (see
    /// [`NodeState::check_generation`]).
    pub fn check_generation(&self, node: &str, generation: u64) -> Result<(), String> {
        self.state().check_generation(node, generation)
    }

    /// Takes in a peer's report; replans when it changes anything.
    pub fn absorb_peer(&self, node: &str, view: PeerView) {
        self.telemetry.peer(node, true);
        let events = self.state().absorb_peer(node, view);
        match events {
            Some(events) => {
                self.publish(events);
                self.kick();
            }
            None => debug!(peer = node, "peer report changes nothing"),
        }
    }

    /// A peer's agent stopped answering. Its wires stay: whether they carry frames is the
    /// tunnel's BFD session's to tell ([`Self::watch_tunnels`]), and a wire goes only when the
    /// peer reports its end gone.
    pub fn peer_silent(&self, node: &str) {
        self.telemetry.peer(node, false);
    }

    /// Reads the BFD sessions of the tunnels every 250 ms and takes their state in: a
    /// far node whose datapath stops forwarding takes carrier off the wires to it (they stay
    /// wired, and come back with it). Runs until the process ends.
    pub async fn watch_tunnels(self: Arc<Self>) {
        loop {
            tokio::time::sleep(BFD_POLL).await;
            if !self.state().has_tunnels() {
                continue;
            }
            let forwarding = match self.ovs.read().await.tunnels_forwarding().await {
                Ok(f) => f,
                Err(e) => {
                    debug!(error = %e, "cannot read the tunnels' BFD state");
                    continue;
                }
            };
            if let Some(events) = self.state().observe_forwarding(&forwarding) {
                info!(?forwarding, "a tunnel's BFD state changed");
                self.publish(events);
                self.kick();
            }
        }
    }

    /// The node holding the far end of `key` when that end is on another node.
    pub fn far_node(&self, key: &LinkKey) -> Option<String> {
        self.state().far_node(key)
    }

    /// Where a link's ends are and what it carries.
    pub fn link_info(&self, spec: &LinkSpec) -> LinkInfo {
        self.state().link_info(spec)
    }

    /// Replaces the wanted links with a new set from the topology source (a live edit): links
    /// that stay keep their wiring, new links are wired as their ends register, removed links
    /// are unwired (see [`NodeState::set_links`]).
    pub fn set_links(&self, links: BTreeMap<LinkKey, LinkSpec>) {
        let count = links.len();
        let events = self.state().set_links(links);
        if let Some(events) = events {
            info!(links = count, "topology changed");
            self.publish(events);
            self.kick();
        }
    }

    /// The agent's counters, carrier changes, history and health.
    pub fn telemetry(&self) -> &telemetry::Telemetry {
        &self.telemetry
    }

    /// How many times the OVSDB connection was made again.
    pub async fn ovsdb_reconnects(&self) -> u64 {
        self.ovs.read().await.ovsdb_reconnects()
    }

    /// Every link's counters as this node counts them, read from OVS now: one flow-stats
    /// request for all of the agent's flows and one port-stats request for all ports.
    pub async fn link_stats(&self) -> Result<BTreeMap<LinkKey, LinkCounters>, Error> {
        use ovswire_openflow::msg::FlowStatsRequest;
        use ovswire_openflow::oxm::OxmField;
        let counting = self.state().counting();
        let ovs = self.ovs.read().await.clone();
        let request = FlowStatsRequest {
            table_id: 0,
            cookie: ovswire_core::naming::COOKIE_TAG,
            cookie_mask: ovswire_core::naming::COOKIE_TAG_MASK,
            ..FlowStatsRequest::default()
        };
        let (flows, ports) = tokio::try_join!(
            ovs.flow().flow_stats(request),
            ovs.flow()
                .port_stats(ovswire_openflow::types::port::OFPP_ANY),
        )
        .map_err(OvsError::from)?;
        let flows: Vec<FlowCount> = flows
            .iter()
            .filter_map(|f| {
                let mut in_port = None;
                let mut tun = None;
                for m in &f.r#match.fields {
                    match m {
                        OxmField::InPort(p) => in_port = Some(*p),
                        OxmField::TunnelId(id, None) => tun = u32::try_from(*id).ok(),
                        _ => {}
                    }
                }
                Some(FlowCount {
                    key: (in_port?, tun),
                    packets: f.packet_count,
                    bytes: f.byte_count,
                })
            })
            .collect();
        // A counter a port does not keep reads all ones (OpenFlow 1.3, 7.3.5.6): none counted.
        let known = |v: u64| if v == u64::MAX { 0 } else { v };
        let ports = ports
            .iter()
            .map(|p| {
                let c = p.counters.map(known);
                (
                    p.port_no,
                    PortCount {
                        rx_lost: c[4].saturating_add(c[6]),
                        tx_lost: c[5].saturating_add(c[7]),
                    },
                )
            })
            .collect();
        let raw = ovswire_core::stats::tally(&counting, &flows, &ports);
        Ok(self.telemetry.monotonic(raw))
    }

    /// Sets a link's admin state, records it in OVSDB, and waits until OVS has it.
    pub async fn set_admin(&self, key: &LinkKey, admin: AdminState) -> Result<LinkSpec, Error> {
        if !self.state().has_link(key) {
            return Err(Error::NoSuchLink(Box::new(key.clone())));
        }
        self.ovs
            .read()
            .await
            .set_admin_down(&key.to_string(), admin == AdminState::Down)
            .await?;
        let spec = self
            .state()
            .set_admin(key, admin)
            .ok_or_else(|| Error::NoSuchLink(Box::new(key.clone())))?;
        self.applied_to(key).await?;
        Ok(spec)
    }

    /// Asks for a round and waits until OVS has it: the change to `key` just made is applied.
    async fn applied_to(&self, key: &LinkKey) -> Result<(), Error> {
        let round = self.kick();
        if self.wait_round(round, APPLY_TIMEOUT).await {
            Ok(())
        } else {
            Err(Error::NotApplied {
                link: Box::new(key.clone()),
                after: APPLY_TIMEOUT,
            })
        }
    }

    /// Sets a link's impairments (both directions; a default one clears), records them in
    /// OVSDB, and waits until OVS and the stage have them. The link keeps carrier: only the
    /// path of its impaired directions changes.
    pub async fn set_impair(
        &self,
        key: &LinkKey,
        impair: LinkImpairment,
    ) -> Result<LinkSpec, Error> {
        if !self.state().has_link(key) {
            return Err(Error::NoSuchLink(Box::new(key.clone())));
        }
        self.ovs
            .read()
            .await
            .set_impaired(&key.to_string(), &impair)
            .await?;
        let event = self
            .state()
            .set_impair(key, impair)
            .ok_or_else(|| Error::NoSuchLink(Box::new(key.clone())))?;
        let spec = event.link.clone();
        info!(link = %key, %impair, "impairment set");
        self.publish(vec![event]);
        self.applied_to(key).await?;
        Ok(spec)
    }

    /// What the impairment stage of each impaired direction on this node has done: frames
    /// received, sent, lost and dropped for a full queue.
    pub fn impair_counters(&self) -> Vec<(LinkKey, ovswire_core::stats::Direction, [u64; 4])> {
        let ports = self.state().impair_ports();
        ports
            .into_iter()
            .filter_map(|(key, dir, port, _)| {
                let c = self.stages.counters(&port.name)?;
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                Some((
                    key,
                    dir,
                    [
                        get(&c.received),
                        get(&c.sent),
                        get(&c.lost),
                        get(&c.overflow),
                    ],
                ))
            })
            .collect()
    }

    /// The reconcile loop: runs until the process ends, applying one plan per round and
    /// re-reading OVS after changes. `events` is the OpenFlow connection's async stream: a
    /// PORT_STATUS means the kernel or OVS changed a port, and the stream ending means the
    /// connection died (ovs-vswitchd restarted), after which the loop reconnects and replays.
    pub async fn run(self: Arc<Self>, mut events: ovswire_openflow::conn::Events) {
        tokio::spawn(self.clone().watch_applied());
        let mut backoff = Duration::from_millis(50);
        let mut dirty = true;
        loop {
            let requested = self.requested.load(Ordering::SeqCst);
            let applied = self.applied_since.swap(false, Ordering::SeqCst);
            let began = std::time::Instant::now();
            let result = self.round(dirty, applied, &mut events).await;
            self.telemetry.round(began.elapsed());
            match result {
                Ok(next) => {
                    backoff = Duration::from_millis(50);
                    dirty = next == Next::Observe;
                    if next != Next::Done {
                        continue;
                    }
                    // Ports still being applied by ovs-vswitchd: done once they are observed.
                    if self.observed_cfg.load(Ordering::SeqCst) >= *self.committed_cfg.borrow() {
                        self.rounds.send_replace(requested);
                    }
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
                                self.telemetry
                                    .openflow_reconnects
                                    .fetch_add(1, Ordering::Relaxed);
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
                                Ok(ev) => {
                                    self.telemetry.openflow_reconnects.fetch_add(1, Ordering::Relaxed);
                                    events = ev;
                                    break;
                                }
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

    /// Waits for ovs-vswitchd to apply each committed port change (the last one committed when
    /// several are), then has the next round observe the ports' numbers. Runs until the agent's
    /// reconcile loop ends.
    async fn watch_applied(self: Arc<Self>) {
        let mut committed = self.committed_cfg.subscribe();
        while committed.changed().await.is_ok() {
            let cfg = *committed.borrow_and_update();
            let ovs = self.ovs.read().await.clone();
            let began = std::time::Instant::now();
            let waited = ovs.wait_applied(cfg, ovs::APPLY_TIMEOUT).await;
            self.telemetry.step(Step::VswitchdApply, began.elapsed());
            if let Err(e) = waited {
                warn!(error = %e, "ovs-vswitchd has not applied the ports yet; observing anyway");
            }
            self.applied_cfg.fetch_max(cfg, Ordering::SeqCst);
            self.applied_since.store(true, Ordering::SeqCst);
            self.wake.notify_one();
        }
    }

    /// Applies PORT_STATUS messages to the observed OpenFlow ports, so a round needs no new
    /// port dump; returns whether a full observation is needed (a port of the agent vanished or
    /// lost carrier while up, so its pod may be gone; or a message it does not follow arrived).
    fn absorb_events(&self, frames: &[ovswire_openflow::Frame]) -> bool {
        let observe = self.take_port_status(frames);
        let events = self.state().refresh_statuses();
        self.publish(events);
        observe
    }

    /// Applies PORT_STATUS messages to the observed OpenFlow ports without recomputing any
    /// status; whether a full observation is needed.
    fn take_port_status(&self, frames: &[ovswire_openflow::Frame]) -> bool {
        use ovswire_openflow::Message;
        use ovswire_openflow::msg::PortReason;
        use ovswire_openflow::types::port_config::OFPPC_PORT_DOWN;
        use ovswire_openflow::types::port_state::OFPPS_LINK_DOWN;
        let mut observe = false;
        {
            let mut st = self.state();
            for frame in frames {
                let Message::PortStatus(ps) = &frame.message else {
                    debug!(msg_type = frame.message.msg_type(), "OpenFlow event");
                    observe = true;
                    continue;
                };
                let port = &ps.port;
                if ps.reason == PortReason::Delete {
                    st.port_changed(port.port_no, None);
                    // OVSDB now shows the port as failed: the pod may be gone.
                    observe = true;
                } else {
                    let of_port = OfPort {
                        mac: port.hw_addr.0,
                        down: port.config & OFPPC_PORT_DOWN != 0,
                        link_down: port.state & OFPPS_LINK_DOWN != 0,
                    };
                    observe |= of_port.maybe_gone();
                    st.port_changed(port.port_no, Some(of_port));
                }
            }
        }
        observe
    }

    /// One round: observe if needed, plan, apply. Says what the next round needs.
    async fn round(
        &self,
        observe: bool,
        applied: bool,
        events: &mut ovswire_openflow::conn::Events,
    ) -> Result<Next, OvsError> {
        let ovs = self.ovs.read().await.clone();
        let applied_cfg = self.applied_cfg.load(Ordering::SeqCst);
        if observe {
            let began = std::time::Instant::now();
            let observed = ovs.observe().await?;
            self.telemetry.step(Step::ObserveAll, began.elapsed());
            self.absorb(observed).await;
            self.observed_cfg.fetch_max(applied_cfg, Ordering::SeqCst);
        } else if applied {
            // ovs-vswitchd applied committed ports: only their rows are read (their numbers);
            // their OpenFlow ports come as PORT_STATUS messages, the flows are as recorded.
            let names = self.state().committed_ports();
            let began = std::time::Instant::now();
            let ports = ovs.observe_named(&names).await?;
            self.telemetry.step(Step::ObserveCommitted, began.elapsed());
            let events = self.state().observe_ports(ports);
            self.observations.send_modify(|n| *n += 1);
            self.publish(events);
            self.observed_cfg.fetch_max(applied_cfg, Ordering::SeqCst);
        }
        let plan = self.state().plan();
        let stages: Vec<_> = self
            .state()
            .impair_ports()
            .into_iter()
            .map(|(_, _, port, imp)| (port, imp))
            .collect();
        self.stages.start(&self.netdev, &stages).await;
        if plan.is_empty() {
            self.stages.stop_unwanted(&self.netdev, &stages).await;
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
        self.applied.fetch_add(1, Ordering::Relaxed);
        // ADDs waiting for their port to be recorded go on once it is committed, and the next
        // rounds plan on from the committed ports, while ovs-vswitchd digests the batch
        // (seconds, on a bridge with thousands of ports): batches committed meanwhile are
        // applied together.
        self.commit(&ovs, &plan.add_ports, &plan.del_ports).await?;
        // The bundle waits for ovs-vswitchd, which may be busy digesting ports for seconds.
        // Ports of ADDs that arrive meanwhile are committed at once rather than after it, so an
        // ADD never waits for a bundle: new ports only add to the bridge, with numbers no flow
        // in flight uses. Not while this plan deletes ports, whose numbers a new port could
        // take before the bundle that removes their flows is in.
        let mut woken = false;
        let bundle = {
            let bundle = ovs.bundle_flows(&plan);
            tokio::pin!(bundle);
            loop {
                tokio::select! {
                    biased;
                    done = &mut bundle => break done?,
                    () = self.wake.notified(), if plan.del_ports.is_empty() => {
                        woken = true;
                        self.commit_arrived_ports(&ovs).await?;
                    }
                }
            }
        };
        if let Some(took) = bundle {
            self.telemetry.step(Step::Bundle, took);
        }
        // The host ends change once the flows are in (the bundle is confirmed), on the host
        // itself: OVS's PORT_MOD costs ovs-vswitchd a main-loop pass per port, milliseconds
        // each on a bridge with thousands of ports; the kernel takes thousands a second. OVS
        // sees the change and reports it as a PORT_STATUS like any other.
        let mut plan = plan;
        let mut vanished = false;
        let began = std::time::Instant::now();
        let mut states = Vec::with_capacity(plan.port_states.len());
        for s in std::mem::take(&mut plan.port_states) {
            match self.netdev.set_up(&s.name, s.up).await {
                Ok(()) => states.push(s),
                Err(e) => {
                    // The pod (and so the pair) may be gone: an observation tells.
                    warn!(port = %s.name, up = s.up, error = %e, "cannot set a host end");
                    vanished = true;
                }
            }
        }
        plan.port_states = states;
        if !plan.port_states.is_empty() || vanished {
            self.telemetry.step(Step::HostEnds, began.elapsed());
        }
        // The flows no longer use the ports of directions that lost their impairment.
        self.stages.stop_unwanted(&self.netdev, &stages).await;
        for name in plan.del_ports.iter().filter(|n| n.starts_with("oi")) {
            // A pair whose stage ran in an earlier run of the agent.
            if let Err(e) = self.netdev.delete(name).await {
                warn!(port = %name, error = %e, "cannot remove an impairment pair");
            }
        }
        // PORT_STATUS messages OVS sent before it took the plan are queued now, and describe
        // ports as they were before it: take them in first, so the plan's port states win
        // (applied after, they would make an up link look down for a moment).
        let mut earlier = Vec::new();
        while let Some(frame) = events.try_recv() {
            earlier.push(frame);
        }
        let observe = self.take_port_status(&earlier) || vanished;
        let changes = self.state().record(&plan);
        self.publish(changes);
        self.report_changes();
        // New flows or ports can complete a wire whose host ends may now come up: plan once more
        // from what was just recorded (an empty plan ends the rounds).
        // A wake taken while the bundle was in flight may have asked for more than ports: the
        // next round answers it.
        Ok(if observe {
            Next::Observe
        } else if plan.add_flows.is_empty()
            && plan.del_flows.is_empty()
            && !plan.touches_ovsdb()
            && !woken
        {
            Next::Done
        } else {
            Next::Replan
        })
    }

    /// Commits port changes (one OVSDB transaction each for deletions and additions) and
    /// records them as committed: ADDs waiting for their port go on, and ovs-vswitchd's
    /// applying of them is waited for aside ([`Self::watch_applied`]).
    async fn commit(
        &self,
        ovs: &Ovs,
        add: &[ovswire_core::plan::PortWant],
        del: &[String],
    ) -> Result<(), OvsError> {
        let Some(committed) = ovs.commit_ports(add, del).await? else {
            return Ok(());
        };
        self.state().committed(add, del);
        self.observations.send_modify(|n| *n += 1);
        self.telemetry.step(Step::OvsdbCommit, committed.took);
        self.committed_cfg.send_if_modified(|c| {
            let newer = committed.next_cfg > *c;
            *c = (*c).max(committed.next_cfg);
            newer
        });
        Ok(())
    }

    /// Commits the host ends of endpoints registered since the round planned (ADDs that
    /// arrived meanwhile), and nothing else.
    async fn commit_arrived_ports(&self, ovs: &Ovs) -> Result<(), OvsError> {
        let add = self.state().missing_endpoint_ports();
        self.commit(ovs, &add, &[]).await
    }

    /// Wakes the peer exchange when what this node reports changed.
    fn report_changes(&self) {
        if self.state().report_changed() {
            self.peer_wake.notify_one();
        }
    }

    /// Takes in a fresh observation: drops endpoints whose veth vanished (the pod is gone),
    /// then publishes status changes.
    async fn absorb(&self, observed: ovswire_core::plan::Observed) {
        let failed = self.state().failed_endpoints(&observed);
        let mut gone = Vec::new();
        for (key, host) in failed {
            if !self.netdev.exists(&host).await.unwrap_or(true) {
                info!(endpoint = %key, "pod interface is gone; unwiring it");
                gone.push(key);
            }
        }
        let events = self.state().observe(observed, &gone);
        self.observations.send_modify(|n| *n += 1);
        self.publish(events);
    }

    fn publish(&self, events: Vec<LinkEvent>) {
        if events.is_empty() {
            return;
        }
        self.telemetry
            .record(&events, std::time::SystemTime::now(), || {
                for ev in events.iter().cloned() {
                    info!(link = %ev.link.key, status = ?ev.status, "link state");
                    let _ = self.events.send(ev);
                }
            });
    }

    /// The link events remembered since `since` of lab `lab` (every lab when empty), and a
    /// subscription to the events after them.
    pub fn history_since(
        &self,
        since: std::time::SystemTime,
        lab: &str,
    ) -> (Vec<telemetry::HistoryEvent>, broadcast::Receiver<LinkEvent>) {
        self.telemetry
            .history_since(since, lab, || self.events.subscribe())
    }
}

impl Attacher for Agent {
    /// Reserves a port number, creates the veth pair and registers the endpoint. The caller
    /// (the CNI API) runs this on a task of its own, so an ADD whose caller goes away midway
    /// still ends with the interface either fully registered or not there at all.
    async fn attach(&self, req: AttachRequest) -> Result<Attachment, AttachError> {
        let reservation = self.state().reserve(&req)?;
        let (ofport, attachment) = match reservation {
            // A repeated ADD (the runtime retrying one that timed out): durable first.
            Reservation::Existing(attachment) => return self.durable(attachment).await,
            Reservation::New { ofport, attachment } => (ofport, attachment),
        };
        let spec = VethSpec {
            host: &attachment.host_ifname,
            host_mac: attachment.host_mac,
            netns: &attachment.netns,
            ifname: &attachment.key.ifname,
            pod_mac: attachment.pod_mac,
            mtu: attachment.mtu,
        };
        let began = std::time::Instant::now();
        let mut created = self.netdev.create_veth(&spec).await;
        self.telemetry.step(Step::Veth, began.elapsed());
        if matches!(&created, Err(NetdevError::Exists { ifname, .. }) if *ifname == attachment.host_ifname)
        {
            // The host name is derived from this container and interface and no endpoint has
            // it: a pair left by an agent killed while making it. Remove it and make it again.
            info!(host = %attachment.host_ifname, "removing a half-made pair left by an earlier agent");
            created = match self.netdev.delete(&attachment.host_ifname).await {
                Ok(_) => self.netdev.create_veth(&spec).await,
                Err(e) => Err(e),
            };
        }
        let created = created.map_err(|e| match e {
            NetdevError::Netns { .. } => AttachError::Netns(e.to_string()),
            NetdevError::Exists { .. } => AttachError::Exists(e.to_string()),
            other => AttachError::Internal(other.to_string()),
        });
        let made = created.is_ok();
        let completed = self.state().complete_attach(&attachment, ofport, created);
        let replaced = match completed {
            Err(e) if made => {
                // Cancelled while it was made: what it made goes.
                info!(endpoint = %attachment.key, container = %attachment.container_id, reason = %e, "ADD cancelled");
                if let Err(del) = self.netdev.delete(&attachment.host_ifname).await {
                    warn!(host = %attachment.host_ifname, error = %del, "cannot remove a cancelled ADD's interface");
                }
                return Err(e);
            }
            other => other?,
        };
        if let Some(old) = replaced {
            info!(endpoint = %attachment.key, old = %old.container_id, new = %attachment.container_id, "moving the wire to the pod's new sandbox");
            // The old sandbox's interface must not keep carrier on a wire that is not its own.
            if let Err(e) = self.netdev.delete(&old.host_ifname).await {
                warn!(host = %old.host_ifname, error = %e, "cannot remove the old sandbox's interface");
            }
        }
        self.durable(attachment).await
    }

    async fn detach(&self, container_id: &str, ifname: &str) -> Result<(), AttachError> {
        let (host, events) = self.state().detach(container_id, ifname);
        self.publish(events);
        self.kick();
        self.netdev
            .delete(&host)
            .await
            .map(drop)
            .map_err(|e| AttachError::Internal(format!("cannot delete {host}: {e}")))
    }

    async fn attachment(&self, container_id: &str, ifname: &str) -> Option<Attachment> {
        self.state().attachment(container_id, ifname)
    }

    async fn attachments(&self, network: &str) -> Vec<(String, String)> {
        self.state().attachments(network)
    }

    async fn ready(&self) -> Result<(), String> {
        if self.ovs.read().await.flow().is_closed() {
            return Err("the agent has lost its OpenFlow connection to the bridge".into());
        }
        Ok(())
    }
}
