//! The Kubernetes source: watches Topology objects (ovswire's and meshnet's), pods and nodes in
//! the whole cluster through kube watchers and reflector caches, and publishes a [`Desired`]
//! whenever something that matters changes.
//!
//! There is no polling and no per-link request: four watches (each a LIST, then a long WATCH
//! resumed from where it stopped) feed in-memory caches, and each change only marks the caches
//! dirty. Bursts (a lab of a thousand pods being created) are coalesced: `Desired` is rebuilt
//! once the watches have been quiet for [`SourceConfig::debounce`], and at least every
//! [`SourceConfig::max_delay`] while changes keep coming. It is published only when it differs
//! from the last one, so pod status churn and unrelated namespaces wake nobody.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, NodeStatus, Pod, PodSpec};
use kube::api::{Api, ObjectMeta};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::crd::{MeshnetTopology, Topology};
use crate::desired::Desired;
use crate::wire::plan_lab;

/// Node annotation that sets the node's underlay address (the address other nodes send its
/// tunnels to) when the node's `InternalIP` is not the right one.
pub const UNDERLAY_ANNOTATION: &str = "ovswire.io/underlay-ip";

/// How the source coalesces changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// Publish once the watches have been quiet this long.
    pub debounce: Duration,
    /// Publish at least this often while changes keep arriving.
    pub max_delay: Duration,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// The watches and their caches. [`Source::topologies`] shares the cache of ovswire Topology
/// objects with the [`StatusWriter`](crate::StatusWriter).
pub struct Source {
    client: Client,
    config: SourceConfig,
    topologies: Writer<Topology>,
    /// The namespace the agents run in (the client's: in a pod, its service account's).
    agent_namespace: String,
}

impl Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The watched kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ovswire = 0,
    Meshnet = 1,
    Pods = 2,
    Nodes = 3,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Self::Ovswire => "topologies.ovswire.io",
            Self::Meshnet => "topologies.networkop.co.uk",
            Self::Pods => "pods",
            Self::Nodes => "nodes",
        }
    }
}

/// What a watch event means for the source.
#[derive(Debug)]
enum Signal {
    /// The cache changed.
    Changed,
    /// A (re)list started or delivered an object: the cache changes only at its end.
    Listing,
    /// A complete list has been swapped into the cache.
    Synced,
    /// The watch failed; it retries with backoff.
    Failed(watcher::Error),
}

impl Source {
    /// A source reading through `client`, with the default [`SourceConfig`].
    pub fn new(client: Client) -> Self {
        Self {
            agent_namespace: client.default_namespace().to_owned(),
            client,
            config: SourceConfig::default(),
            topologies: Writer::default(),
        }
    }

    /// Replaces the coalescing settings.
    #[must_use]
    pub fn with_config(mut self, config: SourceConfig) -> Self {
        self.config = config;
        self
    }

    /// The cache of ovswire Topology objects (filled once [`run`](Self::run) runs), for the
    /// [`StatusWriter`](crate::StatusWriter).
    pub fn topologies(&self) -> Store<Topology> {
        self.topologies.as_reader()
    }

