//! The `ovswire` command: local labs on one machine, link control and watch against any agent,
//! graphs of a topology, and the topology file formats it reads (ovswire's own, containerlab's
//! `.clab.yml`, KNE's and k8s-topo's).

pub mod engine;
pub mod file;
pub mod graph;
pub mod kinds;
pub mod lab;
pub mod live;
pub mod names;
pub mod ovs;
pub mod paths;
pub mod process;
pub mod spec;
pub mod table;
pub mod topo;
pub mod wires;
