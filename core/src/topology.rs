//! The static topology file (`--topology FILE`): a lab name, optionally its pods, and links.
//!
//! ```yaml
//! lab: demo
//! mtu: 9000                 # default MTU of the links (optional, 9500 when absent)
//! pods: [r1, r2, r3]        # optional: when present, every endpoint must name one of them
//! links:
//!   - endpoints: ["r1:eth1", "r2:eth1"]
//!     mtu: 1500             # optional, overrides the default
//!     state: down           # optional: up (default) or down
//!     impair: {delay: 20ms, loss: 1%}   # optional, both directions; or per direction:
//!   - endpoints: ["r2:eth2", "r3:eth1"]
//!     impair: {a->b: {rate: 10mbit}, b->a: {delay: 5ms}}   # a: the first endpoint written
//!   - endpoints: ["r1:eth2", "lan1:e1"]   # r1 joins LAN segment lan1 (a->b: r1 to the LAN)
//!   - endpoints: ["r2:eth3", "lan1:e2"]
//! segments: [lan1]          # optional: the LAN segments
//! ```
//!
//! A segment is written as a pod of its own, listed under `segments` instead of `pods`: each
//! link with one end on it is a member's wire, and every frame one member sends reaches all
//! the others. The segment's interface names only tell its wires apart.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::impair::LinkImpairment;
use crate::model::{
    AdminState, DEFAULT_MTU, EndpointKey, LinkKey, LinkSpec, NameError, check_mtu,
    check_object_name,
};

/// A topology that could not be used; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The YAML is malformed or has unknown fields (the message carries line and column).
    #[error("topology file {path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with its location.
        message: String,
    },
    /// The file parses but describes something invalid.
    #[error("topology file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and where.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    lab: String,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    pods: Option<Vec<String>>,
    #[serde(default)]
    segments: Vec<String>,
    #[serde(default)]
    links: Vec<FileLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLink {
    endpoints: Vec<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    impair: Option<serde_yaml_ng::Value>,
}

/// A parsed, validated topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The lab's name.
    pub lab: String,
    /// Its links.
    pub links: BTreeMap<LinkKey, LinkSpec>,
}