    /// Watches until every receiver of `tx` is gone, publishing a [`Desired`] with `synced: true`
    /// once each watched kind has been listed completely, then after every relevant change.
    ///
    /// Watch failures (API server unreachable, missing permissions) are logged and retried with
    /// backoff; until the first complete lists arrive nothing is published. A Topology CRD that
    /// is not installed (404) counts as an empty list, so a cluster with only one of the two
    /// CRDs works.
    pub async fn run(self, tx: watch::Sender<Desired>) {
        let Self {
            client,
            config,
            topologies,
            agent_namespace,
        } = self;
        let (meshnet, meshnet_writer) = reflector::store::<MeshnetTopology>();
        let (pods, pod_writer) = reflector::store::<Pod>();
        let (nodes, node_writer) = reflector::store::<Node>();
        let topology_store = topologies.as_reader();
        let mut events = stream::select_all([
            watch(
                Api::<Topology>::all(client.clone()),
                watcher::Config::default(),
                strip_topology,
                topologies,
                Kind::Ovswire,
            ),
            watch(
                Api::<MeshnetTopology>::all(client.clone()),
                watcher::Config::default(),
                strip_meshnet,
                meshnet_writer,
                Kind::Meshnet,
            ),
            // Only scheduled pods: an unscheduled pod has no node to be wired on yet.
            watch(
                Api::<Pod>::all(client.clone()),
                watcher::Config::default().fields("spec.nodeName!="),
                strip_pod,
                pod_writer,
                Kind::Pods,
            ),
            watch(
                Api::<Node>::all(client),
                watcher::Config::default(),
                strip_node,
                node_writer,
                Kind::Nodes,
            ),
        ]);

        let mut synced = [false; 4];
        let mut absent_logged = [false; 4];
        let mut problems = BTreeSet::new();
        // Start of the current burst of changes, and when to publish it.
        let mut burst: Option<(Instant, Instant)> = None;
        loop {
            let publish_at = burst.map(|(_, at)| at);
            tokio::select! {
                event = events.next() => {
                    let Some((kind, signal)) = event else { return };
                    let changed = match signal {
                        Signal::Changed => true,
                        Signal::Listing => false,
                        Signal::Synced => {
                            if !synced[kind as usize] {
                                debug!(kind = kind.describe(), "listed");
                            }
                            synced[kind as usize] = true;
                            true
                        }
                        Signal::Failed(e) if crd_missing(kind, &e) => {
                            if !absent_logged[kind as usize] {
                                info!(
                                    kind = kind.describe(),
                                    "CustomResourceDefinition not installed; reading none of \
                                     these until it is (deploy/crds has it)"
                                );
                                absent_logged[kind as usize] = true;
                            }
                            let first = !synced[kind as usize];
                            synced[kind as usize] = true;
                            first
                        }
                        Signal::Failed(e) => {
                            warn!(kind = kind.describe(), error = %e, hint = hint(&e), "watch failed; retrying");
                            false
                        }
                    };
                    if changed {
                        let now = Instant::now();
                        let start = burst.map_or(now, |(start, _)| start);
                        let at = (now + config.debounce).min(start + config.max_delay);
                        burst = Some((start, at));
                    }
                }
                () = sleep_until(publish_at) => {
                    burst = None;
                    if synced.iter().all(|s| *s) {
                        let (desired, found) = build(
                            &topology_store.state(),
                            &meshnet.state(),
                            &pods.state(),
                            &nodes.state(),
                            &agent_namespace,
                        );
                        log_problems(&mut problems, found);
                        tx.send_if_modified(|current| {
                            if *current == desired {
                                false
                            } else {
                                *current = desired;
                                true
                            }
                        });
                    }
                }
                () = tx.closed() => return,
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One kind's watch, feeding its cache, as signals for the source.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
    writer: Writer<K>,
    kind: Kind,
) -> BoxStream<'static, (Kind, Signal)>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    signals(
        watcher(api, config)
            .default_backoff()
            .modify(strip)
            .reflect(writer),
    )
    .map(move |signal| (kind, signal))
    .boxed()
}

fn signals<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Signal> + Send {
    events.map(|event| match event {
        Ok(watcher::Event::InitDone) => Signal::Synced,
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => Signal::Listing,
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => Signal::Changed,
        Err(e) => Signal::Failed(e),
    })
}

fn api_code(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(r))
        | watcher::Error::WatchStartFailed(kube::Error::Api(r))
        | watcher::Error::WatchFailed(kube::Error::Api(r))
        | watcher::Error::WatchError(r) => Some(r.code),
        _ => None,
    }
}

/// Whether the failure says that a Topology CRD is not installed.
fn crd_missing(kind: Kind, e: &watcher::Error) -> bool {
    matches!(kind, Kind::Ovswire | Kind::Meshnet) && api_code(e) == Some(404)
}

fn hint(e: &watcher::Error) -> &'static str {
    match api_code(e) {
        Some(401 | 403) => {
            "the agent's ServiceAccount needs get/list/watch on pods, nodes and topologies: \
             apply deploy/rbac.yaml"
        }
        Some(410) => "the watch fell behind; it lists again",
        _ => "check that the API server is reachable from the node",
    }
}

/// Keeps what the status writer reads: spec, status, generation, and the status owners.
fn strip_topology(t: &mut Topology) {
    if let Some(fields) = &mut t.metadata.managed_fields {
        fields.retain(|f| f.subresource.as_deref() == Some("status"));
        for f in fields.iter_mut() {
            f.fields_v1 = None;
        }
    }
    t.metadata.annotations = None;
    t.metadata.labels = None;
}

fn strip_meshnet(t: &mut MeshnetTopology) {
    t.metadata.managed_fields = None;
    t.metadata.annotations = None;
    t.metadata.labels = None;
    t.status = None;
}

/// The label (key and value) of the agents' pods, as `deploy/agent/daemonset.yaml` sets it.
pub const AGENT_LABEL: (&str, &str) = ("app.kubernetes.io/name", "ovswire-agent");

