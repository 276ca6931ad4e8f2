//! A private Open vSwitch inside its own network namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use ovswire_netns::link::{self, IfaceState, VethEnd};
use ovswire_netns::ovs::{Daemon, Files};

use crate::netns::{self, Netns};
use crate::{DIR_PREFIX, Error, PREFIX, Result};

/// How long a daemon gets to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
static NEXT: AtomicU32 = AtomicU32::new(0);

/// One emulated host: a network namespace running its own `ovsdb-server` and `ovs-vswitchd`.
///
/// Dropping it stops both daemons and removes the namespace, its pods and its directory.
#[derive(Debug)]
pub struct Node {
    name: String,
    tag: String,
    // Declared before `dir` and `netns` so that daemons stop before their files go away.
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    netns: Netns,
    dir: tempfile::TempDir,
}

impl Node {
    pub(crate) fn start(name: &str) -> Result<Self> {
        crate::leaks::reap_stale_once();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = tag(n);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-{n}-", std::process::id()))
            .tempdir()
            .map_err(|e| Error::io("create the node's temp dir", e))?;
        let netns = Netns::create(&format!("{tag}-{name}"))?;
        let mut node = Self {
            name: name.to_owned(),
            tag,
            ovsdb: None,
            vswitchd: None,
            netns,
            dir,
        };
        node.files().ensure_db()?;
        node.start_ovsdb()?;
        node.vsctl(&["--no-wait", "init"])?;
        node.start_vswitchd()?;
        Ok(node)
    }

    /// The name given to [`crate::Testbed::node`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's network namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The node's private directory (database, sockets, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The OVS run directory, where `<bridge>.mgmt` OpenFlow sockets appear.
    pub fn rundir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the node's OVS keeps its files. Tests and benchmarks read `vswitchd.pid`,
    /// `ovsdb.ctl` and `vswitchd.log` there, hence the short names.
    fn files(&self) -> Files {
        Files::new(self.dir.path()).with_stems("ovsdb", "vswitchd")
    }

    /// The unix socket of the node's `ovsdb-server`.
    pub fn db_sock(&self) -> PathBuf {
        self.files().db_sock()
    }

    /// The OpenFlow management socket of `bridge`.
    pub fn mgmt_sock(&self, bridge: &str) -> PathBuf {
        self.dir.path().join(format!("{bridge}.mgmt"))
    }

    /// Runs `ovs-vsctl` against this node's database (an oracle for tests); its stdout.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        self.vsctl_within(60, args)
    }

    /// Like [`Self::vsctl`], giving `ovs-vsctl` `secs` seconds (its `--timeout`) instead of 60:
    /// one command line with thousands of ports takes minutes.
    pub fn vsctl_within(&self, secs: u32, args: &[&str]) -> Result<String> {
        let db = format!("--db=unix:{}", self.db_sock().display());
        let timeout = format!("--timeout={secs}");
        let mut all = vec![db.as_str(), timeout.as_str()];
        all.extend_from_slice(args);
        let out = Command::new("ovs-vsctl")
            .args(&all)
            .output()
            .map_err(|e| Error::io("run ovs-vsctl", e))?;
        netns::checked("ovs-vsctl", args, out)
    }

    /// Runs `ovs-ofctl` against this node's bridges (an oracle for tests); its stdout.
    pub fn ofctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("ovs-ofctl")
            .args(args)
            .env("OVS_RUNDIR", self.rundir())
            .output()
            .map_err(|e| Error::io("run ovs-ofctl", e))?;
        netns::checked("ovs-ofctl", args, out)
    }

    /// Adds bridge `name` the way ovswire runs it: userspace datapath, `fail_mode=secure`,
    /// OpenFlow 1.3 and 1.4, a pinned datapath id.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "Bridge",
            name,
            "datapath_type=netdev",
            "fail_mode=secure",
            "protocols=OpenFlow13,OpenFlow14",
            "other_config:datapath-id=0000000000000001",
        ])?;
        Ok(())
    }

    /// Creates a veth pair inside the node's namespace, both ends up.
    pub fn veth(&self, a: &str, b: &str) -> Result<()> {
        self.netns.veth(a, b)
    }

    /// The kernel's view of link `ifname` in the node's namespace.
    pub fn link_state(&self, ifname: &str) -> Result<IfaceState> {
        self.netns.link_state(ifname)
    }

    /// Creates a pod: a network namespace of its own, removed when the returned value drops.
    pub fn pod(&self, name: &str) -> Result<Netns> {
        Netns::create(&format!("{}-{}-{name}", self.tag, self.name))
    }

    /// Starts `ovsdb-server` on the node's database and waits for its socket.
    pub fn start_ovsdb(&mut self) -> Result<()> {
        let files = self.files();
        let _ = std::fs::remove_file(files.db_sock());
        self.ovsdb = Some(self.spawn(files.command(Daemon::OvsdbServer))?);
        Ok(files.wait(Daemon::OvsdbServer, START_TIMEOUT)?)
    }

    /// Starts `ovs-vswitchd` inside the node's namespace and waits until it has applied the
    /// database.
    pub fn start_vswitchd(&mut self) -> Result<()> {
        let files = self.files();
        // A killed vswitchd leaves its sockets behind; remove them so the waits below are real.
        let d = files.dir();
        for entry in std::fs::read_dir(d).map_err(|e| Error::io("list the node dir", e))? {
            let path = entry.map_err(|e| Error::io("list the node dir", e))?.path();
            if path
                .extension()
                .is_some_and(|x| x == "mgmt" || x == "snoop")
            {
                let _ = std::fs::remove_file(path);
            }
        }
        self.vswitchd = Some(self.spawn(files.command(Daemon::OvsVswitchd))?);
        // A write without --no-wait returns once vswitchd has caught up with the database.
        self.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:testbed={}", self.tag),
        ])?;
        for bridge in self.vsctl(&["list-br"])?.lines() {
            files.wait_for(&self.mgmt_sock(bridge), Daemon::OvsVswitchd, START_TIMEOUT)?;
        }
        Ok(())
    }

    /// Stops `ovsdb-server` (SIGTERM, then SIGKILL).
    pub fn stop_ovsdb(&mut self) {
        stop(self.ovsdb.take(), Signal::SIGTERM);
    }

    /// Stops `ovs-vswitchd` (SIGTERM, then SIGKILL).
    pub fn stop_vswitchd(&mut self) {
        stop(self.vswitchd.take(), Signal::SIGTERM);
    }

    /// Freezes `ovs-vswitchd` (SIGSTOP) until the returned guard drops: the database still
    /// takes transactions, but the switch applies none of them and answers no OpenFlow
    /// request, as when it spends seconds digesting thousands of ports.
    pub fn freeze_vswitchd(&self) -> Result<Frozen> {
        let child = self
            .vswitchd
            .as_ref()
            .ok_or_else(|| Error::Setup("ovs-vswitchd is not running".into()))?;
        let pid = Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, Signal::SIGSTOP)
            .map_err(|e| Error::io("stop ovs-vswitchd", e.into()))?;
        Ok(Frozen(pid))
    }

    /// Kills `ovs-vswitchd` with SIGKILL, as a crash would.
    pub fn kill_vswitchd(&mut self) {
        stop(self.vswitchd.take(), Signal::SIGKILL);
    }

    /// Stops and starts `ovsdb-server` on the same database and socket.
    pub fn restart_ovsdb(&mut self) -> Result<()> {
        self.stop_ovsdb();
        self.start_ovsdb()
    }

    /// Stops and starts `ovs-vswitchd`.
    pub fn restart_vswitchd(&mut self) -> Result<()> {
        self.stop_vswitchd();
        self.start_vswitchd()
    }

    fn spawn(&self, mut cmd: Command) -> Result<Child> {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        self.netns.spawn(cmd)
    }
}

