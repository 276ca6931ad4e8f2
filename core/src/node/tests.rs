use std::path::PathBuf;

use super::*;

fn end(pod: &str, ifname: &str) -> EndpointKey {
    EndpointKey::new("lab", pod, ifname).unwrap()
}

fn link(a: (&str, &str), b: (&str, &str), mtu: u32) -> LinkSpec {
    LinkSpec {
        key: LinkKey::new(end(a.0, a.1), end(b.0, b.1)).unwrap(),
        mtu,
        admin: AdminState::Up,
        impair: Default::default(),
        segment: None,
    }
}

fn links(specs: &[LinkSpec]) -> BTreeMap<LinkKey, LinkSpec> {
    specs.iter().map(|l| (l.key.clone(), l.clone())).collect()
}

fn node(name: &str, specs: &[LinkSpec]) -> NodeState {
    let here = Here {
        node: name.to_owned(),
        underlay_ip: Some("192.0.2.1".into()),
        underlay_mtu: 1500,
    };
    NodeState::adopt(
        here,
        links(specs),
        Persisted::default(),
        &BTreeMap::new(),
        Observed::default(),
    )
}

fn request(container: &str, pod: &str, ifname: &str, mtu: Option<u32>) -> AttachRequest {
    AttachRequest {
        container_id: container.to_owned(),
        netns: PathBuf::from(format!("/run/netns/{container}")),
        key: end(pod, ifname),
        mtu,
        network: "ovswire".into(),
    }
}

/// Reserves and completes an ADD as the agent does when the veth pair was made.
fn attach(st: &mut NodeState, req: &AttachRequest) -> Attachment {
    let Reservation::New { ofport, attachment } = st.reserve(req).unwrap() else {
        panic!("{req:?} is registered already");
    };
    st.complete_attach(&attachment, ofport, Ok(())).unwrap();
    attachment
}

#[test]
fn a_link_gives_its_mtu_and_only_an_unlinked_interface_takes_the_configs() {
    let mut st = node("n1", &[link(("r1", "eth1"), ("r2", "eth1"), 1500)]);
    let mtu_of = |st: &mut NodeState, req: &AttachRequest| match st.reserve(req).unwrap() {
        Reservation::New { attachment, .. } => attachment.mtu,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        mtu_of(&mut st, &request("c1", "r1", "eth1", Some(9000))),
        1500
    );
    assert_eq!(
        mtu_of(&mut st, &request("c2", "r1", "eth9", Some(9000))),
        9000
    );
    assert_eq!(
        mtu_of(&mut st, &request("c3", "r1", "eth8", None)),
        DEFAULT_MTU
    );
}

#[test]
fn concurrent_adds_get_distinct_ports_and_a_repeat_waits() {
    let mut st = node("n1", &[]);
    let (a, b) = (
        request("c1", "r1", "eth1", None),
        request("c2", "r2", "eth1", None),
    );
    let (Reservation::New { ofport: pa, .. }, Reservation::New { ofport: pb, .. }) =
        (st.reserve(&a).unwrap(), st.reserve(&b).unwrap())
    else {
        panic!("both are new");
    };
    assert_ne!(pa, pb);
    assert!((FIRST_OFPORT..=LAST_OFPORT).contains(&pa));
    assert!(matches!(st.reserve(&a), Err(AttachError::NotReady(_))));
}

#[test]
fn a_failed_add_frees_its_port_and_a_repeated_add_returns_the_same_interface() {
    let mut st = node("n1", &[]);
    let req = request("c1", "r1", "eth1", None);
    let Reservation::New { ofport, attachment } = st.reserve(&req).unwrap() else {
        panic!("new");
    };
    let failed = st.complete_attach(&attachment, ofport, Err(AttachError::Netns("gone".into())));
    assert_eq!(failed, Err(AttachError::Netns("gone".into())));
    assert_eq!(st.endpoint_count(), 0);

    let att = attach(&mut st, &req);
    assert_eq!(att.host_ifname, host_ifname("c1", "eth1"));
    assert_eq!((att.host_mac, att.pod_mac), macs("c1", "eth1"));
    assert_eq!(att.netns, PathBuf::from("/run/netns/c1"));
    assert_eq!(st.reserve(&req), Ok(Reservation::Existing(att.clone())));
    assert_eq!(st.attachment("c1", "eth1"), Some(att));
    assert_eq!(
        st.attachments("ovswire"),
        vec![("c1".to_owned(), "eth1".to_owned())]
    );
    assert!(
        st.attachments("another").is_empty(),
        "another network's GC sees none"
    );
}

