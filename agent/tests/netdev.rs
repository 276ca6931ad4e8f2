//! Pod interfaces on real network namespaces.

use std::path::Path;

use ovswire_agent::netdev::{Netdev, NetdevError, VethSpec, pod_link};
use ovswire_testbed::Testbed;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn spec<'a>(netns: &'a Path, host: &'a str, ifname: &'a str) -> VethSpec<'a> {
    VethSpec {
        host,
        host_mac: [0x02, 0, 0, 0, 0, 1],
        netns,
        ifname,
        pod_mac: [0x02, 0, 0, 0, 0, 2],
        mtu: 9000,
    }
}

/// Runs `f` on a current-thread runtime inside the node's namespace, as the agent runs there.
fn in_node<F, Fut>(node: &ovswire_testbed::Node, f: F) -> Result
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = Result>,
{
    node.netns().run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        rt.map_err(|e| e.to_string())?
            .block_on(f())
            .map_err(|e| e.to_string())
    })??;
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn creates_a_pod_interface_ready_for_a_wire() -> Result {
    let node = Testbed::node("netdev")?;
    let pod = node.pod("r1")?;
    let netns = pod.path().to_owned();
    in_node(&node, || async {
        let nd = Netdev::new()?;
        nd.create_veth(&spec(&netns, "owtest1", "eth1")).await?;
        let link = pod_link(&netns, "eth1").await?.expect("eth1 in the pod");
        assert_eq!(link.mtu, 9000);
        assert_eq!(link.mac, [0x02, 0, 0, 0, 0, 2]);
        assert!(
            !link.tx_checksum,
            "TX checksum offload must be off in the pod"
        );
        assert!(nd.exists("owtest1").await?);
        Ok(())
    })?;
    let host = node.link_state("owtest1")?;
    assert!(
        !host.admin_up,
        "the host end stays down until the wire is complete"
    );
    assert_eq!(host.mac, [0x02, 0, 0, 0, 0, 1]);
    let eth1 = pod.link_state("eth1")?;
    assert!(
        eth1.admin_up && !eth1.carrier,
        "the pod sees NO-CARRIER: {eth1:?}"
    );
    let k = node.netns().exec("ethtool", &["-k", "owtest1"])?;
    assert!(k.contains("tx-checksumming: off"), "{k}");
    // Up, the host end still gets no IPv6 address (thousands would stall ovs-vswitchd).
    node.netns().exec("ip", &["link", "set", "owtest1", "up"])?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let v6 = node
        .netns()
        .exec("ip", &["-6", "-o", "addr", "show", "dev", "owtest1"])?;
    assert!(
        v6.trim().is_empty(),
        "the host end has IPv6 addresses: {v6}"
    );
    let mode = node
        .netns()
        .exec("ip", &["-d", "link", "show", "owtest1"])?;
    assert!(mode.contains("addrgenmode none"), "{mode}");
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn clashes_and_missing_namespaces_are_clear_errors() -> Result {
    let node = Testbed::node("netdev-err")?;
    let pod = node.pod("r1")?;
    let netns = pod.path().to_owned();
    in_node(&node, || async {
        let nd = Netdev::new()?;
        nd.create_veth(&spec(&netns, "owtest1", "eth1")).await?;
        let again = nd
            .create_veth(&spec(&netns, "owtest2", "eth1"))
            .await
            .unwrap_err();
        assert!(
            matches!(&again, NetdevError::Exists { ifname, .. } if ifname == "eth1"),
            "{again}"
        );
        assert!(again.to_string().contains("in the pod"), "{again}");
        assert!(!nd.exists("owtest2").await?, "nothing left behind");
        let host = nd
            .create_veth(&spec(&netns, "owtest1", "eth2"))
            .await
            .unwrap_err();
        assert!(
            host.to_string()
                .contains("owtest1 already exists on the host"),
            "{host}"
        );
        let gone = Path::new("/run/netns/ovswire-no-such-netns");
        let missing = nd
            .create_veth(&spec(gone, "owtest3", "eth1"))
            .await
            .unwrap_err();
        assert!(matches!(missing, NetdevError::Netns { .. }), "{missing}");
        assert!(nd.delete("owtest1").await?);
        assert!(!nd.delete("owtest1").await?, "deleting twice is fine");
        assert_eq!(
            pod_link(&netns, "eth1").await?,
            None,
            "the pod end went with the host end"
        );
        Ok(())
    })
}
