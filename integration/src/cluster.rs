//! A cluster of nodes on one machine, for end-to-end tests and benchmarks of cross-node wires.
//!
//! [`Cluster::new`] starts N testbed nodes (each a network namespace with its own OVS), joins
//! them on one underlay (see [`ovswire_testbed::Underlay`]: `br-phy` with the node's address,
//! as on a real server) and runs the real `ovswire-agent` in each node with the cross-node
//! flags: its underlay address, every other node as a peer, and its own certificate from the
//! cluster's peer CA (both made by `ovswire-agent pki`, as an operator would).
//!
//! ```no_run
//! use ovswire_integration::cluster::Cluster;
//! # fn main() -> anyhow::Result<()> {
//! let topology = "lab: demo\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n";
//! let cluster = Cluster::with_topology(2, 9000, Some(topology))?;
//! let (r1, r2) = (cluster.pod(0, "r1")?, cluster.pod(1, "r2")?);
//! cluster.cni_add(0, "demo", "r1", &r1, "eth1")?;
//! cluster.cni_add(1, "demo", "r2", &r2, "eth1")?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ovswire_cni::Invocation;
use ovswire_cni::spec::{Command, K8S_POD_NAME, K8S_POD_NAMESPACE};
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_testbed::{Netns, Node, Testbed, Underlay};
use serde_json::{Value, json};

use crate::agent::{AgentProcess, Binaries};

/// The directory of a node's Peers identity, in the node's directory.
const IDENTITY_DIR: &str = "pki";
/// The cluster's peer CA, in node0's directory.
const CA_DIR: &str = "peer-ca";

/// How an agent is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL, as a crash or `kill -9` would: no clean-up at all.
    Kill,
    /// SIGTERM, as systemd or the kubelet would, waiting for the agent to exit.
    Graceful,
}

/// N nodes on one underlay, each running `ovswire-agent`. Dropping it stops the agents, then
/// unplugs the underlay, then removes the nodes (and their pods' namespaces with them).
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: agents before the underlay and the nodes they run in.
    agents: Vec<Option<AgentProcess>>,
    underlay: Underlay,
    nodes: Vec<Node>,
    bins: Binaries,
    topology: Option<String>,
    /// More labs' topology files, passed as extra `--topology` flags.
    more_topologies: Vec<String>,
    /// More flags for one node's agent, from its next start.
    extra_args: BTreeMap<usize, Vec<String>>,
}

impl Cluster {
    /// Starts `nodes` nodes on an underlay for wires of MTU `mtu`, each with an agent and no
    /// topology.
    pub fn new(nodes: usize, mtu: u32) -> Result<Self> {
        Self::with_topology(nodes, mtu, None)
    }

