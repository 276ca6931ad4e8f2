//! `ovswire graph --serve` in a real browser: Debian's Chromium, headless, driven through the
//! DevTools protocol. The page loads, draws every node and link, turns a link red within 2 s of
//! `ovswire link down`, and shows a clicked link's counters and history; screenshots are saved
//! beside the test's lab and checked to be whole PNG pictures, while what is drawn is checked in
//! the page itself, not by pixels. Needs root, Open vSwitch and Chromium (scripts/setup installs
//! it).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ovswire_testbed::Testbed;
use serde_json::{Value, json};
use support::{Cli, lab_name};

/// A headless Chromium and a DevTools connection to its page.
struct Browser {
    child: Child,
    page: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `url` in a fresh headless Chromium.
    fn open(url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,800",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            // Its crash reports and caches go to the throwaway profile, not root's home.
            .env("HOME", profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium (scripts/setup installs it)");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        for line in stderr.lines() {
            let line = line.unwrap_or_default();
            if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                break;
            }
        }
        let port = port.expect("chromium printed its DevTools address");
        // The page's own DevTools socket, from the target list.
        let targets = devtools_targets(port);
        let ws = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (page, _) = tungstenite::connect(ws).expect("connect to the page");
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = page.get_ref() {
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        Self {
            child,
            page,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Calls DevTools method `method`; its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let reply = self.page.read().expect("a DevTools message");
            let Ok(text) = reply.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or_default();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of JavaScript expression `expr` in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is `true`, for at most `limit`; how long it took.
    fn until(&mut self, what: &str, expr: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.eval(expr) != Value::Bool(true) {
            assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    /// A screenshot of the page, saved to `path`; its width and height.
    fn screenshot(&mut self, path: &Path) -> (u32, u32) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64(r["data"].as_str().expect("screenshot data"));
        std::fs::write(path, &png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG picture");
        let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// DevTools' list of targets, from its HTTP endpoint (read up to its Content-Length: the
/// server keeps the connection open).
fn devtools_targets(port: u16) -> Value {
    let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        http,
        "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(http);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).expect("the target list")
}

/// Decodes standard base64.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    let clean: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|c| u32::from(value(*c))).collect();
        let n = v.iter().fold(0u32, |acc, x| acc << 6 | x) << (6 * (4 - v.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..v.len()]);
    }
    out
}

/// `ovswire graph --serve 127.0.0.1:0` for the lab; the process and its address.
fn serve(cli: &Cli<'_>) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovswire"))
        .args(["graph", "--serve", "127.0.0.1:0", "--lab", &cli.lab])
        .env("OVSWIRE_STATE_DIR", &cli.state)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .split("at ")
        .nth(1)
        .and_then(|u| u.split_whitespace().next())
        .unwrap_or_else(|| panic!("graph --serve printed no address: {line}"))
        .to_owned();
    (child, url)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root, Open vSwitch and Chromium; scripts/test runs it"
)]
fn the_live_page_draws_the_lab_and_follows_it_in_a_real_browser() {
    let node = Testbed::node("live").unwrap();
    let lab = lab_name("v");
    let cli = Cli::on(&node, &lab);
    let file = node.dir().join("lab.yaml");
    std::fs::write(
        &file,
        format!(
            "lab: {lab}\nnodes:\n  r1:\n  r2:\n  r3:\n  spare:\nlinks:\n\
             - endpoints: [\"r2:eth1\", \"r1:eth1\"]\n\
             - endpoints: [\"r2:eth2\", \"r3:eth1\"]\n"
        ),
    )
    .unwrap();
    cli.up(&file);
    let (mut server, url) = serve(&cli);
    let mut page = Browser::open(&url);

    page.until(
        "the page connected to the live stream, every link's state in",
        "window.ovswireLive !== undefined && ovswireLive.connected && ovswireLive.updates >= 2",
        Duration::from_secs(20),
    );
    assert_eq!(page.eval("document.querySelectorAll('g.node').length"), 4);
    assert_eq!(page.eval("document.querySelectorAll('g.link').length"), 2);
    let link = "r1:eth1--r2:eth1";
    let selector = format!("document.querySelector('g.link[data-link=\"{link}\"]')");
    assert_eq!(page.eval(&format!("{selector}.dataset.state")), "up");
    let shots = node.dir().to_owned();
    let (w, h) = page.screenshot(&shots.join("live-up.png"));
    assert!(w >= 800 && h >= 600, "{w}x{h}");

    // The cable is pulled: the drawing turns red, dashed, within 2 s.
    cli.ok(&["link", "down", "r1:eth1", "--lab", &lab]);
    let took = page.until(
        "the link drawn down",
        &format!(
            "{selector}.dataset.state === 'down' && \
             {selector}.querySelector('path').getAttribute('stroke') === '#d32f2f'"
        ),
        Duration::from_secs(2),
    );
    eprintln!("the page showed the link down {took:?} after `ovswire link down` returned");
    let row = format!("document.querySelector('tr[data-link=\"{link}\"] td.state').textContent");
    assert_eq!(page.eval(&row), "down");
    page.screenshot(&shots.join("live-down.png"));

    // Rates on the links, and a click shows the link's counters and history.
    page.until(
        "rates drawn on the links",
        "ovswireLive.stats > 0 && document.querySelector('g.link text.rate').textContent.includes('bit/s')",
        Duration::from_secs(10),
    );
    page.eval(&format!(
        "{selector}.dispatchEvent(new MouseEvent('click', {{bubbles: true}}))"
    ));
    page.until(
        "the clicked link's panel",
        "!document.getElementById('panel').hidden",
        Duration::from_secs(10),
    );
    let panel = page.eval("document.getElementById('panel-body').textContent");
    let panel = panel.as_str().unwrap_or_default();
    assert!(
        panel.contains("a->b") && panel.contains("history:") && panel.contains("down"),
        "{panel}"
    );
    let _ = server.kill();
    let _ = server.wait();
    cli.ok(&["lab", "down", &lab]);
}
