//! `flows`: with N ports on `ovsbr0`, install M `in_port → output` flows through one OpenFlow
//! bundle, next to `ovs-ofctl add-flows` and `ovs-ofctl --bundle add-flows` in the same run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ovswire_openflow::conn;
use ovswire_openflow::msg::FlowStatsRequest;
use ovswire_openflow::{Action, FlowMod, Message, OxmField};
use ovswire_ovsdb::Client;
use ovswire_ovsdb::vswitch::{PortSpec, Vswitch};
use ovswire_testbed::Node;

use super::ovsdb_ports::{node_with_veths, ofport_of};
use super::{Report, progress};
use crate::measure::{ratio, secs_since};

/// The `i`th benchmark flow as (priority, in_port, output port).
fn flow(i: usize, ports: usize) -> (u16, u16, u16) {
    let priority = u16::try_from(100 + i / ports).expect("at most 65435 flows per port");
    (priority, ofport_of(i % ports), ofport_of((i + 1) % ports))
}

/// Runs the scenario.
pub async fn run(ports: usize, flows: usize) -> Result<Report> {
    ensure!(
        (2..=30_000).contains(&ports),
        "--ports must be between 2 and 30000"
    );
    ensure!(
        (1..=200_000).contains(&flows),
        "--flows must be between 1 and 200000"
    );
    let mut report = Report::new("flows");
    report.set("ports", ports);
    report.set("flows", flows);

    progress(&format!("preparing a node with {ports} ports on ovsbr0"));
    let node = node_with_veths("bench-flows", ports)?;
    let ovs = Vswitch::new(Client::connect(&format!("unix:{}", node.db_sock().display())).await?);
    let specs: Vec<_> = (0..ports)
        .map(|i| PortSpec::new(format!("a{i}")).ofport_request(ofport_of(i)))
        .collect();
    ovs.add_ports_and_wait("ovsbr0", &specs, Duration::from_secs(900))
        .await?;

    progress("ovswire: one bundle over the management socket");
    let start = Instant::now();
    let (of, _events) = conn::connect(node.mgmt_sock("ovsbr0")).await?;
    let mods = (0..flows)
        .map(|i| {
            let (priority, in_port, out) = flow(i, ports);
            Message::FlowMod(
                FlowMod::add(0)
                    .priority(priority)
                    .match_field(OxmField::InPort(u32::from(in_port)))
                    .apply_actions(vec![Action::Output {
                        port: u32::from(out),
                        max_len: 0,
                    }]),
            )
        })
        .collect();
    of.bundle(mods).await?;
    let ovswire_s = secs_since(start);
    let installed = of
        .aggregate_stats(FlowStatsRequest::default())
        .await?
        .flow_count;
    ensure!(
        installed as usize == flows,
        "ovswire installed {installed} of {flows} flows"
    );
    report.set("ovswire_s", ovswire_s);

    let file = node.dir().join("flows.txt");
    let text: String = (0..flows)
        .map(|i| {
            let (priority, in_port, out) = flow(i, ports);
            format!("table=0,priority={priority},in_port={in_port},actions=output:{out}\n")
        })
        .collect();
    std::fs::write(&file, text).context("write the flow file")?;
    let file = file.to_str().expect("temp paths are UTF-8");

    progress("baseline: ovs-ofctl add-flows");
    let batched = ofctl_timed(
        &node,
        &["-O", "OpenFlow13", "add-flows", "ovsbr0", file],
        flows,
    )?;
    report.set("baseline_batched_s", batched);
    progress("baseline: ovs-ofctl --bundle add-flows");
    let bundled = ofctl_timed(
        &node,
        &["-O", "OpenFlow14", "--bundle", "add-flows", "ovsbr0", file],
        flows,
    )?;
    report.set("baseline_bundled_s", bundled);
    report.set("ratio_batched", ratio(batched, ovswire_s));
    report.set("ratio_bundled", ratio(bundled, ovswire_s));
    if let Some(rss) = std::fs::read_to_string(node.dir().join("vswitchd.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .and_then(crate::measure::rss_mb)
    {
        report.set("vswitchd_rss_mb", rss);
    }
    Ok(report)
}

/// Empties the table, then times one `ovs-ofctl` run and checks it installed `flows` flows.
fn ofctl_timed(node: &Node, args: &[&str], flows: usize) -> Result<f64> {
    node.ofctl(&["-O", "OpenFlow13", "del-flows", "ovsbr0"])?;
    let start = Instant::now();
    node.ofctl(args)?;
    let took = secs_since(start);
    let agg = node.ofctl(&["-O", "OpenFlow13", "dump-aggregate", "ovsbr0"])?;
    let count = agg
        .split_whitespace()
        .find_map(|w| w.strip_prefix("flow_count="))
        .and_then(|n| n.parse::<usize>().ok())
        .with_context(|| format!("no flow_count in `ovs-ofctl dump-aggregate` output: {agg}"))?;
    ensure!(
        count == flows,
        "ovs-ofctl installed {count} of {flows} flows"
    );
    Ok(took)
}
