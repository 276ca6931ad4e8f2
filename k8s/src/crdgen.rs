//! The CustomResourceDefinitions as YAML, for `deploy/crds/` (written by `ovswire-crdgen`,
//! checked by a test).

use kube::CustomResourceExt;

use crate::crd::{MeshnetTopology, Topology};
use crate::error::{Error, Result};

/// A generated CRD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdFile {
    /// Its file name in `deploy/crds/`.
    pub file_name: &'static str,
    /// Its content.
    pub yaml: String,
}

/// Both CRDs: ovswire's own, and meshnet's for clusters where meshnet is not installed.
pub fn crd_files() -> Result<Vec<CrdFile>> {
    Ok(vec![
        CrdFile {
            file_name: "ovswire.io_topologies.yaml",
            yaml: render::<Topology>(
                "ovswire's Topology: the links of a lab (the lab is the namespace).",
            )?,
        },
        CrdFile {
            file_name: "networkop.co.uk_topologies.yaml",
            yaml: render::<MeshnetTopology>(
                "meshnet-cni's Topology (one object per pod, as KNE writes them), read by \
                 ovswire.\n# Apply it only where meshnet is not installed: meshnet's own CRD \
                 defines the same fields.",
            )?,
        },
    ])
}

fn render<K: CustomResourceExt>(what: &str) -> Result<String> {
    let crd = K::crd();
    let yaml = serde_yaml_ng::to_string(&crd).map_err(|source| Error::CrdYaml {
        crd: K::crd_name().to_owned(),
        source,
    })?;
    Ok(format!(
        "# {what}\n# Generated from k8s/src/crd by `cargo run -p ovswire-k8s --bin ovswire-crdgen \
         -- --write deploy/crds`; do not edit.\n{yaml}"
    ))
}
