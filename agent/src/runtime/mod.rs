//! The running agent: shared state, the reconcile loop, and the [`Attacher`] the CNI layer
//! calls. Everything it decides comes from [`crate::core::plan`]; this module only moves data
//! between OVS, the kernel and that planner.

pub mod args;
pub mod ovs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tracing::{debug, info, warn};

use crate::attach::{AttachError, AttachRequest, Attacher, Attachment};
use crate::core::model::{AdminState, DEFAULT_MTU, EndpointKey, LinkKey, LinkSpec};
use crate::core::naming::{FIRST_OFPORT, LAST_OFPORT, host_ifname};
use crate::core::plan::{Endpoint, LinkStatus, Observed, OfportState, Plan, World};
use crate::netdev::{Netdev, NetdevError, VethSpec};
use ovs::Ovs;

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
}

impl State {
    fn world(&self) -> World<'_> {
        World::new(&self.links, &self.endpoints)
    }

    fn free_ofport(&self) -> Option<u32> {
        let used: BTreeSet<u32> = self
            .endpoints
            .values()
            .map(|e| e.ofport)
            .chain(self.reserved.values().map(|(_, p)| *p))
            .chain(
                self.observed
                    .ports
                    .values()
                    .filter_map(|p| p.ofport_request),
            )
            .collect();
        (FIRST_OFPORT..=LAST_OFPORT).find(|p| !used.contains(p))
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
        let world = World::new(&self.links, &self.endpoints);
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
        for name in ovs.admin_down_links().await? {
            if let Some(link) = state.links.values_mut().find(|l| l.key.to_string() == name) {
                link.admin = AdminState::Down;
            }
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
        state.observed = observed;
        state.refresh_statuses();
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
                Ok(more) => {
                    backoff = Duration::from_millis(50);
                    dirty = more;
                    if more {
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
                        debug!(msg_type = frame.message.msg_type(), "OpenFlow event");
                        dirty = true;
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

    /// One round: observe if needed, plan, apply. Returns whether another round is needed.
    async fn round(&self, observe: bool) -> Result<bool, ovs::OvsError> {
        let ovs = self.ovs.read().await.clone();
        if observe {
            let observed = ovs.observe().await?;
            self.absorb(observed).await;
        }
        let plan = {
            let st = self.state();
            st.world().plan(&st.observed)
        };
        if plan.is_empty() {
            return Ok(false);
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
            return Ok(true);
        }
        self.record(&plan);
        Ok(false)
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
                st.observed.flows.remove(&f.in_port);
            }
            for f in &plan.add_flows {
                st.observed.flows.insert(f.in_port, *f);
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
        let ep = {
            let mut st = self.state();
            let key = st
                .by_container
                .get(&(container_id.to_owned(), ifname.to_owned()))
                .cloned();
            key.and_then(|k| st.remove_endpoint(&k))
        };
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
