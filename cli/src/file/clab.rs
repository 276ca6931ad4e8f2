//! containerlab's topology definition files (`*.clab.yml`).
//!
//! Of a node only `exec` matters here (and `kind`/`group`, to find the `exec` a node inherits);
//! its other settings (image, startup-config, binds, env...) configure containers and are
//! ignored. Links are veth links, in brief (`endpoints: ["r1:eth1", "r2:eth1"]`) or extended
//! form (`type: veth`, endpoints as `{node, interface, ipv4, ipv6}`); links to the host, the
//! management network, macvlans, vxlans or dummies, and bridge nodes, have no ovswire equivalent
//! and are refused with a message saying so.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::FileError;
use super::check::{self, Declared, Doc, Draft, DraftLink, DraftNode};
use super::locate::Step;
use crate::spec::{EndpointSpec, LabSpec, NodeSpec};

/// Special node names of brief endpoints (`host:veth1`), and what they stand for.
const SPECIAL_ENDPOINTS: [(&str, &str); 3] = [
    ("host", "the container host"),
    ("mgmt-net", "containerlab's management network"),
    ("macvlan", "a macvlan interface on the host"),
];

/// Link types that are not node-to-node veth cables, and what they are.
const UNSUPPORTED_LINK_TYPES: [(&str, &str); 6] = [
    ("host", "a veth to the container host"),
    ("mgmt-net", "a veth to containerlab's management network"),
    ("macvlan", "a macvlan on a host interface"),
    ("vxlan", "a VXLAN tunnel to another host"),
    ("vxlan-stitch", "a VXLAN tunnel to another host"),
    ("dummy", "a dummy interface"),
];

/// Node kinds that are not routers ovswire can run, and what they are.
const UNSUPPORTED_KINDS: [(&str, &str); 4] = [
    ("bridge", "a Linux bridge on the host"),
    ("ovs-bridge", "an Open vSwitch bridge on the host"),
    ("ext-container", "a container outside the lab"),
    ("host", "the container host"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "containerlab topology")]
struct File {
    name: String,
    #[serde(default, rename = "prefix")]
    _prefix: IgnoredAny,
    #[serde(default, rename = "mgmt")]
    _mgmt: IgnoredAny,
    #[serde(default, rename = "settings")]
    _settings: IgnoredAny,
    topology: Topology,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "topology")]
struct Topology {
    #[serde(default)]
    defaults: Option<NodeConfig>,
    #[serde(default)]
    kinds: Option<BTreeMap<String, Option<NodeConfig>>>,
    #[serde(default)]
    groups: Option<BTreeMap<String, Option<NodeConfig>>>,
    #[serde(default)]
    nodes: Option<BTreeMap<String, Option<NodeConfig>>>,
    #[serde(default)]
    links: Option<Vec<Link>>,
}

/// A node, or the defaults, a kind or a group of nodes: only what decides a node's `exec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename = "node")]
struct NodeConfig {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    exec: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename = "link")]
struct Link {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    endpoints: Option<Vec<Endpoint>>,
    /// The one endpoint of single-ended link types (host, mgmt-net, macvlan, vxlan, dummy).
    #[serde(default)]
    endpoint: Option<Endpoint>,
    #[serde(default)]
    mtu: Option<u32>,
}

/// A link endpoint, brief (`"r1:eth1"`) or extended (`{node: r1, interface: eth1}`).
#[derive(Debug)]
enum Endpoint {
    Brief(String),
    Extended(ExtendedEndpoint),
}

#[derive(Debug, Deserialize)]
#[serde(rename = "endpoint")]
struct ExtendedEndpoint {
    node: String,
    interface: String,
    #[serde(default)]
    ipv4: Option<String>,
    #[serde(default)]
    ipv6: Option<String>,
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EndpointVisitor;
        impl<'de> Visitor<'de> for EndpointVisitor {
            type Value = Endpoint;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an endpoint, \"node:interface\" or {node: ..., interface: ...}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoint, E> {
                Ok(Endpoint::Brief(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Endpoint, A::Error> {
                let d = de::value::MapAccessDeserializer::new(map);
                ExtendedEndpoint::deserialize(d).map(Endpoint::Extended)
            }
        }
        d.deserialize_any(EndpointVisitor)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Brief(s) => f.write_str(s),
            Self::Extended(e) => write!(f, "{}:{}", e.node, e.interface),
        }
    }
}

impl Topology {
    fn kind(&self, kind: &str) -> Option<&NodeConfig> {
        self.kinds.as_ref()?.get(kind)?.as_ref()
    }

    fn group(&self, group: &str) -> Option<&NodeConfig> {
        self.groups.as_ref()?.get(group)?.as_ref()
    }

    /// A node's kind as containerlab resolves it: the node's, its group's, the default group's,
    /// the default.
    fn node_kind<'a>(&'a self, node: &'a NodeConfig) -> Option<&'a str> {
        let defaults = self.defaults.as_ref();
        let group_kind = |g: Option<&String>| self.group(g?)?.kind.as_deref();
        node.kind
            .as_deref()
            .or_else(|| group_kind(node.group.as_ref()))
            .or_else(|| group_kind(defaults?.group.as_ref()))
            .or_else(|| defaults?.kind.as_deref())
    }

