//! Prometheus metrics: `GET /metrics` on `--metrics-listen`, in the OpenMetrics text format.
//! Each scrape reads every link's counters from OVS once (one flow-stats and one port-stats
//! request), so nothing is polled between scrapes.
//!
//! Per link (labels `lab`, `link`, `node`, and `direction` for the counters):
//! `ovswire_link_packets_total`, `ovswire_link_bytes_total`, `ovswire_link_drops_total`,
//! `ovswire_link_up` (1 when frames cross), `ovswire_link_carrier_changes_total`,
//! `ovswire_link_flaps_total`, `ovswire_link_last_change_timestamp_seconds`. The agent's health:
//! `ovswire_agent_reconcile_rounds_total`, `ovswire_agent_reconcile_seconds_total`,
//! `ovswire_agent_openflow_reconnects_total`, `ovswire_agent_ovsdb_reconnects_total`,
//! `ovswire_agent_links`, `ovswire_agent_links_pending`, `ovswire_agent_peer_up` (label
//! `peer`), `ovswire_agent_start_time_seconds`, `ovswire_agent_stats_errors_total`.
//!
//! Impaired links also have [`IMPAIRMENT_METRICS`]: `ovswire_link_impairment` (label
//! `parameter`: `delay_seconds`, `jitter_seconds`, `loss_ratio`, ..., `rate_bits_per_second`;
//! only the parameters set) and, on the node whose stage carries a direction,
//! `ovswire_link_impairment_frames_total` (label `fate`: `received`, `sent`, `lost`,
//! `overflow`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use ovswire_core::plan::OperState;
use ovswire_core::stats::Direction;

use crate::error::{Error, Result};
use crate::runtime::Agent;

/// Every metric a scrape has (counters with their `_total`), for dashboards and tests.
pub const METRICS: [&str; 16] = [
    "ovswire_link_packets_total",
    "ovswire_link_bytes_total",
    "ovswire_link_drops_total",
    "ovswire_link_up",
    "ovswire_link_carrier_changes_total",
    "ovswire_link_flaps_total",
    "ovswire_link_last_change_timestamp_seconds",
    "ovswire_agent_reconcile_rounds_total",
    "ovswire_agent_reconcile_seconds_total",
    "ovswire_agent_openflow_reconnects_total",
    "ovswire_agent_ovsdb_reconnects_total",
    "ovswire_agent_stats_errors_total",
    "ovswire_agent_links",
    "ovswire_agent_links_pending",
    "ovswire_agent_start_time_seconds",
    "ovswire_agent_peer_up",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    lab: String,
    link: String,
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    lab: String,
    link: String,
    node: String,
    direction: String,
}

