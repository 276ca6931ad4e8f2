//! CNI conformance: the runtimes' own library (libcni, through the Go `cni-driver`) calls the
//! real `ovswire-cni`, which talks to the real `ovswire-agent` on a private OVS, against real
//! pod network namespaces, for every supported spec version.
//!
//! Needs root, Open vSwitch, `golang-go` and `golang-github-appc-cni-dev`, and the workspace
//! binaries (`cargo build --workspace`, which `cargo test --workspace` does).

mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use support::{Call, Harness, VERSIONS, mac, pod_interface};

fn has_eth1(pod: &ovswire_testbed::Netns) -> bool {
    pod.links().is_ok_and(|l| l.iter().any(|n| n == "eth1"))
}

fn carrier(pod: &ovswire_testbed::Netns) -> bool {
    pod.link_state("eth1").is_ok_and(|s| s.carrier)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn version_is_negotiated_through_libcni() -> Result<()> {
    let h = Harness::start("cni-version", None)?;
    let out = h.cni("version", &h.conf("1.0.0", json!({})), &Call::default());
    assert_eq!(out.result()["supportedVersions"], json!(VERSIONS));
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn add_check_del_in_every_version() -> Result<()> {
    let h = Harness::start("cni-versions", None)?;
    for (i, version) in VERSIONS.iter().enumerate() {
        let pod = h.node.pod(&format!("v{i}"))?;
        let call = Call::pod(&format!("ver{i}"), &format!("r{i}"), &pod);
        let conf = h.conf(
            version,
            json!({"mtu": 1500, "unknownField": {"ignored": true}}),
        );

        let added = h.cni("add", &conf, &call);
        let raw = added.plugin_json();
        assert_eq!(
            raw["cniVersion"], *version,
            "the result is in the asked version"
        );
        let ifs = raw["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 2, "{raw}");
        assert!(
            ifs[0].get("sandbox").is_none(),
            "host end first, no sandbox: {raw}"
        );
        assert_eq!(ifs[1]["name"], "eth1");
        assert_eq!(ifs[1]["sandbox"], pod.path().display().to_string());
        assert_eq!(
            ifs[1].get("mtu").is_some(),
            *version == "1.1.0",
            "mtu only in 1.1.0"
        );
        assert!(
            raw.get("ips").is_none(),
            "ovswire assigns no addresses: {raw}"
        );

        // What Multus reads: the first interface with a sandbox, and its MAC.
        let pod_if = pod_interface(added.result(), "eth1");
        assert_eq!(pod_if["mac"], ifs[1]["mac"]);
        let link = pod.link_state("eth1")?;
        assert_eq!(
            pod_if["mac"],
            mac(link.mac),
            "the MAC in the result is the real one"
        );
        assert_eq!(link.mtu, 1500, "the configuration's mtu");

        if i >= 2 {
            h.cni("check", &conf, &call).result();
        }
        let again = h.cni("add", &conf, &call);
        assert_eq!(
            again.plugin_json(),
            raw,
            "a repeated ADD returns the same result"
        );

        h.cni("del", &conf, &call).result();
        assert!(
            !has_eth1(&pod),
            "DEL removes the pod's interface ({version})"
        );
        h.cni("del", &conf, &call).result();
    }
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn status_and_gc() -> Result<()> {
    let h = Harness::start("cni-gc", None)?;
    let conf = h.conf("1.1.0", json!({}));
    h.cni("status", &conf, &Call::default()).result();

    let pods = (0..3)
        .map(|i| h.node.pod(&format!("g{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let calls: Vec<_> = (0..3)
        .map(|i| Call::pod(&format!("gc{i}"), &format!("r{i}"), &pods[i]))
        .collect();
    for call in &calls {
        h.cni("add", &conf, call).result();
    }
    let gc = Call {
        valid: vec!["gc1/eth1".into()],
        ..Call::default()
    };
    h.cni("gc", &conf, &gc).result();
    assert!(
        !has_eth1(&pods[0]) && !has_eth1(&pods[2]),
        "unlisted attachments are removed"
    );
    assert!(has_eth1(&pods[1]), "listed attachments stay");
    h.cni("check", &conf, &calls[1]).result();

    h.cni("gc", &conf, &Call::default()).result();
    assert!(!has_eth1(&pods[1]), "an empty list removes everything");
    h.cni("gc", &conf, &Call::default()).result();
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn bad_input_gets_the_exact_code() -> Result<()> {
    let h = Harness::start("cni-bad", None)?;
    let pod = h.node.pod("bad")?;
    let good = Call::pod("bad0", "r1", &pod);
    let v1 = h.conf("1.0.0", json!({}));
    let host_links = h.node.netns().links()?;
    let with = |f: &dyn Fn(&mut Call)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let raw = |f: &dyn Fn(&mut Call)| {
        with(&|c: &mut Call| {
            c.raw = true;
            f(c)
        })
    };
    let fifo = h.node.dir().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    let plain = h.node.dir().join("plain");
    std::fs::write(&plain, "")?;
    let cases: Vec<(&str, &str, std::path::PathBuf, Call, u64)> = vec![
        (
            "malformed JSON",
            "add",
            h.write_conf(br#"{"cniVersion": "1.0.0", "name":"#),
            raw(&|_| {}),
            6,
        ),
        (
            "not an object",
            "add",
            h.write_conf(b"[1, 2]"),
            raw(&|_| {}),
            6,
        ),
        (
            "unknown cniVersion",
            "add",
            h.conf("0.2.0", json!({})),
            good.clone(),
            1,
        ),
        (
            "future cniVersion",
            "add",
            h.conf("9.9.9", json!({})),
            good.clone(),
            1,
        ),
        (
            "CHECK in 0.3.1",
            "check",
            h.conf("0.3.1", json!({})),
            raw(&|_| {}),
            1,
        ),
        ("STATUS in 1.0.0", "status", v1.clone(), raw(&|_| {}), 1),
        (
            "no name",
            "add",
            h.write_conf(
                json!({"cniVersion": "1.0.0", "type": "x", "socket": h.agent().cni_socket()})
                    .to_string()
                    .as_bytes(),
            ),
            raw(&|_| {}),
            7,
        ),
        (
            "bad mtu",
            "add",
            h.conf("1.0.0", json!({"mtu": 10})),
            good.clone(),
            7,
        ),
        (
            "ipam",
            "add",
            h.conf("1.0.0", json!({"ipam": {"type": "host-local"}})),
            good.clone(),
            2,
        ),
        (
            "a socket outside ovswire's directories",
            "add",
            h.conf("1.0.0", json!({"socket": "/tmp/not-ovswire/cni.sock"})),
            good.clone(),
            7,
        ),
        (
            "missing netns",
            "add",
            v1.clone(),
            with(&|c| c.netns.clear()),
            4,
        ),
        (
            "bogus netns",
            "add",
            v1.clone(),
            with(&|c| c.netns = "/run/netns/ovswire-none".into()),
            3,
        ),
        (
            "a FIFO as netns (refused without blocking)",
            "add",
            v1.clone(),
            with(&|c| c.netns = fifo.display().to_string()),
            4,
        ),
        (
            "a regular file as netns",
            "add",
            v1.clone(),
            with(&|c| c.netns = plain.display().to_string()),
            4,
        ),
        (
            "the agent's own netns",
            "add",
            v1.clone(),
            with(&|c| c.netns = h.node.netns().path().display().to_string()),
            4,
        ),
        (
            "a mount namespace as netns",
            "add",
            v1.clone(),
            with(&|c| c.netns = format!("/proc/{}/ns/mnt", h.agent().pid())),
            4,
        ),
        (
            "ifname with % (the kernel would number it)",
            "add",
            v1.clone(),
            raw(&|c| c.ifname = "eth%d".into()),
            4,
        ),
        (
            "ifname > 15 (libcni)",
            "add",
            v1.clone(),
            with(&|c| c.ifname = "eth0123456789abc".into()),
            4,
        ),
        (
            "ifname > 15 (plugin)",
            "add",
            v1.clone(),
            raw(&|c| c.ifname = "eth0123456789abc".into()),
            4,
        ),
        (
            "missing container id",
            "add",
            v1.clone(),
            raw(&|c| c.container.clear()),
            4,
        ),
        (
            "bad K8S_POD_NAME",
            "add",
            v1.clone(),
            with(&|c| c.args = "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=Router_1".into()),
            4,
        ),
        (
            "no K8S_POD_NAME",
            "add",
            v1.clone(),
            with(&|c| c.args = "K8S_POD_NAMESPACE=lab".into()),
            4,
        ),
        (
            "unknown CNI_ARGS",
            "add",
            v1.clone(),
            with(&|c| c.args = "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1;COLOR=red".into()),
            4,
        ),
        (
            "GC without a list",
            "gc",
            h.conf("1.1.0", json!({})),
            raw(&|_| {}),
            7,
        ),
    ];
    for (what, command, conf, call, code) in &cases {
        let out = h.cni(command, conf, call);
        assert_eq!(out.code(), *code, "{what}: {}", out.json);
        assert!(
            out.json["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {}",
            out.json
        );
    }

    // eth1 already taken in the pod: code 7, and nothing is left behind.
    h.node.netns().veth_to("taken0", &pod, "eth1", None)?;
    assert_eq!(h.cni("add", &v1, &good).code(), 7);
    h.node.netns().exec("ip", &["link", "del", "taken0"])?;
    assert_eq!(
        h.node.netns().links()?,
        host_links,
        "failed ADDs leave no host interface"
    );
    h.cni("add", &v1, &good).result();
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn del_succeeds_when_things_are_gone() -> Result<()> {
    let h = Harness::start("cni-del", None)?;
    let conf = h.conf("1.0.0", json!({}));

    let pod = h.node.pod("gone")?;
    let call = Call::pod("del0", "r1", &pod);
    h.cni("add", &conf, &call).result();
    drop(pod);
    h.cni("del", &conf, &call).result();
    h.cni("del", &conf, &call).result();
    h.cni(
        "del",
        &conf,
        &Call {
            netns: String::new(),
            ..call.clone()
        },
    )
    .result();

    let pod = h.node.pod("noif")?;
    let call = Call::pod("del1", "r2", &pod);
    h.cni("add", &conf, &call).result();
    pod.exec("ip", &["link", "del", "eth1"])?;
    h.cni("del", &conf, &call).result();

    let never = Call::pod("never-added", "r3", &h.node.pod("never")?);
    h.cni("del", &conf, &never).result();
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn an_unreachable_agent_means_try_again_later() -> Result<()> {
    let mut h = Harness::start("cni-down", None)?;
    let conf = h.conf("1.1.0", json!({}));
    let (p1, p2) = (h.node.pod("d1")?, h.node.pod("d2")?);
    let (c1, c2) = (Call::pod("down1", "r1", &p1), Call::pod("down2", "r2", &p2));
    h.cni("add", &conf, &c1).result();

    h.stop_agent()?;
    let start = Instant::now();
    assert_eq!(h.cni("add", &conf, &c2).code(), 11);
    assert_eq!(h.cni("check", &conf, &c1).code(), 11);
    assert_eq!(
        h.cni("del", &conf, &c1).code(),
        11,
        "DEL cannot know; the runtime retries"
    );
    assert_eq!(h.cni("gc", &conf, &Call::default()).code(), 11);
    assert_eq!(h.cni("status", &conf, &Call::default()).code(), 50);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "unreachable is detected at once"
    );

    h.restart_agent()?;
    h.cni("status", &conf, &Call::default()).result();
    h.cni("del", &conf, &c1).result();
    assert!(!has_eth1(&p1));
    h.cni("add", &conf, &c2).result();
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_stalled_agent_times_out() -> Result<()> {
    let h = Harness::start("cni-slow", None)?;
    let conf = h.conf("1.1.0", json!({}));
    let pod = h.node.pod("slow")?;
    let call = Call::pod("slow0", "r1", &pod);

    h.agent().signal("STOP")?;
    let start = Instant::now();
    let (add, status) = std::thread::scope(|s| {
        let add = s.spawn(|| h.cni("add", &conf, &call));
        let status = s.spawn(|| h.cni("status", &conf, &Call::default()));
        (add.join().unwrap(), status.join().unwrap())
    });
    let took = start.elapsed();
    h.agent().signal("CONT")?;
    assert_eq!(add.code(), 11);
    assert_eq!(status.code(), 50);
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(20),
        "{took:?}"
    );

    h.cni("status", &conf, &Call::default()).result();
    h.cni("add", &conf, &call).result();
    h.cni("del", &conf, &call).result();
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn fifty_pods_added_at_once_are_all_wired() -> Result<()> {
    let mut topology = String::from("lab: lab\nlinks:\n");
    for i in (0..50).step_by(2) {
        topology.push_str(&format!("  - endpoints: [r{i}:eth1, r{}:eth1]\n", i + 1));
    }
    let h = Harness::start("cni-fifty", Some(&topology))?;
    let conf = h.conf("1.0.0", json!({}));
    let pods = (0..50)
        .map(|i| h.node.pod(&format!("f{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let calls: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| Call::pod(&format!("fifty{i}"), &format!("r{i}"), p))
        .collect();

    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|c| s.spawn(|| h.cni("add", &conf, c)))
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().unwrap().result().clone())
            .collect()
    });
    for (pod, result) in pods.iter().zip(&results) {
        assert_eq!(
            pod_interface(result, "eth1")["sandbox"],
            pod.path().display().to_string()
        );
        assert!(has_eth1(pod));
    }
    h.wait_for("carrier on all 50 interfaces", || pods.iter().all(carrier))?;

    std::thread::scope(|s| {
        for c in &calls {
            s.spawn(|| h.cni("del", &conf, c).result().clone());
        }
    });
    assert!(
        pods.iter().all(|p| !has_eth1(p)),
        "every DEL removed its interface"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn chained_with_tuning_like_multus_does() -> Result<()> {
    let h = Harness::start("cni-chain", None)?;
    let pod = h.node.pod("chain")?;
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "ovswire-chain",
        "plugins": [
            {
                "type": "ovswire-cni",
                "socket": h.agent().cni_socket(),
                "args": {"cni": {"K8S_POD_NAMESPACE": "lab", "K8S_POD_NAME": "r1"}},
            },
            {"type": "tuning", "promisc": true},
        ],
    });
    let conf = h.write_conf(list.to_string().as_bytes());
    // The runtime names the pod in CNI_ARGS; args.cni (Multus's cni-args, from the pod's
    // annotation) may repeat it, and may not name another.
    let call = Call {
        args: "IgnoreUnknown=true;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1;\
               K8S_POD_INFRA_CONTAINER_ID=chain0"
            .into(),
        ..Call::pod("chain0", "r1", &pod)
    };
    let mut elsewhere = list.clone();
    elsewhere["plugins"][0]["args"]["cni"]["K8S_POD_NAMESPACE"] = "other-lab".into();
    let elsewhere = h.write_conf(elsewhere.to_string().as_bytes());
    let refused = h.cni("add", &elsewhere, &call);
    assert_eq!(refused.code(), 7, "{}", refused.json);
    assert!(!has_eth1(&pod), "a refused ADD makes nothing");
    let added = h.cni("add", &conf, &call);
    let pod_if = pod_interface(added.result(), "eth1");
    assert_eq!(pod_if["mac"], mac(pod.link_state("eth1")?.mac));
    h.cni("check", &conf, &call).result();
    h.cni("del", &conf, &call).result();
    assert!(!has_eth1(&pod));
    Ok(())
}
