use std::path::{Path, PathBuf};

use ovswire_core::model::AdminState;
use ovswire_core::topology::Topology;

use super::*;
use crate::spec::{Cidr, EndpointSpec, LabLink, LabSpec};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

/// `node:ifname` with addresses.
fn ep(endpoint: &str, addrs: &[&str]) -> EndpointSpec {
    let (node, ifname) = endpoint.split_once(':').unwrap();
    EndpointSpec {
        node: node.to_owned(),
        ifname: ifname.to_owned(),
        addrs: addrs.iter().map(|a| a.parse::<Cidr>().unwrap()).collect(),
    }
}

fn link(a: EndpointSpec, b: EndpointSpec, mtu: Option<u32>, down: bool) -> LabLink {
    LabLink {
        a,
        b,
        mtu,
        down,
        impair: Default::default(),
    }
}

/// A link between two endpoints without addresses.
fn plain(a: &str, b: &str) -> LabLink {
    link(ep(a, &[]), ep(b, &[]), None, false)
}

fn exec(cmds: &[&str]) -> Vec<String> {
    cmds.iter().map(|c| (*c).to_owned()).collect()
}

/// Every node's name and `exec` commands.
fn execs(spec: &LabSpec) -> Vec<(&str, &Vec<String>)> {
    spec.nodes
        .iter()
        .map(|(n, s)| (n.as_str(), &s.exec))
        .collect()
}

/// Parses `text` (named `origin`) in `format` and returns the error's message and line.
fn error(text: &str, origin: &str, format: Format) -> (String, Option<usize>) {
    let e = parse(text, origin, format).expect_err(text);
    (e.to_string(), e.line())
}

fn load_error(name: &str) -> (String, Option<usize>) {
    let e = load(&fixture(name)).expect_err(name);
    let message = e.to_string();
    // Messages name the file as given; keep the fixture's name only, for readable asserts.
    let dir = format!(
        "{}/",
        fixture("").display().to_string().trim_end_matches('/')
    );
    (message.replace(&dir, ""), e.line())
}

#[test]
fn containerlab_clos_fabric() {
    let spec = load(&fixture("clos.clab.yml")).unwrap();
    assert_eq!(spec.name, "clos");
    assert_eq!(spec.mtu, None);

    let srl = [
        "sysctl -w net.ipv4.ip_forward=1",
        "sysctl -w net.ipv6.conf.all.forwarding=1",
    ];
    let spine = [
        &srl[..],
        &["sysctl -w net.ipv4.fib_multipath_hash_policy=1"],
    ]
    .concat();
    let leaf = [&srl[..], &["sysctl -w net.ipv4.conf.all.rp_filter=0"]].concat();
    let leaf1 = [&leaf[..], &["ip address add 192.0.2.1/32 dev lo"]].concat();
    let expected_nodes = [
        (
            "client1",
            exec(&[
                "sysctl -w net.ipv4.ip_forward=1",
                "ip link set dev lo up",
                "ip address add 172.16.1.10/24 dev eth1",
                "ip route add default via 172.16.1.1",
            ]),
        ),
        ("leaf1", exec(&leaf1)),
        ("leaf2", exec(&leaf)),
        ("leaf3", exec(&leaf)),
        ("leaf4", exec(&leaf)),
        ("spine1", exec(&spine)),
        ("spine2", exec(&spine)),
    ];
    let expected: Vec<(&str, &Vec<String>)> = expected_nodes.iter().map(|(n, s)| (*n, s)).collect();
    assert_eq!(execs(&spec), expected);

    let expected_links = vec![
        plain("leaf1:e1-49", "spine1:e1-1"),
        link(
            ep("leaf2:e1-49", &[]),
            ep("spine1:e1-2", &[]),
            Some(9000),
            false,
        ),
        plain("leaf3:e1-49", "spine1:e1-3"),
        plain("leaf4:e1-49", "spine1:e1-4"),
        link(
            ep("leaf1:e1-50", &["10.0.2.1/31"]),
            ep("spine2:e1-1", &["10.0.2.0/31", "2001:db8:2::/127"]),
            Some(9000),
            false,
        ),
        link(
            ep("leaf2:e1-50", &["10.0.2.3/31"]),
            ep("spine2:e1-2", &["10.0.2.2/31"]),
            None,
            false,
        ),
        plain("leaf3:e1-50", "spine2:e1-3"),
        plain("leaf4:e1-50", "spine2:e1-4"),
        plain("client1:eth1", "leaf1:e1-1"),
    ];
    assert_eq!(spec.links, expected_links);
}

#[test]
fn k8s_topo_ring_is_named_after_its_file() {
    let spec = load(&fixture("ring.k8s-topo.yml")).unwrap();
    assert_eq!(spec.name, "ring");
    assert_eq!(spec.mtu, None);
    assert_eq!(
        spec.nodes.keys().collect::<Vec<_>>(),
        ["qrtr-1", "qrtr-2", "qrtr-3", "qrtr-4"]
    );
    assert!(spec.nodes.values().all(|n| n.exec.is_empty()));
    let a = |e, ip| ep(e, &[ip]);
    assert_eq!(
        spec.links,
        vec![
            link(
                a("qrtr-1:eth1", "12.12.12.1/24"),
                a("qrtr-2:eth1", "12.12.12.2/24"),
                None,
                false
            ),
            link(
                a("qrtr-2:eth2", "23.23.23.2/24"),
                a("qrtr-3:eth1", "23.23.23.3/24"),
                None,
                false
            ),
            link(
                a("qrtr-3:eth2", "34.34.34.3/24"),
                a("qrtr-4:eth1", "34.34.34.4/24"),
                None,
                false
            ),
            plain("qrtr-4:eth2", "qrtr-1:eth2"),
        ]
    );
}

#[test]
fn native_file_with_nodes_addresses_and_states() {
    let spec = load(&fixture("native.yaml")).unwrap();
    assert_eq!(spec.name, "triangle");
    assert_eq!(spec.mtu, Some(9000));
    assert_eq!(
        execs(&spec),
        vec![
            ("r1", &exec(&["ip route add 10.0.23.0/30 via 10.0.12.2"])),
            ("r2", &exec(&["sysctl -w net.ipv4.ip_forward=1"])),
            ("r3", &Vec::new()),
            ("spare", &Vec::new()),
        ]
    );
    assert_eq!(
        spec.links,
        vec![
            link(
                ep("r1:eth1", &["10.0.12.1/30"]),
                ep("r2:eth1", &["10.0.12.2/30"]),
                None,
                false
            ),
            link(
                ep("r2:eth2", &["10.0.23.1/30", "2001:db8:23::1/64"]),
                ep("r3:eth1", &["10.0.23.2/30", "2001:db8:23::2/64"]),
                Some(1500),
                false,
            ),
            link(
                ep("r3:eth2", &["2001:db8:31::3/64"]),
                ep("r1:eth2", &["2001:db8:31::1/64"]),
                None,
                true,
            ),
        ]
    );
}

