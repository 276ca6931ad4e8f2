//! The sans-IO OpenFlow session: handshake, xids, pending requests, echo keepalive and
//! multipart reassembly, as plain data.
//!
//! Feed it with `handle_*` (frames received, time passing), drain it with `poll_*` (frames
//! to send, events, the next deadline). Time is always passed in, so tests need no socket
//! and no clock.
//!
//! Request tracking follows what OVS guarantees: a switch processes messages in order, and
//! a message that succeeds without a reply (FLOW_MOD, PORT_MOD, bundle adds) says nothing.
//! A request sent with [`Expect::Silent`] is therefore confirmed when any request sent after
//! it gets its answer, and failed when an `OFPT_ERROR` carries its xid.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::Error;
use crate::msg::{
    ErrorKind, ErrorMsg, FeaturesReply, Frame, Hello, HelloFailedCode, Message, Reassembler,
    SwitchConfig,
};
use crate::types::{OFP_VERSION, OFPCML_DEFAULT_MISS_SEND_LEN};

/// Session timing and switch configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Send ECHO_REQUEST after this long without hearing from the peer.
    pub echo_interval: Duration,
    /// Declare the peer dead when our ECHO_REQUEST is unanswered this long.
    pub echo_timeout: Duration,
    /// Give up when HELLO + FEATURES do not complete in this long.
    pub handshake_timeout: Duration,
    /// `miss_send_len` for the SET_CONFIG sent after FEATURES. Must be nonzero: OVS sends
    /// no asynchronous messages (PORT_STATUS, ...) on its `.mgmt` socket otherwise.
    pub miss_send_len: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            echo_interval: Duration::from_secs(5),
            echo_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            miss_send_len: OFPCML_DEFAULT_MISS_SEND_LEN,
        }
    }
}

/// What answer a request expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A reply message with the same xid (multipart parts are joined first).
    Reply,
    /// No reply on success; confirmed by the answer to any later request.
    Silent,
    /// A reply, like [`Reply`](Self::Reply), whose arrival does *not* confirm earlier
    /// silent requests: a checkpoint (e.g. a barrier between bundle adds and the commit)
    /// that shows every error so far while keeping those requests open for later errors.
    Probe,
}

/// How a tracked request ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The reply (a multipart reply arrives whole).
    Reply(Message),
    /// A silent request was confirmed by the answer to a later one.
    Confirmed,
    /// The switch sent `OFPT_ERROR` with this request's xid.
    Failed(ErrorMsg),
    /// No answer before the deadline.
    TimedOut,
    /// The answer could not be used (e.g. multipart parts of different types).
    Invalid(Error),
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// No common version, HELLO refused, or the handshake timed out.
    Handshake(&'static str),
    /// Our ECHO_REQUEST went unanswered for `echo_timeout`.
    PeerDead,
}

/// Something the owner of the session must act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// HELLO and FEATURES are done and SET_CONFIG is queued: requests may flow.
    Connected(FeaturesReply),
    /// A tracked request ended.
    Completed {
        /// The request's xid.
        xid: u32,
        /// How it ended.
        outcome: Outcome,
    },
    /// A message nobody asked for: PORT_STATUS, FLOW_REMOVED, PACKET_IN, or an error
    /// for an untracked xid.
    Async(Frame),
    /// The session is over; the transport should be closed.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitFeatures { xid: u32 },
    Established,
    Closed,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    expect: Expect,
    deadline: Instant,
}

/// The protocol state of one OpenFlow connection (we always play the controller).
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: State,
    next_xid: u32,
    next_seq: u64,
    pending: HashMap<u32, Pending>,
    /// Silent requests by send order, to confirm everything sent before an answer.
    silent: BTreeMap<u64, u32>,
    deadlines: BTreeSet<(Instant, u32)>,
    transmit: VecDeque<Frame>,
    events: VecDeque<Event>,
    reassembler: Reassembler,
    last_rx: Instant,
    /// Our outstanding ECHO_REQUEST: xid and when it was sent.
    echo: Option<(u32, Instant)>,
    handshake_deadline: Instant,
    features: Option<FeaturesReply>,
}

