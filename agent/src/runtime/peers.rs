//! The exchange loop that keeps every peer node informed of this node's endpoints and learns
//! theirs. It reaches the peers through a [`PeerTransport`]: on a running agent, the Peers
//! API's client (`api/peers.rs`).
//!
//! An exchange runs as soon as this node's report changes and every [`HEARTBEAT`] otherwise. A
//! peer that fails [`LOST_AFTER`] exchanges in a row is reported silent, and nothing more: its
//! wires keep what they have, their carrier follows the tunnel's BFD session, and a wire goes
//! only when the peer, answering again, reports its end gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ovswire_core::node::Report;
use ovswire_core::peers::{Here, PeerView};
use tracing::{debug, info, warn};

use super::Agent;
use crate::error::Error;

/// The port agents serve `Peers` on.
pub const DEFAULT_PORT: u16 = 7471;
/// How often peers exchange when nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Failed exchanges in a row after which a peer is reported silent.
pub const LOST_AFTER: u32 = 3;

/// How the exchange loop reaches a peer node.
pub trait PeerTransport: Send + Sync + 'static {
    /// Gives peer `node` at `ip` this node's report and returns the peer's.
    fn exchange(
        &self,
        node: &str,
        ip: &str,
        here: Here,
        report: Report,
    ) -> impl Future<Output = Result<PeerView, Error>> + Send;
}

/// Exchanges with every peer whose address is known, whenever this node's report changes and
/// every [`HEARTBEAT`]; runs until the process ends.
pub async fn exchange_loop<T: PeerTransport>(agent: Arc<Agent>, transport: Arc<T>) {
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    loop {
        let wake = agent.report_changed();
        let peers: Vec<(String, String)> = agent
            .peers()
            .into_iter()
            .filter_map(|(n, ip)| Some((n, ip?)))
            .collect();
        let calls = peers.iter().map(|(node, ip)| {
            let (agent, transport) = (&agent, &transport);
            async move {
                let reply = transport
                    .exchange(node, ip, agent.here(), agent.report())
                    .await;
                (node.clone(), reply)
            }
        });
        for (node, result) in futures::future::join_all(calls).await {
            match result {
                Ok(view) => {
                    if let Err(e) = agent.check_generation(&node, view.generation) {
                        warn!(peer = node, error = e, "peer's answer ignored");
                        continue;
                    }
                    agent.absorb_peer(&node, view);
                    if failures.remove(&node).is_some_and(|n| n >= LOST_AFTER) {
                        info!(peer = node, "peer reachable again");
                    }
                }
                Err(e) => {
                    let n = failures.entry(node.clone()).or_default();
                    *n += 1;
                    debug!(peer = node, error = %e, "exchange failed");
                    if *n == LOST_AFTER {
                        warn!(
                            peer = node,
                            error = %e,
                            "peer does not answer; its wires stay as they are"
                        );
                        agent.peer_silent(&node);
                    }
                }
            }
        }
        tokio::select! {
            () = wake => {}
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}
