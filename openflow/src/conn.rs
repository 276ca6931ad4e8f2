//! The async connection (feature `tokio`): one spawned task owns the socket and the
//! [`Session`]; callers hold a cheap `Clone` [`Handle`]; asynchronous messages arrive on
//! [`Events`].
//!
//! ```no_run
//! # async fn demo() -> ovswire_openflow::Result<()> {
//! use ovswire_openflow::conn;
//! use ovswire_openflow::{Action, FlowMod, Message, OxmField};
//!
//! let (handle, mut events) = conn::connect("/run/openvswitch/ovsbr0.mgmt").await?;
//! let flows = (0..1000u32)
//!     .map(|i| {
//!         let flow = FlowMod::add(0)
//!             .priority(100)
//!             .match_field(OxmField::InPort(32768 + 2 * i))
//!             .apply_actions(vec![Action::output(32769 + 2 * i)]);
//!         Message::FlowMod(flow)
//!     })
//!     .collect();
//! handle.bundle(flows).await?; // all or nothing
//! while let Some(frame) = events.recv().await {
//!     println!("{:?}", frame.message); // PORT_STATUS, FLOW_REMOVED, ...
//! }
//! # Ok(()) }
//! ```
//!
//! # Reconnecting
//!
//! A connection never reconnects by itself: when the switch goes away (ovs-vswitchd
//! restart, echo timeout, socket error) every pending and later request fails with
//! [`Error::ConnectionClosed`] and [`Events::recv`] returns `None`. Call [`connect`] again
//! (with a backoff) for a new `Handle`, then replay desired state — after an ovs-vswitchd
//! restart the flow tables are empty, and bundles do not survive the old connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead};

use crate::msg::{
    AggregateStats, BundleAdd, BundleControl, BundleControlType, Desc, FeaturesReply, FlowStats,
    FlowStatsRequest, Frame, Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
    Port, PortMod, PortStats, TableStats,
};
use crate::session::{self, CloseReason, Event, Expect, Outcome, Session};
use crate::types::bundle_flags::OFPBF_ATOMIC;
use crate::{Error, FlowMod, Result};

/// Where the switch listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchAddr {
    /// A unix socket, e.g. a bridge's management socket `<rundir>/<bridge>.mgmt`.
    Unix(PathBuf),
    /// A TCP address (`ovs-vsctl set-controller` / `ptcp:` listeners).
    Tcp(std::net::SocketAddr),
}

impl From<&Path> for SwitchAddr {
    fn from(p: &Path) -> Self {
        Self::Unix(p.to_owned())
    }
}

impl From<PathBuf> for SwitchAddr {
    fn from(p: PathBuf) -> Self {
        Self::Unix(p)
    }
}

impl From<&str> for SwitchAddr {
    fn from(p: &str) -> Self {
        Self::Unix(p.into())
    }
}

impl From<std::net::SocketAddr> for SwitchAddr {
    fn from(a: std::net::SocketAddr) -> Self {
        Self::Tcp(a)
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Handshake, keepalive and SET_CONFIG settings.
    pub session: session::Config,
    /// Deadline of an ordinary request (barrier, stats, checked flow mods).
    pub request_timeout: Duration,
    /// Deadline of each message of a bundle, counted from when the bundle is sent.
    pub bundle_timeout: Duration,
    /// Capacity of the handle → connection channel (backpressure for callers).
    pub channel_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            session: session::Config::default(),
            request_timeout: Duration::from_secs(10),
            bundle_timeout: Duration::from_secs(60),
            channel_capacity: 256,
        }
    }
}

struct Item {
    message: Message,
    expect: Expect,
    reply: oneshot::Sender<Outcome>,
}

enum Command {
    /// Untracked, fire and forget.
    Send(Message),
    /// Tracked requests, written back to back so no other caller's request lands between them.
    Batch { items: Vec<Item>, timeout: Duration },
}

