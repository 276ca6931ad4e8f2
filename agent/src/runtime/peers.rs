//! Agent to agent over the underlay: the exchange loop that keeps every peer informed of this
//! node's endpoints and learns theirs, and the calls that set the far end of a cross-node link.
//! The service the peers call is [`crate::api::peers`].
//!
//! Every call carries `authorization: Bearer <token>`, the cluster's shared peer token read
//! from a file (a Kubernetes Secret in a cluster); calls without it are refused. An exchange
//! runs as soon as this node's report changes and every [`HEARTBEAT`] otherwise; a peer that
//! fails [`LOST_AFTER`] exchanges in a row is treated as gone, so wires to it lose carrier here
//! until it answers again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ovswire_core::model::{AdminState, LinkKey};
use ovswire_proto::v1 as pb;
use ovswire_proto::v1::peers_client::PeersClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use super::Agent;
use crate::api::convert;
use crate::error::Error;

/// The port agents serve `Peers` on.
pub const DEFAULT_PORT: u16 = 7471;
/// How often peers exchange when nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Failed exchanges in a row after which a peer is treated as gone.
pub const LOST_AFTER: u32 = 3;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the shared peer token: the file's content without surrounding whitespace. The file
/// must not be readable by other users.
pub fn load_token(path: &Path) -> Result<String, Error> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = || {
        Error::io(format!(
            "cannot read the peer token file {}",
            path.display()
        ))
    };
    let meta = std::fs::metadata(path).map_err(unreadable())?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(Error::Config(format!(
            "the peer token file {} is readable by every user; `chmod 600` it",
            path.display()
        )));
    }
    let token = std::fs::read_to_string(path)
        .map_err(unreadable())?
        .trim()
        .to_owned();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(format!(
            "the peer token in {} must be at least 16 printable characters without spaces \
             (e.g. `head -c 32 /dev/urandom | base64`)",
            path.display()
        )));
    }
    Ok(token)
}

/// Clients to every peer, and the exchange loop.
#[derive(Debug)]
pub struct PeerClients {
    agent: Arc<Agent>,
    auth: MetadataValue<tonic::metadata::Ascii>,
    port: u16,
    clients: Mutex<BTreeMap<String, (String, PeersClient<Channel>)>>,
}

impl PeerClients {
    /// Clients for `agent`'s peers, which serve on `port` and share `token`.
    pub fn new(agent: Arc<Agent>, token: &str, port: u16) -> Result<Self, Error> {
        let auth = format!("Bearer {token}").parse().map_err(|_| {
            Error::Config("the peer token has characters not allowed in a header".into())
        })?;
        Ok(Self {
            agent,
            auth,
            port,
            clients: Mutex::new(BTreeMap::new()),
        })
    }

    fn client(&self, node: &str, ip: &str) -> Result<PeersClient<Channel>, Error> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((have, c)) = clients.get(node)
            && have == ip
        {
            return Ok(c.clone());
        }
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{host}:{}", self.port))
                .map_err(|e| Error::Peer {
                    node: node.to_owned(),
                    message: format!("bad peer address {ip}: {e}"),
                })?
                .connect_timeout(CALL_TIMEOUT)
                .timeout(CALL_TIMEOUT)
                .tcp_nodelay(true)
                .connect_lazy();
        let c = PeersClient::new(channel);
        clients.insert(node.to_owned(), (ip.to_owned(), c.clone()));
        Ok(c)
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.metadata_mut()
            .insert("authorization", self.auth.clone());
        req
    }

    async fn exchange(&self, node: &str, ip: &str) -> Result<(), Error> {
        let mut client = self.client(node, ip)?;
        let state = convert::node_state(self.agent.here(), &self.agent.report(), node);
        let reply = client
            .exchange(self.request(state))
            .await
            .map_err(|s| Error::Peer {
                node: node.to_owned(),
                message: s.message().to_owned(),
            })?
            .into_inner();
        if reply.node != node {
            return Err(Error::Peer {
                node: node.to_owned(),
                message: format!(
                    "the agent at {ip} calls itself {}; check the peer list",
                    reply.node
                ),
            });
        }
        self.agent.absorb_peer(node, convert::peer_view(&reply));
        Ok(())
    }

    /// Exchanges with every peer whenever this node's report changes and every [`HEARTBEAT`];
    /// runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut failures: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            let wake = self.agent.report_changed();
            let peers: Vec<(String, String)> = self
                .agent
                .peers()
                .into_iter()
                .filter_map(|(n, ip)| Some((n, ip?)))
                .collect();
            let me = &*self;
            let calls = peers
                .iter()
                .map(|(node, ip)| async move { (node.clone(), me.exchange(node, ip).await) });
            for (node, result) in futures::future::join_all(calls).await {
                match result {
                    Ok(()) => {
                        if failures.remove(&node).is_some_and(|n| n >= LOST_AFTER) {
                            info!(peer = node, "peer reachable again");
                        }
                    }
                    Err(e) => {
                        let n = failures.entry(node.clone()).or_default();
                        *n += 1;
                        debug!(peer = node, error = %e, "exchange failed");
                        if *n == LOST_AFTER {
                            warn!(peer = node, error = %e, "peer does not answer");
                            self.agent.peer_lost(&node);
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

    /// Sets the far end of a cross-node link on the node that holds it.
    pub async fn set_link_state(
        &self,
        node: &str,
        key: &LinkKey,
        admin: AdminState,
    ) -> Result<(), Error> {
        let peer = |message: String| Error::Peer {
            node: node.to_owned(),
            message,
        };
        let ip = self
            .agent
            .peers()
            .get(node)
            .cloned()
            .flatten()
            .ok_or_else(|| peer("its address is not known".into()))?;
        let mut client = self.client(node, &ip)?;
        client
            .set_link_state(self.request(pb::PeerLinkState {
                link: Some(convert::link_ref(key)),
                admin: convert::admin_to_proto(admin),
                from_node: self.agent.here().node,
            }))
            .await
            .map(drop)
            .map_err(|s| peer(format!("did not take the change: {}", s.message())))
    }
}
