//! The real `ovswire-cni` binary, run the way a CNI runtime runs it: `CNI_*` in the
//! environment, the configuration on stdin, the answer on stdout and in the exit code.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn plugin(env: &[(&str, &str)], stdin: &str) -> (i32, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovswire-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ovswire-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).expect("stdout holds exactly one JSON value");
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn version_is_answered_by_the_binary() {
    let (code, json, stderr) = plugin(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(code, 0);
    assert_eq!(json["cniVersion"], "1.0.0");
    assert_eq!(json["supportedVersions"].as_array().unwrap().len(), 5);
    assert!(stderr.is_empty());
}

#[test]
fn errors_go_to_stdout_as_json_and_logs_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cni.sock");
    let conf = format!(
        r#"{{"cniVersion":"0.4.0","name":"ovswire","type":"ovswire-cni","socket":"{}"}}"#,
        socket.display()
    );
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth1"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];
    let (code, json, stderr) = plugin(&env, &conf);
    assert_eq!(code, 11);
    assert_eq!(json["code"], 11);
    assert_eq!(json["cniVersion"], "0.4.0");
    assert!(
        json["msg"]
            .as_str()
            .unwrap()
            .contains("cannot reach ovswire-agent"),
        "{json}"
    );
    assert!(
        stderr.starts_with("ovswire-cni: ADD failed with code 11"),
        "{stderr}"
    );

    let (code, json, _) = plugin(&[("CNI_COMMAND", "STATUS")], &conf);
    assert_eq!((code, json["code"].as_u64()), (50, Some(50)));
    let (code, json, _) = plugin(&[], &conf);
    assert_eq!((code, json["code"].as_u64()), (4, Some(4)));
}
