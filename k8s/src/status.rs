//! Status write-back: the agents' link states go into `status` of ovswire `Topology` objects
//! with server-side apply.
//!
//! Several agents write the same object, so each applies under its own field manager
//! (`ovswire-agent-<node>`) and owns only the `status.links` entries it writes; `status.links`
//! is a list keyed by `name` (`x-kubernetes-list-type: map`), so the API server merges the
//! entries of all agents. Applying the complete set of its entries each time, an agent also
//! removes the entries it no longer reports.
//!
//! Who writes what, computed the same way by every agent from the same [`Desired`]:
//! - a link's entry is written by its [reporter](Desired::reporter), the node of end `a` (or of
//!   `b` while `a`'s pod is not scheduled), from the agent's [`LinkReport`];
//! - the counts, `observedGeneration`, the `error` entries of links that cannot be made and the
//!   `pending` entries of links whose pods are not scheduled yet are written by the object's
//!   *owner*: the node running the object's first scheduled pod, by name.
//!
//! Writes are batched: every [`StatusConfig::interval`], at most one PATCH per object, and only
//! for objects whose entries changed. When the API server answers 429 (too many requests) or
//! 5xx, or cannot be reached, writing pauses for an exponentially growing delay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::crd::{LinkState, LinkStatus, Topology, TopologyStatus};
use crate::desired::Desired;
use crate::wire::{Origin, OriginKind, Wire, parse_ovswire};

/// Field managers are named this and the node's name.
pub const FIELD_MANAGER_PREFIX: &str = "ovswire-agent-";
/// The API server's limit on a field manager's name.
const MAX_FIELD_MANAGER: usize = 128;

/// One link as the agent sees it, for the status of its Topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    /// The lab (namespace).
    pub lab: String,
    /// The link's name, as [`Wire::name`] spells it (`r1:eth1--r2:eth1`).
    pub link: String,
    /// Where the link stands.
    pub state: LinkState,
    /// Why it is not ready, and what to do about it.
    pub reason: Option<String>,
    /// The node of end `a`; filled from the pod's placement when `None`.
    pub node_a: Option<String>,
    /// The node of end `b`; filled from the pod's placement when `None`.
    pub node_b: Option<String>,
    /// The tunnel key of a link between two nodes.
    pub tunnel_key: Option<u32>,
    /// The MTU both ends got.
    pub effective_mtu: Option<u32>,
    /// The impairments applied, in their text form; `None` without any.
    pub impairment: Option<String>,
}

/// How often the writer patches, and how long it pauses at most when the API server pushes
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// Patches go out at most once per interval per object.
    pub interval: Duration,
    /// The longest pause after 429, 5xx or an unreachable API server.
    pub max_backoff: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

type Reports = Option<Arc<Vec<LinkReport>>>;

/// Hands the agent's link states to the [`StatusWriter`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusReporter {
    tx: watch::Sender<Reports>,
}

impl StatusReporter {
    /// Replaces what this node reports with `links`: every link with an end on this node, in
    /// any lab. The writer publishes those this node is the reporter of; links left out lose
    /// their entry.
    pub fn report(&self, links: Vec<LinkReport>) {
        self.tx.send_replace(Some(Arc::new(links)));
    }
}

