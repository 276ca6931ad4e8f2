//! The client against a scripted fake server on a unix socket: broken input must give a clear
//! error, never a panic or a hang.

use std::time::Duration;

use ovswire_ovsdb::{Client, ClientConfig, Error, MonitorRequest, ProbeConfig, UpdateKind};
use serde_json::{Value as Json, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
    time::timeout,
};

const LIMIT: Duration = Duration::from_secs(5);

struct Peer {
    _dir: tempfile::TempDir,
    listener: UnixListener,
    addr: String,
}

impl Peer {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sock");
        let listener = UnixListener::bind(&path).unwrap();
        Self {
            addr: format!("unix:{}", path.display()),
            listener,
            _dir: dir,
        }
    }

    async fn client(&self, config: ClientConfig) -> (Client, Script) {
        let (client, accepted) = tokio::join!(
            Client::connect_with(&self.addr, config),
            self.listener.accept()
        );
        (
            client.unwrap(),
            Script {
                io: accepted.unwrap().0,
                buf: Vec::new(),
            },
        )
    }
}

fn once() -> ClientConfig {
    ClientConfig {
        reconnect: None,
        ..ClientConfig::default()
    }
}

/// The server side: reads whole JSON requests, writes raw bytes.
struct Script {
    io: UnixStream,
    buf: Vec<u8>,
}

impl Script {
    async fn request(&mut self) -> Json {
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Json>();
            if let Some(Ok(v)) = it.next() {
                let used = it.byte_offset();
                self.buf.drain(..used);
                return v;
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(LIMIT, self.io.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "client closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    async fn reply(&mut self, id: &Json, result: Json) {
        self.send(
            json!({"id": id, "result": result, "error": null})
                .to_string()
                .as_bytes(),
        )
        .await;
    }
}

#[tokio::test]
async fn broken_json_fails_the_request_with_the_offset() {
    let peer = Peer::new();
    let (client, mut server) = peer.client(once()).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.list_dbs().await }
    });
    let req = server.request().await;
    assert_eq!(req["method"], "list_dbs");
    server
        .send(b"{\"id\":99,\"result\":[\"a\"],\"error\":null}{\"id\": nope}")
        .await;
    let err = timeout(LIMIT, call).await.unwrap().unwrap().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{text}");
    assert!(text.contains("byte offset 45"), "{text}");
    assert!(matches!(
        timeout(LIMIT, client.echo()).await.unwrap(),
        Err(Error::ConnectionClosed)
    ));
}

#[tokio::test]
async fn close_mid_message_is_reported() {
    let peer = Peer::new();
    let (client, mut server) = peer.client(once()).await;
    let call = tokio::spawn(async move { client.list_dbs().await });
    server.request().await;
    server.send(b"{\"id\":1,\"result\":[\"Open_").await;
    drop(server);
    let err = timeout(LIMIT, call).await.unwrap().unwrap().unwrap_err();
    assert!(
        err.to_string()
            .contains("closed in the middle of a message"),
        "{err}"
    );
}

#[tokio::test]
async fn garbage_and_non_object_values_are_errors() {
    for garbage in [
        &b"\x00\xff"[..],
        b"[1,2]",
        b"\"str\"",
        b"{\"neither\":1}",
        b"{]",
    ] {
        let peer = Peer::new();
        let (client, mut server) = peer.client(once()).await;
        let call = tokio::spawn(async move { client.echo().await });
        server.request().await;
        server.send(garbage).await;
        let err = timeout(LIMIT, call).await.unwrap().unwrap().unwrap_err();
        assert!(
            matches!(err, Error::ConnectionLost { .. }),
            "{garbage:?}: {err}"
        );
    }
}