impl Topology {
    /// Parses and validates topology text; `origin` (usually the file's path) names it in
    /// errors. Reading the file is the caller's part.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TopologyError> {
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| TopologyError::Syntax {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| TopologyError::Invalid {
            path: origin.to_owned(),
            message,
        };
        check_object_name("lab name", &file.lab).map_err(|e| invalid(e.to_string()))?;
        let default_mtu = file.mtu.unwrap_or(DEFAULT_MTU);
        check_mtu(default_mtu).map_err(|e| invalid(e.to_string()))?;
        let pods: Option<BTreeSet<&str>> = match &file.pods {
            None => None,
            Some(pods) => {
                for p in pods {
                    check_object_name("pod name", p).map_err(|e| invalid(format!("pods: {e}")))?;
                }
                Some(pods.iter().map(String::as_str).collect())
            }
        };
        let mut segments = BTreeSet::new();
        for s in &file.segments {
            check_object_name("segment name", s).map_err(|e| invalid(format!("segments: {e}")))?;
            if pods.as_ref().is_some_and(|p| p.contains(s.as_str())) {
                return Err(invalid(format!(
                    "segments: {s} is listed under pods too; a name is a pod or a segment"
                )));
            }
            segments.insert(s.as_str());
        }

        let mut links = BTreeMap::new();
        let mut used: BTreeMap<EndpointKey, usize> = BTreeMap::new();
        for (i, l) in file.links.iter().enumerate() {
            let n = i + 1;
            let at = |m: String| invalid(format!("link {n} ({}): {m}", l.endpoints.join(" -- ")));
            let [x, y] = l.endpoints.as_slice() else {
                return Err(at(format!(
                    "needs exactly 2 endpoints, has {}",
                    l.endpoints.len()
                )));
            };
            let x = EndpointKey::parse(&file.lab, x).map_err(|e| at(e.to_string()))?;
            let y = EndpointKey::parse(&file.lab, y).map_err(|e| at(e.to_string()))?;
            let segment = match (
                segments.contains(x.pod.as_str()),
                segments.contains(y.pod.as_str()),
            ) {
                (true, true) => {
                    return Err(at(
                        "joins two segments; join each to an interface of a pod instead".into(),
                    ));
                }
                (true, false) => Some(x.pod.clone()),
                (false, true) => Some(y.pod.clone()),
                (false, false) => None,
            };
            for e in [&x, &y] {
                if let Some(pods) = &pods
                    && segment.as_deref() != Some(e.pod.as_str())
                    && !pods.contains(e.pod.as_str())
                {
                    return Err(at(format!("pod {} is not listed under pods", e.pod)));
                }
                if let Some(prev) = used.insert(e.clone(), n) {
                    return Err(at(format!("{e} is already used by link {prev}")));
                }
            }
            let written_first = x.clone();
            let key = LinkKey::new(x, y).map_err(|e| at(e.to_string()))?;
            let mut impair = match &l.impair {
                None => LinkImpairment::default(),
                Some(v) => crate::impair::from_yaml(v).map_err(|e| at(e.to_string()))?,
            };
            if *key.a() != written_first {
                impair = impair.swapped();
            }
            let mtu = l.mtu.unwrap_or(default_mtu);
            check_mtu(mtu).map_err(|e| at(e.to_string()))?;
            let admin = match &l.state {
                None => AdminState::Up,
                Some(s) => s.parse().map_err(|e: NameError| at(e.to_string()))?,
            };
            links.insert(
                key.clone(),
                LinkSpec {
                    key,
                    mtu,
                    admin,
                    impair,
                    segment,
                },
            );
        }
        Ok(Self {
            lab: file.lab,
            links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Topology::parse(text, "t.yaml").unwrap_err().to_string()
    }

    #[test]
    fn parses_a_small_lab() {
        let t = Topology::parse(
            "lab: demo\nmtu: 9000\npods: [r1, r2, r3]\nlinks:\n  - endpoints: [\"r1:eth1\", \"r2:eth1\"]\n  - endpoints: [r2:eth2, r3:eth1]\n    mtu: 1500\n    state: down\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(t.lab, "demo");
        let specs: Vec<_> = t
            .links
            .values()
            .map(|l| (l.key.to_string(), l.mtu, l.admin))
            .collect();
        assert_eq!(
            specs,
            vec![
                ("demo/r1:eth1--r2:eth1".to_owned(), 9000, AdminState::Up),
                ("demo/r2:eth2--r3:eth1".to_owned(), 1500, AdminState::Down),
            ]
        );
    }

    #[test]
    fn bad_files_say_where_and_why() {
        assert!(
            err("lab: demo\nlinkz: []\n").contains("line 2"),
            "{}",
            err("lab: demo\nlinkz: []\n")
        );
        assert!(err("lab: Demo\n").contains("lower-case"));
        let e = err("lab: d\nlinks:\n  - endpoints: [r1:eth1]\n");
        assert!(e.contains("link 1") && e.contains("exactly 2"), "{e}");
        let e = err(
            "lab: d\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - endpoints: [r1:eth1, r3:eth1]\n",
        );
        assert!(
            e.contains("link 2") && e.contains("already used by link 1"),
            "{e}"
        );
        let e = err("lab: d\npods: [r1]\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n");
        assert!(e.contains("not listed"), "{e}");
        let e = err("lab: d\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    mtu: 70000\n");
        assert!(e.contains("out of range"), "{e}");
        let e = err("lab: d\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    state: sideways\n");
        assert!(e.contains("up or down"), "{e}");
        let e = err("lab: d\nlinks:\n  - endpoints: [r1:eth1, r1:eth1]\n");
        assert!(
            e.contains("already used") || e.contains("two different"),
            "{e}"
        );
        assert!(err("{{{").contains("t.yaml"));
        let e =
            err("lab: d\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    impair: {loss: 150%}\n");
        assert!(
            e.contains("link 1") && e.contains("impair.loss") && e.contains("100%"),
            "{e}"
        );
    }

    #[test]
    fn impairments_follow_the_endpoints_as_written() {
        let t = Topology::parse(
            "lab: d\nlinks:\n  - endpoints: [r2:eth1, r1:eth1]\n    impair: {a->b: {delay: 20ms}}\n",
            "t.yaml",
        )
        .unwrap();
        let l = t.links.values().next().unwrap();
        // r1 sorts first, so the file's a->b (r2 to r1) is the link's b->a.
        assert!(l.impair.a_to_b.is_none());
        assert_eq!(l.impair.b_to_a.delay_us, 20_000);
    }

    #[test]
    fn segments_are_pods_whose_links_are_member_wires() {
        let t = Topology::parse(
            "lab: d\npods: [r1, r2]\nsegments: [lan1]\nlinks:\n  - endpoints: [r1:eth1, lan1:e1]\n  - endpoints: [lan1:e2, r2:eth1]\n  - endpoints: [r1:eth2, r2:eth2]\n",
            "t.yaml",
        )
        .unwrap();
        let segs: Vec<_> = t.links.values().map(|l| l.segment.as_deref()).collect();
        assert_eq!(segs, [Some("lan1"), Some("lan1"), None]);
        let r2 = t.links.values().nth(1).unwrap();
        assert_eq!(r2.member().unwrap().to_string(), "r2:eth1");
        let e = err("lab: d\nsegments: [a, b]\nlinks:\n  - endpoints: [a:e1, b:e1]\n");
        assert!(e.contains("joins two segments"), "{e}");
        let e = err("lab: d\npods: [r1, lan]\nsegments: [lan]\n");
        assert!(e.contains("listed under pods too"), "{e}");
        let e = err("lab: d\nsegments: [Lan]\n");
        assert!(e.contains("segment name"), "{e}");
    }
}
