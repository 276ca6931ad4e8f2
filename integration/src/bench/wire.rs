//! `wire`: register every pod interface of N links through the agent's Cni API as fast as the
//! clients can, and time until every link is up and sampled wires pass traffic; the CLI baseline
//! wires the same number of links in the same run.
//!
//! With two nodes the lab is spread over a [`Cluster`]: the pods holding the `a` ends live on
//! `node0`, the pods holding the `b` ends alternate between `node0` and `node1`, so about half
//! the links cross nodes over VXLAN. The baseline then builds the same lab on two fresh nodes the
//! CLI way, batched and bundled on each node.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::stream::{self, StreamExt};
use ovswire_proto::v1::cni_client::CniClient;
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_proto::v1::{ListLinksRequest, OperState};
use ovswire_testbed::{Netns, Node, Testbed};
use tonic::transport::Channel;

use super::baseline::{self, Mode};
use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries, grpc_add};
use crate::cluster::Cluster;
use crate::measure::{ratio, secs_since};

/// Interfaces per pod: labs have routers with many ports, not one pod per interface.
pub(super) const IFACES_PER_POD: usize = 8;
/// CNI calls in flight at once (what a busy kubelet with Multus does), per node.
const CONCURRENCY: usize = 64;
pub(super) const LAB: &str = "bench";
pub(super) const MTU: u32 = 1500;
/// How long all links of a lab of `links` links may take to come up before the run fails:
/// 10 minutes, and 150 ms a link beyond 4,000 links (OVS's per-port cost grows with the ports).
fn up_timeout(links: usize) -> Duration {
    Duration::from_secs(600).max(Duration::from_millis(150) * links as u32)
}
/// How often both agents are asked for their links with two nodes: each ListLinks costs the
/// agent CPU the wiring needs on a small machine.
const POLL_ACROSS: Duration = Duration::from_millis(20);
/// Pings each sampled link may need (here, in the floor and with two nodes): a frame waits for
/// the main loop of each ovs-vswitchd it crosses (which polls the userspace datapath's ports),
/// and a pass of that loop lasts seconds while the switch digests hundreds of new ports.
pub(super) const PING_ATTEMPTS: usize = 15;
/// How long each of those pings waits for its answer, in seconds (`ping -W`).
const PING_WAIT: &str = "10";
/// The OpenFlow port of the VXLAN port in the cross-node baseline.
const VX_OFPORT: usize = 1;

/// `(pod, ifname)` of both ends of link `i` among `links`: the first half of the pods hold the
/// `a` ends, the second half the `b` ends.
pub(super) fn ends(i: usize, links: usize) -> [(String, String); 2] {
    let half = links.div_ceil(IFACES_PER_POD);
    let (pod, port) = (i / IFACES_PER_POD, i % IFACES_PER_POD + 1);
    [
        (format!("p{pod}"), format!("eth{port}")),
        (format!("p{}", half + pod), format!("eth{port}")),
    ]
}

pub(super) fn topology(links: usize) -> String {
    topology_with_mtu(links, MTU)
}

/// The lab of [`topology`] with links of MTU `mtu`.
pub(super) fn topology_with_mtu(links: usize, mtu: u32) -> String {
    let mut t = format!("lab: {LAB}\nmtu: {mtu}\nlinks:\n");
    for i in 0..links {
        let [(pa, ia), (pb, ib)] = ends(i, links);
        t.push_str(&format!("  - endpoints: [\"{pa}:{ia}\", \"{pb}:{ib}\"]\n"));
    }
    t
}

/// The index of pod `p<N>`.
pub(super) fn pod_index(pod: &str) -> usize {
    pod[1..].parse().expect("pod names are p<N>")
}

/// Where the pods of a lab of `links` links live on `nodes` nodes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    pub(super) links: usize,
    pub(super) nodes: usize,
}

