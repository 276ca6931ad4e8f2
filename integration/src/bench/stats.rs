//! `stats`: what link telemetry costs an agent wiring N links, and how fast a link's change
//! reaches a watcher.
//!
//! One node, N links wired through the agent's Cni API (as in `wire`), the agent serving
//! `/metrics`. Then, with nothing changing:
//! - `idle_cpu_pct`: the agent's CPU (percent of one core) over 10 s with nobody asking;
//! - `stats_cpu_pct`: the same while a `WatchLinkStats` client reads every link's counters each
//!   second (one flow-stats and one port-stats request per second, rates computed);
//! - `scrape_ms_p50`/`scrape_ms_max`: one `/metrics` scrape, over 10 scrapes, and its size;
//! - `watch_ms_p50`/`watch_ms_max`: from `SetLinkState` down (or up) returning to the event
//!   reaching a `WatchLinks` client, over 20 changes (what `ovswire watch` and the live page's
//!   event stream get).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use ovswire_proto::v1::{
    AdminState, Endpoint, LinkRef, SetLinkStateRequest, WatchLinkStatsRequest, WatchLinksRequest,
};
use ovswire_testbed::{Netns, Testbed};

use super::wire::{bench_lab, ends, get_metrics, interfaces, register, up_on};
use super::{Report, progress};
use crate::measure::{percentile, sorted};

const METRICS: &str = "127.0.0.1:9471";

/// CPU seconds (user + system) a process has used.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    ticks / hz as f64
}

/// The agent's CPU in percent of one core over `secs` seconds, while `during` runs.
async fn cpu_pct<F: std::future::Future<Output = ()>>(pid: u32, secs: u64, during: F) -> f64 {
    let (t0, c0) = (Instant::now(), cpu_s(pid));
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(secs)) => {}
        () = during => {}
    }
    let pct = (cpu_s(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    (pct * 100.0).round() / 100.0
}

/// One `GET /metrics` from inside the node; milliseconds and bytes.
fn scrape(node_ns: &Netns) -> Result<(f64, usize)> {
    let (body, ms) = get_metrics(node_ns, METRICS)?;
    Ok((ms, body.len()))
}

/// Runs the scenario.
pub async fn run(links: usize) -> Result<Report> {
    ensure!(
        (1..=15_000).contains(&links),
        "--links must be between 1 and 15000"
    );
    let mut report = Report::new("stats");
    report.set("links", links);
    let node = Testbed::node("bench-stats")?;
    let pods = 2 * links.div_ceil(super::wire::IFACES_PER_POD);
    progress(&format!("wiring {links} links on {pods} pods"));
    let (pod_ns, agent, cni, mut wires) = bench_lab(&node, links, METRICS).await?;
    register(cni, interfaces(links, &pod_ns)).await?;
    let start = Instant::now();
    while up_on(&mut wires, None).await? < links {
        ensure!(
            start.elapsed() < Duration::from_secs(600),
            "links did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the switch and the agent settle after the wiring.
    tokio::time::sleep(Duration::from_secs(3)).await;

    progress("idle: 10 s with nobody asking");
    let pid = agent.pid();
    report.set(
        "idle_cpu_pct",
        cpu_pct(pid, 10, std::future::pending()).await,
    );

    progress("counters every second: 10 s");
    let mut stats = wires
        .clone()
        .watch_link_stats(WatchLinkStatsRequest {
            lab: super::wire::LAB.into(),
            interval_ms: 1000,
        })
        .await?
        .into_inner();
    let reader = async { while let Some(Ok(_)) = stats.next().await {} };
    report.set("stats_cpu_pct", cpu_pct(pid, 10, reader).await);

    progress("10 scrapes of /metrics");
    let mut scrapes = Vec::new();
    let mut size = 0;
    for _ in 0..10 {
        let (ms, bytes) = scrape(node.netns())?;
        scrapes.push(ms);
        size = bytes;
    }
    let s = sorted(&scrapes);
    report.set("scrape_ms_p50", percentile(&s, 50));
    report.set("scrape_ms_max", percentile(&s, 100));
    report.set("scrape_kb", (size as f64 / 1024.0).round());

    progress("20 link changes seen by a watcher");
    let [(pa, ia), (pb, ib)] = ends(0, links);
    let r = LinkRef {
        lab: super::wire::LAB.into(),
        a: Some(Endpoint {
            pod: pa,
            ifname: ia,
        }),
        b: Some(Endpoint {
            pod: pb,
            ifname: ib,
        }),
    };
    let mut events = wires
        .clone()
        .watch_links(WatchLinksRequest {
            lab: super::wire::LAB.into(),
            since_unix_ms: 0,
        })
        .await?
        .into_inner();
    // The initial state of every link comes first.
    for _ in 0..links {
        events.next().await.context("the initial states")??;
    }
    let mut seen = Vec::new();
    for i in 0..20 {
        let admin = if i % 2 == 0 {
            AdminState::Down
        } else {
            AdminState::Up
        };
        wires
            .set_link_state(SetLinkStateRequest {
                r#ref: Some(r.clone()),
                admin: admin as i32,
            })
            .await?;
        let t = Instant::now();
        // The event for this change may have been sent before the call returned.
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .context("no event within 10 s")?
            .context("the watch ended")??;
        ensure!(ev.link.is_some(), "an event without a link");
        seen.push(t.elapsed().as_secs_f64() * 1000.0);
        // Let a state settle before the next change (down, up and their echoes).
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await
        {
        }
    }
    let s = sorted(&seen);
    report.set("watch_ms_p50", percentile(&s, 50));
    report.set("watch_ms_max", percentile(&s, 100));
    drop(agent);
    Ok(report)
}