#[test]
fn a_restarted_pod_replaces_its_old_sandbox() {
    let mut st = node("n1", &[]);
    attach(&mut st, &request("old", "r1", "eth1", None));
    let req = request("new", "r1", "eth1", None);
    let Reservation::New { ofport, attachment } = st.reserve(&req).unwrap() else {
        panic!("new sandbox");
    };
    let replaced = st.complete_attach(&attachment, ofport, Ok(())).unwrap();
    let old = replaced.expect("the old sandbox's endpoint");
    assert_eq!(old.container_id, "old");
    assert_eq!(old.host_ifname, host_ifname("old", "eth1"));
    assert_eq!(st.endpoint_count(), 1);
    assert_eq!(st.attachment("old", "eth1"), None);
}

#[test]
fn detach_makes_the_link_pending_and_a_repeat_still_names_the_interface() {
    let l = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let mut st = node("n1", std::slice::from_ref(&l));
    attach(&mut st, &request("c1", "r1", "eth1", None));
    attach(&mut st, &request("c2", "r2", "eth1", None));
    let (host, events) = st.detach("c1", "eth1");
    assert_eq!(host, host_ifname("c1", "eth1"));
    assert_eq!(
        events,
        vec![LinkEvent {
            link: l,
            status: OperState::Pending(
                "waiting for r1:eth1 to register and the port of r2:eth1".into(),
            ),
            removed: false,
            note: None,
        }]
    );
    assert_eq!(st.detach("c1", "eth1"), (host, Vec::new()));
}

#[test]
fn live_edits_keep_api_admin_changes_unless_the_source_changes_them() {
    let l1 = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let l2 = link(("r1", "eth2"), ("r3", "eth1"), 9000);
    let mut st = node("n1", &[l1.clone(), l2.clone()]);
    assert!(st.set_links(links(&[l1.clone(), l2.clone()])).is_none());

    st.set_admin(&l1.key, AdminState::Down).unwrap();
    let events = st.set_links(links(std::slice::from_ref(&l1))).unwrap();
    assert!(
        events[0].removed && events[0].link.key == l2.key,
        "{events:?}"
    );
    let admin = |st: &NodeState, key: &LinkKey| {
        st.links()
            .into_iter()
            .find(|(s, _)| s.key == *key)
            .unwrap()
            .0
            .admin
    };
    assert_eq!(
        admin(&st, &l1.key),
        AdminState::Down,
        "the source did not touch it"
    );

    let mut down = l1.clone();
    down.admin = AdminState::Down;
    st.set_links(links(std::slice::from_ref(&down)));
    st.set_links(links(std::slice::from_ref(&l1)));
    assert_eq!(admin(&st, &l1.key), AdminState::Up, "the source set it up");
    assert_eq!(st.set_admin(&l2.key, AdminState::Down), None);
}

#[test]
fn links_recorded_down_stay_down_at_start_and_when_added_later() {
    let l1 = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let l2 = link(("r1", "eth2"), ("r3", "eth1"), 9000);
    let persisted: BTreeSet<String> = [l1.key.to_string(), l2.key.to_string()].into();
    let mut st = NodeState::adopt(
        Here::default(),
        links(std::slice::from_ref(&l1)),
        Persisted {
            down: persisted,
            ..Persisted::default()
        },
        &BTreeMap::new(),
        Observed::default(),
    );
    st.set_links(links(&[l1.clone(), l2.clone()])).unwrap();
    for (spec, _) in st.links() {
        assert_eq!(spec.admin, AdminState::Down, "{}", spec.key);
    }
}