impl Placement {
    /// The node pod `pod` lives on: every `a` pod on node 0, the `b` pods taking turns over
    /// the nodes (with one node, everything on node 0).
    fn node(self, pod: usize) -> usize {
        let half = self.links.div_ceil(IFACES_PER_POD);
        if pod < half {
            0
        } else {
            (pod - half) % self.nodes
        }
    }

    /// The nodes of both ends of link `i`.
    fn link_nodes(self, i: usize) -> [usize; 2] {
        ends(i, self.links).map(|(pod, _)| self.node(pod_index(&pod)))
    }

    fn is_cross(self, i: usize) -> bool {
        let [a, b] = self.link_nodes(i);
        a != b
    }

    fn cross_links(self) -> usize {
        (0..self.links).filter(|&i| self.is_cross(i)).count()
    }

    /// How many links have an end on `node`.
    fn links_on(self, node: usize) -> usize {
        (0..self.links)
            .filter(|&i| self.link_nodes(i).contains(&node))
            .count()
    }

    /// Links whose traffic is checked: the first, middle and last, and the first and last
    /// cross-node ones.
    pub(super) fn sample(self) -> Vec<usize> {
        let links = self.links;
        let mut sample = vec![0, links / 2, links - 1];
        sample.extend((0..links).find(|&i| self.is_cross(i)));
        sample.extend((0..links).rev().find(|&i| self.is_cross(i)));
        sample.sort_unstable();
        sample.dedup();
        sample
    }
}

/// Peak RSS (VmHWM) in MiB and CPU seconds (user + system) of a process.
fn usage(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some((
        (hwm / 1024.0 * 10.0).round() / 10.0,
        (ticks / hz as f64 * 100.0).round() / 100.0,
    ))
}

/// Every interface of a lab of `links` links: `(pod, ifname, the pod's namespace)`.
pub(super) fn interfaces(links: usize, pods: &[Netns]) -> Vec<(String, String, PathBuf)> {
    (0..links)
        .flat_map(|i| ends(i, links))
        .map(|(pod, ifname)| {
            let netns = pods[pod_index(&pod)].path().to_owned();
            (pod, ifname, netns)
        })
        .collect()
}

