//! The one place a failure of the node becomes a CNI error.

use ovswire_cni::spec::{CniError, Code};
use ovswire_core::attach::AttachError;

/// Maps what the node reported for `what` (such as "ADD r1:eth1") to a CNI error.
pub fn from_attach(what: &str, err: AttachError) -> CniError {
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
    CniError::new(code, format!("{what}: {err}"), details)
}

/// Result of CNI handling.
pub(super) type Result<T, E = CniError> = std::result::Result<T, E>;
