//! The Open vSwitch a local lab runs on: the machine's own when one is running, otherwise a
//! private one that ovswire starts under `/run/ovswire/ovs` and stops with the last lab.
//!
//! ovswire never configures OVS through its command-line tools; it only starts the two daemons
//! (`ovsdb-server`, `ovs-vswitchd`) when the machine runs none, detached, with the database file
//! and command lines of [`ovswire_netns::ovs`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ovswire_netns::ovs::{Daemon, Files, answers};
use serde::{Deserialize, Serialize};

/// Which Open vSwitch a lab runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OvsChoice {
    /// The machine's own when it runs one, else ovswire's own.
    Auto,
    /// ovswire's own (started when not running).
    Own,
    /// This OVSDB address and bridge socket directory.
    At {
        /// `unix:PATH` or `tcp:IP:PORT`.
        db: String,
        /// The directory holding the bridges' `.mgmt` sockets.
        rundir: PathBuf,
    },
}

/// Where ovswire's own OVS keeps its database, sockets, pid files and logs.
pub fn own_dir() -> PathBuf {
    crate::paths::state_dir().join("ovs")
}

/// Where a system OVS listens.
const SYSTEM_RUNDIRS: [&str; 2] = ["/run/openvswitch", "/var/run/openvswitch"];

/// How to reach an OVS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsSite {
    /// The OVSDB address, `unix:PATH`.
    pub db: String,
    /// The directory holding the bridges' `.mgmt` sockets.
    pub rundir: PathBuf,
    /// Whether ovswire started it (and so stops it when no lab uses it any more).
    pub own: bool,
    /// The datapath bridges get: `system` when the kernel module is loaded, else `netdev`.
    pub datapath: String,
}

impl OvsSite {
    fn at(rundir: &Path, own: bool) -> Self {
        Self {
            db: format!("unix:{}", rundir.join("db.sock").display()),
            rundir: rundir.to_owned(),
            own,
            datapath: datapath().into(),
        }
    }
}

/// The datapath that works on this machine.
fn datapath() -> &'static str {
    if Path::new("/sys/module/openvswitch").exists() {
        "system"
    } else {
        "netdev"
    }
}

/// The OVS to use: one given, the system's when it runs (for [`OvsChoice::Auto`]), or
/// ovswire's own, started when it is not running. `progress` is told what happens.
pub fn choose(choice: &OvsChoice, progress: &dyn Fn(&str)) -> Result<OvsSite> {
    match choice {
        OvsChoice::At { db, rundir } => {
            return Ok(OvsSite {
                db: db.clone(),
                rundir: rundir.clone(),
                own: false,
                datapath: datapath().into(),
            });
        }
        OvsChoice::Auto => {
            for dir in SYSTEM_RUNDIRS.map(Path::new) {
                if answers(&dir.join("db.sock")) {
                    return Ok(OvsSite::at(dir, false));
                }
            }
        }
        OvsChoice::Own => {}
    }
    let own = own_dir();
    if !answers(&own.join("db.sock")) {
        progress(&format!(
            "starting ovswire's own Open vSwitch under {}",
            own.display()
        ));
        start(&own)?;
    }
    Ok(OvsSite::at(&own, true))
}

/// How long each daemon gets to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `ovsdb-server` and `ovs-vswitchd` with everything under `dir`.
fn start(dir: &Path) -> Result<()> {
    let files = Files::new(dir);
    files.ensure_db()?;
    for stale in [
        files.db_sock(),
        files.ctl(Daemon::OvsdbServer),
        files.ctl(Daemon::OvsVswitchd),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    for daemon in [Daemon::OvsdbServer, Daemon::OvsVswitchd] {
        detached(&files, daemon)?;
        files.wait(daemon, START_TIMEOUT)?;
    }
    Ok(())
}

/// Runs an OVS daemon detached: it outlives this command and serves every lab until the last
/// one is down.
fn detached(files: &Files, daemon: Daemon) -> Result<()> {
    let name = daemon.program();
    let out = files
        .command(daemon)
        .args(["--detach", "--no-chdir"])
        .output()
        .with_context(|| {
            format!("start {name} (is Open vSwitch installed? run scripts/setup or `apt install openvswitch-switch`)")
        })?;
    if !out.status.success() {
        bail!(
            "{name} did not start ({}): {}; its log is {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            files.log(daemon).display()
        );
    }
    Ok(())
}

/// Stops ovswire's own OVS (when it runs) and removes its directory.
pub fn stop_own() -> Result<()> {
    let dir = own_dir();
    let files = Files::new(&dir);
    for daemon in [Daemon::OvsVswitchd, Daemon::OvsdbServer] {
        let name = daemon.program();
        let Ok(text) = std::fs::read_to_string(files.pidfile(daemon)) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            continue;
        };
        crate::process::terminate(pid, name, Duration::from_secs(10))?;
    }
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
