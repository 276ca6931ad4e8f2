//! What the cluster asks of the agents: the wires, where their pods run, and how to reach each
//! node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::wire::{Rejected, Wire};

/// Everything the agents need from the Kubernetes API, rebuilt from the watch caches whenever
/// something that matters changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// `false` until the first complete list of every watched kind has arrived: an agent must
    /// not act on an unsynced (empty) `Desired`, or it would unwire everything at start.
    pub synced: bool,
    /// Every wire of every lab in the cluster, sorted by lab and name.
    pub wires: Vec<Wire>,
    /// Links the Topology objects ask for but that cannot be made, with the reason.
    pub rejected: Vec<Rejected>,
    /// `(namespace, pod)` → the node it is scheduled on, for the pods the wires name.
    pub pod_nodes: BTreeMap<(String, String), String>,
    /// Node → its underlay address: annotation `ovswire.io/underlay-ip` when set, else the
    /// node's first `InternalIP`.
    pub node_addrs: BTreeMap<String, IpAddr>,
    /// The nodes an ovswire agent's pod is scheduled on (a pod labelled
    /// [`AGENT_LABEL`](crate::AGENT_LABEL) in the agents' own namespace): the only nodes
    /// agents exchange with, so no node that runs none is called or let in.
    pub agent_nodes: BTreeSet<String>,
}

impl Desired {
    /// The node running pod `pod` of lab `lab`, once it is scheduled.
    pub fn node_of(&self, lab: &str, pod: &str) -> Option<&str> {
        self.pod_nodes
            .get(&(lab.to_owned(), pod.to_owned()))
            .map(String::as_str)
    }

    /// The nodes of a wire's two ends (`a`, `b`), each once its pod is scheduled.
    pub fn nodes_of(&self, wire: &Wire) -> (Option<&str>, Option<&str>) {
        (
            self.node_of(&wire.lab, &wire.a.0),
            self.node_of(&wire.lab, &wire.b.0),
        )
    }

    /// The node whose agent reports the wire's status: the node of end `a`, or of end `b` while
    /// `a`'s pod is not scheduled. Every agent computes the same answer, so each link has one
    /// reporter.
    pub fn reporter(&self, wire: &Wire) -> Option<&str> {
        let (a, b) = self.nodes_of(wire);
        a.or(b)
    }

    /// The wires with at least one end on `node`, and every member's wire of the LAN segments
    /// with a member on `node` (its frames go to the other members' nodes).
    pub fn wires_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Wire> + 'a {
        let here = move |w: &Wire| {
            let (a, b) = self.nodes_of(w);
            a == Some(node) || b == Some(node)
        };
        let segments: BTreeSet<(&str, &str)> = self
            .wires
            .iter()
            .filter(|w| here(w))
            .filter_map(|w| Some((w.lab.as_str(), w.segment.as_deref()?)))
            .collect();
        self.wires.iter().filter(move |w| {
            here(w)
                || w.segment
                    .as_deref()
                    .is_some_and(|s| segments.contains(&(w.lab.as_str(), s)))
        })
    }

    /// A node's underlay address.
    pub fn addr_of(&self, node: &str) -> Option<IpAddr> {
        self.node_addrs.get(node).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_with_a_member_of_a_segment_gets_every_members_wire() {
        let wire = |pod: &str, seg_if: &str| Wire {
            lab: "lab".into(),
            a: ("lan".into(), seg_if.into()),
            b: (pod.into(), "eth1".into()),
            mtu: None,
            down: false,
            impair: Default::default(),
            segment: Some("lan".into()),
        };
        let mut p2p = wire("r3", "x");
        p2p.a = ("r4".into(), "eth1".into());
        p2p.segment = None;
        let d = Desired {
            synced: true,
            wires: vec![wire("r1", "e1"), wire("r2", "e2"), wire("r3", "e3"), p2p],
            pod_nodes: [("r1", "n1"), ("r2", "n2"), ("r3", "n3"), ("r4", "n3")]
                .into_iter()
                .map(|(p, n)| (("lab".to_owned(), p.to_owned()), n.to_owned()))
                .collect(),
            ..Desired::default()
        };
        let on = |node| -> Vec<String> { d.wires_on(node).map(Wire::name).collect() };
        assert_eq!(
            on("n1"),
            ["lan:e1--r1:eth1", "lan:e2--r2:eth1", "lan:e3--r3:eth1"]
        );
        assert_eq!(on("n3").len(), 4);
        assert!(on("n4").is_empty());
        // Each member's wire is reported by its member's node.
        assert_eq!(d.reporter(&d.wires[1]), Some("n2"));
    }
}
