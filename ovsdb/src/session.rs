//! The sans-IO JSON-RPC session: request ids, pending requests, echo and liveness probing.
//!
//! [`Session`] touches no socket and reads no clock: the caller feeds it received messages
//! ([`handle_message`](Session::handle_message)) and the current time
//! ([`handle_timeout`](Session::handle_timeout)), and drains what to send
//! ([`poll_transmit`](Session::poll_transmit)), what happened ([`poll_event`](Session::poll_event))
//! and when to call it next ([`poll_timeout`](Session::poll_timeout)).

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use serde_json::{Value as Json, json};

use crate::{
    error::{Error, Result},
    rpc::Message,
};

/// Id of a request sent through a [`Session`].
pub type RequestId = u64;

/// Client-side liveness probing.
///
/// ovsdb-server does not probe unix-socket clients (`stream-unix.c`: `needs_probes = false`),
/// and a peer that hangs without closing the socket would otherwise go unnoticed forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Send an `echo` after this long without receiving anything; `None` disables probing.
    pub interval: Option<Duration>,
    /// Declare the peer dead when the probe is unanswered (and nothing else arrived) this long.
    pub timeout: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(5)),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the session reports to its owner.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The response to a request: `Ok(result)` or `Err(error)` as sent by the server.
    Reply {
        /// The request answered.
        id: RequestId,
        /// Its method.
        method: String,
        /// `result`, or the non-null `error`.
        result: std::result::Result<Json, Json>,
    },
    /// A notification from the server (`update`, `update2`, `locked`, …).
    Notification {
        /// Method name.
        method: String,
        /// Parameters.
        params: Vec<Json>,
    },
}

#[derive(Debug)]
enum Pending {
    Call(String),
    Probe,
}

/// JSON-RPC 1.0 client session state.
#[derive(Debug)]
pub struct Session {
    next_id: RequestId,
    pending: HashMap<RequestId, Pending>,
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
    last_rx: Instant,
    probe_sent: Option<Instant>,
    config: ProbeConfig,
}

impl Session {
    /// A fresh session on a just-opened connection.
    pub fn new(config: ProbeConfig, now: Instant) -> Self {
        Self {
            next_id: 1,
            pending: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            last_rx: now,
            probe_sent: None,
            config,
        }
    }

    /// Queue a request; its reply arrives as [`Event::Reply`] with the returned id.
    pub fn send_request(&mut self, method: &str, params: Vec<Json>) -> RequestId {
        let id = self.next_request_id();
        self.pending.insert(id, Pending::Call(method.to_owned()));
        self.transmit.push_back(Message::Request {
            id: json!(id),
            method: method.to_owned(),
            params,
        });
        id
    }

    /// Ask the server to abandon a request (RFC 7047 §4.1.4); it then answers it with an error.
    pub fn cancel(&mut self, id: RequestId) {
        if matches!(self.pending.get(&id), Some(Pending::Call(_))) {
            self.transmit.push_back(Message::Notification {
                method: "cancel".into(),
                params: vec![json!(id)],
            });
        }
    }

    /// Requests sent and not yet answered, with their methods.
    pub fn pending_calls(&self) -> impl Iterator<Item = (RequestId, &str)> {
        self.pending.iter().filter_map(|(id, p)| match p {
            Pending::Call(m) => Some((*id, m.as_str())),
            Pending::Probe => None,
        })
    }

