//! meshnet's `Topology` (`topologies.networkop.co.uk`, version `v1beta1`), as meshnet-cni and
//! KNE define and write it: one object per pod, named like the pod, listing the pod's links.
//!
//! ```yaml
//! apiVersion: networkop.co.uk/v1beta1
//! kind: Topology
//! metadata: {name: r1, namespace: lab1}
//! spec:
//!   links:
//!     - {uid: 0, peer_pod: r2, local_intf: eth1, peer_intf: eth1}
//! ```
//!
//! Each link is described twice, once by each pod, with the same `uid`. `local_ip` and
//! `peer_ip` are accepted and ignored: ovswire assigns no addresses, the routers configure their
//! own. `status` belongs to meshnet and is never written by ovswire.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The links of one pod.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "networkop.co.uk",
    version = "v1beta1",
    kind = "Topology",
    root = "MeshnetTopology",
    namespaced,
    status = "MeshnetStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "topo",
    doc = "meshnet-cni's per-pod list of links (as written by KNE); read by ovswire."
)]
pub struct MeshnetTopologySpec {
    /// The pod's links.
    #[serde(default, deserialize_with = "null_as_default")]
    pub links: Vec<MeshnetLink>,
}

/// One link as seen from the pod the object is named after.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct MeshnetLink {
    /// Identifies the link in the namespace; both pods' descriptions carry the same `uid`.
    pub uid: i64,
    /// The pod at the other end.
    pub peer_pod: String,
    /// The interface in this pod.
    pub local_intf: String,
    /// The interface in the peer pod.
    pub peer_intf: String,
    /// An address for the local interface (ignored by ovswire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ip: Option<String>,
    /// An address for the peer interface (ignored by ovswire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<String>,
}

/// meshnet's own bookkeeping; ovswire reads none of it and never writes it. A field whose
/// value has another shape (older meshnet versions wrote `skipped` as a list of names) reads as
/// absent rather than making the whole object unreadable.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct MeshnetStatus {
    /// Peers that were not up when this pod was (deprecated in meshnet).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub skipped: Option<Vec<MeshnetSkipped>>,
    /// The node's address.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub src_ip: Option<String>,
    /// The pod's network namespace.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub net_ns: Option<String>,
    /// The pod's sandbox id.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
    /// The last wiring error (KNE's meshnet).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub plumbing_error: Option<String>,
}

/// A peer that was skipped.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct MeshnetSkipped {
    /// The peer pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// The link's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_id: Option<i64>,
}

/// Go's encoder writes an empty list as `null`.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

fn lenient<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(de)?;
    Ok(serde_json::from_value(value).ok())
}
