//! The underlay: a LAN between nodes, as the servers of a lab cluster have.
//!
//! Cross-node wires on the userspace datapath are VXLAN tunnels, and OVS's userspace tunnels
//! only work when the node's own address sits on an OVS internal port. So each node gets the
//! recipe a real server would: bridge `br-phy` (netdev datapath, `NORMAL` forwarding) holding
//! the node's underlay NIC `ul0`, and the node's address (`172.31.0.<10 + i>/24`) on the
//! `br-phy` internal interface. Two nodes are joined by one veth pair (a cable); one or three
//! and more by a Linux bridge in a namespace of its own (a switch), one veth per node.
//!
//! Veth pairs are created with both ends born in their final namespaces (one netlink request),
//! so a failure never strands an end in the host's namespace; the switch namespace carries the
//! test process id like every testbed name, so the leak check reports it and a later testbed
//! reaps it if its test process was killed.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ovswire_netns::link::{self, VethEnd};

use crate::netns::Netns;
use crate::node::{Node, next_tag};
use crate::{Error, Result};

/// How many pings a node gets to reach a peer while the underlay is checked.
const PING_TRIES: usize = 5;
/// The first host number; node `i` is `172.31.0.<FIRST_HOST + i>`.
const FIRST_HOST: u8 = 10;
/// The Linux bridge inside the switch namespace.
const SWITCH_BRIDGE: &str = "sw0";
/// The suffix of a switch namespace's name.
pub(crate) const SWITCH_SUFFIX: &str = "-underlay";

/// One node on an underlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node's name ([`Node::name`]).
    pub node: String,
    /// The node's network namespace.
    pub netns: PathBuf,
    /// The node's address on the underlay, on its `br-phy` interface (prefix length 24).
    pub ip: Ipv4Addr,
}

/// A LAN joining nodes, made by [`crate::Testbed::underlay`].
///
/// Dropping it unplugs every node: the switch namespace and its veths go (with two nodes, the
/// cable between them). Each node keeps its `br-phy` and address until the node itself drops.
#[derive(Debug)]
pub struct Underlay {
    members: Vec<Member>,
    mtu: u32,
    segment: Segment,
}

#[derive(Debug)]
enum Segment {
    /// A veth pair between two nodes; `ul0` in this namespace is one end.
    Cable(PathBuf),
    /// A Linux bridge in a namespace of its own, one veth per node.
    Switch(Netns),
}

impl Underlay {
    /// The OVS bridge holding each node's underlay NIC and address.
    pub const BRIDGE: &str = "br-phy";
    /// The name of each node's underlay NIC (a veth end on `br-phy`).
    pub const NIC: &str = "ul0";
    /// How much larger the underlay's MTU is than the wires': room for the VXLAN header (50
    /// bytes) with margin, as `xnode-manual.sh` does.
    pub const HEADROOM: u32 = 100;
    /// The prefix length of the underlay addresses.
    pub const PREFIX_LEN: u8 = 24;

