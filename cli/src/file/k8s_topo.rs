//! networkop/k8s-topo's topology files:
//!
//! ```yaml
//! etcd_port: 32379
//! links:
//!   - endpoints: ["qrtr-1:eth1:12.12.12.1/24", "qrtr-2:eth1:12.12.12.2/24"]
//!   - endpoints: ["qrtr-2:eth2", "qrtr-3:eth1"]      # the address is optional
//! ```
//!
//! Only `links` matters here; k8s-topo's other keys (`etcd_port`, `etcd_host`, `publish_base`,
//! `conf_dir`, `nsm`...) configure k8s-topo itself and are ignored. The file names no lab, so
//! the lab is named after the file.

use ovswire_core::model::check_object_name;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::FileError;
use super::check::{self, Doc, Draft, DraftLink, DraftMgmt};
use super::locate::Step;
use crate::spec::LabSpec;

/// Top-level keys only k8s-topo files have.
pub(super) const OWN_KEYS: [&str; 4] = ["etcd_port", "etcd_host", "publish_base", "conf_dir"];

/// The name of a lab whose file names none.
const FALLBACK_NAME: &str = "lab";

/// Longest lab name made from a file name: a Kubernetes namespace is a DNS label.
const MAX_DERIVED_NAME: usize = 63;

#[derive(Debug, Deserialize)]
#[serde(rename = "k8s-topo topology")]
struct File {
    links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(rename = "link")]
struct Link {
    endpoints: Vec<String>,
}

/// Whether a YAML link reads like k8s-topo's: `endpoints` all `host:intf[:ip/len]`.
pub(super) fn looks_like_link(link: &Value) -> bool {
    let endpoint = |e: &Value| {
        e.as_str()
            .and_then(|s| check::split_endpoint(s, true).ok())
            .is_some_and(|(e, addr)| {
                !e.node.is_empty() && !e.ifname.is_empty() && addr.is_none_or(|a| a.contains('/'))
            })
    };
    match link.get("endpoints") {
        Some(Value::Sequence(endpoints)) => endpoints.iter().all(endpoint),
        _ => false,
    }
}

/// The lab name for a file named `origin`: its name up to the first `.`, lower-cased, with
/// anything a Kubernetes name does not allow turned into `-` (`Ring_Lab.k8s-topo.yml` →
/// `ring-lab`); `lab` if nothing usable is left.
pub(super) fn lab_name(origin: &str) -> String {
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    let stem = file.split('.').next().unwrap_or("");
    let name: String = stem
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_DERIVED_NAME)
        .collect();
    let name = name.trim_matches('-');
    if check_object_name("lab name", name).is_ok() {
        name.to_owned()
    } else {
        FALLBACK_NAME.to_owned()
    }
}

/// Parses and checks a k8s-topo file; the lab is named after `origin` (see [`lab_name`]).
pub(super) fn parse(doc: &Doc<'_>, origin: &str) -> Result<LabSpec, FileError> {
    let file: File = doc.deserialize()?;
    let mut links = Vec::with_capacity(file.links.len());
    for (i, link) in file.links.into_iter().enumerate() {
        let at = vec![Step::key("links"), Step::Index(i)];
        let fail = |m: &str| doc.link_error(i, &link.endpoints.join(" -- "), &at, m);
        let endpoints = check::endpoints_with_addrs(&link.endpoints).map_err(|m| fail(&m))?;
        links.push(DraftLink::up(endpoints, None, at));
    }
    check::finish(
        doc,
        Draft {
            name: lab_name(origin),
            name_at: Vec::new(),
            mtu: None,
            mtu_at: Vec::new(),
            mgmt: DraftMgmt::default(),
            declared: None,
            links,
        },
    )
}
