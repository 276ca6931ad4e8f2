//! `flap`: how long a link flap takes to reach the routers. The clock starts when the agent's
//! `Wires.SetLinkState` is called and stops when *both* pods of the link have seen the change
//! (`NO-CARRIER` on down, carrier back on up), as timestamped by a netlink `RTNLGRP_LINK`
//! subscription inside each pod's namespace — no polling. The baseline flaps the same kind of
//! wire, built by hand, with `ovs-ofctl mod-port <bridge> <port> down|up` on both host ends,
//! timed the same way in the same run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_proto::v1::{AdminState, Endpoint, LinkRef, SetLinkStateRequest};
use ovswire_testbed::{LinkWatch, Netns, Node, Testbed};
use tonic::transport::Channel;

use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries, cni_client, grpc_add};
use crate::cluster::Cluster;
use crate::measure::{percentile, sorted};

const LAB: &str = "flap";
const MTU: u32 = 9000;
/// How long one transition may take before the run fails.
const TRANSITION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a freshly wired link may take to come up.
const UP_TIMEOUT: Duration = Duration::from_secs(60);

fn topology() -> String {
    format!("lab: {LAB}\nmtu: {MTU}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n")
}

/// What takes the link down and up.
#[derive(Debug)]
enum Flapper<'a> {
    /// The agent's `Wires.SetLinkState`.
    Api(WiresClient<Channel>),
    /// `ovs-ofctl mod-port` on both host ends, one command after the other.
    Ofctl(&'a Node, [&'a str; 2]),
}

impl Flapper<'_> {
    async fn set(&mut self, down: bool) -> Result<()> {
        match self {
            Self::Api(wires) => {
                let end = |pod: &str| Endpoint {
                    pod: pod.into(),
                    ifname: "eth1".into(),
                };
                let admin = if down {
                    AdminState::Down
                } else {
                    AdminState::Up
                };
                wires
                    .set_link_state(SetLinkStateRequest {
                        r#ref: Some(LinkRef {
                            lab: LAB.into(),
                            a: Some(end("r1")),
                            b: Some(end("r2")),
                        }),
                        admin: admin as i32,
                    })
                    .await
                    .context("Wires.SetLinkState")?;
            }
            Self::Ofctl(node, ports) => {
                let state = if down { "down" } else { "up" };
                for port in *ports {
                    node.ofctl(&["-O", "OpenFlow13", "mod-port", "ovsbr0", port, state])?;
                }
            }
        }
        Ok(())
    }
}

/// Down and up latencies of one series of flaps, in milliseconds.
#[derive(Debug, Default)]
struct Series {
    down: Vec<f64>,
    up: Vec<f64>,
}

impl Series {
    /// Sets `{prefix}_p50_ms`, `_p99_ms`, `_max_ms` (down and up together) and the same for
    /// down and up apart.
    fn report(&self, report: &mut Report, prefix: &str) {
        let all: Vec<f64> = self.down.iter().chain(&self.up).copied().collect();
        for (part, samples) in [("", &all), ("_down", &self.down), ("_up", &self.up)] {
            let sorted = sorted(samples);
            report.set(&format!("{prefix}{part}_p50_ms"), percentile(&sorted, 50));
            report.set(&format!("{prefix}{part}_p99_ms"), percentile(&sorted, 99));
            report.set(&format!("{prefix}{part}_max_ms"), percentile(&sorted, 100));
        }
    }

    fn p(&self, p: usize) -> f64 {
        let all: Vec<f64> = self.down.iter().chain(&self.up).copied().collect();
        percentile(&sorted(&all), p)
    }
}

/// `eth1` of each pod, watched.
struct Ends<'a> {
    watches: Vec<(&'a str, LinkWatch)>,
}

