//! Against a real, private Open vSwitch (run as root): every test starts its own node.
//! `ovs-ofctl` and the kernel's link state serve as independent oracles.

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use ovswire_openflow::conn::{self, Events, Handle};
use ovswire_openflow::msg::{
    BadActionCode, BadInstructionCode, FlowModFailedCode, FlowStatsRequest, Port, PortReason,
};
use ovswire_openflow::types::port_config::OFPPC_PORT_DOWN;
use ovswire_openflow::{
    Action, Error, ErrorKind, FlowMod, Instruction, Message, OFPTT_ALL, OxmField, PortMod,
};
use ovswire_testbed::{Node, Testbed};
use tokio::runtime::Runtime;

type TestResult = Result<(), Box<dyn StdError>>;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A node with bridge `ovsbr0`.
fn node(name: &str) -> Result<Node, Box<dyn StdError>> {
    let node = Testbed::node(name)?;
    node.add_bridge("ovsbr0")?;
    Ok(node)
}

fn connect(rt: &Runtime, node: &Node) -> Result<(Handle, Events), Error> {
    rt.block_on(conn::connect(node.mgmt_sock("ovsbr0")))
}

/// Flow lines of `ovs-ofctl --no-stats dump-flows` (the reply header dropped), so two
/// dumps of the same table compare equal.
fn ofctl_flows(node: &Node) -> Result<Vec<String>, Box<dyn StdError>> {
    let out = node.ofctl(&["-O", "OpenFlow13", "--no-stats", "dump-flows", "ovsbr0"])?;
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains(" reply "))
        .map(str::to_owned)
        .collect())
}

/// The link flow ovswire installs: `in_port=a, actions=set_field:vni->tun_id, output:b`.
fn wire_flow(i: u32) -> FlowMod {
    FlowMod::add(0)
        .priority(100)
        .cookie(0x1_0000_0000 | u64::from(i))
        .match_field(OxmField::InPort(32768 + 2 * i))
        .apply_actions(vec![
            Action::SetField(OxmField::TunnelId(5000 + u64::from(i), None)),
            Action::output(32769 + 2 * i),
        ])
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn flows_read_back_by_flow_stats_and_ofctl() -> TestResult {
    let node = node("flows")?;
    let rt = runtime();
    let (handle, _events) = connect(&rt, &node)?;
    let desc = rt.block_on(handle.desc())?;
    assert_eq!(desc.hw_desc, "Open vSwitch");
    assert_eq!(
        handle.features().datapath_id,
        1,
        "the testbed pins datapath-id 1"
    );

    let flows = [
        wire_flow(0),
        wire_flow(1),
        FlowMod::add(0).priority(1).apply_actions(vec![]),
    ];
    for flow in &flows {
        rt.block_on(handle.flow_mod(flow.clone()))?;
    }

    let mut stats = rt.block_on(handle.flow_stats(FlowStatsRequest::default()))?;
    stats.sort_by_key(|f| f.cookie);
    assert_eq!(stats.len(), 3);
    let mut want = flows.to_vec();
    want.sort_by_key(|f| f.cookie);
    for (got, want) in stats.iter().zip(&want) {
        assert_eq!(
            (got.table_id, got.priority, got.cookie),
            (want.table_id, want.priority, want.cookie)
        );
        assert_eq!(got.r#match, want.r#match);
        // OVS reports an empty action list as no instruction at all.
        let want_instructions: Vec<_> = want
            .instructions
            .iter()
            .filter(|i| !matches!(i, Instruction::ApplyActions(a) if a.is_empty()))
            .cloned()
            .collect();
        assert_eq!(got.instructions, want_instructions);
    }

    let lines = ofctl_flows(&node)?;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let wire = lines
        .iter()
        .find(|l| l.contains("in_port=32768"))
        .expect("flow for port 32768");
    assert!(wire.contains("cookie=0x100000000"), "{wire}");
    assert!(wire.contains("priority=100"), "{wire}");
    assert!(
        wire.contains("set_field:0x1388->tun_id") && wire.contains("output:32769"),
        "{wire}"
    );
    let drop = lines
        .iter()
        .find(|l| l.contains("priority=1 "))
        .expect("the drop flow");
    assert!(drop.contains("actions=drop"), "{drop}");

    // DELETE by cookie: table OFPTT_ALL, out_port/out_group ANY (the builder's defaults).
    let delete = FlowMod::delete(OFPTT_ALL).cookie_filter(0x1_0000_0000, 0xffff_ffff_0000_0000);
    rt.block_on(handle.flow_mod(delete))?;
    assert_eq!(ofctl_flows(&node)?.len(), 1);
    Ok(())
}

fn port(ports: &[Port], port_no: u32) -> Port {
    ports
        .iter()
        .find(|p| p.port_no == port_no)
        .cloned()
        .unwrap_or_else(|| panic!("port {port_no} in {ports:#?}"))
}

/// Waits for a PORT_STATUS about `port_no` whose config satisfies `want`.
fn port_status(
    rt: &Runtime,
    events: &mut Events,
    port_no: u32,
    want: impl Fn(u32) -> bool,
) -> Port {
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let frame = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("PORT_STATUS within 10 s")
                .expect("connection open");
            if let Message::PortStatus(s) = frame.message {
                if s.port.port_no == port_no
                    && s.reason == PortReason::Modify
                    && want(s.port.config)
                {
                    return s.port;
                }
            }
        }
    })
}

