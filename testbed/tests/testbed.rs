//! The testbed itself: nodes come up, work, restart and leave nothing behind.

use std::path::PathBuf;

use ovswire_testbed::{Node, Testbed};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What a node owns on the host, to check it is gone after drop.
fn footprint(node: &Node) -> (PathBuf, PathBuf, u32) {
    let pid = std::fs::read_to_string(node.dir().join("vswitchd.pid")).unwrap();
    (
        node.netns().path().to_owned(),
        node.dir().to_owned(),
        pid.trim().parse().unwrap(),
    )
}

fn assert_gone((netns, dir, pid): (PathBuf, PathBuf, u32)) {
    assert!(!netns.exists(), "{} still exists", netns.display());
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "ovs-vswitchd {pid} still runs"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn node_runs_a_bridge_and_cleans_up() -> Result {
    let node = Testbed::node("basic")?;
    node.add_bridge("ovsbr0")?;
    node.veth("a1", "b1")?;
    node.vsctl(&[
        "add-port",
        "ovsbr0",
        "a1",
        "--",
        "set",
        "Interface",
        "a1",
        "ofport_request=7",
    ])?;
    assert_eq!(
        node.vsctl(&["get", "Interface", "a1", "ofport"])?.trim(),
        "7"
    );
    assert!(node.mgmt_sock("ovsbr0").exists());
    let desc = node.ofctl(&["-O", "OpenFlow13", "dump-ports-desc", "ovsbr0"])?;
    assert!(desc.contains("7(a1)"), "{desc}");
    let st = node.link_state("b1")?;
    assert!(st.admin_up && st.carrier, "{st:?}");
    let fp = footprint(&node);
    drop(node);
    assert_gone(fp);
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn cleans_up_when_a_test_panics() {
    let fp = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        let node = Testbed::node("panics").unwrap();
        *fp.lock().unwrap() = Some(footprint(&node));
        panic!("a failing test");
    });
    assert!(outcome.is_err());
    assert_gone(fp.into_inner().unwrap().unwrap());
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn pods_get_veths_with_mtu() -> Result {
    let node = Testbed::node("pods")?;
    let pod = node.pod("r1")?;
    node.netns().veth_to("h1", &pod, "eth1", Some(9000))?;
    let eth1 = pod.link_state("eth1")?;
    assert_eq!(eth1.mtu, 9000);
    assert!(eth1.admin_up && eth1.carrier, "{eth1:?}");
    assert_eq!(node.link_state("h1")?.mtu, 9000);
    let path = pod.path().to_owned();
    drop(pod);
    assert!(!path.exists());
    // The kernel tears a namespace down asynchronously; its veths go with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while node.link_state("h1").is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the host end outlived the pod"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn daemons_restart_on_the_same_database() -> Result {
    let mut node = Testbed::node("restart")?;
    node.add_bridge("br-x")?;
    node.restart_ovsdb()?;
    node.restart_vswitchd()?;
    assert_eq!(node.vsctl(&["list-br"])?.trim(), "br-x");
    node.kill_vswitchd();
    node.start_vswitchd()?;
    assert!(node.mgmt_sock("br-x").exists());
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn nodes_in_parallel_do_not_collide() -> Result {
    let nodes: Vec<Node> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Testbed::node("same-name")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<ovswire_testbed::Result<_>>()
    })?;
    for node in &nodes {
        node.veth("a1", "b1")?;
    }
    let mut sockets: Vec<_> = nodes.iter().map(Node::db_sock).collect();
    sockets.dedup();
    assert_eq!(sockets.len(), 4);
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn iproute2_does_not_hide_testbed_namespaces() -> Result {
    let node = Testbed::node("iproute2")?;
    let pod = node.pod("r1")?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    assert!(
        mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/run/netns")),
        "/run/netns is not a mount point:\n{mounts}"
    );
    // `ip netns add` would bind-mount /run/netns over itself if it were not a mount point,
    // hiding the namespaces below; it must find nothing to do.
    let probe = format!("owt{}-iproute2-probe", std::process::id());
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &probe])
        .status()?;
    assert!(status.success());
    let status = std::process::Command::new("ip")
        .args(["netns", "del", &probe])
        .status()?;
    assert!(status.success());
    let path = pod.path().to_owned();
    drop(pod);
    assert!(!path.exists(), "{} could not be removed", path.display());
    Ok(())
}
