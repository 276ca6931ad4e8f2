//! End-to-end tests and benchmarks of ovswire on a real Open vSwitch.
//!
//! The tests live in `tests/`; `ovswire-bench` (in `src/bin/`) measures ovswire next to the
//! command-line baseline in the same run. This library holds what both share.

pub mod agent;
pub mod bench;
pub mod cluster;
pub mod measure;
