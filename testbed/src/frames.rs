//! Raw frames sent across a wire and counted at its far end, for what a wire does to frames
//! (loss, duplication, corruption, reordering, VLAN tags): numbered frames of EtherType 0x88b5
//! (local experimental) go out of one interface; a receiver at the other end counts what
//! arrives. Both sides are Python packet sockets inside named namespaces (`ip netns exec`).

use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// The interpreter of the distribution (a user's `python3` on `PATH` may be another one).
const PYTHON: &str = "/usr/bin/python3";

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Send {
    /// How many frames.
    pub count: usize,
    /// Frames per millisecond at most (a burst faster than the userspace datapath reads a veth
    /// is lost before OVS sees it).
    pub per_ms: usize,
    /// An 802.1Q tag with this VLAN id on every frame.
    pub vlan: Option<u16>,
}

impl Send {
    /// `count` untagged frames, five a millisecond.
    pub fn frames(count: usize) -> Self {
        Self {
            count,
            per_ms: 5,
            vlan: None,
        }
    }
}

/// What arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrived {
    /// Frames.
    pub count: usize,
    /// Frames whose payload was changed on the way.
    pub altered: usize,
    /// Frames carrying the VLAN tag sent (the kernel hands it beside the frame).
    pub tagged: usize,
    /// Intact frames that arrived after a later-numbered one.
    pub reordered: usize,
}

/// The receiver: binds every protocol (the kernel clears a VLAN tag no VLAN device claims
/// before it hands a frame to sockets of one protocol) with the tag beside each frame, and
/// stops 1.5 s after the last frame.
const RECEIVER: &str = r#"import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(263, 8, 1)
s.bind((sys.argv[1], 0))
s.settimeout(1.5)
vid = int(sys.argv[2])
print('ready', flush=True)
n = bad = tag = late = top = 0
while True:
    try: f, anc, _, _ = s.recvmsg(65535, 64)
    except socket.timeout: break
    if f[12:14] != b'\x88\xb5': continue
    n += 1
    for level, kind, data in anc:
        if level == 263 and kind == 8:
            st, _, _, _, _, tci, _ = struct.unpack('IIIHHHH', data[:20])
            if st & 0x10 and tci & 0xfff == vid: tag += 1
    a, b = f[14:18], f[18:22]
    if a != b or any(f[22:]):
        bad += 1
        continue
    seq = int.from_bytes(a, 'big')
    if seq < top: late += 1
    top = max(top, seq)
print(n, bad, tag, late)
"#;

/// The sender: frame `i` carries `i` twice, then zeros.
const SENDER: &str = r#"import socket, sys, time
ifname, count, per_ms, vid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
head = bytes.fromhex('ffffffffffff020000000001')
if vid: head += bytes.fromhex('8100') + vid.to_bytes(2, 'big')
head += bytes.fromhex('88b5')
for i in range(1, count + 1):
    n = i.to_bytes(4, 'big')
    s.send(head + n + n + bytes(92))
    if i % per_ms == 0: time.sleep(0.001)
"#;

fn command(ns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    cmd
}

/// Sends `what` out of `from_if` in namespace `from` and counts what arrives at `to_if` in
/// namespace `to`.
pub fn send_and_count(
    from: &str,
    from_if: &str,
    to: &str,
    to_if: &str,
    what: Send,
) -> Result<Arrived> {
    let vid = what.vlan.unwrap_or(0).to_string();
    let mut rx = command(to, &[PYTHON, "-c", RECEIVER, to_if, &vid])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("start the frame receiver", e))?;
    let stdout = rx.stdout.take().expect("piped");
    let mut out = std::io::BufReader::new(stdout);
    let mut line = String::new();
    let ready = out.read_line(&mut line);
    if ready.is_err() || line.trim() != "ready" {
        let _ = rx.kill();
        let _ = rx.wait();
        return Err(Error::io(
            "start the frame receiver",
            std::io::Error::other(format!("it said {line:?}")),
        ));
    }
    let (count, per_ms) = (what.count.to_string(), what.per_ms.max(1).to_string());
    let sent = command(
        from,
        &[PYTHON, "-c", SENDER, from_if, &count, &per_ms, &vid],
    )
    .output();
    line.clear();
    let read = out.read_line(&mut line);
    let _ = rx.wait();
    let sent = sent.map_err(|e| Error::io("run the frame sender", e))?;
    crate::netns::checked("frame sender", &[from, from_if], sent)?;
    read.map_err(|e| Error::io("read the frame receiver", e))?;
    let nums: Vec<usize> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    match nums[..] {
        [count, altered, tagged, reordered] => Ok(Arrived {
            count,
            altered,
            tagged,
            reordered,
        }),
        _ => Err(Error::io(
            "read the frame receiver",
            std::io::Error::other(format!("it said {line:?}")),
        )),
    }
}
