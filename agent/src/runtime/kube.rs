//! The Kubernetes topology source: ovswire and meshnet `Topology` objects, pods and nodes,
//! watched through `ovswire-k8s`, feed the same reconciler as a topology file; link status is
//! written back to the Topology objects.
//!
//! The reconcile loop starts only once every watched kind has been listed, so a restarted agent
//! never acts on an empty topology and unwires what is running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ovswire_k8s::crd::LinkState;
use ovswire_k8s::{Desired, LinkReport, Source, StatusWriter, Wire};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Agent;
use crate::core::model::{AdminState, DEFAULT_MTU, EndpointKey, LinkKey, LinkSpec};
use crate::core::plan::LinkStatus;

/// How long link events are gathered before one status report.
const REPORT_DELAY: Duration = Duration::from_millis(200);

/// The agent's links for the wires with an end on `node`; wires with invalid names are
/// skipped with a warning (the source already reports them on the Topology).
fn links_of(desired: &Desired, node: &str) -> BTreeMap<LinkKey, LinkSpec> {
    let mut links = BTreeMap::new();
    for w in desired.wires_on(node) {
        match link_of(w) {
            Ok(spec) => {
                links.insert(spec.key.clone(), spec);
            }
            Err(e) => warn!(lab = w.lab, link = w.name(), error = e, "link skipped"),
        }
    }
    links
}

fn link_of(w: &Wire) -> Result<LinkSpec, String> {
    let end = |(pod, ifname): &(String, String)| {
        EndpointKey::new(&w.lab, pod, ifname).map_err(|e| e.to_string())
    };
    let key = LinkKey::new(end(&w.a)?, end(&w.b)?).map_err(|e| e.to_string())?;
    Ok(LinkSpec {
        key,
        mtu: w.mtu.unwrap_or(DEFAULT_MTU),
        admin: if w.down {
            AdminState::Down
        } else {
            AdminState::Up
        },
    })
}

/// How every link with a local end stands, for the Topology status.
fn reports(agent: &Agent) -> Vec<LinkReport> {
    agent
        .links()
        .into_iter()
        .map(|(spec, status)| {
            let info = agent.link_info(&spec);
            let (state, reason) = match status {
                LinkStatus::Up => (LinkState::Ready, info.mtu_note.clone()),
                LinkStatus::Down => (LinkState::Down, None),
                LinkStatus::Pending(r) => (LinkState::Pending, Some(r)),
                LinkStatus::Error(r) => (LinkState::Error, Some(r)),
            };
            let (a, b) = (spec.key.a(), spec.key.b());
            let some = |s: String| (!s.is_empty()).then_some(s);
            LinkReport {
                lab: spec.key.lab().to_owned(),
                link: format!("{}:{}--{}:{}", a.pod, a.ifname, b.pod, b.ifname),
                state,
                reason,
                node_a: some(info.node_a),
                node_b: some(info.node_b),
                tunnel_key: info.tunnel_key,
                effective_mtu: Some(info.effective_mtu),
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
    let client = kube::Client::try_default().await.context(
        "cannot reach the Kubernetes API: in a pod the service account is used, elsewhere \
         KUBECONFIG; check the agent's RBAC (deploy/rbac.yaml)",
    )?;
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
                    bail!("the Kubernetes source stopped");
                }
                let d = desired.borrow_and_update().clone();
                if !d.synced {
                    continue;
                }
                for (peer, addr) in &d.node_addrs {
                    if *peer != here {
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
                    bail!("the agent stopped");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wires_become_links_with_defaults() {
        let w = Wire {
            lab: "lab".into(),
            a: ("r1".into(), "eth1".into()),
            b: ("r2".into(), "eth1".into()),
            mtu: None,
            down: true,
        };
        let l = link_of(&w).unwrap();
        assert_eq!(l.key.to_string(), "lab/r1:eth1--r2:eth1");
        assert_eq!((l.mtu, l.admin), (DEFAULT_MTU, AdminState::Down));
        let bad = Wire {
            b: ("r2".into(), "eth/1".into()),
            ..w
        };
        assert!(link_of(&bad).is_err());
    }

    #[test]
    fn kne_meshnet_objects_give_the_same_links_as_the_static_topology() {
        // What KNE writes for a 3-router ring: one object per pod, each link from both sides.
        let kne = r#"
- apiVersion: networkop.co.uk/v1beta1
  kind: Topology
  metadata: {name: r1, namespace: ring}
  spec:
    links:
      - {uid: 1, peer_pod: r2, local_intf: eth1, peer_intf: eth1}
      - {uid: 3, peer_pod: r3, local_intf: eth2, peer_intf: eth2}
- apiVersion: networkop.co.uk/v1beta1
  kind: Topology
  metadata: {name: r2, namespace: ring}
  spec:
    links:
      - {uid: 1, peer_pod: r1, local_intf: eth1, peer_intf: eth1}
      - {uid: 2, peer_pod: r3, local_intf: eth2, peer_intf: eth1}
- apiVersion: networkop.co.uk/v1beta1
  kind: Topology
  metadata: {name: r3, namespace: ring}
  spec:
    links:
      - {uid: 2, peer_pod: r2, local_intf: eth1, peer_intf: eth2}
      - {uid: 3, peer_pod: r1, local_intf: eth2, peer_intf: eth2}
"#;
        let objects: Vec<ovswire_k8s::crd::MeshnetTopology> = serde_yaml_ng::from_str(kne).unwrap();
        let wires = ovswire_k8s::wires_from_meshnet("ring", &objects).unwrap();
        let from_kne: BTreeMap<LinkKey, LinkSpec> = wires
            .iter()
            .map(|w| {
                let l = link_of(w).unwrap();
                (l.key.clone(), l)
            })
            .collect();
        let file = crate::core::topology::Topology::parse(
            "lab: ring\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - endpoints: [r2:eth2, r3:eth1]\n  - endpoints: [r3:eth2, r1:eth2]\n",
            "ring.yaml",
        )
        .unwrap();
        assert_eq!(from_kne, file.links);
    }
}
