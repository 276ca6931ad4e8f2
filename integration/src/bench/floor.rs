//! The floor of the `wire` benchmark: the same lab's veths, ports and flows applied to OVS
//! directly with ovswire's own libraries, no agent in between, timed to the same end point as
//! the agent's run (every link's ends up and the sampled wires pass traffic). What the agent
//! takes beyond it is the agent's own cost; the floor itself is the kernel's and OVS's.
//!
//! The steps are those the agent takes, each done once for the whole lab: every veth pair
//! made through rtnetlink into its pod (TX checksum off on both ends, the pod end up, the
//! host end without IPv6 addresses), one OVSDB transaction for every host end with its
//! OpenFlow number, one OpenFlow bundle for every flow, and one batch of PORT_MODs taking
//! the host ends up.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ovswire_netns::ethtool;
use ovswire_netns::link::{self, VethEnd};
use ovswire_openflow::msg::PortMod;
use ovswire_openflow::{Action, FlowMod, MacAddr, Message, OxmField, conn};
use ovswire_ovsdb::Client;
use ovswire_ovsdb::vswitch::{PortSpec, Vswitch};
use ovswire_testbed::{Netns, Testbed};

use super::progress;
use super::wire::{IFACES_PER_POD, MTU, PING_ATTEMPTS, Placement, address, interfaces, ping};
use crate::measure::secs_since;

/// First OpenFlow number, as the agent's.
const FIRST_OFPORT: u32 = 32768;

/// Seconds of each step of the floor's run.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Every veth pair made and tuned.
    pub veths_s: f64,
    /// The OVSDB transaction, until ovs-vswitchd applied it.
    pub ovsdb_s: f64,
    /// The flow bundle.
    pub bundle_s: f64,
    /// The PORT_MODs taking the host ends up.
    pub port_states_s: f64,
    /// From then until the sampled wires pass traffic.
    pub traffic_s: f64,
    /// The whole run.
    pub total_s: f64,
}

/// Builds a lab of `links` links on a fresh node, as the `wire` benchmark's agent does.
pub async fn run(links: usize) -> Result<Floor> {
    let node = Testbed::node("bench-floor")?;
    node.add_bridge("ovsbr0")?;
    let pods = 2 * links.div_ceil(IFACES_PER_POD);
    let pod_ns: Vec<Netns> = (0..pods)
        .map(|p| node.pod(&format!("p{p}")))
        .collect::<ovswire_testbed::Result<_>>()?;
    let ifaces = interfaces(links, &pod_ns);
    let db = Vswitch::new(Client::connect(&format!("unix:{}", node.db_sock().display())).await?);
    // ovs-vswitchd digesting thousands of new ports answers nothing for many seconds: the
    // floor waits for it, where the agent would retry the round.
    let patient = Duration::from_secs(600);
    let mut options = conn::Options {
        request_timeout: patient,
        bundle_timeout: patient,
        ..conn::Options::default()
    };
    options.session.echo_timeout = patient;
    let (of, _events) = conn::connect_with(node.mgmt_sock("ovsbr0"), options).await?;
    progress(&format!(
        "floor: {links} links with ovswire's libraries, no agent"
    ));

    let start = Instant::now();
    // Interface n's host end: `f<n>`, OpenFlow number FIRST_OFPORT + n; link i joins 2i, 2i+1.
    let hosts: Vec<(String, String, PathBuf)> = ifaces
        .iter()
        .enumerate()
        .map(|(n, (_, ifname, netns))| (format!("f{n}"), ifname.clone(), netns.clone()))
        .collect();
    let made = hosts.clone();
    ovswire_netns::block_on(node.netns().path(), move |h| async move {
        for (host, ifname, netns) in &made {
            let pod = VethEnd::new(ifname).netns(netns);
            link::add_veth(&h, VethEnd::new(host), pod, Some(MTU)).await?;
            ethtool::disable_tx_checksum(host)?;
            link::disable_ipv6_addresses(&h, host).await?;
        }
        Ok::<(), ovswire_netns::Error>(())
    })??;
    for ns in &pod_ns {
        let names: Vec<String> = hosts
            .iter()
            .filter(|(_, _, p)| p == ns.path())
            .map(|(_, ifname, _)| ifname.clone())
            .collect();
        ovswire_netns::block_on(ns.path(), move |h| async move {
            for name in &names {
                ethtool::disable_tx_checksum(name)?;
                link::set_up(&h, name).await?;
            }
            Ok::<(), ovswire_netns::Error>(())
        })??;
    }
    let veths_s = secs_since(start);

    let step = Instant::now();
    let specs: Vec<PortSpec> = hosts
        .iter()
        .enumerate()
        .map(|(n, (host, _, _))| {
            PortSpec::new(host)
                .ofport_request(u16::try_from(FIRST_OFPORT as usize + n).expect("ports fit"))
        })
        .collect();
    db.add_ports_and_wait("ovsbr0", &specs, Duration::from_secs(900))
        .await?;
    let ovsdb_s = secs_since(step);

    let step = Instant::now();
    let port = |n: usize| FIRST_OFPORT + n as u32;
    let flows: Vec<Message> = (0..links)
        .flat_map(|i| {
            [
                (port(2 * i), port(2 * i + 1)),
                (port(2 * i + 1), port(2 * i)),
            ]
        })
        .map(|(from, to)| {
            Message::FlowMod(
                FlowMod::add(0)
                    .priority(100)
                    .match_field(OxmField::InPort(from))
                    .apply_actions(vec![Action::output(to)]),
            )
        })
        .collect();
    of.bundle(flows).await?;
    let bundle_s = secs_since(step);

    let step = Instant::now();
    let macs: std::collections::BTreeMap<u32, [u8; 6]> = of
        .port_desc()
        .await?
        .into_iter()
        .map(|p| (p.port_no, p.hw_addr.0))
        .collect();
    let ups: Vec<Message> = (0..hosts.len())
        .map(|n| {
            let mac = macs.get(&port(n)).copied().unwrap_or_default();
            Message::PortMod(PortMod::admin_down(port(n), MacAddr(mac), false))
        })
        .collect();
    of.apply(ups).await?;
    let port_states_s = secs_since(step);

    let step = Instant::now();
    let sample = Placement { links, nodes: 1 }.sample();
    address(&sample, links, &pod_ns)?;
    ping(&sample, links, &pod_ns, PING_ATTEMPTS)
        .context("the floor's wires do not pass traffic")?;
    let traffic_s = secs_since(step);
    let total_s = secs_since(start);
    ensure!(total_s > 0.0, "nothing was timed");
    Ok(Floor {
        veths_s,
        ovsdb_s,
        bundle_s,
        port_states_s,
        traffic_s,
        total_s,
    })
}