#[test]
fn native_accepts_the_agent_format() {
    let text = "lab: demo\nmtu: 9000\npods: [r1, r2, r3]\nlinks:\n  - endpoints: [\"r1:eth1\", \"r2:eth1\"]\n  - endpoints: [r2:eth2, r3:eth1]\n    mtu: 1500\n    state: down\n";
    let spec = parse(text, "t.yaml", Format::Native).unwrap();
    assert_eq!(spec.nodes.len(), 3);
    assert_eq!(
        spec.links,
        vec![
            plain("r1:eth1", "r2:eth1"),
            link(ep("r2:eth2", &[]), ep("r3:eth1", &[]), Some(1500), true),
        ]
    );
    // Without pods or nodes, the links' nodes are the lab's nodes; links may be absent.
    let spec = parse(
        "lab: x\nlinks:\n- endpoints: [a:e1, b:e1]\n",
        "t",
        Format::Native,
    )
    .unwrap();
    assert_eq!(spec.nodes.keys().collect::<Vec<_>>(), ["a", "b"]);
    let spec = parse("lab: x\nnodes:\n  a:\n", "t", Format::Native).unwrap();
    assert_eq!((spec.nodes.len(), spec.links.len()), (1, 0));
}

#[test]
fn containerlab_exec_is_inherited_like_containerlab_does() {
    // defaults, then the kind's (here found through the default group), then the group's, then
    // the node's own.
    let text = "\
name: inherit
topology:
  defaults: {group: g, exec: [d]}
  kinds:
    srl: {exec: [k]}
    ceos: {exec: [never]}
  groups:
    g: {kind: srl, exec: [g]}
    h: {exec: [h]}
  nodes:
    a: {exec: [a]}
    b: {group: h}
    c: {kind: ceos, group: h, exec: [c]}
";
    let spec = parse(text, "t.clab.yml", Format::Containerlab).unwrap();
    let execs: Vec<(&str, Vec<&str>)> = spec
        .nodes
        .iter()
        .map(|(n, s)| (n.as_str(), s.exec.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        execs,
        vec![
            ("a", vec!["d", "k", "g", "a"]),
            // b's own group has no kind: the default group's applies.
            ("b", vec!["d", "k", "h"]),
            ("c", vec!["d", "never", "h", "c"]),
        ]
    );
}

#[test]
fn formats_are_detected_from_name_and_content() {
    let p = Path::new;
    assert_eq!(detect(p("x.clab.yml"), "lab: x"), Format::Containerlab);
    assert_eq!(detect(p("dir/x.clab.yaml"), ""), Format::Containerlab);
    assert_eq!(
        detect(p("x.yml"), "name: x\ntopology: {}\n"),
        Format::Containerlab
    );
    assert_eq!(detect(p("x.yml"), "lab: x\n"), Format::Native);
    assert_eq!(
        detect(
            p("x.yml"),
            "links:\n  - endpoints: [\"a:eth1:10.0.0.1/24\", b:eth1]\n"
        ),
        Format::K8sTopo
    );
    assert_eq!(
        detect(p("x.yml"), "etcd_port: 32379\nlinks: []\n"),
        Format::K8sTopo
    );
    assert_eq!(
        detect(p("x.yml"), "links:\n  - endpoints: [a, b]\n"),
        Format::Native
    );
    assert_eq!(detect(p("x.yml"), "links: []\n"), Format::Native);
    assert_eq!(detect(p("x.yml"), "{{{"), Format::Native);
    assert_eq!(detect(p("x.yml"), "- a\n"), Format::Native);
    assert_eq!(detect(p("x.pb.txt"), ""), Format::KneText);
    assert_eq!(detect(p("x.textproto"), "lab: x"), Format::KneText);
    assert_eq!(
        detect(p("x.txt"), "name: \"x\"\nnodes {\n  name: \"r1\"\n}\n"),
        Format::KneText
    );
    assert_eq!(
        detect(p("x.yaml"), "name: x\nnodes:\n  - name: r1\n"),
        Format::KneYaml
    );
    for f in [
        "clos.clab.yml",
        "ring.k8s-topo.yml",
        "native.yaml",
        "kne-ring.pb.txt",
        "kne-pair.yaml",
    ] {
        let text = std::fs::read_to_string(fixture(f)).unwrap();
        // Renamed, the content alone still tells.
        let by_content = detect(p("renamed.yaml"), &text);
        assert_eq!(by_content, detect(&fixture(f), &text), "{f}");
    }
}

#[test]
fn k8s_topo_lab_names_come_from_the_file_name() {
    let name = |origin: &str| parse("links: []\n", origin, Format::K8sTopo).unwrap().name;
    assert_eq!(name("ring.k8s-topo.yml"), "ring");
    assert_eq!(name("/labs/My_Lab v2.yaml"), "my-lab-v2");
    assert_eq!(name("--Core--.yml"), "core");
    assert_eq!(name("__.yml"), "lab");
    assert_eq!(name(".hidden.yml"), "lab");
    assert_eq!(name("ÜBER.yml"), "ber");
    assert_eq!(name(&format!("{}.yml", "a".repeat(300))).len(), 63);
}

#[test]
fn agent_topology_round_trips_through_the_agents_parser() {
    for f in [
        "clos.clab.yml",
        "ring.k8s-topo.yml",
        "native.yaml",
        "kne-ring.pb.txt",
        "kne-pair.yaml",
        "bridge.clab.yml",
        "segments.yaml",
    ] {
        let spec = load(&fixture(f)).unwrap();
        let text = agent_topology(&spec);
        let topo =
            Topology::parse(&text, "agent.yaml").unwrap_or_else(|e| panic!("{f}: {e}\n{text}"));
        assert_eq!(topo.lab, spec.name);
        assert_eq!(topo.links.len(), spec.links.len(), "{f}");
        let default_mtu = spec.mtu.unwrap_or(ovswire_core::model::DEFAULT_MTU);
        for l in &spec.links {
            let found = topo
                .links
                .values()
                .find(|t| {
                    let ends = [t.key.a().to_string(), t.key.b().to_string()];
                    ends.contains(&l.a.to_string()) && ends.contains(&l.b.to_string())
                })
                .unwrap_or_else(|| panic!("{f}: {} missing from\n{text}", l.name()));
            assert_eq!(found.mtu, l.mtu.unwrap_or(default_mtu));
            let admin = if l.down {
                AdminState::Down
            } else {
                AdminState::Up
            };
            assert_eq!(found.admin, admin);
        }
    }
}

#[test]
fn agent_topology_lists_every_node_and_sets_only_what_is_set() {
    let spec = load(&fixture("native.yaml")).unwrap();
    let text = agent_topology(&spec);
    assert!(
        text.starts_with("lab: triangle\nmtu: 9000\npods:\n- r1\n- r2\n- r3\n- spare\n"),
        "{text}"
    );
    assert_eq!(text.matches("state: down").count(), 1, "{text}");
    assert_eq!(text.matches("mtu: 1500").count(), 1, "{text}");
    assert!(
        !text.contains("10.0."),
        "addresses are not the agent's business: {text}"
    );

    let ring = load(&fixture("ring.k8s-topo.yml")).unwrap();
    let text = agent_topology(&ring);
    assert!(!text.contains("mtu"), "{text}");
}

#[test]
fn syntax_errors_carry_line_column_and_advice() {
    let (m, line) = load_error("bad-unknown-field.yaml");
    assert_eq!(line, Some(4), "{m}");
    assert!(
        m.starts_with("topology file bad-unknown-field.yaml, line 4 column 5: links[0]: unknown field `mut`, expected one of"),
        "{m}"
    );
    assert!(m.ends_with("; remove it or correct its spelling"), "{m}");

    let (m, line) = load_error("bad-syntax.yaml");
    assert_eq!(line, Some(4), "{m}");
    assert!(
        m.starts_with("topology file bad-syntax.yaml, line 4 column"),
        "{m}"
    );
    assert!(m.contains("fix the YAML"), "{m}");

    let (m, line) = error("lab: x\nmtu: big\n", "t.yaml", Format::Native);
    assert_eq!(line, Some(2), "{m}");
    assert!(
        m.contains("invalid type") && m.ends_with("correct the value"),
        "{m}"
    );

    let (m, line) = error(
        "lab: x\nlinks:\n  - endpoints: [a:e, b:e]\n    state: sideways\n",
        "t.yaml",
        Format::Native,
    );
    assert_eq!(line, Some(4), "{m}");
    assert!(
        m.contains("unknown variant `sideways`, expected `up` or `down`"),
        "{m}"
    );

    let (m, _) = error("mtu: 9000\n", "t.yaml", Format::Native);
    assert!(m.contains("missing field `lab`; add it"), "{m}");

    let (m, line) = error("name: x\ntopolgy: {}\n", "t.clab.yml", Format::Containerlab);
    assert_eq!(line, Some(2), "{m}");
    assert!(m.contains("unknown field `topolgy`"), "{m}");

    let (m, line) = error(
        "name: x\ntopology:\n  nodes:\n    r1:\n      exec: ls\n",
        "t.clab.yml",
        Format::Containerlab,
    );
    assert_eq!(line, Some(5), "{m}");
    assert!(
        m.contains("topology.nodes.r1.exec: invalid type: string \"ls\", expected a sequence"),
        "{m}"
    );

    let (m, line) = error(
        "name: x\ntopology:\n  links:\n    - endpoints: [{node: r1}, r2:e1]\n",
        "t.clab.yml",
        Format::Containerlab,
    );
    assert_eq!(line, Some(4), "{m}");
    assert!(m.contains("missing field `interface`"), "{m}");

    let (m, line) = error(
        "links:\n  - endpoints: \"a:e1 b:e1\"\n",
        "t.yml",
        Format::K8sTopo,
    );
    assert_eq!(line, Some(2), "{m}");
    assert!(m.contains("expected a sequence"), "{m}");
}

#[test]
fn a_reused_interface_names_both_links() {
    let (m, line) = load_error("bad-duplicate-endpoint.clab.yml");
    assert_eq!(
        m,
        "topology file bad-duplicate-endpoint.clab.yml, line 10: link 3 (r1:eth1 -- r3:eth2): \
         r1:eth1 is already used by link 1 (r1:eth1 -- r2:eth1); an interface can be in one link \
         only"
    );
    assert_eq!(line, Some(10));
}

#[test]
fn links_to_the_host_are_wired_and_other_special_endpoints_refused() {
    let spec = load(&fixture("host-links.clab.yml")).unwrap();
    assert_eq!(spec.links.len(), 3);
    assert_eq!(spec.links[1].name(), "r1:eth2--host:hl-r1");
    let host_link = &spec.links[2];
    assert_eq!(host_link.name(), "r2:eth2--host:hl-r2");
    assert_eq!(host_link.mtu, Some(1500));
    assert_eq!(host_link.a.addrs[0].to_string(), "192.0.2.2/24");
    assert!(spec.nodes["host"].is_host() && !spec.nodes["r1"].is_host());
    assert!(spec.has_host_links());
    let topo_error = crate::topo::check(&spec).unwrap_err().to_string();
    assert!(topo_error.contains("only a local lab"), "{topo_error}");

    let (m, line) = error(
        "name: x\ntopology:\n  nodes:\n    host: {}\n",
        "t.clab.yml",
        Format::Containerlab,
    );
    assert_eq!(line, Some(4), "{m}");
    assert!(
        m.contains("node host names the host in endpoints like host:eth1"),
        "{m}"
    );
    // Links to the management network are host links whose host end joins its bridge.
    let spec = parse(
        "name: x\ntopology:\n  nodes:\n    c1: {image: busybox}\n    r1: {}\n  links:\n    - endpoints: [r1:eth1, mgmt-net:r1-m]\n    - type: mgmt-net\n      endpoint: {node: c1, interface: eth1}\n      host-interface: c1-m\n",
        "t.clab.yml",
        Format::Containerlab,
    )
    .unwrap();
    let names: Vec<String> = spec.links.iter().map(|l| l.name()).collect();
    assert_eq!(names, ["r1:eth1--host:r1-m", "c1:eth1--host:c1-m"]);
    let bridged: Vec<&str> = spec.mgmt.bridged.iter().map(String::as_str).collect();
    assert_eq!(bridged, ["c1-m", "r1-m"]);
    let (m, _) = error(
        "lab: x\nlinks:\n  - endpoints: [host:a, host:b]\n",
        "t",
        Format::Native,
    );
    assert!(m.contains("both ends are in the host"), "{m}");

    let head = "name: x\ntopology:\n  nodes:\n    r1: {}\n    r2: {}\n  links:\n";
    let cases = [
        (
            "    - endpoints: [r1:eth1, mgmt-net:r1-eth1]\n",
            "mgmt-net:r1-eth1 joins the management network of the lab's container nodes, and the \
             lab has none; use host:r1-eth1 for a veth to the host",
        ),
        (
            "    - endpoints: [\"macvlan:enp0s3\", r1:eth1]\n",
            "connects to a macvlan interface on the host, which ovswire does not wire; use \
             host:IFNAME",
        ),
        (
            "    - type: macvlan\n      endpoint: {node: r1, interface: eth1}\n      host-interface: enp0s3\n",
            "link type macvlan (a macvlan on a host interface) is not supported",
        ),
        (
            "    - type: vxlan\n      endpoint: {node: r1, interface: eth1}\n      remote: 10.0.0.20\n      vni: 100\n",
            "link type vxlan (a VXLAN tunnel to another host) is not supported: ovswire wires \
             veth links between nodes and to the host; run the lab on Kubernetes",
        ),
        (
            "    - type: dummy\n      endpoint: {node: r1, interface: eth1}\n",
            "link type dummy",
        ),
        (
            "    - type: host\n      endpoint: {node: r1, interface: eth1}\n",
            "a type: host link needs host-interface",
        ),
        (
            "    - type: Teleport\n      endpoints: [r1:eth1, r2:eth1]\n",
            "unknown containerlab link type \"teleport\"",
        ),
        ("    - type: veth\n", "has no endpoints"),
    ];
    for (link, expected) in cases {
        let (m, line) = error(&format!("{head}{link}"), "t.clab.yml", Format::Containerlab);
        assert!(m.contains(expected) && m.contains("link 1 ("), "{m}");
        assert_eq!(line, Some(7), "{m}");
    }
    let (m, _) = error(
        &format!("{head}    - type: dummy\n      endpoint: {{node: r1, interface: eth1}}\n"),
        "t.clab.yml",
        Format::Containerlab,
    );
    assert!(m.contains("link 1 (r1:eth1)"), "{m}");
}

#[test]
fn external_containers_are_refused() {
    let text = "name: x\ntopology:\n  nodes:\n    r1: {kind: linux}\n    ext:\n      kind: ext-container\n  links:\n    - endpoints: [r1:eth1, ext:eth1]\n";
    let (m, line) = error(text, "t.clab.yml", Format::Containerlab);
    assert_eq!(line, Some(6), "{m}");
    assert!(
        m.contains("node ext has kind ext-container (a container outside the lab)"),
        "{m}"
    );
    assert!(m.ends_with("remove the node and its links"), "{m}");
}

#[test]
fn bridge_nodes_are_lan_segments_whose_links_are_member_wires() {
    let spec = load(&fixture("bridge.clab.yml")).unwrap();
    assert!(spec.nodes["br-lan"].is_segment());
    assert!(!spec.nodes["br-lan"].is_container());
    let ends: Vec<String> = spec.interfaces().map(ToString::to_string).collect();
    assert_eq!(
        ends,
        ["h1:eth1", "h2:eth1", "h3:eth1", "h1:eth2", "h2:eth2"]
    );
    let agent = agent_topology(&spec);
    let topo = Topology::parse(&agent, "agent.yaml").unwrap_or_else(|e| panic!("{e}\n{agent}"));
    let members: Vec<String> = topo
        .links
        .values()
        .filter(|l| l.segment.as_deref() == Some("br-lan"))
        .map(|l| l.member().unwrap().to_string())
        .collect();
    assert_eq!(members, ["h1:eth1", "h2:eth1", "h3:eth1"]);
    assert!(agent.contains("segments:\n- br-lan\n"), "{agent}");
    assert!(!agent.contains("pods:\n- br-lan"), "{agent}");
    // On Kubernetes the Topology lists the segment, and no pod is made for it.
    let objects = crate::topo::render(&spec, &crate::topo::PodTemplate::default());
    let topo = objects.iter().find(|o| o["kind"] == "Topology").unwrap();
    assert_eq!(topo["spec"]["segments"], serde_json::json!(["br-lan"]));
    // What the agents read from it: the bridge's links are member wires.
    let object: ovswire_k8s::crd::Topology = serde_json::from_value(topo.clone()).unwrap();
    let wires = ovswire_k8s::wires_from_ovswire("bridge-lab", &object).unwrap();
    let members = wires.iter().filter(|w| w.segment.is_some()).count();
    assert_eq!(members, 3);
    let pods: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Pod")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["h1", "h2", "h3"]);
}

#[test]
fn links_with_more_endpoints_are_lan_segments() {
    let spec = load(&fixture("segments.yaml")).unwrap();
    assert!(spec.nodes["lan1"].is_segment() && spec.nodes["backbone"].is_segment());
    // Graphs draw segments apart from nodes.
    let up = |_: &crate::spec::LabLink| crate::graph::DrawnState::Up;
    let mermaid = crate::graph::mermaid(&spec, &up);
    assert!(
        mermaid.contains("([\"lan1\"])") && mermaid.contains("[\"r1\"]"),
        "{mermaid}"
    );
    let dot = crate::graph::dot(&spec, &up);
    assert!(
        dot.contains("\"backbone\" [shape=ellipse, style=dashed];"),
        "{dot}"
    );
    let wires: Vec<(String, Option<u32>, usize)> = spec
        .links
        .iter()
        .map(|l| (l.name(), l.mtu, l.a.addrs.len()))
        .collect();
    assert_eq!(
        wires,
        [
            ("r1:eth1--lan1:e1".to_owned(), None, 1),
            ("r2:eth1--lan1:e2".to_owned(), None, 1),
            ("r3:eth1--lan1:e3".to_owned(), None, 1),
            ("r2:eth2--backbone:e1".to_owned(), Some(9000), 0),
            ("r3:eth2--backbone:e2".to_owned(), Some(9000), 0),
            ("r4:eth1--backbone:e3".to_owned(), Some(9000), 0),
            ("r1:eth2--r4:eth2".to_owned(), None, 0),
        ]
    );
    let e = |text: &str| error(text, "t.yaml", Format::Native).0;
    let m = e(
        "lab: x\nnodes: {r1: {}, lan: {}}\nlinks:\n  - endpoints: [r1:eth1, lan:eth1, r1:eth2]\n    segment: lan\n",
    );
    assert!(
        m.contains("link 1") && m.contains("segment lan has the name of a node"),
        "{m}"
    );
    let m = e(
        "lab: x\nlinks:\n  - endpoints: [r1:eth1, r2:eth1, r3:eth1]\n  - endpoints: [r1:eth2, r2:eth2, r1:eth1]\n",
    );
    assert!(
        m.contains("link 2") && m.contains("r1:eth1 is already used by link 1"),
        "{m}"
    );
    let m = e("lab: x\nlinks:\n  - endpoints: [r1:eth1]\n    segment: s\n");
    assert!(m.contains("at least 2 endpoints"), "{m}");
    let m = e(
        "lab: x\nlinks:\n  - endpoints: [a:e1, b:e1, c:e1]\n    segment: s\n  - endpoints: [a:e2, b:e2, c:e2]\n    segment: s\n",
    );
    assert!(m.contains("segment s is written twice"), "{m}");
    // An unnamed segment skips names that nodes have.
    let spec = parse(
        "lab: x\nlinks:\n  - endpoints: [lan1:eth1, r2:eth1]\n  - endpoints: [lan1:eth2, r2:eth2, r3:eth2]\n",
        "t.yaml",
        Format::Native,
    )
    .unwrap();
    assert!(spec.nodes["lan2"].is_segment() && !spec.nodes["lan1"].is_segment());
    let clab = "name: x\ntopology:\n  nodes:\n    b1: {kind: bridge}\n    b2: {kind: ovs-bridge}\n  links:\n    - endpoints: [b1:eth1, b2:eth1]\n";
    let (m, _) = error(clab, "t.clab.yml", Format::Containerlab);
    assert!(m.contains("joins two LAN segments"), "{m}");
}

#[test]
fn names_are_kept_as_written_and_mapped_for_kubernetes_and_linux() {
    let spec = load(&fixture("caps.clab.yml")).unwrap();
    // Systems get their names; the written ones are kept for showing.
    assert_eq!(spec.name, "caps-lab");
    assert_eq!(spec.names.lab.as_deref(), Some("Caps_Lab"));
    let nodes: Vec<&str> = spec.nodes.keys().map(String::as_str).collect();
    assert_eq!(nodes, ["leaf-1", "spine1"]);
    assert_eq!(spec.names.node("leaf-1"), "Leaf_1");
    assert_eq!(spec.links[0].b.to_string(), "leaf-1:e1-49");
    assert_eq!(
        spec.names.endpoint("leaf-1", "e1-49"),
        "Leaf_1:ethernet-1/49"
    );
    assert_eq!(spec.names.to_system("Leaf_1:ethernet-1/49"), "leaf-1:e1-49");

    let spec = load(&fixture("srl-names.clab.yml")).unwrap();
    assert_eq!(spec.links[0].name(), "srl1:e1-1--srl2:e1-1");
    assert_eq!(spec.names.endpoint("srl1", "e1-1"), "srl1:ethernet-1/1");
    assert_eq!(spec.links[1].name(), "sr1:e1-1-c1-1--sr2:e1-1-c1-1");
    assert_eq!(spec.names.endpoint("sr2", "e1-1-c1-1"), "sr2:1/1/c1/1");
    assert!(spec.names.nodes.is_empty());

    // Graphs show the written names; the HTML page's link ids are the agent's.
    let spec = load(&fixture("caps.clab.yml")).unwrap();
    let unknown = |_: &LabLink| crate::graph::DrawnState::Unknown;
    let mermaid = crate::graph::mermaid(&spec, &unknown);
    assert!(
        mermaid.contains("[\"Leaf_1\"]") && mermaid.contains("ethernet-1/1 — ethernet-1/49"),
        "{mermaid}"
    );
    let html = crate::graph::html(&spec, &unknown);
    assert!(html.contains("<h1>Caps_Lab</h1>"), "{html}");
    assert!(
        html.contains("data-link=\"leaf-1:e1-49--spine1:e1-1\""),
        "{html}"
    );
    assert!(html.contains("<td>Leaf_1:ethernet-1/49</td>"), "{html}");

    let (m, line) = error(
        "name: x\ntopology:\n  nodes: {r1: {}}\n  links:\n    - endpoints: [r1:eth1, r9:eth1]\n",
        "t.clab.yml",
        Format::Containerlab,
    );
    assert_eq!(line, Some(5), "{m}");
    assert!(m.contains("link 1 (r1:eth1 -- r9:eth1): node r9 is not defined under topology.nodes; define it there"), "{m}");
}

#[test]
fn semantic_errors_name_the_link_and_its_line() {
    let native = |links: &str| {
        error(
            &format!("lab: d\nlinks:\n  - endpoints: [r0:e0, r0:e9]\n{links}"),
            "lab.yaml",
            Format::Native,
        )
    };
    let cases = [
        (
            "  - endpoints: [r1:eth1]\n",
            "link 2 (r1:eth1): needs exactly 2 endpoints, has 1",
        ),
        ("  - endpoints: []\n", "needs exactly 2 endpoints, has 0"),
        (
            "  - endpoints: [r1:eth1, r1:eth1]\n",
            "both ends are r1:eth1; a link needs two different interfaces",
        ),
        (
            "  - endpoints: [r1:eth1, r2]\n",
            "endpoint \"r2\" must be written node:interface",
        ),
        (
            "  - endpoints: [r1:eth1, \"__:eth1\"]\n",
            "node name \"__\" has no letter or digit a Kubernetes name can keep; rename it",
        ),
        (
            "  - endpoints: [r1:eth1, \"r2:/\"]\n",
            "interface name \"/\" has nothing Linux can keep; rename it",
        ),
        (
            "  - endpoints: [r1:eth1, r2:eth1]\n    mtu: 70000\n",
            "mtu 70000 is out of range, use 68 to 65535",
        ),
        (
            "  - endpoints: [r1:eth1, r2:eth1]\n    mtu: 67\n",
            "mtu 67 is out of range",
        ),
        (
            "  - endpoints: [r1:eth1, \"r2:eth1:10.0.0.2\"]\n",
            "r2:eth1: address \"10.0.0.2\" has no prefix length",
        ),
        (
            "  - endpoints: [r1:eth1, r2:eth1]\n    ips: [10.0.0.1/30]\n",
            "ips has 1 addresses for 2 endpoints",
        ),
        (
            "  - endpoints: [r1:eth1, r2:eth1]\n    ips: [10.0.0.1/30, 10.0.0.300/30]\n",
            "r2:eth1: \"10.0.0.300\" is not an IPv4 or IPv6 address",
        ),
        (
            "  - endpoints: [r1:eth1, r0:e9]\n",
            "r0:e9 is already used by link 1 (r0:e0 -- r0:e9)",
        ),
    ];
    for (link, expected) in cases {
        let (m, line) = native(link);
        assert!(
            m.starts_with("topology file lab.yaml, line 4: link 2 ("),
            "{m}"
        );
        assert!(m.contains(expected), "{expected:?} not in {m}");
        assert_eq!(line, Some(4), "{m}");
    }
    // Two names of one port, after mapping: refused, naming both.
    let (m, line) =
        native("  - endpoints: [r0:ethernet-1/1, r2:eth1]\n  - endpoints: [r0:e1-1, r2:eth2]\n");
    assert_eq!(line, Some(5), "{m}");
    assert!(
        m.ends_with("link 3 (r0:e1-1 -- r2:eth2): r0:e1-1 and r0:ethernet-1/1 are both interface e1-1 on Linux; rename one"),
        "{m}"
    );

    let (m, line) = error(
        "lab: d\npods: [r1]\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n",
        "t",
        Format::Native,
    );
    assert!(
        m.contains("link 1 (r1:eth1 -- r2:eth1): node r2 is not defined under pods"),
        "{m}"
    );
    assert_eq!(line, Some(4));
    let (m, line) = error("lab: d\nnodes:\n  r1:\n  \"--\":\n", "t", Format::Native);
    assert!(
        m.contains("line 4: node name \"--\" has no letter or digit"),
        "{m}"
    );
    assert_eq!(line, Some(4));
    let (m, _) = error("lab: d\npods: [a]\nnodes: {a: }\n", "t", Format::Native);
    assert!(
        m.starts_with("topology file t, line 3: both pods and nodes are given"),
        "{m}"
    );
    let (m, line) = error("lab: d\nmtu: 10\n", "t", Format::Native);
    assert_eq!(
        (m.as_str(), line),
        (
            "topology file t, line 2: mtu 10 is out of range, use 68 to 65535",
            Some(2)
        )
    );
    let spec = parse(
        "lab: d\nlinks:\n  - endpoints: [r1:eth/1, r2:eth1]\n",
        "t",
        Format::Native,
    )
    .unwrap();
    assert_eq!(spec.links[0].a.ifname, "eth-1");

    // Flow style: still found.
    let (m, line) = error(
        "lab: d\nlinks: [{endpoints: [a:e1, b:e1]},\n  {endpoints: [a:e1, c:e1]}]\n",
        "t",
        Format::Native,
    );
    assert!(m.contains("a:e1 is already used by link 1"), "{m}");
    assert_eq!(line, Some(3), "{m}");

    let (m, line) = error(
        "links:\n  - endpoints: [a:e1:1.2.3.4/24, b:e1:1.2.3.5/33]\n",
        "t.yml",
        Format::K8sTopo,
    );
    assert!(
        m.contains("link 1 (a:e1:1.2.3.4/24 -- b:e1:1.2.3.5/33): b:e1: prefix length \"33\""),
        "{m}"
    );
    assert_eq!(line, Some(2), "{m}");
}

#[test]
fn a_missing_file_says_so() {
    let e = load(&fixture("no-such-file.yaml")).unwrap_err();
    assert!(matches!(e, FileError::Read { .. }));
    assert!(
        e.to_string().starts_with("cannot read topology file "),
        "{e}"
    );
    assert_eq!(e.line(), None);
}

#[test]
fn bad_input_never_panics() {
    let inputs = [
        "",
        "~",
        "---\n---\n",
        "[]",
        "42",
        "{{{",
        "\t\tlab: x",
        "lab: [x]",
        "lab: x\nlinks: {a: b}\n",
        "lab: x\nlinks:\n  - endpoints: [[a], {b: c}]\n",
        "lab: x\nlinks:\n  - endpoints: [\":\", \"::\"]\n",
        "lab: x\nlinks:\n  - endpoints: [\"a:\", \":b\"]\n    ips: [\"\", \"/\"]\n",
        "lab: x\nmtu: -1\n",
        "lab: x\nmtu: 99999999999999999999\n",
        "name: x\ntopology:\n  nodes: [a, b]\n",
        "name: x\ntopology:\n  nodes: {a: 1}\n",
        "name: x\ntopology:\n  links:\n    - endpoints: 7\n",
        "name: x\ntopology:\n  links:\n    - endpoints: [\"é:é\", \"\"]\n",
        "name: x\ntopology:\n  links:\n    - {}\n",
        "name: x\ntopology: {kinds: {k: 1}, groups: {g: [1]}, defaults: 3}\n",
        "links:\n  - endpoints: [a:b:c:d:e:f, \"\"]\n",
        "links:\n  - 1\n",
        "a: &x [*x]\n",
        "a: *nope\n",
        "\u{feff}lab: x\n",
        "lab: x\nlinks:\n  - endpoints: [a:e1, b:e1]\n  - endpoints: [a:e1, b:e2]\n    <<: {mtu: 1}\n",
        "nodes {",
        "nodes { name: \"é\" interfaces { key: \"\" value { mtu: 4294967295 } } }",
        "links { a_node: \"a\" a_int: \"\\xff\" z_node: \"b\" z_int: \"e1\" }",
        "nodes { config { data: \"\\x00\" image: \"x\" command: \"\\x00\" } }",
        "nodes: [{services: {x: {}}}]",
        "nodes: [{vendor: 99}]",
        "links: [{a_node: [1]}]",
    ];
    for input in inputs {
        for format in [
            Format::Native,
            Format::Containerlab,
            Format::K8sTopo,
            Format::KneText,
            Format::KneYaml,
        ] {
            if let Err(e) = parse(input, "weird.yml", format) {
                let m = e.to_string();
                assert!(m.starts_with("topology file weird.yml"), "{format}: {m}");
            }
        }
        let _ = detect(Path::new("weird.yml"), input);
    }
}

/// A directory with a topology file `name` holding `text`, and the files nodes refer to.
fn lab_dir(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cfg")).unwrap();
    std::fs::write(dir.path().join("cfg/r1.conf"), "hostname r1\n").unwrap();
    std::fs::write(dir.path().join("cfg/daemons"), "isisd=yes\n").unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

#[test]
fn containerlab_container_nodes_merge_every_setting_like_containerlab() {
    let text = "\
name: frr
mgmt: {network: frr-mgmt, ipv4-subnet: 172.20.30.0/24}
topology:
  defaults:
    env: {TZ: UTC, LEVEL: 1}
    labels: {team: net}
  kinds:
    linux:
      image: quay.io/frrouting/frr:10.2.1
      binds: [cfg/daemons:/etc/frr/daemons:ro]
      cmd: sleep infinity
  groups:
    edge: {user: frr, env: {LEVEL: 2}}
  nodes:
    r1:
      kind: linux
      group: edge
      startup-config: cfg/r1.conf
      mgmt-ipv4: 172.20.30.11
      restart-policy: always
      entrypoint: /sbin/tini --
      exec: [ip addr add 10.0.0.1/32 dev lo]
    r2: {kind: linux, image: localhost/ovswire/frr:latest, labels: {team: core}}
    h1: {}
  links:
    - endpoints: [r1:eth1, r2:eth1]
    - endpoints: [r2:eth2, h1:eth1]
";
    let (dir, file) = lab_dir("frr.clab.yml", text);
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let spec = load(&file).unwrap();
    assert_eq!(spec.mgmt.network.as_deref(), Some("frr-mgmt"));
    assert_eq!(
        spec.mgmt.ipv4_subnet.map(|c| c.to_string()).as_deref(),
        Some("172.20.30.0/24")
    );
    let r1 = &spec.nodes["r1"];
    assert_eq!(r1.image.as_deref(), Some("quay.io/frrouting/frr:10.2.1"));
    assert_eq!(r1.kind(), "linux");
    assert_eq!(r1.cmd.as_deref(), Some("sleep infinity"));
    assert_eq!(r1.entrypoint.as_deref(), Some("/sbin/tini --"));
    assert_eq!(r1.user.as_deref(), Some("frr"));
    assert_eq!(r1.env["TZ"], "UTC");
    assert_eq!(
        r1.env["LEVEL"], "2",
        "the group's value wins over the defaults'"
    );
    assert_eq!(r1.labels["team"], "net");
    assert_eq!(r1.binds.len(), 1);
    assert_eq!(r1.binds[0].host, base.join("cfg/daemons"));
    assert_eq!(r1.binds[0].container, "/etc/frr/daemons");
    assert_eq!(
        r1.startup_config.as_deref(),
        Some(base.join("cfg/r1.conf").as_path())
    );
    assert_eq!(r1.mgmt_ipv4, Some("172.20.30.11".parse().unwrap()));
    assert_eq!(r1.restart_policy.as_deref(), Some("always"));
    assert_eq!(r1.exec, ["ip addr add 10.0.0.1/32 dev lo"]);
    assert_eq!(r1.line, Some(16), "the node's first line");
    let r2 = &spec.nodes["r2"];
    assert_eq!(r2.image.as_deref(), Some("localhost/ovswire/frr:latest"));
    assert_eq!(r2.labels["team"], "core");
    // h1 has no kind and no defaults' kind: containerlab would refuse it; here it is a bare
    // namespace, since no level gives it an image.
    assert!(!spec.nodes["h1"].is_container());
    assert_eq!(
        spec.nodes_in_file_order()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r2", "h1"]
    );
}

#[test]
fn native_nodes_take_container_settings_and_mgmt() {
    let text = "\
lab: nat
mgmt: {ipv4-subnet: 172.20.40.0/24}
nodes:
  r1:
    image: localhost/ovswire/frr:latest
    startup-config: cfg/r1.conf
    binds: [cfg/daemons:/etc/frr/daemons]
    mgmt-ipv4: 172.20.40.5
  r2: {exec: [true]}
links:
  - endpoints: [r1:eth1, r2:eth1]
";
    let (_dir, file) = lab_dir("nat.yaml", text);
    let spec = load(&file).unwrap();
    assert!(spec.has_containers());
    assert!(spec.nodes["r1"].is_container() && !spec.nodes["r2"].is_container());
    let (_dir, file) = lab_dir("bad.yaml", &text.replace("binds:", "bindz:"));
    let (m, line) = (
        load(&file).unwrap_err().to_string(),
        load(&file).unwrap_err().line(),
    );
    assert!(m.contains("unknown field `bindz`"), "{m}");
    assert_eq!(line, Some(7));
}

#[test]
fn bad_container_settings_fail_with_the_node_and_its_line() {
    let base = "\
name: bad
topology:
  nodes:
    r1:
      kind: linux
      image: localhost/ovswire/busybox:latest
      SETTING
    r2:
      kind: linux
      image: localhost/ovswire/busybox:latest
      mgmt-ipv4: 172.20.20.12
  links:
    - endpoints: [r1:eth1, r2:eth1]
";
    let cases = [
        ("kind: switchy", "unknown kind \"switchy\"", 5),
        ("startup-config: cfg/missing.conf", "startup-config", 5),
        ("binds: [nowhere:/etc/x]", "does not exist", 5),
        ("mgmt-ipv4: 10.9.9.9", "mgmt-ipv4 10.9.9.9 is outside", 5),
        ("mgmt-ipv4: 172.20.20.12", "taken by node r1 too", 9),
        ("mgmt-ipv4: 172.20.20.1", "is the gateway", 5),
        ("mgmt-ipv4: 300.1.1.1", "not an IPv4 address", 5),
        (
            "restart-policy: sometimes",
            "restart-policy \"sometimes\"",
            5,
        ),
    ];
    for (setting, expected, line) in cases {
        let text = base
            .replace("SETTING", setting)
            .replace("kind: linux\n      kind", "kind");
        let text = if setting.starts_with("kind:") {
            text.replacen("      kind: linux\n", "", 1)
        } else {
            text
        };
        let (_dir, file) = lab_dir("bad.clab.yml", &text);
        let e = load(&file).expect_err(setting);
        let m = e.to_string();
        assert!(m.contains(expected), "{setting}: {m}");
        assert!(m.contains("node r"), "{setting}: names the node: {m}");
        assert_eq!(e.line(), Some(line), "{setting}: {m}");
    }
    // eth0 is a container node's management interface.
    let (_dir, file) = lab_dir(
        "eth0.clab.yml",
        &base
            .replace("      SETTING\n", "")
            .replace("[r1:eth1, r2:eth1]", "[r1:eth0, r2:eth1]"),
    );
    let m = load(&file).unwrap_err().to_string();
    assert!(m.contains("management interface"), "{m}");
    // A namespace node cannot take container settings.
    let (_dir, file) = lab_dir(
        "ns.yaml",
        "lab: ns\nnodes:\n  r1: {startup-config: cfg/r1.conf}\n",
    );
    let m = load(&file).unwrap_err().to_string();
    assert!(m.contains("has startup-config but no image"), "{m}");
}

#[test]
fn kne_ring_in_text_format() {
    let spec = load(&fixture("kne-ring.pb.txt")).unwrap();
    assert_eq!(spec.name, "kne-ring");
    assert_eq!(
        spec.links,
        vec![
            plain("r1:eth1", "r2:eth1"),
            plain("r2:eth2", "r3:eth1"),
            plain("r3:eth2", "r4:eth1"),
            plain("r4:eth2", "r1:eth2"),
        ]
    );
    let names: Vec<&str> = spec
        .nodes_in_file_order()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["r1", "r2", "r3", "r4"]);
    let r1 = &spec.nodes["r1"];
    assert_eq!((r1.kind(), r1.is_container()), ("linux", false));
    assert_eq!(r1.labels.get("ring").map(String::as_str), Some("north"));
}

#[test]
fn kne_multivendor_kinds_and_interface_mtus() {
    let spec = load(&fixture("kne-multivendor.pb.txt")).unwrap();
    assert_eq!(spec.name, "multivendor");
    let kinds: Vec<(&str, &str)> = spec
        .nodes
        .iter()
        .map(|(n, s)| (n.as_str(), s.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ceos", "ceos"),
            ("cptx", "juniper_cjunosevolved"),
            ("otg", "keysight_ixia-c-one"),
            ("srl", "srl"),
            ("xrd", "xrd"),
        ]
    );
    // No image: bare namespaces, whose vendor configuration is not used.
    assert!(spec.nodes.values().all(|n| !n.is_container()));
    assert!(spec.nodes.values().all(|n| n.startup_config.is_none()));
    let mtus: Vec<(String, Option<u32>)> = spec.links.iter().map(|l| (l.name(), l.mtu)).collect();
    assert_eq!(
        mtus[..3],
        [
            ("ceos:eth1--srl:eth1".to_owned(), Some(9000)),
            ("ceos:eth2--xrd:eth1".to_owned(), Some(1500)),
            ("xrd:eth2--cptx:eth4".to_owned(), None),
        ]
    );
    assert_eq!(spec.links.len(), 7);
}

#[test]
fn kne_yaml_with_a_container_node() {
    let spec = load(&fixture("kne-pair.yaml")).unwrap();
    assert_eq!(spec.name, "kne-pair");
    assert_eq!(spec.nodes["otg"].kind(), "keysight_ixia-c-one");
    let frr = &spec.nodes["frr"];
    assert_eq!(frr.image.as_deref(), Some("localhost/ovswire/frr:latest"));
    assert_eq!(frr.entrypoint.as_deref(), Some("/usr/lib/frr/docker-start"));
    assert_eq!(frr.cmd, None);
    assert_eq!(frr.env.get("TZ").map(String::as_str), Some("UTC"));
    assert!(frr.binds.is_empty());
    assert_eq!(
        frr.startup_config.as_deref(),
        Some(
            fixture("configs/leaf1.cfg")
                .canonicalize()
                .unwrap()
                .as_path()
        )
    );
    assert_eq!(frr.startup_config_at.as_deref(), Some("/etc/frr/frr.conf"));
    assert_eq!(
        spec.links,
        vec![
            link(ep("otg:eth1", &[]), ep("frr:eth1", &[]), Some(9000), false),
            plain("otg:eth2", "frr:eth2"),
        ]
    );
}

#[test]
fn kne_errors_name_the_line_and_what_to_do() {
    let text = |t: &str| error(t, "t.pb.txt", Format::KneText);
    let (m, line) = text("name: \"x\"\nnodes {\n  name: \"r1\"\n  colour: \"red\"\n}\n");
    assert_eq!(line, Some(4), "{m}");
    assert!(m.contains("colour") && m.contains("remove it"), "{m}");
    let (m, line) = text("nodes {\n  vendor: ACME\n}\n");
    assert_eq!(line, Some(2), "{m}");
    assert!(m.contains("ACME"), "{m}");
    let (m, line) = text("nodes {\n  name: \"r1\"\n");
    assert!(m.contains("t.pb.txt"), "{m} {line:?}");

    let two = "nodes { name: \"a\" interfaces { key: \"eth1\" value { mtu: 9000 } } }\n\
               nodes { name: \"b\" interfaces { key: \"eth1\" value { mtu: 1500 } } }\n\
               links { a_node: \"a\" a_int: \"eth1\" z_node: \"b\" z_int: \"eth1\" }\n";
    let (m, line) = text(two);
    assert_eq!(line, Some(3), "{m}");
    assert!(
        m.contains("a:eth1 has mtu 9000 and b:eth1 has mtu 1500"),
        "{m}"
    );
    let (m, line) =
        text("nodes { name: \"a\" }\nlinks { a_node: \"a\" a_int: \"eth1\" z_node: \"b\" }\n");
    assert_eq!(line, Some(2), "{m}");
    assert!(m.contains("link 1: z_int is not set"), "{m}");
    let (m, line) = text("nodes { name: \"a\" }\nnodes { name: \"a\" }\n");
    assert_eq!(line, Some(2), "{m}");
    assert!(m.contains("node a is defined twice (nodes 1 and 2)"), "{m}");
    let (m, line) = text(
        "nodes { name: \"a\" }\n\nlinks { a_node: \"a\" a_int: \"eth1\" z_node: \"c\" z_int: \"eth1\" }\n",
    );
    assert_eq!(line, Some(3), "{m}");
    assert!(m.contains("node c is not defined under nodes"), "{m}");
    // Inline configuration is kept as given, mounted where config_path/config_file say.
    let spec = parse(
        "nodes { name: \"a\" config { image: \"x\" data: \"hostname a\\n\" config_path: \"/etc\" } }\n",
        "t.pb.txt",
        Format::KneText,
    )
    .unwrap();
    let a = &spec.nodes["a"];
    assert_eq!(
        a.startup_config_inline.as_deref(),
        Some(&b"hostname a\n"[..])
    );
    assert_eq!(a.startup_config_at.as_deref(), Some("/etc/startup-config"));

    let (m, line) = error(
        "name: x\nnodes:\n  - name: a\n    vendr: HOST\n",
        "t.yaml",
        Format::KneYaml,
    );
    // The node the field is in.
    assert_eq!(line, Some(3), "{m}");
    assert!(m.contains("vendr") && m.contains("remove it"), "{m}");
}
