//! The Kubernetes topology source: ovswire and meshnet `Topology` objects, pods and nodes,
//! watched through `ovswire-k8s`, feed the same reconciler as a topology file; link status is
//! written back to the Topology objects.
//!
//! The reconcile loop starts only once every watched kind has been listed, so a restarted agent
//! never acts on an empty topology and unwires what is running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ovswire_k8s::crd::LinkState;
use ovswire_k8s::{Desired, LinkReport, Source, StatusWriter};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Agent;
use crate::error::{Error, Result};
use ovswire_core::model::{LinkKey, LinkSpec};
use ovswire_core::plan::OperState;

/// How long link events are gathered before one status report.
const REPORT_DELAY: Duration = Duration::from_millis(200);

/// The agent's links for the wires with an end on `node`; wires with invalid names are
/// skipped with a warning (the source already reports them on the Topology).
fn links_of(desired: &Desired, node: &str) -> BTreeMap<LinkKey, LinkSpec> {
    let mut links = BTreeMap::new();
    for w in desired.wires_on(node) {
        match LinkSpec::try_from(w) {
            Ok(spec) => {
                links.insert(spec.key.clone(), spec);
            }
            Err(e) => warn!(lab = w.lab, link = w.name(), error = %e, "link skipped"),
        }
    }
    links
}

/// How every link with a local end stands, for the Topology status.
fn reports(agent: &Agent) -> Vec<LinkReport> {
    agent
        .links()
        .into_iter()
        .map(|(spec, status)| {
            let info = agent.link_info(&spec);
            let (state, reason) = match status {
                OperState::Up => (LinkState::Ready, info.mtu_note.clone()),
                OperState::Down => (LinkState::Down, None),
                OperState::Pending(r) => (LinkState::Pending, Some(r)),
                OperState::Error(r) => (LinkState::Error, Some(r)),
            };
            let some = |s: String| (!s.is_empty()).then_some(s);
            LinkReport {
                lab: spec.key.lab().to_owned(),
                link: spec.key.name(),
                state,
                reason,
                node_a: some(info.node_a),
                node_b: some(info.node_b),
                tunnel_key: info.tunnel_key,
                effective_mtu: Some(info.effective_mtu),
                impairment: (!spec.impair.is_none()).then(|| spec.impair.to_string()),
            }
        })
        .collect()
}

/// Runs the Kubernetes source for `agent` on node `node` until the process ends; starts the
/// reconcile loop (with OpenFlow `events`) once the source has listed everything.
pub async fn run(
    agent: Arc<Agent>,
    node: String,
    events: ovswire_openflow::conn::Events,
) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .map_err(|source| Error::Kube {
            what: "cannot reach the Kubernetes API: in a pod the service account is used, \
                   elsewhere KUBECONFIG; check the agent's RBAC (deploy/rbac.yaml)",
            source,
        })?;
    let source = Source::new(client.clone());
    let (tx, mut desired) = watch::channel(Desired::default());
    let (writer, reporter) =
        StatusWriter::new(client, node.clone(), source.topologies(), desired.clone());
    tokio::spawn(source.run(tx));
    tokio::spawn(writer.run());
    let mut events = Some(events);
    let mut link_events = agent.subscribe();
    let here = agent.here().node;
    loop {
        tokio::select! {
            changed = desired.changed() => {
                if changed.is_err() {
                    return Err(Error::Stopped("the Kubernetes source".into()));
                }
                let d = desired.borrow_and_update().clone();
                if !d.synced {
                    continue;
                }
                // Peers are the nodes an agent runs on. A node stays a peer when its agent's pod
                // goes (a rolling update): its wires stay, their liveness is the tunnels' BFD.
                for (peer, addr) in &d.node_addrs {
                    if *peer != here && d.agent_nodes.contains(peer) {
                        agent.set_peer_address(peer, Some(addr.to_string()));
                    }
                }
                agent.set_links(links_of(&d, &node));
                if let Some(ev) = events.take() {
                    info!(wires = d.wires.len(), "topology listed; wiring");
                    tokio::spawn(agent.clone().run(ev));
                }
                reporter.report(reports(&agent));
            }
            ev = link_events.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = ev {
                    return Err(Error::Stopped("the agent's link events".into()));
                }
                tokio::time::sleep(REPORT_DELAY).await;
                link_events = link_events.resubscribe();
                if events.is_none() {
                    reporter.report(reports(&agent));
                }
            }
        }
    }
}
