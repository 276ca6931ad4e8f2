//! The agent's local sockets (CNI and Wires) are root's alone: made so before anyone can
//! connect, and another user's connection is closed unanswered even if their mode is opened up.
//!
//! Needs root, Open vSwitch, `setpriv` (util-linux) and Debian's `/usr/bin/python3`, and the
//! workspace binaries.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use ovswire_integration::agent::{AgentProcess, Binaries};
use ovswire_testbed::Testbed;

/// Speaks the first words of HTTP/2 (what gRPC runs on) on the unix socket `path`, as root or
/// as user `uid`: whether the server answered with its own SETTINGS.
fn answers(path: &Path, uid: Option<u32>) -> Result<bool> {
    const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    got = s.recv(64)
except OSError as e:
    print(e)
    sys.exit(2)
sys.exit(0 if got else 1)
"#;
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "/usr/bin/python3",
            ]);
            c
        }
        None => Command::new("/usr/bin/python3"),
    };
    let out = cmd
        .args(["-c", CLIENT])
        .arg(path)
        .output()
        .context("run the python client")?;
    Ok(out.status.success())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn the_agent_s_sockets_are_root_s_alone() -> Result<()> {
    let bins = Binaries::locate()?;
    let node = Testbed::node("sockets")?;
    let agent = AgentProcess::start(&node, &bins, None)?;
    let nobody = 65534;
    // Only the sockets' own mode keeps other users out of them, not the directory's.
    std::fs::set_permissions(node.dir(), std::fs::Permissions::from_mode(0o711))?;
    for socket in [agent.cni_socket(), agent.wires_socket()] {
        let shown = socket.display();
        let meta = std::fs::metadata(socket)?;
        assert!(meta.file_type().is_socket(), "{shown}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{shown}");
        assert_eq!(meta.uid(), 0, "{shown}");
        assert!(answers(socket, None)?, "{shown}: root is not answered");
        assert!(
            !answers(socket, Some(nobody))?,
            "{shown}: another user got in"
        );
        // Were its mode opened up, the agent itself still closes the connection.
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))?;
        assert!(
            !answers(socket, Some(nobody))?,
            "{shown}: another user was answered through an open mode"
        );
        assert!(answers(socket, None)?, "{shown}: root is not answered");
    }
    assert!(
        agent
            .log()
            .contains("refused a connection from another user"),
        "{}",
        agent.log()
    );
    // Nothing of the binding is left beside the sockets.
    let left: Vec<String> = std::fs::read_dir(node.dir())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".bind-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn the_wires_tcp_listener_wants_its_token() -> Result<()> {
    let bins = Binaries::locate()?;
    let node = Testbed::node("wirestcp")?;
    let token = node.dir().join("wires-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n")?;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    let topology = "lab: tok\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n";

    // Without a token file the agent does not serve TCP at all.
    let refused = AgentProcess::start_with_args(
        &node,
        &bins,
        Some(topology),
        &["--wires-listen=127.0.0.1:7070".into()],
    )
    .err()
    .context("an agent served the Wires API over TCP without a token")?;
    assert!(
        format!("{refused:#}").contains("--wires-token-file"),
        "{refused:#}"
    );

    let _agent = AgentProcess::start_with_args(
        &node,
        &bins,
        Some(topology),
        &[
            "--wires-listen=127.0.0.1:7070".into(),
            format!("--wires-token-file={}", token.display()),
        ],
    )?;
    let cli = bins.dir.join("ovswire");
    let links = |extra: &[&str]| -> Result<std::process::Output> {
        let mut args = vec!["links", "--server", "http://127.0.0.1:7070"];
        args.extend_from_slice(extra);
        node.netns()
            .output(cli.to_str().context("a UTF-8 path")?, &args)
            .map_err(Into::into)
    };
    let without = links(&[])?;
    assert!(!without.status.success(), "{without:?}");
    let err = String::from_utf8_lossy(&without.stderr);
    assert!(err.contains("missing or wrong token"), "{err}");

    let wrong = node.dir().join("wrong-token");
    std::fs::write(&wrong, "not-the-token-0123456789")?;
    let with_wrong = links(&["--token-file", wrong.to_str().context("UTF-8")?])?;
    assert!(!with_wrong.status.success(), "{with_wrong:?}");

    let with = links(&["--token-file", token.to_str().context("UTF-8")?])?;
    let out = String::from_utf8_lossy(&with.stdout);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(out.contains("r1:eth1--r2:eth1"), "{out}");
    Ok(())
}
