//! `impair`: every impairment parameter asked and measured over real traffic on one wire the
//! agent built, with the same wire unimpaired in the same run as the baseline: delay (ping),
//! jitter (standard deviation of ping), loss, duplication and corruption (numbered raw frames
//! counted at the far end), reordering, rate (iperf3 TCP); and what the impairment path costs:
//! TCP through a `delay=1ms` direction next to the direct path, and the stage's CPU; how long
//! a change takes to apply; and a second, never impaired wire's TCP before and next to it.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ovswire_core::impair::LinkImpairment;
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_proto::v1::{Endpoint, LinkRef, SetLinkImpairmentRequest};
use ovswire_testbed::frames::{self, Arrived};
use ovswire_testbed::{Netns, Testbed};
use serde_json::json;
use tonic::transport::Channel;

use super::tcp::{iperf_bps, wait_up};
use super::{Report, progress};
use crate::agent::{AgentProcess, Binaries, cni_client, grpc_add};

const LAB: &str = "impair";
/// Frames sent for each share measured.
const FRAMES: usize = 10_000;
/// Seconds of each iperf3 run.
const SECS: u32 = 5;

fn link_ref() -> LinkRef {
    let end = |pod: &str| {
        Some(Endpoint {
            pod: pod.into(),
            ifname: "eth1".into(),
        })
    };
    LinkRef {
        lab: LAB.into(),
        a: end("r1"),
        b: end("r2"),
    }
}

/// Sets the wire's impairments; how long the call took (it returns once they apply), in ms.
async fn set(wires: &mut WiresClient<Channel>, text: &str) -> Result<f64> {
    let imp: LinkImpairment = text.parse()?;
    let began = std::time::Instant::now();
    wires
        .set_link_impairment(SetLinkImpairmentRequest {
            r#ref: Some(link_ref()),
            impairment: Some((&imp).into()),
        })
        .await
        .with_context(|| format!("set {text}"))?;
    Ok(began.elapsed().as_secs_f64() * 1e3)
}

/// Round-trip times in ms of `count` pings `interval` s apart.
fn pings(from: &Netns, count: usize, interval: &str) -> Result<Vec<f64>> {
    let out = from.output(
        "ping",
        &[
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "2",
            "10.0.0.2",
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.trim_end_matches(" ms").parse().ok())
        .collect();
    ensure!(times.len() > count / 2, "too few ping replies: {text}");
    Ok(times)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn std_dev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// CPU seconds the agent's impairment stage thread has used.
fn stage_cpu(pid: u32) -> f64 {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "ovswire-impair")
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|stat| {
            // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<f64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / ticks
        })
        .sum()
}

/// One parameter: asked, measured, the error and whether it is within the tolerance.
fn row(asked: f64, measured: f64, unit: &str, tolerance: f64) -> serde_json::Value {
    let error = (measured - asked).abs();
    json!({
        "asked": asked,
        "measured": round(measured, 3),
        "unit": unit,
        "error": round(error, 3),
        "tolerance": round(tolerance, 3),
        "within": error <= tolerance,
    })
}

/// A share of `of`, in percent.
fn percent(part: usize, of: usize) -> f64 {
    part as f64 * 100.0 / of as f64
}

fn count(r1: &Netns, r2: &Netns) -> Result<Arrived> {
    Ok(frames::send_and_count(
        r1.name(),
        "eth1",
        r2.name(),
        "eth1",
        frames::Send::frames(FRAMES),
    )?)
}

