//! `lab`: a whole local lab with the `ovswire` command, next to the same nodes and wires made
//! by hand in the same run, the way containerlab makes them.
//!
//! The lab: N nodes in a ring, plus chords from node i to node i+7 until there are L links; every
//! node runs one `exec` command. `--containers` makes every node a busybox container (the image
//! `scripts/build-image busybox` builds), else a bare network namespace.
//!
//! - ovswire: `ovswire lab up FILE` on a private OVS, timed until it returns (every link up and
//!   every node's first `exec` done), then `lab down`.
//! - baseline (containerlab's steps, by hand): the engine's command-line tool creating and
//!   starting the same containers (8 at once, as ovswire does), or `ip netns add` for namespace
//!   nodes; the same links as veth pairs straight between the nodes in one `ip -batch`, their
//!   ends set up; each node's `exec` command run. No Open vSwitch, so no flap, watch or
//!   cross-node wire: the floor of making the nodes and their cables.
//!
//! With containers it also measures, on the ovswire lab, the time from a `kill` of one node to
//! NO-CARRIER on every peer interface, and from its `start` to carrier back on them (the
//! supervisor rewires it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ovswire_netns::link;
use ovswire_testbed::{Node, Testbed};

use super::{Report, progress};
use crate::measure::{ratio, secs_since};

const IMAGE: &str = "localhost/ovswire/busybox:latest";
/// How many containers the baseline makes at once (ovswire's own concurrency).
const CONCURRENCY: usize = 8;

/// The lab's links: a ring, then chords `i -- i+7`; each endpoint `(node, ifname)`.
fn links(nodes: usize, links: usize) -> Vec<[(usize, String); 2]> {
    let mut next_if = vec![1usize; nodes];
    let mut out = Vec::new();
    let mut port = |n: usize| {
        let i = next_if[n];
        next_if[n] += 1;
        (n, format!("eth{i}"))
    };
    let mut pairs = Vec::new();
    for hop in [1, 7, 3, 11, 5] {
        for i in 0..nodes {
            pairs.push((i, (i + hop) % nodes));
        }
    }
    for (a, b) in pairs.into_iter().filter(|(a, b)| a != b).take(links) {
        out.push([port(a), port(b)]);
    }
    out
}

/// The lab file in containerlab's format.
fn lab_file(name: &str, nodes: usize, wires: &[[(usize, String); 2]], containers: bool) -> String {
    let mut f = format!("name: {name}\ntopology:\n  nodes:\n");
    for n in 0..nodes {
        if containers {
            f.push_str(&format!(
                "    n{n}: {{kind: linux, image: {IMAGE}, cmd: sleep 1000000, exec: [\"true\"]}}\n"
            ));
        } else {
            f.push_str(&format!("    n{n}: {{exec: [\"true\"]}}\n"));
        }
    }
    f.push_str("  links:\n");
    for [(a, ai), (b, bi)] in wires {
        f.push_str(&format!(
            "    - endpoints: [\"n{a}:{ai}\", \"n{b}:{bi}\"]\n"
        ));
    }
    f
}