fn peer_with(endpoint: EndpointKey, generation: u64, underlay_mtu: u32) -> PeerView {
    PeerView {
        underlay_ip: Some("192.0.2.2".into()),
        underlay_mtu,
        endpoints: [(endpoint, true)].into(),
        generation,
        ..PeerView::default()
    }
}

#[test]
fn cross_node_links_report_where_their_ends_are_and_the_underlay_limit() {
    let l = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let mut st = node("n1", std::slice::from_ref(&l));
    attach(&mut st, &request("c1", "r1", "eth1", None));
    assert!(
        st.absorb_peer("n2", peer_with(end("r2", "eth1"), 5, 9100))
            .is_some()
    );
    assert_eq!(st.far_node(&l.key).as_deref(), Some("n2"));
    let info = st.link_info(&l);
    assert_eq!((info.node_a.as_str(), info.node_b.as_str()), ("n1", "n2"));
    assert!(
        info.tunnel_key.is_some(),
        "n1 sorts first and chooses the key"
    );
    assert_eq!(info.effective_mtu, 1500 - VXLAN_OVERHEAD);
    let note = info.mtu_note.unwrap();
    assert!(
        note.contains("node n1 is 1500") && note.contains("9050"),
        "{note}"
    );
    assert!(st.report_changed(), "the key is news for n2");
    assert!(!st.report_changed());
}

#[test]
fn peer_reports_that_change_nothing_are_dropped() {
    let l = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let mut st = node("n1", std::slice::from_ref(&l));
    attach(&mut st, &request("c1", "r1", "eth1", None));
    assert!(
        st.absorb_peer("n1", peer_with(end("r2", "eth1"), 1, 0))
            .is_none()
    );
    assert!(
        st.absorb_peer("n2", peer_with(end("r2", "eth1"), 5, 0))
            .is_some()
    );
    assert!(
        st.absorb_peer("n2", peer_with(end("r2", "eth1"), 5, 0))
            .is_none()
    );
    let older = PeerView {
        endpoints: BTreeMap::new(),
        ..peer_with(end("r2", "eth1"), 4, 0)
    };
    assert!(
        st.absorb_peer("n2", older).is_none(),
        "a late, older report"
    );
    assert_eq!(st.far_node(&l.key).as_deref(), Some("n2"));

    // The far end goes only when its node reports it gone.
    let gone = PeerView {
        endpoints: BTreeMap::new(),
        ..peer_with(end("r2", "eth1"), 6, 0)
    };
    assert!(st.absorb_peer("n2", gone).is_some());
    assert_eq!(st.far_node(&l.key), None);
    // The reports' underlay address (192.0.2.2) is not taken: only configuration gives one.
    assert_eq!(st.peers()["n2"], None);
    assert!(st.set_peer_address("n2", Some("192.0.2.2".into())));
    assert!(!st.set_peer_address("n2", Some("192.0.2.2".into())));
    assert!(st.set_peer_address("n2", Some("192.0.2.9".into())));
    let moved = PeerView {
        underlay_ip: Some("flow".into()),
        ..peer_with(end("r2", "eth1"), 7, 0)
    };
    st.absorb_peer("n2", moved);
    assert_eq!(st.peers()["n2"].as_deref(), Some("192.0.2.9"));
}

#[test]
fn macs_are_local_unicast_and_stable() {
    let (host, pod) = macs("c1", "eth1");
    assert_eq!((host[0], pod[0]), (0x02, 0x06));
    assert_eq!(host[1..], pod[1..]);
    assert_eq!(macs("c1", "eth1"), (host, pod));
    assert_ne!(macs("c1", "eth2").0, host);
}

