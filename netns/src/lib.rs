//! Network namespaces, links and a private Open vSwitch, for everything in ovswire that needs
//! them: the agent (pod interfaces), the CLI (lab nodes) and the testbed (test nodes).
//!
//! - Named namespaces the way iproute2 keeps them under `/run/netns`, so `ip netns` and ovswire
//!   see each other's: [`create`], [`open`], [`delete`], [`path`], [`exists`].
//! - Work inside a namespace given by path, on a thread made for it: a closure ([`run`]) or a
//!   future with a netlink handle ([`block_on`], and [`spawn`] for async callers).
//! - The rtnetlink requests on links and addresses ([`link`]) and the ethtool ioctl
//!   ([`ethtool`]).
//! - Raw Ethernet frames on an interface ([`packet`]).
//! - A private Open vSwitch's database file, command lines and sockets ([`ovs`]).
//!
//! Everything here needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`).
//!
//! ```no_run
//! use ovswire_netns::link::{self, VethEnd};
//! # fn main() -> ovswire_netns::Result<()> {
//! let r1 = ovswire_netns::create("r1")?;
//! let r2 = ovswire_netns::create("r2")?;
//! let peer = VethEnd::new("eth1").netns(&r2);
//! ovswire_netns::block_on(&r1, |h| async move {
//!     link::add_veth(&h, VethEnd::new("eth1"), peer, Some(9000)).await?;
//!     link::set_up(&h, "eth1").await
//! })??;
//! let state = ovswire_netns::block_on(&r2, |h| async move { link::state(&h, "eth1").await })??;
//! assert_eq!(state.mtu, 9000);
//! ovswire_netns::delete("r1")?;
//! ovswire_netns::delete("r2")?;
//! # Ok(())
//! # }
//! ```

mod enter;
mod error;
pub mod ethtool;
pub mod link;
mod namespace;
pub mod ovs;
pub mod packet;

pub use enter::{block_on, enter, run, spawn};
pub use error::{Error, Result};
pub use namespace::{
    NETNS_DIR, check_name, check_own_netns, check_pod_netns, create, delete, exists,
    kill_processes, open, path,
};
