//! Monitors: `monitor_cond`/`update2` (or `monitor`/`update`) as a stream of typed row changes.
//!
//! A [`MonitorStream`] keeps a replica of the monitored rows. `update2` "modify" notifications
//! carry diffs (for a set column the elements that changed, for a map the changed pairs), so
//! the stream applies them to the replica with the help of the schema and hands out whole
//! rows: every [`RowChange`] has the complete old and new row.
//!
//! `update2` "initial" and "insert" rows leave out columns that hold their default value (0,
//! `""`, an empty set or map), so a column missing from a row means its default.
//!
//! ```no_run
//! use ovswire_ovsdb::{Client, Condition, MonitorRequest, UpdateKind};
//!
//! # async fn run(client: Client) -> ovswire_ovsdb::Result<()> {
//! let interfaces = MonitorRequest::new("Interface")
//!     .columns(["name", "ofport", "error", "link_state"])
//!     .conditions(vec![Condition::ne("type", "internal")]);
//! let mut stream = client.monitor("Open_vSwitch", vec![interfaces]).await?;
//! while let Some(event) = stream.next_event().await {
//!     let event = event?;
//!     if event.kind == UpdateKind::Resync {
//!         // Reconnected to a restarted ovsdb-server: `stream.rows(..)` is the new truth.
//!     }
//!     for change in &event.changes {
//!         println!("{} {:?} -> {:?}", change.uuid, change.old, change.new);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::{
    collections::{BTreeMap, btree_map::Entry},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use serde_json::Value as Json;
use tokio::sync::mpsc;
use tokio_stream::Stream;

pub use crate::request::MonitorRequest;
use crate::{
    command::{Command, MonitorMsg, UpdateFormat, cancel_monitor},
    error::{Error, Result},
    schema::Schema,
    value::{Atom, Row, Uuid, Value},
};

/// Why a [`MonitorEvent`] was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateKind {
    /// The first snapshot: every matching row, as `new`.
    Initial,
    /// A new snapshot after a reconnect: rows as they are now (`old` is what the stream knew
    /// before), plus deletions of rows that vanished. Consumers should resynchronise from it.
    Resync,
    /// An incremental change.
    Update,
}

/// One row's change.
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange {
    /// Table name.
    pub table: String,
    /// Row UUID.
    pub uuid: Uuid,
    /// The row before (`None` for inserts and initial rows).
    pub old: Option<Row>,
    /// The row after (`None` for deletes).
    pub new: Option<Row>,
}

/// One notification's worth of changes.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorEvent {
    /// Snapshot, resync or incremental update.
    pub kind: UpdateKind,
    /// Changed rows, ordered by table then UUID.
    pub changes: Vec<RowChange>,
}

/// A live monitor; dropping it sends `monitor_cancel`.
#[derive(Debug)]
pub struct MonitorStream {
    rx: mpsc::UnboundedReceiver<MonitorMsg>,
    schema: Arc<Schema>,
    replica: BTreeMap<String, BTreeMap<Uuid, Row>>,
    tx: mpsc::Sender<Command>,
    monitor_id: String,
}

