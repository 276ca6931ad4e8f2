//! The custom resources ovswire reads: its own `Topology` (`ovswire.io/v1alpha1`, one object
//! per lab) and meshnet's (`networkop.co.uk/v1beta1`, one object per pod, as KNE writes them).

pub mod meshnet;
pub mod ovswire;

pub use meshnet::{
    MeshnetLink, MeshnetSkipped, MeshnetStatus, MeshnetTopology, MeshnetTopologySpec,
};
pub use ovswire::{
    AdminState, Link, LinkState, LinkStatus, Topology, TopologySpec, TopologyStatus,
};
