//! Throwaway Open vSwitch nodes for tests: a network namespace, a temp dir, a private
//! `ovsdb-server` and `ovs-vswitchd` (userspace `netdev` datapath), veth pairs and pod
//! namespaces, all made through netlink and removed on drop — also when a test panics.
//!
//! ```no_run
//! use ovswire_testbed::Testbed;
//! # fn main() -> Result<(), ovswire_testbed::Error> {
//! let node = Testbed::node("example")?;
//! node.add_bridge("ovsbr0")?;
//! node.veth("a1", "b1")?;
//! node.vsctl(&["add-port", "ovsbr0", "a1"])?;
//! println!("OpenFlow endpoint: {}", node.mgmt_sock("ovsbr0").display());
//! # Ok(())
//! # }
//! ```
//!
//! Several nodes can share a LAN, for cross-node wires (VXLAN over a `br-phy` underlay):
//!
//! ```no_run
//! use ovswire_testbed::Testbed;
//! # fn main() -> Result<(), ovswire_testbed::Error> {
//! let (a, b) = (Testbed::node("a")?, Testbed::node("b")?);
//! let underlay = Testbed::underlay(&[&a, &b], 9000)?;
//! let peer = underlay.ip(1).to_string();
//! a.netns().exec("ping", &["-c", "1", &peer])?;
//! # Ok(())
//! # }
//! ```
//!
//! Tests must run as root. Every name a node makes carries the test process id, so tests run in
//! parallel without collisions, and leftovers of a test process that was killed are reaped by the
//! next one. [`leftovers`] lists anything still present; the test suite ends by checking it.

pub mod frames;
mod leaks;
mod netns;
mod node;
mod underlay;
mod watch;

pub use leaks::{leftovers, reap_stale};
pub use netns::Netns;
pub use node::{Frozen, Node};
pub use ovswire_netns::link::IfaceState;
pub use underlay::{Member, Underlay};
pub use watch::{IfaceEvent, LinkWatch};

/// A pod is a bare network namespace.
pub type Pod = Netns;

/// Entry point: `Testbed::node(name)` gives a private OVS node.
#[derive(Debug)]
pub struct Testbed;

impl Testbed {
    /// Starts a private OVS node named after `name` (which only needs to be unique in the test).
    pub fn node(name: &str) -> Result<Node> {
        Node::start(name)
    }

    /// Joins `nodes` on one LAN, the underlay cross-node (VXLAN) wires ride on; `mtu` is the
    /// largest frame those wires carry (the underlay gets [`Underlay::HEADROOM`] more). Each node
    /// gets bridge `br-phy` holding its underlay NIC and its address `172.31.0.<10 + i>/24`;
    /// returns once every node pings every other. See [`Underlay`].
    pub fn underlay(nodes: &[&Node], mtu: u32) -> Result<Underlay> {
        Underlay::join(nodes, mtu)
    }
}

/// What went wrong while building or using a testbed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// File or process I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external program (an OVS daemon or oracle tool) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A namespace, link or OVS start-up step failed.
    #[error(transparent)]
    Netns(#[from] ovswire_netns::Error),
    /// The testbed could not be set up as asked.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result of testbed operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The prefix of every namespace, directory and process name a testbed makes.
pub(crate) const PREFIX: &str = "owt";
/// The prefix of the temp dirs nodes live in.
pub(crate) const DIR_PREFIX: &str = "ovswire-testbed-";
