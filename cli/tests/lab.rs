//! `ovswire lab` end to end on a real, private Open vSwitch: up → every wire passes traffic →
//! link down → NO-CARRIER → up → up again converges → down leaves nothing behind. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ovswire_testbed::{Node, Testbed};
use support::{Cli, PrivateMounts, lab_name, no_carrier, pings, wait_until};

fn write_lab(dir: &Path, lab: &str) -> PathBuf {
    let file = dir.join(format!("{lab}.yaml"));
    std::fs::write(
        &file,
        format!(
            "lab: {lab}\nmtu: 1500\nlinks:\n\
             - endpoints: [\"r1:eth1:10.0.0.1/30\", \"r2:eth1:10.0.0.2/30\"]\n\
             - endpoints: [\"r2:eth2:10.0.1.1/30\", \"r3:eth1:10.0.1.2/30\"]\n"
        ),
    )
    .unwrap();
    file
}

fn assert_gone(node: Option<&Node>, lab: &str, state: &Path) {
    for r in ["r1", "r2", "r3"] {
        assert!(
            !Path::new("/run/netns").join(format!("{lab}-{r}")).exists(),
            "namespace {lab}-{r} left behind"
        );
    }
    assert!(
        !state.join("labs").join(lab).exists(),
        "lab state left behind"
    );
    if let Some(node) = node {
        let veths: Vec<String> = node
            .netns()
            .links()
            .unwrap()
            .into_iter()
            .filter(|l| l.starts_with("ow") && l.len() == 15)
            .collect();
        assert!(veths.is_empty(), "host ends left behind: {veths:?}");
        let bridges = node.vsctl(&["list-br"]).unwrap();
        assert!(
            !bridges.lines().any(|b| b == format!("ow-{lab}")),
            "bridge left: {bridges}"
        );
        assert_eq!(
            node.vsctl(&["--columns=name", "--bare", "list", "Interface"])
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("ow"))
                .count(),
            0,
            "interfaces left behind"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn lab_up_wires_flaps_converges_and_down_removes_everything() {
    let node = Testbed::node("cli").unwrap();
    let lab = lab_name("a");
    let cli = Cli::on(&node, &lab);
    let file = write_lab(node.dir(), &lab);
    let table = cli.up(&file);
    assert_eq!(table.matches("  up").count(), 2, "{table}");

    // Every wire carries traffic, both ways, and TCP too.
    let (r1, r2, r3) = (
        format!("{lab}-r1"),
        format!("{lab}-r2"),
        format!("{lab}-r3"),
    );
    assert!(pings(&r1, "10.0.0.2") && pings(&r3, "10.0.1.1"));

    // Down: both ends lose carrier and traffic stops; up brings it back.
    let out = cli.ok(&["link", "down", "r1:eth1", "--lab", &lab]);
    assert!(out.contains("r1:eth1--r2:eth1  down"), "{out}");
    wait_until("r1:eth1 NO-CARRIER", || no_carrier(&r1, "eth1"));
    wait_until("r2:eth1 NO-CARRIER", || no_carrier(&r2, "eth1"));
    assert!(!pings(&r1, "10.0.0.2"));
    assert!(!no_carrier(&r2, "eth2"), "the other link stays up");
    cli.ok(&["link", "up", "r2:eth1", "--lab", &lab]);
    wait_until("r1:eth1 carrier", || !no_carrier(&r1, "eth1"));
    wait_until("r2:eth1 carrier", || !no_carrier(&r2, "eth1"));
    wait_until("traffic back on r1:eth1--r2:eth1", || {
        pings(&r1, "10.0.0.2")
    });

    // Flap twice; the link ends up.
    let out = cli.ok(&[
        "link",
        "flap",
        "r3:eth1",
        "--count",
        "2",
        "--interval-ms",
        "100",
        "--lab",
        &lab,
    ]);
    assert_eq!(out.lines().count(), 4, "{out}");
    wait_until("r3:eth1 carrier", || !no_carrier(&r3, "eth1"));
    wait_until("r2:eth2 carrier", || !no_carrier(&r2, "eth2"));

    // Up again converges without touching anything.
    let pid = std::fs::read_to_string(cli.state.join("labs").join(&lab).join("lab.json")).unwrap();
    cli.up(&file);
    let again =
        std::fs::read_to_string(cli.state.join("labs").join(&lab).join("lab.json")).unwrap();
    assert_eq!(pid, again, "a second up with the same file changes nothing");
    let links = cli.ok(&["links", "--json", "--lab", &lab]);
    assert_eq!(links.lines().count(), 2);
    wait_until("traffic on r2:eth2--r3:eth1", || pings(&r3, "10.0.1.1"));

    // A graph of the live lab.
    let dot = cli.ok(&["graph", "--lab", &lab, "--format", "dot"]);
    assert!(dot.contains("r1") && dot.contains("r3"), "{dot}");

    let state: serde_json::Value = serde_json::from_str(&again).unwrap();
    let agent = state["agent_pid"].as_i64().expect("the agent runs");
    cli.ok(&["lab", "down", &lab]);
    assert_gone(Some(&node), &lab, &cli.state);
    assert!(
        !Path::new(&format!("/proc/{agent}/exe")).exists(),
        "the lab's agent still runs"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_changed_file_rewires_only_what_changed() {
    let node = Testbed::node("cli").unwrap();
    let lab = lab_name("b");
    let cli = Cli::on(&node, &lab);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);
    let (r1, r3) = (format!("{lab}-r1"), format!("{lab}-r3"));
    // r3 goes away; r1 gets a second link to r2.
    std::fs::write(
        &file,
        format!(
            "lab: {lab}\nmtu: 1500\nlinks:\n\
             - endpoints: [\"r1:eth1:10.0.0.1/30\", \"r2:eth1:10.0.0.2/30\"]\n\
             - endpoints: [\"r1:eth2:10.0.2.1/30\", \"r2:eth3:10.0.2.2/30\"]\n"
        ),
    )
    .unwrap();
    let table = cli.up(&file);
    assert!(
        table.contains("r1:eth2--r2:eth3") && !table.contains("r3"),
        "{table}"
    );
    assert!(
        !Path::new("/run/netns").join(&r3).exists(),
        "removed node's namespace"
    );
    assert!(pings(&r1, "10.0.0.2") && pings(&r1, "10.0.2.2"));
    cli.ok(&["lab", "down", file.to_str().unwrap()]);
    assert_gone(Some(&node), &lab, &cli.state);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn own_ovs_is_started_and_stopped_with_the_lab() {
    let node = Testbed::node("cli").unwrap();
    let host = node.pod("host").unwrap();
    let lab = lab_name("c");
    let state = node.dir().join("own-state");
    let cli = Cli::own(&host, &state, &lab);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);
    assert!(pings(&format!("{lab}-r1"), "10.0.0.2"));
    let pids: Vec<i32> = ["ovsdb-server", "ovs-vswitchd"]
        .iter()
        .map(|d| {
            std::fs::read_to_string(state.join("ovs").join(format!("{d}.pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    cli.ok(&["lab", "down", &lab]);
    assert_gone(None, &lab, &state);
    assert!(!state.join("ovs").exists(), "own OVS directory left");
    for pid in pids {
        // Gone, or a zombie its new parent has not reaped yet.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rfind(')').map(|i| &stat[i + 2..i + 3]);
        assert!(
            matches!(state, None | Some("Z")),
            "OVS daemon {pid} still running: {stat}"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn down_after_own_ovs_died_starts_it_again_and_removes_everything() {
    let node = Testbed::node("cli").unwrap();
    let host = node.pod("host").unwrap();
    let lab = lab_name("k");
    let state = node.dir().join("own-state");
    let cli = Cli::own(&host, &state, &lab);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);
    // As after a reboot: both daemons gone, their sockets left behind.
    for d in ["ovs-vswitchd", "ovsdb-server"] {
        let pid = std::fs::read_to_string(state.join("ovs").join(format!("{d}.pid"))).unwrap();
        let killed = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(killed.success(), "kill {d}");
    }
    assert!(state.join("ovs").join("db.sock").exists());
    let out = cli.run(&["lab", "down", &lab]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lab down: {err}");
    assert!(err.contains("starting ovswire's own Open vSwitch"), "{err}");
    assert_gone(None, &lab, &state);
    assert!(!state.join("ovs").exists(), "own OVS directory left");
    assert!(!host.links().unwrap().contains(&format!("ow-{lab}")));
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn bad_files_fail_with_the_line_and_make_nothing() {
    let node = Testbed::node("cli").unwrap();
    let lab = lab_name("d");
    let cli = Cli {
        ns: Some(node.netns()),
        state: node.dir().join("state"),
        ovs: vec![],
        lab: lab.clone(),
        mounts: None,
    };
    let file = node.dir().join("bad.yaml");
    std::fs::write(
        &file,
        format!("lab: {lab}\nlinks:\n  - endpoints: [\"r1:eth1\", \"r2:eth1\"]\n    colour: red\n"),
    )
    .unwrap();
    let out = cli.run(&["lab", "up", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("line 4"), "{err}");
    assert!(!cli.state.join("labs").join(&lab).exists());

    let out = cli.run(&["lab", "down", "nosuchlab"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lab named nosuchlab"));
    let out = cli.run(&["link", "down", "r1", "--socket", "/nonexistent.sock"]);
    assert!(!out.status.success());
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_later_ip_netns_add_leaves_lab_namespaces_reachable_and_removable() {
    let node = Testbed::node("cli").unwrap();
    let lab = lab_name("e");
    let mounts = PrivateMounts::new(&format!("{lab}-"));
    let mut cli = Cli::on(&node, &lab);
    cli.mounts = Some(&mounts);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);

    // Someone at the shell adds and removes a namespace of their own.
    let other = format!("{lab}-other");
    let added = mounts.run("ip", &["netns", "add", &other]);
    let _ = mounts.run("ip", &["netns", "del", &other]);
    assert!(added.status.success(), "ip netns add: {added:?}");

    let r1 = format!("{lab}-r1");
    let ping = mounts.run(
        "ip",
        &[
            "netns", "exec", &r1, "ping", "-c", "1", "-W", "2", "10.0.0.2",
        ],
    );
    assert!(
        ping.status.success(),
        "ping over r1:eth1 after ip netns add: {ping:?}"
    );
    cli.ok(&["lab", "down", &lab]);
    for r in ["r1", "r2", "r3"] {
        let path = format!("/run/netns/{lab}-{r}");
        let left = mounts.run("test", &["-e", &path]);
        assert!(!left.status.success(), "{path} left behind");
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn down_removes_the_bridge_device_before_stopping_own_ovs() {
    let node = Testbed::node("cli").unwrap();
    let host = node.pod("host").unwrap();
    let lab = lab_name("f");
    let state = node.dir().join("own-state");
    let cli = Cli::own(&host, &state, &lab);
    let file = write_lab(node.dir(), &lab);
    let bridge = format!("ow-{lab}");
    for round in 1..=3 {
        cli.up(&file);
        assert!(
            host.links().unwrap().contains(&bridge),
            "round {round}: no {bridge} while up"
        );
        cli.ok(&["lab", "down", &lab]);
        let out = Command::new("ip")
            .args(["-n", host.name(), "-br", "link"])
            .output()
            .expect("run ip link");
        let links = String::from_utf8_lossy(&out.stdout);
        assert!(
            !links
                .lines()
                .any(|l| l.split_whitespace().next() == Some(bridge.as_str())),
            "round {round}: {bridge} left behind after down:\n{links}"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_deleted_node_drops_its_peers_and_up_repairs_what_drifted() {
    let node = Testbed::node("cli").unwrap();
    let lab = lab_name("g");
    let cli = Cli::on(&node, &lab);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);
    let (r1, r2, r3) = (
        format!("{lab}-r1"),
        format!("{lab}-r2"),
        format!("{lab}-r3"),
    );

    // A node deleted by hand: its peer loses carrier, the link says why.
    let del = Command::new("ip")
        .args(["netns", "del", &r1])
        .status()
        .unwrap();
    assert!(del.success());
    wait_until("r2:eth1 NO-CARRIER", || no_carrier(&r2, "eth1"));
    let links = cli.ok(&["links", "--lab", &lab]);
    assert!(links.contains("waiting for r1:eth1 to register"), "{links}");
    // An interface deleted by hand inside another node.
    let del = Command::new("ip")
        .args(["-n", &r3, "link", "del", "eth1"])
        .status()
        .unwrap();
    assert!(del.success());

    // `up` again repairs both, and says so.
    let out = cli.run(&[
        "lab",
        "up",
        file.to_str().unwrap(),
        &cli.ovs[0],
        &cli.ovs[1],
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("made 1 node namespaces"), "{err}");
    assert!(
        err.contains("repaired 1 interfaces") && err.contains("r3:eth1"),
        "{err}"
    );
    assert!(err.contains("2 links: 2 up"), "{err}");
    wait_until("r1 reaches r2", || pings(&r1, "10.0.0.2"));
    wait_until("r3 reaches r2", || pings(&r3, "10.0.1.1"));
    cli.ok(&["lab", "down", &lab]);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_stopped_agent_is_named_with_the_way_back_and_non_root_users_are_told_to_be_root() {
    let node = Testbed::node("cli").unwrap();
    let lab = lab_name("h");
    let cli = Cli::on(&node, &lab);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);
    cli.kill_agent();
    for args in [
        vec!["links", "--lab", &lab],
        vec!["link", "down", "r1:eth1", "--lab", &lab],
        vec!["watch", "--lab", &lab],
        vec!["lab", "status", &lab],
    ] {
        let out = cli.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains(&format!("the agent of lab {lab} is not running"))
                && err.contains("ovswire lab up"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: one clear line: {err}");
    }
    let out = cli.run(&[
        "lab",
        "up",
        file.to_str().unwrap(),
        &cli.ovs[0],
        &cli.ovs[1],
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("starting it again"),
        "{err}"
    );
    cli.ok(&["links", "--lab", &lab]);

    // Someone without root.
    let bin = env!("CARGO_BIN_EXE_ovswire");
    for args in [
        vec!["lab", "up", file.to_str().unwrap()],
        vec!["links", "--lab", &lab],
    ] {
        let mut cmd = Command::new(bin);
        cmd.args(&args).env("OVSWIRE_STATE_DIR", &cli.state);
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("root"), "{args:?}: {err}");
    }
    cli.ok(&["lab", "down", &lab]);
}
