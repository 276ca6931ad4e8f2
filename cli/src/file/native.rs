//! ovswire's own format: the agent's (`docs/topology.md`) plus what a local lab needs.
//!
//! ```yaml
//! lab: demo
//! mtu: 9000                       # optional default link MTU
//! mgmt:                           # optional: the management network of container nodes
//!   network: demo-mgmt            #   default ovswire-<lab>
//!   ipv4-subnet: 172.20.30.0/24   #   default: a free /24
//! nodes:                          # optional; or `pods: [r1, r2]` as for the agent
//!   r1: {exec: ["ip route add default via 10.0.0.2"]}    # a bare network namespace
//!   r2:                                                  # a container
//!     image: localhost/ovswire/frr:latest
//!     startup-config: r2.conf     # mounted at /etc/frr/frr.conf for FRR images
//!     binds: [daemons:/etc/frr/daemons:ro]
//!     env: {TZ: UTC}
//!     mgmt-ipv4: 172.20.30.12
//! links:
//!   - endpoints: ["r1:eth1", "r2:eth1"]
//!     ips: [10.0.0.1/30, 10.0.0.2/30]   # optional, one per endpoint, in order
//!     mtu: 1500                         # optional
//!     state: down                       # optional: up (default) or down
//!     impair: {delay: 20ms, loss: 1%}   # optional; or {a->b: {...}, b->a: {...}}
//!   - endpoints: ["r1:eth2:2001:db8::1/64", "r2:eth2:2001:db8::2/64"]  # address inline
//!   - endpoints: [r1:eth3, r2:eth3, r3:eth1]   # a LAN segment: more than two endpoints
//!     segment: lan1                     # optional name (default lan1, lan2, ... in order)
//!     ips: [10.0.1.1/24, 10.0.1.2/24, 10.0.1.3/24]
//! ```
//!
//! A node takes the same settings as a containerlab node: kind, image, cmd, entrypoint, env,
//! binds, user, exec, labels, startup-config, mgmt-ipv4, restart-policy.

use serde::Deserialize;

use super::FileError;
use super::check::{self, Declared, Doc, Draft, DraftLink, DraftMgmt, DraftNode, Segment};
use super::locate::Step;
use super::node::{InOrder, NativeNode, Settings};
use crate::spec::LabSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "ovswire topology")]
struct File {
    lab: String,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    mgmt: Option<Mgmt>,
    #[serde(default)]
    pods: Option<Vec<String>>,
    #[serde(default)]
    nodes: Option<InOrder<Option<NativeNode>>>,
    #[serde(default)]
    links: Option<Vec<Link>>,
}

/// The management network of container nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "mgmt", rename_all = "kebab-case")]
struct Mgmt {
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    ipv4_subnet: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "link")]
struct Link {
    endpoints: Vec<String>,
    #[serde(default)]
    segment: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    state: Option<State>,
    #[serde(default)]
    ips: Option<Vec<String>>,
    #[serde(default)]
    impair: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Up,
    Down,
}

/// Parses and checks an ovswire topology file.
pub(super) fn parse(doc: &Doc<'_>) -> Result<LabSpec, FileError> {
    let file: File = doc.deserialize()?;
    let declared = match (file.pods, file.nodes) {
        (Some(_), Some(_)) => {
            return Err(doc.invalid(
                &[Step::key("nodes")],
                "both pods and nodes are given; list the nodes under one of them (under nodes \
                 to give them exec commands)"
                    .to_owned(),
            ));
        }
        (Some(pods), None) => Some(Declared {
            under: "pods",
            nodes: pods
                .into_iter()
                .enumerate()
                .map(|(i, name)| DraftNode {
                    name,
                    settings: Settings::default(),
                    own: Settings::default(),
                    at: vec![Step::key("pods"), Step::Index(i)],
                })
                .collect(),
        }),
        (None, Some(nodes)) => Some(Declared {
            under: "nodes",
            nodes: nodes
                .0
                .into_iter()
                .map(|(name, node)| {
                    let settings = node.map(|n| n.settings()).unwrap_or_default();
                    DraftNode {
                        at: vec![Step::key("nodes"), Step::Key(name.clone())],
                        own: settings.clone(),
                        settings,
                        name,
                    }
                })
                .collect(),
        }),
        (None, None) => None,
    };

    let mut links = Vec::new();
    for (i, link) in file.links.unwrap_or_default().into_iter().enumerate() {
        let at = vec![Step::key("links"), Step::Index(i)];
        let fail = |m: &str| doc.link_error(i, &link.endpoints.join(" -- "), &at, m);
        let mut endpoints = check::endpoints_with_addrs(&link.endpoints).map_err(|m| fail(&m))?;
        let endpoints_written = endpoints.len();
        if let Some(ips) = &link.ips {
            if ips.len() != endpoints.len() {
                return Err(fail(&format!(
                    "ips has {} addresses for {} endpoints; give one address per endpoint, in \
                     the same order",
                    ips.len(),
                    endpoints.len()
                )));
            }
            for (endpoint, addr) in endpoints.iter_mut().zip(ips) {
                let cidr = check::parse_addr(endpoint, addr).map_err(|m| fail(&m))?;
                endpoint.addrs.push(cidr);
            }
        }
        let impair = match &link.impair {
            None => Default::default(),
            Some(v) => ovswire_core::impair::from_yaml(v).map_err(|e| fail(&e.to_string()))?,
        };
        links.push(DraftLink {
            endpoints,
            mtu: link.mtu,
            down: link.state == Some(State::Down),
            impair,
            segment: match link.segment {
                Some(name) => Some(Segment::Named(name)),
                None if endpoints_written > 2 => Some(Segment::Numbered),
                None => None,
            },
            at,
        });
    }

    check::finish(
        doc,
        Draft {
            name: file.lab,
            name_at: vec![Step::key("lab")],
            mtu: file.mtu,
            mtu_at: vec![Step::key("mtu")],
            mgmt: file
                .mgmt
                .map(|m| DraftMgmt::written(m.network, m.ipv4_subnet))
                .unwrap_or_default(),
            declared,
            links,
        },
    )
}
