use super::*;
use crate::crd::MeshnetTopology;

fn ovswire(yaml: &str) -> Topology {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn meshnet(yaml: &str) -> Vec<MeshnetTopology> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| MeshnetTopology::deserialize(doc).unwrap())
        .collect()
}

use serde::Deserialize;

fn names(wires: &[Wire]) -> Vec<String> {
    wires.iter().map(Wire::name).collect()
}

const RING: &str = "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: ring, namespace: lab1}
spec:
  mtu: 9000
  links:
    - endpoints: [r2:eth1, r1:eth1]
    - endpoints: [r2:eth2, r3:eth1]
      mtu: 1500
      state: down
    - endpoints: [r3:eth2, r1:eth2]
";

#[test]
fn ovswire_links_become_sorted_wires() {
    let wires = wires_from_ovswire("lab1", &ovswire(RING)).unwrap();
    assert_eq!(
        wires,
        vec![
            Wire {
                lab: "lab1".into(),
                a: ("r1".into(), "eth1".into()),
                b: ("r2".into(), "eth1".into()),
                mtu: Some(9000),
                down: false,
                impair: Default::default(),
                segment: None,
            },
            Wire {
                lab: "lab1".into(),
                a: ("r2".into(), "eth2".into()),
                b: ("r3".into(), "eth1".into()),
                mtu: Some(1500),
                down: true,
                impair: Default::default(),
                segment: None,
            },
            Wire {
                lab: "lab1".into(),
                a: ("r1".into(), "eth2".into()),
                b: ("r3".into(), "eth2".into()),
                mtu: Some(9000),
                down: false,
                impair: Default::default(),
                segment: None,
            },
        ]
    );
    assert_eq!(wires[0].name(), "r1:eth1--r2:eth1");
}

#[test]
fn impairments_follow_the_endpoints_as_written_and_bad_ones_are_reported() {
    let t = ovswire(
        "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: imp, namespace: lab1}
spec:
  links:
    - endpoints: [r2:eth1, r1:eth1]
      impair: {aToB: {delay: 20ms}}
    - endpoints: [r1:eth2, r2:eth2]
      impair: {loss: 1%, rate: 10mbit}
",
    );
    let wires = wires_from_ovswire("lab1", &t).unwrap();
    // r1 sorts first: the written a->b (from r2) is the wire's b->a.
    assert_eq!(wires[0].impair.to_string(), "a->b: none; b->a: delay=20ms");
    assert_eq!(wires[1].impair.to_string(), "loss=1% rate=10mbit");
    let spec = LinkSpec::try_from(&wires[1]).unwrap();
    assert_eq!(spec.impair, wires[1].impair);
    let bad = ovswire(
        "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: imp, namespace: lab1}
spec:
  links:
    - endpoints: [r1:eth1, r2:eth1]
      impair: {aToB: {loss: 120%}}
    - endpoints: [r1:eth2, r2:eth2]
      impair: {jitter: 2ms}
",
    );
    let e = wires_from_ovswire("lab1", &bad).unwrap_err().to_string();
    assert!(
        e.contains("impair.aToB.loss") && e.contains("0% to 100%"),
        "{e}"
    );
    assert!(
        e.contains("impair.jitter") && e.contains("needs a delay"),
        "{e}"
    );
}

#[test]
fn ovswire_without_mtu_leaves_it_to_the_network() {
    let t = ovswire("metadata: {name: t}\nspec:\n  links:\n    - endpoints: [a:e1, b:e1]\n");
    assert_eq!(wires_from_ovswire("lab", &t).unwrap()[0].mtu, None);
}

