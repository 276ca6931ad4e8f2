//! The `Wires` gRPC service: list, inspect, flap and watch links. Checks input and converts
//! between proto and domain types; the work is done by [`Agent`].

use std::sync::Arc;

use ovswire_proto::v1 as pb;
use ovswire_proto::v1::wires_server::Wires;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::peers::PeerClients;
use crate::runtime::Agent;
use ovswire_core::model::{AdminState, EndpointKey, LinkKey, LinkSpec};
use ovswire_core::plan::LinkStatus;

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

    fn to_proto(&self, spec: &LinkSpec, status: &LinkStatus) -> pb::Link {
        let end = |e: &EndpointKey| pb::Endpoint {
            pod: e.pod.clone(),
            ifname: e.ifname.clone(),
        };
        let info = self.agent.link_info(spec);
        let (oper, reason) = match status {
            LinkStatus::Pending(r) => (pb::OperState::Pending, r.clone()),
            LinkStatus::Up => (pb::OperState::Up, String::new()),
            LinkStatus::Down => (pb::OperState::Down, "administratively down".to_owned()),
            LinkStatus::Error(r) => (pb::OperState::Error, r.clone()),
        };
        pb::Link {
            r#ref: Some(pb::LinkRef {
                lab: spec.key.lab().to_owned(),
                a: Some(end(spec.key.a())),
                b: Some(end(spec.key.b())),
            }),
            admin: match spec.admin {
                AdminState::Up => pb::AdminState::Up,
                AdminState::Down => pb::AdminState::Down,
            } as i32,
            oper: oper as i32,
            reason: match (reason.is_empty(), &info.mtu_note) {
                (true, Some(note)) => note.clone(),
                (false, Some(note)) => format!("{reason}; {note}"),
                (_, None) => reason,
            },
            mtu: spec.mtu,
            node_a: info.node_a,
            node_b: info.node_b,
            effective_mtu: info.effective_mtu,
            tunnel_key: info.tunnel_key.unwrap_or(0),
        }
    }

    fn find(&self, key: &LinkKey) -> Result<pb::Link, Status> {
        self.agent
            .links()
            .iter()
            .find(|(l, _)| l.key == *key)
            .map(|(l, s)| self.to_proto(l, s))
            .ok_or_else(|| Status::not_found(format!("no link {key}; list them with ListLinks")))
    }
}

/// Validates a link reference from a request.
pub fn link_key(r: Option<&pb::LinkRef>) -> Result<LinkKey, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("missing link reference"))?;
    let end = |e: Option<&pb::Endpoint>, which: &str| -> Result<EndpointKey, Status> {
        let e = e.ok_or_else(|| Status::invalid_argument(format!("missing endpoint {which}")))?;
        EndpointKey::new(&r.lab, &e.pod, &e.ifname)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    };
    LinkKey::new(end(r.a.as_ref(), "a")?, end(r.b.as_ref(), "b")?)
        .map_err(|e| Status::invalid_argument(e.to_string()))
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
        let key = link_key(request.get_ref().r#ref.as_ref())?;
        self.find(&key).map(Response::new)
    }

    async fn set_link_state(
        &self,
        request: Request<pb::SetLinkStateRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = request.into_inner();
        let key = link_key(req.r#ref.as_ref())?;
        let admin = match pb::AdminState::try_from(req.admin) {
            Ok(pb::AdminState::Up) => AdminState::Up,
            Ok(pb::AdminState::Down) => AdminState::Down,
            _ => {
                return Err(Status::invalid_argument(
                    "admin must be ADMIN_STATE_UP or ADMIN_STATE_DOWN",
                ));
            }
        };
        // A cross-node link's far end is set by its node's agent, at the same time.
        let far = match (self.agent.far_node(&key), &self.peers) {
            (Some(node), Some(peers)) => Some((node, peers)),
            _ => None,
        };
        let remote = async {
            match &far {
                Some((node, peers)) => peers.set_link_state(node, &key, admin).await,
                None => Ok(()),
            }
        };
        let (here, there) = tokio::join!(self.agent.set_admin(&key, admin), remote);
        here.map_err(|e| {
            if e.starts_with("no link") {
                Status::not_found(e)
            } else {
                Status::unavailable(e)
            }
        })?;
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
