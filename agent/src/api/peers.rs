//! Agent to agent over the underlay: the `Peers` gRPC service other nodes' agents call, and
//! the client this agent calls them with (the transport of the exchange loop in
//! [`crate::runtime::peers`]).
//!
//! Agents call each other over mutual TLS ([`super::tls`]), each with its node's certificate.
//! A call is taken only from a known peer (configured, or a Kubernetes Node running an agent
//! pod), from that node's underlay address, with a certificate naming that node, and only about
//! that node: its report, or the far end of a link it holds the other end of.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ovswire_core::model::{AdminState, LinkKey, check_object_name};
use ovswire_core::node::Report;
use ovswire_core::peers::{Here, PeerView};
use ovswire_proto::v1 as pb;
use ovswire_proto::v1::peers_client::PeersClient;
use ovswire_proto::v1::peers_server::Peers;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::convert;
use super::tls::{self, PeerInfo, PeerTls};
use crate::error::Error;
use crate::runtime::Agent;
use crate::runtime::peers::PeerTransport;

/// The largest Peers message either way: a node's whole report, thousands of endpoints and
/// links.
pub const MESSAGE_LIMIT: usize = 16 << 20;

/// How long one call to a peer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the Wires TCP token: the file's content without surrounding whitespace. The file must belong to the agent's user and be readable and
/// writable by nobody else (a Kubernetes Secret mounted with `defaultMode: 0400` is).
pub fn load_token(path: &Path) -> Result<String, Error> {
    let unreadable = || Error::io(format!("cannot read the token file {}", path.display()));
    crate::pki::check_private(path)?;
    let token = std::fs::read_to_string(path)
        .map_err(unreadable())?
        .trim()
        .to_owned();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(format!(
            "the token in {} must be at least 16 printable characters without spaces \
             (e.g. `head -c 32 /dev/urandom | base64`)",
            path.display()
        )));
    }
    Ok(token)
}

/// Checks the bearer token of an incoming call, in constant time; `refused` says what to do
/// when it is missing or wrong.
pub fn authenticate(
    token: &str,
    refused: &'static str,
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
            Err(Status::unauthenticated(refused))
        }
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

impl PeersService {
    /// Checks that a call saying it comes from node `claimed` does: `claimed` is a known peer,
    /// the connection comes from its underlay address, and its certificate names it.
    fn check_caller<T>(&self, request: &Request<T>, claimed: &str) -> Result<(), Status> {
        check_object_name("node name", claimed)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if claimed == self.agent.here().node {
            return Err(Status::invalid_argument(format!(
                "both ends call themselves node {claimed}; give every agent its own --node-name"
            )));
        }
        let info = request.extensions().get::<PeerInfo>();
        let certificate = info.and_then(|i| i.certificate.as_ref()).ok_or_else(|| {
            Status::unauthenticated(
                "the call came without a client certificate; peers call over mutual TLS with \
                 their node's certificate (--peer-tls-dir)",
            )
        })?;
        if !tls::names_node(certificate, claimed) {
            return Err(Status::permission_denied(format!(
                "the caller's certificate is not node {claimed}'s: a node speaks only for itself"
            )));
        }
        speaks_for_itself(
            claimed,
            self.agent.peers().get(claimed),
            info.map(|i| i.remote.ip().to_canonical()),
        )
    }

    /// Checks that node `from` holds the far end of link `key`: a node changes only its own
    /// links' far ends.
    fn check_link_of(&self, key: &LinkKey, from: &str) -> Result<(), Status> {
        if self.agent.far_node(key).as_deref() == Some(from) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "link {key} has no end on node {from} here: a node changes only its own links"
            )))
        }
    }
}

#[tonic::async_trait]
impl Peers for PeersService {
    async fn exchange(
        &self,
        request: Request<pb::NodeState>,
    ) -> Result<Response<pb::NodeState>, Status> {
        self.check_caller(&request, &request.get_ref().node.clone())?;
        let state = request.into_inner();
        self.agent
            .check_generation(&state.node, state.generation)
            .map_err(Status::invalid_argument)?;
        self.agent
            .absorb_peer(&state.node, convert::peer_view(&state));
        let report = self.agent.report();
        Ok(Response::new(convert::node_state(
            self.agent.here(),
            &report,
            &state.node,
        )))
    }

    async fn set_link_state(
        &self,
        request: Request<pb::PeerLinkState>,
    ) -> Result<Response<pb::PeerLinkStateReply>, Status> {
        self.check_caller(&request, &request.get_ref().from_node.clone())?;
        let req = request.into_inner();
        let key = convert::link_key(req.link.as_ref())?;
        self.check_link_of(&key, &req.from_node)?;
        let admin = convert::admin_from_proto(req.admin)?;
        debug!(link = %key, ?admin, from = req.from_node, "peer sets link state");
        self.agent.set_admin(&key, admin).await?;
        Ok(Response::new(pb::PeerLinkStateReply {}))
    }

