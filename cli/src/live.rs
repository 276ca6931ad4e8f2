//! `ovswire graph --serve`: one page that draws a lab and keeps it live. The page (the same
//! drawing as `graph --format html`, plus an inline script: nothing is fetched from anywhere
//! else) follows server-sent events from `/events`: every link event the agent publishes
//! (colour by state) and every link's rates each second (labels on the links). A click on a
//! link shows its counters and history, from `/link?name=...`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use ovswire_proto::v1::Link;
use serde_json::json;
use tokio::net::TcpListener;

use crate::graph::{self, DrawnState};
use crate::spec::LabSpec;
use crate::wires::{self, Target, Wires};

/// The page's script and the panel it fills: states from `link` events, rates from `stats`
/// events, counters and history of a clicked link. `window.ovswireLive` tells tests (and the
/// curious) whether the event stream is connected and how many updates arrived.
const LIVE: &str = r##"<p id="status">connecting to the lab's agent…</p>
<div id="panel" hidden><h2 id="panel-title"></h2><pre id="panel-body"></pre></div>
<style>
g.link { cursor: pointer; }
#status { color: #616161; }
#panel { border: 1px solid #e0e0e0; padding: 0.5em 1em; margin-top: 1em; }
</style>
<script>
(function () {
  "use strict";
  var colors = { "up": "#2e7d32", "down": "#d32f2f", "no-carrier": "#d32f2f",
                 "error": "#d32f2f", "pending": "#9e9e9e", "unknown": "#607d8b" };
  var dashes = { "down": "8 5", "no-carrier": "8 5", "error": "8 5", "pending": "2 4" };
  var live = window.ovswireLive = { connected: false, updates: 0, stats: 0 };
  var status = document.getElementById("status");
  function all(selector, name) {
    return document.querySelectorAll(selector + '[data-link="' + CSS.escape(name) + '"]');
  }
  function setState(name, state, reason) {
    all("g.link", name).forEach(function (g) {
      g.setAttribute("class", "link " + state);
      g.dataset.state = state;
      var path = g.querySelector("path");
      path.setAttribute("stroke", colors[state] || colors.unknown);
      if (dashes[state]) { path.setAttribute("stroke-dasharray", dashes[state]); }
      else { path.removeAttribute("stroke-dasharray"); }
      g.querySelector("title").textContent =
        name + " (" + state + (reason ? ": " + reason : "") + ")";
    });
    all("tr", name).forEach(function (tr) {
      var cell = tr.querySelector("td.state");
      cell.textContent = state;
      cell.style.color = colors[state] || colors.unknown;
    });
  }
  function bits(bps) {
    var units = [[1e9, "Gbit/s"], [1e6, "Mbit/s"], [1e3, "kbit/s"]];
    for (var i = 0; i < units.length; i++) {
      if (bps >= units[i][0]) { return (bps / units[i][0]).toFixed(1) + " " + units[i][1]; }
    }
    return Math.round(bps) + " bit/s";
  }
  var events = new EventSource("events");
  events.onopen = function () { live.connected = true; status.textContent = "live"; };
  events.onerror = function () { live.connected = false; status.textContent = "reconnecting…"; };
  events.addEventListener("link", function (e) {
    var d = JSON.parse(e.data);
    setState(d.link, d.state, d.reason);
    live.updates++;
  });
  events.addEventListener("stats", function (e) {
    JSON.parse(e.data).forEach(function (d) {
      all("g.link", d.link).forEach(function (g) {
        var t = g.querySelector("text.rate");
        if (t) { t.textContent = bits(d.a_to_b_bps) + " / " + bits(d.b_to_a_bps); }
      });
    });
    live.stats++;
  });
  function show(name) {
    fetch("link?name=" + encodeURIComponent(name)).then(function (r) { return r.json(); })
      .then(function (d) {
        document.getElementById("panel-title").textContent = name;
        var lines = [];
        if (d.stats) {
          var s = d.stats;
          lines.push("state " + d.state + (d.reason ? " (" + d.reason + ")" : ""));
          ["a_to_b", "b_to_a"].forEach(function (k) {
            var x = s[k];
            lines.push((k === "a_to_b" ? "a->b" : "b->a") + "  " + x.packets + " packets  " +
              x.bytes + " bytes  " + x.drops + " drops");
          });
          lines.push("flaps " + s.flaps + ", carrier changes " + s.carrier_changes +
            " (counted on " + s.node + ")");
        }
        lines.push("", "history:");
        d.history.forEach(function (h) {
          lines.push(h.time + "  " + h.state + (h.reason ? "  (" + h.reason + ")" : "") +
            "  on " + h.node + (h.note ? "  [" + h.note + "]" : ""));
        });
        document.getElementById("panel-body").textContent = lines.join("\n");
        document.getElementById("panel").hidden = false;
      });
  }
  document.querySelectorAll("g.link").forEach(function (g) {
    g.addEventListener("click", function () { show(g.dataset.link); });
  });
}());
</script>
"##;

