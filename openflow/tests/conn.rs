//! The async connection against a scripted switch on an in-memory stream.

use std::time::Duration;

use ovswire_openflow::conn::{self, Options};
use ovswire_openflow::msg::{
    BundleControl, BundleControlType, ErrorKind, ErrorMsg, FeaturesReply, FlowModFailedCode,
    FlowStatsRequest, Hello, MultipartRequestBody,
};
use ovswire_openflow::types::OFPMPF_REPLY_MORE;
use ovswire_openflow::{Error, FlowMod, Frame, Message, MultipartReply, MultipartReplyBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// The switch side of the stream.
struct Switch(DuplexStream);

impl Switch {
    async fn recv(&mut self) -> Frame {
        let mut header = [0u8; 8];
        self.0.read_exact(&mut header).await.unwrap();
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let mut buf = header.to_vec();
        buf.resize(len, 0);
        self.0.read_exact(&mut buf[8..]).await.unwrap();
        Frame::parse(&buf).unwrap()
    }

    async fn send(&mut self, frame: Frame) {
        self.0.write_all(&frame.to_vec().unwrap()).await.unwrap();
    }

    /// Plays the switch's part of HELLO / FEATURES / SET_CONFIG.
    async fn handshake(&mut self) {
        assert!(matches!(self.recv().await.message, Message::Hello(_)));
        self.send(Frame {
            version: 6,
            xid: 1,
            message: Message::Hello(Hello::with_versions(&[4, 5, 6])),
        })
        .await;
        let req = self.recv().await;
        assert!(matches!(req.message, Message::FeaturesRequest));
        let features = FeaturesReply {
            datapath_id: 0xabc,
            n_tables: 254,
            ..FeaturesReply::default()
        };
        self.send(Frame::new(req.xid, Message::FeaturesReply(features)))
            .await;
        let Message::SetConfig(config) = self.recv().await.message else {
            panic!("no SET_CONFIG")
        };
        assert_ne!(config.miss_send_len, 0);
    }
}

async fn pair() -> (conn::Handle, conn::Events, Switch) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let mut switch = Switch(theirs);
    let options = Options {
        request_timeout: Duration::from_secs(2),
        ..Options::default()
    };
    let (connected, ()) = tokio::join!(conn::start(ours, options), switch.handshake());
    let (handle, events) = connected.unwrap();
    assert_eq!(handle.features().datapath_id, 0xabc);
    (handle, events, switch)
}

#[tokio::test]
async fn barrier_and_multipart_reply_more() {
    let (handle, _events, mut switch) = pair().await;
    let client = async {
        handle.barrier().await.unwrap();
        handle
            .flow_stats(FlowStatsRequest::default())
            .await
            .unwrap()
    };
    let server = async {
        let b = switch.recv().await;
        switch.send(Frame::new(b.xid, Message::BarrierReply)).await;
        let req = switch.recv().await;
        assert!(
            matches!(req.message, Message::MultipartRequest(ref r) if matches!(r.body, MultipartRequestBody::Flow(_)))
        );
        for flags in [OFPMPF_REPLY_MORE, 0] {
            let reply = MultipartReply {
                flags,
                body: MultipartReplyBody::Flow(vec![]),
            };
            switch
                .send(Frame::new(req.xid, Message::MultipartReply(reply)))
                .await;
        }
    };
    let (flows, ()) = tokio::join!(client, server);
    assert!(flows.is_empty());
}

