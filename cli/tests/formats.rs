//! Topology files of every format, as users bring them from other tools, end to end on a real,
//! private Open vSwitch: each is parsed, graphed, rendered for Kubernetes and brought up as a
//! local lab whose every wire carries frames both ways at the MTU the file sets; `lab down`
//! leaves nothing. Needs root.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ovswire_cli::spec::{EndpointSpec, LabSpec};

use ovswire_testbed::Testbed;
use ovswire_testbed::frames::{Send, send_and_count};
use support::{Cli, lab_name, netns_exec, no_carrier, wait_until};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

/// `fixture` copied into `dir` with its lab renamed from `from` to `to` (namespaces are
/// machine-wide, so every test run has its own lab names).
fn renamed(fixture_name: &str, dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture(fixture_name)).unwrap();
    // containerlab's and KNE's `name:`, or ovswire's `lab:`.
    let written = ["name: \"{}\"", "name: {}\n", "lab: {}\n"]
        .into_iter()
        .find(|form| text.contains(&form.replace("{}", from)))
        .unwrap_or_else(|| panic!("{fixture_name} names its lab {from}"));
    let text = text.replacen(&written.replace("{}", from), &written.replace("{}", to), 1);
    let file = dir.join(fixture_name);
    std::fs::write(&file, text).unwrap();
    file
}