/// Runs the scenario.
pub async fn run() -> Result<Report> {
    let node = Testbed::node("bench-impair")?;
    let (r1, r2) = (node.pod("r1")?, node.pod("r2")?);
    let (r3, r4) = (node.pod("r3")?, node.pod("r4")?);
    let topology = format!(
        "lab: {LAB}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    mtu: 1500\n  \
         - endpoints: [r3:eth1, r4:eth1]\n    mtu: 1500\n"
    );
    let agent = AgentProcess::start(&node, &Binaries::locate()?, Some(&topology))?;
    let mut cni = cni_client(agent.cni_socket()).await?;
    for (pod, ns) in [("r1", &r1), ("r2", &r2), ("r3", &r3), ("r4", &r4)] {
        grpc_add(&mut cni, LAB, pod, ns.path(), "eth1").await?;
    }
    let mut wires = WiresClient::new(
        ovswire_proto::unix_channel(agent.wires_socket(), Duration::from_secs(5)).await?,
    );
    wait_up(&mut wires).await?;
    // The second wire is never impaired: its throughput next to an impaired one is measured.
    for (a, b) in [(&r1, &r2), (&r3, &r4)] {
        a.add_address("eth1", "10.0.0.1/30")?;
        b.add_address("eth1", "10.0.0.2/30")?;
    }
    pings(&r1, 5, "0.2")?;
    pings(&r3, 5, "0.2")?;
    let mut applied = Vec::new();

    let mut report = Report::new("impair");
    report.set("frames_per_share", FRAMES);

    progress("baseline: the unimpaired wire (ping, TCP)");
    let direct = pings(&r1, 200, "0.01")?;
    let direct_bps = iperf_bps(&r1, &r2, SECS)?;
    let other_before = iperf_bps(&r3, &r4, SECS)?;
    report.set("baseline_rtt_ms", round(mean(&direct), 3));
    report.set("baseline_rtt_sd_ms", round(std_dev(&direct), 3));

    progress("delay 20ms one way (ping round trip less the baseline's)");
    applied.push(set(&mut wires, "a->b: delay=20ms; b->a: none").await?);
    let delayed = pings(&r1, 200, "0.01")?;
    let one_way = mean(&delayed) - mean(&direct);
    report.set("delay", row(20.0, one_way, "ms", (20.0 * 0.05f64).max(1.0)));

    progress("jitter 5ms on a 20ms delay (standard deviation of 500 pings)");
    applied.push(set(&mut wires, "a->b: delay=20ms jitter=5ms; b->a: none").await?);
    let jittered = pings(&r1, 500, "0.02")?;
    report.set("jitter", row(5.0, std_dev(&jittered), "ms", 5.0 * 0.25));

    for (param, text) in [
        ("loss", "a->b: loss=10%; b->a: none"),
        ("duplicate", "a->b: duplicate=5%; b->a: none"),
        ("corrupt", "a->b: corrupt=5%; b->a: none"),
    ] {
        progress(&format!(
            "{param}: {FRAMES} numbered frames counted at the far end"
        ));
        applied.push(set(&mut wires, text).await?);
        let got = count(&r1, &r2)?;
        let (asked, measured) = match param {
            "loss" => (10.0, 100.0 - percent(got.count, FRAMES)),
            "duplicate" => (5.0, percent(got.count.saturating_sub(FRAMES), FRAMES)),
            _ => (5.0, percent(got.altered, got.count)),
        };
        report.set(param, row(asked, measured, "%", 1.0));
    }

    progress("reorder 25% on a 10ms delay: frames arriving after a later one");
    applied.push(set(&mut wires, "a->b: delay=10ms reorder=25%; b->a: none").await?);
    let got = count(&r1, &r2)?;
    report.set(
        "reorder",
        json!({
            "asked": 25.0,
            "unit": "%",
            "observed_reordered": round(percent(got.reordered, got.count), 3),
            "observed": got.reordered > 0,
        }),
    );

    for mbit in [100.0, 10.0] {
        progress(&format!("rate {mbit} Mbit/s: iperf3 TCP for {SECS} s"));
        applied.push(set(&mut wires, &format!("a->b: rate={mbit}mbit; b->a: none")).await?);
        let got = iperf_bps(&r1, &r2, SECS)? / 1e6;
        report.set(
            &format!("rate_{mbit}mbit"),
            row(mbit, got, "Mbit/s", mbit * 0.1),
        );
    }

    progress("the impairment path's cost: TCP through delay=1ms, and the stage's CPU");
    applied.push(set(&mut wires, "a->b: delay=1ms; b->a: none").await?);
    let cpu0 = stage_cpu(agent.pid());
    let through = iperf_bps(&r1, &r2, SECS)?;
    let cpu = stage_cpu(agent.pid()) - cpu0;
    let other_next_to = iperf_bps(&r3, &r4, SECS)?;
    report.set("tcp_other_wire_before_gbps", round(other_before / 1e9, 3));
    report.set(
        "tcp_other_wire_next_to_impaired_gbps",
        round(other_next_to / 1e9, 3),
    );
    let gbps = through / 1e9;
    report.set("tcp_direct_gbps", round(direct_bps / 1e9, 3));
    report.set("tcp_delay_1ms_gbps", round(gbps, 3));
    report.set("stage_cpu_cores", round(cpu / f64::from(SECS), 3));
    report.set(
        "stage_cpu_cores_per_gbps",
        if gbps > 0.0 {
            round(cpu / f64::from(SECS) / gbps, 3)
        } else {
            0.0
        },
    );
    applied.push(set(&mut wires, "none").await?);
    let applied = crate::measure::sorted(&applied);
    report.set(
        "apply_ms_p50",
        round(crate::measure::percentile(&applied, 50), 2),
    );
    report.set(
        "apply_ms_max",
        round(applied.last().copied().unwrap_or(0.0), 2),
    );
    agent.stop()?;
    Ok(report)
}