impl Session {
    /// Starts a session: HELLO (offering only 1.3) is queued at once.
    pub fn new(config: Config, now: Instant) -> Self {
        let handshake_deadline = now + config.handshake_timeout;
        let mut s = Self {
            config,
            state: State::AwaitHello,
            next_xid: 1,
            next_seq: 0,
            pending: HashMap::new(),
            silent: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            reassembler: Reassembler::new(),
            last_rx: now,
            echo: None,
            handshake_deadline,
            features: None,
        };
        let xid = s.alloc_xid();
        s.transmit.push_back(Frame::new(
            xid,
            Message::Hello(Hello::with_versions(&[OFP_VERSION])),
        ));
        s
    }

    /// Whether the handshake is complete and the session is not closed.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The switch's FEATURES_REPLY, once connected.
    pub fn features(&self) -> Option<&FeaturesReply> {
        self.features.as_ref()
    }

    /// Number of tracked requests still waiting.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn alloc_xid(&mut self) -> u32 {
        loop {
            let xid = self.next_xid;
            self.next_xid = self.next_xid.wrapping_add(1);
            let busy = self.pending.contains_key(&xid) || self.echo.is_some_and(|(x, _)| x == xid);
            if !busy {
                return xid;
            }
        }
    }

    /// Queues a tracked request and returns its xid. The answer comes back as
    /// [`Event::Completed`] with this xid, at the latest when `timeout` has passed.
    ///
    /// A bundle add gets its embedded message's xid set to its own, as the spec requires.
    pub fn send_request(
        &mut self,
        mut message: Message,
        expect: Expect,
        timeout: Duration,
        now: Instant,
    ) -> u32 {
        let xid = self.alloc_xid();
        if let Message::BundleAdd(add) | Message::OnfBundleAdd(add) = &mut message {
            add.message.xid = xid;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let deadline = now + timeout;
        self.pending.insert(
            xid,
            Pending {
                seq,
                expect,
                deadline,
            },
        );
        self.deadlines.insert((deadline, xid));
        if expect == Expect::Silent {
            self.silent.insert(seq, xid);
        }
        self.transmit.push_back(Frame::new(xid, message));
        xid
    }

    /// Queues an untracked message (fire and forget); an error for it arrives as
    /// [`Event::Async`]. Follow it with a barrier to know it landed.
    pub fn send(&mut self, message: Message) -> u32 {
        let xid = self.alloc_xid();
        self.transmit.push_back(Frame::new(xid, message));
        xid
    }

    /// Processes one frame from the switch.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) {
        self.last_rx = now;
        match frame.message {
            Message::EchoRequest(data) => {
                self.transmit
                    .push_back(Frame::new(frame.xid, Message::EchoReply(data)));
                return;
            }
            Message::EchoReply(_) if self.echo.is_some_and(|(x, _)| x == frame.xid) => {
                self.echo = None;
                return;
            }
            _ => {}
        }
        match self.state {
            State::AwaitHello => self.on_hello(frame),
            State::AwaitFeatures { xid } => self.on_features(xid, frame),
            State::Established => self.on_established(frame),
            State::Closed => {}
        }
    }

    fn on_hello(&mut self, frame: Frame) {
        match &frame.message {
            // The spec: "the recipient ... MUST ... send an OFPT_ERROR with
            // OFPET_HELLO_FAILED" when no common version exists.
            Message::Hello(hello) if hello.supports(frame.version, OFP_VERSION) => {
                let xid = self.alloc_xid();
                self.transmit
                    .push_back(Frame::new(xid, Message::FeaturesRequest));
                self.state = State::AwaitFeatures { xid };
            }
            Message::Hello(_) => {
                let mut error =
                    ErrorMsg::new(ErrorKind::HelloFailed(HelloFailedCode::Incompatible));
                error.data = b"ovswire speaks only OpenFlow 1.3".to_vec();
                self.transmit
                    .push_back(Frame::new(frame.xid, Message::Error(error)));
                self.close(CloseReason::Handshake(
                    "the switch does not offer OpenFlow 1.3",
                ));
            }
            Message::Error(_) => self.close(CloseReason::Handshake("the switch refused our HELLO")),
            _ => tracing::debug!(msg = frame.message.name(), "ignoring message before HELLO"),
        }
    }

    fn on_features(&mut self, xid: u32, frame: Frame) {
        match frame.message {
            Message::FeaturesReply(features) if frame.xid == xid => {
                let config = SwitchConfig {
                    flags: 0,
                    miss_send_len: self.config.miss_send_len,
                };
                let xid = self.alloc_xid();
                self.transmit
                    .push_back(Frame::new(xid, Message::SetConfig(config)));
                self.state = State::Established;
                self.features = Some(features);
                self.events.push_back(Event::Connected(features));
            }
            Message::Error(_) if frame.xid == xid => {
                self.close(CloseReason::Handshake(
                    "the switch refused FEATURES_REQUEST",
                ));
            }
            _ => self.events.push_back(Event::Async(frame)),
        }
    }

    fn on_established(&mut self, frame: Frame) {
        let xid = frame.xid;
        let Some(pending) = self.pending.get(&xid) else {
            self.events.push_back(Event::Async(frame));
            return;
        };
        let seq = pending.seq;
        let expect = pending.expect;
        let outcome = match frame.message {
            Message::Error(error) => Outcome::Failed(error),
            Message::MultipartReply(part) if expect != Expect::Silent => {
                match self.reassembler.push(xid, part) {
                    Ok(Some(whole)) => Outcome::Reply(Message::MultipartReply(whole)),
                    Ok(None) => return,
                    Err(e) => Outcome::Invalid(e),
                }
            }
            message if expect != Expect::Silent => Outcome::Reply(message),
            // A silent request never gets a reply; this is someone else's message that
            // happens to reuse the xid.
            message => {
                self.events
                    .push_back(Event::Async(Frame { message, ..frame }));
                return;
            }
        };
        // Everything sent before this request has been processed by now.
        if expect != Expect::Probe {
            self.confirm_before(seq);
        }
        self.complete(xid, outcome);
    }

    fn confirm_before(&mut self, seq: u64) {
        let later = self.silent.split_off(&seq);
        let earlier = std::mem::replace(&mut self.silent, later);
        for xid in earlier.into_values() {
            self.complete(xid, Outcome::Confirmed);
        }
    }

    fn complete(&mut self, xid: u32, outcome: Outcome) {
        if let Some(p) = self.pending.remove(&xid) {
            self.deadlines.remove(&(p.deadline, xid));
            self.silent.remove(&p.seq);
            self.reassembler.forget(xid);
            self.events.push_back(Event::Completed { xid, outcome });
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(Event::Closed(reason));
        }
    }

    /// Reports a frame from the switch that did not decode: the request with that xid (if
    /// any) fails with the decode error instead of waiting for its deadline.
    pub fn handle_invalid(&mut self, xid: u32, error: Error, now: Instant) {
        self.last_rx = now;
        if self.pending.contains_key(&xid) {
            self.complete(xid, Outcome::Invalid(error));
        } else {
            tracing::warn!(xid, %error, "dropping undecodable message from the switch");
        }
    }

    /// Advances timers: request deadlines, the handshake deadline and echo keepalive.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if !self.is_established() && now >= self.handshake_deadline {
            self.close(CloseReason::Handshake("timed out"));
            return;
        }
        while let Some(&(deadline, xid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.complete(xid, Outcome::TimedOut);
        }
        match self.echo {
            Some((_, sent)) if now >= sent + self.config.echo_timeout => {
                self.close(CloseReason::PeerDead)
            }
            None if self.is_established() && now >= self.last_rx + self.config.echo_interval => {
                let xid = self.alloc_xid();
                self.transmit
                    .push_back(Frame::new(xid, Message::EchoRequest(Vec::new())));
                self.echo = Some((xid, now));
            }
            _ => {}
        }
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let echo = match self.echo {
            Some((_, sent)) => Some(sent + self.config.echo_timeout),
            None if self.is_established() => Some(self.last_rx + self.config.echo_interval),
            None => None,
        };
        let handshake = (!self.is_established()).then_some(self.handshake_deadline);
        let request = self.deadlines.first().map(|(d, _)| *d);
        [echo, handshake, request].into_iter().flatten().min()
    }

    /// The next frame to write to the switch.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
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
    use crate::msg::{BundleAdd, FlowModFailedCode, MultipartReply, MultipartReplyBody};
    use crate::{FlowMod, types::OFPMPF_REPLY_MORE};

    fn features() -> FeaturesReply {
        FeaturesReply {
            datapath_id: 0xabc,
            n_tables: 254,
            ..FeaturesReply::default()
        }
    }

    fn drain(s: &mut Session) -> Vec<Frame> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// A session that went through HELLO, FEATURES and SET_CONFIG.
    fn established(now: Instant) -> Session {
        let mut s = Session::new(Config::default(), now);
        let hello = drain(&mut s);
        assert!(matches!(
            hello[..],
            [Frame {
                message: Message::Hello(_),
                ..
            }]
        ));
        s.handle_frame(
            Frame {
                version: 6,
                xid: 99,
                message: Message::Hello(Hello::with_versions(&[1, 4, 5, 6])),
            },
            now,
        );
        let sent = drain(&mut s);
        let [
            Frame {
                xid,
                message: Message::FeaturesRequest,
                ..
            },
        ] = sent[..]
        else {
            panic!("{sent:?}")
        };
        s.handle_frame(Frame::new(xid, Message::FeaturesReply(features())), now);
        let sent = drain(&mut s);
        let [
            Frame {
                message: Message::SetConfig(c),
                ..
            },
        ] = &sent[..]
        else {
            panic!("{sent:?}")
        };
        assert_ne!(
            c.miss_send_len, 0,
            "OVS's .mgmt socket needs a nonzero miss_send_len"
        );
        assert!(matches!(events(&mut s)[..], [Event::Connected(f)] if f == features()));
        s
    }

    #[test]
    fn handshake_negotiates_1_3() {
        let now = Instant::now();
        let s = established(now);
        assert!(s.is_established());
        assert_eq!(s.features().unwrap().datapath_id, 0xabc);
    }

    #[test]
    fn handshake_without_common_version_fails_with_hello_failed() {
        let now = Instant::now();
        let mut s = Session::new(Config::default(), now);
        drain(&mut s);
        s.handle_frame(
            Frame {
                version: 6,
                xid: 1,
                message: Message::Hello(Hello::with_versions(&[5, 6])),
            },
            now,
        );
        // The spec: without a common version the recipient MUST send HELLO_FAILED / INCOMPATIBLE.
        let sent = drain(&mut s);
        let [
            Frame {
                message: Message::Error(e),
                ..
            },
        ] = &sent[..]
        else {
            panic!("{sent:?}")
        };
        assert_eq!(
            e.kind,
            ErrorKind::HelloFailed(HelloFailedCode::Incompatible)
        );
        assert!(matches!(
            events(&mut s)[..],
            [Event::Closed(CloseReason::Handshake(_))]
        ));
        assert!(s.is_closed());
    }

    #[test]
    fn handshake_times_out() {
        let now = Instant::now();
        let mut s = Session::new(Config::default(), now);
        assert_eq!(
            s.poll_timeout(),
            Some(now + Config::default().handshake_timeout)
        );
        s.handle_timeout(now + Duration::from_secs(11));
        assert!(matches!(
            events(&mut s)[..],
            [Event::Closed(CloseReason::Handshake("timed out"))]
        ));
    }

    #[test]
    fn answers_echo_and_keeps_alive() {
        let now = Instant::now();
        let mut s = established(now);
        s.handle_frame(Frame::new(77, Message::EchoRequest(b"x".to_vec())), now);
        let sent = drain(&mut s);
        assert!(
            matches!(&sent[..], [Frame { xid: 77, message: Message::EchoReply(d), .. }] if d == b"x")
        );

        // Idle for echo_interval: we probe.
        let t1 = now + Duration::from_secs(5);
        assert_eq!(s.poll_timeout(), Some(t1));
        s.handle_timeout(t1);
        let sent = drain(&mut s);
        let [
            Frame {
                xid,
                message: Message::EchoRequest(_),
                ..
            },
        ] = sent[..]
        else {
            panic!("{sent:?}")
        };
        s.handle_frame(
            Frame::new(xid, Message::EchoReply(vec![])),
            t1 + Duration::from_millis(1),
        );
        assert!(events(&mut s).is_empty());

        // Probe unanswered for echo_timeout: the peer is dead.
        let t2 = t1 + Duration::from_secs(5) + Duration::from_millis(1);
        s.handle_timeout(t2);
        assert_eq!(drain(&mut s).len(), 1);
        s.handle_timeout(t2 + Duration::from_secs(10));
        assert!(matches!(
            events(&mut s)[..],
            [Event::Closed(CloseReason::PeerDead)]
        ));
    }

    #[test]
    fn replies_are_matched_by_xid_and_multipart_is_joined() {
        let now = Instant::now();
        let mut s = established(now);
        let req = crate::msg::MultipartRequest::new(crate::msg::MultipartRequestBody::PortDesc);
        let xid = s.send_request(
            Message::MultipartRequest(req),
            Expect::Reply,
            Duration::from_secs(1),
            now,
        );
        assert_eq!(drain(&mut s).len(), 1);
        let part = |flags| MultipartReply {
            flags,
            body: MultipartReplyBody::PortDesc(vec![Default::default()]),
        };
        s.handle_frame(
            Frame::new(xid, Message::MultipartReply(part(OFPMPF_REPLY_MORE))),
            now,
        );
        assert!(events(&mut s).is_empty(), "waits for the last part");
        s.handle_frame(Frame::new(xid, Message::MultipartReply(part(0))), now);
        let ev = events(&mut s);
        let [
            Event::Completed {
                xid: x,
                outcome: Outcome::Reply(Message::MultipartReply(r)),
            },
        ] = &ev[..]
        else {
            panic!("{ev:?}")
        };
        assert_eq!(*x, xid);
        assert!(matches!(&r.body, MultipartReplyBody::PortDesc(p) if p.len() == 2));
        assert_eq!(s.pending_len(), 0);
    }

    #[test]
    fn silent_requests_are_confirmed_by_a_later_answer_or_failed_by_their_error() {
        let now = Instant::now();
        let mut s = established(now);
        let t = Duration::from_secs(1);
        let a = s.send_request(Message::FlowMod(FlowMod::add(0)), Expect::Silent, t, now);
        let b = s.send_request(Message::FlowMod(FlowMod::add(0)), Expect::Silent, t, now);
        let barrier = s.send_request(Message::BarrierRequest, Expect::Reply, t, now);
        let error = ErrorMsg::new(ErrorKind::FlowModFailed(FlowModFailedCode::BadTableId));
        s.handle_frame(Frame::new(b, Message::Error(error.clone())), now);
        s.handle_frame(Frame::new(barrier, Message::BarrierReply), now);
        let ev = events(&mut s);
        assert!(matches!(&ev[..], [
            Event::Completed { xid: x1, outcome: Outcome::Confirmed },
            Event::Completed { xid: x2, outcome: Outcome::Failed(e) },
            Event::Completed { xid: x3, outcome: Outcome::Reply(Message::BarrierReply) },
        ] if *x1 == a && *x2 == b && *x3 == barrier && *e == error));
    }

    #[test]
    fn requests_time_out() {
        let now = Instant::now();
        let mut s = established(now);
        let xid = s.send_request(
            Message::BarrierRequest,
            Expect::Reply,
            Duration::from_millis(100),
            now,
        );
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_millis(100)));
        s.handle_timeout(now + Duration::from_millis(100));
        assert!(
            matches!(events(&mut s)[..], [Event::Completed { xid: x, outcome: Outcome::TimedOut }] if x == xid)
        );
        // A late reply is then just an asynchronous message.
        s.handle_frame(Frame::new(xid, Message::BarrierReply), now);
        assert!(matches!(events(&mut s)[..], [Event::Async(_)]));
    }

    #[test]
    fn bundle_add_gets_the_outer_xid_and_async_messages_pass_through() {
        let now = Instant::now();
        let mut s = established(now);
        let add = BundleAdd::new(1, 1, 0, Message::FlowMod(FlowMod::add(0)));
        let xid = s.send_request(
            Message::OnfBundleAdd(add),
            Expect::Silent,
            Duration::from_secs(1),
            now,
        );
        let sent = drain(&mut s);
        let [
            Frame {
                message: Message::OnfBundleAdd(add),
                ..
            },
        ] = &sent[..]
        else {
            panic!("{sent:?}")
        };
        // The spec: the embedded message's xid MUST be the same as the bundle add's.
        assert_eq!(add.message.xid, xid);
        s.handle_frame(
            Frame::new(
                0,
                Message::PortStatus(crate::msg::PortStatus {
                    reason: crate::msg::PortReason::Modify,
                    port: Default::default(),
                }),
            ),
            now,
        );
        assert!(matches!(
            events(&mut s)[..],
            [Event::Async(Frame {
                message: Message::PortStatus(_),
                ..
            })]
        ));
    }

    #[test]
    fn xids_skip_pending_ones() {
        let now = Instant::now();
        let mut s = established(now);
        s.next_xid = u32::MAX;
        let a = s.send_request(
            Message::BarrierRequest,
            Expect::Reply,
            Duration::from_secs(1),
            now,
        );
        assert_eq!(a, u32::MAX);
        s.next_xid = u32::MAX;
        let b = s.send_request(
            Message::BarrierRequest,
            Expect::Reply,
            Duration::from_secs(1),
            now,
        );
        assert_eq!(b, 0, "wraps and skips the busy xid");
    }
}
