//! The ovswire agent: a per-node daemon that turns a topology into ports and flows on `ovsbr0`.
//!
//! It speaks OVSDB (`ovswire-ovsdb`) and OpenFlow 1.3 (`ovswire-openflow`) to Open vSwitch
//! directly and never runs OVS command-line tools.
//!
//! The domain it works on (labs, endpoints, links, the topology file, the reconciler's pure
//! planning) is the `ovswire-core` crate.

pub mod api;
pub mod cni;
pub mod error;
pub mod netdev;
pub mod pki;
pub mod run;
pub mod runtime;
