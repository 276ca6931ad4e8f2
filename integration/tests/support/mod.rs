//! The CNI conformance harness: a private OVS node, the real `ovswire-agent` in it, and the
//! Go `cni-driver` (libcni, the runtimes' own library) calling the real `ovswire-cni`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ovswire_integration::agent::{AgentProcess, Binaries};
use ovswire_testbed::{Netns, Node, Testbed};
use serde_json::{Value, json};

/// The CNI spec versions under test.
pub(crate) const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Builds `integration/cni-driver` once per test run (skipped when the binary is newer than
/// its source) and returns its path.
fn driver() -> Result<PathBuf> {
    static DRIVER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DRIVER
        .get_or_init(|| build_driver().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_driver() -> Result<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-driver");
    let out = Binaries::locate()?.dir.join("cni-driver");
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    if modified(&out).is_some() && modified(&out) >= modified(&src.join("main.go")) {
        return Ok(out);
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .output()
        .context("run `go build` (install golang-go and golang-github-appc-cni-dev)")?;
    ensure!(
        built.status.success(),
        "building the CNI driver failed (needs golang-go and golang-github-appc-cni-dev):\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::rename(&tmp, &out).context("install the CNI driver")?;
    Ok(out)
}

/// One CNI invocation's parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    /// `CNI_CONTAINERID`.
    pub(crate) container: String,
    /// `CNI_NETNS`.
    pub(crate) netns: String,
    /// `CNI_IFNAME`.
    pub(crate) ifname: String,
    /// `CNI_ARGS`.
    pub(crate) args: String,
    /// Bypass libcni and send the configuration file byte for byte.
    pub(crate) raw: bool,
    /// GC: attachments to keep, as `ID/IFNAME`.
    pub(crate) valid: Vec<String>,
}

impl Call {
    /// A call for interface `eth1` of pod `pod` (lab `lab`) in `netns`, container id `id`.
    pub(crate) fn pod(id: &str, pod: &str, netns: &Netns) -> Self {
        Self {
            container: id.into(),
            netns: netns.path().display().to_string(),
            ifname: "eth1".into(),
            args: format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"
            ),
            ..Self::default()
        }
    }
}

/// What the driver printed.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Exit status 0.
    pub(crate) ok: bool,
    /// stdout as JSON (`Null` when empty): the result, or the error `{code, msg, details}`.
    pub(crate) json: Value,
    /// The plugin's own stdout, byte for byte.
    pub(crate) plugin_stdout: Vec<u8>,
}

impl Outcome {
    /// The CNI error code, or a panic naming the unexpected success.
    pub(crate) fn code(&self) -> u64 {
        assert!(!self.ok, "expected an error, got {}", self.json);
        self.json["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code in {}", self.json))
    }

    /// The result, or a panic with the error.
    pub(crate) fn result(&self) -> &Value {
        assert!(self.ok, "expected success, got {}", self.json);
        &self.json
    }

    /// The plugin's stdout as JSON.
    pub(crate) fn plugin_json(&self) -> Value {
        serde_json::from_slice(&self.plugin_stdout).unwrap_or(Value::Null)
    }
}

/// A node with a running agent and a CNI bin dir holding `ovswire-cni` (and `tuning`, for
/// chains).
#[derive(Debug)]
pub(crate) struct Harness {
    /// The agent; `None` once stopped.
    pub(crate) agent: Option<AgentProcess>,
    /// The node.
    pub(crate) node: Node,
    bins: Binaries,
    bin_dir: PathBuf,
    socket: PathBuf,
    files: AtomicUsize,
}

impl Harness {
    /// Starts a node named `name` and the agent on it with an optional topology.
    pub(crate) fn start(name: &str, topology: Option<&str>) -> Result<Self> {
        let bins = Binaries::locate()?;
        driver()?;
        let node = Testbed::node(name)?;
        let agent = AgentProcess::start(&node, &bins, topology)?;
        let bin_dir = node.dir().join("bin");
        std::fs::create_dir(&bin_dir)?;
        std::os::unix::fs::symlink(&bins.plugin, bin_dir.join("ovswire-cni"))?;
        std::os::unix::fs::symlink("/usr/lib/cni/tuning", bin_dir.join("tuning"))?;
        Ok(Self {
            socket: agent.cni_socket().to_owned(),
            agent: Some(agent),
            node,
            bins,
            bin_dir,
            files: AtomicUsize::new(0),
        })
    }

