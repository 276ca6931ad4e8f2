//! `wire`: register every pod interface of N links through the agent's Cni API as fast as the
//! clients can, and time until every link is up and sampled wires pass traffic; the CLI baseline
//! wires the same number of links in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use futures::stream::{self, StreamExt};
use ovswire_proto::v1::cni_client::CniClient;
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_proto::v1::{CniRequest, ListLinksRequest, OperState};
use ovswire_testbed::{Netns, Testbed};

use super::baseline::{self, Mode};
use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries};
use crate::measure::{ratio, secs_since};

/// Interfaces per pod: labs have routers with many ports, not one pod per interface.
const IFACES_PER_POD: usize = 8;
/// CNI calls in flight at once (what a busy kubelet with Multus does).
const CONCURRENCY: usize = 64;
const LAB: &str = "bench";

/// `(pod, ifname)` of both ends of link `i` among `links`: the first half of the pods hold the
/// `a` ends, the second half the `b` ends.
fn ends(i: usize, links: usize) -> [(String, String); 2] {
    let half = links.div_ceil(IFACES_PER_POD);
    let (pod, port) = (i / IFACES_PER_POD, i % IFACES_PER_POD + 1);
    [
        (format!("p{pod}"), format!("eth{port}")),
        (format!("p{}", half + pod), format!("eth{port}")),
    ]
}

fn topology(links: usize) -> String {
    let mut t = format!("lab: {LAB}\nmtu: 1500\nlinks:\n");
    for i in 0..links {
        let [(pa, ia), (pb, ib)] = ends(i, links);
        t.push_str(&format!("  - endpoints: [\"{pa}:{ia}\", \"{pb}:{ib}\"]\n"));
    }
    t
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

/// Runs the scenario for one size.
pub async fn run(links: usize) -> Result<Report> {
    ensure!(
        (1..=15_000).contains(&links),
        "--links must be between 1 and 15000"
    );
    let mut report = Report::new("wire");
    report.set("links", links);
    let node = Testbed::node("bench-wire")?;
    let pods = 2 * links.div_ceil(IFACES_PER_POD);
    progress(&format!(
        "ovswire: {links} links, {} interfaces on {pods} pods",
        2 * links
    ));
    let pod_ns: Vec<Netns> = (0..pods)
        .map(|p| node.pod(&format!("p{p}")))
        .collect::<ovswire_testbed::Result<_>>()?;
    let agent = AgentProcess::start(&node, &Binaries::locate()?, Some(&topology(links)))?;
    let cni = CniClient::new(
        ovswire_proto::unix_channel(agent.cni_socket(), Duration::from_secs(5)).await?,
    );
    let mut wires = WiresClient::new(
        ovswire_proto::unix_channel(agent.wires_socket(), Duration::from_secs(5)).await?,
    );
    let pod_ns = Arc::new(pod_ns);

    let start = Instant::now();
    let calls = (0..links)
        .flat_map(|i| ends(i, links))
        .map(|(pod, ifname)| {
            let mut cni = cni.clone();
            let netns = pod_ns[pod[1..].parse::<usize>().expect("pod names are p<N>")]
                .path()
                .to_owned();
            async move {
                let req = CniRequest {
                    command: "ADD".into(),
                    container_id: format!("bench-{pod}"),
                    netns: netns.display().to_string(),
                    ifname: ifname.clone(),
                    args: format!("K8S_POD_NAMESPACE={LAB};K8S_POD_NAME={pod}"),
                    path: String::new(),
                    network_config:
                        br#"{"cniVersion":"1.0.0","name":"ovswire","type":"ovswire-cni"}"#.to_vec(),
                };
                let resp = cni.add(req).await?.into_inner();
                if let Some(e) = resp.error {
                    bail!("ADD {pod}:{ifname} failed: {} ({})", e.msg, e.code);
                }
                Ok(())
            }
        });
    let results: Vec<Result<()>> = stream::iter(calls)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>>>()?;
    let registered_s = secs_since(start);
    let sample: Vec<usize> = [0, links / 2, links - 1].into_iter().collect();
    for (n, &i) in sample.iter().enumerate() {
        let [(pa, ia), (pb, ib)] = ends(i, links);
        let na = &pod_ns[pa[1..].parse::<usize>()?];
        let nb = &pod_ns[pb[1..].parse::<usize>()?];
        na.add_address(&ia, &format!("10.{}.0.1/30", n + 1))?;
        nb.add_address(&ib, &format!("10.{}.0.2/30", n + 1))?;
    }
    loop {
        let list = wires
            .list_links(ListLinksRequest { lab: LAB.into() })
            .await?
            .into_inner();
        let up = list
            .links
            .iter()
            .filter(|l| l.oper == OperState::Up as i32)
            .count();
        if up == links {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(600),
            "only {up} of {links} links came up in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (n, &i) in sample.iter().enumerate() {
        let [(pa, _), _] = ends(i, links);
        let na = &pod_ns[pa[1..].parse::<usize>()?];
        let peer = format!("10.{}.0.2", n + 1);
        let ok = na
            .output("ping", &["-c", "1", "-W", "2", &peer])?
            .status
            .success();
        ensure!(ok, "link {i} is up but does not pass traffic");
    }
    let ovswire_s = secs_since(start);
    report.set("ovswire_s", ovswire_s);
    report.set("registered_s", registered_s);
    if let Some((rss, cpu)) = usage(agent.pid()) {
        report.set("agent_rss_mb", rss);
        report.set("agent_cpu_s", cpu);
    }
    drop(agent);
    drop(pod_ns);
    drop(node);

    let modes: &[Mode] = if links <= 500 {
        &[Mode::PerLink]
    } else {
        &[Mode::Batched, Mode::Bundled]
    };
    for &mode in modes {
        progress(&format!("baseline: {links} links, {}", mode.name()));
        let secs = baseline::run(mode, links)?;
        report.set(&format!("baseline_{}_s", mode.name()), secs);
        report.set(&format!("ratio_{}", mode.name()), ratio(secs, ovswire_s));
    }
    Ok(report)
}