#[tokio::test]
async fn silent_peer_is_declared_dead() {
    let peer = Peer::new();
    let probe = ProbeConfig {
        interval: Some(Duration::from_millis(50)),
        timeout: Duration::from_millis(100),
    };
    let (client, mut server) = peer.client(ClientConfig { probe, ..once() }).await;
    let call = tokio::spawn(async move { client.list_dbs().await });
    server.request().await;
    let probe = server.request().await;
    assert_eq!(probe["method"], "echo", "an idle connection is probed");
    let err = timeout(LIMIT, call).await.unwrap().unwrap().unwrap_err();
    assert!(
        err.to_string().contains("did not answer an echo probe"),
        "{err}"
    );
}

#[tokio::test]
async fn server_echo_is_answered_and_errors_are_named() {
    let peer = Peer::new();
    let (client, mut server) = peer.client(once()).await;
    server
        .send(br#"{"id":"echo","method":"echo","params":["x"]}"#)
        .await;
    assert_eq!(
        server.request().await,
        json!({"id": "echo", "result": ["x"], "error": null})
    );

    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call("get_schema", vec![json!("nope")]).await }
    });
    let req = server.request().await;
    let reply = json!({"id": req["id"], "result": null, "error": {"error": "unknown database", "details": "nope"}});
    server.send(reply.to_string().as_bytes()).await;
    let err = timeout(LIMIT, call).await.unwrap().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "OVSDB server rejected get_schema: unknown database: nope"
    );

    let call = tokio::spawn(async move { client.call("frobnicate", vec![]).await });
    let req = server.request().await;
    server
        .send(
            json!({"id": req["id"], "result": null, "error": "unknown method"})
                .to_string()
                .as_bytes(),
        )
        .await;
    let err = timeout(LIMIT, call).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedMethod { method } if method == "frobnicate"),
        "{err}"
    );
}

#[tokio::test]
async fn monitor_falls_back_to_plain_monitor() {
    let peer = Peer::new();
    let (client, mut server) = peer.client(once()).await;
    let mon = tokio::spawn(async move {
        let mut stream = client
            .monitor("db", vec![MonitorRequest::new("T").columns(["name"])])
            .await?;
        let first = stream.next_event().await.unwrap()?;
        let second = stream.next_event().await.unwrap()?;
        Ok::<_, Error>((first, second))
    });
    let req = server.request().await;
    assert_eq!(req["method"], "get_schema");
    let schema = json!({"name": "db", "version": "1.0.0", "tables": {"T": {"columns": {"name": {"type": "string"}}}}});
    server.reply(&req["id"], schema).await;
    let req = server.request().await;
    assert_eq!(req["method"], "monitor_cond");
    server
        .send(
            json!({"id": req["id"], "result": null, "error": "unknown method"})
                .to_string()
                .as_bytes(),
        )
        .await;
    let req = server.request().await;
    assert_eq!(req["method"], "monitor");
    assert_eq!(req["params"][2], json!({"T": [{"columns": ["name"]}]}));
    let uuid = "00000000-0000-0000-0000-000000000001";
    server
        .reply(&req["id"], json!({"T": {uuid: {"new": {"name": "a"}}}}))
        .await;
    let rows = json!({"T": {uuid: {"old": {"name": "a"}, "new": {"name": "b"}}}});
    let update = json!({"id": null, "method": "update", "params": [req["params"][1], rows]});
    server.send(update.to_string().as_bytes()).await;
    let (first, second) = timeout(LIMIT, mon).await.unwrap().unwrap().unwrap();
    assert_eq!(first.kind, UpdateKind::Initial);
    assert_eq!(second.kind, UpdateKind::Update);
    let change = &second.changes[0];
    assert_eq!(
        change
            .old
            .as_ref()
            .unwrap()
            .get("name")
            .unwrap()
            .as_str()
            .unwrap(),
        "a"
    );
    assert_eq!(
        change
            .new
            .as_ref()
            .unwrap()
            .get("name")
            .unwrap()
            .as_str()
            .unwrap(),
        "b"
    );
}

