//! Agent to agent over the underlay: the `Peers` service each agent serves, and the exchange
//! loop that keeps every peer informed of this node's endpoints and learns theirs.
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

use ovswire_proto::v1 as pb;
use ovswire_proto::v1::peers_client::PeersClient;
use ovswire_proto::v1::peers_server::Peers;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::grpc::link_key;
use crate::runtime::Agent;
use ovswire_core::model::{AdminState, EndpointKey, LinkKey, check_object_name};
use ovswire_core::peers::PeerView;

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
pub fn load_token(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the peer token file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(format!(
            "the peer token file {} is readable by every user; `chmod 600` it",
            path.display()
        ));
    }
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the peer token file {}: {e}", path.display()))?
        .trim()
        .to_owned();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the peer token in {} must be at least 16 printable characters without spaces \
             (e.g. `head -c 32 /dev/urandom | base64`)",
            path.display()
        ));
    }
    Ok(token)
}

/// Checks the bearer token of an incoming call, in constant time.
pub fn authenticate(
    token: &str,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
    let want = format!("Bearer {token}").into_bytes();
    move |req: Request<()>| {
        let got = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let same = got.len() == want.len()
            && got.iter().zip(&want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong peer token; agents of one cluster must share the same \
                 --peer-token-file",
            ))
        }
    }
}

/// Converts a peer's report; endpoints and keys with invalid names are dropped.
fn view_of(state: &pb::NodeState) -> PeerView {
    let mut view = PeerView {
        underlay_ip: (!state.underlay_ip.is_empty()).then(|| state.underlay_ip.clone()),
        underlay_mtu: state.underlay_mtu,
        generation: state.generation,
        ..PeerView::default()
    };
    for e in &state.endpoints {
        if let Ok(key) = EndpointKey::new(&e.lab, &e.pod, &e.ifname) {
            view.endpoints.insert(key, e.ready);
        }
    }
    for k in &state.keys {
        if let Ok(link) = link_key(k.link.as_ref())
            && (1..=ovswire_core::naming::MAX_TUNNEL_KEY).contains(&k.key)
        {
            view.keys.insert(link, k.key);
        }
    }
    view
}

fn link_ref(key: &LinkKey) -> pb::LinkRef {
    let end = |e: &EndpointKey| pb::Endpoint {
        pod: e.pod.clone(),
        ifname: e.ifname.clone(),
    };
    pb::LinkRef {
        lab: key.lab().to_owned(),
        a: Some(end(key.a())),
        b: Some(end(key.b())),
    }
}

/// This node's report for peer `to`.
fn state_for(agent: &Agent, to: &str) -> pb::NodeState {
    let here = agent.here();
    let report = agent.report();
    pb::NodeState {
        node: here.node,
        underlay_ip: here.underlay_ip.unwrap_or_default(),
        underlay_mtu: here.underlay_mtu,
        generation: report.generation,
        endpoints: report
            .endpoints
            .iter()
            .map(|(k, ready)| pb::PeerEndpoint {
                lab: k.lab.clone(),
                pod: k.pod.clone(),
                ifname: k.ifname.clone(),
                ready: *ready,
            })
            .collect(),
        keys: report
            .keys
            .iter()
            .filter(|(_, (node, _))| node == to)
            .map(|(link, (_, key))| pb::TunnelKey {
                link: Some(link_ref(link)),
                key: *key,
            })
            .collect(),
    }
}

/// The `Peers` service of one agent.
#[derive(Debug, Clone)]
pub struct PeersService {
    agent: Arc<Agent>,
}

impl PeersService {
    /// Serves `agent`'s state to its peers.
    pub fn new(agent: Arc<Agent>) -> Self {
        Self { agent }
    }
}

#[tonic::async_trait]
impl Peers for PeersService {
    async fn exchange(
        &self,
        request: Request<pb::NodeState>,
    ) -> Result<Response<pb::NodeState>, Status> {
        let state = request.into_inner();
        check_object_name("node name", &state.node)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if state.node == self.agent.here().node {
            return Err(Status::invalid_argument(format!(
                "both ends call themselves node {}; give every agent its own --node-name",
                state.node
            )));
        }
        self.agent.absorb_peer(&state.node, view_of(&state));
        Ok(Response::new(state_for(&self.agent, &state.node)))
    }

    async fn set_link_state(
        &self,
        request: Request<pb::PeerLinkState>,
    ) -> Result<Response<pb::PeerLinkStateReply>, Status> {
        let req = request.into_inner();
        let key = link_key(req.link.as_ref())?;
        let admin = match pb::AdminState::try_from(req.admin) {
            Ok(pb::AdminState::Up) => AdminState::Up,
            Ok(pb::AdminState::Down) => AdminState::Down,
            _ => return Err(Status::invalid_argument("admin must be up or down")),
        };
        debug!(link = %key, ?admin, from = req.from_node, "peer sets link state");
        self.agent
            .set_admin(&key, admin)
            .await
            .map_err(Status::failed_precondition)?;
        Ok(Response::new(pb::PeerLinkStateReply {}))
    }
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
    pub fn new(agent: Arc<Agent>, token: &str, port: u16) -> Result<Self, String> {
        let auth = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the peer token has characters not allowed in a header".to_owned())?;
        Ok(Self {
            agent,
            auth,
            port,
            clients: Mutex::new(BTreeMap::new()),
        })
    }

    fn client(&self, node: &str, ip: &str) -> Result<PeersClient<Channel>, String> {
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
                .map_err(|e| format!("bad peer address {ip}: {e}"))?
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

    async fn exchange(&self, node: &str, ip: &str) -> Result<(), String> {
        let mut client = self.client(node, ip)?;
        let reply = client
            .exchange(self.request(state_for(&self.agent, node)))
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        if reply.node != node {
            return Err(format!(
                "the agent at {ip} calls itself {}, not {node}; check the peer list",
                reply.node
            ));
        }
        self.agent.absorb_peer(node, view_of(&reply));
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
                        debug!(peer = node, error = e, "exchange failed");
                        if *n == LOST_AFTER {
                            warn!(peer = node, error = e, "peer does not answer");
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
    ) -> Result<(), String> {
        let ip = self
            .agent
            .peers()
            .get(node)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("the address of node {node} is not known"))?;
        let mut client = self.client(node, &ip)?;
        client
            .set_link_state(self.request(pb::PeerLinkState {
                link: Some(link_ref(key)),
                admin: match admin {
                    AdminState::Up => pb::AdminState::Up,
                    AdminState::Down => pb::AdminState::Down,
                } as i32,
                from_node: self.agent.here().node,
            }))
            .await
            .map(drop)
            .map_err(|s| format!("node {node} did not take the change: {}", s.message()))
    }
}
