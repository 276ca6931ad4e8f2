//! The agent's gRPC services: thin edges that check and convert requests ([`convert`]) and
//! call the [`Agent`](crate::runtime::Agent).
//!
//! - [`wires`]: list, inspect, flap and watch links (local clients, the CLI).
//! - [`peers`]: what other nodes' agents call.

pub mod convert;
pub mod peers;
pub mod wires;
