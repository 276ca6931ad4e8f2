//! `ovswire-agent`: the per-node ovswire daemon. See `docs/agent.md`.

use clap::Parser;
use ovswire_agent::runtime::args::{Args, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        .with_writer(std::io::stderr)
        .init();
    run(args).await
}
