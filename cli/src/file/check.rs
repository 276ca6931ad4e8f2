//! What every format shares: turning parser errors into [`FileError`]s with a line and a hint,
//! and the checks that make a [`Draft`] (a lab as a file describes it) a [`LabSpec`].

use std::collections::{BTreeMap, BTreeSet};

use ovswire_core::model::check_mtu;
use serde::de::DeserializeOwned;

use super::locate::{Step, line_of};
use super::node::Settings;
use super::{FileError, Format};
use crate::names::{self, Names};
use crate::spec::{Cidr, EndpointSpec, Ipv4Net, LabLink, LabSpec, MgmtSpec, NodeSpec};

/// The file being read: its name, text and format.
#[derive(Debug, Clone, Copy)]
pub(super) struct Doc<'a> {
    /// The file's path, naming it in errors.
    pub(super) origin: &'a str,
    /// Its content.
    pub(super) text: &'a str,
    /// Its format, for format-specific advice.
    pub(super) format: Format,
}

impl Doc<'_> {
    /// The directory relative paths in the file are taken from: the file's own.
    pub(super) fn base_dir(&self) -> std::path::PathBuf {
        let dir = std::path::Path::new(self.origin)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())
    }

    /// Deserializes the whole text, turning YAML errors into [`FileError::Syntax`].
    pub(super) fn deserialize<T: DeserializeOwned>(&self) -> Result<T, FileError> {
        serde_yaml_ng::from_str(self.text).map_err(|e| self.syntax(&e))
    }

    /// A [`FileError::Syntax`] for a YAML error, with a hint.
    pub(super) fn syntax(&self, e: &serde_yaml_ng::Error) -> FileError {
        let location = e.location();
        let mut message = e.to_string();
        // The position goes into the error's own fields, which print it once, up front.
        if let Some(l) = &location {
            let at = format!(" at line {} column {}", l.line(), l.column());
            message = message.replacen(&at, "", 1);
        }
        let hint = if message.contains("unknown field") || message.contains("unrecognized field") {
            "remove it or correct its spelling"
        } else if message.contains("missing field") {
            "add it"
        } else if message.contains("invalid type")
            || message.contains("invalid value")
            || message.contains("unknown variant")
        {
            "correct the value"
        } else {
            "fix the YAML there (indentation, colons, quotes, brackets)"
        };
        FileError::Syntax {
            path: self.origin.to_owned(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message: format!("{message}; {hint}"),
        }
    }

    /// A [`FileError::Invalid`] about the YAML node at `at` (whose line is looked up).
    pub(super) fn invalid(&self, at: &[Step], message: String) -> FileError {
        FileError::Invalid {
            path: self.origin.to_owned(),
            line: line_of_step(self, at),
            message,
        }
    }

    /// A [`FileError::Invalid`] about link `index` (from 0) at `at`, labelled by its endpoints.
    pub(super) fn link_error(
        &self,
        index: usize,
        label: &str,
        at: &[Step],
        message: &str,
    ) -> FileError {
        self.invalid(at, format!("link {} ({label}): {message}", index + 1))
    }
}

/// A lab as a file describes it, before the checks common to all formats.
#[derive(Debug)]
pub(super) struct Draft {
    /// The lab's name.
    pub(super) name: String,
    /// Where the name is written (empty when it comes from elsewhere, like the file name).
    pub(super) name_at: Vec<Step>,
    /// The default link MTU, if set.
    pub(super) mtu: Option<u32>,
    /// Where it is written.
    pub(super) mtu_at: Vec<Step>,
    /// The management network of container nodes.
    pub(super) mgmt: DraftMgmt,
    /// The nodes the file declares, when it declares them; every link endpoint must then name
    /// one of them.
    pub(super) declared: Option<Declared>,
    /// The links, in file order.
    pub(super) links: Vec<DraftLink>,
}

/// The nodes a file declares, and under which key, for error messages.
#[derive(Debug)]
pub(super) struct Declared {
    /// `pods`, `nodes`, `topology.nodes`.
    pub(super) under: &'static str,
    /// The nodes, in file order.
    pub(super) nodes: Vec<DraftNode>,
}

