//! `cni`: CNI ADD latency through the real `ovswire-cni` binary talking to a real
//! `ovswire-agent`, with every pod added at once the way kubelet starts a lab's pods.
//!
//! Each pod runs its ADDs one after the other (Multus attaches a pod's networks in order) while
//! all pods run concurrently. The figures are per ADD, process start included; `carrier_s` is
//! how long after the first ADD every linked interface had carrier, which shows that wiring
//! happens after ADD returns rather than inside it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ovswire_cni::Invocation;
use ovswire_cni::spec::{Command, K8S_POD_NAME, K8S_POD_NAMESPACE};
use ovswire_testbed::{Netns, Testbed};
use serde_json::json;

use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries};
use crate::measure::{percentile, secs_since, sorted};

/// Pods `p0..`, interfaces `eth1..`; pod 2i's interfaces are linked to pod 2i+1's.
fn topology(pods: usize, ifaces: usize) -> String {
    let mut t = String::from("lab: bench\nlinks:\n");
    for i in (0..pods - pods % 2).step_by(2) {
        for j in 1..=ifaces {
            t.push_str(&format!(
                "  - endpoints: [p{i}:eth{j}, p{}:eth{j}]\n",
                i + 1
            ));
        }
    }
    t
}

/// CPU time (user + system, all threads) a process has used, in milliseconds, from
/// `/proc/PID/stat`; 10 ms resolution.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

/// Runs one ADD for interface `ifname` of pod `pod` (lab `bench`); how long it took.
fn add(
    plugin: &Path,
    conf: &str,
    state_dir: &Path,
    netns: &Path,
    pod: &str,
    ifname: &str,
) -> Result<Duration> {
    let invocation = Invocation::new(plugin, Command::Add)
        .container_id(format!("bench-{pod}"))
        .netns(netns)
        .ifname(ifname)
        .args(&[(K8S_POD_NAMESPACE, "bench"), (K8S_POD_NAME, pod)])
        .state_dir(state_dir)
        .config(conf);
    let t = Instant::now();
    invocation
        .run()
        .with_context(|| format!("ADD {pod}:{ifname}"))?;
    Ok(t.elapsed())
}

/// Runs the scenario: `pods` pods with `ifaces` ovswire interfaces each.
pub async fn run(pods: usize, ifaces: usize) -> Result<Report> {
    ensure!(
        (2..=1000).contains(&pods),
        "--pods must be between 2 and 1000"
    );
    ensure!(
        (1..=64).contains(&ifaces),
        "--ifaces must be between 1 and 64"
    );
    let mut report = Report::new("cni");
    report.set("pods", pods);
    report.set("ifaces", ifaces);

    let bins = Binaries::locate()?;
    progress(&format!(
        "starting a node and the agent; making {pods} pods"
    ));
    let node = Testbed::node("bench-cni")?;
    let agent = AgentProcess::start(&node, &bins, Some(&topology(pods, ifaces)))?;
    let netns = (0..pods)
        .map(|i| node.pod(&format!("p{i}")))
        .collect::<Result<Vec<Netns>, _>>()?;
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "ovswire",
        "type": "ovswire-cni",
        "socket": agent.cni_socket(),
    })
    .to_string();

    // One ADD on the idle agent first: the latency without contention, and a warm agent.
    let idle = node.pod("idle")?;
    let state_dir = node.dir().to_owned();
    let idle_ms =
        add(&bins.plugin, &conf, &state_dir, idle.path(), "idle", "eth1")?.as_secs_f64() * 1000.0;

    progress(&format!("{} ADDs, {pods} pods at once", pods * ifaces));
    let cpu_before = cpu_ms(agent.pid());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ns) in netns.iter().enumerate() {
        let (plugin, conf, path) = (bins.plugin.clone(), conf.clone(), ns.path().to_owned());
        let state_dir = state_dir.clone();
        tasks.spawn_blocking(move || -> Result<Vec<Duration>> {
            (1..=ifaces)
                .map(|j| {
                    let (pod, ifname) = (format!("p{i}"), format!("eth{j}"));
                    add(&plugin, &conf, &state_dir, &path, &pod, &ifname)
                })
                .collect()
        });
    }
    let mut latencies = Vec::with_capacity(pods * ifaces);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.context("ADD task")??);
    }
    let adds_s = secs_since(start);
    let agent_cpu_ms = cpu_before.zip(cpu_ms(agent.pid())).map(|(a, b)| b - a);
    let latencies = sorted(
        &latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect::<Vec<_>>(),
    );

    progress("waiting for carrier on every linked interface");
    let linked = pods - pods % 2;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let up = netns[..linked].iter().all(|ns| {
            (1..=ifaces).all(|j| ns.link_state(&format!("eth{j}")).is_ok_and(|s| s.carrier))
        });
        if up {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "links did not all come up within 300 s; agent log:\n{}",
                agent.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let carrier_s = secs_since(start);

    report.set("adds", latencies.len());
    report.set("p50_ms", percentile(&latencies, 50));
    report.set("p99_ms", percentile(&latencies, 99));
    report.set("max_ms", percentile(&latencies, 100));
    report.set("idle_ms", (idle_ms * 100.0).round() / 100.0);
    report.set("adds_s", adds_s);
    report.set("agent_cpu_ms", agent_cpu_ms);
    report.set("carrier_s", carrier_s);
    drop(agent);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_pairs_neighbours() {
        let t = topology(3, 2);
        assert!(t.contains("[p0:eth1, p1:eth1]") && t.contains("[p0:eth2, p1:eth2]"));
        assert!(!t.contains("p2"), "an odd pod out stays unlinked");
    }
}
