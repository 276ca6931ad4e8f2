//! What an agent does while nothing changes: the OVSDB updates and flow changes it causes and
//! the CPU it uses over a window, watched from outside with Open vSwitch's own tools
//! (`ovsdb-client monitor` on the columns the agent writes, `ovs-ofctl monitor watch:` on the
//! bridge's flow table).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use ovswire_testbed::Node;

/// What the agent changed during the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Idle {
    /// The window, seconds.
    pub secs: u64,
    /// Rows of Bridge, Port and Interface inserted, deleted or modified in the columns the
    /// agent writes (ovs-vswitchd's own columns, like statistics, are not watched).
    pub ovsdb_changes: usize,
    /// Flows added, modified or deleted in the bridge's tables.
    pub flow_changes: usize,
    /// The agent's CPU time over the window, as a percentage of one core.
    pub agent_cpu_percent: f64,
}

/// The tables and columns the agent writes.
const WATCHED: [(&str, &str); 3] = [
    (
        "Bridge",
        "ports,external_ids,other_config,fail_mode,protocols,datapath_type",
    ),
    ("Port", "name,interfaces,external_ids"),
    (
        "Interface",
        "name,type,options,external_ids,ofport_request,mtu_request,bfd",
    ),
];

/// A watcher process, killed when dropped.
struct Watcher(Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Watcher {
    fn start(mut cmd: Command, what: &str) -> Result<Self> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        cmd.spawn()
            .map(Self)
            .with_context(|| format!("start {what}"))
    }

    /// Stops it and returns what it printed.
    fn finish(mut self) -> String {
        let _ = self.0.kill();
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        }
        out
    }
}

/// CPU seconds (user + system) of process `pid`.
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks / hz as f64)
}

/// Watches `secs` seconds of the agent `pid` on `node`, whose bridge is `bridge`.
pub async fn watch(node: &Node, bridge: &str, pid: u32, secs: u64) -> Result<Idle> {
    let db = format!("unix:{}", node.db_sock().display());
    let mut ovsdb = Vec::new();
    for (table, columns) in WATCHED {
        let mut cmd = Command::new("ovsdb-client");
        cmd.args([
            "--format=csv",
            "--no-headings",
            "monitor",
            &db,
            "Open_vSwitch",
        ])
        .args([table, columns]);
        ovsdb.push(Watcher::start(cmd, "ovsdb-client monitor")?);
    }
    let mgmt = node.rundir().join(format!("{bridge}.mgmt"));
    let ctl = node.dir().join("idle-monitor.ctl");
    let mut cmd = Command::new("ovs-ofctl");
    cmd.args(["-O", "OpenFlow13"])
        .arg(format!("--unixctl={}", ctl.display()))
        .args(["monitor", &format!("unix:{}", mgmt.display()), "watch:"]);
    let flows = Watcher::start(cmd, "ovs-ofctl monitor")?;
    // The watchers print what is there first; then the window starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_before = cpu_s(pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu_after = cpu_s(pid);

    let ovsdb_changes = ovsdb
        .into_iter()
        .map(|w| {
            w.finish()
                .lines()
                .filter(|l| {
                    let action = l.split(',').nth(1).unwrap_or("");
                    matches!(action, "insert" | "delete" | "new")
                })
                .count()
        })
        .sum();
    let flow_changes = changes_after_first_reply(&flows.finish());
    let agent_cpu_percent = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => ((b - a) / secs as f64 * 100.0 * 100.0).round() / 100.0,
        _ => f64::NAN,
    };
    Ok(Idle {
        secs,
        ovsdb_changes,
        flow_changes,
        agent_cpu_percent,
    })
}

/// Flow events in `ovs-ofctl monitor` output after its first reply (which lists the flows
/// already there).
fn changes_after_first_reply(out: &str) -> usize {
    let mut replies = 0;
    let mut events = 0;
    for line in out.lines() {
        if line.contains("FLOW_MONITOR reply") {
            replies += 1;
        } else if replies > 1 && line.contains("event=") {
            events += 1;
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flow_events_after_the_first_reply_count() {
        let out = "ONFST_FLOW_MONITOR reply (OF1.3) (xid=0x6):\n event=ADDED table=0 a\n \
                   event=ADDED table=0 b\nONFST_FLOW_MONITOR reply (OF1.3) (xid=0x0):\n \
                   event=MODIFIED table=0 a\n event=DELETED table=0 b\n";
        assert_eq!(changes_after_first_reply(out), 2);
        assert_eq!(changes_after_first_reply(""), 0);
    }
}