fn engine_cli() -> &'static str {
    if Path::new("/var/run/docker.sock").exists() {
        "docker"
    } else {
        "podman"
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `ovswire` command of this build.
fn ovswire_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the executable has no directory")?;
    let bin = dir.join("ovswire");
    if !bin.is_file() {
        bail!(
            "{} is missing: build it first (`cargo build --release -p ovswire-cli -p \
             ovswire-agent -p ovswire-cni -p ovswire-integration`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `ovswire ARGS` inside `node`, with the lab state in `state`.
fn ovswire(node: &Node, state: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(ovswire_bin()?);
    cmd.args(args)
        .env("OVSWIRE_STATE_DIR", state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = node.netns().spawn(cmd)?.wait_with_output()?;
    ensure!(
        out.status.success(),
        "ovswire {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether interface `ifname` in the namespace at `netns` has carrier (false when it is gone).
fn carrier(netns: &Path, ifname: &str) -> bool {
    let ifname = ifname.to_owned();
    ovswire_netns::block_on(netns, |h| async move { link::state(&h, &ifname).await })
        .ok()
        .and_then(Result::ok)
        .is_some_and(|s| s.carrier)
}

/// The network namespace of container `name`.
fn container_netns(name: &str) -> Result<PathBuf> {
    let pid =
        run(Command::new(engine_cli()).args(["inspect", "--format", "{{.State.Pid}}", name]))?;
    let pid: u32 = pid.trim().parse().context("a container pid")?;
    ensure!(pid > 0, "container {name} is not running");
    Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// Polls `f` every millisecond until it holds; how long that took, from `since`.
fn until(since: Instant, what: &str, mut f: impl FnMut() -> bool) -> Result<f64> {
    while !f() {
        if since.elapsed() > Duration::from_secs(60) {
            bail!("timed out after 60 s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(secs_since(since))
}

/// Runs the scenario.
pub async fn run_scenario(nodes: usize, count: usize, containers: bool) -> Result<Report> {
    tokio::task::spawn_blocking(move || measure(nodes, count, containers)).await?
}

fn measure(nodes: usize, count: usize, containers: bool) -> Result<Report> {
    ensure!(nodes >= 2, "a lab needs at least 2 nodes");
    let wires = links(nodes, count);
    ensure!(
        wires.len() == count,
        "{nodes} nodes take at most {} links here",
        wires.len()
    );
    if containers {
        run(Command::new(engine_cli()).args(["image", "inspect", IMAGE]))
            .context("the busybox image is missing: run scripts/build-image busybox")?;
    }
    let mut report = Report::new("lab");
    report.set("nodes", nodes as u64);
    report.set("links", count as u64);
    report.set("containers", containers);

    // ovswire.
    let node = Testbed::node("lab")?;
    let name = format!("b{}", std::process::id() % 100_000);
    let dir = node.dir().join("lab");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{name}.clab.yml"));
    std::fs::write(&file, lab_file(&name, nodes, &wires, containers))?;
    let state = node.dir().join("state");
    let ovs = [
        format!("--ovsdb=unix:{}", node.db_sock().display()),
        format!("--ovs-rundir={}", node.rundir().display()),
    ];
    progress(&format!("ovswire lab up: {nodes} nodes, {count} links"));
    let t = Instant::now();
    let up = ovswire(
        &node,
        &state,
        &[
            "lab",
            "up",
            file.to_str().unwrap_or_default(),
            &ovs[0],
            &ovs[1],
        ],
    );
    let up_s = secs_since(t);
    if let Err(e) = up {
        let _ = ovswire(&node, &state, &["lab", "down", &name]);
        return Err(e);
    }
    report.set("ovswire_up_s", up_s);
    if containers {
        match kill_and_restart(&name, &wires) {
            Ok((down, back)) => {
                report.set("kill_to_no_carrier_s", down);
                report.set("start_to_carrier_s", back);
            }
            Err(e) => report.set("kill_restart", format!("failed: {e:#}")),
        }
    }
    progress("ovswire lab down");
    let t = Instant::now();
    ovswire(&node, &state, &["lab", "down", &name])?;
    report.set("ovswire_down_s", secs_since(t));
    drop(node);

    // The same nodes and cables by hand.
    progress("baseline: the same nodes and veths by hand");
    match baseline(&name, nodes, &wires, containers) {
        Ok((up, down)) => {
            report.set("baseline_by_hand_s", up);
            report.set("ratio_by_hand", ratio(up, up_s));
            report.set("baseline_by_hand_down_s", down);
        }
        Err(e) => report.set("baseline_by_hand", format!("failed: {e:#}")),
    }
    Ok(report)
}

/// Kills node 0's container, times NO-CARRIER on every peer interface, starts it again and
/// times carrier back on them.
fn kill_and_restart(lab: &str, wires: &[[(usize, String); 2]]) -> Result<(f64, f64)> {
    let mut peers: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for [(a, ai), (b, bi)] in wires {
        if *a == 0 {
            peers.entry(*b).or_default().push(bi.clone());
        } else if *b == 0 {
            peers.entry(*a).or_default().push(ai.clone());
        }
    }
    let netns: BTreeMap<usize, PathBuf> = peers
        .keys()
        .map(|p| Ok((*p, container_netns(&format!("{lab}-n{p}"))?)))
        .collect::<Result<_>>()?;
    let all = |want: bool| {
        peers
            .iter()
            .all(|(p, ifs)| ifs.iter().all(|i| carrier(&netns[p], i) == want))
    };
    ensure!(all(true), "the peers of n0 have no carrier to begin with");
    progress("kill n0: waiting for NO-CARRIER at its peers");
    let t = Instant::now();
    run(Command::new(engine_cli()).args(["kill", &format!("{lab}-n0")]))?;
    let down = until(t, "NO-CARRIER at n0's peers", || all(false))?;
    progress("start n0: waiting for carrier back at its peers");
    let t = Instant::now();
    run(Command::new(engine_cli()).args(["start", &format!("{lab}-n0")]))?;
    let back = until(t, "carrier back at n0's peers", || all(true))?;
    Ok((down, back))
}

/// Makes the nodes and cables by hand, runs each node's command; (seconds to make, seconds to
/// remove).
fn baseline(
    lab: &str,
    nodes: usize,
    wires: &[[(usize, String); 2]],
    containers: bool,
) -> Result<(f64, f64)> {
    let names: Vec<String> = (0..nodes).map(|n| format!("{lab}h-n{n}")).collect();
    let network = format!("{lab}h-mgmt");
    let remove = |names: &[String]| {
        for n in names {
            if containers {
                let _ = Command::new(engine_cli())
                    .args(["rm", "-f", "-t", "0", n])
                    .output();
            } else {
                let _ = Command::new("ip").args(["netns", "del", n]).output();
            }
        }
        if containers {
            let _ = Command::new(engine_cli())
                .args(["network", "rm", &network])
                .output();
        }
    };
    let t = Instant::now();
    let made = (|| -> Result<()> {
        let mut netns = Vec::new();
        if containers {
            // A management network, as containerlab gives its nodes (and ovswire too).
            run(Command::new(engine_cli()).args(["network", "create", &network]))?;
            for chunk in names.chunks(CONCURRENCY) {
                let children: Vec<_> = chunk
                    .iter()
                    .map(|n| {
                        Command::new(engine_cli())
                            .args([
                                "run",
                                "-d",
                                "--privileged",
                                "--network",
                                &network,
                                "--name",
                                n,
                                "--hostname",
                                n,
                                IMAGE,
                                "sleep",
                                "1000000",
                            ])
                            .stdout(std::process::Stdio::null())
                            .spawn()
                    })
                    .collect::<std::io::Result<_>>()?;
                for mut c in children {
                    ensure!(c.wait()?.success(), "the engine did not run a container");
                }
            }
            for n in &names {
                netns.push(container_netns(n)?);
            }
        } else {
            for n in &names {
                run(Command::new("ip").args(["netns", "add", n]))?;
                netns.push(PathBuf::from(format!("/run/netns/{n}")));
            }
        }
        // Every cable in one `ip -batch`, made in the host namespace and moved in place.
        let mut batch = String::new();
        for (i, [(a, ai), (b, bi)]) in wires.iter().enumerate() {
            let (x, y) = (format!("bx{i}"), format!("by{i}"));
            let target = |n: usize| {
                if containers {
                    netns[n]
                        .to_string_lossy()
                        .trim_start_matches("/proc/")
                        .trim_end_matches("/ns/net")
                        .to_owned()
                } else {
                    names[n].clone()
                }
            };
            batch.push_str(&format!(
                "link add {x} mtu 9500 type veth peer name {y} mtu 9500\n\
                 link set {x} netns {} name {ai} up\n\
                 link set {y} netns {} name {bi} up\n",
                target(*a),
                target(*b)
            ));
        }
        let path = std::env::temp_dir().join(format!("{lab}-baseline.batch"));
        std::fs::write(&path, batch)?;
        let made = run(Command::new("ip").args(["-batch", path.to_str().unwrap_or_default()]));
        let _ = std::fs::remove_file(&path);
        made?;
        for n in &names {
            if containers {
                run(Command::new(engine_cli()).args(["exec", n, "true"]))?;
            } else {
                run(Command::new("ip").args(["netns", "exec", n, "true"]))?;
            }
        }
        Ok(())
    })();
    let up = secs_since(t);
    let t = Instant::now();
    remove(&names);
    let down = secs_since(t);
    made.map(|()| (up, down))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_is_a_ring_with_chords_and_every_interface_is_used_once() {
        let wires = links(50, 100);
        assert_eq!(wires.len(), 100);
        let mut used = std::collections::BTreeSet::new();
        for [a, b] in &wires {
            assert_ne!(a.0, b.0);
            assert!(used.insert(a.clone()) && used.insert(b.clone()));
        }
        assert_eq!(wires[0], [(0, "eth1".into()), (1, "eth1".into())]);
        let file = lab_file("x", 3, &links(3, 3), true);
        assert!(file.contains("n0: {kind: linux"), "{file}");
    }
}
