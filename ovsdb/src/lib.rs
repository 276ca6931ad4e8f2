//! An RFC 7047 OVSDB client on tokio, with typed helpers for the `Open_vSwitch` database.
//!
//! ovswire programs Open vSwitch directly over OVSDB instead of running `ovs-vsctl`: it adds
//! thousands of ports in one transaction, waits for ovs-vswitchd to apply them through
//! `next_cfg`/`cur_cfg`, and watches interfaces with `monitor_cond`.
//!
//! Layers, bottom up:
//! - [`framing`]: splits the raw stream of concatenated JSON values (check, then parse).
//! - [`rpc`] and [`session`]: JSON-RPC 1.0 messages and a sans-IO session (ids, pending
//!   requests, echo replies, liveness probes), testable without a socket.
//! - [`value`], [`ops`], [`schema`]: the RFC 7047 data model, operations and results.
//! - [`Client`]: a cloneable handle to a spawned connection task that reconnects after
//!   ovsdb-server restarts; [`monitor`] streams typed row changes.
//! - [`vswitch`]: bridges, ports in batches, `cur_cfg` waits, `other_config` keys.
//!
//! Decoding never panics, whatever the bytes: malformed input becomes an [`Error`] naming the
//! stream offset (a fuzz target in `fuzz/` checks this).
//!
//! ```no_run
//! use ovswire_ovsdb::{Client, vswitch::{BridgeSpec, DatapathType, PortSpec, Vswitch}};
//! use std::time::Duration;
//!
//! # async fn run() -> ovswire_ovsdb::Result<()> {
//! let client = Client::connect("unix:/var/run/openvswitch/db.sock").await?;
//! let ovs = Vswitch::new(client);
//! ovs.ensure_bridge(&BridgeSpec::new("ovsbr0", DatapathType::Netdev, 1)).await?;
//! let ports: Vec<_> = (0..100).map(|i| PortSpec::new(format!("p{i}")).internal()).collect();
//! let added = ovs.add_ports("ovsbr0", &ports).await?;
//! ovs.wait_applied(added.next_cfg, Duration::from_secs(30)).await?;
//! for iface in ovs.interfaces(ports.iter().map(|p| p.name.as_str())).await? {
//!     println!("{} -> {:?}", iface.name, iface.ofport);
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod client;
mod command;
mod error;
pub mod framing;
pub mod monitor;
pub mod ops;
mod request;
pub mod rpc;
pub mod schema;
pub mod session;
pub mod value;
pub mod vswitch;

pub use client::{
    Address, Client, ClientConfig, Connection, ReconnectConfig, Transaction, new_connection,
};
pub use error::{Error, Result};
pub use monitor::{MonitorEvent, MonitorRequest, MonitorStream, RowChange, UpdateKind};
pub use ops::{Condition, Function, Mutation, Mutator, OpResult, Operation, Until};
pub use schema::Schema;
pub use session::ProbeConfig;
pub use value::{Atom, NamedUuid, Row, Uuid, Value};
