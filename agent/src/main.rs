//! `ovswire-agent`: the per-node ovswire daemon. See `docs/agent.md`.

use clap::Parser;
use ovswire_agent::run::run;
use ovswire_agent::runtime::args::{Args, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Pki(pki)) = &args.command {
        return Ok(ovswire_agent::pki::run(pki)?);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        .with_writer(std::io::stderr)
        .init();
    Ok(run(args).await?)
}