/// The MTU of `ifname` in namespace `ns`, as `ip` reports it.
fn mtu(ns: &str, ifname: &str) -> u32 {
    let out = netns_exec(ns, &["cat", &format!("/sys/class/net/{ifname}/mtu")]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no MTU for {ns}:{ifname}: {out:?}"))
}

/// Brings the file up, checks every wire both ways, every LAN segment between each pair of
/// members, and the MTUs, graphs and renders it, and takes it down.
fn up_check_down(fixture_name: &str, lab_in_file: &str, tag: &str) {
    up_check_more_down(fixture_name, lab_in_file, tag, |_, _| {});
}

/// How many of 20 frames from `from` arrive at `to` (ends of lab `lab`); none altered.
fn frames_cross(lab: &str, from: &EndpointSpec, to: &EndpointSpec) -> usize {
    let ns = |e: &EndpointSpec| ovswire_cli::lab::netns_name(lab, &e.node);
    let arrived = send_and_count(
        &ns(from),
        &from.ifname,
        &ns(to),
        &to.ifname,
        Send::frames(20),
    )
    .unwrap();
    assert_eq!(arrived.altered, 0, "{from} to {to}");
    arrived.count
}

/// The members of each LAN segment of `spec`, by segment.
fn segments(spec: &LabSpec) -> BTreeMap<&str, Vec<&EndpointSpec>> {
    let mut out: BTreeMap<&str, Vec<&EndpointSpec>> = BTreeMap::new();
    for l in &spec.links {
        for (seg, member) in [(&l.a, &l.b), (&l.b, &l.a)] {
            if spec.nodes[&seg.node].is_segment() {
                out.entry(&seg.node).or_default().push(member);
            }
        }
    }
    out
}

/// [`up_check_down`], running `more` with the CLI and the lab's spec before taking it down.
fn up_check_more_down(
    fixture_name: &str,
    lab_in_file: &str,
    tag: &str,
    more: impl FnOnce(&Cli<'_>, &LabSpec),
) {
    let node = Testbed::node(tag).unwrap();
    let lab = lab_name(tag);
    let cli = Cli::on(&node, &lab);
    let file = renamed(fixture_name, node.dir(), lab_in_file, &lab);
    let spec = ovswire_cli::file::load(&file).unwrap();

    let graph = cli.ok(&["graph", file.to_str().unwrap()]);
    for name in spec.nodes.keys() {
        assert!(graph.contains(spec.names.node(name)), "{graph}");
    }
    // A pod for each node; the segments are listed in the Topology object.
    let segments = segments(&spec);
    let objects = cli.ok(&["topo", "render", file.to_str().unwrap()]);
    assert_eq!(
        objects.matches("\nkind: Pod\n").count(),
        spec.nodes.len() - segments.len(),
        "{objects}"
    );
    for seg in segments.keys() {
        assert!(objects.contains(&format!("  - {seg}\n")), "{objects}");
    }

    let table = cli.up(&file);
    assert_eq!(
        table.matches("  up").count(),
        spec.links.len(),
        "{fixture_name}: {table}"
    );
    // Every segment carries each member's frames to every other member.
    for (seg, members) in &segments {
        for from in members {
            for to in members.iter().filter(|to| *to != from) {
                assert_eq!(frames_cross(&lab, from, to), 20, "{fixture_name}: {seg}");
            }
        }
    }
    for link in &spec.links {
        let (a, b) = (&link.a, &link.b);
        if let Some(seg) = [a, b]
            .into_iter()
            .find(|e| spec.nodes[&e.node].is_segment())
        {
            let member = if seg == a { b } else { a };
            let want = link
                .mtu
                .or(spec.mtu)
                .unwrap_or(ovswire_core::model::DEFAULT_MTU);
            let ns = ovswire_cli::lab::netns_name(&lab, &member.node);
            assert_eq!(mtu(&ns, &member.ifname), want, "{}", link.name());
            continue;
        }
        let (a_ns, b_ns) = (
            ovswire_cli::lab::netns_name(&lab, &a.node),
            ovswire_cli::lab::netns_name(&lab, &b.node),
        );
        for (from, from_if, to, to_if) in [
            (&a_ns, &a.ifname, &b_ns, &b.ifname),
            (&b_ns, &b.ifname, &a_ns, &a.ifname),
        ] {
            let arrived = send_and_count(from, from_if, to, to_if, Send::frames(20)).unwrap();
            assert_eq!(
                (arrived.count, arrived.altered),
                (20, 0),
                "{fixture_name}: {} from {from}:{from_if}",
                link.name()
            );
        }
        let want = link
            .mtu
            .or(spec.mtu)
            .unwrap_or(ovswire_core::model::DEFAULT_MTU);
        assert_eq!(mtu(&a_ns, &a.ifname), want, "{}", link.name());
        assert_eq!(mtu(&b_ns, &b.ifname), want, "{}", link.name());
    }

    more(&cli, &spec);

    cli.ok(&["lab", "down", &lab]);
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("{lab}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn containerlab_bridge_nodes_are_lan_segments() {
    up_check_down("bridge.clab.yml", "bridge-lab", "br");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn lan_segment_members_are_flapped_impaired_and_counted_alone() {
    up_check_more_down("segments.yaml", "segments", "seg", |cli, spec| {
        let lab = &cli.lab;
        let member = |node: &str| {
            spec.interfaces()
                .find(|e| e.node == node && e.ifname == "eth1")
                .unwrap()
        };
        let (r1, r2, r3) = (member("r1"), member("r2"), member("r3"));
        let ns = |e: &EndpointSpec| ovswire_cli::lab::netns_name(lab, &e.node);
        // ARP is broadcast: IP crosses the LAN as on a switch.
        for to in ["10.0.1.2", "10.0.1.3"] {
            let out = netns_exec(&ns(r1), &["ping", "-c", "1", "-W", "2", to]);
            assert!(out.status.success(), "r1 pings {to}: {out:?}");
        }

        // r2's cable out: r2 alone loses carrier, r1 and r3 still talk.
        cli.ok(&["link", "down", "r2:eth1", "--lab", lab]);
        wait_until("r2:eth1 loses carrier", || no_carrier(&ns(r2), "eth1"));
        assert!(!no_carrier(&ns(r1), "eth1") && !no_carrier(&ns(r3), "eth1"));
        assert_eq!(frames_cross(lab, r1, r3), 20);
        assert_eq!(frames_cross(lab, r1, r2), 0);
        cli.ok(&["link", "up", "r2:eth1", "--lab", lab]);
        wait_until("r2:eth1 has carrier", || !no_carrier(&ns(r2), "eth1"));
        assert_eq!(frames_cross(lab, r1, r2), 20);

        // All that reaches r3 is lost; what r3 sends, and what r2 receives, is not.
        cli.ok(&[
            "link",
            "impair",
            "r3:eth1",
            "--direction",
            "in",
            "--loss",
            "100%",
            "--lab",
            lab,
        ]);
        assert_eq!(frames_cross(lab, r1, r3), 0);
        assert_eq!(frames_cross(lab, r1, r2), 20);
        assert_eq!(frames_cross(lab, r3, r2), 20);
        cli.ok(&["link", "impair", "r3:eth1", "--clear", "--lab", lab]);
        assert_eq!(frames_cross(lab, r1, r3), 20);

        // Each member's wire counts what its member sent into the segment.
        let stats = cli.ok(&["links", "--stats", "--json", "--lab", lab]);
        let r1_wire: serde_json::Value = stats
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["name"] == "lan1:e1--r1:eth1")
            .unwrap_or_else(|| panic!("no wire of r1 in {stats}"));
        // lan1:e1 sorts first: what r1 sends is b->a.
        let sent = r1_wire["stats"]["b_to_a"]["packets"].as_u64().unwrap_or(0);
        assert!(sent >= 20 * 4, "r1 sent 4 bursts of 20 frames: {r1_wire}");
    });
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn kne_ring_in_text_format_comes_up() {
    up_check_down("kne-ring.pb.txt", "kne-ring", "kr");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn kne_multivendor_comes_up_with_its_interface_mtus() {
    up_check_down("kne-multivendor.pb.txt", "multivendor", "km");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn containerlab_srlinux_ceos_and_sros_port_names_come_up() {
    up_check_down("srl-ceos.clab.yml", "srlceos01", "sc");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn containerlab_upper_case_node_names_come_up() {
    up_check_down("frr-caps.clab.yml", "frr_lab", "fc");
}

/// What `ovswire ARGS` (a command that runs until stopped) prints in its first two seconds.
fn watch_for_a_while(cli: &Cli<'_>, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ovswire"));
    cmd.args(args)
        .env("OVSWIRE_STATE_DIR", &cli.state)
        .stdout(std::process::Stdio::piped());
    let mut child = cli.spawn(cmd);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap()
}

/// Whether a line of `text` has every one of `words`.
fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines().any(|l| words.iter().all(|w| l.contains(w)))
}

/// Names as containerlab allows them (a lab and nodes that are not Kubernetes names, two nodes
/// that map to one name, SR Linux and SR OS ports): every command takes and shows them as
/// written, while namespaces and interfaces carry the mapped names.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn names_as_written_are_taken_and_shown_by_every_command() {
    let node = Testbed::node("nm").unwrap();
    let system = lab_name("nm");
    let written = format!("{}_Lab", system.to_uppercase());
    let lab = format!("{system}-lab");
    let cli = Cli::on(&node, &lab);
    let file = node.dir().join("names.clab.yml");
    std::fs::write(
        &file,
        format!(
            "name: {written}\ntopology:\n  defaults: {{kind: nokia_srlinux}}\n  nodes:\n    \
             Spine1: {{}}\n    Leaf_1: {{}}\n    leaf-1: {{}}\n  links:\n    \
             - endpoints: [\"Spine1:ethernet-1/1\", \"Leaf_1:ethernet-1/49\"]\n    \
             - endpoints: [\"Spine1:ethernet-1/2\", \"leaf-1:ethernet-1/49\"]\n    \
             - endpoints: [\"Leaf_1:1/1/c1/1\", \"leaf-1:1/1/c1/1\"]\n"
        ),
    )
    .unwrap();
    let spec = ovswire_cli::file::load(&file).unwrap();
    assert_eq!(spec.name, lab);
    let leaf = spec.names.node_system("Leaf_1");
    assert!(leaf.starts_with("leaf-1-"), "{leaf}");

    let out = cli.try_up(&file);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    // Progress is told with the written name too.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress
            .lines()
            .all(|l| l.starts_with(&format!("lab {written}: "))),
        "{progress}"
    );
    assert!(
        has_line(
            &table,
            &[
                &written,
                "Spine1:ethernet-1/1",
                "Leaf_1:ethernet-1/49",
                "up"
            ]
        ),
        "{table}"
    );
    assert!(
        has_line(&table, &["Leaf_1:1/1/c1/1", "leaf-1:1/1/c1/1", "up"]),
        "{table}"
    );
    let links = cli.ok(&["links", "--lab", &written]);
    assert!(
        has_line(
            &links,
            &[&written, "Spine1:ethernet-1/2", "leaf-1:ethernet-1/49"]
        ),
        "{links}"
    );

    // The written names work in commands; the kernel has the mapped ones.
    let leaf_ns = ovswire_cli::lab::netns_name(&lab, &leaf);
    let out = cli.ok(&["link", "down", "Leaf_1:ethernet-1/49", "--lab", &written]);
    assert!(
        has_line(
            &out,
            &["Spine1:ethernet-1/1", "Leaf_1:ethernet-1/49", "down"]
        ),
        "{out}"
    );
    wait_until("Leaf_1:ethernet-1/49 NO-CARRIER", || {
        no_carrier(&leaf_ns, "e1-49")
    });
    let events = watch_for_a_while(&cli, &["watch", "--since", "1h", "--lab", &written]);
    assert!(events.contains("Leaf_1:ethernet-1/49"), "{events}");
    cli.ok(&["link", "up", "Leaf_1:ethernet-1/49", "--lab", &written]);
    wait_until("Leaf_1:ethernet-1/49 carrier", || {
        !no_carrier(&leaf_ns, "e1-49")
    });
    let out = cli.ok(&[
        "link",
        "impair",
        "leaf-1:1/1/c1/1",
        "--delay",
        "1ms",
        "--lab",
        &written,
    ]);
    assert!(
        has_line(&out, &["Leaf_1:1/1/c1/1", "leaf-1:1/1/c1/1", "delay=1ms"]),
        "{out}"
    );
    let inspect = cli.ok(&["lab", "inspect", &written]);
    assert!(
        inspect.contains("Leaf_1") && inspect.contains("ethernet-1/49:up"),
        "{inspect}"
    );
    let dot = cli.ok(&["graph", "--lab", &written, "--format", "dot"]);
    assert!(
        dot.contains("label=\"Leaf_1\"") && dot.contains("ethernet-1/49"),
        "{dot}"
    );

    for link in &spec.links {
        let (a, b) = (&link.a, &link.b);
        let arrived = send_and_count(
            &ovswire_cli::lab::netns_name(&lab, &a.node),
            &a.ifname,
            &ovswire_cli::lab::netns_name(&lab, &b.node),
            &b.ifname,
            Send::frames(20),
        )
        .unwrap();
        assert_eq!(arrived.count, 20, "{}", link.name());
    }

    // Another lab whose name maps to the same one cannot come up beside it.
    let other = node.dir().join("other.yaml");
    std::fs::write(
        &other,
        format!("lab: {lab}\nlinks:\n  - endpoints: [\"x:eth1\", \"y:eth1\"]\n"),
    )
    .unwrap();
    let refused = cli.try_up(&other);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains(&format!("lab {written} is up as {lab}")),
        "{stderr}"
    );

    cli.ok(&["lab", "down", &written]);
    assert!(
        !cli.state.join("labs").join(&lab).exists(),
        "the lab's state is gone"
    );
    assert!(!Path::new("/run/netns").join(&leaf_ns).exists());
}

/// containerlab's links to the host: the host's ends appear where the lab runs, with their
/// names and MTU, carry frames and IP, lose carrier when the link goes down, and go with the
/// lab.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn host_links_end_in_the_host() {
    let node = Testbed::node("hl").unwrap();
    let lab = lab_name("hl");
    let cli = Cli::on(&node, &lab);
    let file = renamed("host-links.clab.yml", node.dir(), "hostlab", &lab);
    let host = node.netns().name().to_owned();

    let refused = cli.run(&["topo", "render", file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("ends in the host"),
        "{refused:?}"
    );

    let table = cli.up(&file);
    assert_eq!(table.matches("  up").count(), 3, "{table}");
    assert_eq!(mtu(&host, "hl-r2"), 1500);
    let r1 = ovswire_cli::lab::netns_name(&lab, "r1");
    for (from, from_if, to, to_if) in [(&r1, "eth2", &host, "hl-r1"), (&host, "hl-r1", &r1, "eth2")]
    {
        let arrived = send_and_count(from, from_if, to, to_if, Send::frames(20)).unwrap();
        assert_eq!(
            (arrived.count, arrived.altered),
            (20, 0),
            "{from}:{from_if}"
        );
    }
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(["-n", &host])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    ip(&["addr", "add", "192.0.2.1/24", "dev", "hl-r2"]);
    assert!(
        support::pings(&host, "192.0.2.2"),
        "the host reaches r2 over its host link"
    );

    cli.ok(&["link", "down", "r2:eth2", "--lab", &lab]);
    wait_until("hl-r2 NO-CARRIER", || no_carrier(&host, "hl-r2"));
    cli.ok(&["link", "up", "host:hl-r2", "--lab", &lab]);
    wait_until("hl-r2 carrier", || !no_carrier(&host, "hl-r2"));

    cli.ok(&["lab", "down", &lab]);
    for ifname in ["hl-r1", "hl-r2"] {
        let out = std::process::Command::new("ip")
            .args(["-n", &host, "link", "show", ifname])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{ifname} is left in the host");
    }

    // The host's interface names are the user's: one that exists is not taken over.
    ip(&[
        "link", "add", "hl-r1", "type", "veth", "peer", "name", "hl-mine",
    ]);
    let out = cli.try_up(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("hl-r1"),
        "{stderr}"
    );
    cli.ok(&["lab", "down", &lab]);
    let out = std::process::Command::new("ip")
        .args(["-n", &host, "link", "show", "hl-r1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hl-r1@hl-mine"),
        "the host's own hl-r1 is left alone: {out:?}"
    );
}
