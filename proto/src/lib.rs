//! The gRPC API of the ovswire agent (package `ovswire.v1`).
//!
//! It will carry two services: `Cni`, which the `ovswire-cni` plugin uses to hand CNI requests
//! to the agent on the node, and `Wires`, which tests and the `ovswire` CLI use to list links,
//! flap them and watch their state. The services are defined as the agent gains them.
