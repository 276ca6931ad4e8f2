//! Link impairments on real traffic in a local lab on a private Open vSwitch (userspace
//! datapath): declared in the file, changed live, each parameter measured at the far end
//! (ping, raw frames counted, TCP through iperf3, VLAN-tagged frames), carrier kept
//! throughout, kept across a second `lab up`, cleared back to the direct path, bad input
//! refused. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ovswire_testbed::{Node, Testbed, frames};
use support::{Cli, lab_name, netns_exec, no_carrier, wait_until};

fn write_lab(dir: &Path, lab: &str) -> PathBuf {
    let file = dir.join(format!("{lab}.yaml"));
    std::fs::write(
        &file,
        format!(
            "lab: {lab}\nmtu: 1500\nlinks:\n\
             - endpoints: [\"r1:eth1:10.0.0.1/30\", \"r2:eth1:10.0.0.2/30\"]\n\
             \x20 impair: {{a->b: {{delay: 20ms}}}}\n\
             - endpoints: [\"r1:eth2:10.0.1.1/30\", \"r2:eth2:10.0.1.2/30\"]\n"
        ),
    )
    .unwrap();
    file
}

/// `(min, avg, max)` round-trip time in ms of `count` pings.
fn rtt(ns: &str, addr: &str, count: u32) -> (f64, f64, f64) {
    let out = netns_exec(
        ns,
        &[
            "ping",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "2",
            addr,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rtt"))
        .unwrap_or_else(|| panic!("no replies from {addr}: {text}"));
    let nums: Vec<f64> = line
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(" ms")
        .split('/')
        .map(|v| v.parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2])
}

/// [`frames::send_and_count`] on `ifname` from `from` to `to`.
fn frames(from: &str, to: &str, ifname: &str, count: usize, tagged: bool) -> frames::Arrived {
    let what = frames::Send {
        vlan: tagged.then_some(100),
        ..frames::Send::frames(count)
    };
    frames::send_and_count(from, ifname, to, ifname, what).unwrap()
}

/// TCP throughput from `from` to `addr` (served in `to`) in Mbit/s, over 3 s. The client
/// starts once the server listens. A run that reports no throughput (iperf3 gives up on a
/// control message stuck behind a full queue), or whose server ended before listening, is run
/// again, three times at most.
fn tcp_mbits(from: &str, to: &str, addr: &str) -> f64 {
    let mut last = String::new();
    for _ in 0..3 {
        let mut server = Command::new("ip")
            .args(["netns", "exec", to, "iperf3", "-s", "-1", "-B", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let listening = (0..100).any(|_| {
            let ss = netns_exec(to, &["ss", "-Hltn", &format!("src {addr}:5201")]);
            if !String::from_utf8_lossy(&ss.stdout).trim().is_empty() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        });
        if !listening {
            let _ = server.kill();
            let out = server.wait_with_output().unwrap();
            last = format!(
                "the iperf3 server on {addr} did not listen: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        let out = netns_exec(from, &["iperf3", "-c", addr, "-t", "3", "-J"]);
        let _ = server.kill();
        let _ = server.wait();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return bps / 1e6;
        }
        last = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    panic!("iperf3 measured nothing: {last}");
}

fn impair(cli: &Cli<'_>, lab: &str, args: &[&str]) -> String {
    let mut all = vec!["link", "impair"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--lab", lab]);
    cli.ok(&all)
}

fn stage_ends(node: &Node) -> Vec<String> {
    node.netns()
        .links()
        .unwrap()
        .into_iter()
        .filter(|l| (l.starts_with("oi") || l.starts_with("oj")) && l.len() == 15)
        .collect()
}

fn link_json(cli: &Cli<'_>, lab: &str, name: &str) -> serde_json::Value {
    let out = cli.ok(&["links", "--json", "--lab", lab]);
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no link {name}: {out}"))
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn impairments_act_on_real_traffic_live_and_across_restarts() {
    let node = Testbed::node("imp").unwrap();
    let lab = lab_name("i");
    let cli = Cli::on(&node, &lab);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);
    let (r1, r2) = (format!("{lab}-r1"), format!("{lab}-r2"));
    let l2 = "r1:eth2--r2:eth2";

    // Declared: 20 ms from r1 to r2 on the first link, nothing on the second.
    let v = link_json(&cli, &lab, "r1:eth1--r2:eth1");
    assert_eq!(v["impairment"]["a_to_b"]["delay"], "20ms", "{v}");
    assert_eq!(v["impairment"]["b_to_a"], serde_json::json!({}));
    let (min, avg, _) = rtt(&r1, "10.0.0.2", 10);
    assert!(min >= 19.5 && avg < 40.0, "delayed link: {min}/{avg}");
    let (_, direct, _) = rtt(&r1, "10.0.1.2", 10);
    assert!(direct < 10.0, "unimpaired link: {direct}");
    assert_eq!(
        stage_ends(&node).len(),
        2,
        "one pair for the one impaired direction"
    );

    // An edit of the file that only changes the impairment: applied, and the link never flaps.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("delay: 20ms", "delay: 30ms"),
    )
    .unwrap();
    cli.up(&file);
    let v = link_json(&cli, &lab, "r1:eth1--r2:eth1");
    assert_eq!(v["impairment"]["a_to_b"]["delay"], "30ms", "{v}");
    let (min, _, _) = rtt(&r1, "10.0.0.2", 10);
    assert!(min >= 29.5, "edited delay: {min}");
    let out = cli.ok(&["links", "--stats", "--json", "--lab", &lab]);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["stats"]["flaps"], 0, "{v}");
        assert_eq!(v["state"], "up", "{v}");
    }

    // Live loss on what r1 sends: the share measured over real frames, the other way whole,
    // and the link keeps carrier.
    let out = impair(
        &cli,
        &lab,
        &["r1:eth2", "--loss", "30%", "--direction", "out"],
    );
    assert!(out.contains("a->b: loss=30%; b->a: none"), "{out}");
    assert!(!no_carrier(&r1, "eth2") && !no_carrier(&r2, "eth2"));
    let arrived = frames(&r1, &r2, "eth2", 2000, false).count;
    assert!(
        (1240..=1560).contains(&arrived),
        "30% loss: {arrived} of 2000 arrived"
    );
    let back = frames(&r2, &r1, "eth2", 2000, false).count;
    assert!(
        back >= 1980,
        "the other direction loses nothing: {back} of 2000"
    );

    // Duplication and corruption, each alone (the parameters given replace the direction's).
    impair(
        &cli,
        &lab,
        &["r1:eth2", "--duplicate", "50%", "--direction", "out"],
    );
    let got = frames(&r1, &r2, "eth2", 2000, false);
    assert!(
        (2800..=3200).contains(&got.count),
        "50% duplicated: {got:?} for 2000"
    );
    assert_eq!(got.altered, 0);
    impair(
        &cli,
        &lab,
        &["r1:eth2", "--corrupt", "50%", "--direction", "out"],
    );
    let got = frames(&r1, &r2, "eth2", 2000, false);
    assert!(got.count >= 1980, "corrupted frames still arrive: {got:?}");
    assert!(
        (800..=1200).contains(&got.altered),
        "50% corrupted: {got:?}"
    );

    // Reordering: a share of the frames goes at once, ahead of the delayed ones.
    impair(
        &cli,
        &lab,
        &[
            "r1:eth2",
            "--delay",
            "10ms",
            "--reorder",
            "25%",
            "--direction",
            "out",
        ],
    );
    let got = frames(&r1, &r2, "eth2", 2000, false);
    assert!(got.count >= 1980 && got.altered == 0, "{got:?}");
    assert!(got.reordered >= 200, "25% sent ahead: {got:?}");

    // A rate limit holds TCP to it.
    impair(
        &cli,
        &lab,
        &["r1:eth2", "--rate", "10mbit", "--direction", "out"],
    );
    let mbits = tcp_mbits(&r1, &r2, "10.0.1.2");
    assert!(
        (7.0..=11.0).contains(&mbits),
        "10 Mbit/s asked, {mbits:.2} measured"
    );

    // Delay and jitter both ways, combined with loss; 802.1Q-tagged frames keep their tag.
    impair(
        &cli,
        &lab,
        &[
            "r2:eth2", "--delay", "5ms", "--jitter", "1ms", "--loss", "1%",
        ],
    );
    let v = link_json(&cli, &lab, l2);
    assert_eq!(v["impairment"]["a_to_b"]["delay"], "5ms", "{v}");
    assert_eq!(v["impairment"]["b_to_a"]["jitter"], "1ms", "{v}");
    assert_eq!(v["state"], "up");
    let got = frames(&r1, &r2, "eth2", 1000, true);
    assert!(got.count >= 950, "{got:?}");
    assert_eq!(got.tagged, got.count, "every frame keeps its tag: {got:?}");
    assert_eq!(got.altered, 0, "{got:?}");

    // A second `up` with the same file keeps the live impairments (an agent's kill -9 with
    // impairments in place is tested across nodes, in integration/tests/xnode.rs).
    cli.up(&file);
    let v = link_json(&cli, &lab, l2);
    assert_eq!(v["impairment"]["a_to_b"]["loss"], "1%", "{v}");
    let v = link_json(&cli, &lab, "r1:eth1--r2:eth1");
    assert_eq!(v["impairment"]["a_to_b"]["delay"], "30ms", "declared: {v}");

    // Clear: the direct path again, and no pair is left.
    impair(&cli, &lab, &["r1:eth2", "--clear"]);
    impair(&cli, &lab, &["r1:eth1", "--clear"]);
    wait_until("the pairs removed", || stage_ends(&node).is_empty());
    let (_, avg, _) = rtt(&r1, "10.0.1.2", 10);
    assert!(avg < 10.0, "cleared: {avg}");
    let flows = node
        .ofctl(&["-O", "OpenFlow13", "dump-flows", &format!("ow-{lab}")])
        .unwrap();
    assert_eq!(
        flows.matches("cookie=0xf57").count(),
        4,
        "direct flows only: {flows}"
    );
    assert!(!no_carrier(&r1, "eth1") && !no_carrier(&r1, "eth2"));

    cli.ok(&["lab", "down", &lab]);
    assert!(stage_ends(&node).is_empty());
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn bad_impairments_are_refused_with_the_field_the_value_and_the_range() {
    let node = Testbed::node("imp").unwrap();
    let lab = lab_name("j");
    let cli = Cli::on(&node, &lab);
    let file = write_lab(node.dir(), &lab);
    cli.up(&file);
    for (args, expect) in [
        (vec!["--delay", "-5ms"], "must not be negative"),
        (vec!["--loss", "101%"], "0% to 100%"),
        (vec!["--jitter", "2ms"], "needs a delay"),
        (vec!["--reorder", "25%"], "needs a delay"),
        (vec!["--rate", "100furlongs"], "bit, kbit, mbit or gbit"),
        (vec!["--rate", "0mbit"], "must not be zero"),
        (vec!["--delay", "20"], "us, ms or s"),
        (
            vec!["--delay", "1ms", "--direction", "up"],
            "not a direction",
        ),
        (vec![], "say what to do"),
    ] {
        let mut all = vec!["link", "impair", "r1:eth2", "--lab", &lab];
        all.extend(args.iter().copied());
        let out = cli.run(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert_eq!(stage_ends(&node).len(), 2, "only the declared pair");

    let bad = node.dir().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "lab: {lab}x\nlinks:\n  - endpoints: [\"r1:eth1\", \"r2:eth1\"]\n    impair: {{loss: 120}}\n"
        ),
    )
    .unwrap();
    let out = cli.run(&["lab", "up", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("line 3") && err.contains("impair.loss") && err.contains("100%"),
        "{err}"
    );
}
