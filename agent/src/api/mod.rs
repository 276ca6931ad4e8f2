//! The agent's gRPC services: the glue between tonic and the agent's own types.

pub mod cni;