#[test]
fn a_number_another_port_of_the_bridge_holds_is_never_chosen() {
    let mut st = node("n1", &[]);
    let mut observed = Observed::default();
    let foreign = OfPort {
        mac: [2, 0xff, 0, 0, 0, 1],
        down: false,
        link_down: false,
    };
    observed.of_ports.insert(FIRST_OFPORT, foreign);
    observed.of_ports.insert(FIRST_OFPORT + 1, foreign);
    st.observe(observed, &[]);
    let Reservation::New { ofport, .. } = st.reserve(&request("c1", "r1", "eth1", None)).unwrap()
    else {
        panic!("not a new attachment");
    };
    assert_eq!(ofport, FIRST_OFPORT + 2);
}

/// What OVS would show once it applied `plan`: its ports with their numbers, its flows.
fn apply(st: &mut NodeState, plan: &Plan) {
    let mut observed = st.observed.clone();
    for p in &plan.add_ports {
        observed.ports.insert(
            p.name.clone(),
            crate::plan::ObservedPort {
                name: p.name.clone(),
                ofport_request: Some(p.ofport),
                ofport: OfportState::Assigned(p.ofport),
                external_ids: p.external_ids.clone(),
                bfd: p.bfd.clone(),
                forwarding: None,
            },
        );
        observed.of_ports.insert(
            p.ofport,
            OfPort {
                mac: [2, 0, 0, 0, 0, 1],
                down: true,
                link_down: false,
            },
        );
    }
    for name in &plan.del_ports {
        if let Some(p) = observed.ports.remove(name) {
            observed.of_ports.remove(&p.ofport_request.unwrap_or(0));
        }
    }
    st.observe(observed, &[]);
    st.record(&Plan {
        add_ports: vec![],
        del_ports: vec![],
        ..plan.clone()
    });
}

fn converge(st: &mut NodeState) {
    for _ in 0..5 {
        let plan = st.plan();
        if plan.is_empty() {
            return;
        }
        apply(st, &plan);
    }
    panic!("no convergence: {:?}", st.plan());
}

#[test]
fn an_impaired_direction_goes_through_its_port_and_the_link_keeps_carrier() {
    let l = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let mut st = node("n1", std::slice::from_ref(&l));
    let a = attach(&mut st, &request("c1", "r1", "eth1", None));
    let b = attach(&mut st, &request("c2", "r2", "eth1", None));
    converge(&mut st);
    let port_of = |st: &NodeState, e: &Attachment| st.endpoints[&e.key].ofport;
    let (pa, pb) = (port_of(&st, &a), port_of(&st, &b));
    assert_eq!(st.observed.flows[&(pa, None)].out_ports, [pb]);
    assert!(st.links()[0].1 == OperState::Up);

    let imp: LinkImpairment = "a->b: delay=20ms; b->a: none".parse().unwrap();
    let ev = st.set_impair(&l.key, imp).unwrap();
    assert_eq!(
        ev.note.as_deref(),
        Some("impairment: a->b: delay=20ms; b->a: none")
    );
    assert_eq!(ev.status, OperState::Up);
    let ports = st.impair_ports();
    assert_eq!(ports.len(), 1);
    let (_, dir, port, applied) = &ports[0];
    assert_eq!((*dir, applied.delay_us), (Direction::AtoB, 20_000));
    // Until OVS has the port, frames keep the direct path.
    let plan = st.plan();
    assert_eq!(plan.add_ports.len(), 1);
    assert!(plan.add_flows.is_empty() && plan.port_states.is_empty());
    apply(&mut st, &plan);
    // Then the flows move to it, and the host ends keep carrier.
    let plan = st.plan();
    assert_eq!(plan.add_flows.len(), 2, "{plan:?}");
    assert!(plan.port_states.is_empty(), "{plan:?}");
    converge(&mut st);
    assert_eq!(st.observed.flows[&(pa, None)].out_ports, [port.ofport]);
    assert_eq!(st.observed.flows[&(port.ofport, None)].out_ports, [pb]);
    assert_eq!(
        st.observed.flows[&(pb, None)].out_ports,
        [pa],
        "b->a stays direct"
    );
    assert!(st.links()[0].1 == OperState::Up, "{:?}", st.links());

    // A changed value keeps the port; clearing goes back to direct flows and drops it.
    st.set_impair(&l.key, "loss=1%".parse().unwrap()).unwrap();
    assert_eq!(st.impair_ports().len(), 2);
    assert_eq!(st.impair_ports()[0].2.ofport, port.ofport);
    converge(&mut st);
    st.set_impair(&l.key, LinkImpairment::default()).unwrap();
    let plan = st.plan();
    assert_eq!(plan.del_ports.len(), 2);
    assert!(plan.port_states.is_empty(), "{plan:?}");
    converge(&mut st);
    assert_eq!(st.observed.flows[&(pa, None)].out_ports, [pb]);
    assert_eq!(st.observed.flows.len(), 2);
    assert!(st.links()[0].1 == OperState::Up);
}