    async fn set_link_impairment(
        &self,
        request: Request<pb::PeerLinkImpairment>,
    ) -> Result<Response<pb::PeerLinkStateReply>, Status> {
        self.check_caller(&request, &request.get_ref().from_node.clone())?;
        let req = request.into_inner();
        let key = convert::link_key(req.link.as_ref())?;
        self.check_link_of(&key, &req.from_node)?;
        let impair = convert::impairment(req.impairment.as_ref())?;
        debug!(link = %key, %impair, from = req.from_node, "peer sets link impairment");
        self.agent.set_impair(&key, impair).await?;
        Ok(Response::new(pb::PeerLinkStateReply {}))
    }
}

/// The addresses the Peers server lets connect: this agent's peers' underlay addresses, as
/// known at the time of each connection.
pub fn admit(agent: Arc<Agent>) -> tls::Admit {
    Arc::new(move |ip| {
        agent
            .peers()
            .values()
            .flatten()
            .any(|a| a.parse::<IpAddr>().is_ok_and(|a| a.to_canonical() == ip))
    })
}

/// Checks that a report for `node` may be taken from address `from`: the node is one of this
/// agent's peers (configured, or a Kubernetes Node) and the call comes from its underlay
/// address, so a node speaks only for itself.
fn speaks_for_itself(
    node: &str,
    known: Option<&Option<String>>,
    from: Option<std::net::IpAddr>,
) -> Result<(), Status> {
    let address = match known {
        None => {
            return Err(Status::permission_denied(format!(
                "node {node} is not a peer of this node; configure it with --peer {node}=ADDRESS \
                 (on Kubernetes, peers are the cluster's Nodes)"
            )));
        }
        Some(None) => {
            return Err(Status::permission_denied(format!(
                "the underlay address of node {node} is not known here; configure it with --peer \
                 {node}=ADDRESS or the node's ovswire.io/underlay-ip annotation"
            )));
        }
        Some(Some(a)) => a,
    };
    let expected: Option<std::net::IpAddr> = address.parse().ok();
    if from.is_none() || from != expected {
        let from = from.map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
        return Err(Status::permission_denied(format!(
            "a report for node {node} came from {from}, not from its underlay address \
             {address}: a node speaks only for itself"
        )));
    }
    Ok(())
}

/// Clients to every peer: the [`PeerTransport`] of a running agent, and the call that sets the
/// far end of a cross-node link. Each calls over mutual TLS, from this node's underlay address.
#[derive(Debug)]
pub struct PeerClients {
    tls: Arc<PeerTls>,
    port: u16,
    local: Option<IpAddr>,
    clients: Mutex<BTreeMap<String, Made>>,
}

/// A peer's client: the address and TLS identity version it was made with, and the client.
type Made = (String, u64, PeersClient<Channel>);

