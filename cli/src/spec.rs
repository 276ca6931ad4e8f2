//! A lab as any supported topology file describes it: nodes (routers) and the links between
//! their interfaces. Every file format is read into a [`LabSpec`]; the lab is brought up from it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A lab: its name, nodes and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// The lab's name (a Kubernetes object name: lower-case letters, digits, `-`, `.`).
    pub name: String,
    /// Default MTU of the links, when the file sets one.
    pub mtu: Option<u32>,
    /// Every node, by name, including nodes that only appear in links.
    pub nodes: BTreeMap<String, NodeSpec>,
    /// The links, in file order.
    pub links: Vec<LabLink>,
}

/// A node (router) of a lab.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// Shell commands run inside the node's network namespace once its links are wired, in
    /// order (containerlab's `exec`).
    pub exec: Vec<String>,
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
}

impl LabLink {
    /// `r1:eth1--r2:eth1`.
    pub fn name(&self) -> String {
        ovswire_core::link_name(
            (&self.a.node, &self.a.ifname),
            (&self.b.node, &self.b.ifname),
        )
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