#[test]
fn ovswire_errors_name_the_object_and_every_link() {
    let t = ovswire(
        "
metadata: {name: bad}
spec:
  links:
    - endpoints: [r1:eth1, r2:eth1]
    - endpoints: [r1:eth1, r3:eth1]
    - endpoints: [R4:eth1, r5:eth1]
    - endpoints: [r6:eth1]
    - endpoints: [r7:eth1, r8:eth1]
      mtu: 70000
    - endpoints: [r9:eth1, r9:eth1]
",
    );
    let e = wires_from_ovswire("lab1", &t).unwrap_err().to_string();
    for want in [
        "topology.ovswire.io/bad in namespace lab1",
        "link r1:eth1--r3:eth1: r1:eth1 is already used by spec.links[0] (r1:eth1--r2:eth1)",
        "spec.links[2]: (R4:eth1 -- r5:eth1): invalid pod name \"R4\"",
        "spec.links[3]: (r6:eth1): needs exactly 2 endpoints, has 1",
        "link r7:eth1--r8:eth1: mtu 70000 is out of range",
        "link r9:eth1--r9:eth1: a link needs two different endpoints",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
    // The lenient form keeps the good link.
    let parsed = parse_ovswire("lab1", &t);
    assert_eq!(
        parsed
            .wires
            .iter()
            .map(|(w, _)| w.name())
            .collect::<Vec<_>>(),
        ["r1:eth1--r2:eth1"]
    );
    assert_eq!(parsed.rejected.len(), 5);
}

#[test]
fn a_repeated_link_gets_a_distinct_status_name() {
    let t = ovswire(
        "metadata: {name: t}\nspec:\n  links:\n    - endpoints: [a:e1, b:e1]\n    - endpoints: [b:e1, a:e1]\n",
    );
    let parsed = parse_ovswire("lab", &t);
    assert_eq!(parsed.rejected[0].link, "a:e1--b:e1#1");
}

#[test]
fn bad_default_mtu_rejects_the_object() {
    let t =
        ovswire("metadata: {name: t}\nspec:\n  mtu: 10\n  links:\n    - endpoints: [a:e1, b:e1]\n");
    let e = wires_from_ovswire("lab", &t).unwrap_err().to_string();
    assert!(
        e.contains("spec.mtu: mtu 10 is out of range, use 68 to 65535; fix spec.mtu"),
        "{e}"
    );
}

/// A ring of three routers, as KNE writes it for meshnet: one object per pod, each link
/// described by both pods with the same uid (KNE numbers links from 0), `local_ip`/`peer_ip`
/// empty, and meshnet's status fields present.
pub(crate) const KNE_RING: &str = "
apiVersion: networkop.co.uk/v1beta1
kind: Topology
metadata: {name: r1, namespace: lab1}
spec:
  links:
    - {uid: 0, peer_pod: r2, local_intf: eth1, peer_intf: eth1, local_ip: '', peer_ip: ''}
    - {uid: 2, peer_pod: r3, local_intf: eth2, peer_intf: eth2, local_ip: '', peer_ip: ''}
status: {skipped: null, src_ip: '', net_ns: '', container_id: ''}
---
apiVersion: networkop.co.uk/v1beta1
kind: Topology
metadata: {name: r2, namespace: lab1}
spec:
  links:
    - {uid: 0, peer_pod: r1, local_intf: eth1, peer_intf: eth1, local_ip: '', peer_ip: ''}
    - {uid: 1, peer_pod: r3, local_intf: eth2, peer_intf: eth1, local_ip: '', peer_ip: ''}
status: {skipped: null, src_ip: '', net_ns: '', container_id: ''}
---
apiVersion: networkop.co.uk/v1beta1
kind: Topology
metadata: {name: r3, namespace: lab1}
spec:
  links:
    - {uid: 1, peer_pod: r2, local_intf: eth1, peer_intf: eth2, local_ip: '', peer_ip: ''}
    - {uid: 2, peer_pod: r1, local_intf: eth2, peer_intf: eth2, local_ip: '', peer_ip: ''}
status: {skipped: null, src_ip: '', net_ns: '', container_id: ''}
";

/// The same ring in ovswire's form.
pub(crate) const OVSWIRE_RING: &str = "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: ring, namespace: lab1}
spec:
  links:
    - endpoints: [r1:eth1, r2:eth1]
    - endpoints: [r2:eth2, r3:eth1]
    - endpoints: [r3:eth2, r1:eth2]
";

#[test]
fn a_kne_ring_equals_the_ovswire_ring() {
    let mut from_meshnet = wires_from_meshnet("lab1", &meshnet(KNE_RING)).unwrap();
    let mut from_ovswire = wires_from_ovswire("lab1", &ovswire(OVSWIRE_RING)).unwrap();
    from_meshnet.sort();
    from_ovswire.sort();
    assert_eq!(from_meshnet, from_ovswire);
    assert_eq!(from_meshnet.len(), 3);
}

#[test]
fn a_meshnet_half_whose_peer_object_is_missing_is_still_wired() {
    let objects = meshnet(KNE_RING);
    // r3's object is not there yet: uid 1 and 2 are described by r2 and r1 only.
    let wires = wires_from_meshnet("lab1", &objects[..2]).unwrap();
    assert_eq!(
        names(&wires),
        ["r1:eth1--r2:eth1", "r2:eth2--r3:eth1", "r1:eth2--r3:eth2"]
    );
}

#[test]
fn meshnet_disagreements_are_reported_with_both_sides() {
    let mut objects = meshnet(KNE_RING);
    objects[2].spec.links[0].local_intf = "eth9".into();
    let e = wires_from_meshnet("lab1", &objects)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "uid 1: topology.networkop.co.uk/r2 says r2:eth2 -- r3:eth1 but \
             topology.networkop.co.uk/r3 says r3:eth9 -- r2:eth2"
        ),
        "{e}"
    );
    // The other two links are still wired.
    let refs: Vec<&MeshnetTopology> = objects.iter().collect();
    assert_eq!(parse_meshnet("lab1", &refs).wires.len(), 2);
}

