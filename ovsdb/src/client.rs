//! The connection task and the cheap, cloneable [`Client`] handle.
//!
//! One spawned task owns the socket, the [`Framer`] and the [`Session`]; handles send it
//! commands over a bounded channel and await a oneshot reply. A client made by
//! [`Client::connect`] reconnects with exponential backoff after the server goes away,
//! re-establishes every monitor (whose stream then sees a
//! [`UpdateKind::Resync`](crate::monitor::UpdateKind::Resync) snapshot),
//! and lets requests issued during the outage wait a bounded time.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::{Value as Json, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until},
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    command::{Command, MonitorMsg, Registration, UpdateFormat},
    error::{Error, Result},
    framing::{DEFAULT_MAX_MESSAGE_LEN, Framer},
    monitor::MonitorStream,
    ops::{OpResult, Operation, check_results, error_object},
    request::MonitorRequest,
    rpc::Message,
    schema::Schema,
    session::{Event, ProbeConfig, RequestId, Session},
};

/// Where the server listens, in OVS syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `unix:PATH`
    Unix(std::path::PathBuf),
    /// `tcp:HOST:PORT` (port defaults to 6640; IPv6 hosts in brackets).
    Tcp(String),
}

impl std::str::FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidAddress(s.to_owned());
        if let Some(path) = s.strip_prefix("unix:") {
            return if path.is_empty() {
                Err(bad())
            } else {
                Ok(Self::Unix(path.into()))
            };
        }
        let rest = s.strip_prefix("tcp:").ok_or_else(bad)?;
        let has_port = match rest.rfind(']') {
            Some(close) => rest[close..].contains(':'),
            None => rest.contains(':'),
        };
        if rest.is_empty() || rest.starts_with(':') {
            return Err(bad());
        }
        Ok(Self::Tcp(if has_port {
            rest.to_owned()
        } else {
            format!("{rest}:6640")
        }))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(hp) => write!(f, "tcp:{hp}"),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl Address {
    async fn open(&self) -> Result<Box<dyn Io>> {
        let io: std::io::Result<Box<dyn Io>> = match self {
            Self::Unix(p) => tokio::net::UnixStream::connect(p)
                .await
                .map(|s| Box::new(s) as _),
            Self::Tcp(hp) => tokio::net::TcpStream::connect(hp.as_str()).await.map(|s| {
                // Requests are small and latency-bound.
                let _ = s.set_nodelay(true);
                Box::new(s) as _
            }),
        };
        io.map_err(|reason| Error::Connect {
            addr: self.to_string(),
            reason,
        })
    }
}

/// Bound on one connection attempt, so a black-holed TCP peer cannot stall the task.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnect policy of [`Client::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectConfig {
    /// First delay after a failed attempt.
    pub min_backoff: Duration,
    /// Delays double up to this.
    pub max_backoff: Duration,
    /// How long a request issued while disconnected waits for the connection to come back
    /// before failing with [`Error::Disconnected`].
    pub request_wait: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(4),
            request_wait: Duration::from_secs(10),
        }
    }
}

/// Connection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Echo probing of an idle server.
    pub probe: ProbeConfig,
    /// Largest accepted JSON message.
    pub max_message_len: usize,
    /// `None`: the client dies with its first connection.
    pub reconnect: Option<ReconnectConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            probe: ProbeConfig::default(),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            reconnect: Some(ReconnectConfig::default()),
        }
    }
}

/// A cheap, cloneable handle to one OVSDB connection task.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    tickets: Arc<AtomicU64>,
    schemas: Arc<Mutex<HashMap<String, Arc<Schema>>>>,
    reconnects: Arc<AtomicU64>,
}

/// Wrap an already-open stream: the returned [`Connection`] must be spawned, and the client
/// fails with [`Error::ConnectionClosed`] once the stream ends (no reconnect).
pub fn new_connection<S>(io: S, config: ClientConfig) -> (Connection, Client)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let config = ClientConfig {
        reconnect: None,
        ..config
    };
    let (client, rx) = Client::channel();
    let conn = Connection::new(
        rx,
        config,
        Target::Stream(Some(Box::new(io))),
        client.reconnects.clone(),
    );
    (conn, client)
}