/// What the server needs for every request.
#[derive(Debug)]
struct Site {
    spec: LabSpec,
    target: Target,
    lab: String,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn reply(status: StatusCode, kind: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// The page, with the states the agent reports now.
async fn page(site: &Site) -> String {
    let states = match Wires::connect(&site.target).await {
        Ok(w) => w.links(&site.lab).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let state = |l: &crate::spec::LabLink| {
        states
            .iter()
            .find(|s| wires::link_name(s) == l.agent_name())
            .map_or(DrawnState::Unknown, drawn)
    };
    graph::page(&site.spec, &state, LIVE)
}

fn drawn(l: &Link) -> DrawnState {
    match wires::state_word(l) {
        "up" => DrawnState::Up,
        "down" | "no-carrier" | "error" => DrawnState::Down,
        "pending" => DrawnState::Pending,
        _ => DrawnState::Unknown,
    }
}

/// One server-sent event.
fn sse(event: &str, data: &serde_json::Value) -> Frame<Bytes> {
    Frame::data(Bytes::from(format!("event: {event}\ndata: {data}\n\n")))
}

/// The event stream of one page: the links' states (now, then every change) and their rates
/// every second, until the page goes away.
async fn events(site: Arc<Site>) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Frame<Bytes>>(64);
    tokio::spawn(async move {
        let Ok(w) = Wires::connect(&site.target).await else {
            return;
        };
        let Ok(mut changes) = w.watch(&site.lab, None).await else {
            return;
        };
        let Ok(mut stats) = w.watch_stats(&site.lab, Duration::from_secs(1)).await else {
            return;
        };
        // A comment first, so the browser sees the stream open at once.
        if tx
            .send(Frame::data(Bytes::from(": ovswire\n\n")))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let frame = tokio::select! {
                ev = changes.message() => match ev {
                    Ok(Some(ev)) => {
                        let Some(l) = ev.link else { continue };
                        sse("link", &json!({
                            "link": wires::link_name(&l),
                            "state": if ev.removed { "unknown" } else { wires::state_word(&l) },
                            "reason": l.reason,
                        }))
                    }
                    _ => return,
                },
                up = stats.message() => match up {
                    Ok(Some(up)) => {
                        let rates: Vec<serde_json::Value> = up.links.iter().map(|l| {
                            let s = l.stats.clone().unwrap_or_default();
                            json!({
                                "link": wires::link_name(l),
                                "a_to_b_bps": s.a_to_b.unwrap_or_default().bits_per_second,
                                "b_to_a_bps": s.b_to_a.unwrap_or_default().bits_per_second,
                            })
                        }).collect();
                        sse("stats", &serde_json::Value::Array(rates))
                    }
                    _ => return,
                },
                () = tx.closed() => return,
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut r = reply(
        StatusCode::OK,
        "text/event-stream",
        BodyExt::boxed(StreamBody::new(stream)),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// `%xx`-decoded `s` (`+` is a space), for a query parameter.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A link's counters, state and history, as JSON.
async fn link(site: &Site, query: &str) -> Response<Body> {
    let name = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("name="))
        .map(decode)
        .unwrap_or_default();
    let answer = async {
        let w = Wires::connect(&site.target).await?;
        let links = w.links_with_stats(&site.lab).await?;
        let l = links
            .iter()
            .find(|l| wires::link_name(l) == name)
            .with_context(|| format!("lab {} has no link {name}", site.lab))?;
        let history: Vec<serde_json::Value> = w
            .history(&site.lab, &name)
            .await?
            .iter()
            .filter_map(|e| {
                let l = e.link.as_ref()?;
                Some(json!({
                    "time": wires::time_of_day(e.time_unix_ms),
                    "state": if e.removed { "removed" } else { wires::state_word(l) },
                    "reason": l.reason,
                    "node": e.node,
                    "note": e.note,
                }))
            })
            .collect();
        let mut v = wires::json(l);
        v["history"] = serde_json::Value::Array(history);
        anyhow::Ok(v)
    };
    match answer.await {
        Ok(v) => reply(StatusCode::OK, "application/json", full(v.to_string())),
        Err(e) => reply(
            StatusCode::NOT_FOUND,
            "application/json",
            full(json!({ "error": format!("{e:#}") }).to_string()),
        ),
    }
}

async fn answer(site: Arc<Site>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if req.method() != hyper::Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            full("only GET\n"),
        );
    }
    match req.uri().path() {
        "/" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            full(page(&site).await),
        ),
        "/events" => events(site).await,
        "/link" => link(&site, req.uri().query().unwrap_or("")).await,
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            full("this server has /, /events and /link?name=LINK\n"),
        ),
    }
}

/// Serves the live page of lab `lab` (drawn from `spec`, live from the agent at `target`) on
/// `addr` until the process ends; calls `ready` with the address once it listens.
pub async fn serve(
    spec: LabSpec,
    lab: String,
    target: Target,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve on {addr}; is the port free?"))?;
    ready(listener.local_addr()?);
    let site = Arc::new(Site { spec, target, lab });
    loop {
        let (stream, _) = listener.accept().await.context("accept a connection")?;
        let site = site.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(answer(site, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(decode("r1%3Aeth1--r2%3Aeth1"), "r1:eth1--r2:eth1");
        assert_eq!(decode("a+b%2"), "a b%2");
        assert_eq!(decode("%zz"), "%zz");
    }
}
