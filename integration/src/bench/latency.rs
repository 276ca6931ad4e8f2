//! `latency`: the round trip of one wire, as `ping` and as a UDP request and its answer, in an
//! ovswire lab of N links, next to the same wire built by hand on a bridge holding as many
//! ports, in the same run. A hand-built wire on a bridge holding only its own two ports is
//! measured too, as the datapath's reference.
//!
//! The reference is there because the port count matters. On the userspace datapath,
//! ovs-vswitchd's main thread polls every port each time it wakes. A frame therefore waits
//! longer the more ports the bridge has, whoever made them. Comparing an N-link lab with a
//! two-port bridge would charge that cost to the lab's builder.
//!
//! With two nodes the measured wire crosses nodes over VXLAN. The other N - 1 links stay on
//! node 0, and the hand-built side puts as many idle ports on node 0's bridge.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_testbed::{Netns, Node, Testbed};
use tonic::transport::Channel;

use super::wire::{self, IFACES_PER_POD, LAB};
use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries, cni_client};
use crate::cluster::Cluster;
use crate::measure::{percentile, sorted};

/// Measuring rounds: each round measures every wire once, in turn, so that a change of the
/// machine's load between rounds falls on all of them alike.
const ROUNDS: usize = 5;
/// Pings measured per wire, direction and round, after [`WARMUP`] that are not.
const PINGS: usize = 40;
/// UDP requests measured per wire, direction and round, after [`WARMUP`] that are not.
const UDP_ROUNDS: usize = 100;
/// Round trips sent first so that caches, neighbours and datapath flows are in place.
const WARMUP: usize = 5;
/// The UDP port the answering end listens on.
const UDP_PORT: u16 = 7007;
/// How long one answer may take before the measurement fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the agents may take to bring every link up.
const UP_TIMEOUT: Duration = Duration::from_secs(600);
/// The measured wire's addresses.
const A_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const A_CIDR: &str = "10.250.0.1/30";
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 2);
const B_CIDR: &str = "10.250.0.2/30";

/// Round-trip times of one wire, in milliseconds.
#[derive(Debug, Default)]
struct Rtt {
    ping: Vec<f64>,
    udp: Vec<f64>,
}

impl Rtt {
    /// Adds `<who>_ping_p50_ms`, `_p99_ms` and the same for `udp` to `report`.
    fn report(&self, report: &mut Report, who: &str) {
        for (kind, samples) in [("ping", &self.ping), ("udp", &self.udp)] {
            let s = sorted(samples);
            report.set(&format!("{who}_{kind}_p50_ms"), percentile(&s, 50));
            report.set(&format!("{who}_{kind}_p99_ms"), percentile(&s, 99));
        }
    }
}

/// The `time=` of every answered echo in `ping`'s output, in milliseconds.
fn ping_times(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Pings `to` from `from`: [`WARMUP`] echoes, then [`PINGS`] measured ones 20 ms apart.
fn ping_rtts(from: &Netns, to: Ipv4Addr) -> Result<Vec<f64>> {
    let to = to.to_string();
    from.exec(
        "ping",
        &["-c", &WARMUP.to_string(), "-i", "0.02", "-q", &to],
    )?;
    let out = from.exec("ping", &["-c", &PINGS.to_string(), "-i", "0.02", &to])?;
    let times = ping_times(&out);
    ensure!(
        times.len() * 10 >= PINGS * 9,
        "only {} of {PINGS} pings to {to} were answered",
        times.len()
    );
    Ok(times)
}

/// Answers every datagram to `ip`:[`UDP_PORT`] with itself until `rounds` are answered or none
/// comes for [`ANSWER_TIMEOUT`]; says on `bound` when it listens.
fn answer(ip: Ipv4Addr, rounds: usize, bound: std::sync::mpsc::Sender<()>) -> Result<()> {
    let socket =
        UdpSocket::bind((ip, UDP_PORT)).with_context(|| format!("bind {ip}:{UDP_PORT}"))?;
    socket.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let _ = bound.send(());
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        let (n, from) = socket
            .recv_from(&mut buf)
            .context("no UDP request arrived in time")?;
        socket.send_to(&buf[..n], from)?;
    }
    Ok(())
}