    /// A node's group as containerlab resolves it: the node's, its kind's, the default.
    fn node_group<'a>(&'a self, node: &'a NodeConfig) -> Option<&'a str> {
        node.group
            .as_deref()
            .or_else(|| self.kind(self.node_kind(node)?)?.group.as_deref())
            .or_else(|| self.defaults.as_ref()?.group.as_deref())
    }

    /// A node's `exec` as containerlab builds it: the defaults', then its kind's, then its
    /// group's, then its own commands, all of them in that order.
    fn node_exec(&self, node: &NodeConfig) -> Vec<String> {
        let levels = [
            self.defaults.as_ref(),
            self.node_kind(node).and_then(|k| self.kind(k)),
            self.node_group(node).and_then(|g| self.group(g)),
            Some(node),
        ];
        levels
            .into_iter()
            .flatten()
            .flat_map(|c| c.exec.iter().flatten().cloned())
            .collect()
    }
}

/// Parses and checks a containerlab topology file.
pub(super) fn parse(doc: &Doc<'_>) -> Result<LabSpec, FileError> {
    let file: File = doc.deserialize()?;
    let topology = &file.topology;
    let no_config = NodeConfig::default();

    let mut nodes = Vec::new();
    for (name, config) in topology.nodes.iter().flatten() {
        let config = config.as_ref().unwrap_or(&no_config);
        let at = vec![
            Step::key("topology"),
            Step::key("nodes"),
            Step::Key(name.clone()),
        ];
        if let Some(kind) = topology.node_kind(config)
            && let Some((_, what)) = UNSUPPORTED_KINDS.iter().find(|(k, _)| *k == kind)
        {
            return Err(doc.invalid(
                &at,
                format!(
                    "node {name} has kind {kind} ({what}), which ovswire cannot emulate: it \
                     wires point-to-point links between router nodes only; remove the node and \
                     its links"
                ),
            ));
        }
        nodes.push(DraftNode {
            name: name.clone(),
            spec: NodeSpec {
                exec: topology.node_exec(config),
            },
            at,
        });
    }

    let links = match &topology.links {
        None => Vec::new(),
        Some(links) => links
            .iter()
            .enumerate()
            .map(|(i, link)| draft_link(doc, i, link))
            .collect::<Result<_, _>>()?,
    };

    check::finish(
        doc,
        Draft {
            name: file.name,
            name_at: vec![Step::key("name")],
            mtu: None,
            mtu_at: Vec::new(),
            declared: Some(Declared {
                under: "topology.nodes",
                nodes,
            }),
            links,
        },
    )
}

/// Link `i` as ovswire can wire it, or why it cannot.
fn draft_link(doc: &Doc<'_>, i: usize, link: &Link) -> Result<DraftLink, FileError> {
    let at = vec![Step::key("topology"), Step::key("links"), Step::Index(i)];
    let written: Vec<&Endpoint> = link
        .endpoints
        .iter()
        .flatten()
        .chain(&link.endpoint)
        .collect();
    let fail = |m: &str| doc.link_error(i, &check::label(&written), &at, m);

    let kind = link.kind.as_deref().map(|k| k.trim().to_ascii_lowercase());
    match kind.as_deref() {
        None | Some("veth" | "brief") => {}
        Some(kind) => {
            return Err(fail(
                &match UNSUPPORTED_LINK_TYPES.iter().find(|(k, _)| *k == kind) {
                    Some((_, what)) => format!(
                        "containerlab link type {kind} ({what}) is not supported: ovswire wires veth \
                     links between two nodes only; remove the link"
                    ),
                    None => format!(
                        "unknown containerlab link type {kind:?}; ovswire wires veth links between \
                     two nodes only (type: veth, or brief endpoints without a type)"
                    ),
                },
            ));
        }
    }
    let Some(endpoints) = &link.endpoints else {
        return Err(fail(
            "has no endpoints; give two, like endpoints: [\"r1:eth1\", \"r2:eth1\"]",
        ));
    };

    let mut specs = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let spec = match endpoint {
            Endpoint::Brief(s) => {
                let (spec, _) = check::split_endpoint(s, false).map_err(|m| fail(&m))?;
                if let Some((_, what)) = SPECIAL_ENDPOINTS.iter().find(|(n, _)| *n == spec.node) {
                    return Err(fail(&format!(
                        "endpoint {s} connects to {what}, which ovswire does not wire: it wires \
                         veth links between two nodes only; remove the link"
                    )));
                }
                spec
            }
            Endpoint::Extended(e) => {
                let mut spec = EndpointSpec {
                    node: e.node.clone(),
                    ifname: e.interface.clone(),
                    addrs: Vec::new(),
                };
                for addr in e.ipv4.iter().chain(&e.ipv6) {
                    let cidr = check::parse_addr(&spec, addr).map_err(|m| fail(&m))?;
                    spec.addrs.push(cidr);
                }
                spec
            }
        };
        specs.push(spec);
    }
    Ok(DraftLink {
        endpoints: specs,
        mtu: link.mtu,
        down: false,
        at,
    })
}