    pub(crate) fn join(nodes: &[&Node], mtu: u32) -> Result<Self> {
        let max = usize::from(u8::MAX - FIRST_HOST);
        if nodes.is_empty() || nodes.len() > max {
            return Err(Error::Setup(format!(
                "an underlay joins 1 to {max} nodes, not {}",
                nodes.len()
            )));
        }
        if !(68..=65535 - Self::HEADROOM).contains(&mtu) {
            return Err(Error::Setup(format!(
                "underlay MTU {mtu} is out of range: give the wires' MTU, 68 to {}",
                65535 - Self::HEADROOM
            )));
        }
        for node in nodes {
            if node.vsctl(&["list-br"])?.lines().any(|b| b == Self::BRIDGE) {
                return Err(Error::Setup(format!(
                    "node {} already has bridge {}: a node joins one underlay only",
                    node.name(),
                    Self::BRIDGE
                )));
            }
        }
        let link_mtu = mtu + Self::HEADROOM;
        let segment = match nodes {
            [a, b] => {
                let peer = b.netns().path().to_owned();
                let far = VethEnd::new(Self::NIC).netns(&peer);
                a.netns().block_on(|h| async move {
                    Ok(link::add_veth(&h, VethEnd::new(Self::NIC), far, Some(link_mtu)).await?)
                })?;
                Segment::Cable(a.netns().path().to_owned())
            }
            _ => {
                let switch = Netns::create(&format!("{}{SWITCH_SUFFIX}", next_tag()))?;
                let paths: Vec<PathBuf> = nodes.iter().map(|n| n.netns().path().into()).collect();
                switch.block_on(|h| async move {
                    link::add_bridge(&h, SWITCH_BRIDGE, link_mtu).await?;
                    for (i, path) in paths.iter().enumerate() {
                        let port = format!("n{i}");
                        let far = VethEnd::new(Self::NIC).netns(path);
                        link::add_veth(&h, VethEnd::new(&port), far, Some(link_mtu)).await?;
                        link::set_master(&h, &port, SWITCH_BRIDGE).await?;
                    }
                    Ok(())
                })?;
                Segment::Switch(switch)
            }
        };
        // From here on, dropping `underlay` unplugs whatever was made if a step fails.
        let mut underlay = Self {
            members: Vec::with_capacity(nodes.len()),
            mtu,
            segment,
        };
        let members = std::thread::scope(|s| {
            let joins: Vec<_> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    let ip = Ipv4Addr::new(172, 31, 0, FIRST_HOST + i as u8);
                    s.spawn(move || plug(node, ip, link_mtu))
                })
                .collect();
            joins
                .into_iter()
                .map(|j| {
                    j.join().map_err(|_| {
                        Error::Setup("joining a node to the underlay panicked".into())
                    })?
                })
                .collect::<Result<Vec<Member>>>()
        })?;
        underlay.members = members;
        underlay.check(nodes)?;
        Ok(underlay)
    }

    /// Every node on the underlay, in the order they were given.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The underlay address of the `i`-th node given to [`crate::Testbed::underlay`].
    ///
    /// # Panics
    ///
    /// When `i` is not below the number of nodes, like indexing.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        self.members[i].ip
    }

    /// The underlay address of `node`, if it is on this underlay.
    pub fn ip_of(&self, node: &Node) -> Option<Ipv4Addr> {
        self.members
            .iter()
            .find(|m| m.netns == node.netns().path())
            .map(|m| m.ip)
    }

    /// The largest frame the wires over this underlay carry (what was asked for).
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The MTU of the underlay NICs and `br-phy`: [`Self::mtu`] + [`Self::HEADROOM`].
    pub fn link_mtu(&self) -> u32 {
        self.mtu + Self::HEADROOM
    }

    /// The switch namespace, when the underlay has one (any node count but two).
    pub fn switch(&self) -> Option<&Netns> {
        match &self.segment {
            Segment::Switch(ns) => Some(ns),
            Segment::Cable(_) => None,
        }
    }

    /// Pings every member from every other (`ping` as an oracle), which also lets each OVS
    /// learn its peers' MAC addresses, as userspace tunnels need.
    fn check(&self, nodes: &[&Node]) -> Result<()> {
        for (from, node) in nodes.iter().enumerate() {
            for (to, peer) in self.members.iter().enumerate() {
                if from == to {
                    continue;
                }
                let ip = peer.ip.to_string();
                let mut last = None;
                for _ in 0..PING_TRIES {
                    let out = node
                        .netns()
                        .output("ping", &["-c", "1", "-W", "1", "-q", &ip])?;
                    if out.status.success() {
                        last = None;
                        break;
                    }
                    last = Some(out);
                }
                if let Some(out) = last {
                    let log = std::fs::read_to_string(node.dir().join("vswitchd.log"))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    return Err(Error::Setup(format!(
                        "node {} cannot reach node {} ({ip}) over the underlay after {PING_TRIES} \
                         pings: {}; check `ovs-vsctl show` and `ovs-ofctl dump-flows {}` on both \
                         nodes; the tail of {}'s ovs-vswitchd log:\n{}",
                        node.name(),
                        peer.node,
                        String::from_utf8_lossy(&out.stdout).trim(),
                        Self::BRIDGE,
                        node.name(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Puts `node` on the underlay: `br-phy` with the NIC, the address on `br-phy`, both up.
fn plug(node: &Node, ip: Ipv4Addr, link_mtu: u32) -> Result<Member> {
    let bridge = Underlay::BRIDGE;
    let mtu = format!("mtu_request={link_mtu}");
    node.vsctl(&[
        "add-br",
        bridge,
        "--",
        "set",
        "Bridge",
        bridge,
        "datapath_type=netdev",
        "--",
        "add-port",
        bridge,
        Underlay::NIC,
        "--",
        "set",
        "Interface",
        bridge,
        &mtu,
    ])?;
    node.netns().block_on(|h| async move {
        link::set_up(&h, Underlay::NIC).await?;
        link::add_address(&h, bridge, ip.into(), Underlay::PREFIX_LEN).await?;
        Ok(link::set_up(&h, bridge).await?)
    })?;
    Ok(Member {
        node: node.name().to_owned(),
        netns: node.netns().path().to_owned(),
        ip,
    })
}

impl Drop for Underlay {
    fn drop(&mut self) {
        // A switch namespace removes itself; a cable is deleted from its first end (the other
        // end goes with it), unless that node is already gone.
        if let Segment::Cable(path) = &self.segment
            && path.exists()
        {
            let _ =
                ovswire_netns::block_on(path, |h| async move { link::delete(&h, Self::NIC).await });
        }
    }
}

impl Node {
    /// The same-node wire `xnode-manual.sh` builds by hand with the OVS tools (the baseline
    /// ovswire's wires are compared with): on bridge `ovsbr0`, the host ends `h1` (ofport 1)
    /// and `h2` (ofport 2) of pods `r1`'s and `r2`'s `eth1`, with the flows
    /// `in_port=1 → output:2` and back; TX checksum offload off on all four veth ends. Returns
    /// the two pods, without addresses.
    pub fn manual_wire(&self, mtu: u32) -> Result<(Netns, Netns)> {
        self.add_bridge("ovsbr0")?;
        let (r1, r2) = (self.pod("r1")?, self.pod("r2")?);
        self.netns().veth_to("h1", &r1, "eth1", Some(mtu))?;
        self.netns().veth_to("h2", &r2, "eth1", Some(mtu))?;
        for (ns, dev) in [
            (self.netns(), "h1"),
            (self.netns(), "h2"),
            (&r1, "eth1"),
            (&r2, "eth1"),
        ] {
            ns.exec("ethtool", &["-K", dev, "tx", "off"])?;
        }
        self.vsctl(&[
            "add-port",
            "ovsbr0",
            "h1",
            "--",
            "set",
            "Interface",
            "h1",
            "ofport_request=1",
            "--",
            "add-port",
            "ovsbr0",
            "h2",
            "--",
            "set",
            "Interface",
            "h2",
            "ofport_request=2",
        ])?;
        for flow in ["in_port=1,actions=output:2", "in_port=2,actions=output:1"] {
            self.ofctl(&["-O", "OpenFlow13", "add-flow", "ovsbr0", flow])?;
        }
        Ok((r1, r2))
    }

    /// One side of the cross-node wire `xnode-manual.sh` builds by hand with the OVS tools (the
    /// baseline ovswire's cross-node wires are compared with): on bridge `ovsbr0`, a VXLAN port
    /// `vx` (ofport 1) to `remote` and the host end `vr` (ofport 11) of pod `r`'s `eth1`, with the
    /// flows `in_port=11 → set tun_id 77, output:1` and `in_port=1,tun_id=77 → output:11`; TX
    /// checksum offload off on both veth ends, `cidr` on `eth1`. Returns the pod.
    pub fn manual_vxlan_side(&self, remote: Ipv4Addr, cidr: &str, mtu: u32) -> Result<Netns> {
        self.add_bridge("ovsbr0")?;
        let pod = self.pod("r")?;
        self.netns().veth_to("vr", &pod, "eth1", Some(mtu))?;
        pod.exec("ethtool", &["-K", "eth1", "tx", "off"])?;
        self.netns().exec("ethtool", &["-K", "vr", "tx", "off"])?;
        self.vsctl(&[
            "add-port",
            "ovsbr0",
            "vx",
            "--",
            "set",
            "Interface",
            "vx",
            "type=vxlan",
            &format!("options:remote_ip={remote}"),
            "options:key=flow",
            "ofport_request=1",
            "--",
            "add-port",
            "ovsbr0",
            "vr",
            "--",
            "set",
            "Interface",
            "vr",
            "ofport_request=11",
        ])?;
        for flow in [
            "in_port=11,actions=set_field:77->tun_id,output:1",
            "in_port=1,tun_id=77,actions=output:11",
        ] {
            self.ofctl(&["-O", "OpenFlow13", "add-flow", "ovsbr0", flow])?;
        }
        pod.add_address("eth1", cidr)?;
        Ok(pod)
    }

    /// The node's underlay address (the IPv4 address on `br-phy`), or `None` when the node is
    /// on no underlay.
    pub fn underlay_ip(&self) -> Result<Option<Ipv4Addr>> {
        self.netns().block_on(|h| async move {
            if !link::names(&h).await?.iter().any(|n| n == Underlay::BRIDGE) {
                return Ok(None);
            }
            Ok(link::addresses(&h, Underlay::BRIDGE)
                .await?
                .into_iter()
                .find_map(|ip| match ip {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(_) => None,
                }))
        })
    }
}

/// Whether a namespace path is an underlay's switch.
pub(crate) fn is_switch(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(SWITCH_SUFFIX))
}
