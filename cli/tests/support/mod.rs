//! What the `ovswire` command tests share: running the CLI inside a testbed node with its own
//! lab state, unique lab names, and the checks of what a lab made.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ovswire_testbed::{Netns, Node};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A unique lab name per test and process (network namespaces are machine-wide).
pub fn lab_name(tag: &str) -> String {
    format!(
        "t{}{tag}{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `ovswire` inside a namespace (or the test's own) with the lab state kept in `state`.
pub struct Cli<'a> {
    /// The network namespace it runs in; `None`: the test's own, the machine's.
    pub ns: Option<&'a Netns>,
    pub state: PathBuf,
    /// Extra `lab up` arguments choosing the OVS.
    pub ovs: Vec<String>,
    pub lab: String,
    /// A mount namespace to run in (see [`PrivateMounts`]), else the test's own.
    pub mounts: Option<&'a PrivateMounts>,
}

impl<'a> Cli<'a> {
    /// The CLI inside `node`, on the node's own OVS, for lab `lab`.
    pub fn on(node: &'a Node, lab: &str) -> Self {
        Self {
            ns: Some(node.netns()),
            state: node.dir().join("state"),
            ovs: vec![
                format!("--ovsdb=unix:{}", node.db_sock().display()),
                format!("--ovs-rundir={}", node.rundir().display()),
            ],
            lab: lab.to_owned(),
            mounts: None,
        }
    }

    /// The CLI inside `ns` on ovswire's own OVS, which it starts (and stops) under `state`.
    pub fn own(ns: &'a Netns, state: &Path, lab: &str) -> Self {
        Self {
            ns: Some(ns),
            state: state.to_owned(),
            ovs: vec!["--own-ovs".into()],
            lab: lab.to_owned(),
            mounts: None,
        }
    }

    /// The CLI in the machine's network namespace, where the container engine's networks are,
    /// on ovswire's own OVS, which it starts (and stops) under `state`.
    pub fn in_host(state: &Path, lab: &str) -> Self {
        Self {
            ns: None,
            state: state.to_owned(),
            ovs: vec!["--own-ovs".into()],
            lab: lab.to_owned(),
            mounts: None,
        }
    }

    /// Starts `cmd` where this CLI runs.
    pub fn spawn(&self, mut cmd: Command) -> std::process::Child {
        match self.ns {
            Some(ns) => ns.spawn(cmd).expect("start a command in the namespace"),
            None => cmd.spawn().expect("start a command"),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let bin = env!("CARGO_BIN_EXE_ovswire");
        let mut cmd = match self.mounts {
            None => Command::new(bin),
            Some(m) => m.command(bin),
        };
        cmd.args(args).env("OVSWIRE_STATE_DIR", &self.state);
        let child = self.spawn({
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd
        });
        child.wait_with_output().expect("wait for ovswire")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ovswire {args:?} failed:\nstdout: {}\nstderr: {}\nagent log: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.state.join("labs").join(&self.lab).join("agent.log"))
                .unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the lab's agent with SIGKILL and waits until it is gone.
    pub fn kill_agent(&self) {
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.state.join("labs").join(&self.lab).join("lab.json"))
                .unwrap(),
        )
        .unwrap();
        let agent = state["agent_pid"].as_i64().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(agent),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_until("the agent to die", || {
            let stat = std::fs::read_to_string(format!("/proc/{agent}/stat")).unwrap_or_default();
            stat.is_empty() || stat.contains(") Z")
        });
    }

    /// `lab up FILE` on this CLI's OVS, which must succeed; its output.
    pub fn up(&self, file: &Path) -> String {
        self.ok(&self.up_args(file))
    }

    /// `lab up FILE` on this CLI's OVS, however it ends.
    pub fn try_up(&self, file: &Path) -> Output {
        self.run(&self.up_args(file))
    }

    fn up_args<'f>(&'f self, file: &'f Path) -> Vec<&'f str> {
        let mut args = vec!["lab", "up", file.to_str().unwrap()];
        args.extend(self.ovs.iter().map(String::as_str));
        args
    }
}

impl Drop for Cli<'_> {
    /// Whatever happened, the lab goes.
    fn drop(&mut self) {
        if self.state.join("labs").join(&self.lab).exists() {
            let _ = self.run(&["lab", "down", &self.lab]);
        }
    }
}

/// A mount namespace of the test's own in which `/run/netns` is a plain directory, as on a
/// machine where nothing has made it a mount point yet (the testbed has, for the test's own
/// mount namespace). It lives as long as a `sleep` inside it; commands enter it with `nsenter`.
pub struct PrivateMounts {
    sleeper: std::process::Child,
    /// Namespace files made inside it show up in the shared directory as plain files.
    prefix: String,
}

impl PrivateMounts {
    pub fn new(prefix: &str) -> Self {
        use std::io::BufRead;
        let mut sleeper = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("umount -l /run/netns 2>/dev/null; echo ready; exec sleep infinity")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run unshare");
        let mut ready = String::new();
        std::io::BufReader::new(sleeper.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        Self {
            sleeper,
            prefix: prefix.to_owned(),
        }
    }

    /// `program` to be run inside.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.sleeper.id().to_string(), "-m", "--", program]);
        cmd
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .expect("run nsenter")
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        for entry in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&self.prefix)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

pub fn netns_exec(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("run ip netns exec")
}

pub fn pings(ns: &str, addr: &str) -> bool {
    netns_exec(ns, &["ping", "-c", "1", "-W", "2", addr])
        .status
        .success()
}

pub fn no_carrier(ns: &str, ifname: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "link", "show", ifname])
        .output()
        .expect("run ip link show");
    String::from_utf8_lossy(&out.stdout).contains("NO-CARRIER")
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
