//! The agent wiring pods on one node, on a real OVS with real pod namespaces.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use ovswire_core::attach::{AttachError, AttachRequest, Attacher};
use ovswire_core::model::AdminState;
use ovswire_core::model::EndpointKey;
use ovswire_core::plan::OperState;
use support::{Lab, Result};

const ONE_LINK: &str = "lab: lab\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    mtu: 9000\n";
const LINK: &str = "lab/r1:eth1--r2:eth1";

fn carrier(ns: &ovswire_testbed::Netns) -> bool {
    ns.link_state("eth1").map(|s| s.carrier).unwrap_or(false)
}

fn ping(from: &ovswire_testbed::Netns, to: &str, extra: &[&str]) -> bool {
    let mut args = vec!["-c", "3", "-i", "0.2", "-W", "1", "-q"];
    args.extend_from_slice(extra);
    args.push(to);
    from.output("ping", &args).is_ok_and(|o| o.status.success())
}

/// A lab with r1 and r2 wired and addressed 10.0.0.1/2.
fn wired(name: &str) -> Result<(Lab, ovswire_testbed::Netns, ovswire_testbed::Netns)> {
    let mut lab = Lab::new(name, ONE_LINK)?;
    lab.start()?;
    let r1 = lab.node.pod("r1")?;
    let r2 = lab.node.pod("r2")?;
    lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
    lab.attach("lab", "r2", "eth1", "c2", r2.path())?;
    lab.wait_for("the link to come up", || {
        lab.status(LINK) == Some(OperState::Up)
    })?;
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    Ok((lab, r1, r2))
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn no_carrier_until_the_peer_registers() -> Result {
    let mut lab = Lab::new("carrier", ONE_LINK)?;
    lab.start()?;
    let r1 = lab.node.pod("r1")?;
    let r2 = lab.node.pod("r2")?;
    let a = lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
    assert_eq!(a.mtu, 9000, "the topology's MTU");
    lab.settle()?;
    assert!(
        !carrier(&r1),
        "r1:eth1 must show NO-CARRIER while r2 is missing"
    );
    assert_eq!(
        lab.status(LINK),
        Some(OperState::Pending("waiting for r2:eth1 to register".into()))
    );
    lab.attach("lab", "r2", "eth1", "c2", r2.path())?;
    lab.wait_for("carrier on both ends", || carrier(&r1) && carrier(&r2))?;
    assert_eq!(r1.link_state("eth1")?.mtu, 9000);
    // The peer leaves: the survivor loses carrier again.
    lab.detach("c2", "eth1")?;
    lab.wait_for("r1 to lose carrier", || !carrier(&r1))?;
    assert!(matches!(lab.status(LINK), Some(OperState::Pending(_))));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_wire_carries_ping_tcp_and_jumbo_frames() -> Result {
    let (lab, r1, r2) = wired("traffic")?;
    assert!(ping(&r1, "10.0.0.2", &[]), "ping across the wire");
    assert!(
        ping(&r1, "10.0.0.2", &["-s", "8972", "-M", "do"]),
        "a 9000-byte packet crosses unfragmented"
    );
    let mut server = Command::new("iperf3");
    server
        .args(["-s", "-1", "-B", "10.0.0.2"])
        .stdout(Stdio::null());
    let mut server = r2.spawn(server)?;
    std::thread::sleep(Duration::from_millis(300));
    let out = r1.exec("iperf3", &["-c", "10.0.0.2", "-t", "1", "-J"])?;
    let _ = server.wait();
    let report: serde_json::Value = serde_json::from_str(&out)?;
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(bps > 0.0, "TCP must cross the wire: {out}");
    eprintln!("TCP over the wire: {:.2} Gbit/s", bps / 1e9);
    drop(lab);
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn l2_control_frames_cross_unchanged() -> Result {
    let (_lab, r1, r2) = wired("l2")?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/l2.py");
    let mut recv = Command::new("python3");
    recv.args([script, "recv", "eth1", "3"])
        .stdout(Stdio::piped());
    let recv = r2.spawn(recv)?;
    std::thread::sleep(Duration::from_millis(500));
    let sent = r1.exec("python3", &[script, "send", "eth1"])?;
    let got = String::from_utf8(recv.wait_with_output()?.stdout)?;
    for frame in sent.lines() {
        assert!(
            got.lines().any(|l| l == frame),
            "frame {frame} did not arrive intact; got:\n{got}"
        );
    }
    assert_eq!(
        sent.lines().count(),
        4,
        "LLDP, LACP, STP and IS-IS frames were sent"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn link_down_and_up_through_the_agent() -> Result {
    let (lab, r1, r2) = wired("flap")?;
    let key = lab.agent().links()[0].0.key.clone();
    let agent = lab.agent();
    let k = key.clone();
    lab.on(async move { agent.set_admin(&k, AdminState::Down).await })?;
    assert!(
        !carrier(&r1) && !carrier(&r2),
        "both ends lose carrier when the call returns"
    );
    assert_eq!(lab.status(LINK), Some(OperState::Down));
    assert!(!ping(&r1, "10.0.0.2", &[]));
    let agent = lab.agent();
    lab.on(async move { agent.set_admin(&key, AdminState::Up).await })?;
    lab.wait_for("carrier back", || carrier(&r1) && carrier(&r2))?;
    assert!(ping(&r1, "10.0.0.2", &[]));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_crashed_agent_restarts_without_touching_wires() -> Result {
    let (mut lab, r1, r2) = wired("restart")?;
    // Take the link down first: the admin state must survive the restart too.
    let flows_before =
        lab.node
            .ofctl(&["-O", "OpenFlow13", "--no-stats", "dump-flows", "ovsbr0"])?;
    let pinger = std::thread::spawn({
        let path = r1.path().to_owned();
        move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            Command::new("ping")
                .args(["-i", "0.01", "-c", "200", "-W", "1", "-q", "10.0.0.2"])
                .output()
                .unwrap()
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = lab.agent().report().generation;
    lab.crash();
    let agent = lab.start()?;
    // The restarted agent's reports are newer than all of its last run's: its incarnation,
    // counted in OVSDB, is one more, whatever the clock says.
    let after = agent.report().generation;
    assert_eq!(after >> 32, (before >> 32) + 1, "{before:#x} {after:#x}");
    assert!(after > before);
    lab.settle()?;
    let out = pinger.join().expect("pinger");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "frames were lost across the restart:\n{text}"
    );
    assert_eq!(
        agent.plans_applied(),
        0,
        "nothing changed, so nothing may be sent"
    );
    let flows_after =
        lab.node
            .ofctl(&["-O", "OpenFlow13", "--no-stats", "dump-flows", "ovsbr0"])?;
    assert_eq!(flows_before, flows_after);
    assert_eq!(lab.status(LINK), Some(OperState::Up));
    assert!(carrier(&r2));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn admin_down_survives_an_agent_restart() -> Result {
    let (mut lab, r1, _r2) = wired("keepdown")?;
    let key = lab.agent().links()[0].0.key.clone();
    let agent = lab.agent();
    lab.on(async move { agent.set_admin(&key, AdminState::Down).await })?;
    lab.crash();
    let agent = lab.start()?;
    lab.settle()?;
    assert_eq!(agent.plans_applied(), 0);
    assert_eq!(lab.status(LINK), Some(OperState::Down));
    assert!(!carrier(&r1));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn vswitchd_restart_brings_the_wires_back() -> Result {
    let (mut lab, r1, _r2) = wired("vswitchd")?;
    lab.node.restart_vswitchd()?;
    lab.wait_for("the wire to pass traffic again", || {
        ping(&r1, "10.0.0.2", &[])
    })?;
    assert_eq!(lab.status(LINK), Some(OperState::Up));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_pod_restart_rewires_only_its_link() -> Result {
    let topo =
        "lab: lab\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - endpoints: [r3:eth1, r4:eth1]\n";
    let mut lab = Lab::new("podrestart", topo)?;
    lab.start()?;
    let pods: Vec<_> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|p| lab.node.pod(p))
        .collect::<ovswire_testbed::Result<_>>()?;
    for (i, p) in ["r1", "r2", "r3", "r4"].iter().enumerate() {
        lab.attach("lab", p, "eth1", &format!("c{i}"), pods[i].path())?;
    }
    lab.wait_for("both links up", || {
        lab.agent().links().iter().all(|(_, s)| *s == OperState::Up)
    })?;
    let r3r4 = |lab: &Lab| -> Result<String> {
        let flows = lab
            .node
            .ofctl(&["-O", "OpenFlow13", "dump-flows", "ovsbr0"])?;
        // Flow durations grow while untouched; a re-added flow would restart from zero.
        Ok(flows
            .lines()
            .filter(|l| l.contains("in_port=32770") || l.contains("in_port=32771"))
            .map(|l| l.split(", duration").next().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let before = r3r4(&lab)?;
    // r2 restarts: new sandbox, new namespace, new veth.
    lab.detach("c1", "eth1")?;
    let r2b = lab.node.pod("r2b")?;
    lab.attach("lab", "r2", "eth1", "c1-new", r2b.path())?;
    lab.wait_for("r1-r2 back up", || lab.status(LINK) == Some(OperState::Up))?;
    assert_eq!(
        before,
        r3r4(&lab)?,
        "the other link's flows were not touched"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_pod_that_dies_without_a_del_drops_its_peers_carrier_and_its_port() -> Result {
    let (lab, r1, r2) = wired("poddies")?;
    let ports = |lab: &Lab| -> Result<usize> {
        let names = lab
            .node
            .vsctl(&["--bare", "--columns=name", "list", "Interface"])?;
        Ok(names.lines().filter(|l| l.starts_with("ow")).count())
    };
    assert_eq!(ports(&lab)?, 2);
    // The pod dies the way a killed container or an `ip netns del` does: its namespace goes,
    // and its veth with it; no CNI DEL comes.
    drop(r2);
    lab.wait_for("r1 to lose carrier", || !carrier(&r1))?;
    assert_eq!(
        lab.status(LINK),
        Some(OperState::Pending("waiting for r2:eth1 to register".into()))
    );
    lab.wait_for("the dead pod's port to go", || {
        ports(&lab).is_ok_and(|n| n == 1)
    })?;
    // The pod comes back in a new namespace: the wire is whole again.
    let r2 = lab.node.pod("r2b")?;
    lab.attach("lab", "r2", "eth1", "c2", r2.path())?;
    lab.wait_for("carrier on both ends", || carrier(&r1) && carrier(&r2))?;
    Ok(())
}

/// A link of the lab whose counters this node reads now.
fn counters(lab: &Lab) -> Result<ovswire_core::stats::LinkCounters> {
    let agent = lab.agent();
    let all = lab.on(async move { agent.link_stats().await })?;
    Ok(*all.values().next().ok_or("no link counted")?)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn counters_match_the_frames_sent_flaps_are_counted_and_survive_a_restart() -> Result {
    let mut lab = Lab::new("counters", ONE_LINK)?;
    lab.start()?;
    let r1 = lab.node.pod("r1")?;
    let r2 = lab.node.pod("r2")?;
    // A quiet link: no IPv6 (router solicitations, MLD), no addresses (ARP).
    for ns in [&r1, &r2] {
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
    }
    lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
    lab.attach("lab", "r2", "eth1", "c2", r2.path())?;
    lab.wait_for("the link to come up", || {
        lab.status(LINK) == Some(OperState::Up)
    })?;
    let before = counters(&lab)?;
    r1.send_raw_frames("eth1", 1000, 100, 20)?;
    r2.send_raw_frames("eth1", 10, 60, 20)?;
    lab.wait_for("every frame counted", || {
        counters(&lab).is_ok_and(|c| {
            c.a_to_b.packets - before.a_to_b.packets >= 1000
                && c.b_to_a.packets - before.b_to_a.packets >= 10
        })
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let after = counters(&lab)?;
    assert_eq!(
        after.a_to_b.packets - before.a_to_b.packets,
        1000,
        "{after:?}"
    );
    assert_eq!(after.a_to_b.bytes - before.a_to_b.bytes, 100_000);
    assert_eq!(after.b_to_a.packets - before.b_to_a.packets, 10);
    assert_eq!(after.b_to_a.bytes - before.b_to_a.bytes, 600);

    // A flap: one flap, two carrier changes; the history says when and why.
    let key = lab.agent().links()[0].0.key.clone();
    let agent = lab.agent();
    let k = key.clone();
    lab.on(async move { agent.set_admin(&k, AdminState::Down).await })?;
    let agent = lab.agent();
    let k = key.clone();
    lab.on(async move { agent.set_admin(&k, AdminState::Up).await })?;
    lab.wait_for("the link back up", || {
        lab.status(LINK) == Some(OperState::Up)
    })?;
    let carrier = lab.agent().telemetry().carrier(&key);
    assert_eq!((carrier.flaps, carrier.changes), (1, 2), "{carrier:?}");
    let (history, _) = lab
        .agent()
        .history_since(std::time::SystemTime::UNIX_EPOCH, "lab");
    let states: Vec<&OperState> = history.iter().map(|h| &h.event.status).collect();
    assert!(states.contains(&&OperState::Down), "{states:?}");
    assert_eq!(history[0].note.as_deref(), Some("agent started"));

    // The agent dies and comes back: the counters go on from where they were.
    lab.crash();
    lab.start()?;
    lab.settle()?;
    let again = counters(&lab)?;
    assert!(
        again.a_to_b.packets >= after.a_to_b.packets && again.b_to_a.bytes >= after.b_to_a.bytes,
        "{after:?} then {again:?}"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn bad_requests_fail_clearly_and_leave_nothing() -> Result {
    let mut lab = Lab::new("bad", ONE_LINK)?;
    lab.start()?;
    let missing = std::path::Path::new("/run/netns/ovswire-test-missing");
    let err = lab.attach("lab", "r1", "eth1", "c1", missing).unwrap_err();
    let err = err.downcast::<AttachError>().map_err(|e| format!("{e}"))?;
    assert!(matches!(*err, AttachError::Netns(_)), "{err}");
    let r1 = lab.node.pod("r1")?;
    lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
    let again = lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
    assert_eq!(
        again.container_id, "c1",
        "a repeated ADD returns the same attachment"
    );
    let clash = lab
        .attach("lab", "r1b", "eth1", "c9", r1.path())
        .unwrap_err();
    assert!(
        clash.to_string().contains("already exists in the pod"),
        "{clash}"
    );
    lab.settle()?;
    let ports = lab.node.vsctl(&["list-ports", "ovsbr0"])?;
    assert_eq!(ports.lines().count(), 1, "only r1's port: {ports}");
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn an_ovsdb_server_restart_is_survived() -> Result {
    let topo =
        "lab: lab\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - endpoints: [r3:eth1, r4:eth1]\n";
    let mut lab = Lab::new("ovsdb-restart", topo)?;
    lab.start()?;
    let pods: Vec<_> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|p| lab.node.pod(p))
        .collect::<ovswire_testbed::Result<_>>()?;
    lab.attach("lab", "r1", "eth1", "c1", pods[0].path())?;
    lab.attach("lab", "r2", "eth1", "c2", pods[1].path())?;
    lab.wait_for("r1-r2 up", || lab.status(LINK) == Some(OperState::Up))?;
    lab.node.restart_ovsdb()?;
    // Pods registering after the restart are wired through the reconnected client.
    lab.attach("lab", "r3", "eth1", "c3", pods[2].path())?;
    lab.attach("lab", "r4", "eth1", "c4", pods[3].path())?;
    lab.wait_for("r3-r4 up", || {
        lab.status("lab/r3:eth1--r4:eth1") == Some(OperState::Up)
    })?;
    assert!(carrier(&pods[0]) && carrier(&pods[3]));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn ports_and_flows_of_others_are_left_alone() -> Result {
    let mut lab = Lab::new("foreign", ONE_LINK)?;
    lab.start()?;
    lab.node.veth("x1", "x2")?;
    // The other port holds the number the agent would pick first.
    let theirs = ovswire_core::naming::FIRST_OFPORT;
    lab.node.vsctl(&[
        "add-port",
        "ovsbr0",
        "x1",
        "--",
        "set",
        "Interface",
        "x1",
        &format!("ofport_request={theirs}"),
    ])?;
    lab.node.ofctl(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "ovsbr0",
        &format!("table=0,priority=5,cookie=0x1,in_port={theirs},actions=drop"),
    ])?;
    lab.settle()?;
    let r1 = lab.node.pod("r1")?;
    let r2 = lab.node.pod("r2")?;
    lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
    lab.attach("lab", "r2", "eth1", "c2", r2.path())?;
    lab.wait_for("the link up", || lab.status(LINK) == Some(OperState::Up))?;
    let flows = lab
        .node
        .ofctl(&["-O", "OpenFlow13", "--no-stats", "dump-flows", "ovsbr0"])?;
    let wire: Vec<&str> = flows
        .lines()
        .filter(|l| l.contains("priority=100"))
        .collect();
    assert_eq!(wire.len(), 2, "{flows}");
    assert!(
        wire.iter().all(|l| !l.contains(&theirs.to_string())),
        "the link's flows use the other port's number: {flows}"
    );
    lab.detach("c1", "eth1")?;
    lab.detach("c2", "eth1")?;
    lab.settle()?;
    assert_eq!(
        lab.node.vsctl(&["list-ports", "ovsbr0"])?.trim(),
        "x1",
        "only the agent's ports went"
    );
    let flows = lab
        .node
        .ofctl(&["-O", "OpenFlow13", "--no-stats", "dump-flows", "ovsbr0"])?;
    assert!(
        flows.contains("cookie=0x1") && flows.contains(&format!("in_port={theirs}")),
        "{flows}"
    );
    assert_eq!(
        flows.lines().filter(|l| l.contains("cookie=")).count(),
        1,
        "{flows}"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_live_topology_edit_rewires_only_what_changed() -> Result {
    let (lab, r1, r2) = wired("edit")?;
    let r3 = lab.node.pod("r3")?;
    lab.attach("lab", "r1", "eth2", "c1", r1.path())?;
    lab.attach("lab", "r3", "eth1", "c3", r3.path())?;
    let agent = lab.agent();
    // A second link appears (as a Kubernetes Topology edit would bring it).
    let edited = ovswire_core::topology::Topology::parse(
        "lab: lab\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    mtu: 9000\n  - endpoints: [r1:eth2, r3:eth1]\n",
        "edit",
    )?;
    let before = agent.plans_applied();
    agent.set_links(edited.links.clone());
    lab.wait_for("the new link to come up", || {
        lab.status("lab/r1:eth2--r3:eth1") == Some(OperState::Up)
    })?;
    assert!(agent.plans_applied() > before);
    assert!(
        ping(&r1, "10.0.0.2", &[]),
        "the first link kept carrying traffic"
    );

    // An admin change made through the API survives an edit that does not touch the link.
    let key = edited.links.keys().next().unwrap().clone();
    let a = agent.clone();
    let k = key.clone();
    lab.on(async move { a.set_admin(&k, AdminState::Down).await })?;
    agent.set_links(edited.links.clone());
    lab.settle()?;
    assert_eq!(lab.status(LINK), Some(OperState::Down));

    // The first link leaves the topology: its flows go, both ends lose carrier, the other
    // link stays up.
    let only_second: std::collections::BTreeMap<_, _> = edited
        .links
        .into_iter()
        .filter(|(k, _)| k.to_string() != LINK)
        .collect();
    agent.set_links(only_second);
    lab.wait_for("r1:eth1 and r2:eth1 to lose carrier", || {
        !carrier(&r1) && !carrier(&r2)
    })?;
    assert_eq!(lab.status(LINK), None);
    assert_eq!(lab.status("lab/r1:eth2--r3:eth1"), Some(OperState::Up));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_bridge_ovswire_did_not_make_is_left_alone_unless_adopted() -> Result {
    let mut lab = Lab::new("notours", ONE_LINK)?;
    lab.node.vsctl(&[
        "add-br",
        "ovsbr0",
        "--",
        "set",
        "Bridge",
        "ovsbr0",
        "datapath_type=netdev",
        "fail_mode=standalone",
    ])?;
    let get = |lab: &Lab, col: &str| lab.node.vsctl(&["get", "Bridge", "ovsbr0", col]);
    let refused = lab
        .start()
        .err()
        .ok_or("the agent took over a bridge not its own")?;
    assert!(refused.to_string().contains("--adopt-bridge"), "{refused}");
    assert_eq!(get(&lab, "fail_mode")?.trim(), "standalone");

    lab.adopt = true;
    lab.start()?;
    assert_eq!(get(&lab, "fail_mode")?.trim(), "secure");
    assert_eq!(get(&lab, "external_ids:ovswire-bridge")?.trim(), "\"1\"");

    // A bridge an earlier agent made, before the mark: known by its datapath id.
    lab.crash();
    lab.node.vsctl(&[
        "remove",
        "Bridge",
        "ovsbr0",
        "external_ids",
        "ovswire-bridge",
    ])?;
    lab.adopt = false;
    lab.start()?;
    assert_eq!(get(&lab, "external_ids:ovswire-bridge")?.trim(), "\"1\"");
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn an_add_is_recorded_before_it_succeeds_and_a_half_made_pair_is_made_again() -> Result {
    let mut lab = Lab::new("durable", ONE_LINK)?;
    lab.start()?;
    let r1 = lab.node.pod("r1")?;
    let r2 = lab.node.pod("r2")?;
    // What an agent killed in the middle of an ADD leaves: the pair, under the derived name.
    let left = ovswire_core::naming::host_ifname("c1", "eth1");
    lab.node.veth(&left, "leftpeer")?;
    let a = lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
    assert_eq!(a.host_ifname, left);
    let ports = |lab: &Lab| lab.node.vsctl(&["list-ports", "ovsbr0"]);
    // Each ADD returns once its port is in OVSDB: killing the agent right after loses nothing.
    assert!(ports(&lab)?.contains(&left), "{}", ports(&lab)?);
    let b = lab.attach("lab", "r2", "eth1", "c2", r2.path())?;
    assert!(ports(&lab)?.contains(&b.host_ifname), "{}", ports(&lab)?);
    lab.crash();
    lab.start()?;
    lab.wait_for("the link up after the restart", || {
        lab.status(LINK) == Some(OperState::Up)
    })?;
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    assert!(ping(&r1, "10.0.0.2", &[]));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn an_add_from_a_new_sandbox_takes_the_wire_from_the_old_one() -> Result {
    let (lab, r1, r2) = wired("takeover")?;
    // r2's pod gets a new sandbox while the old one still runs (no DEL came).
    let r2b = lab.node.pod("r2b")?;
    lab.attach("lab", "r2", "eth1", "c2-new", r2b.path())?;
    r2b.add_address("eth1", "10.0.0.2/30")?;
    lab.wait_for("the link up to the new sandbox", || {
        lab.status(LINK) == Some(OperState::Up)
    })?;
    // The old sandbox keeps no interface on the wire, and no host end of it is left.
    assert!(
        !r2.links()?.iter().any(|l| l == "eth1"),
        "{:?}",
        r2.links()?
    );
    let old_host = ovswire_core::naming::host_ifname("c2", "eth1");
    assert!(!lab.node.netns().links()?.contains(&old_host));
    assert!(ping(&r1, "10.0.0.2", &[]));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn racing_adds_and_an_add_racing_its_del_leave_no_dead_sandbox_wired() -> Result {
    let (lab, r1, _r2) = wired("races")?;
    let request = |container: &str, netns: &std::path::Path| AttachRequest {
        container_id: container.into(),
        netns: netns.to_owned(),
        key: EndpointKey::new("lab", "r2", "eth1").unwrap(),
        mtu: None,
        network: "ovswire".into(),
    };
    // Two new sandboxes of r2 ask at once: the later request is wired, the other has nothing.
    let (early, late) = (lab.node.pod("r2-early")?, lab.node.pod("r2-late")?);
    let agent = lab.agent();
    let (a, b) = (
        request("c2-early", early.path()),
        request("c2-late", late.path()),
    );
    let (ra, rb) = lab.on(async move { tokio::join!(agent.attach(a), agent.attach(b)) });
    assert!(ra.is_err() && rb.is_ok(), "{ra:?} {rb:?}");
    assert!(!early.links()?.iter().any(|l| l == "eth1"));
    let host = |c: &str| ovswire_core::naming::host_ifname(c, "eth1");
    assert!(!lab.node.netns().links()?.contains(&host("c2-early")));
    late.add_address("eth1", "10.0.0.2/30")?;
    lab.wait_for("the link up to the later sandbox", || {
        lab.status(LINK) == Some(OperState::Up)
    })?;
    assert!(ping(&r1, "10.0.0.2", &[]));

    // An ADD and the DEL of its sandbox at once: nothing of that sandbox is left wired.
    let gone = lab.node.pod("r2-gone")?;
    let agent = lab.agent();
    let add = request("c2-gone", gone.path());
    let (added, deleted) =
        lab.on(async move { tokio::join!(agent.attach(add), agent.detach("c2-gone", "eth1")) });
    assert!(deleted.is_ok(), "{deleted:?}");
    assert!(added.is_err(), "{added:?}");
    assert!(!gone.links()?.iter().any(|l| l == "eth1"));
    assert!(!lab.node.netns().links()?.contains(&host("c2-gone")));
    // The later sandbox keeps its wire.
    assert_eq!(lab.status(LINK), Some(OperState::Up));
    assert!(ping(&r1, "10.0.0.2", &[]));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn an_add_does_not_wait_for_a_bundle_ovs_vswitchd_has_not_answered() -> Result {
    const TWO_LINKS: &str = "lab: lab\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - \
                             endpoints: [r3:eth1, r4:eth1]\n";
    let mut lab = Lab::new("busy", TWO_LINKS)?;
    lab.start()?;
    let pods = ["r1", "r2", "r3", "r4"].map(|p| lab.node.pod(p));
    let [r1, r2, r3, r4] = pods.map(|p| p.expect("a pod"));
    let ports = |lab: &Lab| lab.node.vsctl(&["list-ports", "ovsbr0"]);
    {
        // The switch is busy (frozen here): the database takes ports, no bundle is answered.
        let _frozen = lab.node.freeze_vswitchd()?;
        lab.attach("lab", "r1", "eth1", "c1", r1.path())?;
        // With both ends in, the round sends the first link's flows, and waits for the switch.
        lab.attach("lab", "r2", "eth1", "c2", r2.path())?;
        // An ADD meanwhile is recorded at once, not after the bundle (nor refused after 8 s).
        let a3 = lab.attach("lab", "r3", "eth1", "c3", r3.path())?;
        let a4 = lab.attach("lab", "r4", "eth1", "c4", r4.path())?;
        for a in [&a3, &a4] {
            assert!(ports(&lab)?.contains(&a.host_ifname), "{}", ports(&lab)?);
        }
    }
    lab.wait_for("both links up once the switch runs again", || {
        lab.status("lab/r1:eth1--r2:eth1") == Some(OperState::Up)
            && lab.status("lab/r3:eth1--r4:eth1") == Some(OperState::Up)
    })?;
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;
    r3.add_address("eth1", "10.0.1.1/30")?;
    r4.add_address("eth1", "10.0.1.2/30")?;
    assert!(ping(&r1, "10.0.0.2", &[]));
    assert!(ping(&r3, "10.0.1.2", &[]));
    Ok(())
}
