//! The agent's gRPC services: thin edges that check and convert requests ([`convert`]) and
//! call the [`Agent`](crate::runtime::Agent).
//!
//! - [`cni`]: the CNI plugin's calls; each request runs on a task of its own.
//! - [`wires`]: list, inspect, flap and watch links (local clients, the CLI).
//! - [`peers`]: what other nodes' agents call, and the client that calls them.
//! - [`tls`]: the Peers API's mutual TLS (identity files, accept loop, connector).
//! - [`metrics`]: Prometheus metrics over HTTP (not gRPC), when asked for.

pub mod cni;
pub mod convert;
pub mod limits;
pub mod metrics;
pub mod peers;
pub mod tls;
pub mod wires;