/// Writes link status into ovswire `Topology` objects for one node's agent.
pub struct StatusWriter {
    client: Client,
    node: String,
    manager: String,
    topologies: Store<Topology>,
    desired: watch::Receiver<Desired>,
    reports: watch::Receiver<Reports>,
    config: StatusConfig,
    /// What was last applied to each object (namespace, name), and the object's uid then.
    applied: HashMap<(String, String), (Option<String>, TopologyStatus)>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter")
            .field("node", &self.node)
            .field("manager", &self.manager)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The status one node wants in one object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Intent {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
    pub(crate) status: TopologyStatus,
    /// Whether this node's field manager owns status fields of the object now.
    pub(crate) owns_fields: bool,
}

impl StatusWriter {
    /// A writer for node `node`, reading Topology objects from `topologies` (the
    /// [`Source`](crate::Source)'s cache) and placement from `desired` (the source's output).
    /// The returned [`StatusReporter`] takes the agent's reports; the writer writes nothing
    /// before the first report and the first synced [`Desired`], so a starting agent never
    /// wipes the entries it wrote before a restart.
    pub fn new(
        client: Client,
        node: impl Into<String>,
        topologies: Store<Topology>,
        desired: watch::Receiver<Desired>,
    ) -> (Self, StatusReporter) {
        let node = node.into();
        let (tx, reports) = watch::channel(None);
        let config = StatusConfig::default();
        let writer = Self {
            client,
            manager: field_manager(&node),
            node,
            topologies,
            desired,
            reports,
            backoff: config.interval,
            config,
            applied: HashMap::new(),
            retry_at: None,
        };
        (writer, StatusReporter { tx })
    }

    /// Replaces the timing settings.
    #[must_use]
    pub fn with_config(mut self, config: StatusConfig) -> Self {
        self.backoff = config.interval;
        self.config = config;
        self
    }

    /// The field manager this writer applies as.
    pub fn field_manager(&self) -> &str {
        &self.manager
    }

    /// Writes until every [`StatusReporter`] is dropped.
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.flush().await,
                changed = self.reports.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One round: applies every object whose wanted status changed.
    async fn flush(&mut self) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let Some(reports) = self.reports.borrow().clone() else {
            return;
        };
        let objects = self.topologies.state();
        let intents = {
            let desired = self.desired.borrow();
            if !desired.synced {
                return;
            }
            intents(&self.node, &self.manager, &reports, &desired, &objects)
        };
        let present: BTreeSet<(String, String)> = objects
            .iter()
            .map(|o| (o.namespace().unwrap_or_default(), o.name_any()))
            .collect();
        self.applied.retain(|key, _| present.contains(key));

        for intent in intents {
            let key = (intent.namespace.clone(), intent.name.clone());
            let last = self.applied.get(&key);
            let wanted = (intent.uid.clone(), intent.status.clone());
            let has_content = intent.status != TopologyStatus::default();
            if last == Some(&wanted) || (last.is_none() && !has_content && !intent.owns_fields) {
                continue;
            }
            match self.apply(&intent).await {
                Outcome::Applied | Outcome::Rejected => {
                    self.applied.insert(key, wanted);
                    self.backoff = self.config.interval;
                }
                Outcome::Gone => {
                    self.applied.remove(&key);
                }
                Outcome::RetryNextRound => {}
                Outcome::BackOff => {
                    self.retry_at = Some(Instant::now() + self.backoff);
                    debug!(pause = ?self.backoff, "status writes paused");
                    self.backoff = (self.backoff * 2).min(self.config.max_backoff);
                    return;
                }
            }
        }
        self.retry_at = None;
    }

