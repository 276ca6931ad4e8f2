//! Topology files of every format, as users bring them from other tools, end to end on a real,
//! private Open vSwitch: each is parsed, graphed, rendered for Kubernetes and brought up as a
//! local lab whose every wire carries frames both ways at the MTU the file sets; `lab down`
//! leaves nothing. Needs root.

mod support;

use std::path::{Path, PathBuf};

use ovswire_testbed::Testbed;
use ovswire_testbed::frames::{Send, send_and_count};
use support::{Cli, lab_name, netns_exec};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

/// `fixture` copied into `dir` with its lab renamed from `from` to `to` (namespaces are
/// machine-wide, so every test run has its own lab names).
fn renamed(fixture_name: &str, dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture(fixture_name)).unwrap();
    let (quoted, plain) = (format!("name: \"{from}\""), format!("name: {from}\n"));
    assert!(
        text.contains(&quoted) || text.contains(&plain),
        "{fixture_name} names its lab {from}"
    );
    let text = text
        .replacen(&quoted, &format!("name: \"{to}\""), 1)
        .replacen(&plain, &format!("name: {to}\n"), 1);
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

/// Brings the file up, checks every wire both ways and the MTUs, graphs and renders it, and
/// takes it down.
fn up_check_down(fixture_name: &str, lab_in_file: &str, tag: &str) {
    let node = Testbed::node(tag).unwrap();
    let lab = lab_name(tag);
    let cli = Cli::on(&node, &lab);
    let file = renamed(fixture_name, node.dir(), lab_in_file, &lab);
    let spec = ovswire_cli::file::load(&file).unwrap();

    let graph = cli.ok(&["graph", file.to_str().unwrap()]);
    for name in spec.nodes.keys() {
        assert!(graph.contains(name.as_str()), "{graph}");
    }
    let objects = cli.ok(&["topo", "render", file.to_str().unwrap()]);
    assert_eq!(
        objects.matches("\nkind: Pod\n").count(),
        spec.nodes.len(),
        "{objects}"
    );

    let table = cli.up(&file);
    assert_eq!(
        table.matches("  up").count(),
        spec.links.len(),
        "{fixture_name}: {table}"
    );
    for link in &spec.links {
        let (a, b) = (&link.a, &link.b);
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
