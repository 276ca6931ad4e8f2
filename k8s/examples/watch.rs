//! Prints what the agents would see: the wires, where their pods run and the nodes' underlay
//! addresses, every time that changes. Uses the current kubeconfig context (or the in-cluster
//! service account), with the same watches and permissions as the agent.
//!
//! ```sh
//! cargo run -p ovswire-k8s --example watch
//! ```

use anyhow::Context;
use ovswire_k8s::{Desired, Source};
use tokio::sync::watch;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration: set KUBECONFIG or run inside a cluster")?;
    let (tx, mut rx) = watch::channel(Desired::default());
    tokio::spawn(Source::new(client).run(tx));
    while rx.changed().await.is_ok() {
        let d = rx.borrow_and_update().clone();
        println!("--- {} wires", d.wires.len());
        for w in &d.wires {
            let (a, b) = d.nodes_of(w);
            println!(
                "{}/{}  mtu {}  {}  nodes {} / {}",
                w.lab,
                w.name(),
                w.mtu.map_or("default".to_owned(), |m| m.to_string()),
                if w.down { "down" } else { "up" },
                a.unwrap_or("-"),
                b.unwrap_or("-"),
            );
        }
        for r in &d.rejected {
            println!("left out: {r}");
        }
        for (node, addr) in &d.node_addrs {
            println!("node {node}: underlay {addr}");
        }
    }
    Ok(())
}
