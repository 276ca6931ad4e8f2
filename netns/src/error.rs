//! The one error type of the crate.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong, and on what.
///
/// Each message ends with its cause (errno, I/O error) in full, and the cause is deliberately not
/// a `source()`: error chains printed as `{:#}` would otherwise repeat it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace name that cannot be a file under `/run/netns`.
    #[error("{name:?} is not a valid network namespace name: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An interface name the kernel would refuse.
    #[error("{name:?} is not a valid interface name: {reason}")]
    InvalidIfname {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The named namespace is already there.
    #[error(
        "network namespace {name} already exists; remove it with `ip netns del {name}` if \
         nothing uses it"
    )]
    NamespaceExists {
        /// Its name.
        name: String,
    },
    /// A path given as a pod's network namespace is not one it can be.
    #[error("{} is not a pod's network namespace: {reason}", path.display())]
    NotPodNamespace {
        /// The path given.
        path: PathBuf,
        /// What it is instead.
        reason: &'static str,
    },
    /// A namespace file could not be opened (it is missing, or this is not root).
    #[error("network namespace {} cannot be opened: {cause}", path.display())]
    Open {
        /// The namespace's path.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A system call on a namespace failed (`unshare`, `setns`, `mount`, `umount`).
    #[error("{call} on {}: {cause} (this needs root)", path.display())]
    Sys {
        /// The call, e.g. `setns`.
        call: &'static str,
        /// The namespace (or `/run/netns`) it was about.
        path: PathBuf,
        /// The errno.
        cause: nix::Error,
    },
    /// A thread working inside a namespace panicked or vanished.
    #[error("the thread working inside network namespace {} died", path.display())]
    Worker {
        /// The namespace.
        path: PathBuf,
    },
    /// Other file, socket or process I/O failed.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        cause: std::io::Error,
    },
    /// An interface that should be there is not.
    #[error("interface {name} does not exist")]
    NoSuchLink {
        /// Its name.
        name: String,
    },
    /// The kernel refused a netlink request.
    #[error("netlink: {what}: {message}")]
    Netlink {
        /// What was asked, naming the interface.
        what: String,
        /// The errno the kernel answered, when it answered one.
        errno: Option<i32>,
        /// The kernel's answer.
        message: String,
    },
    /// The ethtool ioctl failed.
    /// A packet socket on an interface could not be opened.
    #[error("cannot open a packet socket on {ifname}: {cause}")]
    Packet {
        /// The interface.
        ifname: String,
        /// Why.
        cause: std::io::Error,
    },
    #[error("ethtool: {what} on {ifname}: {cause}")]
    Ethtool {
        /// What was asked.
        what: &'static str,
        /// The interface.
        ifname: String,
        /// Why.
        cause: std::io::Error,
    },
    /// No Open vSwitch database schema is installed.
    #[error(
        "the Open vSwitch database schema (vswitch.ovsschema) is not installed in {}; install \
         Open vSwitch (`apt install openvswitch-switch`, or run scripts/setup)",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or ")
    )]
    NoSchema {
        /// Where it was looked for.
        tried: Vec<PathBuf>,
    },
    /// The schema file is not JSON.
    #[error("the OVSDB schema {} is not valid JSON: {cause}", path.display())]
    BadSchema {
        /// The schema file.
        path: PathBuf,
        /// Why.
        cause: serde_json::Error,
    },
    /// An OVS daemon did not open its socket in time.
    #[error(
        "{daemon} did not open {} within {} s; the end of its log {}:\n{tail}",
        socket.display(), after.as_secs(), log.display()
    )]
    NotReady {
        /// `ovsdb-server` or `ovs-vswitchd`.
        daemon: &'static str,
        /// The socket waited for.
        socket: PathBuf,
        /// How long it was given.
        after: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
}

impl Error {
    /// The errno behind a failed netlink request, system call or ioctl, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Netlink { errno, .. } => *errno,
            Self::Sys { cause, .. } => Some(*cause as i32),
            Self::Open { cause, .. }
            | Self::Io { cause, .. }
            | Self::Ethtool { cause, .. }
            | Self::Packet { cause, .. } => cause.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            cause,
        }
    }

    /// Wraps an rtnetlink error with what was being asked.
    pub(crate) fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let what = what.into();
        move |e| {
            let errno = match &e {
                rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
                _ => None,
            };
            Self::Netlink {
                what,
                errno,
                message: e.to_string(),
            }
        }
    }
}

/// Result of this crate's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