/// Whether a pod carries the agents' label.
fn is_agent(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(AGENT_LABEL.0))
        .is_some_and(|v| v == AGENT_LABEL.1)
}

/// Keeps a pod's name and node, and the agents' label: the cache holds every scheduled pod of
/// the cluster.
fn strip_pod(pod: &mut Pod) {
    let node_name = pod.spec.as_mut().and_then(|s| s.node_name.take());
    let agent = is_agent(pod);
    *pod = Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.take(),
            namespace: pod.metadata.namespace.take(),
            labels: agent.then(|| [(AGENT_LABEL.0.to_owned(), AGENT_LABEL.1.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name,
            ..PodSpec::default()
        }),
        status: None,
    };
}

/// Keeps a node's name, underlay annotation and addresses.
fn strip_node(node: &mut Node) {
    let underlay = node
        .metadata
        .annotations
        .as_mut()
        .and_then(|a| a.remove(UNDERLAY_ANNOTATION));
    let addresses = node.status.as_mut().and_then(|s| s.addresses.take());
    *node = Node {
        metadata: ObjectMeta {
            name: node.metadata.name.take(),
            annotations: underlay.map(|u| [(UNDERLAY_ANNOTATION.to_owned(), u)].into()),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses,
            ..NodeStatus::default()
        }),
    };
}

/// Builds [`Desired`] from the caches, with the problems found (for the log).
pub(crate) fn build(
    ovswire: &[Arc<Topology>],
    meshnet: &[Arc<MeshnetTopology>],
    pods: &[Arc<Pod>],
    nodes: &[Arc<Node>],
    agent_namespace: &str,
) -> (Desired, BTreeSet<String>) {
    type Lab<'a> = (Vec<&'a Topology>, Vec<&'a MeshnetTopology>);
    let mut labs: BTreeMap<String, Lab<'_>> = BTreeMap::new();
    for t in ovswire {
        labs.entry(t.namespace().unwrap_or_default())
            .or_default()
            .0
            .push(t);
    }
    for t in meshnet {
        labs.entry(t.namespace().unwrap_or_default())
            .or_default()
            .1
            .push(t);
    }
    let mut desired = Desired {
        synced: true,
        ..Desired::default()
    };
    for (namespace, (ovswire, meshnet)) in &labs {
        let plan = plan_lab(namespace, ovswire, meshnet);
        desired
            .wires
            .extend(plan.wires.into_iter().map(|(wire, _)| wire));
        desired.rejected.extend(plan.rejected);
    }
    desired.wires.sort();
    desired.rejected.sort();

    let wanted: BTreeSet<(&str, &str)> = desired
        .wires
        .iter()
        .flat_map(|w| {
            [
                (w.lab.as_str(), w.a.0.as_str()),
                (w.lab.as_str(), w.b.0.as_str()),
            ]
        })
        .collect();
    for pod in pods {
        let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            continue;
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) else {
            continue;
        };
        if wanted.contains(&(namespace.as_str(), name.as_str())) {
            desired
                .pod_nodes
                .insert((namespace.clone(), name.clone()), node.clone());
        }
        if is_agent(pod) && namespace == agent_namespace {
            desired.agent_nodes.insert(node.clone());
        }
    }

    let mut problems: BTreeSet<String> = desired.rejected.iter().map(|r| r.to_string()).collect();
    for node in nodes {
        let name = node.name_any();
        match underlay_addr(node) {
            Ok(Some(addr)) => {
                desired.node_addrs.insert(name, addr);
            }
            Ok(None) => {}
            Err(problem) => {
                problems.insert(format!("node {name}: {problem}"));
            }
        }
    }
    (desired, problems)
}

/// The node's underlay address: its annotation, else its first `InternalIP`.
fn underlay_addr(node: &Node) -> Result<Option<IpAddr>, String> {
    if let Some(value) = node.annotations().get(UNDERLAY_ANNOTATION) {
        return value.trim().parse().map(Some).map_err(|_| {
            format!(
                "annotation {UNDERLAY_ANNOTATION}={value:?} is not an IP address; set it to \
                 the node's underlay address (like 192.0.2.10) or remove it to use the node's \
                 InternalIP"
            )
        });
    }
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    Ok(addresses
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok()))
}

/// Logs each problem once when it appears, and once when it is gone.
fn log_problems(known: &mut BTreeSet<String>, found: BTreeSet<String>) {
    for p in found.difference(known) {
        warn!(problem = %p, "topology problem; the rest of the lab is wired");
    }
    for p in known.difference(&found) {
        info!(problem = %p, "topology problem resolved");
    }
    *known = found;
}

#[cfg(test)]
mod tests;
