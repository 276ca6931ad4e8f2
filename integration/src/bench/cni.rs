//! `cni`: CNI ADD latency through the real `ovswire-cni` binary talking to a real
//! `ovswire-agent`, with every pod added at once the way kubelet starts a lab's pods.
//!
//! Each pod runs its ADDs one after the other (Multus attaches a pod's networks in order) while
//! all pods run concurrently. The figures are per ADD, process start included; `carrier_s` is
//! how long after the first ADD every linked interface had carrier, which shows that wiring
//! happens after ADD returns rather than inside it.
//!
//! The baseline, in the same run: the distribution's reference `ptp` plugin (which also makes a
//! veth into the pod's namespace, and gives it an address from `host-local`), with the same pods,
//! interfaces and concurrency (`ptp_*`). `plugin_ms` is the plugin's own share: `ovswire-cni`
//! from exec to exit for a STATUS, which the agent answers at once.

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

/// Where Debian's containernetworking-plugins puts the reference plugins.
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// Every pod's ADDs, the pods at once, each through `add_one(pod index, interface number)`;
/// the latencies in milliseconds, sorted, and how long it all took.
async fn all_at_once<F>(pods: usize, ifaces: usize, add_one: F) -> Result<(Vec<f64>, f64)>
where
    F: Fn(usize, usize) -> Result<Duration> + Send + Sync + 'static,
{
    let add_one = std::sync::Arc::new(add_one);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..pods {
        let add_one = add_one.clone();
        tasks.spawn_blocking(move || -> Result<Vec<Duration>> {
            (1..=ifaces).map(|j| add_one(i, j)).collect()
        });
    }
    let mut latencies = Vec::with_capacity(pods * ifaces);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.context("ADD task")??);
    }
    let took = secs_since(start);
    let ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    Ok((sorted(&ms), took))
}

/// The reference `ptp` plugin under the same load: `pods` fresh namespaces, `ifaces` ADDs each,
/// run from inside the node's namespace (where ptp puts the host ends and routes).
async fn ptp_baseline(node: &ovswire_testbed::Node, pods: usize, ifaces: usize) -> Result<Report> {
    let plugin = Path::new(REFERENCE_PLUGINS).join("ptp");
    ensure!(
        plugin.exists(),
        "{} is missing; install Debian's containernetworking-plugins",
        plugin.display()
    );
    let netns = (0..pods)
        .map(|i| node.pod(&format!("q{i}")))
        .collect::<Result<Vec<Netns>, _>>()?;
    // A network per interface number: ptp routes each interface's gateway through it, and one
    // gateway can be routed one way only.
    let ipam_dir = node.dir().join("ptp-ipam");
    let conf = move |j: usize| {
        json!({
            "cniVersion": "1.0.0",
            "name": format!("ptp-bench-{j}"),
            "type": "ptp",
            "ipMasq": false,
            "mtu": 1500,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": format!("10.{}.0.0/16", 100 + j) }]],
                "dataDir": ipam_dir,
            },
        })
        .to_string()
    };
    let host = node.netns().path().to_owned();
    let paths: Vec<std::path::PathBuf> = netns.iter().map(|n| n.path().to_owned()).collect();
    let (plugin_path, conf_text) = (plugin.clone(), conf(0));
    let add_one = move |i: usize, j: usize| -> Result<Duration> {
        let invocation = Invocation::new(&plugin, Command::Add)
            .container_id(format!("ptp-q{i}"))
            .netns(&paths[i])
            .ifname(format!("eth{j}"))
            .args(&[
                (K8S_POD_NAMESPACE, "bench"),
                (K8S_POD_NAME, &format!("q{i}")),
            ])
            .config(conf(j));
        let t = Instant::now();
        ovswire_netns::run(&host, || invocation.run())?
            .with_context(|| format!("ptp ADD q{i}:eth{j}"))?;
        Ok(t.elapsed())
    };
    // One ADD on its own first, as for ovswire (a pod of its own, not counted).
    let idle = node.pod("qidle")?;
    let idle_path = idle.path().to_owned();
    let idle_ms = {
        let t = Instant::now();
        let one = Invocation::new(&plugin_path, Command::Add)
            .container_id("ptp-qidle")
            .netns(&idle_path)
            .ifname("eth1")
            .args(&[(K8S_POD_NAMESPACE, "bench"), (K8S_POD_NAME, "qidle")])
            .config(conf_text.clone());
        ovswire_netns::run(node.netns().path(), || one.run())?.context("ptp ADD qidle:eth1")?;
        t.elapsed().as_secs_f64() * 1000.0
    };
    let (latencies, took) = all_at_once(pods, ifaces, add_one).await?;
    let mut r = Report::new("ptp");
    r.set("p50_ms", percentile(&latencies, 50));
    r.set("p99_ms", percentile(&latencies, 99));
    r.set("max_ms", percentile(&latencies, 100));
    r.set("idle_ms", (idle_ms * 100.0).round() / 100.0);
    r.set("adds_s", took);
    Ok(r)
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
    let paths: Vec<std::path::PathBuf> = netns.iter().map(|n| n.path().to_owned()).collect();
    let (plugin, add_conf, add_state) = (bins.plugin.clone(), conf.clone(), state_dir.clone());
    let (latencies, adds_s) = all_at_once(pods, ifaces, move |i, j| {
        let (pod, ifname) = (format!("p{i}"), format!("eth{j}"));
        add(&plugin, &add_conf, &add_state, &paths[i], &pod, &ifname)
    })
    .await?;
    let agent_cpu_ms = cpu_before.zip(cpu_ms(agent.pid())).map(|(a, b)| b - a);

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

    // The plugin's own share: exec to exit of a STATUS, which the agent answers at once.
    // (STATUS came with CNI 1.1.)
    let status_conf = json!({
        "cniVersion": "1.1.0",
        "name": "ovswire",
        "type": "ovswire-cni",
        "socket": agent.cni_socket(),
    })
    .to_string();
    let mut status_ms = Vec::with_capacity(20);
    for _ in 0..20 {
        let t = Instant::now();
        Invocation::new(&bins.plugin, Command::Status)
            .state_dir(&state_dir)
            .config(status_conf.clone())
            .run()
            .map_err(|e| anyhow::anyhow!("STATUS: {e}"))?;
        status_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report.set("plugin_ms", percentile(&sorted(&status_ms), 50));
    report.set(
        "plugin_bytes",
        std::fs::metadata(&bins.plugin).map(|m| m.len()).ok(),
    );
    drop(agent);

    progress(&format!(
        "baseline: the reference ptp plugin, {} ADDs, {pods} pods at once",
        pods * ifaces
    ));
    match ptp_baseline(&node, pods, ifaces).await {
        Ok(ptp) => {
            for (k, v) in ptp.fields() {
                report.set(&format!("ptp_{k}"), v.clone());
            }
        }
        Err(e) => report.set("ptp_p50_ms", format!("failed: {e:#}")),
    }
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
