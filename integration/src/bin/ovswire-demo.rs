//! `ovswire-demo`: wires two routers through a private Open vSwitch with ovswire's own OVSDB and
//! OpenFlow clients, sends traffic across the wire, flaps it, and removes everything.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ovswire_openflow::conn;
use ovswire_openflow::{Action, FlowMod, Message, OxmField, PortMod};
use ovswire_ovsdb::Client;
use ovswire_ovsdb::vswitch::{BridgeSpec, DatapathType, PortSpec, Vswitch};
use ovswire_testbed::{Netns, Testbed};

/// OpenFlow port numbers at or above 32768 are never picked by OVS itself, so ovswire can
/// choose them and know them before OVS reports them.
const PORT_R1: u32 = 32768;
const PORT_R2: u32 = 32769;

fn step(msg: &str) {
    println!("==> {msg}");
}

fn ping(from: &Netns, to: &str) -> bool {
    from.output("ping", &["-c", "3", "-i", "0.2", "-W", "1", "-q", to])
        .is_ok_and(|o| o.status.success())
}

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();
    step("starting a private Open vSwitch (userspace datapath) in its own network namespace");
    let node = Testbed::node("demo").context("start a private Open vSwitch (are you root?)")?;
    let r1 = node.pod("r1")?;
    let r2 = node.pod("r2")?;
    println!(
        "    routers r1 and r2 are network namespaces {} and {}",
        r1.name(),
        r2.name()
    );

    step("creating the routers' interfaces: r1:eth1 and r2:eth1, MTU 9000");
    node.netns().veth_to("h-r1", &r1, "eth1", Some(9000))?;
    node.netns().veth_to("h-r2", &r2, "eth1", Some(9000))?;
    r1.add_address("eth1", "10.0.0.1/30")?;
    r2.add_address("eth1", "10.0.0.2/30")?;

    step("OVSDB: bridge ovsbr0 (fail_mode=secure), then both ports in one transaction");
    let ovs = Vswitch::new(Client::connect(&format!("unix:{}", node.db_sock().display())).await?);
    ovs.ensure_bridge(&BridgeSpec::new("ovsbr0", DatapathType::Netdev, 1))
        .await?;
    let ports = [
        PortSpec::new("h-r1").ofport_request(PORT_R1 as u16),
        PortSpec::new("h-r2").ofport_request(PORT_R2 as u16),
    ];
    let batch = ovs.add_ports("ovsbr0", &ports).await?;
    ovs.wait_applied(batch.next_cfg, Duration::from_secs(30))
        .await?;

    step("OpenFlow: the wire r1:eth1 <-> r2:eth1 as two flows in one bundle");
    let (of, _events) = conn::connect(node.mgmt_sock("ovsbr0")).await?;
    let wire = |from: u32, to: u32| {
        Message::FlowMod(
            FlowMod::add(0)
                .priority(100)
                .match_field(OxmField::InPort(from))
                .apply_actions(vec![Action::Output {
                    port: to,
                    max_len: 0,
                }]),
        )
    };
    of.bundle(vec![wire(PORT_R1, PORT_R2), wire(PORT_R2, PORT_R1)])
        .await?;
    println!(
        "    wired in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    step("r1 pings r2 across the wire");
    if !ping(&r1, "10.0.0.2") {
        bail!("no reply from r2: the wire does not pass traffic");
    }
    println!("    replies received");

    step("link down: PORT_MOD on r2's end of the wire");
    let h_r2 = of
        .port_desc()
        .await?
        .into_iter()
        .find(|p| p.port_no == PORT_R2)
        .context("h-r2 missing from the bridge's port list")?;
    of.port_mod(PortMod::admin_down(PORT_R2, h_r2.hw_addr, true))
        .await?;
    let eth1 = r2.link_state("eth1")?;
    println!(
        "    r2:eth1 carrier: {} ({})",
        if eth1.carrier { "up" } else { "NO-CARRIER" },
        eth1.oper
    );
    if eth1.carrier {
        bail!("r2:eth1 still has carrier after the link went down");
    }
    if ping(&r1, "10.0.0.2") {
        bail!("r2 still answers with the link down");
    }
    println!("    r1 gets no reply, as with a pulled cable");

    step("link up again");
    of.port_mod(PortMod::admin_down(PORT_R2, h_r2.hw_addr, false))
        .await?;
    if !ping(&r1, "10.0.0.2") {
        bail!("no reply from r2 after the link came back");
    }
    println!("    r2:eth1 carrier: up, replies received");

    step("removing the routers, the wire and the private Open vSwitch");
    drop((of, r1, r2, node));
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