impl Client {
    fn channel() -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        (
            Self {
                tx,
                tickets: Arc::default(),
                schemas: Arc::default(),
                reconnects: Arc::default(),
            },
            rx,
        )
    }

    /// How many times the connection was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Connect to `unix:PATH` or `tcp:HOST:PORT` and spawn the connection task on the current
    /// tokio runtime. The first connection attempt must succeed; later losses are repaired by
    /// reconnecting.
    pub async fn connect(addr: &str) -> Result<Self> {
        Self::connect_with(addr, ClientConfig::default()).await
    }

    /// [`connect`](Self::connect) with explicit settings.
    pub async fn connect_with(addr: &str, config: ClientConfig) -> Result<Self> {
        let address: Address = addr.parse()?;
        let io = address.open().await?;
        let (client, rx) = Self::channel();
        let target = match config.reconnect {
            Some(policy) => Target::Reconnect {
                address,
                policy,
                first: Some(io),
            },
            None => Target::Stream(Some(io)),
        };
        let conn = Connection::new(rx, config, target, client.reconnects.clone());
        tokio::spawn(conn.run().instrument(info_span!("ovsdb", addr = %addr)));
        Ok(client)
    }

    /// Send any method and return its raw `result`.
    ///
    /// Dropping the returned future before the reply arrives sends `cancel` for it (RFC 7047
    /// §4.1.4), so a timed-out blocking `wait` does not linger on the server.
    pub async fn call(&self, method: &str, params: Vec<Json>) -> Result<Json> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Call {
            method: method.to_owned(),
            params,
            ticket,
            reply,
        };
        self.tx
            .send(cmd)
            .await
            .map_err(|_| Error::ConnectionClosed)?;
        let mut guard = CancelOnDrop {
            tx: &self.tx,
            ticket: Some(ticket),
        };
        let result = rx.await;
        guard.ticket = None;
        result.map_err(|_| Error::ConnectionClosed)?
    }

    /// `echo` round trip.
    pub async fn echo(&self) -> Result<()> {
        self.call("echo", vec![]).await.map(drop)
    }

    /// `list_dbs`: the database names.
    pub async fn list_dbs(&self) -> Result<Vec<String>> {
        let result = self.call("list_dbs", vec![]).await?;
        serde_json::from_value(result.clone()).map_err(|_| {
            Error::Protocol(format!(
                "list_dbs result is not an array of strings: {result}"
            ))
        })
    }

    /// `get_schema`, cached per database for the life of the client.
    pub async fn get_schema(&self, db: &str) -> Result<Arc<Schema>> {
        if let Some(s) = self
            .schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(db)
        {
            return Ok(s.clone());
        }
        let json = self.call("get_schema", vec![json!(db)]).await?;
        let schema = Arc::new(Schema::from_json(&json)?);
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(db.to_owned(), schema.clone());
        Ok(schema)
    }

    /// Start a `transact` on `db`; add operations and `.execute().await`.
    pub fn transact(&self, db: impl Into<String>) -> Transaction<'_> {
        Transaction {
            client: self,
            db: db.into(),
            ops: Vec::new(),
        }
    }

    /// Monitor `requests` on `db`: `monitor_cond` (update2), falling back to `monitor` (update)
    /// on servers without it. The stream starts with an [`UpdateKind::Initial`] snapshot.
    ///
    /// [`UpdateKind::Initial`]: crate::monitor::UpdateKind::Initial
    pub async fn monitor(&self, db: &str, requests: Vec<MonitorRequest>) -> Result<MonitorStream> {
        static MONITOR_IDS: AtomicU64 = AtomicU64::new(1);
        let schema = self.get_schema(db).await?;
        for r in &requests {
            if !schema.tables.contains_key(&r.table) {
                return Err(Error::Schema {
                    db: db.to_owned(),
                    what: format!("table {}", r.table),
                });
            }
        }
        let monitor_id = format!("ovswire-{}", MONITOR_IDS.fetch_add(1, Ordering::Relaxed));
        let (updates, rx) = mpsc::unbounded_channel();
        let registration = Registration {
            db: db.to_owned(),
            monitor_id: monitor_id.clone(),
            requests,
            updates,
            plain: false,
        };
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Monitor {
                registration,
                reply,
            })
            .await
            .map_err(|_| Error::ConnectionClosed)?;
        done.await.map_err(|_| Error::ConnectionClosed)??;
        Ok(MonitorStream::new(rx, schema, self.tx.clone(), monitor_id))
    }
}

