//! `cni`: CNI ADD latency through the real `ovswire-cni` binary talking to a real
//! `ovswire-agent`, with every pod added at once the way kubelet starts a lab's pods.
//!
//! Each pod runs its ADDs one after the other (Multus attaches a pod's networks in order) while
//! all pods run concurrently. The figures are per ADD, process start included; `carrier_s` is
//! how long after the first ADD every linked interface had carrier, which shows that wiring
//! happens after ADD returns rather than inside it.
//!
//! [`Binaries`], [`AgentProcess`] and [`invoke_plugin`] are shared with the CNI conformance
//! suite (`tests/cni.rs`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ovswire_testbed::{Netns, Node, Testbed};
use serde_json::json;

use super::{Report, progress};
use crate::measure::secs_since;

/// The agent and plugin binaries of this build.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `ovswire-agent`.
    pub agent: PathBuf,
    /// `ovswire-cni`.
    pub plugin: PathBuf,
    /// The directory both are in (`target/<profile>`).
    pub dir: PathBuf,
}

impl Binaries {
    /// Finds the binaries next to the running executable: `target/<profile>/` for a binary,
    /// `target/<profile>/deps/` for a test.
    pub fn locate() -> Result<Self> {
        let exe = std::env::current_exe().context("find the running executable")?;
        let mut dir = exe.parent().context("the executable has no directory")?;
        if dir.ends_with("deps") {
            dir = dir.parent().context("deps/ has no parent")?;
        }
        let find = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if !path.is_file() {
                bail!(
                    "{} is missing: build it first with `cargo build --workspace` (same profile \
                     as this run)",
                    path.display()
                );
            }
            Ok(path)
        };
        Ok(Self {
            agent: find("ovswire-agent")?,
            plugin: find("ovswire-cni")?,
            dir: dir.to_owned(),
        })
    }
}

/// A real `ovswire-agent` running inside a node's network namespace against the node's OVS.
/// Killed when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    cni_socket: PathBuf,
    log: PathBuf,
}

impl AgentProcess {
    /// Starts the agent on `node` (bridge `ovsbr0`, userspace datapath) with an optional
    /// topology file's text, and waits until its CNI socket is up.
    pub fn start(node: &Node, bins: &Binaries, topology: Option<&str>) -> Result<Self> {
        let dir = node.dir();
        let cni_socket = dir.join("cni.sock");
        let log = dir.join("agent.log");
        let mut cmd = Command::new(&bins.agent);
        cmd.arg(format!("--ovsdb=unix:{}", node.db_sock().display()))
            .arg(format!("--ovs-rundir={}", node.rundir().display()))
            .args(["--bridge=ovsbr0", "--datapath-type=netdev", "--log=info"])
            .arg(format!("--cni-socket={}", cni_socket.display()))
            .arg(format!(
                "--wires-socket={}",
                dir.join("wires.sock").display()
            ))
            .arg(format!("--node-name={}", node.name()))
            .stdout(Stdio::null())
            .stderr(File::create(&log).context("create the agent's log file")?);
        if let Some(text) = topology {
            let file = dir.join("topology.yaml");
            std::fs::write(&file, text).context("write the topology file")?;
            cmd.arg(format!("--topology={}", file.display()));
        }
        let child = node.netns().spawn(cmd)?;
        let mut agent = Self {
            child,
            cni_socket,
            log,
        };
        agent.wait_ready()?;
        Ok(agent)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.cni_socket.exists() {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "ovswire-agent exited ({status}) before serving CNI; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "ovswire-agent did not serve CNI within 30 s; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The agent's CNI socket.
    pub fn cni_socket(&self) -> &Path {
        &self.cni_socket
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`) with `kill`.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .context("run kill")?;
        ensure!(status.success(), "kill -{name} {} failed", self.pid());
        Ok(())
    }

    /// Stops the agent with SIGTERM, as systemd or the kubelet would, and waits for it.
    pub fn stop(mut self) -> Result<()> {
        self.signal("TERM")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("ovswire-agent ignored SIGTERM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // A paused agent (SIGSTOP) is continued first so that it dies at once.
        let _ = self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the plugin once the way a runtime does: `CNI_*` variables, configuration on stdin.
pub fn invoke_plugin(plugin: &Path, env: &[(&str, &str)], stdin: &[u8]) -> Result<Output> {
    use std::io::Write;
    let mut child = Command::new(plugin)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", plugin.display()))?;
    child
        .stdin
        .take()
        .context("plugin stdin")?
        .write_all(stdin)
        .context("write the configuration to the plugin")?;
    child.wait_with_output().context("wait for the plugin")
}

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

/// The nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    let ms = sorted[rank - 1].as_secs_f64() * 1000.0;
    (ms * 100.0).round() / 100.0
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

    progress(&format!("{} ADDs, {pods} pods at once", pods * ifaces));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ns) in netns.iter().enumerate() {
        let (plugin, conf, path) = (bins.plugin.clone(), conf.clone(), ns.path().to_owned());
        tasks.spawn_blocking(move || -> Result<Vec<Duration>> {
            let netns = path.display().to_string();
            let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=p{i}");
            let container = format!("bench-{i}");
            (1..=ifaces)
                .map(|j| {
                    let ifname = format!("eth{j}");
                    let env = [
                        ("CNI_COMMAND", "ADD"),
                        ("CNI_CONTAINERID", container.as_str()),
                        ("CNI_NETNS", netns.as_str()),
                        ("CNI_IFNAME", ifname.as_str()),
                        ("CNI_ARGS", args.as_str()),
                        ("CNI_PATH", "/opt/cni/bin"),
                    ];
                    let t = Instant::now();
                    let out = invoke_plugin(&plugin, &env, conf.as_bytes())?;
                    let took = t.elapsed();
                    ensure!(
                        out.status.success(),
                        "ADD p{i}:{ifname} failed: {}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                    Ok(took)
                })
                .collect()
        });
    }
    let mut latencies = Vec::with_capacity(pods * ifaces);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.context("ADD task")??);
    }
    let adds_s = secs_since(start);
    latencies.sort();

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
    report.set("p50_ms", percentile_ms(&latencies, 50));
    report.set("p99_ms", percentile_ms(&latencies, 99));
    report.set("max_ms", percentile_ms(&latencies, 100));
    report.set("adds_s", adds_s);
    report.set("carrier_s", carrier_s);
    drop(agent);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&samples, 50), 50.0);
        assert_eq!(percentile_ms(&samples, 99), 99.0);
        assert_eq!(percentile_ms(&samples, 100), 100.0);
        assert_eq!(percentile_ms(&samples[..1], 99), 1.0);
    }

    #[test]
    fn topology_pairs_neighbours() {
        let t = topology(3, 2);
        assert!(t.contains("[p0:eth1, p1:eth1]") && t.contains("[p0:eth2, p1:eth2]"));
        assert!(!t.contains("p2"), "an odd pod out stays unlinked");
    }
}
