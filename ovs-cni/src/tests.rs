//! The plugin against injected environments and stdin, and a fake agent on a real unix socket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ovswire_proto::v1::cni_server::{Cni, CniServer};
use tokio_stream::wrappers::UnixListenerStream;

use super::*;

#[derive(Debug, Default, Clone)]
struct Env(BTreeMap<String, String>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn env(command: &str) -> Env {
    let mut e = Env::default();
    for (k, v) in [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/r1"),
        ("CNI_IFNAME", "eth1"),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1"),
        ("CNI_PATH", "/opt/cni/bin"),
        // The fake agents' sockets are in temporary directories.
        (STATE_DIR_VAR, std::env::temp_dir().to_str().unwrap()),
    ] {
        e.0.insert(k.into(), v.into());
    }
    e
}

fn conf(socket: &Path) -> String {
    json!({"cniVersion": "1.0.0", "name": "ovswire", "type": "ovswire-cni", "socket": socket})
        .to_string()
}

fn invoke(env: &Env, stdin: &str, deadline: Duration) -> (Outcome, Value) {
    let out = run(env, &mut stdin.as_bytes(), deadline);
    let json = if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("stdout is JSON")
    };
    (out, json)
}

fn assert_error(out: &Outcome, json: &Value, code: Code) {
    let code = u32::from(code);
    assert_eq!(json["code"], code, "{json}");
    assert_eq!(u32::from(out.exit_code), code);
    assert!(
        json["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert!(json["cniVersion"].is_string(), "{json}");
    assert!(
        out.stderr.contains(&format!("code {code}")),
        "{}",
        out.stderr
    );
}

#[test]
fn version_needs_no_agent() {
    let (out, json) = invoke(&env("VERSION"), r#"{"cniVersion":"0.4.0"}"#, DEADLINE);
    assert_eq!(out.exit_code, 0);
    assert_eq!(json["cniVersion"], "0.4.0");
    assert_eq!(
        json["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    for stdin in ["", "garbage", r#"{"cniVersion":"9.9.9"}"#] {
        let (out, json) = invoke(&env("VERSION"), stdin, DEADLINE);
        assert_eq!(out.exit_code, 0, "{stdin:?}");
        assert_eq!(json["cniVersion"], "1.1.0");
    }
}

#[test]
fn bad_invocations_fail_without_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let good = conf(&dir.path().join("none.sock"));
    let mut no_command = env("ADD");
    no_command.0.remove("CNI_COMMAND");
    let cases = [
        (no_command, good.as_str(), Code::InvalidEnv),
        (env("BOGUS"), good.as_str(), Code::InvalidEnv),
        (env("ADD"), "{not json", Code::Decode),
        (env("DEL"), "[1]", Code::Decode),
        (
            env("ADD"),
            r#"{"cniVersion":"1.0.0","socket":5}"#,
            Code::InvalidConfig,
        ),
    ];
    for (env, stdin, code) in cases {
        let (out, json) = invoke(&env, stdin, DEADLINE);
        assert_error(&out, &json, code);
    }
}

#[test]
fn unreadable_stdin_is_an_io_failure() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("pipe broke"))
        }
    }
    let out = run(&env("ADD"), &mut Broken, DEADLINE);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_error(&out, &json, Code::Io);
    assert!(json["msg"].as_str().unwrap().contains("pipe broke"));
}

#[test]
fn unreachable_agent_means_try_again_and_status_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    for socket in [&missing, &stale] {
        for (command, code) in [
            ("ADD", Code::TryAgainLater),
            ("DEL", Code::TryAgainLater),
            ("CHECK", Code::TryAgainLater),
            ("GC", Code::TryAgainLater),
            ("STATUS", Code::Unavailable),
        ] {
            let start = Instant::now();
            let (out, json) = invoke(&env(command), &conf(socket), DEADLINE);
            assert_error(&out, &json, code);
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "connect failures are fast"
            );
            let msg = json["msg"].as_str().unwrap();
            assert!(msg.contains(&socket.display().to_string()), "{msg}");
            assert_eq!(json["cniVersion"], "1.0.0");
        }
    }
}