/// The metrics only impaired links have.
pub const IMPAIRMENT_METRICS: [&str; 2] = [
    "ovswire_link_impairment",
    "ovswire_link_impairment_frames_total",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImpairLabels {
    lab: String,
    link: String,
    node: String,
    direction: String,
    parameter: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FateLabels {
    lab: String,
    link: String,
    node: String,
    direction: String,
    fate: String,
}

/// An impairment's parameters in base units, by metric label.
fn impairment_values(i: &ovswire_core::impair::Impairment) -> Vec<(&'static str, f64)> {
    let ratio = |ppm: u32| f64::from(ppm) / f64::from(ovswire_core::impair::ALL);
    [
        ("delay_seconds", i.delay_us as f64 / 1e6),
        ("jitter_seconds", i.jitter_us as f64 / 1e6),
        ("jitter_correlation_ratio", ratio(i.jitter_correlation)),
        ("loss_ratio", ratio(i.loss)),
        ("loss_correlation_ratio", ratio(i.loss_correlation)),
        ("corrupt_ratio", ratio(i.corrupt)),
        ("duplicate_ratio", ratio(i.duplicate)),
        ("reorder_ratio", ratio(i.reorder)),
        ("rate_bits_per_second", i.rate as f64),
    ]
    .into_iter()
    .filter(|(_, v)| *v != 0.0)
    .collect()
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

/// Scrapes whose counter reading failed.
static STATS_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Seconds since the Unix epoch.
fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A counter family registered under `name`.
fn counters<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Counter>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let f = Family::<L, Counter>::default();
    registry.register(name, help, f.clone());
    f
}

/// A gauge family registered under `name`.
fn gauges<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Gauge<f64, AtomicU64>>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let f = Family::<L, Gauge<f64, AtomicU64>>::default();
    registry.register(name, help, f.clone());
    f
}

/// The metrics text of one scrape.
pub async fn render(agent: &Agent) -> String {
    let mut r = Registry::with_prefix("ovswire");
    let node = agent.here().node;
    let counters_read = match agent.link_stats().await {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(error = %e, "cannot read the links' counters for a scrape");
            STATS_ERRORS.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    let packets = counters::<DirectionLabels>(
        &mut r,
        "link_packets",
        "Frames that crossed the link in a direction, counted by the link's flow on this node",
    );
    let bytes = counters::<DirectionLabels>(
        &mut r,
        "link_bytes",
        "Bytes that crossed the link in a direction, counted by the link's flow on this node",
    );
    let drops = counters::<DirectionLabels>(
        &mut r,
        "link_drops",
        "Frames of a direction the link's host ports on this node dropped or failed on",
    );
    let up = gauges::<LinkLabels>(
        &mut r,
        "link_up",
        "1 when the link is up (frames cross), 0 otherwise",
    );
    let changes = counters::<LinkLabels>(
        &mut r,
        "link_carrier_changes",
        "Changes between up and not up since the agent started",
    );
    let flaps = counters::<LinkLabels>(
        &mut r,
        "link_flaps",
        "Times the link went from up to not up since the agent started",
    );
    let last_change = gauges::<LinkLabels>(
        &mut r,
        "link_last_change_timestamp_seconds",
        "When the link last changed state (0: not since the agent started)",
    );
    let impairment = gauges::<ImpairLabels>(
        &mut r,
        "link_impairment",
        "A parameter of a direction's impairment, in base units (seconds, ratio, bits/s)",
    );
    let fates = counters::<FateLabels>(
        &mut r,
        "link_impairment_frames",
        "Frames of an impaired direction this node's stage took in, sent on, lost, and dropped \
         for a full queue",
    );
    for (key, dir, [received, sent, lost, overflow]) in agent.impair_counters() {
        for (fate, v) in [
            ("received", received),
            ("sent", sent),
            ("lost", lost),
            ("overflow", overflow),
        ] {
            fates
                .get_or_create(&FateLabels {
                    lab: key.lab().to_owned(),
                    link: key.name(),
                    node: node.clone(),
                    direction: dir.to_string(),
                    fate: fate.to_owned(),
                })
                .inc_by(v);
        }
    }
    let mut pending = 0.0;
    let links = agent.links();
    for (spec, status) in &links {
        let key = &spec.key;
        let labels = LinkLabels {
            lab: key.lab().to_owned(),
            link: key.name(),
            node: node.clone(),
        };
        if matches!(status, OperState::Pending(_)) {
            pending += 1.0;
        }
        up.get_or_create(&labels)
            .set(if *status == OperState::Up { 1.0 } else { 0.0 });
        let carrier = agent.telemetry().carrier(key);
        changes.get_or_create(&labels).inc_by(carrier.changes);
        flaps.get_or_create(&labels).inc_by(carrier.flaps);
        last_change
            .get_or_create(&labels)
            .set(carrier.last_change.map_or(0.0, unix_seconds));
        for d in Direction::BOTH {
            for (parameter, v) in impairment_values(spec.impair.get(d)) {
                impairment
                    .get_or_create(&ImpairLabels {
                        lab: labels.lab.clone(),
                        link: labels.link.clone(),
                        node: node.clone(),
                        direction: d.to_string(),
                        parameter: parameter.to_owned(),
                    })
                    .set(v);
            }
        }
        if let Some(c) = counters_read.as_ref().and_then(|c| c.get(key)) {
            for d in Direction::BOTH {
                let l = DirectionLabels {
                    lab: labels.lab.clone(),
                    link: labels.link.clone(),
                    node: node.clone(),
                    direction: d.to_string(),
                };
                let v = c.get(d);
                packets.get_or_create(&l).inc_by(v.packets);
                bytes.get_or_create(&l).inc_by(v.bytes);
                drops.get_or_create(&l).inc_by(v.drops);
            }
        }
    }

    let t = agent.telemetry();
    let single = |r: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        r.register(name, help, c);
    };
    let gauge = |r: &mut Registry, name: &str, help: &str, v: f64| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(v);
        r.register(name, help, g);
    };
    single(
        &mut r,
        "agent_reconcile_rounds",
        "Reconcile rounds run",
        t.rounds.load(Ordering::Relaxed),
    );
    let seconds = Counter::<f64, AtomicU64>::default();
    seconds.inc_by(t.round_micros.load(Ordering::Relaxed) as f64 / 1e6);
    r.register(
        "agent_reconcile_seconds",
        "Time spent in reconcile rounds",
        seconds,
    );
    let step_seconds = Family::<StepLabel, Counter<f64, AtomicU64>>::default();
    let step_count = Family::<StepLabel, Counter>::default();
    for (step, took, count) in t.steps() {
        let l = StepLabel {
            step: step.name().to_owned(),
        };
        step_seconds.get_or_create(&l).inc_by(took.as_secs_f64());
        step_count.get_or_create(&l).inc_by(count);
    }
    r.register(
        "agent_step_seconds",
        "Time spent in each step of the agent's work (steps of concurrent ADDs overlap)",
        step_seconds,
    );
    r.register(
        "agent_steps",
        "How many times each step of the agent's work ran",
        step_count,
    );
    single(
        &mut r,
        "agent_openflow_reconnects",
        "Times the OpenFlow connection to the bridge was made again",
        t.openflow_reconnects.load(Ordering::Relaxed),
    );
    single(
        &mut r,
        "agent_ovsdb_reconnects",
        "Times the OVSDB connection was made again",
        agent.ovsdb_reconnects().await,
    );
    single(
        &mut r,
        "agent_stats_errors",
        "Scrapes whose reading of the links' counters failed",
        STATS_ERRORS.load(Ordering::Relaxed),
    );
    gauge(
        &mut r,
        "agent_links",
        "Links this agent knows",
        links.len() as f64,
    );
    gauge(
        &mut r,
        "agent_links_pending",
        "Links waiting for an end, a tunnel or the far node",
        pending,
    );
    gauge(
        &mut r,
        "agent_start_time_seconds",
        "When the agent started",
        unix_seconds(t.started),
    );
    let peers = gauges::<PeerLabels>(
        &mut r,
        "agent_peer_up",
        "1 when the peer node's agent answers, 0 when it was given up on",
    );
    for (peer, reporting) in t.peers() {
        peers
            .get_or_create(&PeerLabels { peer })
            .set(if reporting { 1.0 } else { 0.0 });
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
        warn!(error = %e, "cannot encode the metrics");
    }
    out
}

async fn answer(
    agent: Arc<Agent>,
    req: Request<hyper::body::Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    Ok(match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(&agent).await,
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "ovswire-agent serves GET /metrics here\n".into(),
        ),
    })
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, agent: Arc<Agent>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("bind --metrics-listen {addr}")))?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "metrics listener failed to accept");
                    continue;
                }
            };
            let agent = agent.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(agent.clone(), req));
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(io, service);
                if let Err(e) = conn.await {
                    debug!(%peer, error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::METRICS;

    #[test]
    fn the_grafana_dashboard_asks_only_for_metrics_the_agent_serves() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/ovswire-lab.json"
        );
        let text = std::fs::read_to_string(path).expect("the dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut asked = 0;
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("a PromQL expression");
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("ovswire_") {
                        asked += 1;
                        assert!(METRICS.contains(&word), "the dashboard asks for {word}");
                    }
                }
            }
        }
        assert!(asked > 10, "the dashboard uses the metrics");
    }
}