impl MonitorStream {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<MonitorMsg>,
        schema: Arc<Schema>,
        tx: mpsc::Sender<Command>,
        monitor_id: String,
    ) -> Self {
        Self {
            rx,
            schema,
            replica: BTreeMap::new(),
            tx,
            monitor_id,
        }
    }

    /// The next event; `None` after the monitor ended (an `Err` says why).
    pub async fn next_event(&mut self) -> Option<Result<MonitorEvent>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Stop the monitor with `monitor_cancel` and wait for the server to confirm.
    /// (Dropping the stream cancels too, without waiting.)
    pub async fn cancel(mut self) -> Result<()> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let monitor_id = std::mem::take(&mut self.monitor_id);
        let cmd = Command::MonitorCancel {
            monitor_id,
            reply: Some(reply),
        };
        self.tx
            .send(cmd)
            .await
            .map_err(|_| Error::ConnectionClosed)?;
        done.await.map_err(|_| Error::ConnectionClosed)?
    }

    /// Current rows of a monitored table, as of the last event taken from the stream.
    pub fn rows(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.replica.get(table).into_iter().flatten()
    }

    /// One current row.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.replica.get(table)?.get(uuid)
    }

    fn apply(&mut self, msg: MonitorMsg) -> Result<MonitorEvent> {
        match msg {
            MonitorMsg::Initial {
                format,
                updates,
                resync,
            } => {
                let mut fresh: BTreeMap<String, BTreeMap<Uuid, Row>> = BTreeMap::new();
                for_each_row(&updates, |table, uuid, update| {
                    let key = if format == UpdateFormat::Update {
                        "new"
                    } else {
                        "initial"
                    };
                    let row = update
                        .get(key)
                        .ok_or_else(|| malformed(table, uuid, update))?;
                    fresh
                        .entry(table.to_owned())
                        .or_default()
                        .insert(uuid, Row::from_json(row)?);
                    Ok(())
                })?;
                let mut changes = Vec::new();
                for (table, rows) in &fresh {
                    for (uuid, row) in rows {
                        let old = self.row(table, uuid).filter(|_| resync).cloned();
                        changes.push(RowChange {
                            table: table.clone(),
                            uuid: *uuid,
                            old,
                            new: Some(row.clone()),
                        });
                    }
                }
                for (table, rows) in &self.replica {
                    for (uuid, row) in rows {
                        if !fresh.get(table).is_some_and(|t| t.contains_key(uuid)) {
                            let old = Some(row.clone());
                            changes.push(RowChange {
                                table: table.clone(),
                                uuid: *uuid,
                                old,
                                new: None,
                            });
                        }
                    }
                }
                self.replica = fresh;
                let kind = if resync {
                    UpdateKind::Resync
                } else {
                    UpdateKind::Initial
                };
                Ok(MonitorEvent { kind, changes })
            }
            MonitorMsg::Update { format, updates } => {
                let mut changes = Vec::new();
                let schema = self.schema.clone();
                let replica = &mut self.replica;
                for_each_row(&updates, |table, uuid, update| {
                    let rows = replica.entry(table.to_owned()).or_default();
                    let change = match format {
                        UpdateFormat::Update => apply_update(rows, uuid, update)?,
                        UpdateFormat::Update2 => apply_update2(&schema, table, rows, uuid, update)?,
                    };
                    let (old, new) = change;
                    changes.push(RowChange {
                        table: table.to_owned(),
                        uuid,
                        old,
                        new,
                    });
                    Ok(())
                })?;
                Ok(MonitorEvent {
                    kind: UpdateKind::Update,
                    changes,
                })
            }
            MonitorMsg::Closed(error) => Err(error),
        }
    }
}

type Change = (Option<Row>, Option<Row>);

fn apply_update(rows: &mut BTreeMap<Uuid, Row>, uuid: Uuid, update: &Json) -> Result<Change> {
    Ok(match update.get("new") {
        // RFC 7047 §4.1.6: "new" carries every monitored column, so it replaces the row.
        Some(new) => {
            let new = Row::from_json(new)?;
            (rows.insert(uuid, new.clone()), Some(new))
        }
        None => (rows.remove(&uuid), None),
    })
}

fn apply_update2(
    schema: &Schema,
    table: &str,
    rows: &mut BTreeMap<Uuid, Row>,
    uuid: Uuid,
    update: &Json,
) -> Result<Change> {
    let obj = update
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| malformed(table, uuid, update))?;
    let (kind, body) = obj
        .iter()
        .next()
        .ok_or_else(|| malformed(table, uuid, update))?;
    match kind.as_str() {
        "initial" | "insert" => {
            let new = Row::from_json(body)?;
            Ok((rows.insert(uuid, new.clone()), Some(new)))
        }
        "delete" => Ok((rows.remove(&uuid), None)),
        "modify" => {
            let Entry::Occupied(mut entry) = rows.entry(uuid) else {
                return Err(Error::Protocol(format!(
                    "update2 modifies unknown {table} row {uuid}"
                )));
            };
            let old = entry.get().clone();
            let diff = Row::from_json(body)?;
            let row = entry.get_mut();
            for (column, change) in diff {
                let ty = schema.column(table, &column)?;
                let merged = match row.remove(&column) {
                    Some(current) if !ty.is_scalar() => apply_diff(&current, &change, ty.is_map())?,
                    _ => change,
                };
                row.insert(column, merged);
            }
            Ok((Some(old), Some(entry.get().clone())))
        }
        _ => Err(malformed(table, uuid, update)),
    }
}

/// ovsdb-server(7) §4.1.14: a set diff lists elements to toggle; a map diff lists pairs whose
/// key is new (insert), whose value is unchanged (delete), or whose value differs (replace).
fn apply_diff(current: &Value, diff: &Value, is_map: bool) -> Result<Value> {
    if is_map {
        let mut pairs = current.pairs()?.to_vec();
        for (k, v) in diff.pairs()? {
            match pairs.iter().position(|(ck, _)| ck == k) {
                Some(i) if pairs[i].1 == *v => {
                    pairs.remove(i);
                }
                Some(i) => pairs[i].1 = v.clone(),
                None => pairs.push((k.clone(), v.clone())),
            }
        }
        Ok(Value::Map(pairs))
    } else {
        let mut atoms: Vec<Atom> = current.atoms()?.to_vec();
        for a in diff.atoms()? {
            match atoms.iter().position(|c| c == a) {
                Some(i) => {
                    atoms.remove(i);
                }
                None => atoms.push(a.clone()),
            }
        }
        Ok(Value::Set(atoms))
    }
}

