//! Link telemetry end to end on real agents: counters that match the frames a test sends, on one
//! node and across two (each node counting its half), and `/metrics` read by a real Prometheus
//! exposition parser (Debian's python3-prometheus-client, which scripts/setup installs). Needs
//! root.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ovswire_integration::cluster::{Cluster, Stop};
use ovswire_integration::wait_until;
use ovswire_proto::v1::{
    AdminState, Endpoint, GetLinkRequest, LinkRef, LinkStats, OperState, SetLinkStateRequest,
};
use ovswire_testbed::Netns;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn link_ref(lab: &str) -> LinkRef {
    let end = |pod: &str| {
        Some(Endpoint {
            pod: pod.into(),
            ifname: "eth1".into(),
        })
    };
    LinkRef {
        lab: lab.into(),
        a: end("r1"),
        b: end("r2"),
    }
}

/// The link's state and counters as node `i` sees them.
fn stats(cluster: &Cluster, i: usize, lab: &str) -> Result<(i32, LinkStats)> {
    rt().block_on(async {
        let link = cluster
            .wires(i)
            .await?
            .get_link(GetLinkRequest {
                r#ref: Some(link_ref(lab)),
                stats: true,
            })
            .await?
            .into_inner();
        Ok((link.oper, link.stats.context("no stats in the reply")?))
    })
}

/// Frames `a->b` and `b->a` in `s`.
fn packets(s: &LinkStats) -> (u64, u64) {
    (
        s.a_to_b.unwrap_or_default().packets,
        s.b_to_a.unwrap_or_default().packets,
    )
}

fn quiet(pod: &Netns) -> Result<()> {
    pod.exec("sysctl", &["-qw", "net.ipv6.conf.eth1.disable_ipv6=1"])?;
    Ok(())
}

