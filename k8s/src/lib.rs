//! The Kubernetes side of ovswire: the Topology custom resources, the watch-driven source of
//! wires, and link status write-back.
//!
//! - [`crd`]: ovswire's `Topology` (`ovswire.io/v1alpha1`, one object per lab; the lab is the
//!   namespace) and meshnet's (`networkop.co.uk/v1beta1`, one object per pod, as KNE writes
//!   them), with the CRD YAML in [`crdgen`].
//! - [`wires_from_ovswire`] and [`wires_from_meshnet`] turn either kind into [`Wire`]s.
//! - [`Source`] watches both kinds, pods and nodes, and publishes a [`Desired`]: the wires,
//!   which node runs each pod, and each node's underlay address.
//! - [`StatusWriter`] writes the agents' [`LinkReport`]s into the Topology's status with
//!   server-side apply, one field manager per node.
//!
//! ```no_run
//! use ovswire_k8s::{Desired, LinkReport, Source, StatusWriter};
//! use ovswire_k8s::crd::LinkState;
//! use tokio::sync::watch;
//!
//! # async fn agent(client: kube::Client, node: String) {
//! let source = Source::new(client.clone());
//! let (tx, mut desired) = watch::channel(Desired::default());
//! let (writer, reporter) =
//!     StatusWriter::new(client, node.clone(), source.topologies(), desired.clone());
//! tokio::spawn(source.run(tx));
//! tokio::spawn(writer.run());
//! while desired.changed().await.is_ok() {
//!     let d = desired.borrow_and_update().clone();
//!     if !d.synced {
//!         continue;
//!     }
//!     // Wire what d.wires_on(&node) lists, then report how each link stands:
//!     let reports = d
//!         .wires_on(&node)
//!         .map(|w| LinkReport {
//!             lab: w.lab.clone(),
//!             link: w.name(),
//!             state: LinkState::Pending,
//!             reason: Some("waiting for the pods' interfaces".into()),
//!             node_a: None,
//!             node_b: None,
//!             tunnel_key: None,
//!             effective_mtu: w.mtu,
//!             impairment: None,
//!         })
//!         .collect();
//!     reporter.report(reports);
//! }
//! # }
//! ```

pub mod crd;
pub mod crdgen;
mod desired;
mod error;
#[cfg(test)]
mod fake_api;
mod source;
mod status;
mod wire;

pub use desired::Desired;
pub use error::{Error, Result};
pub use source::{AGENT_LABEL, Source, SourceConfig, UNDERLAY_ANNOTATION};
pub use status::{FIELD_MANAGER_PREFIX, LinkReport, StatusConfig, StatusReporter, StatusWriter};
pub use wire::{Origin, OriginKind, Rejected, Wire, wires_from_meshnet, wires_from_ovswire};