/// Sends `rounds` numbered UDP requests to `ip` one after the other; the round trip of each
/// after the first [`WARMUP`], in milliseconds.
fn ask(ip: Ipv4Addr, rounds: usize) -> Result<Vec<f64>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect((ip, UDP_PORT))?;
    socket.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut times = Vec::with_capacity(rounds);
    let mut buf = [0u8; 64];
    for i in 0..rounds as u64 {
        let sent = Instant::now();
        socket.send(&i.to_be_bytes())?;
        let n = socket
            .recv(&mut buf)
            .with_context(|| format!("request {i} to {ip}:{UDP_PORT} got no answer"))?;
        ensure!(
            buf[..n] == i.to_be_bytes(),
            "request {i} was answered with another request's bytes"
        );
        if i >= WARMUP as u64 {
            times.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(times)
}

/// UDP request/response round trips from `client` to `server` at `server_ip`.
fn udp_rtts(client: &Netns, server: &Netns, server_ip: Ipv4Addr) -> Result<Vec<f64>> {
    let rounds = WARMUP + UDP_ROUNDS;
    let (bound, listening) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let answering = s.spawn(move || server.run(move || answer(server_ip, rounds, bound)));
        let times = match listening.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => client
                .run(|| ask(server_ip, rounds))
                .map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("the UDP answerer did not start")),
        };
        let answered = answering
            .join()
            .map_err(|_| anyhow::anyhow!("the UDP answerer panicked"))?;
        answered??;
        times?
    })
}

/// A wire ready to measure: its two pods (addressed), and whatever keeps it up (nodes,
/// agents, other pods), dropped after the pods.
struct Built {
    /// Which wire, for errors.
    what: &'static str,
    a: Netns,
    b: Netns,
    _keep: Box<dyn std::any::Any>,
}

impl Built {
    /// The wire between `a`'s `a_if` and `b`'s `b_if`, which this addresses.
    fn new(
        what: &'static str,
        a: Netns,
        a_if: &str,
        b: Netns,
        b_if: &str,
        keep: Box<dyn std::any::Any>,
    ) -> Result<Self> {
        a.add_address(a_if, A_CIDR)?;
        b.add_address(b_if, B_CIDR)?;
        Ok(Self {
            what,
            a,
            b,
            _keep: keep,
        })
    }

    /// One round of pings and UDP requests in each direction, added to `rtt`. Both
    /// directions count: ovs-vswitchd polls its ports in an order of its own, and a reply
    /// arriving on a port it has already polled in that pass waits for the next one, so one
    /// direction of a wire is often slower than the other, whoever built the wire.
    fn measure(&self, rtt: &mut Rtt) -> Result<()> {
        let what = || format!("measuring {}", self.what);
        for (from, to, to_ip) in [(&self.a, &self.b, B_IP), (&self.b, &self.a, A_IP)] {
            rtt.ping.extend(ping_rtts(from, to_ip).with_context(what)?);
            rtt.udp
                .extend(udp_rtts(from, to, to_ip).with_context(what)?);
        }
        Ok(())
    }
}

