//! `ovswire-cni`: the CNI plugin that Multus (or any CNI runtime) invokes.
//!
//! It stays thin on purpose: it forwards each CNI request to the ovswire agent on the same node
//! over a root-only unix socket and prints the spec-correct result. The agent does the wiring,
//! so the CNI call never waits for it.
