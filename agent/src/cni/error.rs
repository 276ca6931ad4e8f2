//! CNI error codes and the one place that turns a failure into one.

use std::fmt;

use ovswire_core::attach::AttachError;

/// An error code: the spec's well-known ones, then ovswire's own (100 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1: the network configuration asks for a CNI version ovswire does not speak, or for a
    /// command that version does not have.
    IncompatibleVersion,
    /// 2: the network configuration asks for something ovswire does not do (`ipam`, a
    /// runtime-requested MAC or IP).
    UnsupportedField,
    /// 3: the container's network namespace does not exist.
    UnknownContainer,
    /// 4: a `CNI_*` variable is missing or invalid.
    InvalidEnv,
    /// 6: the network configuration is not a JSON object.
    Decode,
    /// 7: the network configuration is JSON but not valid for ovswire.
    InvalidConfig,
    /// 11: the agent is not ready yet; the runtime should retry.
    TryAgainLater,
    /// 50: STATUS: the agent cannot take ADDs.
    Unavailable,
    /// 100: the node could not carry out the request (netlink or OVS failed); the message says
    /// what failed.
    Internal,
    /// 101: CHECK found the pod's interface missing or not as ADD left it.
    CheckFailed,
}

impl Code {
    /// The number the runtime sees.
    pub fn get(self) -> u32 {
        match self {
            Self::IncompatibleVersion => 1,
            Self::UnsupportedField => 2,
            Self::UnknownContainer => 3,
            Self::InvalidEnv => 4,
            Self::Decode => 6,
            Self::InvalidConfig => 7,
            Self::TryAgainLater => 11,
            Self::Unavailable => 50,
            Self::Internal => 100,
            Self::CheckFailed => 101,
        }
    }
}

/// A CNI error: a code, a message that says what went wrong, and details that say what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The code.
    pub code: Code,
    /// What went wrong.
    pub msg: String,
    /// What to do about it.
    pub details: String,
}

impl CniError {
    /// An error with `code`, message `msg` and advice `details`.
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Maps what the node reported for `what` (such as "ADD r1:eth1") to a CNI error.
    pub fn from_attach(what: &str, err: AttachError) -> Self {
        let (code, details) = match &err {
            AttachError::InvalidRequest(_) => (
                Code::InvalidConfig,
                "fix the request as the message says and add the pod again",
            ),
            AttachError::Netns(_) => (
                Code::UnknownContainer,
                "the pod's network namespace is gone; the runtime needs no cleanup",
            ),
            AttachError::Exists(_) => (
                Code::InvalidConfig,
                "each network attachment of a pod needs its own interface name; pick another \
                 `interface` in the pod's k8s.v1.cni.cncf.io/networks annotation",
            ),
            AttachError::NotReady(_) => (
                Code::TryAgainLater,
                "the ovswire agent is starting or reconnecting to Open vSwitch; retry shortly",
            ),
            AttachError::Internal(_) => (
                Code::Internal,
                "see the ovswire-agent log on this node for the failing netlink or OVS request",
            ),
        };
        Self::new(code, format!("{what}: {err}"), details)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CNI error {}: {}", self.code.get(), self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// Result of CNI handling.
pub(super) type Result<T, E = CniError> = std::result::Result<T, E>;