/// `ovs-vswitchd` frozen by [`Node::freeze_vswitchd`]; it runs again when this drops.
#[derive(Debug)]
#[must_use = "ovs-vswitchd runs again as soon as this drops"]
pub struct Frozen(Pid);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, Signal::SIGCONT);
    }
}

/// A fresh name prefix `owt<pid>-<n>` for something a testbed makes.
pub(crate) fn next_tag() -> String {
    tag(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn tag(n: u32) -> String {
    format!("{PREFIX}{}-{n}", std::process::id())
}

impl Drop for Node {
    fn drop(&mut self) {
        stop(self.vswitchd.take(), Signal::SIGTERM);
        stop(self.ovsdb.take(), Signal::SIGTERM);
    }
}

fn stop(child: Option<Child>, signal: Signal) {
    let Some(mut child) = child else { return };
    let pid = Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, signal);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Netns {
    /// Creates a veth pair `a`/`b` inside this namespace, both ends up.
    pub fn veth(&self, a: &str, b: &str) -> Result<()> {
        self.veths(&[(a.to_owned(), b.to_owned())])
    }

    /// Creates many veth pairs inside this namespace over one netlink socket, all ends up.
    pub fn veths(&self, pairs: &[(String, String)]) -> Result<()> {
        self.block_on(|h| async move {
            for (a, b) in pairs {
                link::add_veth(&h, VethEnd::new(a), VethEnd::new(b), None).await?;
                link::set_up(&h, a).await?;
                link::set_up(&h, b).await?;
            }
            Ok(())
        })
    }

    /// Creates a veth pair with `a` here and `b` inside `peer`, both up, with the given MTU.
    pub fn veth_to(&self, a: &str, peer: &Self, b: &str, mtu: Option<u32>) -> Result<()> {
        let far = VethEnd::new(b).netns(peer.path());
        self.block_on(|h| async move {
            link::add_veth(&h, VethEnd::new(a), far, mtu).await?;
            Ok(link::set_up(&h, a).await?)
        })?;
        peer.block_on(|h| async move { Ok(link::set_up(&h, b).await?) })
    }

    /// The kernel's view of link `ifname` in this namespace.
    pub fn link_state(&self, ifname: &str) -> Result<IfaceState> {
        self.block_on(|h| async move { Ok(link::state(&h, ifname).await?) })
    }

    /// Adds an IP address (`"10.0.0.1/30"`) to link `ifname` in this namespace.
    pub fn add_address(&self, ifname: &str, cidr: &str) -> Result<()> {
        let bad = || {
            Error::Setup(format!(
                "{cidr} is not an address with a prefix, like 10.0.0.1/30"
            ))
        };
        let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        self.block_on(|h| async move { Ok(link::add_address(&h, ifname, addr, prefix).await?) })
    }

    /// Names of all links in this namespace.
    pub fn links(&self) -> Result<Vec<String>> {
        self.block_on(|h| async move { Ok(link::names(&h).await?) })
    }
}