/// Asynchronous messages from the switch: PORT_STATUS, FLOW_REMOVED, PACKET_IN, and errors
/// for untracked messages. Ends (`None`) when the connection closes. Drain it, or drop it
/// to discard these messages.
#[derive(Debug)]
pub struct Events(mpsc::UnboundedReceiver<Frame>);

impl Events {
    /// The next asynchronous message, or `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Frame> {
        self.0.recv().await
    }

    /// The next asynchronous message if one is already queued.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.0.try_recv().ok()
    }
}

impl futures::Stream for Events {
    type Item = Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        self.0.poll_recv(cx)
    }
}

#[derive(Debug)]
struct Shared {
    features: FeaturesReply,
    next_bundle_id: AtomicU32,
    request_timeout: Duration,
    bundle_timeout: Duration,
}

/// A cheap, cloneable handle to one connection. All methods fail with
/// [`Error::ConnectionClosed`] once the connection is gone.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// Connects to `endpoint` with default [`Options`]: HELLO (OpenFlow 1.3), FEATURES, then
/// SET_CONFIG with a nonzero `miss_send_len` so that OVS sends PORT_STATUS on `.mgmt`.
///
/// Must be called within a tokio runtime; the connection task is spawned on it.
pub async fn connect(endpoint: impl Into<SwitchAddr>) -> Result<(Handle, Events)> {
    connect_with(endpoint, Options::default()).await
}

/// [`connect`] with explicit options.
pub async fn connect_with(
    endpoint: impl Into<SwitchAddr>,
    options: Options,
) -> Result<(Handle, Events)> {
    match endpoint.into() {
        SwitchAddr::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(&path).await?;
            tracing::debug!(path = %path.display(), "openflow socket connected");
            start(stream, options).await
        }
        SwitchAddr::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            tracing::debug!(%addr, "openflow socket connected");
            start(stream, options).await
        }
    }
}

/// Runs the handshake over an already connected byte stream and spawns the connection task.
pub async fn start<IO>(io: IO, options: Options) -> Result<(Handle, Events)>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, rx) = mpsc::channel(options.channel_capacity.max(1));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let session = Session::new(options.session.clone(), Instant::now());
    tokio::spawn(run(io, session, rx, events_tx, ready_tx));
    let features = ready_rx.await.map_err(|_| Error::ConnectionClosed)??;
    tracing::info!(
        datapath_id = format_args!("{:016x}", features.datapath_id),
        "openflow connected"
    );
    let shared = Arc::new(Shared {
        features,
        next_bundle_id: AtomicU32::new(1),
        request_timeout: options.request_timeout,
        bundle_timeout: options.bundle_timeout,
    });
    Ok((Handle { tx, shared }, Events(events_rx)))
}

/// Splits the byte stream into OpenFlow messages by the length in their header, which counts
/// the header itself. A length shorter than the header cannot be skipped over (the stream has
/// lost its framing), so it ends the connection.
struct Messages;

impl Decoder for Messages {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<BytesMut>> {
        let Some(len) = src.get(2..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < crate::msg::HEADER_LEN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the switch sent a message of length {len}, shorter than the {}-byte \
                     OpenFlow header; the stream cannot be read further",
                    crate::msg::HEADER_LEN
                ),
            ));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(len)))
    }
}

/// Whatever ends the connection task, for the log.
enum Exit {
    PeerClosed,
    HandlesDropped,
    Session(CloseReason),
    Io(std::io::Error),
}

