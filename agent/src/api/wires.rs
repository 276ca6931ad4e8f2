//! The `Wires` gRPC service: list, inspect, flap and watch links. Input is checked and
//! converted by [`convert`]; the work is done by [`Agent`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ovswire_proto::v1 as pb;
use ovswire_proto::v1::wires_server::Wires;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use ovswire_core::model::{LinkKey, LinkSpec};
use ovswire_core::node::LinkEvent;
use ovswire_core::plan::OperState;
use ovswire_core::stats::LinkCounters;

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

    /// Every link of `lab` (all when empty) with its counters read now; rates against
    /// `previous` (counters and when they were read).
    async fn with_stats(
        &self,
        lab: &str,
        previous: Option<(&BTreeMap<LinkKey, LinkCounters>, Instant)>,
    ) -> Result<(Vec<pb::Link>, BTreeMap<LinkKey, LinkCounters>), Status> {
        let counters = self.agent.link_stats().await?;
        let node = self.agent.here().node;
        let links = self
            .agent
            .links()
            .iter()
            .filter(|(l, _)| lab.is_empty() || l.key.lab() == lab)
            .map(|(l, s)| {
                let mut link = self.to_proto(l, s);
                let now = counters.get(&l.key).copied().unwrap_or_default();
                let before = previous.and_then(|(p, at)| {
                    Some((p.get(&l.key).copied()?, at.elapsed().as_secs_f64()))
                });
                link.stats = Some(convert::link_stats(
                    &node,
                    now,
                    &self.agent.telemetry().carrier(&l.key),
                    before,
                ));
                link
            })
            .collect();
        Ok((links, counters))
    }

    /// Applies a change to link `key`: `here` on this node and, for a cross-node link, `there`
    /// on the far end's node at the same time (given the peer clients, that node, its address
    /// and this node's name); the link after. `done` says what this end has when the far node
    /// cannot be reached.
    async fn both_ends<T>(
        &self,
        key: &LinkKey,
        done: &str,
        here: impl std::future::Future<Output = Result<LinkSpec, Error>>,
        there: impl FnOnce(Arc<PeerClients>, String, Option<String>, String) -> T,
    ) -> Result<Response<pb::Link>, Status>
    where
        T: std::future::Future<Output = Result<(), Error>>,
    {
        let remote = match (self.agent.far_node(key), &self.peers) {
            (Some(node), Some(peers)) => {
                let ip = self.agent.peers().get(&node).cloned().flatten();
                Some(there(peers.clone(), node, ip, self.agent.here().node))
            }
            _ => None,
        };
        let remote = async {
            match remote {
                Some(call) => call.await,
                None => Ok(()),
            }
        };
        let (here, there) = tokio::join!(here, remote);
        here?;
        there.map_err(|e| {
            Status::unavailable(format!(
                "this end of {key} {done}, but {e}; try again once that node is back"
            ))
        })?;
        self.find(key).map(Response::new)
    }

    /// A published link event as the API gives it.
    fn event(
        &self,
        ev: &LinkEvent,
        time: SystemTime,
        history: bool,
        note: Option<String>,
    ) -> pb::LinkEvent {
        pb::LinkEvent {
            link: Some(self.to_proto(&ev.link, &ev.status)),
            initial: false,
            removed: ev.removed,
            time_unix_ms: convert::unix_ms(time),
            node: self.agent.here().node,
            history,
            note: note.unwrap_or_default(),
        }
    }
}

#[tonic::async_trait]
impl Wires for WiresService {
    async fn list_links(
        &self,
        request: Request<pb::ListLinksRequest>,
    ) -> Result<Response<pb::ListLinksResponse>, Status> {
        let req = request.into_inner();
        if req.stats {
            let (links, _) = self.with_stats(&req.lab, None).await?;
            return Ok(Response::new(pb::ListLinksResponse { links }));
        }
        let links = self
            .agent
            .links()
            .iter()
            .filter(|(l, _)| req.lab.is_empty() || l.key.lab() == req.lab)
            .map(|(l, s)| self.to_proto(l, s))
            .collect();
        Ok(Response::new(pb::ListLinksResponse { links }))
    }