    /// The agent, while it runs.
    pub(crate) fn agent(&self) -> &AgentProcess {
        self.agent.as_ref().expect("the agent is running")
    }

    /// Stops the agent with SIGTERM.
    pub(crate) fn stop_agent(&mut self) -> Result<()> {
        self.agent
            .take()
            .context("the agent is not running")?
            .stop()
    }

    /// Starts the agent again on the same node (no topology).
    pub(crate) fn restart_agent(&mut self) -> Result<()> {
        ensure!(self.agent.is_none(), "stop the agent first");
        self.agent = Some(AgentProcess::start(&self.node, &self.bins, None)?);
        Ok(())
    }

    /// Writes a configuration file: `{cniVersion, name, type, socket}` plus `extra`'s fields.
    pub(crate) fn conf(&self, version: &str, extra: Value) -> PathBuf {
        let mut conf = json!({
            "cniVersion": version,
            "name": "ovswire",
            "type": "ovswire-cni",
            "socket": self.socket,
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut conf, extra) {
            c.extend(e);
        }
        self.write_conf(conf.to_string().as_bytes())
    }

    /// Writes a configuration file with exactly these bytes.
    pub(crate) fn write_conf(&self, bytes: &[u8]) -> PathBuf {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        let path = self.node.dir().join(format!("conf-{n}.json"));
        std::fs::write(&path, bytes).expect("write a configuration file");
        path
    }

    /// Runs `cni-driver <command>` with configuration `conf`.
    pub(crate) fn cni(&self, command: &str, conf: &Path, call: &Call) -> Outcome {
        self.try_cni(command, conf, call)
            .unwrap_or_else(|e| panic!("{command}: {e:#}"))
    }

    fn try_cni(&self, command: &str, conf: &Path, call: &Call) -> Result<Outcome> {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        let plugin_out = self.node.dir().join(format!("plugin-stdout-{n}"));
        let mut cmd = Command::new(driver()?);
        cmd.arg(command)
            .arg("--conf")
            .arg(conf)
            .args(["--netns", &call.netns])
            .args(["--container", &call.container])
            .args(["--ifname", &call.ifname])
            .args(["--args", &call.args])
            .arg("--bin-dir")
            .arg(&self.bin_dir)
            .arg("--cache-dir")
            .arg(self.node.dir().join("cache"))
            .arg("--plugin-stdout")
            .arg(&plugin_out)
            .args(["--valid", &call.valid.join(",")])
            // The agent's socket is in the node's directory; libcni passes this on.
            .env(ovswire_cni::STATE_DIR_VAR, self.node.dir());
        if call.raw {
            cmd.arg("--raw");
        }
        let out = cmd.output().context("run cni-driver")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(stdout.trim())
                .with_context(|| format!("driver printed non-JSON {stdout:?}"))?
        };
        Ok(Outcome {
            ok: out.status.success(),
            json,
            plugin_stdout: std::fs::read(&plugin_out).unwrap_or_default(),
        })
    }

    /// Waits up to 30 s for `cond`.
    pub(crate) fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            if Instant::now() > deadline {
                let log = self
                    .agent
                    .as_ref()
                    .map(AgentProcess::log)
                    .unwrap_or_default();
                bail!("timed out waiting for {what}; agent log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// The pod-side entry (with a `sandbox`) of a result's interfaces.
pub(crate) fn pod_interface<'a>(result: &'a Value, ifname: &str) -> &'a Value {
    result["interfaces"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|i| i["name"] == ifname && i.get("sandbox").is_some())
        })
        .unwrap_or_else(|| panic!("no sandbox interface {ifname} in {result}"))
}

/// A MAC as CNI results write it.
pub(crate) fn mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}