#[test]
fn impairments_set_through_the_api_outlive_a_restart_and_a_live_edit() {
    let l = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let imp: LinkImpairment = "delay=5ms".parse().unwrap();
    let st = NodeState::adopt(
        Here::default(),
        links(std::slice::from_ref(&l)),
        Persisted {
            impair: [(l.key.to_string(), imp)].into(),
            ..Persisted::default()
        },
        &BTreeMap::new(),
        Observed::default(),
    );
    assert_eq!(st.links()[0].0.impair, imp);
    let mut st = st;
    // The source repeats what it said: the API's value stays.
    st.set_links(links(std::slice::from_ref(&l)));
    assert_eq!(st.links()[0].0.impair, imp);
    // The source changes it: the source wins.
    let mut edited = l.clone();
    edited.impair = "loss=2%".parse().unwrap();
    let events = st.set_links(links(std::slice::from_ref(&edited))).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.note.as_deref() == Some("impairment: loss=2%")),
        "{events:?}"
    );
    assert_eq!(st.links()[0].0.impair, edited.impair);
}

#[test]
fn an_add_is_durable_once_its_port_is_committed_or_observed() {
    let l = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let mut st = node("n1", std::slice::from_ref(&l));
    let a = attach(&mut st, &request("c1", "r1", "eth1", None));
    assert!(!st.persisted(&a.host_ifname));
    let plan = st.plan();
    let names: Vec<&str> = plan.add_ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec![a.host_ifname.as_str()]);
    // The transaction committed: durable before ovs-vswitchd applied it, and the next plan
    // builds on it (no second add of the port).
    st.committed(&plan.add_ports, &[]);
    assert!(st.persisted(&a.host_ifname));
    assert!(st.plan().add_ports.is_empty(), "{:?}", st.plan());
    assert!(!st.persisted("ow-unknown"), "only registered endpoints");
    // The next observation is the record from then on.
    st.observe(Observed::default(), &[]);
    assert!(
        !st.persisted(&a.host_ifname),
        "an observation without it wins"
    );
    apply(&mut st, &plan);
    assert!(st.persisted(&a.host_ifname));
}

#[test]
fn a_segment_is_no_pod_and_its_members_are_impaired_on_their_node() {
    let mut wire = link(("r1", "eth1"), ("lan", "e1"), 1500);
    wire.segment = Some("lan".into());
    let mut st = node("n1", &[wire]);
    let e = st.reserve(&request("c9", "lan", "e1", None)).unwrap_err();
    assert!(
        matches!(&e, AttachError::InvalidRequest(m) if m.contains("lan in lab lab is a LAN segment")),
        "{e:?}"
    );
    // Both directions of the member's wire are impaired where the member is.
    attach(&mut st, &request("c1", "r1", "eth1", None));
    let key = st.links()[0].0.key.clone();
    st.set_impair(&key, "delay=2ms".parse().unwrap()).unwrap();
    let dirs: Vec<Direction> = st.impair_ports().iter().map(|p| p.1).collect();
    assert_eq!(dirs, [Direction::AtoB, Direction::BtoA]);
}

