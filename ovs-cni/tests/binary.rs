//! The real `ovswire-cni` binary, run the way a CNI runtime runs it (through
//! [`ovswire_cni::Invocation`]): `CNI_*` in the environment, the configuration on stdin, the
//! answer on stdout and in the exit code.

use std::process::{Command as Process, Stdio};

use ovswire_cni::spec::{Code, Command};
use ovswire_cni::{Error, Invocation};
use serde_json::Value;

const PLUGIN: &str = env!("CARGO_BIN_EXE_ovswire-cni");

#[test]
fn version_is_answered_by_the_binary() {
    let json = Invocation::new(PLUGIN, Command::Version)
        .config(r#"{"cniVersion":"1.0.0"}"#)
        .run()
        .unwrap()
        .expect("VERSION prints its answer");
    assert_eq!(json["cniVersion"], "1.0.0");
    assert_eq!(json["supportedVersions"].as_array().unwrap().len(), 5);
}

#[test]
fn errors_go_to_stdout_as_json_and_logs_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cni.sock");
    let conf = format!(
        r#"{{"cniVersion":"0.4.0","name":"ovswire","type":"ovswire-cni","socket":"{}"}}"#,
        socket.display()
    );
    let err = Invocation::new(PLUGIN, Command::Add)
        .container_id("c1")
        .netns("/run/netns/x")
        .ifname("eth1")
        .state_dir(dir.path())
        .config(conf.clone())
        .run()
        .unwrap_err();
    let Error::Failed {
        error: Some(e),
        status,
        stderr,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((e.code, status.code()), (Code::TryAgainLater, Some(11)));
    assert!(e.msg.contains("cannot reach ovswire-agent"), "{e}");
    assert!(
        stderr.starts_with("ovswire-cni: ADD failed with code 11"),
        "{stderr}"
    );

    let err = Invocation::new(PLUGIN, Command::Status)
        .state_dir(dir.path())
        .config(conf.clone())
        .run()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Failed { error: Some(e), status, .. }
            if e.code == Code::Unavailable && status.code() == Some(50)),
        "{err:?}"
    );
}

#[test]
fn no_command_is_an_invalid_environment() {
    // No runtime leaves CNI_COMMAND out, so no Invocation can either: run the binary bare.
    let out = Process::new(PLUGIN)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("run ovswire-cni");
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout holds one JSON value");
    assert_eq!(
        (out.status.code(), json["code"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(json["cniVersion"], "1.1.0");
}
