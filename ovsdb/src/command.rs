//! What a [`Client`](crate::Client) handle or a [`MonitorStream`](crate::MonitorStream) sends
//! the connection task, and what the task sends a stream back: the private protocol between
//! the handles and the one task that owns the socket.

use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::request::MonitorRequest;

pub(crate) enum Command {
    Call {
        method: String,
        params: Vec<Json>,
        ticket: u64,
        reply: oneshot::Sender<Result<Json>>,
    },
    Cancel {
        ticket: u64,
    },
    Monitor {
        registration: Registration,
        reply: oneshot::Sender<Result<()>>,
    },
    MonitorCancel {
        monitor_id: String,
        /// `None` from `Drop`: nobody waits for the server's answer.
        reply: Option<oneshot::Sender<Result<()>>>,
    },
}

/// A monitor the task keeps alive across reconnects.
pub(crate) struct Registration {
    pub(crate) db: String,
    pub(crate) monitor_id: String,
    pub(crate) requests: Vec<MonitorRequest>,
    pub(crate) updates: mpsc::UnboundedSender<MonitorMsg>,
    /// Set once the server said it does not know `monitor_cond`.
    pub(crate) plain: bool,
}

impl Registration {
    pub(crate) fn request(&self) -> (&'static str, Vec<Json>) {
        let method = if self.plain {
            "monitor"
        } else {
            "monitor_cond"
        };
        let mut by_table = serde_json::Map::new();
        for r in &self.requests {
            by_table.insert(r.table.clone(), json!([r.to_json(!self.plain)]));
        }
        (
            method,
            vec![
                json!(self.db),
                json!(self.monitor_id),
                Json::Object(by_table),
            ],
        )
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Call { method, ticket, .. } => write!(f, "Call({method}, #{ticket})"),
            Self::Cancel { ticket } => write!(f, "Cancel(#{ticket})"),
            Self::Monitor { registration, .. } => write!(f, "Monitor({})", registration.monitor_id),
            Self::MonitorCancel { monitor_id, .. } => write!(f, "MonitorCancel({monitor_id})"),
        }
    }
}
/// Which notification format the server uses for a monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateFormat {
    /// `monitor` / `update`: `{"old", "new"}` per row.
    Update,
    /// `monitor_cond` / `update2`: `initial`, `insert`, `delete`, `modify` (diff).
    Update2,
}

/// From the connection task to one stream.
#[derive(Debug)]
pub(crate) enum MonitorMsg {
    Initial {
        format: UpdateFormat,
        updates: Json,
        resync: bool,
    },
    Update {
        format: UpdateFormat,
        updates: Json,
    },
    Closed(Error),
}

pub(crate) fn cancel_monitor(tx: &mpsc::Sender<Command>, monitor_id: String) {
    // Best effort from Drop: if the channel is full or closed the server keeps sending updates
    // that the task then discards.
    let _ = tx.try_send(Command::MonitorCancel {
        monitor_id,
        reply: None,
    });
}
