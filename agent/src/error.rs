//! The agent's error type, and the one place an error becomes a gRPC status.

use std::time::Duration;

use ovswire_core::model::LinkKey;

use crate::netdev::NetdevError;

/// What went wrong in the agent; every message says what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request names a link the topology does not have.
    #[error("no link {0} in the topology; list them with ListLinks")]
    NoSuchLink(Box<LinkKey>),
    /// A request is malformed or names something invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// OVS refused a request or did not answer.
    #[error(transparent)]
    Ovs(#[from] OvsError),
    /// OVS took a change but did not apply it in time.
    #[error("link {link}: OVS did not apply the change within {} s", after.as_secs())]
    NotApplied {
        /// The link changed.
        link: Box<LinkKey>,
        /// How long the agent waited.
        after: Duration,
    },
    /// A peer node could not be asked, or refused.
    #[error("node {node}: {message}")]
    Peer {
        /// The peer.
        node: String,
        /// What happened and what to do.
        message: String,
    },
    /// The kernel refused a network device request.
    #[error(transparent)]
    Netdev(#[from] NetdevError),
    /// The agent's flags, environment or files do not make a working configuration.
    #[error("{0}")]
    Config(String),
    /// A file or socket could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The Kubernetes API could not be used.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done and what to check.
        what: &'static str,
        /// Why.
        source: kube::Error,
    },
    /// A part the agent cannot run without stopped (a server task, the Kubernetes source).
    #[error("{0} stopped; the agent exits so that it is restarted")]
    Stopped(String),
    /// A gRPC server stopped with an error.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

impl Error {
    /// An [`Error::Io`] naming what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Something the agent could not do to OVS.
#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    /// An OVSDB request failed.
    #[error("OVSDB: {0}")]
    Ovsdb(#[from] ovswire_ovsdb::Error),
    /// An OpenFlow request failed.
    #[error("OpenFlow: {0}")]
    OpenFlow(#[from] ovswire_openflow::Error),
    /// The bridge exists and ovswire did not make it.
    #[error(
        "bridge {0} exists and ovswire did not make it (no external_ids:ovswire-bridge, and \
         another datapath id): taking it over would stop its own forwarding \
         (fail_mode=secure); give ovswire another --bridge, or pass --adopt-bridge to take it \
         over"
    )]
    ForeignBridge(String),
}

/// Results of the agent.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<&Error> for tonic::Status {
    fn from(e: &Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::NoSuchLink(_) => Self::not_found(msg),
            Error::InvalidArgument(_) | Error::Config(_) => Self::invalid_argument(msg),
            Error::Ovs(_) | Error::NotApplied { .. } | Error::Peer { .. } => Self::unavailable(msg),
            Error::Netdev(_)
            | Error::Io { .. }
            | Error::Kube { .. }
            | Error::Serve(_)
            | Error::Stopped(_) => Self::internal(msg),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}