struct CancelOnDrop<'a> {
    tx: &'a mpsc::Sender<Command>,
    ticket: Option<u64>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            let _ = self.tx.try_send(Command::Cancel { ticket });
        }
    }
}

/// A `transact` request being built.
#[derive(Debug)]
#[must_use = "a transaction does nothing until .execute().await"]
pub struct Transaction<'a> {
    client: &'a Client,
    db: String,
    ops: Vec<Operation>,
}

impl Transaction<'_> {
    /// Append one operation.
    pub fn op(mut self, op: Operation) -> Self {
        self.ops.push(op);
        self
    }

    /// Append operations.
    pub fn ops(mut self, ops: impl IntoIterator<Item = Operation>) -> Self {
        self.ops.extend(ops);
        self
    }

    /// Send it; one [`OpResult`] per operation, or the first error (an operation's or the
    /// commit's) with the OVSDB error string and details.
    pub async fn execute(self) -> Result<Vec<OpResult>> {
        let mut params = Vec::with_capacity(self.ops.len() + 1);
        params.push(json!(self.db));
        params.extend(self.ops.iter().map(Operation::to_json));
        let result = self.client.call("transact", params).await?;
        check_results(&self.ops, &result)
    }
}

enum Target {
    Stream(Option<Box<dyn Io>>),
    Reconnect {
        address: Address,
        policy: ReconnectConfig,
        first: Option<Box<dyn Io>>,
    },
}