/// Waits until the agent behind `wires` reports `links` links of the lab up.
async fn wait_up(wires: &mut WiresClient<Channel>, links: usize, what: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        let up = wire::up_on(wires, None).await?;
        if up >= links {
            return Ok(());
        }
        ensure!(
            start.elapsed() < UP_TIMEOUT,
            "{what}: only {up} of {links} links came up in {} s",
            UP_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An ovswire lab of `links` links on one node (the wire scenario's lab); measures link 0.
async fn ovswire_local(links: usize, mtu: u32) -> Result<Built> {
    let node = Testbed::node("bench-lat")?;
    let mut pods: Vec<Netns> = (0..2 * links.div_ceil(IFACES_PER_POD))
        .map(|p| node.pod(&format!("p{p}")))
        .collect::<ovswire_testbed::Result<_>>()?;
    let agent = AgentProcess::start(
        &node,
        &Binaries::locate()?,
        Some(&wire::topology_with_mtu(links, mtu)),
    )?;
    let ifaces = (0..links)
        .flat_map(|i| wire::ends(i, links))
        .map(|(pod, ifname)| {
            let netns = pods[wire::pod_index(&pod)].path().to_owned();
            (pod, ifname, netns)
        })
        .collect();
    wire::register(cni_client(agent.cni_socket()).await?, ifaces).await?;
    let mut wires = WiresClient::new(
        ovswire_proto::unix_channel(agent.wires_socket(), Duration::from_secs(5)).await?,
    );
    wait_up(&mut wires, links, "ovswire").await?;
    let [(pa, ia), (pb, ib)] = wire::ends(0, links);
    // The `b` pod sorts after the `a` pod: take it out first so the index of `a` holds.
    let b = pods.swap_remove(wire::pod_index(&pb));
    let a = pods.swap_remove(wire::pod_index(&pa));
    Built::new(
        "the ovswire wire",
        a,
        &ia,
        b,
        &ib,
        Box::new((agent, pods, node)),
    )
}

/// Puts `links` idle wires of MTU `mtu` on `node`'s `ovsbr0` the CLI way: veth pairs inside the
/// node, one `ovs-vsctl` transaction, one bundle of flows; their port numbers start at
/// `first_ofport`.
fn idle_wires(node: &Node, links: usize, first_ofport: usize, mtu: u32) -> Result<()> {
    if links == 0 {
        return Ok(());
    }
    // Without IPv6 on them, as ovswire makes its veths: thousands of link-local routes slow
    // ovs-vswitchd's route lookups for tunnels to a crawl.
    node.netns()
        .exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
    let pairs: Vec<_> = (0..links)
        .flat_map(|i| {
            [
                (format!("ia{i}"), format!("ja{i}")),
                (format!("ib{i}"), format!("jb{i}")),
            ]
        })
        .collect();
    node.netns().veths(&pairs)?;
    // The userspace datapath sizes each port's receive buffers by its MTU, so the idle ports
    // must have the measured wire's.
    let batch: String = pairs
        .iter()
        .flat_map(|(x, y)| [x, y])
        .map(|dev| format!("link set dev {dev} mtu {mtu}\n"))
        .collect();
    let batch_file = node.dir().join("idle-mtu.ip");
    std::fs::write(&batch_file, batch)?;
    node.netns().exec(
        "ip",
        &["-b", batch_file.to_str().context("temp paths are UTF-8")?],
    )?;
    let mut args: Vec<String> = Vec::new();
    let mut flows = String::new();
    for i in 0..links {
        let (pa, pb) = (first_ofport + 2 * i, first_ofport + 2 * i + 1);
        for (name, port) in [(format!("ia{i}"), pa), (format!("ib{i}"), pb)] {
            args.extend(
                [
                    "--",
                    "add-port",
                    "ovsbr0",
                    &name,
                    "--",
                    "set",
                    "Interface",
                    &name,
                ]
                .map(String::from),
            );
            args.push(format!("ofport_request={port}"));
        }
        flows.push_str(&format!(
            "in_port={pa},actions=output:{pb}\nin_port={pb},actions=output:{pa}\n"
        ));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    node.vsctl(&args)?;
    let file = node.dir().join("idle-flows.txt");
    std::fs::write(&file, flows)?;
    let file = file.to_str().context("temp paths are UTF-8")?;
    node.ofctl(&["-O", "OpenFlow14", "--bundle", "add-flows", "ovsbr0", file])?;
    Ok(())
}

/// One wire built by hand on a fresh node, with `links - 1` idle wires beside it.
fn manual_local(links: usize, mtu: u32) -> Result<Built> {
    let node = Testbed::node(if links == 1 {
        "bench-lat-bare"
    } else {
        "bench-lat-manual"
    })?;
    let (r1, r2) = node.manual_wire(mtu)?;
    idle_wires(&node, links - 1, 100, mtu)?;
    let what = if links == 1 {
        "the hand-built wire alone"
    } else {
        "the hand-built wire"
    };
    Built::new(what, r1, "eth1", r2, "eth1", Box::new(node))
}

/// The cross-node lab: link 0 joins `r1` on node 0 and `r2` on node 1; the other links join
/// the wire scenario's pods, all on node 0.
fn cross_topology(links: usize, mtu: u32) -> String {
    let mut t = format!("lab: {LAB}\nmtu: {mtu}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n");
    for i in 0..links - 1 {
        let [(pa, ia), (pb, ib)] = wire::ends(i, links - 1);
        t.push_str(&format!("  - endpoints: [\"{pa}:{ia}\", \"{pb}:{ib}\"]\n"));
    }
    t
}

/// Two agents build the cross-node lab; measures its one cross-node wire.
async fn ovswire_across(links: usize, mtu: u32) -> Result<Built> {
    let cluster = Cluster::with_topology(2, mtu, Some(&cross_topology(links, mtu)))?;
    let (r1, r2) = (cluster.pod(0, "r1")?, cluster.pod(1, "r2")?);
    cluster.cni_add(0, LAB, "r1", &r1, "eth1")?;
    cluster.cni_add(1, LAB, "r2", &r2, "eth1")?;
    let local = links - 1;
    let pods: Vec<Netns> = (0..2 * local.div_ceil(IFACES_PER_POD))
        .map(|p| cluster.pod(0, &format!("p{p}")))
        .collect::<Result<_>>()?;
    let ifaces = (0..local)
        .flat_map(|i| wire::ends(i, local))
        .map(|(pod, ifname)| {
            let netns = pods[wire::pod_index(&pod)].path().to_owned();
            (pod, ifname, netns)
        })
        .collect();
    wire::register(cni_client(cluster.agent(0)?.cni_socket()).await?, ifaces).await?;
    wait_up(&mut cluster.wires(0).await?, links, "ovswire on node0").await?;
    wait_up(&mut cluster.wires(1).await?, 1, "ovswire on node1").await?;
    Built::new(
        "the ovswire cross-node wire",
        r1,
        "eth1",
        r2,
        "eth1",
        Box::new((pods, cluster)),
    )
}

/// The same cross-node wire by hand (the recipe of `xnode-manual.sh`), with `links - 1` idle
/// wires on node 0's bridge.
fn manual_across(links: usize, mtu: u32) -> Result<Built> {
    let tag = if links == 1 { "bare" } else { "manual" };
    let x1 = Testbed::node(&format!("bench-lat-{tag}1"))?;
    let x2 = Testbed::node(&format!("bench-lat-{tag}2"))?;
    let underlay = Testbed::underlay(&[&x1, &x2], mtu)?;
    let r1 = x1.manual_vxlan_side(underlay.ip(1), A_CIDR, mtu)?;
    let r2 = x2.manual_vxlan_side(underlay.ip(0), B_CIDR, mtu)?;
    idle_wires(&x1, links - 1, 100, mtu)?;
    Ok(Built {
        what: if links == 1 {
            "the hand-built cross-node wire alone"
        } else {
            "the hand-built cross-node wire"
        },
        a: r1,
        b: r2,
        _keep: Box::new((underlay, x1, x2)),
    })
}

/// Runs the scenario for a lab of `links` links of MTU `mtu` on `nodes` nodes.
pub async fn run(links: usize, nodes: usize, mtu: u32) -> Result<Report> {
    ensure!(
        (1..=5000).contains(&links),
        "--links must be between 1 and 5000"
    );
    ensure!(
        (1..=2).contains(&nodes),
        "--nodes must be 1 (a same-node wire) or 2 (a wire across nodes)"
    );
    ensure!(
        (576..=9500).contains(&mtu),
        "--mtu must be between 576 and 9500"
    );
    let mut report = Report::new("latency");
    report.set("links", links);
    report.set("nodes", nodes);
    report.set("mtu", mtu);
    let built = if nodes == 1 {
        progress(&format!("ovswire: a {links}-link lab"));
        let ours = ovswire_local(links, mtu).await?;
        progress(&format!(
            "baseline: a wire by hand beside {} idle wires",
            links - 1
        ));
        let hand = manual_local(links, mtu)?;
        progress("baseline: a wire by hand, alone on its bridge");
        [ours, hand, manual_local(1, mtu)?]
    } else {
        progress(&format!(
            "ovswire: a {links}-link lab with one wire across nodes"
        ));
        let ours = ovswire_across(links, mtu).await?;
        progress(&format!(
            "baseline: a cross-node wire by hand beside {} idle wires",
            links - 1
        ));
        let hand = manual_across(links, mtu)?;
        progress("baseline: a cross-node wire by hand, alone on its bridges");
        [ours, hand, manual_across(1, mtu)?]
    };
    let mut rtts: [Rtt; 3] = Default::default();
    for round in 1..=ROUNDS {
        progress(&format!("measuring, round {round} of {ROUNDS}"));
        for (wire, rtt) in built.iter().zip(&mut rtts) {
            wire.measure(rtt)?;
        }
    }
    drop(built);
    let [ours, hand, bare] = rtts;
    ours.report(&mut report, "ovswire");
    hand.report(&mut report, "baseline_manual");
    bare.report(&mut report, "baseline_bare");
    // Times: above 1 means the agent's wire answers faster than the hand-built one.
    let p50 = |samples: &[f64]| percentile(&sorted(samples), 50);
    report.set(
        "ratio_manual_ping_p50",
        crate::measure::ratio(p50(&hand.ping), p50(&ours.ping)),
    );
    report.set(
        "ratio_manual_udp_p50",
        crate::measure::ratio(p50(&hand.udp), p50(&ours.udp)),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_times_are_read_from_each_answer() {
        let out = "PING 10.250.0.2 (10.250.0.2) 56(84) bytes of data.\n\
                   64 bytes from 10.250.0.2: icmp_seq=1 ttl=64 time=0.412 ms\n\
                   64 bytes from 10.250.0.2: icmp_seq=2 ttl=64 time=1.05 ms\n\n\
                   --- 10.250.0.2 ping statistics ---\n\
                   rtt min/avg/max/mdev = 0.412/0.731/1.050/0.319 ms\n";
        assert_eq!(ping_times(out), vec![0.412, 1.05]);
    }

    #[test]
    fn the_cross_node_lab_has_one_cross_wire_and_the_rest_local() {
        let t = cross_topology(3, 1500);
        assert!(t.contains("[r1:eth1, r2:eth1]"), "{t}");
        assert_eq!(t.matches("endpoints").count(), 3, "{t}");
        assert!(!t.contains("r2:eth2"), "{t}");
        let one = cross_topology(1, 1500);
        assert_eq!(one.matches("endpoints").count(), 1, "{one}");
    }
}