#[test]
fn default_socket_is_used_when_none_is_configured() {
    let peek = Peek::new(br#"{"cniVersion":"1.1.0","name":"n"}"#);
    assert_eq!(
        peek.socket(&Env::default()).unwrap(),
        Path::new(DEFAULT_SOCKET)
    );
    assert_eq!(peek.version, Some(Version::V1_1_0));
}

/// What the fake agent does with each request.
#[derive(Debug, Clone)]
enum Behaviour {
    Answer(CniResponse),
    Fail(tonic::Status),
    Stall,
}

#[derive(Debug)]
struct FakeAgent {
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<(String, CniRequest)>>>,
}

impl FakeAgent {
    async fn answer(
        &self,
        method: &str,
        req: tonic::Request<CniRequest>,
    ) -> Result<tonic::Response<CniResponse>, tonic::Status> {
        self.seen
            .lock()
            .unwrap()
            .push((method.to_owned(), req.into_inner()));
        match &self.behaviour {
            Behaviour::Answer(r) => Ok(tonic::Response::new(r.clone())),
            Behaviour::Fail(s) => Err(s.clone()),
            Behaviour::Stall => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(tonic::Status::aborted("stalled"))
            }
        }
    }
}

#[tonic::async_trait]
impl Cni for FakeAgent {
    async fn add(
        &self,
        r: tonic::Request<CniRequest>,
    ) -> Result<tonic::Response<CniResponse>, tonic::Status> {
        self.answer("add", r).await
    }
    async fn del(
        &self,
        r: tonic::Request<CniRequest>,
    ) -> Result<tonic::Response<CniResponse>, tonic::Status> {
        self.answer("del", r).await
    }
    async fn check(
        &self,
        r: tonic::Request<CniRequest>,
    ) -> Result<tonic::Response<CniResponse>, tonic::Status> {
        self.answer("check", r).await
    }
    async fn status(
        &self,
        r: tonic::Request<CniRequest>,
    ) -> Result<tonic::Response<CniResponse>, tonic::Status> {
        self.answer("status", r).await
    }
    async fn gc(
        &self,
        r: tonic::Request<CniRequest>,
    ) -> Result<tonic::Response<CniResponse>, tonic::Status> {
        self.answer("gc", r).await
    }
}

/// A fake agent serving on a unix socket from its own thread, for as long as it lives.
struct Served {
    socket: PathBuf,
    seen: Arc<Mutex<Vec<(String, CniRequest)>>>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn serve(behaviour: Behaviour) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cni.sock");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agent = FakeAgent {
        behaviour,
        seen: seen.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = socket.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&path).unwrap();
            ready_tx.send(()).unwrap();
            let _ = tonic::transport::Server::builder()
                .add_service(CniServer::new(agent))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    ready_rx.recv().unwrap();
    Served {
        socket,
        seen,
        _dir: dir,
        _stop: stop,
    }
}

#[test]
fn requests_are_forwarded_as_the_runtime_made_them() {
    let result = br#"{"cniVersion":"1.0.0","interfaces":[]}"#.to_vec();
    let agent = serve(Behaviour::Answer(CniResponse {
        result: result.clone(),
        error: None,
    }));
    let stdin = conf(&agent.socket);
    let (out, _) = invoke(&env("ADD"), &stdin, DEADLINE);
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout, result,
        "the agent's result is printed byte for byte"
    );
    assert!(out.stderr.is_empty());
    let seen = agent.seen.lock().unwrap().clone();
    let (method, req) = &seen[0];
    assert_eq!(method, "add");
    assert_eq!(
        req,
        &CniRequest {
            container_id: "c1".into(),
            netns: "/run/netns/r1".into(),
            ifname: "eth1".into(),
            args: "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1".into(),
            path: "/opt/cni/bin".into(),
            network_config: stdin.clone().into_bytes(),
        }
    );
    for (command, method) in [
        ("DEL", "del"),
        ("CHECK", "check"),
        ("STATUS", "status"),
        ("GC", "gc"),
    ] {
        let (out, _) = invoke(&env(command), &stdin, DEADLINE);
        assert_eq!(out.exit_code, 0);
        assert_eq!(agent.seen.lock().unwrap().last().unwrap().0, method);
    }
}