#[tokio::test]
async fn dropping_a_request_cancels_it_on_the_server() {
    let peer = Peer::new();
    let (client, mut server) = peer.client(once()).await;
    let slow = client
        .transact("db")
        .op(ovswire_ovsdb::Operation::Comment("blocked".into()))
        .execute();
    assert!(timeout(Duration::from_millis(50), slow).await.is_err());
    let req = server.request().await;
    assert_eq!(req["method"], "transact");
    let cancel = server.request().await;
    assert_eq!(
        cancel,
        json!({"method": "cancel", "params": [req["id"]], "id": null})
    );
}

#[tokio::test]
async fn reconnects_and_queues_requests_during_the_outage() {
    let mut peer = Peer::new();
    let (client, server) = peer.client(ClientConfig::default()).await;
    // The server goes away and refuses connections for a while.
    let path = peer.addr.strip_prefix("unix:").unwrap().to_owned();
    drop(server);
    drop(std::mem::replace(
        &mut peer.listener,
        UnixListener::bind(peer._dir.path().join("other.sock")).unwrap(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.list_dbs().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::remove_file(&path).unwrap();
    let listener = UnixListener::bind(&path).unwrap();
    let (io, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
    let mut server = Script {
        io,
        buf: Vec::new(),
    };
    let req = server.request().await;
    assert_eq!(req["method"], "list_dbs");
    server.reply(&req["id"], json!(["Open_vSwitch"])).await;
    assert_eq!(
        timeout(LIMIT, call).await.unwrap().unwrap().unwrap(),
        ["Open_vSwitch"]
    );
}

#[tokio::test]
async fn requests_give_up_after_the_outage_bound() {
    let peer = Peer::new();
    let reconnect = ovswire_ovsdb::ReconnectConfig {
        request_wait: Duration::from_millis(200),
        ..Default::default()
    };
    let (client, server) = peer
        .client(ClientConfig {
            reconnect: Some(reconnect),
            ..ClientConfig::default()
        })
        .await;
    drop(server);
    drop(peer);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = timeout(LIMIT, client.list_dbs())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Disconnected(_)), "{err}");
}

#[tokio::test]
async fn connects_over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("tcp:{}", listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(Client::connect_with(&addr, once()), listener.accept());
    let (client, (io, _)) = (client.unwrap(), accepted.unwrap());
    let call = tokio::spawn(async move { client.list_dbs().await });
    let (mut rd, mut wr) = io.into_split();
    let mut buf = vec![0u8; 4096];
    let n = timeout(LIMIT, rd.read(&mut buf)).await.unwrap().unwrap();
    let req: Json = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(req["method"], "list_dbs");
    let reply = json!({"id": req["id"], "result": ["Open_vSwitch", "_Server"], "error": null});
    wr.write_all(reply.to_string().as_bytes()).await.unwrap();
    assert_eq!(
        timeout(LIMIT, call).await.unwrap().unwrap().unwrap(),
        ["Open_vSwitch", "_Server"]
    );

    let err = Client::connect_with("tcp:127.0.0.1:1", once())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot connect to tcp:127.0.0.1:1"),
        "{err}"
    );
}

#[tokio::test]
async fn new_connection_runs_over_any_stream() {
    let (ours, theirs) = tokio::io::duplex(64);
    let (conn, client) = ovswire_ovsdb::new_connection(ours, ClientConfig::default());
    let task = tokio::spawn(conn.run());
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.echo().await }
    });
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let mut got = Vec::new();
    let req: Json = loop {
        let mut chunk = [0u8; 16];
        let n = timeout(LIMIT, rd.read(&mut chunk)).await.unwrap().unwrap();
        got.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice(&got) {
            break v;
        }
    };
    // The reply trickles in a few bytes at a time through the 64-byte pipe.
    let reply = json!({"id": req["id"], "result": [], "error": null}).to_string();
    for piece in reply.as_bytes().chunks(3) {
        wr.write_all(piece).await.unwrap();
    }
    timeout(LIMIT, call).await.unwrap().unwrap().unwrap();
    drop(client);
    timeout(LIMIT, task).await.unwrap().unwrap();
}