    /// Like [`Self::new`], every agent given the same topology file's text (the lab as a
    /// whole; each agent wires the ends whose pods land on its node).
    pub fn with_topology(nodes: usize, mtu: u32, topology: Option<&str>) -> Result<Self> {
        let bins = Binaries::locate()?;
        let (nodes, underlay) = prepare(&bins, nodes, mtu)?;
        let mut cluster = Self {
            agents: Vec::with_capacity(nodes.len()),
            underlay,
            nodes,
            bins,
            topology: topology.map(str::to_owned),
            more_topologies: Vec::new(),
            extra_args: BTreeMap::new(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.agents.push(None);
            cluster.start_agent(i)?;
        }
        Ok(cluster)
    }

    /// Like [`Self::with_topology`] with one topology file per lab.
    pub fn with_topologies(nodes: usize, mtu: u32, topologies: &[&str]) -> Result<Self> {
        let bins = Binaries::locate()?;
        let (nodes, underlay) = prepare(&bins, nodes, mtu)?;
        let mut cluster = Self {
            agents: Vec::with_capacity(nodes.len()),
            underlay,
            nodes,
            bins,
            topology: topologies.first().map(|t| (*t).to_owned()),
            more_topologies: topologies.iter().skip(1).map(|t| (*t).to_owned()).collect(),
            extra_args: BTreeMap::new(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.agents.push(None);
            cluster.start_agent(i)?;
        }
        Ok(cluster)
    }

    /// The nodes, in order: node `i` is named `node<i>`.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> Result<&Node> {
        self.nodes
            .get(i)
            .with_context(|| format!("no node {i}: the cluster has {}", self.nodes.len()))
    }

    /// The underlay joining the nodes.
    pub fn underlay(&self) -> &Underlay {
        &self.underlay
    }

    /// The agent and plugin binaries the cluster runs.
    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// The directory of node `i`'s Peers identity (its agent's `--peer-tls-dir`).
    pub fn identity_dir(&self, i: usize) -> Result<std::path::PathBuf> {
        Ok(self.node(i)?.dir().join(IDENTITY_DIR))
    }

    /// Issues a certificate named `name` from the cluster's CA into `out`, with `ovswire-agent
    /// pki issue` (a test's identity, or a node's rotated one).
    pub fn issue_identity(&self, name: &str, out: &Path) -> Result<()> {
        let ca = self.node(0)?.dir().join(CA_DIR);
        issue(&self.bins, &ca, name, out)
    }

    /// The agent of node `i`, unless it is stopped.
    pub fn agent(&self, i: usize) -> Result<&AgentProcess> {
        self.node(i)?;
        self.agents[i]
            .as_ref()
            .with_context(|| format!("the agent of node{i} is stopped: start_agent({i}) first"))
    }

    /// Gives the agent of node `i` more flags from its next start (see [`Self::restart_agent`]).
    pub fn set_extra_args(&mut self, i: usize, args: &[&str]) {
        self.extra_args
            .insert(i, args.iter().map(|a| (*a).to_owned()).collect());
    }

    /// The flags the agent of node `i` gets on top of what [`AgentProcess`] passes.
    pub fn agent_args(&self, i: usize) -> Result<Vec<String>> {
        let node = self.node(i)?;
        let peers: Vec<(&str, Ipv4Addr)> = self
            .nodes
            .iter()
            .zip(self.underlay.members())
            .map(|(n, m)| (n.name(), m.ip))
            .collect();
        let mut args = cross_node_args(i, &peers, &node.dir().join(IDENTITY_DIR));
        args.extend(self.extra_args.get(&i).into_iter().flatten().cloned());
        Ok(args)
    }

    /// Starts the agent of node `i` (after [`Self::stop_agent`]), waiting until it serves.
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        let mut args = self.agent_args(i)?;
        for (k, text) in self.more_topologies.iter().enumerate() {
            let file = self.node(i)?.dir().join(format!("topology-{}.yaml", k + 2));
            std::fs::write(&file, text).context("write a topology file")?;
            args.push(format!("--topology={}", file.display()));
        }
        ensure!(
            self.agents[i].is_none(),
            "the agent of node{i} is already running"
        );
        let node = &self.nodes[i];
        let agent =
            AgentProcess::start_with_args(node, &self.bins, self.topology.as_deref(), &args)
                .with_context(|| {
                    format!(
                        "start ovswire-agent on {} with {} (the cross-node flags need an agent \
                         built with cross-node support)",
                        node.name(),
                        args.join(" ")
                    )
                })?;
        self.agents[i] = Some(agent);
        Ok(())
    }

    /// Stops the agent of node `i`; its wires stay as they are in OVS.
    pub fn stop_agent(&mut self, i: usize, how: Stop) -> Result<()> {
        self.node(i)?;
        let agent = self.agents[i]
            .take()
            .with_context(|| format!("the agent of node{i} is not running"))?;
        match how {
            Stop::Graceful => agent.stop(),
            Stop::Kill => {
                agent.signal("KILL")?;
                // Dropping reaps the process.
                drop(agent);
                Ok(())
            }
        }
    }

    /// Kills node `i`'s ovs-vswitchd with SIGKILL, as a crash would; [`Self::restart_vswitchd`]
    /// brings it back.
    pub fn kill_vswitchd(&mut self, i: usize) -> Result<()> {
        self.node(i)?;
        self.nodes[i].kill_vswitchd();
        Ok(())
    }

