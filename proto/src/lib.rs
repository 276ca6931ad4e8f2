//! The gRPC API of the ovswire agent (package `ovswire.v1`).
//!
//! - `Cni`: the `ovswire-cni` plugin hands each CNI request, as the runtime made it, to the
//!   agent on its node over a root-only unix socket, and prints the answer.
//! - `Wires`: tests and the `ovswire` CLI list links, take them down and up, and watch them.
//!
//! Enable the `client` feature for the generated clients and `server` for the servers; the
//! message types are always there. The `.proto` files are in `proto/ovswire/v1/` and are
//! compiled with protox, so building needs no `protoc`.

/// Package `ovswire.v1`.
#[allow(unreachable_pub, missing_debug_implementations, clippy::use_self)]
pub mod v1 {
    tonic::include_proto!("ovswire.v1");
}
