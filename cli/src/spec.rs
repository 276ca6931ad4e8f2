//! A lab as any supported topology file describes it: nodes (routers) and the links between
//! their interfaces. Every file format is read into a [`LabSpec`]; the lab is brought up from it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// A lab: its name, management network, nodes and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// The lab's name as systems take it (a Kubernetes object name: lower-case letters, digits,
    /// `-`, `.`); as written, in [`Self::names`].
    pub name: String,
    /// Default MTU of the links, when the file sets one.
    pub mtu: Option<u32>,
    /// The management network of its container nodes.
    pub mgmt: MgmtSpec,
    /// Every node, by (system) name, including nodes that only appear in links.
    pub nodes: BTreeMap<String, NodeSpec>,
    /// The links, in file order.
    pub links: Vec<LabLink>,
    /// The names as the file writes them, where they differ from the system names every other
    /// field carries (see [`crate::names`]).
    pub names: crate::names::Names,
}

impl LabSpec {
    /// Whether a link ends in the host (`host:IFNAME`).
    pub fn has_host_links(&self) -> bool {
        self.nodes.values().any(NodeSpec::is_host)
    }

    /// Whether any node runs as a container.
    pub fn has_containers(&self) -> bool {
        self.nodes.values().any(NodeSpec::is_container)
    }

    /// The LAN segments' names.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_segment())
            .map(|(name, _)| name.as_str())
    }

    /// The link ends that are interfaces of nodes: every end but those on LAN segments.
    pub fn interfaces(&self) -> impl Iterator<Item = &EndpointSpec> {
        self.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| !self.nodes.get(&e.node).is_some_and(NodeSpec::is_segment))
    }

    /// The nodes in the order the file declares them (nodes only named in links last).
    pub fn nodes_in_file_order(&self) -> Vec<(&String, &NodeSpec)> {
        let mut nodes: Vec<_> = self.nodes.iter().collect();
        nodes.sort_by_key(|(_, n)| n.position);
        nodes
    }

    /// Link `link`'s name as the file writes it: `PC1:ethernet-1/1--r2:eth1`.
    pub fn written_name(&self, link: &LabLink) -> String {
        format!(
            "{}--{}",
            self.names.endpoint(&link.a.node, &link.a.ifname),
            self.names.endpoint(&link.b.node, &link.b.ifname)
        )
    }

    /// The interfaces of `node` that links name, in file order.
    pub fn interfaces_of(&self, node: &str) -> Vec<&EndpointSpec> {
        self.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.node == node)
            .collect()
    }
}

/// The management network container nodes get their `eth0` on (containerlab's `mgmt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MgmtSpec {
    /// The container engine network's name; `ovswire-<lab>` when not set.
    pub network: Option<String>,
    /// Its IPv4 subnet; when not set, the one the nodes' `mgmt-ipv4` addresses fall in, else a
    /// free /24 chosen at `lab up`.
    pub ipv4_subnet: Option<Cidr>,
    /// Host ends of links to the management network (containerlab's `mgmt-net:IFNAME`): host
    /// links whose end in the host joins the network's bridge.
    pub bridged: BTreeSet<String>,
}

/// A node (router) of a lab: a container when it has an image, else a bare network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its kind (containerlab's `kind`), when the file gives one; `linux` otherwise.
    pub kind: Option<String>,
    /// The container image; a node without one is a bare network namespace.
    pub image: Option<String>,
    /// The container's command, replacing the image's (a shell-style string, as containerlab
    /// takes it).
    pub cmd: Option<String>,
    /// The container's entrypoint, replacing the image's.
    pub entrypoint: Option<String>,
    /// Environment variables of the container.
    pub env: BTreeMap<String, String>,
    /// Host paths mounted into the container.
    pub binds: Vec<Bind>,
    /// The user the container's command runs as.
    pub user: Option<String>,
    /// Shell commands run inside the node once its links are wired, in order (containerlab's
    /// `exec`).
    pub exec: Vec<String>,
    /// Labels of the container.
    pub labels: BTreeMap<String, String>,
    /// A configuration file mounted where the node's software reads it at start.
    pub startup_config: Option<PathBuf>,
    /// The startup configuration itself, when the file gives it inline (KNE's `config.data`);
    /// it is used in place of [`Self::startup_config`].
    pub startup_config_inline: Option<Vec<u8>>,
    /// Where the startup configuration is mounted, when the file says (KNE's `config_path` and
    /// `config_file`); else where the node's kind reads it.
    pub startup_config_at: Option<String>,
    /// The node's address on the management network.
    pub mgmt_ipv4: Option<Ipv4Addr>,
    /// The container engine's restart policy: `no`, `on-failure`, `always`, `unless-stopped`.
    pub restart_policy: Option<String>,
    /// The node's place in the file (from 0); management addresses are handed out in this
    /// order.
    pub position: usize,
    /// The line of the file that declares the node, for errors found after parsing.
    pub line: Option<usize>,
}