    /// Restarts node `i`'s ovs-vswitchd. Its `br-phy` interface is recreated empty, so the
    /// node's underlay address is put back on it, as a server's network configuration would.
    pub fn restart_vswitchd(&mut self, i: usize) -> Result<()> {
        self.node(i)?;
        let ip = self.underlay.ip(i);
        let node = &mut self.nodes[i];
        node.restart_vswitchd()?;
        let ns = node.netns();
        ns.exec("ip", &["link", "set", Underlay::BRIDGE, "up"])?;
        let cidr = format!("{ip}/{}", Underlay::PREFIX_LEN);
        let have = ns.exec("ip", &["-4", "-o", "addr", "show", "dev", Underlay::BRIDGE])?;
        if !have.contains(&cidr) {
            ns.exec("ip", &["addr", "add", &cidr, "dev", Underlay::BRIDGE])?;
        }
        Ok(())
    }

    /// Stops the agent of node `i` and starts it again with the same flags and topology.
    pub fn restart_agent(&mut self, i: usize, how: Stop) -> Result<()> {
        self.stop_agent(i, how)?;
        self.start_agent(i)
    }

    /// The last lines each running agent logged, for a failing test to show.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let Some(agent) = agent else { continue };
            let log = agent.log();
            let all: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- agent of node{i} (last {lines} lines)\n"));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// A pod on node `i`: a network namespace, removed when the value drops.
    pub fn pod(&self, node: usize, name: &str) -> Result<Netns> {
        Ok(self.node(node)?.pod(name)?)
    }

    /// A Wires API client of node `i`'s agent.
    pub async fn wires(&self, i: usize) -> Result<WiresClient<tonic::transport::Channel>> {
        let socket = self.agent(i)?.wires_socket().to_owned();
        let channel = ovswire_proto::unix_channel(&socket, Duration::from_secs(5))
            .await
            .with_context(|| format!("connect to the Wires API at {}", socket.display()))?;
        Ok(WiresClient::new(channel))
    }

    /// CNI ADD of interface `ifname` of pod `pod` (Kubernetes namespace `lab`) living in
    /// `netns`, through the real `ovswire-cni` binary talking to node `i`'s agent, the way a
    /// runtime calls it; the CNI result.
    pub fn cni_add(
        &self,
        node: usize,
        lab: &str,
        pod: &str,
        netns: &Netns,
        ifname: &str,
    ) -> Result<Value> {
        self.cni(node, Command::Add, lab, pod, netns, ifname)?
            .with_context(|| format!("ADD {lab}/{pod}:{ifname} printed no result"))
    }

    /// CNI DEL of interface `ifname` of pod `pod` (Kubernetes namespace `lab`) on node `i`.
    pub fn cni_del(
        &self,
        node: usize,
        lab: &str,
        pod: &str,
        netns: &Netns,
        ifname: &str,
    ) -> Result<()> {
        self.cni(node, Command::Del, lab, pod, netns, ifname)
            .map(drop)
    }

    fn cni(
        &self,
        node: usize,
        command: Command,
        lab: &str,
        pod: &str,
        netns: &Netns,
        ifname: &str,
    ) -> Result<Option<Value>> {
        let agent = self.agent(node)?;
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "ovswire",
            "type": "ovswire-cni",
            "socket": agent.cni_socket(),
        })
        .to_string();
        Invocation::new(&self.bins.plugin, command)
            .container_id(format!("{lab}-{pod}"))
            .netns(netns.path())
            .ifname(ifname)
            .args(&[(K8S_POD_NAMESPACE, lab), (K8S_POD_NAME, pod)])
            .state_dir(agent.cni_socket().parent().unwrap_or(Path::new("/")))
            .config(conf)
            .run()
            .with_context(|| {
                format!(
                    "CNI {command} {lab}/{pod}:{ifname} on node{node}; agent log:\n{}",
                    agent.log()
                )
            })
    }
}

