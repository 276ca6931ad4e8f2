//! Labs of container nodes on a real container engine (Podman's Docker-compatible service, or
//! Docker) with images the suite builds locally (`scripts/build-image`, run by scripts/test),
//! wired on a private Open vSwitch: containers wired and reachable on their management network,
//! a killed container's peers losing carrier, a restarted one rewired, FRR routers converging
//! over every wire, bad input refused before anything is made, and `lab down` removing exactly
//! what the lab made. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ovswire_testbed::Testbed;
use support::{Cli, lab_name, netns_exec, pings, wait_until};

const BUSYBOX: &str = "localhost/ovswire/busybox:latest";
const FRR: &str = "localhost/ovswire/frr:latest";

/// The engine's command-line tool, the tests' oracle.
fn engine_cli() -> &'static str {
    if Path::new("/run/podman/podman.sock").exists() {
        "podman"
    } else {
        "docker"
    }
}

fn engine(args: &[&str]) -> std::process::Output {
    Command::new(engine_cli())
        .args(args)
        .output()
        .expect("run the engine's command-line tool")
}

fn need_image(image: &str) {
    let found = engine(&["image", "inspect", image]).status.success();
    assert!(
        found,
        "the test image {image} is missing: run scripts/build-image (scripts/test does)"
    );
}

/// Whether the engine has a container (`ps`) or network (`network`) named `name`.
fn engine_has(what: &str, name: &str) -> bool {
    let out = match what {
        "container" => engine(&["ps", "-a", "--format", "{{.Names}}"]),
        _ => engine(&["network", "ls", "--format", "{{.Name}}"]),
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == name)
}

/// Writes `text` as lab file `name` in a fresh directory, with `files` beside it.
fn lab_file(dir: &Path, name: &str, text: &str, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (f, content) in files {
        std::fs::write(dir.join(f), content).unwrap();
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Example lab `file` of `examples/`, with its directory `configs`, copied under `node`'s
/// directory with each `(from, to)` of `edits` made in the file.
fn example_lab(
    node: &ovswire_testbed::Node,
    configs: &str,
    file: &str,
    edits: &[(&str, &str)],
) -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = node.dir().join("lab");
    std::fs::create_dir_all(dir.join(configs)).unwrap();
    for entry in std::fs::read_dir(examples.join(configs)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(configs).join(entry.file_name())).unwrap();
    }
    let mut text = std::fs::read_to_string(examples.join(file)).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{file} has {from}");
        text = text.replace(from, to);
    }
    lab_file(&dir, file, &text, &[])
}

fn has_carrier(cli: &Cli<'_>, node: &str, ifname: &str) -> bool {
    let out = cli.run(&[
        "lab",
        "exec",
        node,
        "--lab",
        &cli.lab,
        "--",
        "cat",
        &format!("/sys/class/net/{ifname}/carrier"),
    ]);
    String::from_utf8_lossy(&out.stdout).trim() == "1"
}