#[test]
fn meshnet_peer_object_without_the_uid_is_an_error() {
    let mut objects = meshnet(KNE_RING);
    objects[2].spec.links.remove(0);
    let e = wires_from_meshnet("lab1", &objects)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("uid 1: topology.networkop.co.uk/r2 says r2:eth2 -- r3:eth1 but topology.networkop.co.uk/r3 has no link with uid 1"),
        "{e}"
    );
}

#[test]
fn meshnet_uid_reuse_localhost_and_bad_names() {
    let objects = meshnet(
        "
metadata: {name: r1}
spec:
  links:
    - {uid: 5, peer_pod: r2, local_intf: eth1, peer_intf: eth1}
    - {uid: 5, peer_pod: r3, local_intf: eth2, peer_intf: eth1}
    - {uid: 5, peer_pod: r4, local_intf: eth3, peer_intf: eth1}
    - {uid: 6, peer_pod: localhost, local_intf: eth4, peer_intf: ens3}
    - {uid: 7, peer_pod: r5, local_intf: Ethernet1/1, peer_intf: eth1}
    - {uid: 8, peer_pod: r6, local_intf: eth5, peer_intf: eth1}
    - {uid: 9, peer_pod: r7, local_intf: eth5, peer_intf: eth1}
",
    );
    let e = wires_from_meshnet("lab1", &objects)
        .unwrap_err()
        .to_string();
    for want in [
        "uid 5 is used by 3 descriptions (r1:eth1, r1:eth2, r1:eth3)",
        "peer_pod localhost",
        "invalid interface name \"Ethernet1/1\"",
        "uid 9: r1:eth5 is already used by uid 8 (r1:eth5--r6:eth1)",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
    let refs: Vec<&MeshnetTopology> = objects.iter().collect();
    assert_eq!(
        names(
            &parse_meshnet("lab1", &refs)
                .wires
                .into_iter()
                .map(|(w, _)| w)
                .collect::<Vec<_>>()
        ),
        ["r1:eth5--r6:eth1"]
    );
}

#[test]
fn meshnet_self_loop_described_by_one_pod() {
    let objects = meshnet(
        "
metadata: {name: r1}
spec:
  links:
    - {uid: 0, peer_pod: r1, local_intf: eth1, peer_intf: eth2}
    - {uid: 0, peer_pod: r1, local_intf: eth2, peer_intf: eth1}
",
    );
    assert_eq!(
        names(&wires_from_meshnet("lab1", &objects).unwrap()),
        ["r1:eth1--r1:eth2"]
    );
}

#[test]
fn meshnet_links_may_be_null_as_go_writes_them() {
    let objects = meshnet("metadata: {name: r1}\nspec: {links: null}\n");
    assert!(wires_from_meshnet("lab1", &objects).unwrap().is_empty());
}

#[test]
fn meshnet_status_of_another_shape_does_not_break_reading() {
    let objects = meshnet(
        "metadata: {name: r1}\nspec: {links: []}\nstatus: {skipped: [r2, r3], src_ip: 10.0.0.1}\n",
    );
    let status = objects[0].status.clone().unwrap();
    assert_eq!(status.skipped, None);
    assert_eq!(status.src_ip.as_deref(), Some("10.0.0.1"));
}

#[test]
fn a_lab_split_over_objects_keeps_the_first_claim() {
    let mut first = ovswire(
        "metadata: {name: a, namespace: lab1, creationTimestamp: '2025-01-01T00:00:00Z'}\nspec:\n  links:\n    - endpoints: [r1:eth1, r2:eth1]\n",
    );
    let second = ovswire(
        "metadata: {name: b, namespace: lab1, creationTimestamp: '2025-01-02T00:00:00Z'}\nspec:\n  links:\n    - endpoints: [r1:eth1, r3:eth1]\n    - endpoints: [r3:eth2, r4:eth1]\n",
    );
    let kne = meshnet(
        "metadata: {name: r4}\nspec:\n  links:\n    - {uid: 0, peer_pod: r5, local_intf: eth1, peer_intf: eth1}\n",
    );
    let mesh: Vec<&MeshnetTopology> = kne.iter().collect();
    let plan = plan_lab("lab1", &[&second, &first], &mesh);
    let wires: Vec<_> = plan
        .wires
        .iter()
        .map(|(w, o)| (w.name(), o.to_string()))
        .collect();
    assert_eq!(
        wires,
        [
            (
                "r1:eth1--r2:eth1".to_owned(),
                "topology.ovswire.io/a".to_owned()
            ),
            (
                "r3:eth2--r4:eth1".to_owned(),
                "topology.ovswire.io/b".to_owned()
            ),
        ]
    );
    let rejected: Vec<_> = plan.rejected.iter().map(ToString::to_string).collect();
    assert_eq!(
        rejected,
        [
            "topology.ovswire.io/b in namespace lab1: link r1:eth1--r3:eth1: r1:eth1 is already used by link r1:eth1--r2:eth1 of topology.ovswire.io/a; an interface joins one link only: remove the link from one of the objects",
            "topology.networkop.co.uk/r4 in namespace lab1: link r4:eth1--r5:eth1: r4:eth1 is already used by link r3:eth2--r4:eth1 of topology.ovswire.io/b; an interface joins one link only: remove the link from one of the objects",
        ]
    );
    // Same order whatever order the cache lists them in.
    first.metadata.name = Some("a".into());
    assert_eq!(plan_lab("lab1", &[&first, &second], &mesh), plan);
}

#[test]
fn wires_become_links_with_defaults() {
    let w = Wire {
        lab: "lab".into(),
        a: ("r1".into(), "eth1".into()),
        b: ("r2".into(), "eth1".into()),
        mtu: None,
        down: true,
        impair: Default::default(),
        segment: None,
    };
    let l = LinkSpec::try_from(&w).unwrap();
    assert_eq!(l.key.to_string(), "lab/r1:eth1--r2:eth1");
    assert_eq!(
        (l.mtu, l.admin),
        (DEFAULT_MTU, ovswire_core::AdminState::Down)
    );
    let bad = Wire {
        b: ("r2".into(), "eth/1".into()),
        ..w
    };
    assert!(LinkSpec::try_from(&bad).is_err());
}

#[test]
fn kne_meshnet_objects_give_the_same_links_as_the_static_topology() {
    // What KNE writes for a 3-router ring: one object per pod, each link from both sides.
    let kne = r#"
- apiVersion: networkop.co.uk/v1beta1
  kind: Topology
  metadata: {name: r1, namespace: ring}
  spec:
    links:
      - {uid: 1, peer_pod: r2, local_intf: eth1, peer_intf: eth1}
      - {uid: 3, peer_pod: r3, local_intf: eth2, peer_intf: eth2}
- apiVersion: networkop.co.uk/v1beta1
  kind: Topology
  metadata: {name: r2, namespace: ring}
  spec:
    links:
      - {uid: 1, peer_pod: r1, local_intf: eth1, peer_intf: eth1}
      - {uid: 2, peer_pod: r3, local_intf: eth2, peer_intf: eth1}
- apiVersion: networkop.co.uk/v1beta1
  kind: Topology
  metadata: {name: r3, namespace: ring}
  spec:
    links:
      - {uid: 2, peer_pod: r2, local_intf: eth1, peer_intf: eth2}
      - {uid: 3, peer_pod: r1, local_intf: eth2, peer_intf: eth2}
"#;
    let objects: Vec<MeshnetTopology> = serde_yaml_ng::from_str(kne).unwrap();
    let wires = wires_from_meshnet("ring", &objects).unwrap();
    let from_kne: std::collections::BTreeMap<LinkKey, LinkSpec> = wires
        .iter()
        .map(|w| {
            let l = LinkSpec::try_from(w).unwrap();
            (l.key.clone(), l)
        })
        .collect();
    let file = ovswire_core::Topology::parse(
            "lab: ring\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - endpoints: [r2:eth2, r3:eth1]\n  - endpoints: [r3:eth2, r1:eth2]\n",
            "ring.yaml",
        )
        .unwrap();
    assert_eq!(from_kne, file.links);
}

#[test]
fn segments_make_member_wires_and_two_joined_segments_are_refused() {
    let topo = ovswire(
        "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: lan, namespace: lab1}
spec:
  segments: [lan]
  links:
    - endpoints: [r1:eth1, lan:e1]
    - endpoints: [lan:e2, r2:eth1]
    - endpoints: [r1:eth2, r2:eth2]
",
    );
    let wires = wires_from_ovswire("lab1", &topo).unwrap();
    let segs: Vec<Option<&str>> = wires.iter().map(|w| w.segment.as_deref()).collect();
    assert_eq!(segs, [Some("lan"), Some("lan"), None]);
    let l = LinkSpec::try_from(&wires[1]).unwrap();
    assert_eq!(l.member().unwrap().to_string(), "r2:eth1");

    let two = ovswire(
        "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: lan, namespace: lab1}
spec:
  segments: [s1, s2]
  links:
    - endpoints: [s1:e1, s2:e1]
",
    );
    let e = wires_from_ovswire("lab1", &two).unwrap_err().to_string();
    assert!(e.contains("joins two segments"), "{e}");
    let bad = ovswire(
        "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: lan, namespace: lab1}
spec:
  segments: [Lan]
",
    );
    let e = wires_from_ovswire("lab1", &bad).unwrap_err().to_string();
    assert!(e.contains("spec.segments[0]"), "{e}");
}