/// Starts `count` nodes named `node<i>` in parallel, joins them on an underlay, makes the
/// cluster's peer CA (`<node0 dir>/peer-ca`) and gives each node its certificate
/// (`<node dir>/pki`), with the agent's own `pki` commands.
fn prepare(bins: &Binaries, count: usize, mtu: u32) -> Result<(Vec<Node>, Underlay)> {
    ensure!(
        (1..=64).contains(&count),
        "a cluster has 1 to 64 nodes, not {count}"
    );
    let nodes = std::thread::scope(|s| {
        let started: Vec<_> = (0..count)
            .map(|i| s.spawn(move || Testbed::node(&format!("node{i}"))))
            .collect();
        started
            .into_iter()
            .map(|h| h.join().expect("starting a node panicked"))
            .collect::<ovswire_testbed::Result<Vec<Node>>>()
    })?;
    let refs: Vec<&Node> = nodes.iter().collect();
    let underlay = Testbed::underlay(&refs, mtu).context("join the nodes on an underlay")?;
    let ca = nodes[0].dir().join(CA_DIR);
    pki(bins, &["init", "--dir", &ca.display().to_string()])?;
    for node in &nodes {
        issue(bins, &ca, node.name(), &node.dir().join(IDENTITY_DIR))?;
    }
    Ok((nodes, underlay))
}

/// Runs `ovswire-agent pki ARGS`.
fn pki(bins: &Binaries, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(&bins.agent)
        .arg("pki")
        .args(args)
        .output()
        .with_context(|| format!("run {} pki", bins.agent.display()))?;
    ensure!(
        out.status.success(),
        "ovswire-agent pki {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Issues a certificate named `name` from the CA in `ca` into `out`.
fn issue(bins: &Binaries, ca: &Path, name: &str, out: &Path) -> Result<()> {
    pki(
        bins,
        &[
            "issue",
            "--ca",
            &ca.display().to_string(),
            "--node",
            name,
            "--out",
            &out.display().to_string(),
        ],
    )
}

/// The cross-node flags of node `me` among `nodes` (name, underlay address); `--node-name`
/// comes from [`AgentProcess`].
fn cross_node_args(me: usize, nodes: &[(&str, Ipv4Addr)], identity: &Path) -> Vec<String> {
    let mut args = vec![format!("--underlay-ip={}", nodes[me].1)];
    args.extend(
        nodes
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != me)
            .map(|(_, (name, ip))| format!("--peer={name}={ip}")),
    );
    args.push(format!("--peer-tls-dir={}", identity.display()));
    args
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn each_agent_knows_every_other_node_as_a_peer() {
        let nodes = [
            ("node0", Ipv4Addr::new(172, 31, 0, 10)),
            ("node1", Ipv4Addr::new(172, 31, 0, 11)),
            ("node2", Ipv4Addr::new(172, 31, 0, 12)),
        ];
        let args = cross_node_args(1, &nodes, Path::new("/n1/pki"));
        assert_eq!(
            args,
            [
                "--underlay-ip=172.31.0.11",
                "--peer=node0=172.31.0.10",
                "--peer=node2=172.31.0.12",
                "--peer-tls-dir=/n1/pki",
            ]
        );
        let alone = cross_node_args(0, &nodes[..1], Path::new("/t"));
        assert_eq!(alone, ["--underlay-ip=172.31.0.10", "--peer-tls-dir=/t"]);
    }

    /// Everything but the agents: nodes on one underlay, each with its own certificate.
    #[test]
    #[cfg_attr(
        not(feature = "root-tests"),
        ignore = "needs root and Open vSwitch; scripts/test runs it"
    )]
    fn nodes_share_an_underlay_and_each_has_its_certificate() {
        let bins = Binaries::locate().unwrap();
        let (nodes, underlay) = prepare(&bins, 3, 1500).unwrap();
        let names: Vec<&str> = nodes.iter().map(Node::name).collect();
        assert_eq!(names, ["node0", "node1", "node2"]);
        let mut certs = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(node.underlay_ip().unwrap(), Some(underlay.ip(i)));
            let dir = node.dir().join(IDENTITY_DIR);
            let mode = std::fs::metadata(dir.join("tls.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            certs.push(std::fs::read(dir.join("tls.crt")).unwrap());
        }
        certs.dedup();
        assert_eq!(certs.len(), 3, "one certificate per node");
        assert!(
            prepare(&bins, 0, 1500)
                .unwrap_err()
                .to_string()
                .contains("not 0")
        );
    }
}
