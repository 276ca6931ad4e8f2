//! The `Wires` gRPC service: list, inspect, flap and watch links. Input is checked and
//! converted by [`convert`]; the work is done by [`Agent`].

use std::sync::Arc;

use ovswire_proto::v1 as pb;
use ovswire_proto::v1::wires_server::Wires;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use ovswire_core::model::{LinkKey, LinkSpec};
use ovswire_core::plan::OperState;

use super::convert;
use super::peers::PeerClients;
use crate::error::Error;
use crate::runtime::Agent;

/// The `Wires` service of one agent.
#[derive(Debug, Clone)]
pub struct WiresService {
    agent: Arc<Agent>,
    peers: Option<Arc<PeerClients>>,
}

impl WiresService {
    /// Serves `agent`'s links; `peers` reach the far ends of cross-node links.
    pub fn new(agent: Arc<Agent>, peers: Option<Arc<PeerClients>>) -> Self {
        Self { agent, peers }
    }

    fn to_proto(&self, spec: &LinkSpec, status: &OperState) -> pb::Link {
        convert::link(spec, status, self.agent.link_info(spec))
    }

    fn find(&self, key: &LinkKey) -> Result<pb::Link, Status> {
        self.agent
            .links()
            .iter()
            .find(|(l, _)| l.key == *key)
            .map(|(l, s)| self.to_proto(l, s))
            .ok_or_else(|| Error::NoSuchLink(Box::new(key.clone())).into())
    }
}

#[tonic::async_trait]
impl Wires for WiresService {
    async fn list_links(
        &self,
        request: Request<pb::ListLinksRequest>,
    ) -> Result<Response<pb::ListLinksResponse>, Status> {
        let lab = request.into_inner().lab;
        let links = self
            .agent
            .links()
            .iter()
            .filter(|(l, _)| lab.is_empty() || l.key.lab() == lab)
            .map(|(l, s)| self.to_proto(l, s))
            .collect();
        Ok(Response::new(pb::ListLinksResponse { links }))
    }

    async fn get_link(
        &self,
        request: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let key = convert::link_key(request.get_ref().r#ref.as_ref())?;
        self.find(&key).map(Response::new)
    }

    async fn set_link_state(
        &self,
        request: Request<pb::SetLinkStateRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = request.into_inner();
        let key = convert::link_key(req.r#ref.as_ref())?;
        let admin = convert::admin_from_proto(req.admin)?;
        // A cross-node link's far end is set by its node's agent, at the same time.
        let far = match (self.agent.far_node(&key), &self.peers) {
            (Some(node), Some(peers)) => Some((node, peers)),
            _ => None,
        };
        let remote = async {
            match &far {
                Some((node, peers)) => {
                    let ip = self.agent.peers().get(node).cloned().flatten();
                    let from = self.agent.here().node;
                    peers
                        .set_link_state(node, ip.as_deref(), &key, admin, from)
                        .await
                }
                None => Ok(()),
            }
        };
        let (here, there) = tokio::join!(self.agent.set_admin(&key, admin), remote);
        here?;
        there.map_err(|e| {
            Status::unavailable(format!(
                "this end of {key} is {admin}, but {e}; try again once that node is back"
            ))
        })?;
        self.find(&key).map(Response::new)
    }

    type WatchLinksStream = ReceiverStream<Result<pb::LinkEvent, Status>>;

    async fn watch_links(
        &self,
        request: Request<pb::WatchLinksRequest>,
    ) -> Result<Response<Self::WatchLinksStream>, Status> {
        let lab = request.into_inner().lab;
        let mut updates = self.agent.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let initial: Vec<_> = self
            .agent
            .links()
            .iter()
            .filter(|(l, _)| lab.is_empty() || l.key.lab() == lab)
            .map(|(l, s)| pb::LinkEvent {
                link: Some(self.to_proto(l, s)),
                initial: true,
                removed: false,
            })
            .collect();
        let this = self.clone();
        tokio::spawn(async move {
            for ev in initial {
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            loop {
                let ev = match updates.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let msg = format!("watcher fell {n} events behind; watch again to resync");
                        let _ = tx.send(Err(Status::data_loss(msg))).await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if !lab.is_empty() && ev.link.key.lab() != lab {
                    continue;
                }
                let out = pb::LinkEvent {
                    link: Some(this.to_proto(&ev.link, &ev.status)),
                    initial: false,
                    removed: ev.removed,
                };
                if tx.send(Ok(out)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
