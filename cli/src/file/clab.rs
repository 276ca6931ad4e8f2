//! containerlab's topology definition files (`*.clab.yml`).
//!
//! Nodes take their settings (kind, image, cmd, entrypoint, env, binds, user, exec, labels,
//! startup-config, mgmt-ipv4, restart-policy) from the node, its group, its kind and the
//! defaults, merged as containerlab merges them (see [`Settings::merge`]); settings ovswire has no
//! use for (type, ports, cpu...) are ignored. `${VAR}`, `${VAR:-default}` and `${VAR:=default}`
//! are replaced by the environment before parsing, as containerlab does. Links are veth links, in
//! brief (`endpoints: ["r1:eth1", "r2:eth1"]`) or extended form (`type: veth`, endpoints as
//! `{node, interface, ipv4, ipv6}`); links to the host (`host:IFNAME` endpoints, `type: host`
//! links) are veths whose other end is in the host, and links to the management network
//! (`mgmt-net:IFNAME`, `type: mgmt-net`) such veths whose host end joins the management network's
//! bridge. Bridge nodes are LAN segments. Macvlans, vxlans or dummies have no ovswire
//! equivalent and are refused with a message saying so and what to do instead.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::FileError;
use super::check::{self, Declared, Doc, Draft, DraftLink, DraftMgmt, DraftNode};
use super::locate::Step;
use super::node::{ClabNode, InOrder, Settings};
use crate::kinds;
use crate::spec::{EndpointSpec, LabSpec};

/// Special node names of brief endpoints ovswire does not wire (`macvlan:eth0`), what they
/// stand for, and what to do instead. (`host:IFNAME` is wired: a veth to the host, and
/// `mgmt-net:IFNAME` one to the management network.)
const SPECIAL_ENDPOINTS: [(&str, &str, &str); 1] = [(
    "macvlan",
    "a macvlan interface on the host",
    "use host:IFNAME for a veth to the host, and bridge or route from there",
)];

/// Link types that are not node-to-node veth cables (or `host`), what they are, and what to
/// do instead.
const UNSUPPORTED_LINK_TYPES: [(&str, &str, &str); 4] = [
    (
        "macvlan",
        "a macvlan on a host interface",
        "use type: host for a veth to the host, and bridge or route from there",
    ),
    (
        "vxlan",
        "a VXLAN tunnel to another host",
        "run the lab on Kubernetes, where ovswire's agents wire nodes across machines",
    ),
    (
        "vxlan-stitch",
        "a VXLAN tunnel to another host",
        "run the lab on Kubernetes, where ovswire's agents wire nodes across machines",
    ),
    ("dummy", "a dummy interface", "remove the link"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "containerlab topology")]
struct File {
    name: String,
    #[serde(default, rename = "prefix")]
    _prefix: IgnoredAny,
    #[serde(default)]
    mgmt: Option<Mgmt>,
    #[serde(default, rename = "settings")]
    _settings: IgnoredAny,
    topology: Topology,
}

/// containerlab's management network block: what ovswire uses of it.
#[derive(Debug, Deserialize)]
#[serde(rename = "mgmt", rename_all = "kebab-case")]
struct Mgmt {
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    ipv4_subnet: Option<String>,
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
    nodes: Option<InOrder<Option<NodeConfig>>>,
    #[serde(default)]
    links: Option<Vec<Link>>,
}

/// A node, or the defaults, a kind or a group of nodes.
type NodeConfig = ClabNode;

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
    /// The host's end of a `type: host` link.
    #[serde(default, rename = "host-interface")]
    host_interface: Option<String>,
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

impl ExtendedEndpoint {
    /// The endpoint with its addresses; `Err` says which address is wrong.
    fn spec(&self) -> Result<EndpointSpec, String> {
        let mut spec = EndpointSpec {
            node: self.node.clone(),
            ifname: self.interface.clone(),
            addrs: Vec::new(),
        };
        for addr in self.ipv4.iter().chain(&self.ipv6) {
            let cidr = check::parse_addr(&spec, addr)?;
            spec.addrs.push(cidr);
        }
        Ok(spec)
    }
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

    /// A node's settings as containerlab merges them: the defaults', its kind's, its group's
    /// and its own, the most specific last.
    fn node_settings(&self, node: &NodeConfig) -> Settings {
        let levels: Vec<Settings> = [
            self.defaults.as_ref(),
            self.node_kind(node).and_then(|k| self.kind(k)),
            self.node_group(node).and_then(|g| self.group(g)),
            Some(node),
        ]
        .into_iter()
        .flatten()
        .map(ClabNode::settings)
        .collect();
        let mut merged = Settings::merge(&levels);
        // The kind is the resolved one, which may come from the defaults' group.
        merged.kind = self.node_kind(node).map(str::to_owned);
        merged
    }
}