    fn next_request_id(&mut self) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Process one message from the server.
    pub fn handle_message(&mut self, msg: Message, now: Instant) -> Result<()> {
        // Any traffic proves the peer alive, so an outstanding probe need not be answered.
        self.last_rx = now;
        self.probe_sent = None;
        match msg {
            Message::Request { id, method, params } if method == "echo" => {
                // RFC 7047 §4.1.11: reply with the same params.
                self.transmit.push_back(Message::Response {
                    id,
                    result: Json::Array(params),
                    error: Json::Null,
                });
            }
            Message::Request { id, method, .. } => {
                tracing::warn!(%method, "ovsdb-server sent an unexpected request");
                self.transmit.push_back(Message::Response {
                    id,
                    result: Json::Null,
                    error: json!({"error": "unknown method", "details": method}),
                });
            }
            Message::Notification { method, params } => {
                self.events
                    .push_back(Event::Notification { method, params });
            }
            Message::Response { id, result, error } => {
                let Some(req) = id.as_u64() else {
                    // ovsdb-server answers a message it cannot parse with an error and no id.
                    let what = if error.is_null() { result } else { error };
                    return Err(Error::Protocol(format!(
                        "server reported an error for no request: {what}"
                    )));
                };
                match self.pending.remove(&req) {
                    Some(Pending::Call(method)) => {
                        let result = if error.is_null() {
                            Ok(result)
                        } else {
                            Err(error)
                        };
                        self.events.push_back(Event::Reply {
                            id: req,
                            method,
                            result,
                        });
                    }
                    Some(Pending::Probe) => {}
                    None => tracing::warn!(id = req, "reply to an unknown request id"),
                }
            }
        }
        Ok(())
    }

