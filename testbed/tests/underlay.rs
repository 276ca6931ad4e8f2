//! The underlay: nodes reach each other like servers on a LAN, and a VXLAN wire built by hand
//! over it (the recipe of `xnode-manual.sh`) carries ping and TCP between pods on two nodes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ovswire_testbed::{Netns, Node, Testbed, Underlay};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MTU: u32 = 9000;

/// Pings `ip` from `from`, allowing a few losses while ARP caches fill; whether it answered.
fn pings(from: &Netns, ip: &str) -> Result<bool> {
    for _ in 0..5 {
        if from
            .output("ping", &["-c", "1", "-W", "1", "-q", ip])?
            .status
            .success()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One TCP flow from `client` to `server_ip` (served inside `server`) for a second, with
/// iperf3; Gbit/s received.
fn iperf(client: &Netns, server: &Netns, server_ip: &str) -> Result<f64> {
    let mut cmd = Command::new("iperf3");
    cmd.args(["-s", "-1", "-B", server_ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut srv = server.spawn(cmd)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = client.output("iperf3", &["-c", server_ip, "-t", "1", "-f", "g"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        // The server may not listen yet: iperf3 then says "Connection refused".
        if out.status.success() || !text.contains("refused") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = srv.kill();
    let _ = srv.wait();
    // `[  5]   0.00-1.00   sec   300 MBytes  2.52 Gbits/sec      receiver`
    let gbps = out
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "Gbits/sec")?;
            words.get(at.checked_sub(1)?)?.parse::<f64>().ok()
        })
        .ok_or_else(|| format!("iperf3 failed:\n{out}"))?;
    Ok(gbps)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn two_nodes_reach_each_other_over_a_cable() -> Result {
    let (a, b) = (Testbed::node("ul-a")?, Testbed::node("ul-b")?);
    let underlay = Testbed::underlay(&[&a, &b], MTU)?;
    assert!(underlay.switch().is_none(), "two nodes share a cable");
    let (ip_a, ip_b) = (underlay.ip(0), underlay.ip(1));
    assert_eq!(ip_a.to_string(), "172.31.0.10");
    assert_eq!(ip_b.to_string(), "172.31.0.11");
    assert_eq!(a.underlay_ip()?, Some(ip_a));
    assert_eq!(underlay.ip_of(&b), Some(ip_b));
    let members = underlay.members();
    assert_eq!(
        (members[0].node.as_str(), members[1].node.as_str()),
        ("ul-a", "ul-b")
    );

    // `ip netns exec` is the oracle: the namespaces are the ones `ip` knows.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            a.netns().name(),
            "ping",
            "-c",
            "2",
            "-W",
            "1",
        ])
        .arg(ip_b.to_string())
        .output()?;
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert!(pings(b.netns(), &ip_a.to_string())?);

    for node in [&a, &b] {
        assert_eq!(
            node.link_state(Underlay::BRIDGE)?.mtu,
            MTU + Underlay::HEADROOM
        );
        let nic = node.link_state(Underlay::NIC)?;
        assert_eq!(nic.mtu, MTU + Underlay::HEADROOM);
        assert!(nic.carrier, "{nic:?}");
        let ports = node.vsctl(&["list-ports", Underlay::BRIDGE])?;
        assert_eq!(ports.trim(), Underlay::NIC);
    }
    // Node-to-node TCP (what agents peering over the underlay use) works as is.
    let gbps = iperf(a.netns(), b.netns(), &ip_b.to_string())?;
    assert!(gbps > 0.0, "no TCP between nodes");

    drop(underlay);
    assert!(
        a.link_state(Underlay::NIC).is_err(),
        "the cable outlived the underlay"
    );
    assert!(!pings(a.netns(), &ip_b.to_string())?);
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn three_nodes_share_a_switch() -> Result {
    let nodes: Vec<Node> = (0..3)
        .map(|i| Testbed::node(&format!("ul3-{i}")))
        .collect::<ovswire_testbed::Result<_>>()?;
    let refs: Vec<&Node> = nodes.iter().collect();
    let underlay = Testbed::underlay(&refs, 1500)?;
    let switch = underlay
        .switch()
        .expect("three nodes need a switch")
        .path()
        .to_owned();
    assert!(switch.exists());
    let leftovers = ovswire_testbed::leftovers();
    assert!(
        leftovers
            .iter()
            .any(|l| l.contains("underlay switch") && l.contains(&*switch.to_string_lossy())),
        "the leak check does not see the switch: {leftovers:?}"
    );
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node.underlay_ip()?, Some(underlay.ip(i)));
        for j in (0..3).filter(|&j| j != i) {
            let ip = underlay.ip(j).to_string();
            assert!(
                pings(node.netns(), &ip)?,
                "{} cannot reach {ip}",
                node.name()
            );
        }
    }
    drop(underlay);
    assert!(!switch.exists());
    let leftovers = ovswire_testbed::leftovers();
    assert!(
        !leftovers
            .iter()
            .any(|l| l.contains(&*switch.to_string_lossy())),
        "{leftovers:?}"
    );
    // The switch took the nodes' veths with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while nodes[0].link_state(Underlay::NIC).is_ok() {
        assert!(
            Instant::now() < deadline,
            "a node's NIC outlived the switch"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_lone_node_is_plugged_into_a_switch() -> Result {
    let node = Testbed::node("ul-1")?;
    let underlay = Testbed::underlay(&[&node], 1500)?;
    assert!(underlay.switch().is_some());
    assert_eq!(underlay.link_mtu(), 1600);
    assert_eq!(node.underlay_ip()?, Some(underlay.ip(0)));
    assert!(node.link_state(Underlay::NIC)?.carrier);
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn the_switch_goes_when_a_test_panics() {
    let seen = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        let nodes: Vec<Node> = (0..3)
            .map(|i| Testbed::node(&format!("ul-panic-{i}")).unwrap())
            .collect();
        let refs: Vec<&Node> = nodes.iter().collect();
        let underlay = Testbed::underlay(&refs, 1500).unwrap();
        let switch = underlay.switch().unwrap().path().to_owned();
        let node_ns: Vec<_> = nodes.iter().map(|n| n.netns().path().to_owned()).collect();
        *seen.lock().unwrap() = Some((switch, node_ns));
        panic!("a failing test");
    });
    assert!(outcome.is_err());
    let (switch, node_ns) = seen.into_inner().unwrap().unwrap();
    assert!(!switch.exists(), "{} still exists", switch.display());
    for ns in node_ns {
        assert!(!ns.exists(), "{} still exists", ns.display());
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn underlay_refuses_what_it_cannot_build() -> Result {
    let (a, b) = (Testbed::node("ul-bad-a")?, Testbed::node("ul-bad-b")?);
    let err = Testbed::underlay(&[&a, &b], 65500).unwrap_err().to_string();
    assert!(err.contains("MTU 65500 is out of range"), "{err}");
    let err = Testbed::underlay(&[], 1500).unwrap_err().to_string();
    assert!(err.contains("not 0"), "{err}");
    let _underlay = Testbed::underlay(&[&a, &b], 1500)?;
    let c = Testbed::node("ul-bad-c")?;
    let err = Testbed::underlay(&[&c, &a], 1500).unwrap_err().to_string();
    assert!(err.contains("already has bridge br-phy"), "{err}");
    assert_eq!(c.underlay_ip()?, None);
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn the_hand_built_wire_carries_ping_and_tcp() -> Result {
    let node = Testbed::node("hand")?;
    let (r1, r2) = node.manual_wire(MTU)?;
    r1.add_address("eth1", "10.9.1.1/30")?;
    r2.add_address("eth1", "10.9.1.2/30")?;
    assert!(pings(&r1, "10.9.1.2")?, "no ping over the hand-built wire");
    assert!(iperf(&r1, &r2, "10.9.1.2")? > 0.0);
    let flows = node.ofctl(&["-O", "OpenFlow13", "dump-flows", "ovsbr0"])?;
    assert!(
        flows.contains("in_port=1 actions=output:2")
            || flows.contains("in_port=1,actions=output:2"),
        "{flows}"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn vxlan_wire_across_nodes_carries_ping_and_tcp() -> Result {
    let (x1, x2) = (Testbed::node("vx-1")?, Testbed::node("vx-2")?);
    let underlay = Testbed::underlay(&[&x1, &x2], MTU)?;
    let r1 = x1.manual_vxlan_side(underlay.ip(1), "10.9.0.1/24", MTU)?;
    let r2 = x2.manual_vxlan_side(underlay.ip(0), "10.9.0.2/24", MTU)?;
    assert!(pings(&r1, "10.9.0.2")?, "no ping across the VXLAN wire");
    // A full-size frame crosses unfragmented (DF set): the underlay has room for the header.
    let big = r1.output(
        "ping",
        &["-c", "1", "-W", "2", "-M", "do", "-s", "8972", "10.9.0.2"],
    )?;
    assert!(
        big.status.success(),
        "{}",
        String::from_utf8_lossy(&big.stdout)
    );
    let gbps = iperf(&r1, &r2, "10.9.0.2")?;
    eprintln!("TCP across nodes over VXLAN: {gbps:.2} Gbit/s");
    assert!(gbps > 0.0);
    let stats = x1.ofctl(&["-O", "OpenFlow13", "dump-flows", "ovsbr0"])?;
    assert!(
        !stats.contains("n_packets=0,"),
        "a flow carried nothing: {stats}"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn link_watch_sees_carrier_changes_as_they_happen() -> Result {
    let node = Testbed::node("watch")?;
    node.add_bridge("ovsbr0")?;
    let pod = node.pod("r1")?;
    node.netns().veth_to("h1", &pod, "eth1", None)?;
    node.vsctl(&["add-port", "ovsbr0", "h1"])?;
    let watch = pod.watch_links()?;
    let before = Instant::now();
    node.ofctl(&["-O", "OpenFlow13", "mod-port", "ovsbr0", "h1", "down"])?;
    let down = watch.wait_carrier("eth1", false, Duration::from_secs(5))?;
    assert!(down > before);
    assert!(!pod.link_state("eth1")?.carrier);
    node.ofctl(&["-O", "OpenFlow13", "mod-port", "ovsbr0", "h1", "up"])?;
    let up = watch.wait_carrier("eth1", true, Duration::from_secs(5))?;
    assert!(up > down);
    watch.drain();
    assert!(watch.next(Duration::from_millis(50)).is_none());
    let err = watch
        .wait_carrier("eth1", false, Duration::from_millis(50))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no awaited change of eth1"), "{err}");
    Ok(())
}