impl<'a> Ends<'a> {
    fn new(pods: &[(&'a str, &Netns)]) -> Result<Self> {
        let watches = pods
            .iter()
            .map(|&(name, ns)| Ok((name, ns.watch_links()?)))
            .collect::<Result<_>>()?;
        Ok(Self { watches })
    }

    /// Flips the link once; milliseconds from the call until every end had the new carrier.
    async fn transition(&self, flapper: &mut Flapper<'_>, down: bool) -> Result<f64> {
        for (_, watch) in &self.watches {
            watch.drain();
        }
        let start = Instant::now();
        flapper.set(down).await?;
        let mut last = start;
        for (pod, watch) in &self.watches {
            let at = watch
                .wait_carrier("eth1", !down, TRANSITION_TIMEOUT)
                .with_context(|| {
                    format!(
                        "{pod}:eth1 did not {} carrier within {TRANSITION_TIMEOUT:?}",
                        if down { "lose" } else { "regain" }
                    )
                })?;
            last = last.max(at);
        }
        Ok(last.duration_since(start).as_secs_f64() * 1000.0)
    }

    async fn flap(&self, flapper: &mut Flapper<'_>, flaps: usize) -> Result<Series> {
        let mut series = Series::default();
        for _ in 0..flaps {
            series.down.push(self.transition(flapper, true).await?);
            series.up.push(self.transition(flapper, false).await?);
        }
        Ok(series)
    }
}

/// Waits until `eth1` has carrier in every pod.
fn wait_up(pods: &[&Netns], log: impl Fn() -> String) -> Result<()> {
    let deadline = Instant::now() + UP_TIMEOUT;
    while !pods
        .iter()
        .all(|p| p.link_state("eth1").is_ok_and(|s| s.carrier))
    {
        ensure!(
            Instant::now() < deadline,
            "the link did not come up within {UP_TIMEOUT:?}; agent log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Checks that the wire still carries traffic after the flaps.
fn check_traffic(r1: &Netns, r2: &Netns) -> Result<()> {
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    let ok = (0..5).any(|_| {
        r1.output("ping", &["-c", "1", "-W", "1", "10.0.0.2"])
            .is_ok_and(|o| o.status.success())
    });
    ensure!(ok, "the wire passes no traffic after the flaps");
    Ok(())
}

/// A same-node wire built by the agent, flapped through its Wires API.
async fn local(flaps: usize) -> Result<Series> {
    let node = Testbed::node("bench-flap")?;
    let (r1, r2) = (node.pod("r1")?, node.pod("r2")?);
    let agent = AgentProcess::start(&node, &Binaries::locate()?, Some(&topology()))?;
    let mut cni = cni_client(agent.cni_socket()).await?;
    for (pod, ns) in [("r1", &r1), ("r2", &r2)] {
        grpc_add(&mut cni, LAB, pod, ns.path(), "eth1").await?;
    }
    wait_up(&[&r1, &r2], || agent.log())?;
    let mut flapper = Flapper::Api(WiresClient::new(
        ovswire_proto::unix_channel(agent.wires_socket(), Duration::from_secs(5)).await?,
    ));
    let ends = Ends::new(&[("r1", &r1), ("r2", &r2)])?;
    let series = ends
        .flap(&mut flapper, flaps)
        .await
        .with_context(|| format!("agent log:\n{}", agent.log()))?;
    check_traffic(&r1, &r2)?;
    Ok(series)
}

/// A cross-node wire (r1 on node0, r2 on node1) built by two agents, flapped through node0's
/// Wires API.
async fn remote(flaps: usize) -> Result<Series> {
    let topology = topology();
    let cluster = Cluster::with_topology(2, MTU, Some(&topology))?;
    let (r1, r2) = (cluster.pod(0, "r1")?, cluster.pod(1, "r2")?);
    cluster.cni_add(0, LAB, "r1", &r1, "eth1")?;
    cluster.cni_add(1, LAB, "r2", &r2, "eth1")?;
    let logs = || {
        (0..2)
            .filter_map(|i| {
                cluster
                    .agent(i)
                    .ok()
                    .map(|a| format!("node{i}:\n{}", a.log()))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_up(&[&r1, &r2], logs)?;
    let mut flapper = Flapper::Api(cluster.wires(0).await?);
    let ends = Ends::new(&[("r1", &r1), ("r2", &r2)])?;
    let series = ends
        .flap(&mut flapper, flaps)
        .await
        .with_context(|| format!("agent logs:\n{}", logs()))?;
    check_traffic(&r1, &r2)?;
    Ok(series)
}

/// The same wire by hand (veths, `ovs-vsctl add-port`, two flows), flapped with `ovs-ofctl
/// mod-port` on both host ends.
async fn baseline(flaps: usize) -> Result<Series> {
    let node = Testbed::node("bench-flap-ofctl")?;
    node.add_bridge("ovsbr0")?;
    let (r1, r2) = (node.pod("r1")?, node.pod("r2")?);
    for (host, pod, ofport) in [("h1", &r1, 1), ("h2", &r2, 2)] {
        node.netns().veth_to(host, pod, "eth1", Some(MTU))?;
        node.vsctl(&[
            "add-port",
            "ovsbr0",
            host,
            "--",
            "set",
            "Interface",
            host,
            &format!("ofport_request={ofport}"),
        ])?;
    }
    for flow in ["in_port=1,actions=output:2", "in_port=2,actions=output:1"] {
        node.ofctl(&["-O", "OpenFlow13", "add-flow", "ovsbr0", flow])?;
    }
    wait_up(&[&r1, &r2], String::new)?;
    let mut flapper = Flapper::Ofctl(&node, ["h1", "h2"]);
    let ends = Ends::new(&[("r1", &r1), ("r2", &r2)])?;
    let series = ends.flap(&mut flapper, flaps).await?;
    check_traffic(&r1, &r2)?;
    Ok(series)
}

/// Runs the scenario: `flaps` down/up cycles on a same-node wire and, with `nodes` = 2, on a
/// cross-node wire; the `ovs-ofctl` baseline on a same-node wire.
pub async fn run(flaps: usize, nodes: usize) -> Result<Report> {
    ensure!(
        (1..=100_000).contains(&flaps),
        "--flaps must be between 1 and 100000"
    );
    ensure!(
        (1..=2).contains(&nodes),
        "--nodes must be 1 (same-node wire) or 2 (also a cross-node wire)"
    );
    let mut report = Report::new("flap");
    report.set("flaps", flaps);
    report.set("nodes", nodes);
    progress(&format!(
        "ovswire: {flaps} flaps of a same-node wire through Wires.SetLinkState"
    ));
    let ours = local(flaps).await?;
    ours.report(&mut report, "local");
    if nodes == 2 {
        progress(&format!(
            "ovswire: {flaps} flaps of a cross-node wire through Wires.SetLinkState"
        ));
        remote(flaps).await?.report(&mut report, "remote");
    }
    progress(&format!(
        "baseline: {flaps} flaps of a hand-built wire with ovs-ofctl mod-port"
    ));
    let base = baseline(flaps).await?;
    base.report(&mut report, "baseline_ofctl");
    // Latency: above 1 means ovswire's flap reaches the pods sooner.
    report.set(
        "ratio_ofctl_p50",
        crate::measure::ratio(base.p(50), ours.p(50)),
    );
    report.set(
        "ratio_ofctl_p99",
        crate::measure::ratio(base.p(99), ours.p(99)),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_report_down_up_and_both() {
        let series = Series {
            down: vec![1.0, 3.0],
            up: vec![2.0, 4.0],
        };
        let mut report = Report::new("flap");
        series.report(&mut report, "local");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["local_p50_ms"], 2.0);
        assert_eq!(json["local_max_ms"], 4.0);
        assert_eq!(json["local_down_p99_ms"], 3.0);
        assert_eq!(json["local_up_p50_ms"], 2.0);
    }
}
