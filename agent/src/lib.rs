//! The ovswire agent: a per-node daemon that turns a topology into ports and flows on `ovsbr0`.
//!
//! It speaks OVSDB ([`ovswire_ovsdb`](https://docs.rs/ovswire-ovsdb)) and OpenFlow 1.3
//! ([`ovswire_openflow`](https://docs.rs/ovswire-openflow)) to Open vSwitch directly and never
//! runs OVS command-line tools. The reconciler and its gRPC services are built on top of those two
//! libraries.