/// ADDs every `(pod, ifname, netns)` through one agent's Cni API, [`CONCURRENCY`] at a time.
pub(super) async fn register(
    cni: CniClient<Channel>,
    ifaces: Vec<(String, String, PathBuf)>,
) -> Result<()> {
    let calls = ifaces.into_iter().map(|(pod, ifname, netns)| {
        let mut cni = cni.clone();
        async move {
            grpc_add(&mut cni, LAB, &pod, &netns, &ifname).await?;
            Ok(())
        }
    });
    let results: Vec<Result<()>> = stream::iter(calls)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Addresses both ends of each sampled link (`10.<n+1>.0.1` and `.2`, a /30).
pub(super) fn address(sample: &[usize], links: usize, pods: &[Netns]) -> Result<()> {
    for (n, &i) in sample.iter().enumerate() {
        let [(pa, ia), (pb, ib)] = ends(i, links);
        pods[pod_index(&pa)].add_address(&ia, &format!("10.{}.0.1/30", n + 1))?;
        pods[pod_index(&pb)].add_address(&ib, &format!("10.{}.0.2/30", n + 1))?;
    }
    Ok(())
}

/// Pings over each sampled link from its `a` end, up to `attempts` times until one is
/// answered, each answer awaited up to [`PING_WAIT`] (with thousands of ports on the userspace
/// datapath, a frame waits for ovs-vswitchd's main loop, which then takes seconds a pass).
pub(super) fn ping(sample: &[usize], links: usize, pods: &[Netns], attempts: usize) -> Result<()> {
    for (n, &i) in sample.iter().enumerate() {
        let [(pa, _), _] = ends(i, links);
        let peer = format!("10.{}.0.2", n + 1);
        let mut ok = false;
        for _ in 0..attempts {
            ok = pods[pod_index(&pa)]
                .output("ping", &["-c", "1", "-W", PING_WAIT, &peer])?
                .status
                .success();
            if ok {
                break;
            }
        }
        ensure!(ok, "link {i} is up but does not pass traffic");
    }
    Ok(())
}

/// How many links of the lab the agent behind `wires` reports up that have an end on `node`
/// (every link when `node` is `None`).
pub(super) async fn up_on(wires: &mut WiresClient<Channel>, node: Option<&str>) -> Result<usize> {
    let list = wires
        .list_links(ListLinksRequest {
            lab: LAB.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(list
        .links
        .iter()
        .filter(|l| l.oper == OperState::Up as i32)
        .filter(|l| node.is_none_or(|n| l.node_a == n || l.node_b == n))
        .count())
}

/// The pods of a benchmark's lab, its agent and clients of the agent's CNI and Wires APIs.
pub(super) type BenchLab = (
    Vec<Netns>,
    AgentProcess,
    CniClient<Channel>,
    WiresClient<Channel>,
);

/// Starts a lab of `links` links on `node`: its pods (namespaces, [`IFACES_PER_POD`]
/// interfaces each) and the agent with its topology, serving metrics on `metrics` (in the
/// node's namespace).
pub(super) async fn bench_lab(node: &Node, links: usize, metrics: &str) -> Result<BenchLab> {
    let pod_ns = (0..2 * links.div_ceil(IFACES_PER_POD))
        .map(|p| node.pod(&format!("p{p}")))
        .collect::<ovswire_testbed::Result<_>>()?;
    let agent = AgentProcess::start_with_args(
        node,
        &Binaries::locate()?,
        Some(&topology(links)),
        &[format!("--metrics-listen={metrics}")],
    )?;
    let channel = |socket| ovswire_proto::unix_channel(socket, Duration::from_secs(5));
    let cni = CniClient::new(channel(agent.cni_socket()).await?);
    let wires = WiresClient::new(channel(agent.wires_socket()).await?);
    Ok((pod_ns, agent, cni, wires))
}

/// One `GET /metrics` of the agent serving on `addr` inside `netns`: the response and how
/// many milliseconds it took.
pub(super) fn get_metrics(netns: &Netns, addr: &str) -> Result<(String, f64)> {
    use std::io::{Read, Write};
    let mut stream = netns
        .run(|| std::net::TcpStream::connect(addr))?
        .context("connect to /metrics")?;
    let start = Instant::now();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    ensure!(body.starts_with("HTTP/1.1 200"), "the scrape failed");
    Ok((body, ms))
}

/// Where the benchmark's agent serves its metrics, in its node's namespace.
const METRICS: &str = "127.0.0.1:9470";

/// The agent's own breakdown of its run: seconds in each step (`ovswire_agent_step_seconds`
/// of its metrics; steps of concurrent ADDs overlap), read in `netns`.
fn steps(netns: &Netns) -> Result<serde_json::Value> {
    let (text, _) = get_metrics(netns, METRICS)?;
    let mut steps = serde_json::Map::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("ovswire_agent_step_seconds_total{step=\"") else {
            continue;
        };
        let Some((step, value)) = rest.split_once("\"} ") else {
            continue;
        };
        let secs: f64 = value.trim().parse().context("a step's seconds")?;
        steps.insert(step.to_owned(), ((secs * 1000.0).round() / 1000.0).into());
    }
    ensure!(!steps.is_empty(), "the agent's metrics have no steps");
    Ok(steps.into())
}

/// What ovswire's run is compared with, after it, in the same run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compare {
    /// ovswire's own libraries with no agent (one node).
    Floor,
    /// Six CLI commands a link (one node).
    Perlink,
    /// One `ovs-vsctl` transaction and one `ovs-ofctl add-flows` file (one node).
    Batched,
    /// The same with the flows in one bundle (one or two nodes).
    Bundled,
}

impl Compare {
    /// What a run of `links` links on `nodes` nodes compares with when nobody chose: the floor
    /// and the CLI per link up to 500 links, the floor and the batched and bundled CLI above,
    /// the bundled CLI on each node with two nodes.
    pub fn defaults(links: usize, nodes: usize) -> Vec<Self> {
        match (nodes, links) {
            (1, ..=500) => vec![Self::Floor, Self::Perlink],
            (1, _) => vec![Self::Floor, Self::Batched, Self::Bundled],
            _ => vec![Self::Bundled],
        }
    }

    fn mode(self) -> Option<Mode> {
        match self {
            Self::Floor => None,
            Self::Perlink => Some(Mode::PerLink),
            Self::Batched => Some(Mode::Batched),
            Self::Bundled => Some(Mode::Bundled),
        }
    }
}

/// What a comparison left out of a run is reported as, in place of its figure.
const NOT_RUN: &str = "not run (not in --baselines)";

/// Runs the scenario for one size on `nodes` nodes, compared with `compare` (empty: with
/// [`Compare::defaults`]); with `idle_s` > 0 (one node), then watches the agent that long with
/// every link up and nothing changing.
pub async fn run(links: usize, nodes: usize, idle_s: u64, compare: &[Compare]) -> Result<Report> {
    ensure!(
        (1..=15_000).contains(&links),
        "--links must be between 1 and 15000"
    );
    ensure!(
        (1..=2).contains(&nodes),
        "--nodes must be 1 (every pod on one node) or 2 (about half the links across nodes)"
    );
    let compare = if compare.is_empty() {
        Compare::defaults(links, nodes)
    } else {
        compare.to_vec()
    };
    if nodes == 1 {
        one_node(links, idle_s, &compare).await
    } else {
        ensure!(
            compare == [Compare::Bundled],
            "with --nodes 2 the only baseline is the bundled CLI on each node: use --baselines \
             bundled, or leave --baselines out"
        );
        two_nodes(links).await
    }
}

async fn one_node(links: usize, idle_s: u64, compare: &[Compare]) -> Result<Report> {
    let mut report = Report::new("wire");
    report.set("links", links);
    let node = Testbed::node("bench-wire")?;
    let pods = 2 * links.div_ceil(IFACES_PER_POD);
    progress(&format!(
        "ovswire: {links} links, {} interfaces on {pods} pods",
        2 * links
    ));
    let (pod_ns, agent, cni, mut wires) = bench_lab(&node, links, METRICS).await?;

    let start = Instant::now();
    register(cni, interfaces(links, &pod_ns)).await?;
    let registered_s = secs_since(start);
    let sample: Vec<usize> = Placement { links, nodes: 1 }.sample();
    address(&sample, links, &pod_ns)?;
    loop {
        let up = up_on(&mut wires, None).await?;
        if up == links {
            break;
        }
        ensure!(
            start.elapsed() < up_timeout(links),
            "only {up} of {links} links came up in {} s",
            up_timeout(links).as_secs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Err(e) = ping(&sample, links, &pod_ns, PING_ATTEMPTS) {
        // What a user needs to see why: the agent's log and the switch's flows and ports.
        let kept = std::env::temp_dir().join("ovswire-bench-wire-failed");
        let _ = std::fs::create_dir_all(&kept);
        let _ = std::fs::write(kept.join("agent.log"), agent.log());
        for (file, out) in [
            (
                "flows",
                node.ofctl(&["-O", "OpenFlow13", "dump-flows", "ovsbr0"]),
            ),
            ("ports", node.ofctl(&["-O", "OpenFlow13", "show", "ovsbr0"])),
            (
                "interfaces",
                node.vsctl(&[
                    "--columns=name,ofport,ofport_request,error",
                    "list",
                    "Interface",
                ]),
            ),
        ] {
            let _ = std::fs::write(kept.join(file), out.unwrap_or_else(|e| e.to_string()));
        }
        return Err(e.context(format!(
            "the agent's log, flows and ports are kept in {}",
            kept.display()
        )));
    }
    let ovswire_s = secs_since(start);
    report.set("ovswire_s", ovswire_s);
    report.set("registered_s", registered_s);
    if let Some((rss, cpu)) = usage(agent.pid()) {
        report.set("agent_rss_mb", rss);
        report.set("agent_cpu_s", cpu);
    }
    match steps(node.netns()) {
        Ok(steps) => {
            progress(&format!("ovswire: the agent's steps (s): {steps}"));
            report.set("agent_steps_s", steps);
        }
        Err(e) => report.set("agent_steps_s", format!("failed: {e:#}")),
    }
    if idle_s > 0 {
        progress(&format!("watching the idle agent for {idle_s} s"));
        let idle = super::idle::watch(&node, "ovsbr0", agent.pid(), idle_s).await?;
        report.set("idle_s", idle.secs);
        report.set("idle_ovsdb_changes", idle.ovsdb_changes);
        report.set("idle_flow_changes", idle.flow_changes);
        report.set("idle_agent_cpu_percent", idle.agent_cpu_percent);
        progress(&format!(
            "idle for {} s: {} OVSDB row changes, {} flow changes, agent CPU {} % of a core",
            idle.secs, idle.ovsdb_changes, idle.flow_changes, idle.agent_cpu_percent
        ));
        if let Some((rss, _)) = usage(agent.pid()) {
            report.set("agent_rss_mb_after_idle", rss);
        }
    }
    let log = std::env::temp_dir().join("ovswire-bench-wire-node0.log");
    if std::fs::write(&log, agent.log()).is_ok() {
        progress(&format!(
            "ovswire: all {links} links up in {ovswire_s:.1} s; agent log kept in {}",
            log.display()
        ));
    }
    drop(agent);
    drop(pod_ns);
    drop(node);

    report.set("ovswire_ms_per_link", per_link_ms(ovswire_s, links));
    // Every default comparison left out says so, in place of its figure.
    for skipped in Compare::defaults(links, 1)
        .into_iter()
        .filter(|c| !compare.contains(c))
    {
        let field = match skipped.mode() {
            None => "floor_s".to_owned(),
            Some(mode) => format!("baseline_{}_s", mode.name()),
        };
        report.set(&field, NOT_RUN);
    }
    if compare.contains(&Compare::Floor) {
        floor(links, ovswire_s, &mut report).await;
    }
    for mode in compare.iter().filter_map(|c| c.mode()) {
        progress(&format!("baseline: {links} links, {}", mode.name()));
        // A baseline that fails is reported as such; ovswire's figures stand.
        match baseline::run(mode, links) {
            Ok(secs) => {
                report.set(&format!("baseline_{}_s", mode.name()), secs);
                report.set(&format!("ratio_{}", mode.name()), ratio(secs, ovswire_s));
            }
            Err(e) => report.set(
                &format!("baseline_{}_s", mode.name()),
                format!("failed: {e:#}"),
            ),
        }
    }
    Ok(report)
}

/// Runs the floor for `links` links (the same work as ovswire's run, with ovswire's libraries
/// and no agent, to the same end point) and puts its figures, next to ovswire's `ovswire_s`,
/// in `report`; a floor that fails is reported as such.
async fn floor(links: usize, ovswire_s: f64, report: &mut Report) {
    match super::floor::run(links).await {
        Ok(f) => {
            report.set("floor_s", f.total_s);
            report.set("floor_ms_per_link", per_link_ms(f.total_s, links));
            report.set(
                "over_floor",
                (ovswire_s / f.total_s * 100.0).round() / 100.0,
            );
            report.set(
                "floor_steps_s",
                serde_json::json!({
                    "veths": f.veths_s,
                    "ovsdb": f.ovsdb_s,
                    "bundle": f.bundle_s,
                    "port_states": f.port_states_s,
                    "first_traffic": f.traffic_s,
                }),
            );
        }
        Err(e) => report.set("floor_s", format!("failed: {e:#}")),
    }
}

async fn two_nodes(links: usize) -> Result<Report> {
    const NODES: usize = 2;
    let place = Placement {
        links,
        nodes: NODES,
    };
    let cross = place.cross_links();
    let mut report = Report::new("wire");
    report.set("links", links);
    report.set("nodes", NODES);
    report.set("cross_links", cross);
    let pods = 2 * links.div_ceil(IFACES_PER_POD);
    progress(&format!(
        "ovswire: {links} links ({cross} across nodes), {} interfaces on {pods} pods, {NODES} nodes",
        2 * links
    ));
    let cluster = Cluster::with_topology(NODES, MTU, Some(&topology(links)))?;
    let pod_ns: Vec<Netns> = (0..pods)
        .map(|p| cluster.pod(place.node(p), &format!("p{p}")))
        .collect::<Result<_>>()?;
    let mut cnis = Vec::with_capacity(NODES);
    let mut wires = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let agent = cluster.agent(i)?;
        cnis.push(CniClient::new(
            ovswire_proto::unix_channel(agent.cni_socket(), Duration::from_secs(5)).await?,
        ));
        wires.push(cluster.wires(i).await?);
    }
    let names: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    let expected: Vec<usize> = (0..NODES).map(|i| place.links_on(i)).collect();

    let start = Instant::now();
    let mut ifaces: Vec<Vec<(String, String, PathBuf)>> = vec![Vec::new(); NODES];
    for (pod, ifname) in (0..links).flat_map(|i| ends(i, links)) {
        let p = pod_index(&pod);
        ifaces[place.node(p)].push((pod, ifname, pod_ns[p].path().to_owned()));
    }
    futures::future::try_join_all(
        cnis.into_iter()
            .zip(ifaces)
            .map(|(cni, ifaces)| register(cni, ifaces)),
    )
    .await?;
    let registered_s = secs_since(start);
    let sample = place.sample();
    address(&sample, links, &pod_ns)?;
    loop {
        let mut up = Vec::with_capacity(NODES);
        for (w, name) in wires.iter_mut().zip(&names) {
            up.push(up_on(w, Some(name)).await?);
        }
        if up == expected {
            break;
        }
        ensure!(
            start.elapsed() < up_timeout(links),
            "links up per node {up:?} of {expected:?} after {} s; {}",
            up_timeout(links).as_secs(),
            keep_logs(&cluster)
        );
        tokio::time::sleep(POLL_ACROSS).await;
    }
    let up_s = secs_since(start);
    ping(&sample, links, &pod_ns, PING_ATTEMPTS).with_context(|| keep_logs(&cluster))?;
    let ovswire_s = secs_since(start);
    report.set("ovswire_s", ovswire_s);
    report.set("registered_s", registered_s);
    report.set("up_s", up_s);
    for i in 0..NODES {
        if let Some((rss, cpu)) = usage(cluster.agent(i)?.pid()) {
            report.set(&format!("agent{i}_rss_mb"), rss);
            report.set(&format!("agent{i}_cpu_s"), cpu);
        }
    }
    drop(pod_ns);
    drop(cluster);

    progress(&format!(
        "baseline: {links} links ({cross} across nodes), bundled on each node"
    ));
    match bundled_across(place) {
        Ok(secs) => {
            report.set("baseline_bundled_s", secs);
            report.set("ratio_bundled", ratio(secs, ovswire_s));
        }
        Err(e) => report.set("baseline_bundled_s", format!("failed: {e:#}")),
    }
    Ok(report)
}

/// Milliseconds per link of a run of `secs` seconds.
fn per_link_ms(secs: f64, links: usize) -> f64 {
    (secs * 1000.0 / links as f64 * 100.0).round() / 100.0
}

/// Copies the agents' logs out of the nodes' directories (which go with the cluster); where
/// they are.
fn keep_logs(cluster: &Cluster) -> String {
    let kept: Vec<String> = (0..cluster.nodes().len())
        .filter_map(|i| {
            let path = std::env::temp_dir().join(format!("ovswire-bench-wire-node{i}.log"));
            std::fs::write(&path, cluster.agent(i).ok()?.log()).ok()?;
            Some(path.display().to_string())
        })
        .collect();
    format!("agent logs kept in {}", kept.join(" and "))
}

/// What the CLI baseline puts on one node: host veth ends as `(name, ofport)` and flows.
#[derive(Debug, Default)]
struct Half {
    ports: Vec<(String, usize)>,
    flows: String,
}

/// Node `node`'s half of the lab: for link `i`, the `a` end is port `a<i>` (ofport 2i+2) and
/// the `b` end `b<i>` (ofport 2i+3); a same-node link is two `in_port -> output` flows, a
/// cross-node end two flows to and from the VXLAN port with tunnel key i+1.
fn half(place: Placement, node: usize) -> Half {
    let mut h = Half::default();
    for i in 0..place.links {
        let [na, nb] = place.link_nodes(i);
        let (pa, pb) = (2 * i + 2, 2 * i + 3);
        let key = i + 1;
        for (end, here, port) in [("a", na, pa), ("b", nb, pb)] {
            if here == node {
                h.ports.push((format!("{end}{i}"), port));
            }
        }
        if na == node && nb == node {
            h.flows
                .push_str(&format!("table=0,in_port={pa},actions=output:{pb}\n"));
            h.flows
                .push_str(&format!("table=0,in_port={pb},actions=output:{pa}\n"));
        } else if na == node || nb == node {
            let port = if na == node { pa } else { pb };
            h.flows.push_str(&format!(
                "table=0,in_port={port},actions=set_field:{key}->tun_id,output:{VX_OFPORT}\n"
            ));
            h.flows.push_str(&format!(
                "table=0,in_port={VX_OFPORT},tun_id={key},actions=output:{port}\n"
            ));
        }
    }
    h
}

/// Wires one node's half with the CLI: one `ovs-vsctl` transaction adding every port and the
/// VXLAN port to `remote`, then one `ovs-ofctl --bundle add-flows` file.
fn wire_half(node: &Node, half: &Half, remote: Ipv4Addr) -> Result<()> {
    let mut args: Vec<String> = [
        "--",
        "add-port",
        "ovsbr0",
        "vx",
        "--",
        "set",
        "Interface",
        "vx",
        "type=vxlan",
    ]
    .map(String::from)
    .into();
    args.push(format!("options:remote_ip={remote}"));
    args.push("options:key=flow".into());
    args.push(format!("ofport_request={VX_OFPORT}"));
    for (name, port) in &half.ports {
        args.extend(["--", "add-port", "ovsbr0"].map(String::from));
        args.push(name.clone());
        args.extend(["--", "set", "Interface"].map(String::from));
        args.push(name.clone());
        args.push(format!("ofport_request={port}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    node.vsctl(&args)?;
    let file = node.dir().join("flows.txt");
    std::fs::write(&file, &half.flows)?;
    let file = file.to_str().expect("temp paths are UTF-8");
    node.ofctl(&["-O", "OpenFlow14", "--bundle", "add-flows", "ovsbr0", file])?;
    Ok(())
}

/// The same lab on two fresh nodes joined by an underlay, wired the CLI way, bundled: both
/// nodes at once, each with one `ovs-vsctl` transaction and one bundled flow file. Veths are
/// made beforehand; the seconds from the first command to the last one to finish.
fn bundled_across(place: Placement) -> Result<f64> {
    let nodes = [Testbed::node("base-x0")?, Testbed::node("base-x1")?];
    let underlay = Testbed::underlay(&[&nodes[0], &nodes[1]], MTU)?;
    let halves: Vec<Half> = (0..nodes.len()).map(|k| half(place, k)).collect();
    for (node, half) in nodes.iter().zip(&halves) {
        node.add_bridge("ovsbr0")?;
        let pairs: Vec<(String, String)> = half
            .ports
            .iter()
            .map(|(name, _)| (name.clone(), format!("p{name}")))
            .collect();
        node.netns().veths(&pairs)?;
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        let runs: Vec<_> = nodes
            .iter()
            .zip(&halves)
            .enumerate()
            .map(|(k, (node, half))| {
                let remote = underlay.ip(1 - k);
                s.spawn(move || wire_half(node, half, remote))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a baseline thread panicked"))
            .collect::<Result<Vec<()>>>()
    })?;
    let took = secs_since(start);
    for (node, half) in nodes.iter().zip(&halves) {
        let agg = node.ofctl(&["-O", "OpenFlow13", "dump-aggregate", "ovsbr0"])?;
        let flows = half.flows.lines().count();
        ensure!(
            agg.contains(&format!("flow_count={flows}")),
            "baseline left flows out on {}: {agg}",
            node.name()
        );
        let vx = node.vsctl(&["get", "Interface", "vx", "ofport"])?;
        ensure!(
            vx.trim() == VX_OFPORT.to_string(),
            "the VXLAN port of {} got ofport {}",
            node.name(),
            vx.trim()
        );
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_comparisons_follow_the_size_and_the_nodes() {
        use Compare::*;
        assert_eq!(Compare::defaults(500, 1), [Floor, Perlink]);
        assert_eq!(Compare::defaults(501, 1), [Floor, Batched, Bundled]);
        assert_eq!(Compare::defaults(4000, 2), [Bundled]);
    }

    #[tokio::test]
    async fn two_nodes_refuse_a_baseline_they_have_not() {
        let err = run(10, 2, 0, &[Compare::Floor]).await.unwrap_err();
        assert!(err.to_string().contains("--baselines bundled"), "{err}");
    }

    #[test]
    fn about_half_the_links_cross_nodes() {
        let place = Placement {
            links: 500,
            nodes: 2,
        };
        // 63 `b` pods, the odd ones on node1: 31 pods of 8 links.
        assert_eq!(place.cross_links(), 248);
        assert_eq!(place.links_on(0), 500);
        assert_eq!(place.links_on(1), 248);
        assert!(!place.is_cross(7) && place.is_cross(8) && !place.is_cross(16));
        let sample = place.sample();
        assert!(sample.iter().filter(|&&i| place.is_cross(i)).count() >= 2);
        let one = Placement {
            links: 500,
            nodes: 1,
        };
        assert_eq!(one.cross_links(), 0);
        assert_eq!(one.sample(), [0, 250, 499]);
    }

    #[test]
    fn each_node_of_the_baseline_wires_its_own_ends() {
        let place = Placement {
            links: 16,
            nodes: 2,
        };
        let (h0, h1) = (half(place, 0), half(place, 1));
        // Links 0..8 are local to node0, links 8..16 cross to node1.
        assert_eq!(h0.ports.len(), 24);
        assert_eq!(h1.ports.len(), 8);
        assert_eq!(h0.flows.lines().count(), 32);
        assert_eq!(h1.flows.lines().count(), 16);
        assert!(h0.flows.contains("in_port=2,actions=output:3\n"));
        assert!(
            h0.flows
                .contains("in_port=18,actions=set_field:9->tun_id,output:1\n")
        );
        assert!(h1.flows.contains("in_port=1,tun_id=9,actions=output:19\n"));
        assert_eq!(h1.ports[0], ("b8".to_owned(), 19));
    }

    #[test]
    fn pods_are_named_by_index() {
        assert_eq!(pod_index("p42"), 42);
    }
}