async fn run<IO>(
    io: IO,
    mut session: Session,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Frame>,
    ready: oneshot::Sender<Result<FeaturesReply>>,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(io);
    let mut reader = FramedRead::new(rd, Messages);
    let mut waiters: HashMap<u32, oneshot::Sender<Outcome>> = HashMap::new();
    let mut ready = Some(ready);
    let mut out = Vec::new();
    let exit = loop {
        out.clear();
        while let Some(frame) = session.poll_transmit() {
            encode(&frame, &mut out);
        }
        if !out.is_empty() {
            if let Err(e) = wr.write_all(&out).await {
                break Exit::Io(e);
            }
        }
        let mut closed = None;
        while let Some(event) = session.poll_event() {
            match event {
                Event::Connected(features) => {
                    if let Some(r) = ready.take() {
                        // The caller may have given up on the handshake; then nobody listens.
                        let _ = r.send(Ok(features));
                    }
                }
                Event::Completed { xid, outcome } => {
                    if let Some(w) = waiters.remove(&xid) {
                        // A dropped receiver means the caller stopped waiting; nothing to do.
                        let _ = w.send(outcome);
                    }
                }
                Event::Async(frame) => {
                    tracing::debug!(
                        xid = frame.xid,
                        msg = frame.message.name(),
                        "asynchronous message"
                    );
                    // Events may be dropped by the owner: asynchronous messages are then discarded.
                    let _ = events.send(frame);
                }
                Event::Closed(reason) => closed = Some(reason),
            }
        }
        if let Some(reason) = closed {
            if let (Some(r), CloseReason::Handshake(why)) = (ready.take(), reason) {
                let _ = r.send(Err(Error::Handshake(why)));
            }
            break Exit::Session(reason);
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            frame = reader.next() => match frame {
                Some(Ok(bytes)) => match Frame::parse(&bytes) {
                    Ok(frame) => {
                        tracing::trace!(xid = frame.xid, msg = frame.message.name(), "received");
                        session.handle_frame(frame, Instant::now());
                    }
                    Err(error) => {
                        let xid = Frame::peek_xid(&bytes).unwrap_or_default();
                        session.handle_invalid(xid, error, Instant::now());
                    }
                },
                Some(Err(e)) => break Exit::Io(e),
                None => break Exit::PeerClosed,
            },
            command = commands.recv() => match command {
                Some(command) => {
                    submit(&mut session, &mut waiters, command);
                    // Drain what is already queued so a bundle goes out in few writes.
                    while let Ok(command) = commands.try_recv() {
                        submit(&mut session, &mut waiters, command);
                    }
                }
                None => break Exit::HandlesDropped,
            },
            () = sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    };
    let pending = waiters.len();
    match &exit {
        Exit::HandlesDropped => tracing::debug!("openflow connection closed by its handles"),
        Exit::PeerClosed => tracing::warn!(pending, "openflow connection closed by the switch"),
        Exit::Session(reason) => tracing::warn!(?reason, pending, "openflow session ended"),
        Exit::Io(error) => tracing::warn!(%error, pending, "openflow connection failed"),
    }
    if let Some(r) = ready.take() {
        let _ = r.send(Err(match exit {
            Exit::Io(e) => Error::Io(e),
            _ => Error::ConnectionClosed,
        }));
    }
    // Dropping the waiters makes every pending request fail with ConnectionClosed.
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + frame.buffer_len(), 0);
    frame.emit(&mut out[start..]);
    tracing::trace!(xid = frame.xid, msg = frame.message.name(), "sent");
}

fn submit(
    session: &mut Session,
    waiters: &mut HashMap<u32, oneshot::Sender<Outcome>>,
    command: Command,
) {
    let now = Instant::now();
    match command {
        Command::Send(message) => {
            session.send(message);
        }
        Command::Batch { items, timeout } => {
            for Item {
                message,
                expect,
                reply,
            } in items
            {
                let len = crate::msg::HEADER_LEN + message.body_len();
                if len > crate::msg::MAX_MESSAGE_LEN {
                    let _ = reply.send(Outcome::Invalid(Error::TooLong(len)));
                    continue;
                }
                let xid = session.send_request(message, expect, timeout, now);
                waiters.insert(xid, reply);
            }
        }
    }
}

/// A message awaiting its outcome.
type Waiter = oneshot::Receiver<Outcome>;

