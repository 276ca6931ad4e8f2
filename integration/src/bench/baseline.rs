//! The command-line baseline: wiring links with `ovs-vsctl` and `ovs-ofctl`, the way
//! shell-out designs do, on a fresh private OVS node.

use std::time::Instant;

use anyhow::{Result, ensure};
use ovswire_testbed::{Node, Testbed};

use crate::measure::secs_since;

/// How the command-line tools are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Per link: two `add-port`, two `get ofport`, two `add-flow` (six commands a link).
    PerLink,
    /// One `ovs-vsctl` transaction for every port, one `ovs-ofctl add-flows` file.
    Batched,
    /// Like `Batched`, with the flows in one OpenFlow bundle: the fastest the CLI offers.
    Bundled,
}

impl Mode {
    /// The name used in report fields (`baseline_<name>_s`).
    pub fn name(self) -> &'static str {
        match self {
            Self::PerLink => "perlink",
            Self::Batched => "batched",
            Self::Bundled => "bundled",
        }
    }
}

/// Wires `links` links with the CLI; returns the seconds from the first command to the last.
pub fn run(mode: Mode, links: usize) -> Result<f64> {
    let node = Testbed::node(&format!("base-{}", mode.name()))?;
    node.add_bridge("ovsbr0")?;
    let pairs: Vec<_> = (0..links)
        .flat_map(|i| {
            [
                (format!("a{i}"), format!("pa{i}")),
                (format!("b{i}"), format!("pb{i}")),
            ]
        })
        .collect();
    node.netns().veths(&pairs)?;
    let start = Instant::now();
    match mode {
        Mode::PerLink => per_link(&node, links)?,
        Mode::Batched | Mode::Bundled => batched(&node, links, mode == Mode::Bundled)?,
    }
    let took = secs_since(start);
    let agg = node.ofctl(&["-O", "OpenFlow13", "dump-aggregate", "ovsbr0"])?;
    ensure!(
        agg.contains(&format!("flow_count={}", 2 * links)),
        "baseline left flows out: {agg}"
    );
    Ok(took)
}

fn per_link(node: &Node, links: usize) -> Result<()> {
    for i in 0..links {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        node.vsctl(&["add-port", "ovsbr0", &a])?;
        node.vsctl(&["add-port", "ovsbr0", &b])?;
        let pa = node.vsctl(&["get", "Interface", &a, "ofport"])?;
        let pb = node.vsctl(&["get", "Interface", &b, "ofport"])?;
        let (pa, pb) = (pa.trim(), pb.trim());
        node.ofctl(&[
            "-O",
            "OpenFlow13",
            "add-flow",
            "ovsbr0",
            &format!("table=0,in_port={pa},actions=output:{pb}"),
        ])?;
        node.ofctl(&[
            "-O",
            "OpenFlow13",
            "add-flow",
            "ovsbr0",
            &format!("table=0,in_port={pb},actions=output:{pa}"),
        ])?;
    }
    Ok(())
}

fn batched(node: &Node, links: usize, bundle: bool) -> Result<()> {
    let mut args: Vec<String> = Vec::with_capacity(links * 16);
    let mut flows = String::new();
    for i in 0..links {
        let (pa, pb) = (2 * i + 2, 2 * i + 3);
        for (name, port) in [(format!("a{i}"), pa), (format!("b{i}"), pb)] {
            args.extend(["--", "add-port", "ovsbr0"].map(String::from));
            args.push(name.clone());
            args.extend(["--", "set", "Interface"].map(String::from));
            args.push(name);
            args.push(format!("ofport_request={port}"));
        }
        flows.push_str(&format!("table=0,in_port={pa},actions=output:{pb}\n"));
        flows.push_str(&format!("table=0,in_port={pb},actions=output:{pa}\n"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // One transaction with every port: ovs-vsctl itself takes minutes at thousands.
    node.vsctl_within(900, &args)?;
    let file = node.dir().join("flows.txt");
    std::fs::write(&file, flows)?;
    let file = file.to_str().expect("temp paths are UTF-8");
    if bundle {
        node.ofctl(&["-O", "OpenFlow14", "--bundle", "add-flows", "ovsbr0", file])?;
    } else {
        node.ofctl(&["-O", "OpenFlow13", "add-flows", "ovsbr0", file])?;
    }
    Ok(())
}