/// Two pods wired through `nodes` nodes (both on node0 with one node), quiet.
fn lab(name: &str, nodes: usize, extra: &[&str]) -> Result<(Cluster, Netns, Netns)> {
    let topology = format!("lab: {name}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n");
    let mut cluster = Cluster::with_topology(nodes, 1500, Some(&topology))?;
    if !extra.is_empty() {
        cluster.set_extra_args(0, extra);
        cluster.stop_agent(0, Stop::Graceful)?;
        cluster.start_agent(0)?;
    }
    let far = nodes - 1;
    let r1 = cluster.pod(0, "r1")?;
    let r2 = cluster.pod(far, "r2")?;
    cluster.cni_add(0, name, "r1", &r1, "eth1")?;
    cluster.cni_add(far, name, "r2", &r2, "eth1")?;
    quiet(&r1)?;
    quiet(&r2)?;
    let up = wait_until("the link up", 30, || {
        stats(&cluster, 0, name).is_ok_and(|(oper, _)| oper == OperState::Up as i32)
    });
    if up.is_err() {
        eprintln!("{:?}", stats(&cluster, 0, name));
        eprintln!("{}", cluster.logs(400));
    }
    up?;
    // Whatever crossed while the interfaces came up has crossed by now.
    std::thread::sleep(Duration::from_millis(500));
    Ok((cluster, r1, r2))
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn across_nodes_each_node_counts_its_half_exactly() -> Result<()> {
    let (cluster, r1, r2) = lab("tx2", 2, &[])?;
    // OVS resolves the far node's underlay address when the first frame enters the tunnel,
    // and drops what comes before the answer: warm the path up first.
    r1.send_raw_frames("eth1", 5, 100, 1)?;
    r2.send_raw_frames("eth1", 5, 100, 1)?;
    std::thread::sleep(Duration::from_millis(500));
    let before = [stats(&cluster, 0, "tx2")?.1, stats(&cluster, 1, "tx2")?.1];
    r1.send_raw_frames("eth1", 500, 200, 2)?;
    r2.send_raw_frames("eth1", 7, 100, 2)?;
    let delta = |i: usize| -> Result<(u64, u64)> {
        let (a, b) = packets(&stats(&cluster, i, "tx2")?.1);
        let (a0, b0) = packets(&before[i]);
        Ok((a - a0, b - b0))
    };
    wait_until("both nodes to count every frame", 20, || {
        [0, 1]
            .into_iter()
            .all(|i| delta(i).is_ok_and(|(a, b)| a >= 500 && b >= 7))
    })?;
    std::thread::sleep(Duration::from_millis(200));
    // r1 (end a) is on node0: node0 counts what r1 sent into the wire and what the wire
    // brought r1; node1 the same for r2. On a healthy underlay the halves agree.
    ensure!(delta(0)? == (500, 7), "node0 counted {:?}", delta(0)?);
    ensure!(delta(1)? == (500, 7), "node1 counted {:?}", delta(1)?);
    let (_, s0) = stats(&cluster, 0, "tx2")?;
    ensure!(s0.node == "node0", "{s0:?}");

    // One flap from node0: each node counts one flap of its half, and says when.
    for admin in [AdminState::Down, AdminState::Up] {
        rt().block_on(async {
            cluster
                .wires(0)
                .await?
                .set_link_state(SetLinkStateRequest {
                    r#ref: Some(link_ref("tx2")),
                    admin: admin as i32,
                })
                .await?;
            anyhow::Ok(())
        })?;
    }
    wait_until("both halves back up", 20, || {
        [0, 1]
            .into_iter()
            .all(|i| stats(&cluster, i, "tx2").is_ok_and(|(o, _)| o == OperState::Up as i32))
    })?;
    for i in 0..2 {
        let (_, s) = stats(&cluster, i, "tx2")?;
        ensure!(
            s.flaps == 1 && s.carrier_changes == 2 && s.last_change_unix_ms > 0,
            "node{i}: {s:?}"
        );
    }
    ensure!(
        s0.a_to_b.unwrap_or_default().bytes - before[0].a_to_b.unwrap_or_default().bytes
            == 500 * 200,
        "{s0:?}"
    );
    Ok(())
}

/// Every sample of the agent's `/metrics` inside node `node`, parsed by the OpenMetrics parser
/// of the Python Prometheus client, as `(name, labels, value)`.
fn scrape(
    node: &ovswire_testbed::Node,
    port: u16,
) -> Result<Vec<(String, serde_json::Value, f64)>> {
    let script = "import json, sys, urllib.request\n\
         from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
         text = urllib.request.urlopen(sys.argv[1]).read().decode()\n\
         out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(text) \
         for s in f.samples]\n\
         print(json.dumps(out))\n";
    let url = format!("http://127.0.0.1:{port}/metrics");
    let out = node
        .netns()
        .exec("/usr/bin/python3", &["-c", script, &url])
        .context("scrape and parse /metrics (is python3-prometheus-client installed?)")?;
    let samples: Vec<(String, serde_json::Value, f64)> = serde_json::from_str(&out)?;
    Ok(samples)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn metrics_parse_as_openmetrics_and_count_what_crossed() -> Result<()> {
    let (cluster, r1, _r2) = lab("tx1", 1, &["--metrics-listen=127.0.0.1:9470"])?;
    let node = cluster.node(0)?;
    let value = |samples: &[(String, serde_json::Value, f64)], name: &str, direction: &str| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && l["direction"] == direction && l["link"] == "r1:eth1--r2:eth1"
            })
            .map(|(_, _, v)| *v)
    };
    let before = scrape(node, 9470)?;
    let start = value(&before, "ovswire_link_packets_total", "a->b").context("no packets")?;
    r1.send_raw_frames("eth1", 300, 100, 20)?;
    wait_until("the scrape to count 300 frames", 20, || {
        scrape(node, 9470).is_ok_and(|s| {
            value(&s, "ovswire_link_packets_total", "a->b").is_some_and(|v| v >= start + 300.0)
        })
    })?;
    let samples = scrape(node, 9470)?;
    ensure!(
        value(&samples, "ovswire_link_packets_total", "a->b") == Some(start + 300.0),
        "{samples:?}"
    );
    let up = samples
        .iter()
        .find(|(n, l, _)| n == "ovswire_link_up" && l["lab"] == "tx1" && l["node"] == "node0");
    ensure!(up.is_some_and(|(_, _, v)| *v == 1.0), "{up:?}");
    // An impaired direction: its parameters, and what its stage did to the frames.
    let imp: ovswire_core::impair::LinkImpairment =
        "a->b: delay=2ms loss=50%; b->a: none".parse()?;
    rt().block_on(async {
        cluster
            .wires(0)
            .await?
            .set_link_impairment(ovswire_proto::v1::SetLinkImpairmentRequest {
                r#ref: Some(link_ref("tx1")),
                impairment: Some((&imp).into()),
            })
            .await?;
        anyhow::Ok(())
    })?;
    r1.send_raw_frames("eth1", 400, 100, 5)?;
    let fate = |s: &[(String, serde_json::Value, f64)], fate: &str| {
        s.iter()
            .find(|(n, l, _)| {
                n == "ovswire_link_impairment_frames_total"
                    && l["fate"] == fate
                    && l["direction"] == "a->b"
            })
            .map(|(_, _, v)| *v)
    };
    wait_until("the stage's counters in a scrape", 20, || {
        scrape(node, 9470).is_ok_and(|s| fate(&s, "received").is_some_and(|v| v >= 400.0))
    })?;
    let samples = scrape(node, 9470)?;
    let (received, sent, lost) = (
        fate(&samples, "received").unwrap_or(0.0),
        fate(&samples, "sent").unwrap_or(0.0),
        fate(&samples, "lost").unwrap_or(0.0),
    );
    ensure!(
        received == sent + lost && lost > 100.0 && sent > 100.0,
        "{received} {sent} {lost}"
    );
    let param = |p: &str| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == "ovswire_link_impairment" && l["parameter"] == p && l["direction"] == "a->b"
            })
            .map(|(_, _, v)| *v)
    };
    ensure!(
        param("delay_seconds") == Some(0.002) && param("loss_ratio") == Some(0.5),
        "{samples:?}"
    );
    // Every metric the docs and the dashboard name (a lone agent has no peer to report).
    for name in ovswire_agent::api::metrics::METRICS
        .into_iter()
        .filter(|n| *n != "ovswire_agent_peer_up")
    {
        ensure!(
            samples.iter().any(|(n, _, _)| n == name),
            "no {name} in the scrape"
        );
    }
    Ok(())
}