fn wait_link(node: &Node, ifname: &str, admin_up: bool) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = node.link_state(ifname)?;
        if state.admin_up == admin_up {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "{ifname} admin_up stays {}: {state:?}",
            state.admin_up
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn port_mod_flaps_a_veth_and_a_second_connection_sees_port_status() -> TestResult {
    let node = node("portmod")?;
    node.veth("a1", "b1")?;
    node.vsctl(&[
        "add-port",
        "ovsbr0",
        "a1",
        "--",
        "set",
        "Interface",
        "a1",
        "ofport_request=10",
    ])?;
    let rt = runtime();
    let (handle, _events) = connect(&rt, &node)?;
    // OVS (OpenFlow <= 1.4) does not echo PORT_STATUS to the connection that sent the
    // PORT_MOD, so a second connection watches.
    let (_watcher, mut watch) = connect(&rt, &node)?;

    let a1 = port(&rt.block_on(handle.port_desc())?, 10);
    assert_eq!(a1.name, "a1");
    assert_eq!(a1.config & OFPPC_PORT_DOWN, 0);
    assert_eq!(
        a1.hw_addr.0,
        node.link_state("a1")?.mac,
        "PORT_DESC hw_addr is the kernel's MAC"
    );

    rt.block_on(handle.port_mod(PortMod::admin_down(10, a1.hw_addr, true)))?;
    wait_link(&node, "a1", false)?;
    let seen = port_status(&rt, &mut watch, 10, |c| c & OFPPC_PORT_DOWN != 0);
    assert_eq!(seen.hw_addr, a1.hw_addr);
    assert!(
        !node.link_state("b1")?.carrier,
        "the peer end loses carrier"
    );

    rt.block_on(handle.port_mod(PortMod::admin_down(10, a1.hw_addr, false)))?;
    wait_link(&node, "a1", true)?;
    port_status(&rt, &mut watch, 10, |c| c & OFPPC_PORT_DOWN == 0);

    // A wrong hw_addr is refused with a decoded error, not a hang.
    let mut wrong = a1.hw_addr;
    wrong.0[5] ^= 1;
    match rt.block_on(handle.port_mod(PortMod::admin_down(10, wrong, true))) {
        Err(Error::OpenFlow(e)) => assert!(matches!(e.kind, ErrorKind::PortModFailed(_)), "{e}"),
        other => panic!("expected PORT_MOD_FAILED, got {other:?}"),
    }
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn malformed_flows_return_decoded_errors() -> TestResult {
    let node = node("badflow")?;
    let rt = runtime();
    let (handle, _events) = connect(&rt, &node)?;

    let goto_backwards = FlowMod::add(1).goto_table(0);
    match rt.block_on(handle.flow_mod(goto_backwards)) {
        Err(Error::OpenFlow(e)) => {
            assert_eq!(
                e.kind,
                ErrorKind::BadInstruction(BadInstructionCode::BadTableId),
                "{e}"
            );
            assert_eq!(e.data.get(1), Some(&14), "the error quotes our FLOW_MOD");
        }
        other => panic!("expected BAD_INSTRUCTION, got {other:?}"),
    }

    // Ports between 0xffff and OFPP_MAX do not exist in OVS.
    let bad_port = FlowMod::add(0).apply_actions(vec![Action::output(0x1_0000)]);
    match rt.block_on(handle.flow_mod(bad_port)) {
        Err(Error::OpenFlow(e)) => assert_eq!(
            e.kind,
            ErrorKind::BadAction(BadActionCode::BadOutPort),
            "{e}"
        ),
        other => panic!("expected BAD_OUT_PORT, got {other:?}"),
    }

    let bad_table = FlowMod::add(OFPTT_ALL);
    match rt.block_on(handle.flow_mod(bad_table)) {
        Err(Error::OpenFlow(e)) => assert_eq!(
            e.kind,
            ErrorKind::FlowModFailed(FlowModFailedCode::BadTableId),
            "{e}"
        ),
        other => panic!("expected BAD_TABLE_ID, got {other:?}"),
    }

    // The connection is still usable and nothing was installed.
    rt.block_on(handle.barrier())?;
    assert!(ofctl_flows(&node)?.is_empty());
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn bundle_of_2000_flows_commits() -> TestResult {
    let node = node("bundle")?;
    let rt = runtime();
    let (handle, _events) = connect(&rt, &node)?;
    let flows: Vec<_> = (0..2000).map(|i| Message::FlowMod(wire_flow(i))).collect();
    let started = Instant::now();
    rt.block_on(handle.bundle(flows))?;
    let took = started.elapsed();
    assert_eq!(ofctl_flows(&node)?.len(), 2000);
    let agg = rt.block_on(handle.aggregate_stats(FlowStatsRequest::default()))?;
    assert_eq!(agg.flow_count, 2000);
    // Flow stats for 2000 flows span several REPLY_MORE parts: all must come back joined.
    assert_eq!(
        rt.block_on(handle.flow_stats(FlowStatsRequest::default()))?
            .len(),
        2000
    );
    eprintln!("2000-flow bundle committed in {took:?}");
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn bundle_with_one_bad_flow_changes_nothing_and_names_it() -> TestResult {
    let node = node("badbundle")?;
    let rt = runtime();
    let (handle, mut events) = connect(&rt, &node)?;
    rt.block_on(handle.flow_mod(FlowMod::add(0).priority(7).cookie(7).apply_actions(vec![])))?;
    let before = ofctl_flows(&node)?;

    // A delete of everything first, so a partial commit would be visible.
    let mut batch = vec![Message::FlowMod(FlowMod::delete(OFPTT_ALL))];
    batch.extend((0..10).map(|i| Message::FlowMod(wire_flow(i))));
    batch[6] = Message::FlowMod(FlowMod::add(1).goto_table(0));
    match rt.block_on(handle.bundle(batch)) {
        Err(Error::BatchFailed { index, error }) => {
            assert_eq!(index, 6);
            assert_eq!(
                error.kind,
                ErrorKind::BadInstruction(BadInstructionCode::BadTableId),
                "{error}"
            );
        }
        other => panic!("expected the bundle to fail at message 6, got {other:?}"),
    }
    assert_eq!(
        ofctl_flows(&node)?,
        before,
        "an atomic bundle leaves the table untouched"
    );
    rt.block_on(handle.barrier())?;
    // Every error was matched to its request; none leaked to the asynchronous stream.
    while let Some(frame) = events.try_recv() {
        assert!(
            !matches!(frame.message, Message::Error(_)),
            "stray {frame:?}"
        );
    }
    Ok(())
}

/// Reconnecting is calling `connect` again: a second handle works while the first lives,
/// and after the first is dropped.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn reconnect_is_connect_again() -> TestResult {
    let node = node("reconnect")?;
    let rt = runtime();
    let (first, _e1) = connect(&rt, &node)?;
    rt.block_on(first.barrier())?;
    drop(first);
    let (second, _e2) = connect(&rt, &node)?;
    rt.block_on(second.flow_mod(wire_flow(1)))?;
    assert_eq!(ofctl_flows(&node)?.len(), 1);
    Ok(())
}