/// A declared node.
#[derive(Debug)]
pub(super) struct DraftNode {
    /// Its name.
    pub(super) name: String,
    /// Its settings, merged from every level that applies to it.
    pub(super) settings: Settings,
    /// What the node itself sets.
    pub(super) own: Settings,
    /// Where it is declared.
    pub(super) at: Vec<Step>,
}

/// The management network as written.
#[derive(Debug, Default)]
pub(super) struct DraftMgmt {
    /// The engine network's name.
    network: Option<String>,
    /// Its IPv4 subnet, as written.
    ipv4_subnet: Option<String>,
    /// Where the block is written.
    at: Vec<Step>,
}

impl DraftMgmt {
    /// The settings of a top-level `mgmt:` block.
    pub(super) fn written(network: Option<String>, ipv4_subnet: Option<String>) -> Self {
        Self {
            network,
            ipv4_subnet,
            at: vec![Step::key("mgmt")],
        }
    }
}

/// A link as written.
#[derive(Debug)]
pub(super) struct DraftLink {
    /// Its endpoints (a valid link has two).
    pub(super) endpoints: Vec<EndpointSpec>,
    /// Its MTU, if set.
    pub(super) mtu: Option<u32>,
    /// Administratively down.
    pub(super) down: bool,
    /// Its impairments, `a->b` from the first endpoint written.
    pub(super) impair: ovswire_core::impair::LinkImpairment,
    /// Whether the link is a LAN segment (in ovswire's format, written with more than two
    /// endpoints or named), and its name if written.
    pub(super) segment: Option<Segment>,
    /// Where it is written.
    pub(super) at: Vec<Step>,
}

impl DraftLink {
    /// A link brought up as it is (no state or impairment written).
    pub(super) fn up(endpoints: Vec<EndpointSpec>, mtu: Option<u32>, at: Vec<Step>) -> Self {
        Self {
            endpoints,
            mtu,
            down: false,
            impair: Default::default(),
            segment: None,
            at,
        }
    }
}

/// A LAN segment written as one link with its members' endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// Named `lan1`, `lan2`, ... in file order, skipping names nodes have.
    Numbered,
    /// Named so.
    Named(String),
}

/// The node kind of LAN segments written as one link with their members' endpoints.
pub(crate) const SEGMENT_KIND: &str = "bridge";

/// A link to check with the index and label of the link it was written as.
type Numbered = (usize, String, DraftLink);

/// The links to check, each with the number and label of the link it was written as: a LAN
/// segment written as one link with its members' endpoints becomes one wire per member, to an
/// interface `eN` of a node named after the segment (`segment:`, else `lan1`, `lan2`, ...
/// in file order), whose written name is returned too.
fn segment_wires(
    doc: &Doc<'_>,
    links: Vec<DraftLink>,
    declared: Option<&Declared>,
) -> Result<(Vec<Numbered>, BTreeSet<String>), FileError> {
    let mut nodes: BTreeSet<String> = declared
        .into_iter()
        .flat_map(|d| d.nodes.iter().map(|n| n.name.clone()))
        .collect();
    nodes.extend(
        links
            .iter()
            .filter(|l| !is_segment(l))
            .flat_map(|l| l.endpoints.iter().map(|e| e.node.clone())),
    );
    let mut segments = BTreeSet::new();
    let mut out = Vec::with_capacity(links.len());
    let mut numbered = 0;
    for (i, link) in links.into_iter().enumerate() {
        let name = label(&link.endpoints);
        if !is_segment(&link) {
            out.push((i, name, link));
            continue;
        }
        let fail = |m: &str| doc.link_error(i, &name, &link.at, m);
        if link.endpoints.len() < 2 {
            return Err(fail(&format!(
                "a LAN segment needs at least 2 endpoints, has {}",
                link.endpoints.len()
            )));
        }
        let segment = match &link.segment {
            Some(Segment::Named(s)) => s.clone(),
            _ => loop {
                numbered += 1;
                let s = format!("lan{numbered}");
                if !nodes.contains(&s) && !segments.contains(&s) {
                    break s;
                }
            },
        };
        if nodes.contains(&segment) {
            return Err(fail(&format!(
                "segment {segment} has the name of a node; give the segment another name"
            )));
        }
        if !segments.insert(segment.clone()) {
            return Err(fail(&format!(
                "segment {segment} is written twice; list all its members in one link"
            )));
        }
        for (k, member) in link.endpoints.iter().enumerate() {
            let port = EndpointSpec {
                node: segment.clone(),
                ifname: format!("e{}", k + 1),
                addrs: Vec::new(),
            };
            out.push((
                i,
                name.clone(),
                DraftLink {
                    endpoints: vec![member.clone(), port],
                    mtu: link.mtu,
                    down: link.down,
                    impair: link.impair,
                    segment: None,
                    at: link.at.clone(),
                },
            ));
        }
    }
    Ok((out, segments))
}

