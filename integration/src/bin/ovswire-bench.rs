//! `ovswire-bench`: measures ovswire next to the command-line baseline in the same run.

use anyhow::Result;
use clap::{Parser, Subcommand};
use ovswire_integration::bench::{self, Report};

/// Benchmarks of ovswire against OVS's own command-line tools, on private OVS nodes (run as root).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Print one JSON object per scenario instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Add N ports in one OVSDB transaction and wait for their ofports, vs one ovs-vsctl call.
    OvsdbPorts {
        /// How many ports.
        #[arg(long, default_value_t = 2000)]
        ports: usize,
    },
    /// Install M flows in one OpenFlow bundle with N ports on the bridge, vs ovs-ofctl.
    Flows {
        /// How many ports on the bridge.
        #[arg(long, default_value_t = 2000)]
        ports: usize,
        /// How many flows.
        #[arg(long, default_value_t = 2000)]
        flows: usize,
    },
    /// Register every interface of N links through the agent's Cni API and time until all
    /// links are up and pass traffic, vs the CLI (per link up to 500, batched and bundled above;
    /// bundled on each node with two nodes).
    Wire {
        /// Link counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000")]
        links: Vec<usize>,
        /// 1: every pod on one node; 2: pods spread over two nodes, about half the links
        /// across nodes (VXLAN).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Then watch the idle agent this many seconds (one node): the OVSDB rows and flows it
        /// changes, and its CPU.
        #[arg(long, default_value_t = 0)]
        idle: u64,
        /// What to compare with, comma-separated (default: the floor, and the CLI per link up
        /// to 500 links or batched and bundled above; bundled with two nodes). Each one left
        /// out is reported as not run.
        #[arg(long, value_delimiter = ',')]
        baselines: Vec<bench::wire::Compare>,
    },
    /// CNI ADD latency through the real ovswire-cni binary, every pod added at once.
    Cni {
        /// How many pods.
        #[arg(long, default_value_t = 50)]
        pods: usize,
        /// ovswire interfaces per pod (added one after the other, as Multus does).
        #[arg(long, default_value_t = 4)]
        ifaces: usize,
    },
    /// Link down/up latency: Wires.SetLinkState until both pods see the carrier change, vs
    /// `ovs-ofctl mod-port` on a hand-built wire.
    Flap {
        /// How many down/up cycles.
        #[arg(long, default_value_t = 200)]
        flaps: usize,
        /// 1: a same-node wire; 2: also a cross-node wire (VXLAN between two nodes).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
    },
    /// Round trip of one wire (ping, UDP request/response) in a lab of N links, vs the same
    /// wire by hand beside as many idle ports, and alone on its bridge.
    Latency {
        /// Lab sizes to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8,1000")]
        links: Vec<usize>,
        /// 1: a same-node wire; 2: a wire across two nodes (VXLAN).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// MTU of every link (the userspace datapath's cost grows with it).
        #[arg(long, default_value_t = 1500)]
        mtu: u32,
    },
    /// A whole local lab with `ovswire lab up`/`down` (a ring with chords, every node running
    /// one `exec` command), vs the same nodes and veths made by hand (the engine's CLI or `ip
    /// netns add`, one `ip -batch`); with containers, also kill -> NO-CARRIER at the peers and
    /// start -> carrier back.
    Lab {
        /// How many nodes.
        #[arg(long, default_value_t = 50)]
        nodes: usize,
        /// How many links.
        #[arg(long, default_value_t = 100)]
        links: usize,
        /// Busybox containers (scripts/build-image busybox) instead of bare namespaces.
        #[arg(long)]
        containers: bool,
    },
    /// What link telemetry costs an agent with N links (CPU idle and with counters read every
    /// second, one /metrics scrape) and how fast a link change reaches a watcher.
    Stats {
        /// How many links.
        #[arg(long, default_value_t = 2000)]
        links: usize,
    },
    /// Each impairment parameter asked and measured over real traffic on one wire, next to the
    /// same wire unimpaired; the impairment path's TCP throughput and CPU.
    Impair,
    /// iperf3 single-flow throughput over a wire the agent built, vs the same path by hand.
    Tcp {
        /// Seconds each iperf3 run lasts.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// 1: a same-node wire; 2: a wire across two nodes (VXLAN).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let print = |report: Report| {
        if args.json {
            println!("{}", report.to_json());
        } else {
            println!("{}", report.to_text());
        }
    };
    match args.scenario {
        Scenario::OvsdbPorts { ports } => print(bench::ovsdb_ports::run(ports).await?),
        Scenario::Flows { ports, flows } => print(bench::flows::run(ports, flows).await?),
        Scenario::Cni { pods, ifaces } => print(bench::cni::run(pods, ifaces).await?),
        Scenario::Tcp { seconds, nodes } => print(bench::tcp::run(seconds, nodes).await?),
        Scenario::Stats { links } => print(bench::stats::run(links).await?),
        Scenario::Impair => print(bench::impair::run().await?),
        Scenario::Lab {
            nodes,
            links,
            containers,
        } => print(bench::lab::run_scenario(nodes, links, containers).await?),
        Scenario::Flap { flaps, nodes } => print(bench::flap::run(flaps, nodes).await?),
        Scenario::Latency {
            ref links,
            nodes,
            mtu,
        } => {
            for &n in links {
                print(bench::latency::run(n, nodes, mtu).await?);
            }
        }
        Scenario::Wire {
            ref links,
            nodes,
            idle,
            ref baselines,
        } => {
            for &n in links {
                print(bench::wire::run(n, nodes, idle, baselines).await?);
            }
        }
    }
    Ok(())
}
