//! The ovswire domain, shared by the agent, the CLI and the Kubernetes crate: labs, pods'
//! interfaces (endpoints) and the links between them, the rules their names and MTUs follow,
//! ovswire's topology file, and the reconciler's pure planning.
//!
//! Nothing here does I/O or knows about Kubernetes, gRPC, netlink or the OVS protocols; reading
//! a file, talking to OVS and serving APIs are the callers' part.
//!
//! - [`model`]: names and their validation, [`EndpointKey`], [`LinkKey`], [`LinkSpec`], MTUs.
//! - [`naming`]: the deterministic names and numbers derived from them (cookies, host
//!   interface names, tunnel keys).
//! - [`topology`]: the topology file format.
//! - [`plan`]: desired state, observed state, and the [`plan::Plan`] between them.
//! - [`peers`]: what other nodes report, turned into what the planner needs.
//! - [`node`]: [`node::NodeState`], what one node knows and decides, with the events each
//!   change causes.
//! - [`attach`]: the contract between the CNI layer and the node.
//! - [`impair`]: link impairments, their validation and the per-frame [`impair::Shaper`].
//!
//! ```
//! use ovswire_core::{EndpointKey, LinkKey, Topology};
//!
//! let t = Topology::parse("lab: demo\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n", "demo.yaml")
//!     .unwrap();
//! let key = LinkKey::new(
//!     EndpointKey::parse("demo", "r2:eth1").unwrap(),
//!     EndpointKey::parse("demo", "r1:eth1").unwrap(),
//! )
//! .unwrap();
//! assert_eq!(key.name(), "r1:eth1--r2:eth1");
//! assert_eq!(t.links[&key].mtu, ovswire_core::DEFAULT_MTU);
//! ```

pub mod attach;
pub mod impair;
pub mod model;
pub mod naming;
pub mod node;
pub mod peers;
pub mod plan;
pub mod stats;
pub mod topology;

pub use model::{
    AdminState, DEFAULT_MTU, EndpointKey, LinkKey, LinkSpec, MAX_IFNAME, MAX_MTU, MIN_MTU,
    MtuError, NameError, check_ifname, check_mtu, check_object_name, link_name,
};
pub use topology::{Topology, TopologyError};