impl PeerClients {
    /// Clients for peers that serve on `port`, calling with identity `tls` from this node's
    /// underlay address `local` when it has one (peers check that a node calls from its own).
    pub fn new(tls: Arc<PeerTls>, port: u16, local: Option<IpAddr>) -> Self {
        Self {
            tls,
            port,
            local,
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    fn client(&self, node: &str, ip: &str) -> Result<PeersClient<Channel>, Error> {
        let version = self.tls.version();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((have, made, c)) = clients.get(node)
            && have == ip
            && *made == version
        {
            return Ok(c.clone());
        }
        let bad = |message: String| Error::Peer {
            node: node.to_owned(),
            message,
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| bad(format!("bad peer address {ip}")))?;
        let dial = tls::Dial::new(
            self.tls.clone(),
            node,
            SocketAddr::new(addr, self.port),
            self.local,
            CALL_TIMEOUT,
        )?;
        // The URL only names the peer in logs: the connector decides where to connect.
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{node}:{}", self.port))
                .map_err(|e| bad(format!("bad peer name: {e}")))?
                .timeout(CALL_TIMEOUT)
                .connect_with_connector_lazy(dial);
        let c = PeersClient::new(channel)
            .max_decoding_message_size(MESSAGE_LIMIT)
            .max_encoding_message_size(MESSAGE_LIMIT);
        clients.insert(node.to_owned(), (ip.to_owned(), version, c.clone()));
        Ok(c)
    }

    /// Sets the far end of a cross-node link on peer `node`, whose agent is at `ip` when its
    /// address is known; `from` is this node.
    pub async fn set_link_state(
        &self,
        node: &str,
        ip: Option<&str>,
        key: &LinkKey,
        admin: AdminState,
        from: String,
    ) -> Result<(), Error> {
        let req = Request::new(pb::PeerLinkState {
            link: Some(convert::link_ref(key)),
            admin: convert::admin_to_proto(admin),
            from_node: from,
        });
        self.ask(node, ip, |mut c| async move { c.set_link_state(req).await })
            .await
    }

    /// Asks `node` to impair its half of the cross-node link `key`.
    pub async fn set_link_impairment(
        &self,
        node: &str,
        ip: Option<&str>,
        key: &LinkKey,
        impair: &ovswire_core::impair::LinkImpairment,
        from: String,
    ) -> Result<(), Error> {
        let req = Request::new(pb::PeerLinkImpairment {
            link: Some(convert::link_ref(key)),
            impairment: Some(impair.into()),
            from_node: from,
        });
        self.ask(
            node,
            ip,
            |mut c| async move { c.set_link_impairment(req).await },
        )
        .await
    }

    /// Makes one change call to `node` at `ip` with its client.
    async fn ask<F, Fut>(&self, node: &str, ip: Option<&str>, call: F) -> Result<(), Error>
    where
        F: FnOnce(PeersClient<Channel>) -> Fut,
        Fut: std::future::Future<
                Output = Result<tonic::Response<pb::PeerLinkStateReply>, tonic::Status>,
            >,
    {
        let peer = |message: String| Error::Peer {
            node: node.to_owned(),
            message,
        };
        let ip = ip.ok_or_else(|| peer("its address is not known".into()))?;
        let client = self.client(node, ip)?;
        call(client)
            .await
            .map(drop)
            .map_err(|s| peer(format!("did not take the change: {}", s.message())))
    }
}

impl PeerTransport for PeerClients {
    async fn exchange(
        &self,
        node: &str,
        ip: &str,
        here: Here,
        report: Report,
    ) -> Result<PeerView, Error> {
        let peer = |message: String| Error::Peer {
            node: node.to_owned(),
            message,
        };
        let mut client = self.client(node, ip)?;
        let reply = client
            .exchange(Request::new(convert::node_state(here, &report, node)))
            .await
            .map_err(|s| peer(s.message().to_owned()))?
            .into_inner();
        if reply.node != node {
            return Err(peer(format!(
                "the agent at {ip} calls itself {}; check the peer list",
                reply.node
            )));
        }
        Ok(convert::peer_view(&reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token_file(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("token-{mode:o}-{}", text.len()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn the_token_file_must_be_the_agent_s_alone_and_the_token_long_and_printable() {
        let dir = tempfile::tempdir().unwrap();
        let good = "0123456789abcdefXYZ";
        for mode in [0o400, 0o600] {
            let path = token_file(dir.path(), &format!("  {good}\n"), mode);
            assert_eq!(load_token(&path).unwrap(), good, "{mode:o}");
        }
        for mode in [0o604, 0o640, 0o620, 0o602, 0o644, 0o666] {
            let path = token_file(dir.path(), good, mode);
            let e = load_token(&path).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{mode:o}: {e}");
        }
        for bad in ["short", "0123456789 abcdef", "0123456789abcdef\u{e9}"] {
            let path = token_file(dir.path(), bad, 0o600);
            let e = load_token(&path).unwrap_err().to_string();
            assert!(e.contains("at least 16 printable"), "{bad:?}: {e}");
        }
        let e = load_token(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    #[cfg_attr(
        not(feature = "root-tests"),
        ignore = "needs root to give a file away; scripts/test runs it"
    )]
    fn a_foreign_owner_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(dir.path(), "0123456789abcdefXYZ", 0o600);
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let e = load_token(&path).unwrap_err().to_string();
        assert!(e.contains("belongs to user 65534"), "{e}");
    }

    #[test]
    fn a_report_is_taken_only_from_its_node_s_own_address() {
        let known = Some("192.0.2.2".to_owned());
        let at = |ip: &str| Some(ip.parse().unwrap());
        assert!(speaks_for_itself("n2", Some(&known), at("192.0.2.2")).is_ok());
        let e = speaks_for_itself("n2", Some(&known), at("192.0.2.3")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("came from 192.0.2.3"), "{e:?}");
        assert!(speaks_for_itself("n2", Some(&known), None).is_err());
        let e = speaks_for_itself("n9", None, at("192.0.2.2")).unwrap_err();
        assert!(e.message().contains("not a peer"), "{e:?}");
        let e = speaks_for_itself("n2", Some(&None), at("192.0.2.2")).unwrap_err();
        assert!(e.message().contains("not known here"), "{e:?}");
    }
}
