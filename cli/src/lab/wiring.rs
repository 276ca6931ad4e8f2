//! A lab's interfaces, made, checked and removed through the real `ovswire-cni` plugin the way
//! a container runtime runs it (the lab's agent does the wiring), and their addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};
use ovswire_cni::Invocation;
use ovswire_cni::spec::{Command, K8S_POD_NAME, K8S_POD_NAMESPACE};
use ovswire_netns::link;
use serde_json::Value;

use super::{LabState, say};
use crate::spec::LabSpec;

/// CNI calls in flight at once.
const CONCURRENCY: usize = 16;

/// The key of an attached interface in the lab's state: `node:ifname`.
pub(super) fn key(node: &str, ifname: &str) -> String {
    format!("{node}:{ifname}")
}

/// The CNI container id of a lab node: stable across restarts of the node, so a DEL always
/// finds what the ADD made.
fn container_id(lab: &str, node: &str) -> String {
    format!("ovswire-lab-{lab}-{node}")
}

/// Runs the CNI plugin once, the way a container runtime does; the result an ADD printed.
async fn cni(
    plugin: &Path,
    st: &LabState,
    command: Command,
    node: &str,
    netns: &Path,
    ifname: &str,
    prev_result: Option<&Value>,
) -> Result<Option<Value>> {
    let mut conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "ovswire",
        "type": "ovswire-cni",
        "socket": st.cni_socket(),
    });
    if let Some(prev) = prev_result {
        conf["prevResult"] = prev.clone();
    }
    let invocation = Invocation::new(plugin, command)
        .container_id(container_id(&st.name, node))
        .netns(netns)
        .ifname(ifname)
        .args(&[(K8S_POD_NAMESPACE, &st.name), (K8S_POD_NAME, node)])
        .state_dir(crate::paths::state_dir())
        .config(conf.to_string());
    // The plugin process blocks its thread until the agent answers, and many run at once.
    let result = tokio::task::spawn_blocking(move || invocation.run())
        .await
        .context("the thread running the CNI plugin failed")?
        .with_context(|| format!("CNI {command} of {node}:{ifname}"))?;
    Ok(result)
}

/// What to do with one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Attached: CHECK it, and make it anew if the check fails.
    Check,
    /// Make it anew (DEL, then ADD): its node's namespace changed.
    Renew,
    /// ADD it.
    Add,
}

