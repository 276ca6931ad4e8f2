//! What the cluster asks of the agents: the wires, where their pods run, and how to reach each
//! node.

use std::collections::BTreeMap;
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

    /// The wires with at least one end on `node`.
    pub fn wires_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Wire> + 'a {
        self.wires.iter().filter(move |w| {
            let (a, b) = self.nodes_of(w);
            a == Some(node) || b == Some(node)
        })
    }

    /// A node's underlay address.
    pub fn addr_of(&self, node: &str) -> Option<IpAddr> {
        self.node_addrs.get(node).copied()
    }
}