/// Whether a link is a LAN segment written with its members' endpoints.
fn is_segment(link: &DraftLink) -> bool {
    link.segment.is_some()
}

/// `r1:eth1 -- r2:eth1`, naming a link in errors.
pub(super) fn label<T: std::fmt::Display>(endpoints: &[T]) -> String {
    let names: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    names.join(" -- ")
}

/// Splits `node:ifname` (ovswire's and containerlab's brief endpoints) or, when `with_addr`,
/// `node:ifname[:addr/len]` (k8s-topo's, and ovswire's inline address); an IPv6 address may
/// contain `:`, as interface names cannot.
pub(super) fn split_endpoint(
    endpoint: &str,
    with_addr: bool,
) -> Result<(EndpointSpec, Option<&str>), String> {
    let form = if with_addr {
        "node:interface or node:interface:address/length, like r1:eth1 or r1:eth1:10.0.0.1/30"
    } else {
        "node:interface, like r1:eth1"
    };
    let (node, rest) = endpoint
        .split_once(':')
        .ok_or_else(|| format!("endpoint {endpoint:?} must be written {form}"))?;
    let (ifname, addr) = match rest.split_once(':') {
        Some((ifname, addr)) if with_addr => (ifname, Some(addr)),
        _ => (rest, None),
    };
    let spec = EndpointSpec {
        node: node.to_owned(),
        ifname: ifname.to_owned(),
        addrs: Vec::new(),
    };
    Ok((spec, addr))
}

/// Parses an interface address, saying which endpoint it is for when it is wrong.
pub(super) fn parse_addr(endpoint: &EndpointSpec, addr: &str) -> Result<Cidr, String> {
    addr.trim().parse().map_err(|e| format!("{endpoint}: {e}"))
}

/// Reads endpoints written `node:ifname[:addr/len]`, with their inline address if any.
pub(super) fn endpoints_with_addrs(written: &[String]) -> Result<Vec<EndpointSpec>, String> {
    written
        .iter()
        .map(|w| {
            let (mut endpoint, addr) = split_endpoint(w, true)?;
            if let Some(addr) = addr {
                let cidr = parse_addr(&endpoint, addr)?;
                endpoint.addrs.push(cidr);
            }
            Ok(endpoint)
        })
        .collect()
}

/// The node name of the host in endpoints (`host:IFNAME`, containerlab's): the link's other end
/// is an interface of that name in the host.
pub(crate) const HOST_NODE: &str = "host";

/// The node name of the management network in endpoints (`mgmt-net:IFNAME`, containerlab's): a
/// host link whose end in the host joins the management network's bridge.
pub(crate) const MGMT_NODE: &str = "mgmt-net";