/// Reserves an ADD that is still being made.
fn reserved(st: &mut NodeState, req: &AttachRequest) -> (u32, Attachment) {
    let Reservation::New { ofport, attachment } = st.reserve(req).unwrap() else {
        panic!("{req:?} is registered already");
    };
    (ofport, attachment)
}

#[test]
fn a_del_during_its_add_leaves_nothing_registered() {
    let mut st = node("n1", &[link(("r1", "eth1"), ("r2", "eth1"), 1500)]);
    let req = request("c1", "r1", "eth1", None);
    let (ofport, attachment) = reserved(&mut st, &req);
    // The DEL finds nothing registered yet, and removes the derived interface.
    let (host, _) = st.detach("c1", "eth1");
    assert_eq!(host, attachment.host_ifname);
    let e = st.complete_attach(&attachment, ofport, Ok(())).unwrap_err();
    assert!(
        matches!(&e, AttachError::NotReady(m) if m.contains("deleted")),
        "{e:?}"
    );
    assert_eq!(st.endpoint_count(), 0);
    // A new sandbox of the pod is wired as usual.
    attach(&mut st, &request("c2", "r1", "eth1", None));
    assert_eq!(st.endpoint_count(), 1);
}

#[test]
fn two_sandboxes_racing_for_an_endpoint_leave_the_later_one_wired() {
    for later_completes_first in [true, false] {
        let mut st = node("n1", &[link(("r1", "eth1"), ("r2", "eth1"), 1500)]);
        let (old_port, old) = reserved(&mut st, &request("old", "r1", "eth1", None));
        let (new_port, new) = reserved(&mut st, &request("new", "r1", "eth1", None));
        let complete_old = |st: &mut NodeState| st.complete_attach(&old, old_port, Ok(()));
        if later_completes_first {
            assert!(
                st.complete_attach(&new, new_port, Ok(()))
                    .unwrap()
                    .is_none()
            );
            assert!(complete_old(&mut st).is_err());
        } else {
            assert!(complete_old(&mut st).is_err());
            assert!(
                st.complete_attach(&new, new_port, Ok(()))
                    .unwrap()
                    .is_none()
            );
        }
        assert!(st.attachment("new", "eth1").is_some());
        assert!(st.attachment("old", "eth1").is_none());
        assert_eq!(st.endpoint_count(), 1);
    }
}

#[test]
fn a_bfd_session_takes_carrier_away_only_once_it_has_been_up() {
    let mut st = node("n1", &[]);
    st.observed.ports.insert(
        "vx1".into(),
        crate::plan::ObservedPort {
            name: "vx1".into(),
            ofport_request: Some(40000),
            ofport: OfportState::Assigned(40000),
            external_ids: BTreeMap::new(),
            bfd: BTreeMap::new(),
            forwarding: None,
        },
    );
    let says = |f: Option<bool>| BTreeMap::from([("vx1".to_owned(), f)]);
    // A session coming up says "not forwarding" first: that is not news.
    assert!(st.observe_forwarding(&says(Some(false))).is_none());
    assert!(st.observe_forwarding(&says(Some(true))).is_some());
    assert!(st.observe_forwarding(&says(Some(false))).is_some());
    assert_eq!(st.observed.ports["vx1"].forwarding, Some(false));
}

#[test]
fn a_generation_leaping_far_ahead_is_refused() {
    let l = link(("r1", "eth1"), ("r2", "eth1"), 9000);
    let mut st = node("n1", std::slice::from_ref(&l));
    let first = (5u64 << 32) | 7;
    // Nothing heard yet: any generation is taken.
    assert!(st.check_generation("n2", u64::MAX).is_ok());
    st.absorb_peer("n2", peer_with(end("r2", "eth1"), first, 0));
    assert!(st.check_generation("n2", first + 1).is_ok());
    assert!(
        st.check_generation("n2", (6 << 32) | 1).is_ok(),
        "a restart"
    );
    let e = st.check_generation("n2", u64::MAX).unwrap_err();
    assert!(e.contains("leaps far beyond"), "{e}");
}