#[test]
fn agent_errors_are_printed_with_their_code() {
    let agent = serve(Behaviour::Answer(CniResponse {
        result: Vec::new(),
        error: Some(ovswire_proto::v1::CniError {
            code: 7,
            msg: "interface eth1 already exists in the pod".into(),
            details: "pick another name".into(),
        }),
    }));
    let (out, json) = invoke(&env("ADD"), &conf(&agent.socket), DEADLINE);
    assert_error(&out, &json, Code::InvalidConfig);
    assert_eq!(json["msg"], "interface eth1 already exists in the pod");
    assert_eq!(json["details"], "pick another name");
}

#[test]
fn unusable_answers_are_protocol_errors() {
    let empty = serve(Behaviour::Answer(CniResponse::default()));
    let (out, json) = invoke(&env("ADD"), &conf(&empty.socket), DEADLINE);
    assert_error(&out, &json, Code::AgentProtocol);
    let (out, _) = invoke(&env("DEL"), &conf(&empty.socket), DEADLINE);
    assert_eq!(out.exit_code, 0, "DEL has no result");

    let failing = serve(Behaviour::Fail(tonic::Status::unimplemented(
        "no such method",
    )));
    let (out, json) = invoke(&env("CHECK"), &conf(&failing.socket), DEADLINE);
    assert_error(&out, &json, Code::AgentProtocol);

    let gone = serve(Behaviour::Fail(tonic::Status::unavailable("shutting down")));
    let (out, json) = invoke(&env("ADD"), &conf(&gone.socket), DEADLINE);
    assert_error(&out, &json, Code::TryAgainLater);
    let (out, json) = invoke(&env("STATUS"), &conf(&gone.socket), DEADLINE);
    assert_error(&out, &json, Code::Unavailable);

    let no_code = serve(Behaviour::Answer(CniResponse {
        result: Vec::new(),
        error: Some(ovswire_proto::v1::CniError::default()),
    }));
    let (out, json) = invoke(&env("DEL"), &conf(&no_code.socket), DEADLINE);
    assert_error(&out, &json, Code::AgentProtocol);
}

#[test]
fn a_stalled_agent_times_out() {
    let agent = serve(Behaviour::Stall);
    let deadline = Duration::from_millis(300);
    for (command, code) in [
        ("ADD", Code::TryAgainLater),
        ("DEL", Code::TryAgainLater),
        ("STATUS", Code::Unavailable),
    ] {
        let start = Instant::now();
        let (out, json) = invoke(&env(command), &conf(&agent.socket), deadline);
        let took = start.elapsed();
        assert_error(&out, &json, code);
        assert!(took >= deadline && took < deadline * 4, "{took:?}");
        assert!(
            json["msg"].as_str().unwrap().contains("did not answer"),
            "{json}"
        );
    }
}

#[test]
fn only_sockets_under_ovswire_s_directories_are_dialled() {
    let state = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut e = env("ADD");
    e.0.insert(STATE_DIR_VAR.into(), state.path().display().to_string());
    let outside = elsewhere.path().join("cni.sock");
    std::fs::write(&outside, "").unwrap();
    let link = state.path().join("link.sock");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let escape = state.path().join("..").join(
        elsewhere
            .path()
            .strip_prefix(std::env::temp_dir())
            .unwrap()
            .join("cni.sock"),
    );
    for socket in [
        outside.as_path(),
        &link,
        &escape,
        Path::new("/proc/self/cwd/x.sock"),
    ] {
        let (out, json) = invoke(&e, &conf(socket), Duration::from_secs(5));
        assert_error(&out, &json, Code::InvalidConfig);
        assert!(
            json["msg"]
                .as_str()
                .unwrap()
                .contains("is not an ovswire agent's"),
            "{}: {json}",
            socket.display()
        );
    }
    // Under the state directory (not there yet): dialled, and unreachable.
    let (out, json) = invoke(
        &e,
        &conf(&state.path().join("labs/x/cni.sock")),
        Duration::from_secs(5),
    );
    assert_error(&out, &json, Code::TryAgainLater);
    // Without the variable, only /run/ovswire: the default socket is dialled.
    e.0.remove(STATE_DIR_VAR);
    let (out, json) = invoke(&e, &conf(&link), Duration::from_secs(5));
    assert_error(&out, &json, Code::InvalidConfig);
}