/// Makes every interface the file names whole, in the node's current namespace: attached ones
/// are checked through the plugin (the agent has the attachment, the interface is in the
/// namespace with its MAC and MTU; another sandbox did not take the endpoint over) and made anew
/// when the check fails; those of `renew` nodes (a new namespace: a restarted container, a
/// namespace deleted by hand) are made anew; new ones are added. `only` limits it to some nodes.
/// Returns the nodes that got an interface made.
pub(super) async fn converge(
    st: &mut LabState,
    spec: &LabSpec,
    plugin: &Path,
    renew: &BTreeSet<String>,
    only: Option<&BTreeSet<String>>,
) -> Result<BTreeSet<String>> {
    let mut todo = Vec::new();
    for e in spec.interfaces() {
        if only.is_some_and(|o| !o.contains(&e.node)) {
            continue;
        }
        let Some(netns) = st.nodes.get(&e.node).and_then(|r| r.netns()) else {
            continue;
        };
        let k = key(&e.node, &e.ifname);
        let step = match st.attached.get(&k) {
            _ if renew.contains(&e.node) => Step::Renew,
            Some(_) => Step::Check,
            None => Step::Add,
        };
        todo.push((e.node.clone(), e.ifname.clone(), netns, step));
    }
    let makes = todo.iter().filter(|t| t.3 != Step::Check).count();
    if makes > 0 {
        say(
            st.names.lab(&st.name),
            &format!("wiring {makes} interfaces"),
        );
    }
    let total = todo.len();
    let state: &LabState = st;
    let mut results = stream::iter(todo.into_iter().map(
        |(node, ifname, netns, step)| async move {
            let prev = state.attached.get(&key(&node, &ifname)).cloned();
            let r = make(plugin, state, &node, &ifname, &netns, step, prev.as_ref()).await;
            (node, ifname, r)
        },
    ))
    .buffer_unordered(CONCURRENCY);
    let mut made: BTreeMap<String, Value> = BTreeMap::new();
    let mut repaired = Vec::new();
    let mut failed = None;
    let mut done = 0;
    let mut last = Instant::now();
    while let Some((node, ifname, r)) = results.next().await {
        done += 1;
        match r {
            Ok(Outcome::Whole) => {}
            Ok(Outcome::Made(result)) => {
                made.insert(key(&node, &ifname), result);
            }
            Ok(Outcome::Repaired(result)) => {
                repaired.push(key(&node, &ifname));
                made.insert(key(&node, &ifname), result);
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
        if last.elapsed() > Duration::from_secs(1) {
            say(
                state.names.lab(&state.name),
                &format!("{done}/{total} interfaces done"),
            );
            last = Instant::now();
        }
    }
    drop(results);
    if !repaired.is_empty() {
        say(
            &st.name,
            &format!(
                "repaired {} interfaces that were not as wired: {}",
                repaired.len(),
                repaired.join(", ")
            ),
        );
    }
    let nodes: BTreeSet<String> = made
        .keys()
        .filter_map(|k| k.split_once(':').map(|(n, _)| n.to_owned()))
        .collect();
    st.attached.extend(made);
    st.save()?;
    if let Some(e) = failed {
        return Err(e.context(format!(
            "wiring lab {} failed; `ovswire lab up` again retries, `ovswire lab down {}` removes \
             what was made",
            st.name, st.name
        )));
    }
    Ok(nodes)
}

/// What became of one interface.
#[derive(Debug)]
enum Outcome {
    /// It was whole.
    Whole,
    /// It was made; the ADD result.
    Made(Value),
    /// It was not whole and was made anew; the ADD result.
    Repaired(Value),
}

/// Does `step` for one interface.
async fn make(
    plugin: &Path,
    st: &LabState,
    node: &str,
    ifname: &str,
    netns: &Path,
    step: Step,
    prev: Option<&Value>,
) -> Result<Outcome> {
    let add = || async {
        let result = cni(plugin, st, Command::Add, node, netns, ifname, None).await?;
        anyhow::Ok(result.unwrap_or(Value::Null))
    };
    match step {
        Step::Check => {
            if cni(plugin, st, Command::Check, node, netns, ifname, prev)
                .await
                .is_ok()
            {
                return Ok(Outcome::Whole);
            }
            cni(plugin, st, Command::Del, node, netns, ifname, None).await?;
            Ok(Outcome::Repaired(add().await?))
        }
        Step::Renew => {
            cni(plugin, st, Command::Del, node, netns, ifname, None).await?;
            Ok(Outcome::Made(add().await?))
        }
        Step::Add => Ok(Outcome::Made(add().await?)),
    }
}

/// Removes the interfaces the lab attached that `keep` does not want (gone from the file, or on
/// nodes being removed).
pub(super) async fn remove_unwanted(
    st: &mut LabState,
    keep: &BTreeSet<String>,
    plugin: &Path,
) -> Result<usize> {
    let stale: Vec<String> = st
        .attached
        .keys()
        .filter(|k| !keep.contains(*k))
        .cloned()
        .collect();
    for k in &stale {
        let (node, ifname) = k.split_once(':').unwrap_or((k, ""));
        // DEL needs no namespace (the agent finds the attachment by container and interface),
        // and the node's may be gone.
        let netns = st
            .nodes
            .get(node)
            .and_then(|r| r.netns())
            .unwrap_or_default();
        cni(plugin, st, Command::Del, node, &netns, ifname, None).await?;
        st.attached.remove(k);
        st.save()?;
    }
    Ok(stale.len())
}

/// The interfaces `spec` wants attached, as state keys.
pub(super) fn wanted(spec: &LabSpec) -> BTreeSet<String> {
    spec.interfaces().map(|e| key(&e.node, &e.ifname)).collect()
}

/// Puts the file's addresses on the interfaces of `nodes` (an address already there is fine).
pub(super) fn addresses(st: &LabState, spec: &LabSpec, nodes: &BTreeSet<String>) -> Result<()> {
    for l in &spec.links {
        for e in [&l.a, &l.b] {
            if e.addrs.is_empty() || !nodes.contains(&e.node) {
                continue;
            }
            let Some(ns) = st.nodes.get(&e.node).and_then(|r| r.netns()) else {
                continue;
            };
            let (ifname, addrs) = (e.ifname.clone(), e.addrs.clone());
            tokio::task::block_in_place(|| {
                ovswire_netns::block_on(&ns, |h| async move {
                    for a in addrs {
                        match link::add_address(&h, &ifname, a.addr, a.prefix).await {
                            Err(e) if e.errno() == Some(nix::errno::Errno::EEXIST as i32) => {}
                            other => other?,
                        }
                    }
                    Ok::<_, ovswire_netns::Error>(())
                })
            })
            .and_then(|added| added)
            .with_context(|| format!("configure the addresses of {e}"))?;
        }
    }
    Ok(())
}
