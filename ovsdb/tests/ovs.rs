//! Against a real, private OVS 3.1 (ovsdb-server + ovs-vswitchd on the netdev datapath), with
//! `ovs-vsctl` as the oracle. Needs root; each test has its own node, so they run in parallel.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use ovswire_ovsdb::{
    Client, Condition, Error, MonitorRequest, Mutation, Mutator, NamedUuid, OpResult, Operation,
    Row, Until, UpdateKind, Value,
    vswitch::{BridgeSpec, DatapathType, FailMode, OfPort, PortRef, PortSpec, Vswitch},
};
use ovswire_testbed::{Node, Testbed};
use tokio::time::timeout;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const LIMIT: Duration = Duration::from_secs(30);

async fn connect(node: &Node) -> Result<Client, Error> {
    Client::connect(&format!("unix:{}", node.db_sock().display())).await
}

fn vsctl(node: &Node, args: &[&str]) -> String {
    node.vsctl(args)
        .unwrap_or_else(|e| panic!("ovs-vsctl {args:?}: {e}"))
        .trim()
        .to_owned()
}

fn interface_names(node: &Node) -> Vec<String> {
    let out = vsctl(node, &["--bare", "--columns=name", "list", "Interface"]);
    let mut names: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    names.sort();
    names
}

fn bridge(name: &str) -> BridgeSpec {
    BridgeSpec::new(name, DatapathType::Netdev, 0x42)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn list_dbs_get_schema_and_echo() -> TestResult {
    let node = Testbed::node("basics")?;
    let client = connect(&node).await?;
    assert!(
        client
            .list_dbs()
            .await?
            .contains(&"Open_vSwitch".to_owned())
    );
    let schema = client.get_schema("Open_vSwitch").await?;
    assert!(!schema.tables["Interface"].is_root);
    assert!(schema.tables["Open_vSwitch"].is_root);
    client.echo().await?;
    let err = client.get_schema("nope").await.unwrap_err();
    assert!(err.to_string().contains("unknown database"), "{err}");
    let err = client.call("no_such_method", vec![]).await.unwrap_err();
    assert!(matches!(err, Error::UnsupportedMethod { .. }), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn every_transact_operation() -> TestResult {
    let node = Testbed::node("ops")?;
    let client = connect(&node).await?;
    let db = "Open_vSwitch";

    // insert with uuid-name + mutate (insert) referencing it, plus comment and commit.
    let br = NamedUuid::new("new_bridge")?;
    let r = client
        .transact(db)
        .op(Operation::insert_named(
            "Bridge",
            Row::new()
                .with("name", "br-ops")
                .with("datapath_type", "netdev"),
            br.clone(),
        ))
        .op(Operation::mutate(
            db,
            vec![],
            vec![Mutation::insert("bridges", Value::set([br]))],
        ))
        .op(Operation::Comment("ovswire test".into()))
        .op(Operation::Commit { durable: false })
        .execute()
        .await?;
    let uuid = r[0].uuid()?;
    assert_eq!(
        (r[1].count()?, &r[2], &r[3]),
        (1, &OpResult::Empty, &OpResult::Empty)
    );
    assert_eq!(vsctl(&node, &["list-br"]), "br-ops");
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "br-ops", "_uuid"]),
        uuid.to_string()
    );

    // select.
    let r = client
        .transact(db)
        .op(Operation::select_columns(
            "Bridge",
            vec![Condition::eq("name", "br-ops")],
            ["_uuid", "name", "ports"],
        ))
        .execute()
        .await?;
    let rows = r[0].rows()?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].uuid()?, uuid);
    assert!(rows[0].get("ports")?.uuids()?.is_empty());

    // update, then mutate a map (delete + insert, since insert never overwrites) and an integer.
    let r = client
        .transact(db)
        .op(Operation::update(
            "Bridge",
            vec![Condition::uuid(uuid)],
            Row::new().with("external_ids", Value::map([("owner", "test"), ("k", "1")])),
        ))
        .op(Operation::mutate(
            "Bridge",
            vec![Condition::uuid(uuid)],
            vec![
                Mutation::insert("external_ids", Value::map([("k", "ignored")])),
                Mutation::delete("external_ids", Value::set(["owner"])),
                Mutation::insert("external_ids", Value::map([("new", "2")])),
            ],
        ))
        .op(Operation::mutate(
            db,
            vec![],
            vec![Mutation::new("next_cfg", Mutator::Add, 10i64)],
        ))
        .execute()
        .await?;
    assert_eq!((r[0].count()?, r[1].count()?), (1, 1));
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "br-ops", "external_ids"]),
        r#"{k="1", new="2"}"#
    );

    // wait: satisfied at once; and one that can never hold, which times out.
    let ok = client
        .transact(db)
        .op(Operation::wait(
            "Bridge",
            vec![Condition::uuid(uuid)],
            ["name"],
            Until::Eq,
            vec![Row::new().with("name", "br-ops")],
            Some(1000),
        ))
        .execute()
        .await?;
    assert_eq!(ok[0], OpResult::Empty);
    let err = client
        .transact(db)
        .op(Operation::wait(
            "Bridge",
            vec![Condition::uuid(uuid)],
            ["name"],
            Until::Ne,
            vec![Row::new().with("name", "br-ops")],
            Some(0),
        ))
        .execute()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::OperationFailed {
                index: 0,
                op: "wait",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.ovsdb_error(), Some("timed out"));

    // abort: the whole transaction is dropped, later results are null.
    let err = client
        .transact(db)
        .op(Operation::update(
            "Bridge",
            vec![Condition::uuid(uuid)],
            Row::new().with("datapath_type", "system"),
        ))
        .op(Operation::Abort)
        .op(Operation::Comment("never".into()))
        .execute()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::OperationFailed {
                index: 1,
                op: "abort",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "br-ops", "datapath_type"]),
        "netdev"
    );

    // delete of a referenced row fails on commit (referential integrity): the extra element.
    let err = client
        .transact(db)
        .op(Operation::delete("Bridge", vec![Condition::uuid(uuid)]))
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::CommitFailed { .. }), "{err}");
    assert_eq!(err.ovsdb_error(), Some("referential integrity violation"));

    // delete together with the reference removal succeeds.
    let r = client
        .transact(db)
        .op(Operation::mutate(
            db,
            vec![],
            vec![Mutation::delete("bridges", Value::set([uuid]))],
        ))
        .op(Operation::delete("Bridge", vec![Condition::uuid(uuid)]))
        .execute()
        .await?;
    assert_eq!((r[0].count()?, r[1].count()?), (1, 1));
    assert_eq!(vsctl(&node, &["list-br"]), "");

    // A named-uuid with a '-' never reaches the server.
    assert!(matches!(
        NamedUuid::new("row-1"),
        Err(Error::InvalidNamedUuid(_))
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn duplicate_name_fails_the_whole_transaction() -> TestResult {
    let node = Testbed::node("dup")?;
    let ovs = Vswitch::new(connect(&node).await?);
    ovs.ensure_bridge(&bridge("ovsbr0")).await?;
    ovs.add_ports("ovsbr0", &[PortSpec::new("a1").internal()])
        .await?;
    let err = ovs
        .add_ports(
            "ovsbr0",
            &[
                PortSpec::new("b1").internal(),
                PortSpec::new("a1").internal(),
            ],
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::CommitFailed { .. }), "{text}");
    assert!(text.contains("constraint violation"), "{text}");
    assert!(text.contains("(a1)") && text.contains("\"name\""), "{text}");
    assert_eq!(
        vsctl(&node, &["list-ports", "ovsbr0"]),
        "a1",
        "b1 was not added either"
    );

    let err = ovs
        .add_ports("missing", &[PortSpec::new("c1").internal()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                table: "Bridge",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        interface_names(&node),
        ["a1", "ovsbr0"],
        "c1 was garbage-collected"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn ensure_bridge_is_idempotent_and_repairs_drift() -> TestResult {
    let node = Testbed::node("ensure")?;
    let ovs = Vswitch::new(connect(&node).await?);
    let spec = bridge("ovsbr0")
        .other_config("stp-enable", "false")
        .external_id("owner", "ovswire");
    let uuid = ovs.ensure_bridge(&spec).await?;
    assert_eq!(ovs.ensure_bridge(&spec).await?, uuid);
    assert_eq!(vsctl(&node, &["list-br"]), "ovsbr0");
    assert_eq!(
        vsctl(
            &node,
            &["get", "Bridge", "ovsbr0", "other_config:datapath-id"]
        ),
        "\"0000000000000042\""
    );
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "ovsbr0", "protocols"]),
        "[OpenFlow13, OpenFlow14]"
    );
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "ovsbr0", "fail_mode"]),
        "secure"
    );

    node.vsctl(&[
        "set",
        "Bridge",
        "ovsbr0",
        "fail_mode=standalone",
        "protocols=OpenFlow10",
        "other_config:datapath-id=00000000000000ff",
        "other_config:keep=me",
    ])?;
    assert_eq!(ovs.ensure_bridge(&spec).await?, uuid);
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "ovsbr0", "fail_mode"]),
        "secure"
    );
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "ovsbr0", "protocols"]),
        "[OpenFlow13, OpenFlow14]"
    );
    assert_eq!(
        vsctl(
            &node,
            &["get", "Bridge", "ovsbr0", "other_config:datapath-id"]
        ),
        "\"0000000000000042\""
    );
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "ovsbr0", "other_config:keep"]),
        "me"
    );
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "ovsbr0", "external_ids:owner"]),
        "ovswire"
    );

    let standalone = bridge("br1")
        .fail_mode(FailMode::Standalone)
        .protocols(["OpenFlow13"]);
    ovs.ensure_bridge(&standalone).await?;
    assert_eq!(ovs.bridges().await?, ["br1", "ovsbr0"]);
    // Two agents racing to create the same bridge both end up with the one bridge.
    let racing = bridge("br2");
    let (a, b) = tokio::join!(ovs.ensure_bridge(&racing), ovs.ensure_bridge(&racing));
    assert_eq!(a?, b?);
    assert_eq!(ovs.bridges().await?, ["br1", "br2", "ovsbr0"]);
    // vswitchd really uses the pinned datapath id.
    let batch = ovs.add_ports("ovsbr0", &[]).await?;
    ovs.wait_applied(batch.next_cfg, LIMIT).await?;
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "ovsbr0", "datapath_id"]),
        "\"0000000000000042\""
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn veth_ports_ofport_request_and_failures() -> TestResult {
    let node = Testbed::node("veth")?;
    node.veth("a1", "b1")?;
    let ovs = Vswitch::new(connect(&node).await?);
    ovs.ensure_bridge(&bridge("ovsbr0")).await?;
    let ports = [
        PortSpec::new("a1")
            .ofport_request(40000)
            .mtu_request(9000)
            .port_external_id("link", "l1"),
        PortSpec::new("ghost0"),
    ];
    let states = ovs.add_ports_and_wait("ovsbr0", &ports, LIMIT).await?;
    assert_eq!(states[0].ofport, OfPort::Assigned(40000));
    assert_eq!(states[0].mtu, Some(9000));
    assert_eq!(states[0].link_state.as_deref(), Some("up"));
    assert_eq!(states[0].admin_state.as_deref(), Some("up"));
    assert_eq!(states[1].ofport, OfPort::Failed);
    assert!(
        states[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("ghost0")),
        "{:?}",
        states[1].error
    );
    assert_eq!(vsctl(&node, &["get", "Interface", "a1", "ofport"]), "40000");
    assert_eq!(
        vsctl(&node, &["get", "Port", "a1", "external_ids:link"]),
        "l1"
    );

    let batch = ovs
        .delete_ports(
            "ovsbr0",
            &[PortRef::from("ghost0"), PortRef::from("nonexistent")],
        )
        .await?;
    assert_eq!(batch.removed, 1);
    ovs.wait_applied(batch.next_cfg, LIMIT).await?;
    assert_eq!(vsctl(&node, &["list-ports", "ovsbr0"]), "a1");
    assert_eq!(
        interface_names(&node),
        ["a1", "ovsbr0"],
        "garbage-collected"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn monitor_cond_reports_insert_modify_delete() -> TestResult {
    let node = Testbed::node("mon")?;
    let client = connect(&node).await?;
    let ovs = Vswitch::new(client.clone());
    ovs.ensure_bridge(&bridge("ovsbr0")).await?;
    let mut stream = client
        .monitor(
            "Open_vSwitch",
            vec![
                MonitorRequest::new("Interface")
                    .columns(["name", "ofport", "external_ids"])
                    .conditions(vec![Condition::ne("name", "ovsbr0")]),
            ],
        )
        .await?;
    let initial = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
    assert_eq!(initial.kind, UpdateKind::Initial);
    assert!(
        initial.changes.is_empty(),
        "the bridge's own interface is filtered out: {initial:?}"
    );

    ovs.add_ports("ovsbr0", &[PortSpec::new("p1").internal()])
        .await?;
    let ev = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
    assert_eq!(ev.kind, UpdateKind::Update);
    assert!(ev.changes[0].old.is_none());
    let uuid = ev.changes[0].uuid;

    // vswitchd assigns the ofport: a modify whose diff is applied to the whole row.
    let mut ofport = None;
    while ofport.is_none() {
        let ev = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
        let new = ev.changes[0].new.as_ref().unwrap();
        ofport = new.get("ofport")?.optional_i64()?;
        assert_eq!(new.get("name")?.as_str()?, "p1");
    }
    assert_eq!(
        vsctl(&node, &["get", "Interface", "p1", "ofport"]),
        ofport.unwrap().to_string()
    );

    node.vsctl(&[
        "set",
        "Interface",
        "p1",
        "external_ids:a=1",
        "external_ids:b=2",
    ])?;
    let ev = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
    let ids = ev.changes[0]
        .new
        .as_ref()
        .unwrap()
        .get("external_ids")?
        .string_map()?;
    assert_eq!(ids.len(), 2);
    node.vsctl(&[
        "set",
        "Interface",
        "p1",
        "external_ids:a=3",
        "--",
        "remove",
        "Interface",
        "p1",
        "external_ids",
        "b",
    ])?;
    let ev = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
    let ids = ev.changes[0]
        .new
        .as_ref()
        .unwrap()
        .get("external_ids")?
        .string_map()?;
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        [("a".to_owned(), "3".to_owned())]
    );

    ovs.delete_ports("ovsbr0", &[PortRef::from("p1")]).await?;
    let ev = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
    assert_eq!(ev.changes[0].uuid, uuid);
    assert!(ev.changes[0].new.is_none());
    assert_eq!(stream.rows("Interface").count(), 0);
    stream.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn other_config_keys_are_replaced_and_removed() -> TestResult {
    let node = Testbed::node("cfg")?;
    let ovs = Vswitch::new(connect(&node).await?);
    ovs.set_other_config("flow-restore-wait", "true").await?;
    ovs.set_other_config("flow-restore-wait", "false").await?;
    assert_eq!(
        vsctl(
            &node,
            &["get", "Open_vSwitch", ".", "other_config:flow-restore-wait"]
        ),
        "\"false\""
    );
    assert_eq!(ovs.other_config().await?["flow-restore-wait"], "false");
    ovs.remove_other_config("flow-restore-wait").await?;
    assert!(!ovs.other_config().await?.contains_key("flow-restore-wait"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn bridge_external_ids_tagged_interfaces_and_next_cfg() -> TestResult {
    let node = Testbed::node("tags")?;
    let ovs = Vswitch::new(connect(&node).await?);
    ovs.ensure_bridge(&bridge("br0")).await?;
    ovs.set_bridge_external_id("br0", "k", Some("1")).await?;
    ovs.set_bridge_external_id("br0", "k", Some("2")).await?;
    ovs.set_bridge_external_id("br0", "gone", Some("x")).await?;
    ovs.set_bridge_external_id("br0", "gone", None).await?;
    assert_eq!(
        vsctl(&node, &["get", "Bridge", "br0", "external_ids:k"]),
        "\"2\""
    );
    let ids = ovs.bridge_external_ids("br0").await?;
    assert_eq!(
        (ids.get("k").map(String::as_str), ids.get("gone")),
        (Some("2"), None)
    );
    let missing = ovs.bridge_external_ids("nope").await.unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");

    let ports = [
        PortSpec::new("t1")
            .internal()
            .ofport_request(40001)
            .iface_external_id("owner", "me"),
        PortSpec::new("t2")
            .internal()
            .iface_external_id("owner", "other"),
    ];
    let batch = ovs.add_ports("br0", &ports).await?;
    ovs.wait_applied(batch.next_cfg, LIMIT).await?;
    let mine = ovs.interfaces_tagged("owner", "me").await?;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(
        (
            mine[0].name.as_str(),
            mine[0].ofport_request,
            mine[0].ofport
        ),
        ("t1", Some(40001), OfPort::Assigned(40001))
    );
    assert_eq!(mine[0].external_ids["owner"], "me");

    let next = ovs.bump_next_cfg().await?;
    assert!(next > batch.next_cfg, "{next} after {}", batch.next_cfg);
    ovs.wait_applied(next, LIMIT).await?;
    let cur: i64 = vsctl(&node, &["get", "Open_vSwitch", ".", "cur_cfg"]).parse()?;
    assert!(cur >= next, "cur_cfg {cur} < {next}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn two_thousand_ports_in_one_transaction() -> TestResult {
    let node = Testbed::node("scale")?;
    let ovs = Vswitch::new(connect(&node).await?);
    ovs.ensure_bridge(&bridge("ovsbr0")).await?;
    let ports: Vec<_> = (0..2000)
        .map(|i| {
            PortSpec::new(format!("s{i}"))
                .internal()
                .iface_external_id("owner", "scale")
        })
        .collect();

    let start = Instant::now();
    let batch = ovs.add_ports("ovsbr0", &ports).await?;
    let committed = start.elapsed();
    ovs.wait_applied(batch.next_cfg, Duration::from_secs(300))
        .await?;
    let applied = start.elapsed();
    let states = ovs
        .interfaces(ports.iter().map(|p| p.name.as_str()))
        .await?;
    eprintln!(
        "2000 ports: committed in {committed:?}, applied in {applied:?}, read back in {:?}",
        start.elapsed()
    );

    assert_eq!(batch.added.len(), 2000);
    let ofports: HashSet<u32> = states
        .iter()
        .map(|s| match s.ofport {
            OfPort::Assigned(n) => n,
            other => panic!("{} has {other:?} ({:?})", s.name, s.error),
        })
        .collect();
    assert_eq!(ofports.len(), 2000, "ofports are unique");
    assert_eq!(
        vsctl(&node, &["list-ports", "ovsbr0"]).lines().count(),
        2000
    );
    // A read by name over several transactions finds each existing name once, in order, and
    // skips a missing one.
    let mut wanted: Vec<String> = (0..2000).step_by(7).map(|i| format!("s{i}")).collect();
    wanted.insert(100, "missing".into());
    let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let named = ovs.interfaces_named(&names).await?;
    let got: Vec<&str> = named.iter().map(|s| s.name.as_str()).collect();
    let expected: Vec<&str> = names.iter().copied().filter(|n| *n != "missing").collect();
    assert_eq!(got, expected);
    // Every tagged row, read over many transactions.
    let tagged = ovs.interfaces_tagged("owner", "scale").await?;
    let tagged: HashSet<&str> = tagged.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(tagged.len(), 2000);

    let start = Instant::now();
    let refs: Vec<PortRef> = batch.added.iter().map(|p| PortRef::Uuid(p.port)).collect();
    let removed = ovs.delete_ports("ovsbr0", &refs).await?;
    assert_eq!(removed.removed, 2000);
    let deleted = start.elapsed();
    ovs.wait_applied(removed.next_cfg, Duration::from_secs(300))
        .await?;
    eprintln!(
        "2000 ports: deleted in {deleted:?}, applied in {:?}",
        start.elapsed()
    );
    assert_eq!(vsctl(&node, &["list-ports", "ovsbr0"]), "");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn survives_an_ovsdb_server_restart() -> TestResult {
    let mut node = Testbed::node("restart")?;
    let client = connect(&node).await?;
    let ovs = Vswitch::new(client.clone());
    ovs.ensure_bridge(&bridge("ovsbr0")).await?;
    let mut stream = client
        .monitor(
            "Open_vSwitch",
            vec![MonitorRequest::new("Bridge").columns(["name"])],
        )
        .await?;
    let initial = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
    assert_eq!(initial.changes.len(), 1);

    // A request issued while the server is down waits for the reconnect instead of failing.
    node.stop_ovsdb();
    let pending = tokio::spawn({
        let ovs = ovs.clone();
        async move { ovs.ensure_bridge(&bridge("br-during")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.start_ovsdb()?;
    timeout(LIMIT, pending).await???;

    // The monitor was re-established with a fresh snapshot, flagged as a resync.
    loop {
        let ev = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
        if ev.kind == UpdateKind::Resync {
            assert!(
                ev.changes
                    .iter()
                    .any(|c| c.old.is_some() && c.new.is_some()),
                "{ev:?}"
            );
            break;
        }
    }
    // After the resync, incremental updates flow again and transactions work.
    ovs.ensure_bridge(&bridge("br-after")).await?;
    loop {
        let ev = timeout(LIMIT, stream.next_event()).await?.unwrap()?;
        if ev.changes.iter().any(|c| {
            c.new
                .as_ref()
                .and_then(|r| r.get("name").ok()?.as_str().ok().map(str::to_owned))
                .as_deref()
                == Some("br-after")
        }) {
            break;
        }
    }
    let mut names: Vec<String> = stream
        .rows("Bridge")
        .map(|(_, r)| r.get("name").unwrap().as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["br-after", "br-during", "ovsbr0"]);
    let batch = ovs
        .add_ports("br-after", &[PortSpec::new("x1").internal()])
        .await?;
    ovs.wait_applied(batch.next_cfg, LIMIT).await?;
    assert!(matches!(
        ovs.interfaces(["x1"]).await?[0].ofport,
        OfPort::Assigned(_)
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn a_blocked_wait_can_be_abandoned() -> TestResult {
    let node = Testbed::node("cancel")?;
    let client = connect(&node).await?;
    // A wait that can never be satisfied and has no timeout blocks on the server as a
    // "trigger"; dropping the future sends `cancel`, and the server forgets it.
    let blocked = tokio::spawn({
        let client = client.clone();
        async move {
            let never = vec![Row::new().with("name", "never")];
            let wait = Operation::wait("Bridge", vec![], ["name"], Until::Eq, never, None);
            client.transact("Open_vSwitch").op(wait).execute().await
        }
    });
    client.echo().await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        server_memory(&node).contains("triggers:1"),
        "{}",
        server_memory(&node)
    );
    blocked.abort();
    assert!(blocked.await.unwrap_err().is_cancelled());
    // The cancel went out before this echo, on the same connection.
    client.echo().await?;
    assert!(
        !server_memory(&node).contains("triggers:"),
        "{}",
        server_memory(&node)
    );
    assert!(
        client
            .list_dbs()
            .await?
            .contains(&"Open_vSwitch".to_owned())
    );
    Ok(())
}

/// ovsdb-server's `memory/show`, which counts blocked transactions as `triggers`.
fn server_memory(node: &Node) -> String {
    let ctl = node.dir().join("ovsdb.ctl");
    let out = std::process::Command::new("ovs-appctl")
        .arg("-t")
        .arg(&ctl)
        .arg("memory/show")
        .output()
        .expect("run ovs-appctl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn ensure_bridge_initialises_an_empty_database() -> TestResult {
    let node = Testbed::node("init")?;
    let client = connect(&node).await?;
    // Undo `ovs-vsctl init`: the root table is empty, so a bridge has nothing to hang from.
    let r = client
        .transact("Open_vSwitch")
        .op(Operation::delete("Open_vSwitch", vec![]))
        .execute()
        .await?;
    assert_eq!(r[0].count()?, 1);
    let ovs = Vswitch::new(client);
    ovs.ensure_bridge(&bridge("ovsbr0")).await?;
    assert_eq!(vsctl(&node, &["list-br"]), "ovsbr0");
    assert_eq!(interface_names(&node), ["ovsbr0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
async fn a_deleted_bridge_loses_its_device_once_applied() -> TestResult {
    let node = Testbed::node("delbr")?;
    let ovs = Vswitch::new(connect(&node).await?);
    ovs.ensure_bridge(&bridge("br-del")).await?;
    let device = || {
        node.netns()
            .links()
            .map(|l| l.contains(&"br-del".to_owned()))
    };
    let deadline = Instant::now() + LIMIT;
    while !device()? {
        assert!(Instant::now() < deadline, "br-del never got its device");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let next_cfg = ovs.delete_bridge("br-del").await?.expect("br-del existed");
    ovs.wait_applied(next_cfg, LIMIT).await?;
    assert!(!device()?, "br-del's device outlives the applied deletion");
    assert_eq!(vsctl(&node, &["list-br"]), "");
    assert_eq!(ovs.delete_bridge("br-del").await?, None);
    Ok(())
}