/// Runs the checks every format shares and builds the [`LabSpec`]: names as written are
/// checked and mapped to the names systems need (see [`crate::names`]), which the spec carries,
/// with the written ones kept in [`LabSpec::names`] for showing them back.
pub(super) fn finish(doc: &Doc<'_>, draft: Draft) -> Result<LabSpec, FileError> {
    let lab = names::object("lab name", &draft.name).map_err(|e| doc.invalid(&draft.name_at, e))?;
    if let Some(mtu) = draft.mtu {
        check_mtu(mtu).map_err(|m| doc.invalid(&draft.mtu_at, m.to_string()))?;
    }

    let (draft_links, written_segments) = segment_wires(doc, draft.links, draft.declared.as_ref())?;

    // Every node's system name, by written name: declared nodes, then those only links name.
    let mut written: Vec<&str> = Vec::new();
    if let Some(declared) = &draft.declared {
        written.extend(declared.nodes.iter().map(|n| n.name.as_str()));
    }
    written.extend(
        draft_links
            .iter()
            .flat_map(|(_, _, l)| l.endpoints.iter().map(|e| e.node.as_str())),
    );
    let node_names = match names::nodes(written.iter().copied()) {
        Ok(map) => map,
        Err(e) => {
            // Say where: the first node, declared or in a link, that cannot be mapped.
            let bad = |name: &str| names::object("node name", name).is_err();
            if let Some(n) = draft
                .declared
                .as_ref()
                .and_then(|d| d.nodes.iter().find(|n| bad(&n.name)))
            {
                return Err(doc.invalid(&n.at, e));
            }
            if let Some((i, name, l)) = draft_links
                .iter()
                .find(|(_, _, l)| l.endpoints.iter().any(|e| bad(&e.node)))
            {
                return Err(doc.link_error(*i, name, &l.at, &e));
            }
            return Err(doc.invalid(&[], e));
        }
    };

    let base = doc.base_dir();
    let mut nodes = BTreeMap::new();
    let mut shown = Names {
        lab: (lab != draft.name).then(|| draft.name.clone()),
        ..Names::default()
    };
    let under = match draft.declared {
        None => None,
        Some(declared) => {
            let mut seen = BTreeMap::new();
            for (position, n) in declared.nodes.into_iter().enumerate() {
                if n.name == HOST_NODE || n.name == MGMT_NODE {
                    return Err(doc.invalid(
                        &n.at,
                        format!(
                            "node {} names the host in endpoints like {}:eth1 (a veth to the \
                             host); rename the node",
                            n.name, n.name
                        ),
                    ));
                }
                if let Some(first) = seen.insert(n.name.clone(), position) {
                    return Err(doc.invalid(
                        &n.at,
                        format!(
                            "node {} is defined twice (nodes {} and {}); rename one or merge \
                             them",
                            n.name,
                            first + 1,
                            position + 1
                        ),
                    ));
                }
                let system = node_names[&n.name].clone();
                let mut spec = n
                    .settings
                    .resolve(&n.name, &base, &n.own)
                    .map_err(|e| doc.invalid(&n.at, e))?;
                spec.position = position;
                spec.line = line_of_step(doc, &n.at);
                if system != n.name {
                    shown.nodes.insert(system.clone(), n.name.clone());
                }
                nodes.insert(system, spec);
            }
            Some(declared.under)
        }
    };
    let mut mgmt = check_mgmt(doc, draft.mgmt, &nodes)?;
    let has_containers = nodes.values().any(NodeSpec::is_container);

    // The segments, by system name: written as one link, or declared with a segment kind.
    let segments: BTreeSet<String> = written_segments
        .iter()
        .map(|s| node_names[s].clone())
        .chain(
            nodes
                .iter()
                .filter(|(_, n)| n.is_segment())
                .map(|(s, _)| s.clone()),
        )
        .collect();

    let mut links = Vec::with_capacity(draft_links.len());
    // Which link (index, label) uses each interface, by system names.
    let mut used: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    // Each interface's written name, by system names.
    let mut ifnames: BTreeMap<(String, String), String> = BTreeMap::new();
    for (i, name, link) in draft_links {
        let fail = |m: &str| doc.link_error(i, &name, &link.at, m);
        let [a, b] = <[EndpointSpec; 2]>::try_from(link.endpoints.clone()).map_err(|eps| {
            fail(&format!(
                "needs exactly 2 endpoints, has {}; a link is a cable between two interfaces",
                eps.len()
            ))
        })?;
        let mut ends = Vec::with_capacity(2);
        for e in [&a, &b] {
            if let Some(under) = under
                && e.node != HOST_NODE
                && e.node != MGMT_NODE
                && !written_segments.contains(&e.node)
                && !seen_declared(&nodes, &node_names, &e.node)
            {
                return Err(fail(&format!(
                    "node {} is not defined under {under}; define it there or correct the name",
                    e.node
                )));
            }
            let ifname = names::ifname(&e.ifname).map_err(|err| fail(&err))?;
            // A link to the management network is a host link whose host end joins its bridge.
            let node = if e.node == MGMT_NODE {
                if !has_containers {
                    return Err(fail(&format!(
                        "{e} joins the management network of the lab's container nodes, and the \
                         lab has none; use {HOST_NODE}:{} for a veth to the host",
                        e.ifname
                    )));
                }
                mgmt.bridged.insert(ifname.clone());
                HOST_NODE.to_owned()
            } else {
                node_names[&e.node].clone()
            };
            let key = (node.clone(), ifname.clone());
            if let Some(other) = ifnames.get(&key)
                && *other != e.ifname
            {
                return Err(fail(&format!(
                    "{}:{} and {}:{other} are both interface {ifname} on Linux; rename one",
                    e.node, e.ifname, e.node
                )));
            }
            ends.push(EndpointSpec {
                node,
                ifname,
                addrs: e.addrs.clone(),
            });
        }
        let [sa, sb] = <[EndpointSpec; 2]>::try_from(ends).expect("two ends were mapped");
        if segments.contains(&sa.node) && segments.contains(&sb.node) {
            return Err(fail(
                "joins two LAN segments; join each segment to an interface of a node instead",
            ));
        }
        if sa.node == HOST_NODE && sb.node == HOST_NODE {
            return Err(fail(
                "both ends are in the host; a host link joins a node's interface to the host",
            ));
        }
        if sa.node == sb.node && sa.ifname == sb.ifname {
            return Err(fail(&format!(
                "both ends are {a}; a link needs two different interfaces"
            )));
        }
        for (e, s) in [(&a, &sa), (&b, &sb)] {
            if let Some((j, other)) = used.get(&(s.node.clone(), s.ifname.clone())) {
                return Err(fail(&format!(
                    "{e} is already used by link {} ({other}); an interface can be in one link \
                     only",
                    j + 1
                )));
            }
        }
        if let Some(mtu) = link.mtu {
            check_mtu(mtu).map_err(|m| fail(&m.to_string()))?;
        }
        for (e, s) in [(&a, &sa), (&b, &sb)] {
            if s.ifname == MGMT_IFNAME && nodes.get(&s.node).is_some_and(NodeSpec::is_container) {
                return Err(fail(&format!(
                    "{e}: {MGMT_IFNAME} of a container node is its management interface; use \
                     another interface for the link (eth1, eth2, ...)"
                )));
            }
        }
        for (e, s) in [(&a, &sa), (&b, &sb)] {
            used.insert((s.node.clone(), s.ifname.clone()), (i, name.clone()));
            ifnames.insert((s.node.clone(), s.ifname.clone()), e.ifname.clone());
            if s.ifname != e.ifname {
                shown
                    .ifnames
                    .insert(format!("{}:{}", s.node, s.ifname), e.ifname.clone());
            }
            if s.node != e.node && e.node != MGMT_NODE {
                shown.nodes.insert(s.node.clone(), e.node.clone());
            }
            let position = nodes.len();
            let kind = if s.node == HOST_NODE {
                Some(HOST_NODE)
            } else if segments.contains(&s.node) {
                Some(SEGMENT_KIND)
            } else {
                None
            };
            nodes.entry(s.node.clone()).or_insert_with(|| NodeSpec {
                position,
                kind: kind.map(str::to_owned),
                ..NodeSpec::default()
            });
        }
        links.push(LabLink {
            a: sa,
            b: sb,
            mtu: link.mtu,
            down: link.down,
            impair: link.impair,
        });
    }

    Ok(LabSpec {
        name: lab,
        mtu: draft.mtu,
        mgmt,
        nodes,
        links,
        names: shown,
    })
}

