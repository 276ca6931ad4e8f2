//! The `Peers` gRPC service other nodes' agents call, and the check of their shared token.
//! The exchange loop that calls peers is [`crate::runtime::peers`].

use std::sync::Arc;

use ovswire_core::model::check_object_name;
use ovswire_proto::v1 as pb;
use ovswire_proto::v1::peers_server::Peers;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::convert;
use crate::runtime::Agent;

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
        let req = request.into_inner();
        let key = convert::link_key(req.link.as_ref())?;
        let admin = convert::admin_from_proto(req.admin)?;
        debug!(link = %key, ?admin, from = req.from_node, "peer sets link state");
        self.agent.set_admin(&key, admin).await?;
        Ok(Response::new(pb::PeerLinkStateReply {}))
    }
}
