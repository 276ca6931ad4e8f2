//! The processes a lab runs on this machine beside its nodes: its agent (`ovswire-agent`,
//! which wires the lab on Open vSwitch) and its supervisor (`ovswire lab supervise`, which
//! rewires container nodes the engine restarts). Both run detached, in their own process group,
//! with their logs in the lab's directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::{LabState, dir};
use crate::ovs::OvsSite;
use crate::process;

/// Where a binary of this installation is: next to `ovswire`, else on `PATH`.
pub(super) fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("find the running executable")?;
    if let Some(dir) = exe.parent()
        && dir.join(name).is_file()
    {
        return Ok(dir.join(name));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "{name} is not installed next to {} nor on PATH; build the workspace \
                 (`cargo build --release`) or install it",
                exe.display()
            )
        })
}

/// Starts the lab's agent on `ovs` with `topology`, and waits until it serves.
pub(super) async fn start_agent(st: &mut LabState, ovs: &OvsSite, topology: &Path) -> Result<()> {
    let agent = binary("ovswire-agent")?;
    let d = dir(&st.name);
    let log_path = d.join("agent.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let dpid = ovswire_core::naming::datapath_id(&format!("{host}/{}", st.name));
    let mut cmd = std::process::Command::new(&agent);
    cmd.arg(format!("--ovsdb={}", ovs.db))
        .arg(format!("--ovs-rundir={}", ovs.rundir.display()))
        .arg(format!("--bridge={}", st.bridge))
        .arg(format!("--datapath-type={}", ovs.datapath))
        .arg(format!("--datapath-id={dpid:016x}"))
        .arg(format!("--topology={}", topology.display()))
        .arg(format!("--cni-socket={}", st.cni_socket().display()))
        .arg(format!("--wires-socket={}", st.wires_socket().display()))
        .arg(format!("--node-name={host}"))
        .arg("--host-endpoints")
        // Its log is for people: errors without Rust backtraces.
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // Its own process group: a Ctrl-C at the terminal stops `ovswire`, not the lab's agent.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", agent.display()))?;
    st.agent_pid = Some(child.id() as i32);
    st.save()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let answers = |p: &Path| std::os::unix::net::UnixStream::connect(p).is_ok();
    while !(answers(&st.cni_socket()) && answers(&st.wires_socket())) {
        if let Some(status) = child.try_wait()? {
            st.agent_pid = None;
            st.save()?;
            bail!(
                "the lab's agent exited ({status}); the end of its log ({}):\n{}",
                log_path.display(),
                tail(&log_path, 10)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the lab's agent did not serve within 30 s; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Stops the lab's agent (the wiring stays in OVS: a new agent adopts it).
pub(super) fn stop_agent(st: &mut LabState) -> Result<()> {
    if let Some(pid) = st.agent_pid {
        process::terminate(pid, "the lab's agent", Duration::from_secs(10))?;
    }
    st.agent_pid = None;
    st.save()
}

/// The last `lines` lines of the file at `path`.
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts `ovswire lab supervise LAB` for the lab, unless it runs.
pub(super) fn start_supervisor(st: &mut LabState) -> Result<()> {
    if st.supervisor_pid.is_some_and(process::alive) {
        return Ok(());
    }
    let exe = std::env::current_exe().context("find the running executable")?;
    let log_path = dir(&st.name).join("supervisor.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["lab", "supervise", &st.name])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().context("start the lab's supervisor")?;
    st.supervisor_pid = Some(child.id() as i32);
    st.save()
}

/// Stops the lab's supervisor.
pub(super) fn stop_supervisor(st: &mut LabState) -> Result<()> {
    if let Some(pid) = st.supervisor_pid {
        process::terminate(pid, "the lab's supervisor", Duration::from_secs(10))?;
    }
    st.supervisor_pid = None;
    st.save()
}