/// Plays OVS's part of a bundle of five flows where message 3 fails, either when added
/// (`at_commit == false`: error before the barrier reply, then the client discards) or at
/// commit (its error with the add's xid, then the commit's error).
async fn bundle_failing_at(at_commit: bool) {
    let (handle, _events, mut switch) = pair().await;
    let flows = (0..5)
        .map(|i| Message::FlowMod(FlowMod::add(0).priority(i)))
        .collect();
    let error = ErrorMsg::new(ErrorKind::FlowModFailed(FlowModFailedCode::BadTableId));
    let server = async {
        let open = switch.recv().await;
        let Message::OnfBundleControl(ctl) = &open.message else {
            panic!("{open:?}")
        };
        let reply =
            |kind| Message::OnfBundleControl(BundleControl::new(ctl.bundle_id, kind, ctl.flags));
        switch
            .send(Frame::new(open.xid, reply(BundleControlType::OpenReply)))
            .await;
        let mut adds = Vec::new();
        for _ in 0..5 {
            let add = switch.recv().await;
            let Message::OnfBundleAdd(a) = &add.message else {
                panic!("{add:?}")
            };
            assert_eq!(a.message.xid, add.xid, "embedded xid equals the outer xid");
            adds.push(add.xid);
        }
        if !at_commit {
            switch
                .send(Frame::new(adds[3], Message::Error(error.clone())))
                .await;
        }
        let barrier = switch.recv().await;
        assert!(matches!(barrier.message, Message::BarrierRequest));
        switch
            .send(Frame::new(barrier.xid, Message::BarrierReply))
            .await;
        let last = switch.recv().await;
        let Message::OnfBundleControl(c) = &last.message else {
            panic!("{last:?}")
        };
        if at_commit {
            assert_eq!(c.kind, BundleControlType::CommitRequest);
            switch
                .send(Frame::new(adds[3], Message::Error(error.clone())))
                .await;
            let commit_error = ErrorMsg::new(ErrorKind::Experimenter {
                exp_type: 2305,
                experimenter: 0x4f4e_4600,
            });
            switch
                .send(Frame::new(last.xid, Message::Error(commit_error)))
                .await;
        } else {
            assert_eq!(
                c.kind,
                BundleControlType::DiscardRequest,
                "a refused add must not be committed"
            );
            switch
                .send(Frame::new(last.xid, reply(BundleControlType::DiscardReply)))
                .await;
        }
    };
    let (result, ()) = tokio::join!(handle.bundle(flows), server);
    match result {
        Err(Error::BatchFailed { index: 3, error: e }) => assert_eq!(e, error),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bundle_add_error_discards_and_names_the_message() {
    bundle_failing_at(false).await;
}

#[tokio::test]
async fn bundle_commit_error_names_the_message() {
    bundle_failing_at(true).await;
}

#[tokio::test]
async fn echo_is_answered_and_async_messages_arrive() {
    let (_handle, mut events, mut switch) = pair().await;
    switch
        .send(Frame::new(900, Message::EchoRequest(b"hi".to_vec())))
        .await;
    let reply = switch.recv().await;
    assert_eq!(reply.xid, 900);
    assert!(matches!(reply.message, Message::EchoReply(ref d) if d == b"hi"));
    switch
        .send(Frame::new(
            0,
            Message::PortStatus(ovswire_openflow::msg::PortStatus {
                reason: ovswire_openflow::msg::PortReason::Modify,
                port: Default::default(),
            }),
        ))
        .await;
    let event = events.recv().await.unwrap();
    assert!(matches!(event.message, Message::PortStatus(_)));
}

#[tokio::test]
async fn peer_loss_is_connection_closed() {
    let (handle, mut events, switch) = pair().await;
    drop(switch);
    assert!(matches!(
        handle.barrier().await,
        Err(Error::ConnectionClosed)
    ));
    assert!(events.recv().await.is_none());
}

#[tokio::test]
async fn unanswered_request_times_out() {
    let (handle, _events, _switch) = pair().await;
    assert!(matches!(handle.barrier().await, Err(Error::Timeout)));
}

#[tokio::test]
async fn silent_peer_is_declared_dead() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let mut switch = Switch(theirs);
    let mut options = Options::default();
    options.session.echo_interval = Duration::from_millis(50);
    options.session.echo_timeout = Duration::from_millis(100);
    let (connected, ()) = tokio::join!(conn::start(ours, options), switch.handshake());
    let (handle, mut events) = connected.unwrap();
    // The switch stays silent: one ECHO_REQUEST goes unanswered, then the session ends.
    assert!(matches!(
        switch.recv().await.message,
        Message::EchoRequest(_)
    ));
    assert!(
        tokio::time::timeout(Duration::from_secs(2), events.recv())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        handle.barrier().await,
        Err(Error::ConnectionClosed)
    ));
}

// Two workers: a connection task that spins must not keep the test's timeout from firing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_shorter_than_the_header_ends_the_connection_instead_of_spinning() {
    for len in [0u16, 1, 7] {
        let (handle, mut events, mut switch) = pair().await;
        let mut header = vec![4, 2, 0, 0, 0, 0, 0, 9];
        header[2..4].copy_from_slice(&len.to_be_bytes());
        switch.0.write_all(&header).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(2), events.recv()).await;
        assert!(
            matches!(ended, Ok(None)),
            "length {len}: the connection did not end"
        );
        assert!(
            matches!(handle.barrier().await, Err(Error::ConnectionClosed)),
            "length {len}"
        );
    }
}

#[tokio::test]
async fn a_message_cut_short_by_the_end_of_the_stream_ends_the_connection() {
    let (handle, mut events, mut switch) = pair().await;
    let mut cut = vec![4, 2, 0, 100, 0, 0, 0, 9];
    cut.extend_from_slice(&[0; 20]);
    switch.0.write_all(&cut).await.unwrap();
    drop(switch);
    let ended = tokio::time::timeout(Duration::from_secs(2), events.recv()).await;
    assert!(matches!(ended, Ok(None)));
    assert!(matches!(
        handle.barrier().await,
        Err(Error::ConnectionClosed)
    ));
}
