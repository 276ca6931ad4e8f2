//! The lab's supervisor, `ovswire lab supervise LAB`, which `lab up` starts for a lab with
//! container nodes: it follows the engine's events for the lab's containers and, when one starts
//! in a new network namespace (the engine's restart policy, `docker restart`, a crash and a
//! start by hand), wires its interfaces into it again, puts back their addresses and runs the
//! node's `exec` commands, without touching any other link. A node that stops needs nothing from
//! it: its interfaces vanish with its namespace and the agent takes its peers' carrier away.
//!
//! It is level-triggered: after each event, and after (re)connecting to the engine, it compares
//! every container's namespace with the one its interfaces were wired into. It ends when the lab
//! is gone.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use futures::StreamExt;

use super::{LabState, NodeRecord, agent, lock, nodes, run_exec, wiring};
use crate::engine::Engine;

/// How often the supervisor looks whether its lab is still there, when nothing happens.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Prints a line of the supervisor's log.
fn log(msg: &str) {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!("{}.{:03} {msg}", t.as_secs(), t.subsec_millis());
}

/// Supervises lab `lab` until it is gone.
pub async fn run(lab: &str) -> Result<()> {
    let mut backoff = Duration::from_millis(500);
    loop {
        let Some(st) = LabState::load(lab)? else {
            log("the lab is gone; stopping");
            return Ok(());
        };
        let Some(site) = st.engine.clone() else {
            log("the lab has no container engine; stopping");
            return Ok(());
        };
        let engine = match Engine::attach(&site).await {
            Ok(e) => e,
            Err(e) => {
                log(&format!("{e:#}; trying again in {} s", backoff.as_secs()));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        // Events are asked for from now: what happens while the first repair runs is replayed.
        let mut events = Box::pin(engine.events(lab, SystemTime::now()));
        log(&format!(
            "following the events of {} at {}",
            site.runtime,
            site.socket.display()
        ));
        repair(lab, &engine).await;
        loop {
            match tokio::time::timeout(IDLE_CHECK, events.next()).await {
                Ok(Some(Ok(ev))) => {
                    if matches!(ev.action.as_str(), "start" | "restart") {
                        log(&format!("node {} {}ed", ev.node, ev.action));
                        repair(lab, &engine).await;
                    }
                }
                Ok(Some(Err(e))) => {
                    log(&format!("{e:#}; reconnecting"));
                    break;
                }
                Ok(None) => {
                    log("the engine closed the event stream; reconnecting");
                    break;
                }
                Err(_) if !super::dir(lab).join("lab.json").exists() => {
                    log("the lab is gone; stopping");
                    return Ok(());
                }
                Err(_) => {}
            }
        }
    }
}

/// Rewires every container node of `lab` that runs in another namespace than the one its
/// interfaces went into; errors are logged, and the next event or reconnect tries again.
async fn repair(lab: &str, engine: &Engine) {
    if let Err(e) = try_repair(lab, engine).await {
        log(&format!("repair failed: {e:#}"));
    }
}

async fn try_repair(lab: &str, engine: &Engine) -> Result<()> {
    let _lock = tokio::task::block_in_place(|| lock(lab))?;
    let Some(mut st) = LabState::load(lab)? else {
        return Ok(());
    };
    let mut renew = BTreeSet::new();
    for (node, record) in st.nodes.clone() {
        let NodeRecord::Container(c) = record else {
            continue;
        };
        let Some(info) = engine.container(&c.id).await? else {
            continue;
        };
        if info.running() && info.netns != c.netns {
            renew.insert(node.clone());
            st.nodes.insert(
                node,
                NodeRecord::Container(nodes::ContainerRecord {
                    netns: info.netns,
                    ..c
                }),
            );
        }
    }
    if renew.is_empty() {
        return Ok(());
    }
    st.save()?;
    let spec = crate::file::load(&st.file)?;
    let plugin = agent::binary("ovswire-cni")?;
    log(&format!(
        "rewiring {} (restarted in a new network namespace)",
        renew.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let wired = wiring::converge(&mut st, &spec, &plugin, &renew, Some(&renew)).await?;
    wiring::addresses(&st, &spec, &wired)?;
    for node in &renew {
        run_exec(&st, &spec, Some(engine), node).await?;
    }
    log("rewired");
    Ok(())
}