    async fn apply(&self, intent: &Intent) -> Outcome {
        let api: Api<Topology> = Api::namespaced(self.client.clone(), &intent.namespace);
        let body = apply_body(intent);
        let params = PatchParams::apply(&self.manager).force();
        let result = api
            .patch_status(&intent.name, &params, &Patch::Apply(&body))
            .await;
        let object = format!(
            "topology.ovswire.io/{} in namespace {}",
            intent.name, intent.namespace
        );
        match result {
            Ok(_) => {
                debug!(%object, links = intent.status.links.len(), "status applied");
                Outcome::Applied
            }
            Err(kube::Error::Api(e)) => match e.code {
                404 => Outcome::Gone,
                409 => {
                    warn!(%object, message = %e.message, "status apply conflicted; retrying");
                    Outcome::RetryNextRound
                }
                429 => {
                    debug!(%object, "API server asks to slow down (429)");
                    Outcome::BackOff
                }
                401 | 403 => {
                    error!(
                        %object, manager = %self.manager, message = %e.message,
                        "may not write Topology status: the agent's ServiceAccount needs patch on \
                         topologies/status in ovswire.io (apply deploy/rbac.yaml)"
                    );
                    Outcome::BackOff
                }
                code if code >= 500 => {
                    warn!(%object, code, message = %e.message, "API server failed; backing off");
                    Outcome::BackOff
                }
                code => {
                    error!(
                        %object, code, message = %e.message,
                        "API server refused the status; the installed CRD may be older than \
                         this agent: apply deploy/crds/ovswire.io_topologies.yaml"
                    );
                    Outcome::Rejected
                }
            },
            // The API server took the apply (2xx) but its answer did not parse as a Topology.
            Err(kube::Error::SerdeError(e)) => {
                debug!(%object, error = %e, "status applied; the answer did not parse");
                Outcome::Applied
            }
            Err(e) => {
                warn!(%object, error = %e, "cannot reach the API server; backing off");
                Outcome::BackOff
            }
        }
    }
}

enum Outcome {
    Applied,
    /// Refused for good (bad request): not retried until the wanted status changes.
    Rejected,
    /// The object is gone.
    Gone,
    RetryNextRound,
    BackOff,
}

/// The field manager of node `node`'s agent, shortened (with a hash to stay distinct) to the
/// API server's 128 characters.
pub(crate) fn field_manager(node: &str) -> String {
    let full = format!("{FIELD_MANAGER_PREFIX}{node}");
    if full.len() <= MAX_FIELD_MANAGER {
        return full;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let suffix = format!("-{h:016x}");
    let mut cut = MAX_FIELD_MANAGER - suffix.len();
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &full[..cut])
}

/// The server-side apply body for one intent.
pub(crate) fn apply_body(intent: &Intent) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "ovswire.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": intent.name, "namespace": intent.namespace},
        "status": intent.status,
    })
}

/// What node `node` wants in each object's status, for the objects it has a part in.
pub(crate) fn intents(
    node: &str,
    manager: &str,
    reports: &[LinkReport],
    desired: &Desired,
    objects: &[Arc<Topology>],
) -> Vec<Intent> {
    let reported: HashMap<(&str, &str), &LinkReport> = reports
        .iter()
        .map(|r| ((r.lab.as_str(), r.link.as_str()), r))
        .collect();
    // Namespaces where this node has a say: a pod of a wire runs here, or the agent reports.
    let mut involved: BTreeSet<&str> = desired
        .pod_nodes
        .iter()
        .filter(|(_, n)| n.as_str() == node)
        .map(|((namespace, _), _)| namespace.as_str())
        .collect();
    involved.extend(reports.iter().map(|r| r.lab.as_str()));

    let mut out = Vec::new();
    for object in objects {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        let owns_fields = object.metadata.managed_fields.iter().flatten().any(|f| {
            f.manager.as_deref() == Some(manager) && f.subresource.as_deref() == Some("status")
        });
        if !involved.contains(namespace.as_str()) && !owns_fields {
            continue;
        }
        let status = object_status(node, &namespace, object, &reported, desired);
        out.push(Intent {
            namespace,
            name,
            uid: object.metadata.uid.clone(),
            status,
            owns_fields,
        });
    }
    out
}

