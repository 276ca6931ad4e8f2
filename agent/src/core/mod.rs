//! The domain: labs, endpoints, links, and the reconciler's pure planning. Nothing here does
//! I/O or knows about Kubernetes, gRPC or OVS protocols.

pub mod model;
pub mod naming;
pub mod plan;
pub mod topology;