    /// Advance timers; `Err(PeerUnresponsive)` means the connection should be dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        let Some(interval) = self.config.interval else {
            return Ok(());
        };
        if let Some(sent) = self.probe_sent {
            if now >= sent + self.config.timeout {
                return Err(Error::PeerUnresponsive(self.config.timeout));
            }
        } else if now >= self.last_rx + interval {
            let id = self.next_request_id();
            self.pending.insert(id, Pending::Probe);
            self.transmit.push_back(Message::Request {
                id: json!(id),
                method: "echo".into(),
                params: vec![],
            });
            self.probe_sent = Some(now);
        }
        Ok(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let interval = self.config.interval?;
        Some(match self.probe_sent {
            Some(sent) => sent + self.config.timeout,
            None => self.last_rx + interval,
        })
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> (Session, Instant) {
        let now = Instant::now();
        (Session::new(ProbeConfig::default(), now), now)
    }

    #[test]
    fn requests_get_increasing_ids_and_replies_are_matched() {
        let (mut s, now) = session();
        let a = s.send_request("list_dbs", vec![]);
        let b = s.send_request("get_schema", vec![json!("Open_vSwitch")]);
        assert_ne!(a, b);
        assert_eq!(
            s.poll_transmit().unwrap().to_json(),
            json!({"method": "list_dbs", "params": [], "id": a})
        );
        assert!(s.poll_transmit().is_some());
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.pending_calls().count(), 2);

        s.handle_message(
            Message::Response {
                id: json!(b),
                result: Json::Null,
                error: json!({"error": "unknown database"}),
            },
            now,
        )
        .unwrap();
        s.handle_message(
            Message::Response {
                id: json!(a),
                result: json!(["Open_vSwitch"]),
                error: Json::Null,
            },
            now,
        )
        .unwrap();
        assert_eq!(
            s.poll_event(),
            Some(Event::Reply {
                id: b,
                method: "get_schema".into(),
                result: Err(json!({"error": "unknown database"}))
            })
        );
        assert_eq!(
            s.poll_event(),
            Some(Event::Reply {
                id: a,
                method: "list_dbs".into(),
                result: Ok(json!(["Open_vSwitch"]))
            })
        );
        assert_eq!(s.pending_calls().count(), 0);
    }

    #[test]
    fn server_echo_is_answered_with_its_params() {
        let (mut s, now) = session();
        s.handle_message(
            Message::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: vec![json!(1)],
            },
            now,
        )
        .unwrap();
        assert_eq!(
            s.poll_transmit(),
            Some(Message::Response {
                id: json!("echo"),
                result: json!([1]),
                error: Json::Null
            })
        );
        assert!(s.poll_event().is_none());
    }

    #[test]
    fn notifications_become_events() {
        let (mut s, now) = session();
        s.handle_message(
            Message::Notification {
                method: "update2".into(),
                params: vec![json!("m"), json!({})],
            },
            now,
        )
        .unwrap();
        assert!(
            matches!(s.poll_event(), Some(Event::Notification { method, .. }) if method == "update2")
        );
    }

    #[test]
    fn probe_after_idle_interval_then_dead_after_timeout() {
        let (mut s, t0) = session();
        let cfg = ProbeConfig::default();
        assert_eq!(s.poll_timeout(), Some(t0 + cfg.interval.unwrap()));
        s.handle_timeout(t0 + Duration::from_secs(1)).unwrap();
        assert!(s.poll_transmit().is_none(), "no probe before the interval");

        let t1 = t0 + cfg.interval.unwrap();
        s.handle_timeout(t1).unwrap();
        let Some(Message::Request { method, .. }) = s.poll_transmit() else {
            panic!("no probe")
        };
        assert_eq!(method, "echo");
        assert_eq!(
            s.pending_calls().count(),
            0,
            "probes are not caller requests"
        );
        assert_eq!(s.poll_timeout(), Some(t1 + cfg.timeout));

        s.handle_timeout(t1 + cfg.timeout - Duration::from_millis(1))
            .unwrap();
        assert!(s.poll_transmit().is_none(), "only one probe outstanding");
        assert!(matches!(
            s.handle_timeout(t1 + cfg.timeout),
            Err(Error::PeerUnresponsive(_))
        ));
    }

    #[test]
    fn any_traffic_resets_the_probe() {
        let (mut s, t0) = session();
        let t1 = t0 + Duration::from_secs(5);
        s.handle_timeout(t1).unwrap();
        let Some(Message::Request { id, .. }) = s.poll_transmit() else {
            panic!()
        };
        let t2 = t1 + Duration::from_secs(1);
        s.handle_message(
            Message::Response {
                id,
                result: json!([]),
                error: Json::Null,
            },
            t2,
        )
        .unwrap();
        assert!(s.poll_event().is_none(), "probe replies are swallowed");
        assert_eq!(s.poll_timeout(), Some(t2 + Duration::from_secs(5)));
        s.handle_timeout(t2 + Duration::from_secs(30)).unwrap();
        assert!(s.poll_transmit().is_some(), "a new probe, not a death");
    }

    #[test]
    fn probing_can_be_disabled() {
        let now = Instant::now();
        let mut s = Session::new(
            ProbeConfig {
                interval: None,
                timeout: Duration::ZERO,
            },
            now,
        );
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(now + Duration::from_secs(3600)).unwrap();
        assert!(s.poll_transmit().is_none());
    }

    #[test]
    fn cancel_sends_a_notification_for_pending_calls_only() {
        let (mut s, now) = session();
        let id = s.send_request("transact", vec![]);
        s.poll_transmit();
        s.cancel(id);
        assert_eq!(
            s.poll_transmit(),
            Some(Message::Notification {
                method: "cancel".into(),
                params: vec![json!(id)]
            })
        );
        s.handle_message(
            Message::Response {
                id: json!(id),
                result: Json::Null,
                error: json!({"error": "canceled"}),
            },
            now,
        )
        .unwrap();
        s.cancel(id);
        assert!(s.poll_transmit().is_none());
    }

    #[test]
    fn unsolicited_error_is_fatal_and_unknown_ids_are_ignored() {
        let (mut s, now) = session();
        s.handle_message(
            Message::Response {
                id: json!(999),
                result: json!(1),
                error: Json::Null,
            },
            now,
        )
        .unwrap();
        let err = s
            .handle_message(
                Message::Response {
                    id: Json::Null,
                    result: Json::Null,
                    error: json!("bad json"),
                },
                now,
            )
            .unwrap_err();
        assert!(err.to_string().contains("bad json"));
    }
}