    async fn get_link(
        &self,
        request: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = request.into_inner();
        let key = convert::link_key(req.r#ref.as_ref())?;
        let mut link = self.find(&key)?;
        if req.stats {
            let counters = self.agent.link_stats().await?;
            link.stats = Some(convert::link_stats(
                &self.agent.here().node,
                counters.get(&key).copied().unwrap_or_default(),
                &self.agent.telemetry().carrier(&key),
                None,
            ));
        }
        Ok(Response::new(link))
    }

    async fn set_link_state(
        &self,
        request: Request<pb::SetLinkStateRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = request.into_inner();
        let key = convert::link_key(req.r#ref.as_ref())?;
        let admin = convert::admin_from_proto(req.admin)?;
        let far_key = key.clone();
        self.both_ends(
            &key,
            &format!("is {admin}"),
            self.agent.set_admin(&key, admin),
            |peers, node, ip, from| async move {
                peers
                    .set_link_state(&node, ip.as_deref(), &far_key, admin, from)
                    .await
            },
        )
        .await
    }

    async fn set_link_impairment(
        &self,
        request: Request<pb::SetLinkImpairmentRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = request.into_inner();
        let key = convert::link_key(req.r#ref.as_ref())?;
        let impair = convert::impairment(req.impairment.as_ref())?;
        let far_key = key.clone();
        // The far node impairs what its end sends.
        self.both_ends(
            &key,
            "has its impairments",
            self.agent.set_impair(&key, impair),
            |peers, node, ip, from| async move {
                peers
                    .set_link_impairment(&node, ip.as_deref(), &far_key, &impair, from)
                    .await
            },
        )
        .await
    }

    type WatchLinksStream = ReceiverStream<Result<pb::LinkEvent, Status>>;

    async fn watch_links(
        &self,
        request: Request<pb::WatchLinksRequest>,
    ) -> Result<Response<Self::WatchLinksStream>, Status> {
        let req = request.into_inner();
        let lab = req.lab;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let (first, mut updates) = if req.since_unix_ms > 0 {
            // What the agent remembers since then, then what comes next.
            let (history, updates) = self
                .agent
                .history_since(convert::from_unix_ms(req.since_unix_ms), &lab);
            let first: Vec<_> = history
                .iter()
                .map(|h| self.event(&h.event, h.time, true, h.note.clone()))
                .collect();
            (first, updates)
        } else {
            let updates = self.agent.subscribe();
            let now = SystemTime::now();
            let first: Vec<_> = self
                .agent
                .links()
                .iter()
                .filter(|(l, _)| lab.is_empty() || l.key.lab() == lab)
                .map(|(l, s)| pb::LinkEvent {
                    link: Some(self.to_proto(l, s)),
                    initial: true,
                    removed: false,
                    time_unix_ms: convert::unix_ms(now),
                    node: self.agent.here().node,
                    history: false,
                    note: String::new(),
                })
                .collect();
            (first, updates)
        };
        let this = self.clone();
        tokio::spawn(async move {
            for ev in first {
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
                let out = this.event(&ev, SystemTime::now(), false, ev.note.clone());
                if tx.send(Ok(out)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn link_history(
        &self,
        request: Request<pb::LinkHistoryRequest>,
    ) -> Result<Response<pb::LinkHistoryResponse>, Status> {
        let req = request.into_inner();
        let only = match &req.r#ref {
            Some(r) => Some(convert::link_key(Some(r))?),
            None => None,
        };
        let (history, _) = self
            .agent
            .history_since(convert::from_unix_ms(req.since_unix_ms), &req.lab);
        let events = history
            .iter()
            .filter(|h| only.as_ref().is_none_or(|k| h.event.link.key == *k))
            .map(|h| self.event(&h.event, h.time, true, h.note.clone()))
            .collect();
        Ok(Response::new(pb::LinkHistoryResponse { events }))
    }

    type WatchLinkStatsStream = ReceiverStream<Result<pb::LinkStatsUpdate, Status>>;

    async fn watch_link_stats(
        &self,
        request: Request<pb::WatchLinkStatsRequest>,
    ) -> Result<Response<Self::WatchLinkStatsStream>, Status> {
        let req = request.into_inner();
        let interval = match req.interval_ms {
            0 => Duration::from_secs(1),
            ms if ms < 100 => {
                return Err(Status::invalid_argument(format!(
                    "interval_ms {ms} is below 100; ask for 100 ms or more"
                )));
            }
            ms => Duration::from_millis(u64::from(ms)),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let this = self.clone();
        tokio::spawn(async move {
            let mut previous: Option<(BTreeMap<LinkKey, LinkCounters>, Instant)> = None;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let read_at = Instant::now();
                let update = this
                    .with_stats(&req.lab, previous.as_ref().map(|(c, t)| (c, *t)))
                    .await
                    .map(|(links, counters)| {
                        previous = Some((counters, read_at));
                        pb::LinkStatsUpdate {
                            time_unix_ms: convert::unix_ms(SystemTime::now()),
                            links,
                        }
                    });
                if tx.send(update).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