impl Handle {
    /// The switch's FEATURES_REPLY (datapath id, tables, capabilities).
    pub fn features(&self) -> &FeaturesReply {
        &self.shared.features
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn batch(&self, items: Vec<(Message, Expect)>, timeout: Duration) -> Result<Vec<Waiter>> {
        let mut waiters = Vec::with_capacity(items.len());
        let items = items
            .into_iter()
            .map(|(message, expect)| {
                let (reply, rx) = oneshot::channel();
                waiters.push(rx);
                Item {
                    message,
                    expect,
                    reply,
                }
            })
            .collect();
        self.tx
            .send(Command::Batch { items, timeout })
            .await
            .map_err(|_| Error::ConnectionClosed)?;
        Ok(waiters)
    }

    async fn outcome(waiter: Waiter) -> Result<Outcome> {
        waiter.await.map_err(|_| Error::ConnectionClosed)
    }

    /// Sends a request and returns its reply (multipart replies whole).
    /// An `OFPT_ERROR` answer is [`Error::OpenFlow`].
    pub async fn request(&self, message: Message) -> Result<Message> {
        let mut w = self
            .batch(vec![(message, Expect::Reply)], self.shared.request_timeout)
            .await?;
        match Self::outcome(w.remove(0)).await? {
            Outcome::Reply(m) => Ok(m),
            other => Err(outcome_error(other)),
        }
    }

    /// Queues a message without tracking it (fire and forget). An error for it arrives on
    /// [`Events`]; follow with [`barrier`](Self::barrier) to know it was processed, or use
    /// [`apply`](Self::apply) to get its error back.
    pub async fn send(&self, message: Message) -> Result<()> {
        self.tx
            .send(Command::Send(message))
            .await
            .map_err(|_| Error::ConnectionClosed)
    }

    /// BARRIER: returns once the switch has processed everything sent before.
    pub async fn barrier(&self) -> Result<()> {
        match self.request(Message::BarrierRequest).await? {
            Message::BarrierReply => Ok(()),
            other => Err(Error::UnexpectedReply {
                request: "barrier",
                msg_type: other.msg_type(),
            }),
        }
    }

    /// Sends messages that have no reply (FLOW_MOD, PORT_MOD, ...) followed by a barrier,
    /// and returns the first error with the index of the message that caused it.
    /// Not atomic: messages before the failing one stay applied (see [`bundle`](Self::bundle)).
    pub async fn apply(&self, messages: Vec<Message>) -> Result<()> {
        let n = messages.len();
        let mut items: Vec<_> = messages.into_iter().map(|m| (m, Expect::Silent)).collect();
        items.push((Message::BarrierRequest, Expect::Reply));
        let waiters = self.batch(items, self.shared.request_timeout).await?;
        let mut first_error = None;
        for (index, w) in waiters.into_iter().enumerate() {
            match Self::outcome(w).await? {
                Outcome::Confirmed | Outcome::Reply(_) => {}
                Outcome::Failed(error) if index < n => {
                    first_error.get_or_insert(Error::BatchFailed { index, error });
                }
                other => {
                    first_error.get_or_insert(outcome_error(other));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One flow mod, confirmed by a barrier.
    pub async fn flow_mod(&self, flow: FlowMod) -> Result<()> {
        self.apply(vec![Message::FlowMod(flow)])
            .await
            .map_err(unbatch)
    }

    /// One port mod, confirmed by a barrier. OVS needs the port's current `hw_addr`
    /// (see [`port_desc`](Self::port_desc)) and does not echo the resulting PORT_STATUS
    /// to this connection.
    pub async fn port_mod(&self, port_mod: PortMod) -> Result<()> {
        self.apply(vec![Message::PortMod(port_mod)])
            .await
            .map_err(unbatch)
    }

    /// Applies `messages` atomically in one ONF bundle (the OpenFlow 1.3 form OVS accepts).
    ///
    /// Open, one add per message and a barrier go out in one write; if every add was
    /// accepted the bundle is committed with `OFPBF_ATOMIC`, otherwise it is discarded. OVS
    /// leaves a refused add out of the bundle and would commit the rest, hence the barrier
    /// before deciding. If a message is refused — when added or at commit — nothing is
    /// applied and the error is [`Error::BatchFailed`] naming its index and the switch's
    /// decoded error. FLOW_MOD, PORT_MOD, GROUP_MOD and PACKET_OUT may go in a bundle.
    pub async fn bundle(&self, messages: Vec<Message>) -> Result<()> {
        let id = self.shared.next_bundle_id.fetch_add(1, Ordering::Relaxed);
        let flags = OFPBF_ATOMIC;
        let control = |kind| Message::OnfBundleControl(BundleControl::new(id, kind, flags));
        let n = messages.len();
        let timeout = self.shared.bundle_timeout;
        let mut items = Vec::with_capacity(n + 2);
        items.push((control(BundleControlType::OpenRequest), Expect::Reply));
        // The session sets each embedded xid to the xid of its bundle add.
        items.extend(messages.into_iter().map(|m| {
            (
                Message::OnfBundleAdd(BundleAdd::new(id, flags, 0, m)),
                Expect::Silent,
            )
        }));
        // A probe, not a plain barrier reply: the adds stay open for errors the commit may
        // report with their xids.
        items.push((Message::BarrierRequest, Expect::Probe));
        tracing::debug!(bundle_id = id, messages = n, "sending bundle");
        let mut waiters = self.batch(items, timeout).await?;
        let checkpoint = waiters.pop().ok_or(Error::ConnectionClosed)?;
        let mut adds = waiters.split_off(1);
        let open = waiters.pop().ok_or(Error::ConnectionClosed)?;
        check_bundle_reply(Self::outcome(open).await?, BundleControlType::OpenReply)?;
        match Self::outcome(checkpoint).await? {
            Outcome::Reply(_) => {}
            other => return Err(outcome_error(other)),
        }
        // Every add-time error has arrived before the barrier reply.
        let mut settled: Vec<Option<Outcome>> =
            adds.iter_mut().map(|w| w.try_recv().ok()).collect();
        if let Some(e) = first_failure(&mut settled) {
            tracing::debug!(bundle_id = id, error = %e, "bundle add refused; discarding");
            let mut w = self
                .batch(
                    vec![(control(BundleControlType::DiscardRequest), Expect::Reply)],
                    timeout,
                )
                .await?;
            check_bundle_reply(
                Self::outcome(w.remove(0)).await?,
                BundleControlType::DiscardReply,
            )?;
            return Err(e);
        }
        let mut w = self
            .batch(
                vec![(control(BundleControlType::CommitRequest), Expect::Reply)],
                timeout,
            )
            .await?;
        let commit = Self::outcome(w.remove(0)).await?;
        // The commit's answer settles every add: OVS reports a message that fails at commit
        // with that message's xid, just before the commit's own error.
        for (slot, w) in settled.iter_mut().zip(adds) {
            if slot.is_none() {
                *slot = Some(Self::outcome(w).await?);
            }
        }
        if let Some(e) = first_failure(&mut settled) {
            tracing::debug!(bundle_id = id, error = %e, "bundle commit refused");
            return Err(e);
        }
        check_bundle_reply(commit, BundleControlType::CommitReply)
    }

    async fn multipart(&self, body: MultipartRequestBody) -> Result<MultipartReplyBody> {
        match self
            .request(Message::MultipartRequest(MultipartRequest::new(body)))
            .await?
        {
            Message::MultipartReply(reply) => Ok(reply.body),
            other => Err(Error::UnexpectedReply {
                request: "multipart",
                msg_type: other.msg_type(),
            }),
        }
    }

    /// Flow statistics (every part of the reply joined). `FlowStatsRequest::default()` asks
    /// for all flows of all tables.
    pub async fn flow_stats(&self, request: FlowStatsRequest) -> Result<Vec<FlowStats>> {
        match self.multipart(MultipartRequestBody::Flow(request)).await? {
            MultipartReplyBody::Flow(flows) => Ok(flows),
            _ => Err(Error::UnexpectedReply {
                request: "flow_stats",
                msg_type: crate::msg::msg_type::MULTIPART_REPLY,
            }),
        }
    }

    /// Aggregate flow statistics.
    pub async fn aggregate_stats(&self, request: FlowStatsRequest) -> Result<AggregateStats> {
        match self
            .multipart(MultipartRequestBody::Aggregate(request))
            .await?
        {
            MultipartReplyBody::Aggregate(a) => Ok(a),
            _ => Err(Error::UnexpectedReply {
                request: "aggregate",
                msg_type: crate::msg::msg_type::MULTIPART_REPLY,
            }),
        }
    }

    /// Every port with its number, MAC, name, config and state.
    pub async fn port_desc(&self) -> Result<Vec<Port>> {
        match self.multipart(MultipartRequestBody::PortDesc).await? {
            MultipartReplyBody::PortDesc(ports) => Ok(ports),
            _ => Err(Error::UnexpectedReply {
                request: "port_desc",
                msg_type: crate::msg::msg_type::MULTIPART_REPLY,
            }),
        }
    }

    /// Port counters for one port or `OFPP_ANY`.
    pub async fn port_stats(&self, port_no: u32) -> Result<Vec<PortStats>> {
        match self
            .multipart(MultipartRequestBody::PortStats { port_no })
            .await?
        {
            MultipartReplyBody::PortStats(stats) => Ok(stats),
            _ => Err(Error::UnexpectedReply {
                request: "port_stats",
                msg_type: crate::msg::msg_type::MULTIPART_REPLY,
            }),
        }
    }

    /// Table statistics.
    pub async fn table_stats(&self) -> Result<Vec<TableStats>> {
        match self.multipart(MultipartRequestBody::Table).await? {
            MultipartReplyBody::Table(stats) => Ok(stats),
            _ => Err(Error::UnexpectedReply {
                request: "table_stats",
                msg_type: crate::msg::msg_type::MULTIPART_REPLY,
            }),
        }
    }

    /// The switch description (manufacturer, software version, ...).
    pub async fn desc(&self) -> Result<Desc> {
        match self.multipart(MultipartRequestBody::Desc).await? {
            MultipartReplyBody::Desc(d) => Ok(d),
            _ => Err(Error::UnexpectedReply {
                request: "desc",
                msg_type: crate::msg::msg_type::MULTIPART_REPLY,
            }),
        }
    }
}

fn outcome_error(outcome: Outcome) -> Error {
    match outcome {
        Outcome::Failed(e) => Error::OpenFlow(e),
        Outcome::TimedOut => Error::Timeout,
        Outcome::Invalid(e) => e,
        Outcome::Reply(m) => Error::UnexpectedReply {
            request: "silent request",
            msg_type: m.msg_type(),
        },
        Outcome::Confirmed => Error::UnexpectedReply {
            request: "request",
            msg_type: 0,
        },
    }
}

/// The first refused message of a bundle, by index.
fn first_failure(settled: &mut [Option<Outcome>]) -> Option<Error> {
    settled
        .iter_mut()
        .enumerate()
        .find_map(|(index, slot)| match slot.take() {
            Some(Outcome::Failed(error)) => Some(Error::BatchFailed { index, error }),
            Some(Outcome::TimedOut) => Some(Error::Timeout),
            Some(Outcome::Invalid(e)) => Some(e),
            other => {
                *slot = other;
                None
            }
        })
}

/// A batch of one reports the switch's error directly.
fn unbatch(e: Error) -> Error {
    match e {
        Error::BatchFailed { error, .. } => Error::OpenFlow(error),
        other => other,
    }
}

fn check_bundle_reply(outcome: Outcome, want: BundleControlType) -> Result<()> {
    match outcome {
        Outcome::Reply(Message::OnfBundleControl(c) | Message::BundleControl(c))
            if c.kind == want =>
        {
            Ok(())
        }
        Outcome::Reply(m) => Err(Error::UnexpectedReply {
            request: "bundle_control",
            msg_type: m.msg_type(),
        }),
        other => Err(outcome_error(other)),
    }
}
