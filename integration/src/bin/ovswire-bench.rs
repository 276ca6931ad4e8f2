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
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let report: Report = match args.scenario {
        Scenario::OvsdbPorts { ports } => bench::ovsdb_ports::run(ports).await?,
        Scenario::Flows { ports, flows } => bench::flows::run(ports, flows).await?,
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