fn for_each_row(updates: &Json, mut f: impl FnMut(&str, Uuid, &Json) -> Result<()>) -> Result<()> {
    let tables = updates
        .as_object()
        .ok_or_else(|| Error::Protocol(format!("table-updates is not an object: {updates}")))?;
    for (table, rows) in tables {
        let rows = rows
            .as_object()
            .ok_or_else(|| Error::Protocol(format!("table-update of {table} is not an object")))?;
        for (uuid, update) in rows {
            let uuid = Uuid::try_parse(uuid).map_err(|_| Error::InvalidUuid(uuid.clone()))?;
            f(table, uuid, update)?;
        }
    }
    Ok(())
}

fn malformed(table: &str, uuid: Uuid, update: &Json) -> Error {
    Error::Protocol(format!(
        "malformed row update for {table} row {uuid}: {update}"
    ))
}

impl Stream for MonitorStream {
    type Item = Result<MonitorEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match ready!(this.rx.poll_recv(cx)) {
            None => Poll::Ready(None),
            Some(msg) => Poll::Ready(Some(this.apply(msg))),
        }
    }
}

impl Drop for MonitorStream {
    fn drop(&mut self) {
        if !self.monitor_id.is_empty() {
            cancel_monitor(&self.tx, std::mem::take(&mut self.monitor_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ops::Condition;

    fn schema() -> Arc<Schema> {
        Arc::new(
            Schema::from_json(&json!({"name": "db", "tables": {"T": {"columns": {
                "name": {"type": "string"},
                "ofport": {"type": {"key": "integer", "min": 0, "max": 1}},
                "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                "cfg": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
            }}}}))
            .unwrap(),
        )
    }

    const U1: &str = "00000000-0000-0000-0000-000000000001";
    const U2: &str = "00000000-0000-0000-0000-000000000002";

    fn stream() -> (
        MonitorStream,
        mpsc::UnboundedSender<MonitorMsg>,
        mpsc::Receiver<Command>,
    ) {
        let (utx, urx) = mpsc::unbounded_channel();
        let (ctx, crx) = mpsc::channel(4);
        (MonitorStream::new(urx, schema(), ctx, "m".into()), utx, crx)
    }

    #[tokio::test]
    async fn update2_diffs_are_applied_to_whole_rows() {
        let (mut s, tx, mut cmds) = stream();
        let initial = json!({"T": {U1: {"initial": {"name": "a", "ofport": ["set", []], "tags": "x",
            "cfg": ["map", [["k", "v"], ["gone", "1"]]]}}}});
        tx.send(MonitorMsg::Initial {
            format: UpdateFormat::Update2,
            updates: initial,
            resync: false,
        })
        .unwrap();
        let ev = s.next_event().await.unwrap().unwrap();
        assert_eq!(ev.kind, UpdateKind::Initial);
        assert_eq!(ev.changes.len(), 1);
        assert!(ev.changes[0].old.is_none());

        // ofport [] -> 5 is the one-element diff 5; tags {x} -> {y}: toggle x and y;
        // cfg: k changes, gone is deleted, new is added; name is scalar: replaced.
        let modify = json!({"T": {U1: {"modify": {"ofport": 5, "tags": ["set", ["x", "y"]],
            "cfg": ["map", [["k", "w"], ["gone", "1"], ["new", "n"]]], "name": "b"}},
            U2: {"insert": {"name": "c"}}}});
        tx.send(MonitorMsg::Update {
            format: UpdateFormat::Update2,
            updates: modify,
        })
        .unwrap();
        let ev = s.next_event().await.unwrap().unwrap();
        assert_eq!(ev.kind, UpdateKind::Update);
        let new = ev.changes[0].new.as_ref().unwrap();
        assert_eq!(new.get("ofport").unwrap().optional_i64().unwrap(), Some(5));
        assert_eq!(new.get("tags").unwrap().strings().unwrap(), ["y"]);
        let cfg = new.get("cfg").unwrap().string_map().unwrap();
        assert_eq!(
            cfg.into_iter().collect::<Vec<_>>(),
            [("k".into(), "w".into()), ("new".into(), "n".into())]
        );
        assert_eq!(new.get("name").unwrap().as_str().unwrap(), "b");
        assert_eq!(
            ev.changes[0]
                .old
                .as_ref()
                .unwrap()
                .get("name")
                .unwrap()
                .as_str()
                .unwrap(),
            "a"
        );
        assert!(ev.changes[1].old.is_none());

        // ofport 5 -> 6: the diff toggles both.
        let modify = json!({"T": {U1: {"modify": {"ofport": ["set", [5, 6]]}}}});
        tx.send(MonitorMsg::Update {
            format: UpdateFormat::Update2,
            updates: modify,
        })
        .unwrap();
        s.next_event().await.unwrap().unwrap();
        let u1 = Uuid::parse_str(U1).unwrap();
        assert_eq!(
            s.row("T", &u1)
                .unwrap()
                .get("ofport")
                .unwrap()
                .optional_i64()
                .unwrap(),
            Some(6)
        );

        tx.send(MonitorMsg::Update {
            format: UpdateFormat::Update2,
            updates: json!({"T": {U1: {"delete": null}}}),
        })
        .unwrap();
        let ev = s.next_event().await.unwrap().unwrap();
        assert!(ev.changes[0].new.is_none() && ev.changes[0].old.is_some());
        assert_eq!(s.rows("T").count(), 1);

        drop(s);
        assert!(
            matches!(cmds.try_recv(), Ok(Command::MonitorCancel { monitor_id, reply: None }) if monitor_id == "m")
        );
    }

    #[tokio::test]
    async fn resync_reports_changed_and_vanished_rows() {
        let (mut s, tx, _cmds) = stream();
        let snap = json!({"T": {U1: {"new": {"name": "a"}}, U2: {"new": {"name": "b"}}}});
        tx.send(MonitorMsg::Initial {
            format: UpdateFormat::Update,
            updates: snap,
            resync: false,
        })
        .unwrap();
        s.next_event().await.unwrap().unwrap();
        let snap = json!({"T": {U1: {"initial": {"name": "a2"}}}});
        tx.send(MonitorMsg::Initial {
            format: UpdateFormat::Update2,
            updates: snap,
            resync: true,
        })
        .unwrap();
        let ev = s.next_event().await.unwrap().unwrap();
        assert_eq!(ev.kind, UpdateKind::Resync);
        assert_eq!(ev.changes.len(), 2);
        assert_eq!(
            ev.changes[0]
                .old
                .as_ref()
                .unwrap()
                .get("name")
                .unwrap()
                .as_str()
                .unwrap(),
            "a"
        );
        assert_eq!(ev.changes[1].uuid.to_string(), U2);
        assert!(ev.changes[1].new.is_none());
        assert_eq!(s.rows("T").count(), 1);
    }

    #[tokio::test]
    async fn plain_update_format_and_errors() {
        let (mut s, tx, _cmds) = stream();
        tx.send(MonitorMsg::Initial {
            format: UpdateFormat::Update,
            updates: json!({}),
            resync: false,
        })
        .unwrap();
        assert!(s.next_event().await.unwrap().unwrap().changes.is_empty());
        let upd = json!({"T": {U1: {"new": {"name": "a", "ofport": 3}}}});
        tx.send(MonitorMsg::Update {
            format: UpdateFormat::Update,
            updates: upd,
        })
        .unwrap();
        let ev = s.next_event().await.unwrap().unwrap();
        assert_eq!(
            ev.changes[0]
                .new
                .as_ref()
                .unwrap()
                .get("ofport")
                .unwrap()
                .as_i64()
                .unwrap(),
            3
        );
        let upd = json!({"T": {U1: {"old": {"name": "a", "ofport": 3}}}});
        tx.send(MonitorMsg::Update {
            format: UpdateFormat::Update,
            updates: upd,
        })
        .unwrap();
        assert!(
            s.next_event().await.unwrap().unwrap().changes[0]
                .new
                .is_none()
        );

        let bad = json!({"T": {U2: {"modify": {"name": "x"}}}});
        tx.send(MonitorMsg::Update {
            format: UpdateFormat::Update2,
            updates: bad,
        })
        .unwrap();
        assert!(matches!(
            s.next_event().await,
            Some(Err(Error::Protocol(_)))
        ));
        tx.send(MonitorMsg::Closed(Error::ConnectionClosed))
            .unwrap();
        drop(tx);
        assert!(matches!(
            s.next_event().await,
            Some(Err(Error::ConnectionClosed))
        ));
        assert!(s.next_event().await.is_none());
    }

    #[test]
    fn request_json() {
        let r = MonitorRequest::new("Interface")
            .columns(["name", "ofport"])
            .conditions(vec![Condition::eq("name", "a")]);
        assert_eq!(
            r.to_json(true),
            json!({"columns": ["name", "ofport"], "where": [["name", "==", "a"]]})
        );
        assert_eq!(r.to_json(false), json!({"columns": ["name", "ofport"]}));
    }
}
