//! `tcp`: single-flow iperf3 throughput over a wire the agent built, next to the same path
//! built by hand with the OVS and iproute2 tools in the same run. With two nodes the wire
//! crosses nodes: two agents build it over VXLAN, and the hand-built one is the recipe of
//! `xnode-manual.sh`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_proto::v1::{ListLinksRequest, OperState};
use ovswire_testbed::{Netns, Testbed};
use tonic::transport::Channel;

use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries, cni_client, grpc_add};
use crate::cluster::Cluster;

const MTU: u32 = 9000;
const LAB: &str = "tcp";

fn topology() -> String {
    format!("lab: {LAB}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    mtu: {MTU}\n")
}

/// Waits until the agent behind `wires` reports every link up.
pub(crate) async fn wait_up(wires: &mut WiresClient<Channel>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let links = wires
            .list_links(ListLinksRequest::default())
            .await?
            .into_inner()
            .links;
        if links.iter().all(|l| l.oper == OperState::Up as i32) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the link did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs iperf3 from `client` to `server` (10.0.0.2) for `secs` seconds; Gbit/s received.
pub fn iperf(client: &Netns, server: &Netns, secs: u32) -> Result<f64> {
    Ok((iperf_bps(client, server, secs)? / 1e9 * 100.0).round() / 100.0)
}

/// Runs iperf3 from `client` to `server` (10.0.0.2) for `secs` seconds; bits per second
/// received.
pub fn iperf_bps(client: &Netns, server: &Netns, secs: u32) -> Result<f64> {
    let mut cmd = Command::new("iperf3");
    cmd.args(["-s", "-1", "-B", "10.0.0.2"])
        .stdout(Stdio::null());
    let mut srv = server.spawn(cmd)?;
    std::thread::sleep(Duration::from_millis(300));
    let out = client.exec("iperf3", &["-c", "10.0.0.2", "-t", &secs.to_string(), "-J"]);
    let _ = srv.kill();
    let _ = srv.wait();
    let report: serde_json::Value = serde_json::from_str(&out?)?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 reported no throughput")
}

async fn ovswire(secs: u32) -> Result<f64> {
    let node = Testbed::node("bench-tcp")?;
    let (r1, r2) = (node.pod("r1")?, node.pod("r2")?);
    let agent = AgentProcess::start(&node, &Binaries::locate()?, Some(&topology()))?;
    let mut cni = cni_client(agent.cni_socket()).await?;
    for (pod, ns) in [("r1", &r1), ("r2", &r2)] {
        grpc_add(&mut cni, LAB, pod, ns.path(), "eth1").await?;
    }
    let mut wires = WiresClient::new(
        ovswire_proto::unix_channel(agent.wires_socket(), Duration::from_secs(5)).await?,
    );
    wait_up(&mut wires).await?;
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    iperf(&r1, &r2, secs)
}

/// The same wire by hand ([`ovswire_testbed::Node::manual_wire`]).
fn manual(secs: u32) -> Result<f64> {
    let node = Testbed::node("bench-tcp-manual")?;
    let (r1, r2) = node.manual_wire(MTU)?;
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    iperf(&r1, &r2, secs)
}

/// A cross-node wire built by two agents: `r1` on node0, `r2` on node1, attached through the
/// real `ovswire-cni`.
async fn ovswire_across(secs: u32) -> Result<f64> {
    let cluster = Cluster::with_topology(2, MTU, Some(&topology()))?;
    let (r1, r2) = (cluster.pod(0, "r1")?, cluster.pod(1, "r2")?);
    cluster.cni_add(0, LAB, "r1", &r1, "eth1")?;
    cluster.cni_add(1, LAB, "r2", &r2, "eth1")?;
    for i in 0..2 {
        wait_up(&mut cluster.wires(i).await?)
            .await
            .with_context(|| {
                let log = cluster.agent(i).map(|a| a.log()).unwrap_or_default();
                format!("on node{i}; agent log:\n{log}")
            })?;
    }
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    iperf(&r1, &r2, secs)
}

/// The same cross-node wire by hand, on two fresh nodes joined by an underlay for MTU 9000.
fn manual_across(secs: u32) -> Result<f64> {
    let (x1, x2) = (
        Testbed::node("bench-tcp-x1")?,
        Testbed::node("bench-tcp-x2")?,
    );
    let underlay = Testbed::underlay(&[&x1, &x2], MTU)?;
    let r1 = x1.manual_vxlan_side(underlay.ip(1), "10.0.0.1/30", MTU)?;
    let r2 = x2.manual_vxlan_side(underlay.ip(0), "10.0.0.2/30", MTU)?;
    iperf(&r1, &r2, secs)
}

/// Runs the scenario: on a same-node wire with `nodes` = 1, on a cross-node wire with 2.
pub async fn run(secs: u32, nodes: usize) -> Result<Report> {
    ensure!(
        (1..=600).contains(&secs),
        "--seconds must be between 1 and 600"
    );
    ensure!(
        (1..=2).contains(&nodes),
        "--nodes must be 1 (a same-node wire) or 2 (a wire across nodes)"
    );
    let mut report = Report::new("tcp");
    if nodes == 2 {
        report.set("nodes", nodes);
    }
    report.set("mtu", MTU);
    report.set("seconds", secs);
    let (ours, hand) = if nodes == 1 {
        progress("ovswire: iperf3 over a wire built by the agent");
        let ours = ovswire(secs).await?;
        progress("baseline: iperf3 over the same path built by hand");
        (ours, manual(secs)?)
    } else {
        progress("ovswire: iperf3 over a cross-node wire built by two agents");
        let ours = ovswire_across(secs).await?;
        progress("baseline: iperf3 over a cross-node VXLAN wire built by hand");
        (ours, manual_across(secs)?)
    };
    report.set("ovswire_gbps", ours);
    report.set("baseline_manual_gbps", hand);
    // Throughput: above 1 means the agent's wire is faster than the hand-built one.
    report.set("ratio_manual", crate::measure::ratio(ours, hand));
    Ok(report)
}
