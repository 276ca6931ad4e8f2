//! A real `ovswire-agent` and `ovswire-cni` of this build, run the way a node runs them: shared
//! by the benchmarks and the end-to-end suites.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ovswire_cni::spec::{K8S_POD_NAME, K8S_POD_NAMESPACE, cni_args};
use ovswire_testbed::Node;

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
    wires_socket: PathBuf,
    log: PathBuf,
}

impl AgentProcess {
    /// Starts the agent on `node` (bridge `ovsbr0`, userspace datapath) with an optional
    /// topology file's text, and waits until its CNI socket is up.
    pub fn start(node: &Node, bins: &Binaries, topology: Option<&str>) -> Result<Self> {
        Self::start_with_args(node, bins, topology, &[])
    }

    /// Like [`Self::start`], with `extra` flags after the usual ones (cross-node flags, for
    /// example).
    pub fn start_with_args(
        node: &Node,
        bins: &Binaries,
        topology: Option<&str>,
        extra: &[String],
    ) -> Result<Self> {
        let dir = node.dir();
        let cni_socket = dir.join("cni.sock");
        let wires_socket = dir.join("wires.sock");
        let log = dir.join("agent.log");
        // A killed agent leaves its sockets behind; the wait below must see the new ones.
        for socket in [&cni_socket, &wires_socket] {
            if socket.exists() && std::os::unix::net::UnixStream::connect(socket).is_err() {
                std::fs::remove_file(socket)
                    .with_context(|| format!("remove stale {}", socket.display()))?;
            }
        }
        let mut cmd = Command::new(&bins.agent);
        cmd.arg(format!("--ovsdb=unix:{}", node.db_sock().display()))
            .arg(format!("--ovs-rundir={}", node.rundir().display()))
            .args(["--bridge=ovsbr0", "--datapath-type=netdev"])
            // `OVSWIRE_TEST_AGENT_LOG=ovswire_agent=debug` to see the agents' rounds.
            .arg(format!(
                "--log={}",
                std::env::var("OVSWIRE_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into())
            ))
            .arg(format!("--cni-socket={}", cni_socket.display()))
            .arg(format!("--wires-socket={}", wires_socket.display()))
            .arg(format!("--node-name={}", node.name()))
            .args(extra)
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
            wires_socket,
            log,
        };
        agent.wait_ready()?;
        Ok(agent)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(self.cni_socket.exists() && self.wires_socket.exists()) {
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

    /// The agent's Wires socket.
    pub fn wires_socket(&self) -> &Path {
        &self.wires_socket
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

/// A Cni client of an agent's socket.
pub async fn cni_client(
    socket: &Path,
) -> Result<ovswire_proto::v1::cni_client::CniClient<tonic::transport::Channel>> {
    let channel = ovswire_proto::unix_channel(socket, Duration::from_secs(5))
        .await
        .with_context(|| format!("connect to the Cni API at {}", socket.display()))?;
    Ok(ovswire_proto::v1::cni_client::CniClient::new(channel))
}

/// CNI ADD of interface `ifname` of pod `pod` in lab (Kubernetes namespace) `lab`, living in
/// `netns`, straight through an agent's Cni gRPC API (no plugin process); the container id is
/// `<lab>-<pod>`.
pub async fn grpc_add(
    cni: &mut ovswire_proto::v1::cni_client::CniClient<tonic::transport::Channel>,
    lab: &str,
    pod: &str,
    netns: &Path,
    ifname: &str,
) -> Result<()> {
    let resp = cni
        .add(ovswire_proto::v1::CniRequest {
            container_id: format!("{lab}-{pod}"),
            netns: netns.display().to_string(),
            ifname: ifname.into(),
            args: cni_args(&[(K8S_POD_NAMESPACE, lab), (K8S_POD_NAME, pod)]),
            path: String::new(),
            network_config: br#"{"cniVersion":"1.0.0","name":"ovswire","type":"ovswire-cni"}"#
                .to_vec(),
        })
        .await?
        .into_inner();
    if let Some(e) = resp.error {
        bail!("ADD {lab}/{pod}:{ifname} failed: {} ({})", e.msg, e.code);
    }
    Ok(())
}
