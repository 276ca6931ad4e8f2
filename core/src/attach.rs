//! The contract between the CNI layer and the wiring runtime: what CNI ADD/DEL/CHECK/GC/STATUS
//! ask of the node, independent of the CNI wire format.

use std::future::Future;
use std::path::PathBuf;

use crate::model::EndpointKey;

/// What CNI ADD asks for: a pod interface wired as the topology says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// Lab (`K8S_POD_NAMESPACE`), pod (`K8S_POD_NAME`) and interface (`CNI_IFNAME`).
    pub key: EndpointKey,
    /// MTU from the network configuration, used for an interface that no link names (a link
    /// always gives its ends its own MTU).
    pub mtu: Option<u32>,
    /// The network configuration's `name`: a GC of that network removes only its attachments.
    pub network: String,
}

/// A pod interface the node has created and registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Lab, pod and interface name.
    pub key: EndpointKey,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The pod's network namespace.
    pub netns: PathBuf,
    /// The host end of the veth pair (the OVS port).
    pub host_ifname: String,
    /// MAC of the host end.
    pub host_mac: [u8; 6],
    /// MAC of the pod end.
    pub pod_mac: [u8; 6],
    /// MTU of both ends.
    pub mtu: u32,
    /// The network (configuration `name`) it was added for.
    pub network: String,
}

/// Why an attachment operation failed. Each kind maps to one CNI error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The request is malformed or names something invalid (CNI code 7).
    #[error("{0}")]
    InvalidRequest(String),
    /// The pod's network namespace does not exist or cannot be entered.
    #[error("{0}")]
    Netns(String),
    /// An interface by that name already exists in the pod (CNI code 7: invalid network
    /// config, the pod asked for a name it already uses).
    #[error("{0}")]
    Exists(String),
    /// The agent is not ready yet (CNI code 11: try again later).
    #[error("{0}")]
    NotReady(String),
    /// Anything else; the message says what failed.
    #[error("{0}")]
    Internal(String),
}

/// What the node does for the CNI layer. Implemented by the agent's runtime.
pub trait Attacher: Send + Sync + 'static {
    /// Creates the pod interface (host end down until the wire is complete) and registers the
    /// endpoint for wiring; returns without waiting for the wire. Repeating an ADD for the same
    /// container and interface returns the existing attachment.
    fn attach(
        &self,
        request: AttachRequest,
    ) -> impl Future<Output = Result<Attachment, AttachError>> + Send;

    /// Removes the pod interface and its registration. Succeeds when either is already gone.
    fn detach(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> impl Future<Output = Result<(), AttachError>> + Send;

    /// The registered attachment of a container's interface, if any.
    fn attachment(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> impl Future<Output = Option<Attachment>> + Send;

    /// Every registered (container id, interface name) pair of network `network` (an attachment
    /// recorded before networks were, of every network).
    fn attachments(&self, network: &str) -> impl Future<Output = Vec<(String, String)>> + Send;

    /// `Ok` when ADDs can be served; otherwise why not.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}
