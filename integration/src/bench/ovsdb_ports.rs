//! `ovsdb-ports`: add N ports to `ovsbr0` in one OVSDB transaction and wait until every one has
//! an OpenFlow port number, next to `ovs-vsctl` doing the same in one invocation.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ovswire_ovsdb::Client;
use ovswire_ovsdb::vswitch::{OfPort, PortSpec, Vswitch};
use ovswire_testbed::{Node, Testbed};

use super::{Report, progress};
use crate::measure::{ratio, secs_since};

/// A node with `ovsbr0` and `ports` veth pairs `aN`/`pN` ready to be added.
pub fn node_with_veths(name: &str, ports: usize) -> Result<Node> {
    let node = Testbed::node(name)?;
    node.add_bridge("ovsbr0")?;
    let pairs: Vec<_> = (0..ports)
        .map(|i| (format!("a{i}"), format!("p{i}")))
        .collect();
    node.netns().veths(&pairs).context("create veth pairs")?;
    Ok(node)
}

/// OpenFlow port number requested for the `i`th benchmark port.
pub fn ofport_of(i: usize) -> u16 {
    u16::try_from(i + 1).expect("benchmarks stay under 65279 ports")
}

/// Runs the scenario.
pub async fn run(ports: usize) -> Result<Report> {
    ensure!(
        (1..=30_000).contains(&ports),
        "--ports must be between 1 and 30000"
    );
    let mut report = Report::new("ovsdb-ports");
    report.set("ports", ports);

    progress(&format!(
        "ovswire: preparing a node with {ports} veth pairs"
    ));
    let node = node_with_veths("bench-db", ports)?;
    let ovswire_s = ovswire(&node, ports).await?;
    report.set("ovswire_s", ovswire_s);
    drop(node);

    progress("baseline: the same ports with one ovs-vsctl invocation");
    let node = node_with_veths("bench-vsctl", ports)?;
    let baseline_s = vsctl(&node, ports)?;
    report.set("baseline_vsctl_s", baseline_s);
    report.set("ratio_vsctl", ratio(baseline_s, ovswire_s));
    Ok(report)
}

async fn ovswire(node: &Node, ports: usize) -> Result<f64> {
    let client = Client::connect(&format!("unix:{}", node.db_sock().display())).await?;
    let ovs = Vswitch::new(client);
    let specs: Vec<_> = (0..ports)
        .map(|i| PortSpec::new(format!("a{i}")).ofport_request(ofport_of(i)))
        .collect();
    let start = Instant::now();
    let batch = ovs.add_ports("ovsbr0", &specs).await?;
    ovs.wait_applied(batch.next_cfg, Duration::from_secs(900))
        .await?;
    let states = ovs
        .interfaces(specs.iter().map(|p| p.name.as_str()))
        .await?;
    let took = secs_since(start);
    for (i, st) in states.iter().enumerate() {
        if st.ofport != OfPort::Assigned(u32::from(ofport_of(i))) {
            bail!("{} has ofport {:?} ({:?})", st.name, st.ofport, st.error);
        }
    }
    Ok(took)
}

fn vsctl(node: &Node, ports: usize) -> Result<f64> {
    let mut args = Vec::with_capacity(ports * 8);
    for i in 0..ports {
        let name = format!("a{i}");
        args.extend([
            "--".to_owned(),
            "add-port".to_owned(),
            "ovsbr0".to_owned(),
            name.clone(),
            "--".to_owned(),
            "set".to_owned(),
            "Interface".to_owned(),
            name,
        ]);
        args.push(format!("ofport_request={}", ofport_of(i)));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    node.vsctl(&args)?;
    let took = secs_since(start);
    let ofports = node.vsctl(&["--bare", "--columns=ofport", "list", "Interface"])?;
    let assigned = ofports
        .split_whitespace()
        .filter(|p| p.parse::<u32>().is_ok_and(|n| n > 0));
    // Every benchmark port plus the bridge's own internal port.
    ensure!(
        assigned.count() == ports + 1,
        "ovs-vsctl left ports without an ofport"
    );
    Ok(took)
}