impl NodeSpec {
    /// Whether the node runs as a container (it has an image and is not a segment).
    pub fn is_container(&self) -> bool {
        self.image.is_some() && !self.is_segment()
    }

    /// Its kind: the file's, or `linux`; `host` for the host of `host:IFNAME` endpoints.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("linux")
    }

    /// Whether it is the host (`host:IFNAME` endpoints), which ovswire does not make.
    pub fn is_host(&self) -> bool {
        self.kind() == "host"
    }

    /// Whether it is a LAN segment (containerlab's `bridge` and `ovs-bridge` kinds, or a link
    /// written with more than two endpoints): its links are its members' wires, and nothing
    /// is made for it but flows.
    pub fn is_segment(&self) -> bool {
        crate::kinds::SEGMENTS.contains(&self.kind())
    }
}

/// A host path mounted into a container: `HOST:CONTAINER[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The host path, absolute (a relative one is taken from the topology file's directory).
    pub host: PathBuf,
    /// Where it appears in the container.
    pub container: String,
    /// Mount options such as `ro`.
    pub options: Option<String>,
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host.display(), self.container)?;
        if let Some(o) = &self.options {
            write!(f, ":{o}")?;
        }
        Ok(())
    }
}

/// A point-to-point link between two node interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabLink {
    /// One end.
    pub a: EndpointSpec,
    /// The other end.
    pub b: EndpointSpec,
    /// This link's MTU, when the file sets one.
    pub mtu: Option<u32>,
    /// Brought up administratively down (the cable unplugged).
    pub down: bool,
    /// What each direction does to its frames; `a->b` is from [`Self::a`] to [`Self::b`] as
    /// written.
    pub impair: ovswire_core::impair::LinkImpairment,
}

impl LabLink {
    /// `r1:eth1--r2:eth1`, as the file writes it.
    pub fn name(&self) -> String {
        ovswire_core::link_name(
            (&self.a.node, &self.a.ifname),
            (&self.b.node, &self.b.ifname),
        )
    }

    /// The name agents give the link: its ends in order, whichever way the file writes them.
    pub fn agent_name(&self) -> String {
        let a = (self.a.node.as_str(), self.a.ifname.as_str());
        let b = (self.b.node.as_str(), self.b.ifname.as_str());
        if a <= b {
            ovswire_core::link_name(a, b)
        } else {
            ovswire_core::link_name(b, a)
        }
    }
}

/// One end of a link: a node's interface and the addresses to put on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The node's name.
    pub node: String,
    /// The interface name inside the node (at most 15 characters).
    pub ifname: String,
    /// Addresses to configure on the interface.
    pub addrs: Vec<Cidr>,
}

impl fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.ifname)
    }
}

/// An interface address with its prefix length, `10.0.0.1/30` or `2001:db8::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (0-32 for IPv4, 0-128 for IPv6).
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("address {s:?} has no prefix length, write it as ADDR/LEN"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("prefix length {prefix:?} in {s:?} must be 0 to {max}"))?;
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4 subnet's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    base: u32,
    prefix: u8,
}

impl Ipv4Net {
    /// The subnet of an IPv4 [`Cidr`] (its host bits cleared).
    pub fn of(c: Cidr) -> Self {
        let IpAddr::V4(a) = c.addr else {
            return Self {
                base: 0,
                prefix: 32,
            };
        };
        let mask = if c.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - c.prefix)
        };
        Self {
            base: u32::from(a) & mask,
            prefix: c.prefix,
        }
    }

    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Whether `a` is in the subnet.
    pub fn contains(self, a: Ipv4Addr) -> bool {
        let a = u64::from(u32::from(a));
        (u64::from(self.base)..u64::from(self.base) + self.size()).contains(&a)
    }

    /// The network address.
    pub fn network(self) -> Ipv4Addr {
        self.base.into()
    }

    /// The broadcast address.
    pub fn broadcast(self) -> Ipv4Addr {
        ((u64::from(self.base) + self.size() - 1) as u32).into()
    }

    /// The gateway: the first host address.
    pub fn gateway(self) -> Ipv4Addr {
        (self.base + 1).into()
    }

    /// The host addresses after the gateway, in order.
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let (first, last) = (
            u64::from(self.base) + 2,
            u64::from(self.base) + self.size() - 2,
        );
        (first..=last).map(|a| Ipv4Addr::from(a as u32))
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(self, other: Self) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// As a [`Cidr`].
    pub fn cidr(self) -> Cidr {
        Cidr {
            addr: IpAddr::V4(self.network()),
            prefix: self.prefix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_print() {
        let c: Cidr = "10.0.0.1/30".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.1/30");
        assert_eq!("2001:db8::1/64".parse::<Cidr>().unwrap().prefix, 64);
        for bad in ["10.0.0.1", "10.0.0.1/33", "x/24", "::1/129", "1.2.3.4/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
