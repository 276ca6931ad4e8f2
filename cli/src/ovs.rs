//! The Open vSwitch a local lab runs on: the machine's own when one is running, otherwise a
//! private one that ovswire starts under `/run/ovswire/ovs` and stops with the last lab.
//!
//! ovswire never configures OVS through its command-line tools; it only starts the two daemons
//! (`ovsdb-server`, `ovs-vswitchd`) when the machine runs none, creating their database file
//! from the installed schema itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::lab::OvsChoice;

/// Where ovswire's own OVS keeps its database, sockets, pid files and logs.
pub fn own_dir() -> PathBuf {
    crate::lab::state_dir().join("ovs")
}
/// Where distributions install the database schema.
const SCHEMAS: [&str; 2] = [
    "/usr/share/openvswitch/vswitch.ovsschema",
    "/usr/local/share/openvswitch/vswitch.ovsschema",
];
/// Where a system OVS listens.
const SYSTEM_RUNDIRS: [&str; 2] = ["/run/openvswitch", "/var/run/openvswitch"];

/// How to reach an OVS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ovs {
    /// The OVSDB address, `unix:PATH`.
    pub db: String,
    /// The directory holding the bridges' `.mgmt` sockets.
    pub rundir: PathBuf,
    /// Whether ovswire started it (and so stops it when no lab uses it any more).
    pub own: bool,
    /// The datapath bridges get: `system` when the kernel module is loaded, else `netdev`.
    pub datapath: String,
}

impl Ovs {
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

/// Whether something answers on the unix socket `path`.
fn answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// The OVS to use: one given, the system's when it runs (for [`OvsChoice::Auto`]), or
/// ovswire's own, started when it is not running. `progress` is told what happens.
pub fn choose(choice: &OvsChoice, progress: &dyn Fn(&str)) -> Result<Ovs> {
    match choice {
        OvsChoice::At { db, rundir } => {
            return Ok(Ovs {
                db: db.clone(),
                rundir: rundir.clone(),
                own: false,
                datapath: datapath().into(),
            });
        }
        OvsChoice::Auto => {
            for dir in SYSTEM_RUNDIRS.map(Path::new) {
                if answers(&dir.join("db.sock")) {
                    return Ok(Ovs::at(dir, false));
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
    Ok(Ovs::at(&own, true))
}

/// Starts `ovsdb-server` and `ovs-vswitchd` with everything under `dir`.
fn start(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let db = dir.join("conf.db");
    if !db.exists() {
        let schema = SCHEMAS.iter().map(Path::new).find(|p| p.exists()).context(
            "the Open vSwitch database schema (vswitch.ovsschema) is not installed; \
                 install Open vSwitch (`apt install openvswitch-switch`, or run scripts/setup)",
        )?;
        let text = std::fs::read_to_string(schema)
            .with_context(|| format!("read {}", schema.display()))?;
        create_db(&db, &text)?;
    }
    for stale in ["db.sock", "ovsdb-server.ctl", "ovs-vswitchd.ctl"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let arg = |flag: &str, file: &str| format!("--{flag}={}", dir.join(file).display());
    daemon(
        Command::new("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", dir.join("db.sock").display()))
            .arg(arg("unixctl", "ovsdb-server.ctl"))
            .arg(arg("pidfile", "ovsdb-server.pid"))
            .arg(arg("log-file", "ovsdb-server.log")),
        dir,
        "ovsdb-server",
    )?;
    wait_for(&dir.join("db.sock"), "ovsdb-server", dir)?;
    daemon(
        Command::new("ovs-vswitchd")
            .arg(format!("unix:{}", dir.join("db.sock").display()))
            .arg(arg("unixctl", "ovs-vswitchd.ctl"))
            .arg(arg("pidfile", "ovs-vswitchd.pid"))
            .arg(arg("log-file", "ovs-vswitchd.log")),
        dir,
        "ovs-vswitchd",
    )?;
    wait_for(&dir.join("ovs-vswitchd.ctl"), "ovs-vswitchd", dir)
}

/// Runs an OVS daemon detached, with its run, log and database directories all `dir`.
fn daemon(cmd: &mut Command, dir: &Path, name: &str) -> Result<()> {
    let out = cmd
        .args(["--detach", "--no-chdir", "-vconsole:off"])
        .env("OVS_RUNDIR", dir)
        .env("OVS_LOGDIR", dir)
        .env("OVS_DBDIR", dir)
        .output()
        .with_context(|| {
            format!("start {name} (is Open vSwitch installed? run scripts/setup or `apt install openvswitch-switch`)")
        })?;
    if !out.status.success() {
        bail!(
            "{name} did not start ({}): {}; its log is {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            dir.join(format!("{name}.log")).display()
        );
    }
    Ok(())
}

fn wait_for(path: &Path, name: &str, dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers(path) {
        if Instant::now() > deadline {
            bail!(
                "{name} did not open {} within 20 s; see {}",
                path.display(),
                dir.join(format!("{name}.log")).display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Writes an empty standalone OVSDB database file for `schema` (what `ovsdb-tool create`
/// does): a header `OVSDB JSON <length> <sha1>` and the schema as one JSON record, both
/// covering the record with its newline.
pub fn create_db(path: &Path, schema: &str) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(schema).context("the OVSDB schema is not valid JSON")?;
    // The length and the hash cover the record's trailing newline.
    let record = format!("{value}\n");
    let sha1 = sha1_smol::Sha1::from(record.as_bytes())
        .digest()
        .to_string();
    let tmp = path.with_extension("db.tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    write!(f, "OVSDB JSON {} {sha1}\n{record}", record.len())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("create {}", path.display()))
}

/// Stops ovswire's own OVS (when it runs) and removes its directory.
pub fn stop_own() -> Result<()> {
    let dir = own_dir();
    for name in ["ovs-vswitchd", "ovsdb-server"] {
        let pidfile = dir.join(format!("{name}.pid"));
        let Ok(text) = std::fs::read_to_string(&pidfile) else {
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