enum Waiter {
    Call {
        method: String,
        reply: oneshot::Sender<Result<Json>>,
        ticket: u64,
    },
    Monitor {
        monitor_id: String,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    MonitorCancel(Option<oneshot::Sender<Result<()>>>),
}

/// What waits in the backlog while disconnected.
enum Queued {
    Call {
        method: String,
        params: Vec<Json>,
        ticket: u64,
        reply: oneshot::Sender<Result<Json>>,
    },
    /// The registration itself is in `Connection::monitors` already.
    Monitor {
        monitor_id: String,
        reply: oneshot::Sender<Result<()>>,
    },
}

impl Queued {
    fn fail(self, error: impl Fn() -> Error) {
        match self {
            Self::Call { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
            Self::Monitor { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

/// The task that owns the socket. Spawn [`run`](Self::run); it ends when every [`Client`] is
/// dropped or the connection is gone for good.
pub struct Connection {
    rx: mpsc::Receiver<Command>,
    config: ClientConfig,
    target: Target,
    monitors: HashMap<String, Registration>,
    /// Calls received while disconnected, with the instant they give up.
    backlog: VecDeque<(Queued, Instant)>,
    /// Counts reconnections, for the handles.
    reconnects: Arc<AtomicU64>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("monitors", &self.monitors.len())
            .field("backlog", &self.backlog.len())
            .finish_non_exhaustive()
    }
}

/// Why one connection ended.
enum End {
    /// Every handle is gone.
    Shutdown,
    /// The peer or the stream failed.
    Lost(Error),
}

struct Live {
    session: Session,
    waiters: HashMap<RequestId, Waiter>,
    tickets: HashMap<u64, RequestId>,
}

impl Connection {
    fn new(
        rx: mpsc::Receiver<Command>,
        config: ClientConfig,
        target: Target,
        reconnects: Arc<AtomicU64>,
    ) -> Self {
        Self {
            rx,
            config,
            target,
            monitors: HashMap::new(),
            backlog: VecDeque::new(),
            reconnects,
        }
    }

    /// Drive the connection (and its reconnects) until shutdown.
    pub async fn run(mut self) {
        let mut backoff = None;
        loop {
            let io = match &mut self.target {
                Target::Stream(io) => io.take(),
                Target::Reconnect {
                    address,
                    policy,
                    first,
                } => {
                    let first = first.take();
                    let (address, policy) = (address.clone(), *policy);
                    match first {
                        Some(io) => Some(io),
                        None => match self.reconnect(&address, policy, &mut backoff).await {
                            Some(io) => Some(io),
                            None => return,
                        },
                    }
                }
            };
            let Some(io) = io else {
                self.fail_everything();
                return;
            };
            match self.serve(io).await {
                End::Shutdown => return,
                End::Lost(error) => {
                    warn!(%error, "OVSDB connection lost");
                    if !matches!(self.target, Target::Reconnect { .. }) {
                        self.fail_everything();
                        return;
                    }
                    backoff = None;
                }
            }
        }
    }

    /// Wait out the backoff while queueing commands; `None` when every handle is gone.
    async fn reconnect(
        &mut self,
        address: &Address,
        policy: ReconnectConfig,
        backoff: &mut Option<Duration>,
    ) -> Option<Box<dyn Io>> {
        loop {
            if let Some(delay) = *backoff {
                let wake = Instant::now() + delay;
                loop {
                    self.expire_backlog(policy.request_wait);
                    let expiry = self.backlog.front().map(|(_, at)| *at);
                    tokio::select! {
                        () = sleep_until(wake) => break,
                        () = sleep_until(expiry.unwrap_or(wake)), if expiry.is_some() => {}
                        cmd = self.rx.recv() => match cmd {
                            None => return None,
                            Some(cmd) => self.queue_offline(cmd, policy.request_wait),
                        },
                    }
                }
            }
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, address.open()).await;
            match attempt.unwrap_or_else(|_| {
                Err(Error::Connect {
                    addr: address.to_string(),
                    reason: std::io::ErrorKind::TimedOut.into(),
                })
            }) {
                Ok(io) => {
                    info!(%address, "reconnected to ovsdb-server");
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    return Some(io);
                }
                Err(error) => {
                    let next =
                        backoff.map_or(policy.min_backoff, |d| (d * 2).min(policy.max_backoff));
                    debug!(%error, retry_in = ?next, "reconnect failed");
                    *backoff = Some(next);
                }
            }
        }
    }

    fn queue_offline(&mut self, cmd: Command, wait: Duration) {
        let deadline = Instant::now() + wait;
        match cmd {
            Command::Call {
                method,
                params,
                ticket,
                reply,
            } => {
                self.backlog.push_back((
                    Queued::Call {
                        method,
                        params,
                        ticket,
                        reply,
                    },
                    deadline,
                ));
            }
            Command::Cancel { ticket } => {
                self.backlog
                    .retain(|(q, _)| !matches!(q, Queued::Call { ticket: t, .. } if *t == ticket));
            }
            Command::Monitor {
                registration,
                reply,
            } => {
                let monitor_id = registration.monitor_id.clone();
                self.monitors.insert(monitor_id.clone(), registration);
                self.backlog
                    .push_back((Queued::Monitor { monitor_id, reply }, deadline));
            }
            Command::MonitorCancel { monitor_id, reply } => {
                // The server forgets monitors with the connection; nothing to send.
                self.monitors.remove(&monitor_id);
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    fn expire_backlog(&mut self, waited: Duration) {
        let now = Instant::now();
        while self.backlog.front().is_some_and(|(_, at)| *at <= now) {
            let Some((queued, _)) = self.backlog.pop_front() else {
                break;
            };
            if let Queued::Monitor { monitor_id, .. } = &queued {
                self.monitors.remove(monitor_id);
            }
            queued.fail(|| Error::Disconnected(waited));
        }
    }

    fn fail_everything(&mut self) {
        for (queued, _) in self.backlog.drain(..) {
            queued.fail(|| Error::ConnectionClosed);
        }
        for (_, reg) in self.monitors.drain() {
            let _ = reg
                .updates
                .send(MonitorMsg::Closed(Error::ConnectionClosed));
        }
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Call { reply, .. } => {
                    let _ = reply.send(Err(Error::ConnectionClosed));
                }
                Command::Monitor { reply, .. } => {
                    let _ = reply.send(Err(Error::ConnectionClosed));
                }
                Command::Cancel { .. } | Command::MonitorCancel { .. } => {}
            }
        }
    }

    async fn serve(&mut self, io: Box<dyn Io>) -> End {
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut framer = Framer::new(self.config.max_message_len);
        let mut live = Live {
            session: Session::new(self.config.probe, Instant::now().into_std()),
            waiters: HashMap::new(),
            tickets: HashMap::new(),
        };
        // Re-establish monitors first so their snapshots precede anything newer; a monitor
        // first requested while disconnected gets its caller's reply attached.
        let mut first_replies = HashMap::new();
        let mut calls = Vec::new();
        for (queued, _) in std::mem::take(&mut self.backlog) {
            match queued {
                Queued::Monitor { monitor_id, reply } => {
                    first_replies.insert(monitor_id, reply);
                }
                Queued::Call {
                    method,
                    params,
                    ticket,
                    reply,
                } => {
                    calls.push(Command::Call {
                        method,
                        params,
                        ticket,
                        reply,
                    });
                }
            }
        }
        let mut ids: Vec<_> = self.monitors.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let reply = first_replies.remove(&id);
            self.send_monitor(&mut live, &id, reply);
        }
        for cmd in calls {
            self.handle_command(&mut live, cmd);
        }

        let mut out: Vec<u8> = Vec::new();
        let mut written = 0;
        let mut rbuf = vec![0u8; 64 * 1024];
        let end = loop {
            while let Some(msg) = live.session.poll_transmit() {
                // Serializing a serde_json::Value into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut out, &msg.to_json());
            }
            let probe = live.session.poll_timeout().map(Instant::from_std);
            tokio::select! {
                read = rd.read(&mut rbuf) => {
                    let n = match read {
                        Ok(n) => n,
                        Err(e) => break End::Lost(Error::Io(e)),
                    };
                    if n == 0 {
                        break End::Lost(eof_error(&framer));
                    }
                    framer.extend(&rbuf[..n]);
                    if let Err(e) = self.drain_input(&mut live, &mut framer) {
                        break End::Lost(e);
                    }
                }
                wrote = wr.write(&out[written..]), if written < out.len() => match wrote {
                    Ok(0) => break End::Lost(Error::ConnectionClosed),
                    Ok(n) => {
                        written += n;
                        if written == out.len() {
                            out.clear();
                            written = 0;
                        }
                    }
                    Err(e) => break End::Lost(Error::Io(e)),
                },
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle_command(&mut live, cmd),
                    None => break End::Shutdown,
                },
                () = sleep_until(probe.unwrap_or_else(Instant::now)), if probe.is_some() => {
                    if let Err(e) = live.session.handle_timeout(Instant::now().into_std()) {
                        break End::Lost(e);
                    }
                }
            }
        };
        if matches!(end, End::Shutdown) {
            let _ = wr.write_all(&out[written..]).await;
            let _ = wr.shutdown().await;
        }
        let reason = match &end {
            End::Shutdown => "client shut down".to_owned(),
            End::Lost(e) => e.to_string(),
        };
        for (_, waiter) in live.waiters.drain() {
            match waiter {
                Waiter::Call { method, reply, .. } => {
                    let _ = reply.send(Err(Error::ConnectionLost {
                        method,
                        reason: reason.clone(),
                    }));
                }
                Waiter::Monitor {
                    reply: Some(reply),
                    monitor_id,
                } => {
                    // A first establishment interrupted: retried after reconnect.
                    if self.monitors.contains_key(&monitor_id) {
                        let wait = match &self.target {
                            Target::Reconnect { policy, .. } => policy.request_wait,
                            Target::Stream(_) => Duration::ZERO,
                        };
                        self.backlog.push_back((
                            Queued::Monitor { monitor_id, reply },
                            Instant::now() + wait,
                        ));
                    }
                }
                Waiter::MonitorCancel(Some(reply)) => {
                    // The monitor died with the connection, which is what was asked for.
                    let _ = reply.send(Ok(()));
                }
                Waiter::Monitor { reply: None, .. } | Waiter::MonitorCancel(None) => {}
            }
        }
        end
    }

    fn drain_input(&mut self, live: &mut Live, framer: &mut Framer) -> Result<()> {
        while let Some(value) = framer.next_value()? {
            live.session
                .handle_message(Message::from_json(value)?, Instant::now().into_std())?;
            while let Some(event) = live.session.poll_event() {
                self.handle_event(live, event);
            }
        }
        Ok(())
    }

    fn handle_command(&mut self, live: &mut Live, cmd: Command) {
        match cmd {
            Command::Call {
                method,
                params,
                ticket,
                reply,
            } => {
                let id = live.session.send_request(&method, params);
                live.tickets.insert(ticket, id);
                live.waiters.insert(
                    id,
                    Waiter::Call {
                        method,
                        reply,
                        ticket,
                    },
                );
            }
            Command::Cancel { ticket } => {
                if let Some(id) = live.tickets.remove(&ticket) {
                    debug!(request = id, "cancelling abandoned request");
                    live.session.cancel(id);
                }
            }
            Command::Monitor {
                registration,
                reply,
            } => {
                let id = registration.monitor_id.clone();
                self.monitors.insert(id.clone(), registration);
                self.send_monitor(live, &id, Some(reply));
            }
            Command::MonitorCancel { monitor_id, reply } => {
                if self.monitors.remove(&monitor_id).is_some() {
                    let id = live
                        .session
                        .send_request("monitor_cancel", vec![json!(monitor_id)]);
                    live.waiters.insert(id, Waiter::MonitorCancel(reply));
                } else if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    fn send_monitor(
        &mut self,
        live: &mut Live,
        monitor_id: &str,
        reply: Option<oneshot::Sender<Result<()>>>,
    ) {
        let Some(reg) = self.monitors.get(monitor_id) else {
            return;
        };
        let (method, params) = reg.request();
        let id = live.session.send_request(method, params);
        live.waiters.insert(
            id,
            Waiter::Monitor {
                monitor_id: monitor_id.to_owned(),
                reply,
            },
        );
    }

    fn handle_event(&mut self, live: &mut Live, event: Event) {
        match event {
            Event::Reply { id, method, result } => match live.waiters.remove(&id) {
                Some(Waiter::Call { reply, ticket, .. }) => {
                    live.tickets.remove(&ticket);
                    let _ = reply.send(result.map_err(|e| rpc_error(&method, &e)));
                }
                Some(Waiter::Monitor { monitor_id, reply }) => {
                    self.monitor_reply(live, &method, monitor_id, reply, result)
                }
                Some(Waiter::MonitorCancel(Some(reply))) => {
                    let _ = reply.send(result.map(drop).map_err(|e| rpc_error(&method, &e)));
                }
                Some(Waiter::MonitorCancel(None)) | None => {}
            },
            Event::Notification { method, params } => {
                let format = match method.as_str() {
                    "update" => UpdateFormat::Update,
                    "update2" => UpdateFormat::Update2,
                    _ => {
                        debug!(%method, "ignoring notification");
                        return;
                    }
                };
                let mut params = params.into_iter();
                let (Some(id), Some(updates)) = (params.next(), params.next()) else {
                    warn!(%method, "notification without monitor id and updates");
                    return;
                };
                let Some(reg) = id.as_str().and_then(|id| self.monitors.get(id)) else {
                    debug!(monitor = %id, "update for a cancelled monitor");
                    return;
                };
                if reg
                    .updates
                    .send(MonitorMsg::Update { format, updates })
                    .is_err()
                {
                    let id = reg.monitor_id.clone();
                    self.handle_command(
                        live,
                        Command::MonitorCancel {
                            monitor_id: id,
                            reply: None,
                        },
                    );
                }
            }
        }
    }

    fn monitor_reply(
        &mut self,
        live: &mut Live,
        method: &str,
        monitor_id: String,
        reply: Option<oneshot::Sender<Result<()>>>,
        result: std::result::Result<Json, Json>,
    ) {
        let Some(reg) = self.monitors.get_mut(&monitor_id) else {
            return;
        };
        match result {
            Ok(initial) => {
                let format = if reg.plain {
                    UpdateFormat::Update
                } else {
                    UpdateFormat::Update2
                };
                let resync = reply.is_none();
                let _ = reg.updates.send(MonitorMsg::Initial {
                    format,
                    updates: initial,
                    resync,
                });
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(error) => {
                let error = rpc_error(method, &error);
                if matches!(error, Error::UnsupportedMethod { .. }) && !reg.plain {
                    if reg.requests.iter().any(|r| r.conditions.is_some()) {
                        info!("server lacks monitor_cond; conditional monitors cannot fall back");
                    } else {
                        info!("server lacks monitor_cond; falling back to monitor");
                        reg.plain = true;
                        self.send_monitor(live, &monitor_id, reply);
                        return;
                    }
                }
                warn!(%error, monitor = %monitor_id, "monitor request failed");
                if let Some(reg) = self.monitors.remove(&monitor_id) {
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(Err(error));
                        }
                        None => {
                            let _ = reg.updates.send(MonitorMsg::Closed(error));
                        }
                    }
                }
            }
        }
    }
}

/// Why a stream that just ended is unusable.
fn eof_error(framer: &Framer) -> Error {
    if framer.has_partial() {
        let reason = "connection closed in the middle of a message".to_owned();
        Error::Framing {
            offset: framer.offset(),
            reason,
        }
    } else {
        Error::ConnectionClosed
    }
}

/// Turn a JSON-RPC `error` into an [`Error`].
fn rpc_error(method: &str, error: &Json) -> Error {
    let (text, details) = match error {
        Json::String(s) => (s.clone(), None),
        other => error_object(other).unwrap_or_else(|| (other.to_string(), None)),
    };
    if text == "unknown method" {
        return Error::UnsupportedMethod {
            method: method.to_owned(),
        };
    }
    Error::Rpc {
        method: method.to_owned(),
        error: text,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_ovs() {
        assert_eq!(
            "unix:/run/db.sock".parse::<Address>().unwrap(),
            Address::Unix("/run/db.sock".into())
        );
        assert_eq!(
            "tcp:127.0.0.1:6641".parse::<Address>().unwrap(),
            Address::Tcp("127.0.0.1:6641".into())
        );
        assert_eq!(
            "tcp:127.0.0.1".parse::<Address>().unwrap(),
            Address::Tcp("127.0.0.1:6640".into())
        );
        assert_eq!(
            "tcp:[::1]:1".parse::<Address>().unwrap(),
            Address::Tcp("[::1]:1".into())
        );
        assert_eq!(
            "tcp:[::1]".parse::<Address>().unwrap(),
            Address::Tcp("[::1]:6640".into())
        );
        for bad in [
            "",
            "unix:",
            "tcp:",
            "ssl:1.2.3.4:6640",
            "/run/db.sock",
            "tcp::6640",
        ] {
            assert!(
                matches!(bad.parse::<Address>(), Err(Error::InvalidAddress(_))),
                "{bad}"
            );
        }
        assert_eq!("unix:/x".parse::<Address>().unwrap().to_string(), "unix:/x");
    }

    #[test]
    fn rpc_errors_name_method_and_details() {
        assert!(matches!(
            rpc_error("monitor_cond", &json!("unknown method")),
            Error::UnsupportedMethod { .. }
        ));
        assert!(matches!(
            rpc_error("monitor_cond", &json!({"error": "unknown method"})),
            Error::UnsupportedMethod { .. }
        ));
        let e = rpc_error(
            "get_schema",
            &json!({"error": "unknown database", "details": "no database named x"}),
        );
        assert_eq!(
            e.to_string(),
            "OVSDB server rejected get_schema: unknown database: no database named x"
        );
    }
}
