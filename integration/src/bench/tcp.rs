//! `tcp`: single-flow iperf3 throughput over a wire the agent built, next to the same path
//! built by hand with the OVS and iproute2 tools in the same run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ovswire_proto::v1::cni_client::CniClient;
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_proto::v1::{CniRequest, ListLinksRequest, OperState};
use ovswire_testbed::{Netns, Testbed};

use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries};

const MTU: u32 = 9000;

/// Runs iperf3 from `client` to `server` (10.0.0.2) for `secs` seconds; Gbit/s received.
pub fn iperf(client: &Netns, server: &Netns, secs: u32) -> Result<f64> {
    let mut cmd = Command::new("iperf3");
    cmd.args(["-s", "-1", "-B", "10.0.0.2"])
        .stdout(Stdio::null());
    let mut srv = server.spawn(cmd)?;
    std::thread::sleep(Duration::from_millis(300));
    let out = client.exec("iperf3", &["-c", "10.0.0.2", "-t", &secs.to_string(), "-J"]);
    let _ = srv.kill();
    let _ = srv.wait();
    let report: serde_json::Value = serde_json::from_str(&out?)?;
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 reported no throughput")?;
    Ok((bps / 1e9 * 100.0).round() / 100.0)
}

async fn ovswire(secs: u32) -> Result<f64> {
    let node = Testbed::node("bench-tcp")?;
    let (r1, r2) = (node.pod("r1")?, node.pod("r2")?);
    let topology = format!("lab: tcp\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    mtu: {MTU}\n");
    let agent = AgentProcess::start(&node, &Binaries::locate()?, Some(&topology))?;
    let mut cni = CniClient::new(
        ovswire_proto::unix_channel(agent.cni_socket(), Duration::from_secs(5)).await?,
    );
    for (pod, ns) in [("r1", &r1), ("r2", &r2)] {
        let resp = cni
            .add(CniRequest {
                command: "ADD".into(),
                container_id: format!("tcp-{pod}"),
                netns: ns.path().display().to_string(),
                ifname: "eth1".into(),
                args: format!("K8S_POD_NAMESPACE=tcp;K8S_POD_NAME={pod}"),
                path: String::new(),
                network_config: br#"{"cniVersion":"1.0.0","name":"ovswire","type":"ovswire-cni"}"#
                    .to_vec(),
            })
            .await?
            .into_inner();
        ensure!(resp.error.is_none(), "ADD {pod}: {:?}", resp.error);
    }
    let mut wires = WiresClient::new(
        ovswire_proto::unix_channel(agent.wires_socket(), Duration::from_secs(5)).await?,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let links = wires
            .list_links(ListLinksRequest::default())
            .await?
            .into_inner()
            .links;
        if links.iter().all(|l| l.oper == OperState::Up as i32) {
            break;
        }
        ensure!(Instant::now() < deadline, "the link did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    iperf(&r1, &r2, secs)
}

/// The same wire by hand: veths, `ovs-vsctl add-port`, two `ovs-ofctl` flows, and `ethtool`
/// turning TX checksum offload off on all four ends.
fn manual(secs: u32) -> Result<f64> {
    let node = Testbed::node("bench-tcp-manual")?;
    node.add_bridge("ovsbr0")?;
    let (r1, r2) = (node.pod("r1")?, node.pod("r2")?);
    node.netns().veth_to("h1", &r1, "eth1", Some(MTU))?;
    node.netns().veth_to("h2", &r2, "eth1", Some(MTU))?;
    node.vsctl(&[
        "add-port",
        "ovsbr0",
        "h1",
        "--",
        "set",
        "Interface",
        "h1",
        "ofport_request=1",
    ])?;
    node.vsctl(&[
        "add-port",
        "ovsbr0",
        "h2",
        "--",
        "set",
        "Interface",
        "h2",
        "ofport_request=2",
    ])?;
    node.ofctl(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "ovsbr0",
        "in_port=1,actions=output:2",
    ])?;
    node.ofctl(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "ovsbr0",
        "in_port=2,actions=output:1",
    ])?;
    for (ns, dev) in [
        (node.netns(), "h1"),
        (node.netns(), "h2"),
        (&r1, "eth1"),
        (&r2, "eth1"),
    ] {
        ns.exec("ethtool", &["-K", dev, "tx", "off"])?;
    }
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    iperf(&r1, &r2, secs)
}

/// Runs the scenario.
pub async fn run(secs: u32) -> Result<Report> {
    ensure!(
        (1..=600).contains(&secs),
        "--seconds must be between 1 and 600"
    );
    let mut report = Report::new("tcp");
    report.set("mtu", MTU);
    report.set("seconds", secs);
    progress("ovswire: iperf3 over a wire built by the agent");
    let ours = ovswire(secs).await?;
    report.set("ovswire_gbps", ours);
    progress("baseline: iperf3 over the same path built by hand");
    let hand = manual(secs)?;
    report.set("baseline_manual_gbps", hand);
    // Throughput: above 1 means the agent's wire is faster than the hand-built one.
    report.set("ratio_manual", crate::measure::ratio(ours, hand));
    Ok(report)
}