/// Parses and checks a containerlab topology file.
pub(super) fn parse(doc: &Doc<'_>) -> Result<LabSpec, FileError> {
    let expanded = expand_env(doc.text, |v| std::env::var(v).ok()).map_err(|(line, m)| {
        FileError::Invalid {
            path: doc.origin.to_owned(),
            line: Some(line),
            message: m,
        }
    })?;
    let doc = &Doc {
        text: &expanded,
        ..*doc
    };
    let file: File = doc.deserialize()?;
    let topology = &file.topology;
    let no_config = NodeConfig::default();

    let mut nodes = Vec::new();
    for (name, config) in topology.nodes.iter().flat_map(|n| &n.0) {
        let config = config.as_ref().unwrap_or(&no_config);
        let at = vec![
            Step::key("topology"),
            Step::key("nodes"),
            Step::Key(name.clone()),
        ];
        if let Some(kind) = topology.node_kind(config)
            && let Some((_, what)) = kinds::NOT_NODES.iter().find(|(k, _)| *k == kind)
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
            settings: topology.node_settings(config),
            own: config.settings(),
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
            mgmt: file
                .mgmt
                .map(|m| DraftMgmt::written(m.network, m.ipv4_subnet))
                .unwrap_or_default(),
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
        Some("host") => return host_link(link, check::HOST_NODE, at.clone(), &fail),
        Some("mgmt-net") => return host_link(link, check::MGMT_NODE, at.clone(), &fail),
        Some(kind) => {
            return Err(fail(
                &match UNSUPPORTED_LINK_TYPES.iter().find(|(k, ..)| *k == kind) {
                    Some((_, what, instead)) => format!(
                        "containerlab link type {kind} ({what}) is not supported: ovswire wires \
                         veth links between nodes and to the host; {instead}"
                    ),
                    None => format!(
                        "unknown containerlab link type {kind:?}; ovswire wires veth links between \
                     nodes (type: veth, or brief endpoints without a type) and to the host \
                     (type: host)"
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
                if let Some((_, what, instead)) =
                    SPECIAL_ENDPOINTS.iter().find(|(n, ..)| *n == spec.node)
                {
                    return Err(fail(&format!(
                        "endpoint {s} connects to {what}, which ovswire does not wire; {instead}"
                    )));
                }
                spec
            }
            Endpoint::Extended(e) => e.spec().map_err(|m| fail(&m))?,
        };
        specs.push(spec);
    }
    Ok(DraftLink::up(specs, link.mtu, at))
}

/// A `type: host` or `type: mgmt-net` link: its `endpoint` (a node's interface) and
/// `host-interface` (the name of the veth end in the host), as a link between the node and
/// `host` ([`check::HOST_NODE`] or [`check::MGMT_NODE`]).
fn host_link(
    link: &Link,
    host: &str,
    at: Vec<Step>,
    fail: &dyn Fn(&str) -> FileError,
) -> Result<DraftLink, FileError> {
    let Some(Endpoint::Extended(e)) = &link.endpoint else {
        return Err(fail(&format!(
            "a type: {host} link needs endpoint: {{node: ..., interface: ...}} and host-interface"
        )));
    };
    let Some(host_if) = &link.host_interface else {
        return Err(fail(&format!(
            "a type: {host} link needs host-interface: the name of its end in the host"
        )));
    };
    let spec = e.spec().map_err(|m| fail(&m))?;
    let host = EndpointSpec {
        node: host.to_owned(),
        ifname: host_if.clone(),
        addrs: Vec::new(),
    };
    Ok(DraftLink::up(vec![spec, host], link.mtu, at))
}

/// Replaces `${VAR}`, `${VAR:-default}` and `${VAR:=default}` with the value of `VAR` from
/// `lookup` (the default when it is unset or empty), as containerlab does before it reads a
/// file. Anything else with a `$` (`$HOME`, `$(cmd)`) is left for the shell of `exec`. An unset
/// variable without a default is an error: (line, message).
fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let line = text[..text.len() - rest.len() + start]
            .matches('\n')
            .count()
            + 1;
        let body = &rest[start + 2..];
        let Some(end) = body.find('}') else {
            return Err((
                line,
                "${ without a closing }; write ${VAR} or ${VAR:=default}".into(),
            ));
        };
        let expr = &body[..end];
        let (name, default) = match expr.split_once(":=").or_else(|| expr.split_once(":-")) {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err((
                line,
                format!(
                    "${{{expr}}} does not name an environment variable; write ${{VAR}} or ${{VAR:=default}}"
                ),
            ));
        }
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err((
                    line,
                    format!(
                        "environment variable {name} is not set; set it or give a default: \
                         ${{{name}:=value}}"
                    ),
                ));
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand_env;

    #[test]
    fn environment_variables_are_expanded_as_containerlab_does() {
        let env = |v: &str| (v == "IMG").then(|| "localhost/frr".to_owned());
        assert_eq!(
            expand_env("image: ${IMG:=quay.io/frrouting/frr:10}\n", env).unwrap(),
            "image: localhost/frr\n"
        );
        assert_eq!(
            expand_env("a: ${NOPE:-x}\nb: $HOME $(id) ${IMG}", env).unwrap(),
            "a: x\nb: $HOME $(id) localhost/frr"
        );
        let (line, m) = expand_env("a: 1\nb: ${NOPE}", env).unwrap_err();
        assert_eq!(line, 2);
        assert!(m.contains("NOPE is not set"), "{m}");
        assert!(expand_env("${a b}", env).is_err());
        assert!(expand_env("${OPEN", env).is_err());
    }
}