fn object_status(
    node: &str,
    namespace: &str,
    object: &Topology,
    reported: &HashMap<(&str, &str), &LinkReport>,
    desired: &Desired,
) -> TopologyStatus {
    let origin = Origin {
        kind: OriginKind::Ovswire,
        name: object.name_any(),
    };
    let parsed = parse_ovswire(namespace, object);
    // Links another object of the lab already claimed.
    let taken: BTreeMap<&str, &str> = desired
        .rejected
        .iter()
        .filter(|r| r.lab == namespace && r.origin == origin)
        .map(|r| (r.link.as_str(), r.reason.as_str()))
        .collect();
    let mut accepted: Vec<&Wire> = Vec::new();
    let mut errors: Vec<(String, String)> = parsed
        .rejected
        .iter()
        .map(|r| (r.link.clone(), r.reason.clone()))
        .collect();
    for (wire, _) in &parsed.wires {
        match taken.get(wire.name().as_str()) {
            Some(reason) => errors.push((wire.name(), (*reason).to_owned())),
            None => accepted.push(wire),
        }
    }

    let mut entries: BTreeMap<String, LinkStatus> = BTreeMap::new();
    for wire in &accepted {
        if desired.reporter(wire) != Some(node) {
            continue;
        }
        let name = wire.name();
        if let Some(r) = reported.get(&(namespace, name.as_str())).copied() {
            let (node_a, node_b) = desired.nodes_of(wire);
            entries.insert(
                name.clone(),
                LinkStatus {
                    name,
                    state: r.state,
                    reason: r.reason.clone().filter(|s| !s.is_empty()),
                    node_a: r.node_a.clone().or_else(|| node_a.map(str::to_owned)),
                    node_b: r.node_b.clone().or_else(|| node_b.map(str::to_owned)),
                    tunnel_key: r.tunnel_key,
                    effective_mtu: r.effective_mtu,
                    impairment: r.impairment.clone(),
                },
            );
        }
    }

    let mut status = TopologyStatus::default();
    if owner(namespace, object, desired) == Some(node) {
        for wire in &accepted {
            if desired.reporter(wire).is_none() {
                let name = wire.name();
                let pods = if wire.a.0 == wire.b.0 {
                    format!("pod {}", wire.a.0)
                } else {
                    format!("pods {} and {}", wire.a.0, wire.b.0)
                };
                entries.insert(
                    name.clone(),
                    LinkStatus {
                        name,
                        state: LinkState::Pending,
                        reason: Some(format!("waiting for {pods} to be scheduled")),
                        ..LinkStatus::default()
                    },
                );
            }
        }
        for (name, reason) in &errors {
            entries.insert(
                name.clone(),
                LinkStatus {
                    name: name.clone(),
                    state: LinkState::Error,
                    reason: Some(reason.clone()),
                    ..LinkStatus::default()
                },
            );
        }
        let stored: HashMap<&str, LinkState> = object
            .status
            .iter()
            .flat_map(|s| &s.links)
            .map(|l| (l.name.as_str(), l.state))
            .collect();
        let (mut ready, mut pending, mut down, mut failed) = (0, 0, 0, 0);
        for wire in &accepted {
            let name = wire.name();
            let state = entries
                .get(&name)
                .map(|e| e.state)
                .or_else(|| stored.get(name.as_str()).copied())
                .unwrap_or(LinkState::Pending);
            match state {
                LinkState::Ready => ready += 1,
                LinkState::Pending => pending += 1,
                LinkState::Down => down += 1,
                LinkState::Error => failed += 1,
            }
        }
        let count = |n: usize| Some(u32::try_from(n).unwrap_or(u32::MAX));
        status.observed_generation = object.metadata.generation;
        status.total = count(accepted.len() + errors.len());
        status.ready = count(ready);
        status.pending = count(pending);
        status.down = count(down);
        status.errors = count(failed + errors.len());
    }
    status.links = entries.into_values().collect();
    status
}

/// The node that writes an object's counts: the node of its first scheduled pod, by name.
fn owner<'a>(namespace: &str, object: &Topology, desired: &'a Desired) -> Option<&'a str> {
    object
        .spec
        .links
        .iter()
        .flat_map(|l| &l.endpoints)
        .filter_map(|e| e.split_once(':').map(|(pod, _)| pod))
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .find_map(|pod| desired.node_of(namespace, pod))
}

#[cfg(test)]
mod tests;