fn exec_ok(cli: &Cli<'_>, node: &str, cmd: &[&str]) -> bool {
    let mut args = vec!["lab", "exec", node, "--lab", &cli.lab, "--"];
    args.extend_from_slice(cmd);
    cli.run(&args).status.success()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and a container engine; scripts/test runs it"
)]
fn container_nodes_are_wired_reachable_and_removed_with_nothing_else() {
    need_image(BUSYBOX);
    let node = Testbed::node("ctr").unwrap();
    let lab = lab_name("c");
    let cli = Cli::on(&node, &lab);
    let text = format!(
        "lab: {lab}\nmtu: 1500\nnodes:\n\
         \x20 c1:\n\
         \x20   image: {BUSYBOX}\n\
         \x20   cmd: sleep 100000\n\
         \x20   env: {{ROLE: edge}}\n\
         \x20   startup-config: c1.cfg\n\
         \x20   labels: {{team: net}}\n\
         \x20   exec: [\"ip -o link > /tmp/links-at-exec\", \"echo $ROLE > /tmp/role\"]\n\
         \x20 c2: {{image: {BUSYBOX}, cmd: sleep 100000}}\n\
         \x20 h1: {{exec: [\"true\"]}}\n\
         links:\n\
         \x20 - endpoints: [\"c1:eth1:10.0.0.1/30\", \"c2:eth1:10.0.0.2/30\"]\n\
         \x20 - endpoints: [\"c2:eth2:10.0.1.1/30\", \"h1:eth1:10.0.1.2/30\"]\n"
    );
    let file = lab_file(
        &node.dir().join("lab"),
        "lab.yaml",
        &text,
        &[("c1.cfg", "hostname c1\n")],
    );
    // Things of the user's that the lab must leave alone.
    let user_net = format!("{lab}-user");
    let user_ctr = format!("{lab}-mine");
    assert!(engine(&["network", "create", &user_net]).status.success());
    assert!(
        engine(&[
            "run",
            "-d",
            "--name",
            &user_ctr,
            "--network",
            "none",
            BUSYBOX,
            "sleep",
            "600"
        ])
        .status
        .success()
    );

    let table = cli.up(&file);
    assert_eq!(table.matches("  up").count(), 2, "{table}");

    // inspect: two containers with management addresses, one namespace.
    let nodes = json_lines(&cli.ok(&["lab", "inspect", &lab, "--json"]));
    assert_eq!(nodes.len(), 3);
    let c1 = nodes.iter().find(|n| n["name"] == "c1").unwrap();
    assert_eq!(c1["type"], "container");
    assert_eq!(c1["state"], "running");
    assert_eq!(c1["image"], BUSYBOX);
    assert_eq!(c1["interfaces"]["eth1"], "up");
    let c1_mgmt = c1["mgmt_ipv4"].as_str().unwrap().to_owned();
    let c2 = nodes.iter().find(|n| n["name"] == "c2").unwrap();
    let c2_mgmt = c2["mgmt_ipv4"].as_str().unwrap().to_owned();
    let h1 = nodes.iter().find(|n| n["name"] == "h1").unwrap();
    assert_eq!(
        (h1["type"].as_str(), h1["state"].as_str()),
        (Some("namespace"), Some("running"))
    );
    let table = cli.ok(&["lab", "inspect", &lab]);
    assert!(
        table.starts_with("NODE") && table.contains(&c1_mgmt),
        "{table}"
    );

    // Wires: container to container, and container to namespace.
    assert!(exec_ok(
        &cli,
        "c1",
        &["ping", "-c", "1", "-W", "2", "10.0.0.2"]
    ));
    assert!(exec_ok(
        &cli,
        "h1",
        &["ping", "-c", "1", "-W", "2", "10.0.1.1"]
    ));
    // The workload started with its interfaces there, and `exec` ran after the wiring.
    let links = cli.ok(&[
        "lab",
        "exec",
        "c1",
        "--lab",
        &lab,
        "--",
        "cat",
        "/tmp/links-at-exec",
    ]);
    assert!(links.contains("eth1"), "{links}");
    let role = cli.ok(&["lab", "exec", "c1", "--lab", &lab, "--", "cat", "/tmp/role"]);
    assert_eq!(role.trim(), "edge");
    let pid1 = cli.ok(&[
        "lab",
        "exec",
        "c1",
        "--lab",
        &lab,
        "--",
        "cat",
        "/proc/1/cmdline",
    ]);
    assert_eq!(
        pid1, "sleep\x00100000\x00",
        "the held entrypoint became the node's command"
    );
    let config = cli.ok(&[
        "lab",
        "exec",
        "c1",
        "--lab",
        &lab,
        "--",
        "cat",
        "/etc/ovswire/startup-config",
    ]);
    assert_eq!(config, "hostname c1\n");

    // On a terminal, `lab exec` gives the command one and passes the keys typed through.
    let mut typed = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} lab exec c1 --lab {lab} -- sh -c 'tty; read x; echo got $x; exit 3'",
                env!("CARGO_BIN_EXE_ovswire")
            ),
            "/dev/null",
        ])
        .env("OVSWIRE_STATE_DIR", &cli.state)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The typed line, with the terminal left open (an end of input right behind the line can
    // end the session before the command answers); closed after 10 s in any case.
    let mut keys = typed.stdin.take().unwrap();
    std::io::Write::write_all(&mut keys, b"hello\n").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(10));
        drop(keys);
    });
    let out = typed.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/") && text.contains("got hello"),
        "{text}"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "the command's exit code: {text}"
    );

    // The management network: reachable from the host, and in every node's /etc/hosts.
    let ping = Command::new("ping")
        .args(["-c", "1", "-W", "2", &c1_mgmt])
        .output()
        .unwrap();
    assert!(ping.status.success(), "the host reaches c1 at {c1_mgmt}");
    let hosts = cli.ok(&[
        "lab",
        "exec",
        "c1",
        "--lab",
        &lab,
        "--",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts.contains(&format!("{c2_mgmt}\tc2")) || hosts.contains(&format!("{c2_mgmt} c2")),
        "{hosts}"
    );
    assert!(exec_ok(&cli, "c1", &["ping", "-c", "1", "-W", "2", "c2"]));
    let labels = engine(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"team\"}}",
        &format!("{lab}-c1"),
    ]);
    assert_eq!(String::from_utf8_lossy(&labels.stdout).trim(), "net");

    // A second `up` with the same file changes nothing.
    let before = engine(&[
        "inspect",
        "--format",
        "{{.Id}} {{.State.StartedAt}}",
        &format!("{lab}-c1"),
    ]);
    cli.up(&file);
    let after = engine(&[
        "inspect",
        "--format",
        "{{.Id}} {{.State.StartedAt}}",
        &format!("{lab}-c1"),
    ]);
    assert_eq!(
        before.stdout, after.stdout,
        "the container was kept as it was"
    );

    cli.ok(&["lab", "down", &lab]);
    for n in ["c1", "c2"] {
        assert!(
            !engine_has("container", &format!("{lab}-{n}")),
            "container {n} left"
        );
    }
    assert!(
        !engine_has("network", &format!("ovswire-{lab}")),
        "management network left"
    );
    assert!(!Path::new("/run/netns").join(format!("{lab}-h1")).exists());
    assert!(
        engine_has("network", &user_net),
        "the user's network was removed"
    );
    assert!(
        engine_has("container", &user_ctr),
        "the user's container was removed"
    );
    let ports = node
        .vsctl(&["--bare", "--columns=name", "list", "Interface"])
        .unwrap();
    assert!(
        !ports.lines().any(|l| l.starts_with("ow") && l.len() == 15),
        "{ports}"
    );
    engine(&["rm", "-f", &user_ctr]);
    engine(&["network", "rm", &user_net]);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and a container engine; scripts/test runs it"
)]
fn a_killed_container_drops_its_peers_and_a_restarted_one_is_rewired_alone() {
    need_image(BUSYBOX);
    let node = Testbed::node("ctr").unwrap();
    let lab = lab_name("k");
    let cli = Cli::on(&node, &lab);
    let text = format!(
        "lab: {lab}\nnodes:\n\
         \x20 a: {{image: {BUSYBOX}, cmd: sleep 100000}}\n\
         \x20 b: {{image: {BUSYBOX}, cmd: sleep 100000, exec: [\"echo run >> /tmp/runs\"]}}\n\
         \x20 c: {{image: {BUSYBOX}, cmd: sleep 100000}}\n\
         links:\n\
         \x20 - endpoints: [\"a:eth1:10.0.0.1/30\", \"b:eth1:10.0.0.2/30\"]\n\
         \x20 - endpoints: [\"b:eth2:10.0.1.1/30\", \"c:eth1:10.0.1.2/30\"]\n\
         \x20 - endpoints: [\"a:eth2:10.0.2.1/30\", \"c:eth2:10.0.2.2/30\"]\n"
    );
    let file = lab_file(&node.dir().join("lab"), "lab.yaml", &text, &[]);
    cli.up(&file);
    let flows = || {
        let out = node
            .ofctl(&["-O", "OpenFlow13", "dump-flows", &format!("ow-{lab}")])
            .unwrap();
        out.lines()
            .filter(|l| l.contains("cookie="))
            .map(|l| {
                let (head, rest) = l.split_once(", duration=").unwrap();
                let (secs, tail) = rest.split_once("s,").unwrap();
                let key = format!("{head} {}", tail.split_once("priority").map_or("", |t| t.1));
                (key, secs.parse::<f64>().unwrap())
            })
            .collect::<Vec<_>>()
    };
    let before = flows();
    let since = std::time::Instant::now();
    assert_eq!(before.len(), 6);

    // Killed: its peers lose carrier; the link around it keeps its.
    engine(&["kill", &format!("{lab}-b")]);
    wait_until("a:eth1 NO-CARRIER", || !has_carrier(&cli, "a", "eth1"));
    wait_until("c:eth1 NO-CARRIER", || !has_carrier(&cli, "c", "eth1"));
    assert!(
        has_carrier(&cli, "a", "eth2"),
        "a:eth2--c:eth2 does not involve b"
    );
    let nodes = json_lines(&cli.ok(&["lab", "inspect", &lab, "--json"]));
    let b = nodes.iter().find(|n| n["name"] == "b").unwrap();
    assert_ne!(b["state"], "running", "{b}");

    // Started again, in a new namespace: rewired with its addresses, `exec` run again.
    std::thread::sleep(Duration::from_millis(300));
    assert!(engine(&["start", &format!("{lab}-b")]).status.success());
    wait_until("a:eth1 carrier back", || has_carrier(&cli, "a", "eth1"));
    wait_until("c:eth1 carrier back", || has_carrier(&cli, "c", "eth1"));
    wait_until("a reaches b again", || {
        exec_ok(&cli, "a", &["ping", "-c", "1", "-W", "1", "10.0.0.2"])
    });
    assert!(exec_ok(
        &cli,
        "c",
        &["ping", "-c", "1", "-W", "1", "10.0.1.1"]
    ));
    let runs = cli.ok(&["lab", "exec", "b", "--lab", &lab, "--", "cat", "/tmp/runs"]);
    assert_eq!(runs.lines().count(), 2, "exec ran at each start: {runs}");
    // The link that does not touch b kept its flows all along: they aged by the whole time
    // since, where b's links' flows are new (b's ports may get their old numbers back, so the
    // flows' matches alone cannot tell).
    let after = flows();
    let elapsed = since.elapsed().as_secs_f64();
    let untouched: Vec<&(String, f64)> = after
        .iter()
        .filter(|(k, age)| {
            before
                .iter()
                .any(|(k0, age0)| k0 == k && *age + 0.5 >= age0 + elapsed)
        })
        .collect();
    assert_eq!(
        untouched.len(),
        2,
        "only a:eth2--c:eth2's two flows are as old as before: {before:?} {after:?} ({elapsed:.1} s)"
    );
    let supervisor =
        std::fs::read_to_string(cli.state.join("labs").join(&lab).join("supervisor.log")).unwrap();
    assert!(supervisor.contains("rewiring b"), "{supervisor}");

    // A restart by the engine itself (`restart`) is followed the same way.
    assert!(
        engine(&["restart", "-t", "0", &format!("{lab}-b")])
            .status
            .success()
    );
    wait_until("a reaches b after a restart", || {
        has_carrier(&cli, "a", "eth1")
            && exec_ok(&cli, "a", &["ping", "-c", "1", "-W", "1", "10.0.0.2"])
    });
    cli.ok(&["lab", "down", &lab]);
    assert!(!engine_has("container", &format!("{lab}-b")));
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and a container engine; scripts/test runs it"
)]
fn frr_routers_in_containers_converge_over_every_wire_and_save_their_configs() {
    need_image(FRR);
    let node = Testbed::node("frr").unwrap();
    let lab = lab_name("f");
    let cli = Cli::on(&node, &lab);
    // The example lab, as its README tells users to run it, under a name of the test's own.
    let file = example_lab(
        &node,
        "frr-clos",
        "frr-clos.clab.yml",
        &[
            ("name: frr-clos", &format!("name: {lab}")),
            ("${FRR_IMAGE:=quay.io/frrouting/frr:10.2.1}", FRR),
        ],
    );
    let table = cli.up(&file);
    assert_eq!(table.matches("  up").count(), 8, "{table}");

    // An IS-IS adjacency on every wire, then every router reaches every loopback.
    for leaf in ["leaf1", "leaf2", "leaf3", "leaf4"] {
        wait_until(&format!("{leaf} sees both spines"), || {
            let out = cli.run(&[
                "lab",
                "exec",
                leaf,
                "--lab",
                &lab,
                "--",
                "vtysh",
                "-c",
                "show isis neighbor",
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().filter(|l| l.contains(" Up ")).count() == 2
        });
    }
    let loopbacks = [
        ("leaf1", "10.0.0.1"),
        ("leaf2", "10.0.0.2"),
        ("leaf3", "10.0.0.3"),
        ("leaf4", "10.0.0.4"),
        ("spine1", "10.0.0.11"),
        ("spine2", "10.0.0.12"),
    ];
    for (from, src) in loopbacks {
        for (_, to) in loopbacks {
            wait_until(&format!("{from} reaches {to}"), || {
                exec_ok(&cli, from, &["ping", "-c", "1", "-W", "1", "-I", src, to])
            });
        }
    }
    // ECMP: leaf1 reaches leaf4 over both spines.
    let route = cli.ok(&[
        "lab", "exec", "leaf1", "--lab", &lab, "--", "ip", "route", "show", "10.0.0.4",
    ]);
    assert_eq!(route.matches("nexthop").count(), 2, "{route}");

    // TCP between two routers, across the wire leaf1:eth1--spine1:eth1.
    let server = Command::new(env!("CARGO_BIN_EXE_ovswire"))
        .args([
            "lab", "exec", "spine1", "--lab", &lab, "--", "iperf3", "-s", "-1", "-B", "10.1.1.0",
        ])
        .env("OVSWIRE_STATE_DIR", &cli.state)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let report = cli.ok(&[
        "lab", "exec", "leaf1", "--lab", &lab, "--", "iperf3", "-c", "10.1.1.0", "-t", "1", "-J",
    ]);
    let _ = server.wait_with_output();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(bps > 0.0, "TCP crossed the wire: {report}");
    eprintln!("TCP between FRR containers: {:.2} Gbit/s", bps / 1e9);

    // The counters: IS-IS hellos cross every wire both ways each second, and the TCP test
    // crossed leaf1's wire to spine1 (a is leaf1:eth1): its frames carry what iperf3
    // received, plus headers and the routers' own protocols. OVS folds its datapath's counts
    // into the flows' every half second or so, hence the wait.
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let stats = |name: &str| -> Option<serde_json::Value> {
        let links = cli.ok(&["links", "--stats", "--json", "--lab", &lab]);
        links
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["name"] == name)
            .map(|l| l["stats"].clone())
    };
    wait_until("the TCP test counted on its wire", || {
        stats("leaf1:eth1--spine1:eth1")
            .and_then(|s| s["a_to_b"]["bytes"].as_u64())
            .is_some_and(|b| b >= received)
    });
    let bytes = stats("leaf1:eth1--spine1:eth1").unwrap()["a_to_b"]["bytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        bytes < received + received / 10 + 1_000_000,
        "{bytes} bytes counted for {received} received by iperf3"
    );
    let links = cli.ok(&["links", "--stats", "--json", "--lab", &lab]);
    for line in links.lines() {
        let l: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = &l["stats"];
        assert!(
            s["a_to_b"]["packets"].as_u64() > Some(0) && s["b_to_a"]["packets"].as_u64() > Some(0),
            "hellos both ways: {line}"
        );
    }

    let saved = node.dir().join("saved");
    let out = cli.ok(&["lab", "save", &lab, "--output", saved.to_str().unwrap()]);
    assert_eq!(out.matches("saved to").count(), 6, "{out}");
    let leaf1 = std::fs::read_to_string(saved.join("leaf1.conf")).unwrap();
    assert!(
        leaf1.contains("router isis fabric") && leaf1.contains("10.0.0.1/32"),
        "{leaf1}"
    );
    cli.ok(&["lab", "down", &lab]);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and a container engine; scripts/test runs it"
)]
fn a_mgmt_net_link_joins_a_node_to_the_containers_management_network() {
    need_image(BUSYBOX);
    // The engine's bridge is in the machine's namespace: the lab runs there, on its own OVS.
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_name("m");
    let cli = Cli::in_host(&dir.path().join("state"), &lab);
    let host_if = format!("{lab}-m");
    let text = format!(
        "name: {lab}
topology:
  nodes:
    c1: {{kind: linux, image: {BUSYBOX}, cmd: sleep 100000}}
    r1: {{kind: linux}}
  links:
    - endpoints: [\"r1:eth1\", \"mgmt-net:{host_if}\"]
      mtu: 1500
"
    );
    let file = lab_file(dir.path(), "mgmt.clab.yml", &text, &[]);
    cli.up(&file);

    // The host end is a port of the management network's bridge: the one with its gateway.
    let nodes = json_lines(&cli.ok(&["lab", "inspect", &lab, "--json"]));
    let c1 = nodes.iter().find(|n| n["name"] == "c1").unwrap();
    let c1_mgmt: std::net::Ipv4Addr = c1["mgmt_ipv4"].as_str().unwrap().parse().unwrap();
    let o = c1_mgmt.octets();
    let gateway = format!("{}.{}.{}.1", o[0], o[1], o[2]);
    let shown = Command::new("ip")
        .args(["-o", "addr", "show", "to", &gateway])
        .output()
        .unwrap();
    let bridge = String::from_utf8_lossy(&shown.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no interface has {gateway}"))
        .to_owned();
    let link = Command::new("ip")
        .args(["-o", "link", "show", &host_if])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains(&format!("master {bridge} ")), "{link}");

    // The node reaches the container over it, as a host on the management network would.
    let r1 = ovswire_cli::lab::netns_name(&lab, "r1");
    let addr = format!("{}.{}.{}.250/24", o[0], o[1], o[2]);
    assert!(
        netns_exec(&r1, &["ip", "addr", "add", &addr, "dev", "eth1"])
            .status
            .success()
    );
    wait_until("r1 reaches c1 on the management network", || {
        pings(&r1, &c1_mgmt.to_string())
    });
    cli.ok(&["lab", "down", &lab]);
    assert!(
        !Command::new("ip")
            .args(["link", "show", &host_if])
            .output()
            .unwrap()
            .status
            .success(),
        "the host end went with the lab"
    );

    // Without container nodes there is no management network to join.
    let text = format!(
        "name: {lab}
topology:
  nodes:
    r1: {{kind: linux}}
  links:
    - endpoints: [\"r1:eth1\", \"mgmt-net:{host_if}\"]
"
    );
    let file = lab_file(dir.path(), "none.clab.yml", &text, &[]);
    let out = cli.try_up(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("the lab has none"),
        "{err}"
    );
}

/// The IS-IS neighbours `router` has Up, by system id (host name).
fn isis_up(cli: &Cli<'_>, router: &str) -> Vec<String> {
    let out = cli.run(&[
        "lab",
        "exec",
        router,
        "--lab",
        &cli.lab,
        "--",
        "vtysh",
        "-c",
        "show isis neighbor",
    ]);
    let mut up: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" Up "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    up.sort();
    up
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and a container engine; scripts/test runs it"
)]
fn frr_routers_on_a_lan_segment_form_a_broadcast_isis_adjacency_between_all_three() {
    need_image(FRR);
    let node = Testbed::node("lan").unwrap();
    let lab = lab_name("l");
    let cli = Cli::on(&node, &lab);
    // The example lab, as its comments tell users to run it, under a name of the test's own.
    let file = example_lab(
        &node,
        "frr-lan",
        "frr-lan.yaml",
        &[
            ("lab: frr-lan", &format!("lab: {lab}")),
            ("localhost/ovswire/frr:latest", FRR),
        ],
    );
    let table = cli.up(&file);
    assert_eq!(table.matches("  up").count(), 3, "{table}");

    // Each router is adjacent to both others over its one interface: a broadcast circuit.
    let others = |me: &str| -> Vec<String> {
        ["r1", "r2", "r3"]
            .into_iter()
            .filter(|r| *r != me)
            .map(str::to_owned)
            .collect()
    };
    for r in ["r1", "r2", "r3"] {
        wait_until(&format!("{r} is adjacent to both others"), || {
            isis_up(&cli, r) == others(r)
        });
    }
    let circuit = cli.ok(&[
        "lab",
        "exec",
        "r2",
        "--lab",
        &lab,
        "--",
        "vtysh",
        "-c",
        "show isis interface detail",
    ]);
    assert!(
        circuit.contains("Type: lan"),
        "a broadcast circuit: {circuit}"
    );
    for (from, src) in [("r1", "10.0.0.1"), ("r2", "10.0.0.2"), ("r3", "10.0.0.3")] {
        for to in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            wait_until(&format!("{from} reaches {to}"), || {
                exec_ok(&cli, from, &["ping", "-c", "1", "-W", "1", "-I", src, to])
            });
        }
    }

    // r3's cable out: r1 and r2 lose it when its hellos stop (3 s) and keep each other.
    cli.ok(&["link", "down", "r3:eth1", "--lab", &lab]);
    for r in ["r1", "r2"] {
        let other = if r == "r1" { "r2" } else { "r1" };
        wait_until(&format!("{r} loses r3 and keeps {other}"), || {
            isis_up(&cli, r) == [other]
        });
    }
    assert!(!has_carrier(&cli, "r3", "eth1"));
    assert!(exec_ok(
        &cli,
        "r1",
        &["ping", "-c", "1", "-W", "1", "10.0.0.2"]
    ));
    cli.ok(&["link", "up", "r3:eth1", "--lab", &lab]);
    for r in ["r1", "r2", "r3"] {
        wait_until(&format!("{r} is adjacent to both others again"), || {
            isis_up(&cli, r) == others(r)
        });
    }
    cli.ok(&["lab", "down", &lab]);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and a container engine; scripts/test runs it"
)]
fn bad_container_input_is_refused_with_the_node_and_line_before_anything_is_made() {
    need_image(BUSYBOX);
    let node = Testbed::node("bad").unwrap();
    let lab = lab_name("b");
    let cli = Cli::on(&node, &lab);
    let dir = node.dir().join("lab");
    let cases = [
        (
            "image: localhost/ovswire/no-such-image:1",
            vec![
                "image localhost/ovswire/no-such-image:1",
                "cannot be pulled",
                "nothing was created",
            ],
        ),
        ("image: x\n    kind: ceos", vec!["kind ceos", "kind linux"]),
        (
            "image: x\n    kind: router9000",
            vec!["unknown kind \"router9000\""],
        ),
        (
            "image: x\n    startup-config: missing.cfg",
            vec!["startup-config", "does not exist"],
        ),
        (
            "image: x\n    binds: [nowhere:/etc/x]",
            vec!["bind", "does not exist"],
        ),
        (
            "image: x\n    mgmt-ipv4: 10.1.2.3",
            vec!["mgmt-ipv4 10.1.2.3 is outside"],
        ),
    ];
    for (setting, expected) in cases {
        let setting = setting.replace("image: x", &format!("image: {BUSYBOX}"));
        let setting = if setting.contains("no-such-image") {
            "image: localhost/ovswire/no-such-image:1".to_owned()
        } else {
            setting
        };
        let text = format!(
            "lab: {lab}\nmgmt: {{ipv4-subnet: 172.30.250.0/24}}\nnodes:\n  r1:\n    {setting}\n  r2: {{image: {BUSYBOX}, cmd: sleep 1000}}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n"
        );
        let file = lab_file(&dir, "lab.yaml", &text, &[]);
        let out = cli.run(&[
            "lab",
            "up",
            file.to_str().unwrap(),
            &cli.ovs[0],
            &cli.ovs[1],
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{setting}: {err}");
        for e in &expected {
            assert!(err.contains(e), "{setting}: wants {e:?}: {err}");
        }
        assert!(
            err.contains("node r1") && err.contains("line 5"),
            "{setting}: {err}"
        );
        assert!(
            !cli.state.join("labs").join(&lab).exists(),
            "{setting}: lab state made"
        );
        assert!(
            !engine_has("network", &format!("ovswire-{lab}")),
            "{setting}: network made"
        );
        assert!(
            !engine_has("container", &format!("{lab}-r2")),
            "{setting}: container made"
        );
    }
    // One management address for two nodes.
    let text = format!(
        "lab: {lab}\nnodes:\n  r1: {{image: {BUSYBOX}, mgmt-ipv4: 172.20.20.9}}\n  r2: {{image: {BUSYBOX}, mgmt-ipv4: 172.20.20.9}}\n"
    );
    let file = lab_file(&dir, "lab.yaml", &text, &[]);
    let out = cli.run(&[
        "lab",
        "up",
        file.to_str().unwrap(),
        &cli.ovs[0],
        &cli.ovs[1],
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("line 4: node r2: mgmt-ipv4 172.20.20.9 is taken by node r1 too"),
        "{err}"
    );
    assert!(!cli.state.join("labs").join(&lab).exists());
}

/// KNE files' container nodes: the command's arguments and the startup configuration, from a
/// file or inline, mounted where `config_path` and `config_file` say.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and a container engine; scripts/test runs it"
)]
fn kne_container_nodes_get_their_configuration_where_the_file_says() {
    need_image(BUSYBOX);
    let node = Testbed::node("kctr").unwrap();
    let lab = lab_name("k");
    let cli = Cli::on(&node, &lab);
    let text = format!(
        r#"name: "{lab}"
nodes: {{
  name: "r1"
  vendor: HOST
  config: {{ image: "{BUSYBOX}" args: "sleep" args: "100000" data: "hostname r1\n" config_path: "/etc/kne" config_file: "r1.cfg" }}
}}
nodes: {{
  name: "r2"
  vendor: HOST
  config: {{ image: "{BUSYBOX}" args: "sleep" args: "100000" file: "r2.cfg" config_path: "/etc/kne" }}
}}
links: {{ a_node: "r1" a_int: "eth1" z_node: "r2" z_int: "eth1" }}
"#
    );
    let file = lab_file(
        &node.dir().join("lab"),
        "lab.pb.txt",
        &text,
        &[("r2.cfg", "hostname r2\n")],
    );
    let table = cli.up(&file);
    assert!(
        table.contains("r1:eth1--r2:eth1") && table.contains("up"),
        "{table}"
    );
    for (n, path, want) in [
        ("r1", "/etc/kne/r1.cfg", "hostname r1"),
        ("r2", "/etc/kne/r2.cfg", "hostname r2"),
    ] {
        let out = cli.ok(&["lab", "exec", n, "--lab", &lab, "--", "cat", path]);
        assert_eq!(out.trim(), want, "{n}:{path}");
    }
    wait_until("r1:eth1 carrier", || has_carrier(&cli, "r1", "eth1"));
    cli.ok(&["lab", "down", &lab]);
    assert!(!engine_has("container", &format!("{lab}-r1")));
}