/// Whether written node `node` is one of the declared `nodes` (keyed by system name).
fn seen_declared(
    nodes: &BTreeMap<String, NodeSpec>,
    node_names: &BTreeMap<String, String>,
    node: &str,
) -> bool {
    node_names.get(node).is_some_and(|s| nodes.contains_key(s))
}

/// The line of the node at `at`.
fn line_of_step(doc: &Doc<'_>, at: &[Step]) -> Option<usize> {
    match doc.format {
        Format::KneText => super::kne::text_line_of(doc.text, at),
        _ => line_of(doc.text, at),
    }
}

/// The interface a container node has on the management network.
pub(crate) const MGMT_IFNAME: &str = "eth0";

/// containerlab's management subnet, which nodes' `mgmt-ipv4` addresses are taken from when a
/// file sets them without a subnet.
const CLAB_MGMT_SUBNET: &str = "172.20.20.0/24";

/// Checks the management network: the subnet an IPv4 network of at most a /29 that the
/// gateway (its first address) and nodes fit in, every node's `mgmt-ipv4` inside it, not its
/// network, gateway or broadcast address, and not taken twice.
fn check_mgmt(
    doc: &Doc<'_>,
    draft: DraftMgmt,
    nodes: &BTreeMap<String, NodeSpec>,
) -> Result<MgmtSpec, FileError> {
    let at = &draft.at;
    let subnet = match &draft.ipv4_subnet {
        Some(s) if s.trim() != "auto" => {
            let cidr: Cidr = s
                .trim()
                .parse()
                .map_err(|e| doc.invalid(at, format!("mgmt ipv4-subnet: {e}")))?;
            if !cidr.addr.is_ipv4() || cidr.prefix > 29 {
                return Err(doc.invalid(
                    at,
                    format!(
                        "mgmt ipv4-subnet {s} must be an IPv4 subnet of at most /29, like \
                         172.20.20.0/24"
                    ),
                ));
            }
            Some(cidr)
        }
        _ => None,
    };
    let statics: Vec<(&String, &NodeSpec, std::net::Ipv4Addr)> = nodes
        .iter()
        .filter_map(|(n, s)| Some((n, s, s.mgmt_ipv4?)))
        .collect();
    let Some((_, _, first)) = statics.first() else {
        return Ok(MgmtSpec {
            network: draft.network,
            ipv4_subnet: subnet,
            bridged: BTreeSet::new(),
        });
    };
    let (range, said) = match subnet {
        Some(c) => (c, format!("mgmt ipv4-subnet {c}")),
        None if statics
            .iter()
            .any(|(_, _, a)| ipv4_net(CLAB_MGMT_SUBNET).contains(*a)) =>
        {
            (
                ipv4_net(CLAB_MGMT_SUBNET).cidr(),
                format!("the default management subnet {CLAB_MGMT_SUBNET} (no ipv4-subnet is set)"),
            )
        }
        None => {
            let c = Cidr {
                addr: std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from(*first) & !0xff)),
                prefix: 24,
            };
            (
                c,
                format!("{c}, the /24 of the first mgmt-ipv4 (no ipv4-subnet is set)"),
            )
        }
    };
    let net = Ipv4Net::of(range);
    let mut taken: BTreeMap<std::net::Ipv4Addr, &String> = BTreeMap::new();
    for (name, spec, addr) in statics {
        let problem = if !net.contains(addr) {
            Some(format!(
                "is outside {said}; pick an address inside it or set mgmt ipv4-subnet"
            ))
        } else if addr == net.network() || addr == net.broadcast() {
            Some(format!("is the network or broadcast address of {said}"))
        } else if addr == net.gateway() {
            Some(format!(
                "is the gateway of {said} (its first address); pick another"
            ))
        } else {
            taken.get(&addr).map(|other| {
                format!("is taken by node {other} too; give each node its own address")
            })
        };
        if let Some(p) = problem {
            return Err(FileError::Invalid {
                path: doc.origin.to_owned(),
                line: spec.line,
                message: format!("node {name}: mgmt-ipv4 {addr} {p}"),
            });
        }
        taken.insert(addr, name);
    }
    Ok(MgmtSpec {
        network: draft.network,
        ipv4_subnet: Some(range),
        bridged: BTreeSet::new(),
    })
}

/// A subnet written in this file.
fn ipv4_net(text: &str) -> Ipv4Net {
    Ipv4Net::of(text.parse().expect("a valid subnet literal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_with_and_without_addresses() {
        let (e, addr) = split_endpoint("r1:eth1:2001:db8::1/64", true).unwrap();
        assert_eq!(
            (e.to_string(), addr),
            ("r1:eth1".to_owned(), Some("2001:db8::1/64"))
        );
        let (e, addr) = split_endpoint("r1:eth1:x", false).unwrap();
        assert_eq!((e.ifname.as_str(), addr), ("eth1:x", None));
        assert!(
            split_endpoint("r1", true)
                .unwrap_err()
                .contains("node:interface")
        );
    }
}
