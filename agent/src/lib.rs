//! The ovswire agent: a per-node daemon that turns a topology into ports and flows on `ovsbr0`.
//!
//! It speaks OVSDB (`ovswire-ovsdb`) and OpenFlow 1.3 (`ovswire-openflow`) to Open vSwitch
//! directly and never runs OVS command-line tools.
//!
//! - [`core`]: the domain (labs, endpoints, links), the topology file, and the reconciler's
//!   pure planning: desired state, observed state, and the plan between them.

pub mod attach;
pub mod cni;
pub mod core;
pub mod grpc;
pub mod netdev;
pub mod peers;
pub mod runtime;
