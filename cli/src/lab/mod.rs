//! Local labs on this machine: nodes that are containers (a node with an image, run by the
//! container engine through its API) or bare network namespaces (a node without one), wired by
//! a lab's own agent through the real `ovswire-cni` plugin, on the machine's Open vSwitch or one
//! ovswire starts; container nodes also get a management network.
//!
//! Everything a lab makes is recorded in `/run/ovswire/labs/<lab>/lab.json` as it is made, so
//! `down` removes exactly that (and nothing else), even after an `up` that failed midway. `up`
//! is level-triggered: on a lab that is up, it repairs what drifted (a node gone, an interface
//! missing or taken over, a container restarted) and converges to the file. A supervisor
//! process rewires container nodes that the engine restarts.

mod agent;
pub mod inspect;
mod mgmt;
mod nodes;
pub mod supervise;
mod wiring;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::fcntl::{Flock, FlockArg};
use ovswire_proto::v1::Link;
use serde::{Deserialize, Serialize};

pub use mgmt::MgmtRecord;
pub use nodes::{ContainerRecord, NodeRecord, node_object_name};

use crate::engine::{Engine, EngineSite, Runtime};
use crate::names::Names;
use crate::ovs::{self, OvsChoice, OvsSite};
use crate::paths::state_dir;
use crate::process;
use crate::spec::LabSpec;
use crate::wires::{self, Target, Wires};

/// Where labs keep their state, sockets and logs.
fn labs_dir() -> PathBuf {
    state_dir().join("labs")
}
/// How long `down` waits for ovs-vswitchd to remove the lab's bridge.
const BRIDGE_REMOVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Containers made or started at once.
const CONTAINER_CONCURRENCY: usize = 8;
/// Nodes removed at once by `down` (a namespace's veths take a few RCU grace periods to go, a
/// container a few engine steps: in parallel they overlap).
const NODE_CONCURRENCY: usize = 16;

/// What a lab has made, saved after every step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's name.
    pub name: String,
    /// The topology file it was last brought up from.
    pub file: PathBuf,
    /// The OVS it runs on.
    pub ovs: Option<OvsSite>,
    /// Its bridge.
    pub bridge: String,
    /// The agent's process id, while it runs.
    pub agent_pid: Option<i32>,
    /// The supervisor's process id, while it runs (labs with container nodes).
    #[serde(default)]
    pub supervisor_pid: Option<i32>,
    /// The container engine of its container nodes.
    #[serde(default)]
    pub engine: Option<EngineSite>,
    /// Its management network.
    #[serde(default)]
    pub mgmt: Option<MgmtRecord>,
    /// Node name → what was made for it.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Interfaces attached through CNI, `node:ifname` → the plugin's ADD result (a CHECK's
    /// `prevResult`, as a runtime caches it).
    #[serde(deserialize_with = "attached_any_version")]
    pub attached: BTreeMap<String, serde_json::Value>,
    /// The lab's names as its file writes them, where they differ from the system names.
    #[serde(default, skip_serializing_if = "Names::is_identity")]
    pub names: Names,
}

/// Reads `attached` as this version writes it, or as a list of `[node, ifname]` pairs as
/// earlier versions did (without ADD results: their CHECK fails, and they are made anew).
fn attached_any_version<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_json::Value>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        Now(BTreeMap<String, serde_json::Value>),
        Pairs(Vec<(String, String)>),
    }
    Ok(match Any::deserialize(d)? {
        Any::Now(map) => map,
        Any::Pairs(pairs) => pairs
            .into_iter()
            .map(|(n, i)| (wiring::key(&n, &i), serde_json::Value::Null))
            .collect(),
    })
}

/// A lab's directory (`name` as written or as systems take it).
pub fn dir(name: &str) -> PathBuf {
    labs_dir().join(system_name(name))
}

/// The name systems know lab `name` by: as written when it is a Kubernetes name, else mapped
/// as [`crate::names::object`] maps it (`Big_Lab` is `big-lab`).
pub fn system_name(name: &str) -> String {
    crate::names::object("lab name", name).unwrap_or_else(|_| name.to_owned())
}

/// Names of the labs that are up on this machine.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(labs_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("lab.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

impl LabState {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            bridge: bridge_name(name),
            ..Self::default()
        }
    }

    /// Loads the state of lab `name`, if it is up.
    pub fn load(name: &str) -> Result<Option<Self>> {
        let path = dir(name).join("lab.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
                format!(
                    "{} is damaged (or was written by another version of ovswire); remove the \
                     lab by hand",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(anyhow!(
                "cannot read {}: labs are root's; run ovswire as root",
                path.display()
            )),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    fn save(&self) -> Result<()> {
        let d = dir(&self.name);
        std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
        let tmp = d.join("lab.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, d.join("lab.json")).context("save the lab's state")
    }

    /// The agent's Wires socket.
    pub fn wires_socket(&self) -> PathBuf {
        dir(&self.name).join("wires.sock")
    }

    fn cni_socket(&self) -> PathBuf {
        dir(&self.name).join("cni.sock")
    }

    /// The agent's log.
    pub fn agent_log(&self) -> PathBuf {
        dir(&self.name).join("agent.log")
    }

    /// Whether the lab's agent runs.
    pub fn agent_running(&self) -> bool {
        self.agent_pid.is_some_and(process::alive)
    }

    /// The Wires target of the lab's agent, or an error saying that it does not run and how to
    /// bring it back.
    pub fn agent_target(&self) -> Result<Target> {
        if !self.agent_running() {
            bail!(
                "the agent of lab {} is not running{}; `ovswire lab up {}` starts it again and \
                 repairs the lab (its last log lines are in {})",
                self.name,
                self.agent_pid
                    .map(|p| format!(" (it was pid {p})"))
                    .unwrap_or_default(),
                self.file.display(),
                self.agent_log().display()
            );
        }
        Ok(Target::Socket(self.wires_socket()))
    }

    /// The engine of its container nodes, connected.
    pub async fn engine(&self) -> Result<Option<Engine>> {
        match &self.engine {
            Some(site) => Engine::attach(site).await.map(Some),
            None => Ok(None),
        }
    }
}

/// Lab `name`'s state, or an error naming the labs that are up.
pub fn state(name: &str) -> Result<LabState> {
    LabState::load(name)?.ok_or_else(|| {
        let up = names();
        anyhow!(
            "no lab named {name} is up{}",
            if up.is_empty() {
                "; `ovswire lab up FILE` brings one up".to_owned()
            } else {
                format!(" (up: {})", up.join(", "))
            }
        )
    })
}

/// The name of lab `name`, or of the only lab that is up when it is `None`.
pub fn the_lab(name: Option<&str>) -> Result<String> {
    match name {
        Some(n) => Ok(system_name(n)),
        None => match names().as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!("no lab is up; `ovswire lab up FILE` brings one up"),
            many => bail!("several labs are up ({}); name one", many.join(", ")),
        },
    }
}

/// The Wires target of lab `name`, or of the only lab when `name` is `None` (a cluster node's
/// agent when no lab is up).
pub fn target(name: Option<&str>) -> Result<Target> {
    if name.is_none() && names().is_empty() {
        return Ok(Target::Socket(PathBuf::from(wires::NODE_SOCKET)));
    }
    state(&the_lab(name).map_err(|e| anyhow!("{e}; name one with --lab"))?)?.agent_target()
}

/// The bridge of lab `lab`: `ow-<lab>` when that fits a device name, else a hash.
pub fn bridge_name(lab: &str) -> String {
    if lab.len() <= 12 {
        format!("ow-{lab}")
    } else {
        let hash = ovswire_core::naming::datapath_id(lab);
        format!("ow-{:012x}", hash & 0xffff_ffff_ffff)
    }
}

/// The network namespace of namespace node `node` in lab `lab`.
pub fn netns_name(lab: &str, node: &str) -> String {
    node_object_name(lab, node)
}

/// Prints a progress line for lab `lab` on stderr.
fn say(lab: &str, msg: &str) {
    eprintln!("lab {lab}: {msg}");
}

/// Holds lab `name` for this process: `up`, `down` and the supervisor's repairs never run
/// at once on one lab.
fn lock(name: &str) -> Result<Flock<File>> {
    lock_file(&labs_dir().join(format!(".{name}.lock")))
}

/// Takes the lock file at `path` (made when missing), waiting for whoever holds it.
fn lock_file(path: &Path) -> Result<Flock<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let file = File::create(path).with_context(|| format!("open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("cannot lock {}: {e}", path.display()))
}

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The Open vSwitch to use.
    pub ovs: OvsChoice,
    /// The container engine to use (default: the lab's, else the first that answers).
    pub runtime: Option<Runtime>,
}

/// What `up` left.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every link with its state.
    pub links: Vec<Link>,
    /// The one-line account of it.
    pub line: String,
    /// Whether every link is as the file asks.
    pub settled: bool,
}

/// Brings lab `spec` up (read from `file`), or converges a lab that is up to it, repairing what
/// drifted.
pub async fn up(spec: &LabSpec, file: &Path, opts: &UpOptions) -> Result<Summary> {
    let name = spec.name.as_str();
    // Progress is told with the lab's name as the file writes it.
    let shown = spec.names.lab(name);
    let started = Instant::now();
    let _lock = tokio::task::block_in_place(|| lock(name))?;
    let mut st = LabState::load(name)?.unwrap_or_else(|| LabState::new(name));
    if st.file.as_os_str().is_empty() || st.names.lab == spec.names.lab {
        st.names = spec.names.clone();
    } else {
        bail!(
            "lab {} is up as {} (from {}), and {} also becomes {name} on this machine; rename \
             one of them, or take that lab down first",
            st.names.lab(name),
            name,
            st.file.display(),
            spec.names.lab(name)
        );
    }

    // What can be checked is checked before anything is made.
    let plugin = agent::binary("ovswire-cni")?;
    agent::binary("ovswire-agent")?;
    let engine = if spec.has_containers() || !nodes::container_nodes(&st).is_empty() {
        let engine = match (&st.engine, opts.runtime) {
            (Some(site), r) if r.is_none_or(|r| r == site.runtime) => Engine::attach(site).await?,
            (_, r) => Engine::connect(r).await?,
        };
        Some(engine)
    } else {
        None
    };
    let wanted = match &engine {
        Some(e) if spec.has_containers() => {
            let (mgmt, wanted) = nodes::prepare(e, spec, file, &st).await?;
            st.mgmt = Some(mgmt);
            Some(wanted)
        }
        _ => None,
    };
    st.file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    st.engine = engine.as_ref().map(|e| e.site().clone());
    st.save()?;

    // Open vSwitch, and the agent (restarted when the topology changed: it adopts the wiring
    // it left).
    let ovs = match &st.ovs {
        Some(o)
            if o.db
                .strip_prefix("unix:")
                .is_some_and(|p| Path::new(p).exists()) =>
        {
            o.clone()
        }
        _ => tokio::task::block_in_place(|| ovs::choose(&opts.ovs, &|m| say(shown, m)))?,
    };
    st.ovs = Some(ovs.clone());
    st.save()?;
    let topology = crate::file::agent_topology(spec);
    let topo_path = dir(name).join("topology.yaml");
    let changed = std::fs::read_to_string(&topo_path).ok().as_deref() != Some(topology.as_str());
    if st.agent_running() && changed {
        say(shown, "topology changed; restarting the lab's agent");
        agent::stop_agent(&mut st)?;
    }
    std::fs::write(&topo_path, &topology)
        .with_context(|| format!("write {}", topo_path.display()))?;
    if !st.agent_running() {
        if st.agent_pid.is_some() {
            say(shown, "the lab's agent was not running; starting it again");
        }
        agent::start_agent(&mut st, &ovs, &topo_path).await?;
    }

    // Nodes gone from the file go, with their interfaces.
    let wanted_ifaces = wiring::wanted(spec);
    let removed = wiring::remove_unwanted(&mut st, &wanted_ifaces, &plugin).await?;
    let gone: Vec<String> = st
        .nodes
        .keys()
        .filter(|n| !spec.nodes.contains_key(*n))
        .cloned()
        .collect();
    for node in &gone {
        nodes::remove(engine.as_ref(), node, &st.nodes[node], Vec::new()).await?;
        st.nodes.remove(node);
        st.save()?;
    }
    if removed > 0 || !gone.is_empty() {
        say(
            shown,
            &format!(
                "removed {} nodes and {removed} interfaces no longer in the file",
                gone.len()
            ),
        );
    }

    // Nodes: namespaces made (or made again, when deleted by hand), containers made or started.
    // `renew`: nodes in a namespace their interfaces were not wired into.
    let mut renew = BTreeSet::new();
    let mut fresh = BTreeSet::new();
    for (node, n) in spec.nodes_in_file_order() {
        if n.is_host() {
            st.nodes.insert(node.clone(), NodeRecord::Host);
            continue;
        }
        if n.is_segment() {
            // A LAN segment is the agent's flows: nothing to make.
            continue;
        }
        if !n.is_container() {
            if matches!(st.nodes.get(node), Some(NodeRecord::Container(_))) {
                nodes::remove(engine.as_ref(), node, &st.nodes[node], Vec::new()).await?;
                st.nodes.remove(node);
            }
            if nodes::ensure_namespace(&mut st, node)? {
                renew.insert(node.clone());
                fresh.insert(node.clone());
            }
        }
    }
    let namespaces = fresh.len();
    if namespaces > 0 {
        say(shown, &format!("made {namespaces} node namespaces"));
    }
    if let (Some(engine), Some(wanted), Some(mgmt)) = (&engine, &wanted, st.mgmt.clone()) {
        for node in wanted.keys() {
            if let Some(NodeRecord::Namespace(ns)) = st.nodes.get(node) {
                nodes::remove(
                    Some(engine),
                    node,
                    &NodeRecord::Namespace(ns.clone()),
                    Vec::new(),
                )
                .await?;
                st.nodes.remove(node);
            }
        }
        say(
            shown,
            &format!(
                "starting {} containers on network {} ({})",
                wanted.len(),
                mgmt.network,
                mgmt.subnet
            ),
        );
        let started_now = start_containers(engine, &mut st, spec, wanted).await?;
        for node in wanted.keys() {
            let Some(NodeRecord::Container(c)) = st.nodes.get(node).cloned() else {
                continue;
            };
            let netns = nodes::running_netns(engine, node, &c.id).await?;
            if c.netns.as_ref() != Some(&netns) {
                // Started since it was last wired: its workload is new, its `exec` runs again.
                renew.insert(node.clone());
                fresh.insert(node.clone());
                st.nodes.insert(
                    node.clone(),
                    NodeRecord::Container(ContainerRecord {
                        netns: Some(netns),
                        ..c
                    }),
                );
            }
        }
        st.save()?;
        fresh.extend(started_now);
    }
    if !spec.has_containers()
        && let (Some(engine), Some(m)) = (&engine, st.mgmt.take())
    {
        // The file has no container node left: the management network goes with the last.
        if m.created {
            engine.remove_network(&m.network).await?;
        }
        st.save()?;
    }

    // Interfaces, then their addresses.
    let wired = wiring::converge(&mut st, spec, &plugin, &renew, None).await?;
    wiring::addresses(&st, spec, &wired)?;
    mgmt::join_bridge(&st, spec).await?;
    let summary = wait_settled(&st, spec, engine.as_ref()).await?;

    // Commands of nodes whose workload started in this run, once their wires are up.
    for node in spec.nodes_in_file_order().iter().map(|(n, _)| *n) {
        if fresh.contains(node) {
            run_exec(&st, spec, engine.as_ref(), node).await?;
        }
    }
    if engine.is_some() && !nodes::container_nodes(&st).is_empty() {
        agent::start_supervisor(&mut st)?;
    }
    let segments = spec.segments().count();
    let summary = Summary {
        line: format!(
            "{} nodes, {}{} in {:.1} s",
            spec.nodes.len() - segments,
            match segments {
                0 => String::new(),
                1 => "1 LAN segment, ".to_owned(),
                n => format!("{n} LAN segments, "),
            },
            summary.line,
            started.elapsed().as_secs_f64()
        ),
        ..summary
    };
    say(shown, &summary.line);
    Ok(summary)
}

/// Makes and starts the lab's containers, several at once; the nodes whose workload started.
async fn start_containers(
    engine: &Engine,
    st: &mut LabState,
    spec: &LabSpec,
    wanted: &BTreeMap<String, nodes::Wanted>,
) -> Result<BTreeSet<String>> {
    use futures::stream::{self, StreamExt};
    let total = wanted.len();
    let mut fresh = BTreeSet::new();
    let view: &LabState = st;
    let mut tasks = stream::iter(wanted.iter().map(|(node, w)| async move {
        (
            node,
            nodes::ensure_container(engine, view, spec, node, w).await,
        )
    }))
    .buffer_unordered(CONTAINER_CONCURRENCY);
    let mut made = Vec::new();
    let mut failed = None;
    let mut last = Instant::now();
    while let Some((node, r)) = tasks.next().await {
        match r {
            Ok((record, started)) => {
                if started {
                    fresh.insert(node.clone());
                }
                made.push((node.clone(), record));
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
        if last.elapsed() > Duration::from_secs(1) {
            say(
                view.names.lab(&view.name),
                &format!("{}/{total} containers running", made.len()),
            );
            last = Instant::now();
        }
    }
    drop(tasks);
    for (node, record) in made {
        st.nodes.insert(node, NodeRecord::Container(record));
    }
    st.save()?;
    match failed {
        Some(e) => Err(e.context(format!(
            "starting the containers of lab {} failed; `ovswire lab down {}` removes what was \
             made",
            st.name, st.name
        ))),
        None => Ok(fresh),
    }
}

/// Runs node `node`'s `exec` commands, in order; a failing command is reported, not fatal.
async fn run_exec(
    st: &LabState,
    spec: &LabSpec,
    engine: Option<&Engine>,
    node: &str,
) -> Result<()> {
    let Some(record) = st.nodes.get(node) else {
        return Ok(());
    };
    let log = dir(&st.name).join(format!("{node}.log"));
    for cmd in &spec.nodes[node].exec {
        let (ok, how) = nodes::sh(engine, record, cmd, &log).await?;
        if !ok {
            say(
                st.names.lab(&st.name),
                &format!(
                    "warning: `{cmd}` on {node} failed ({how}); see {}",
                    log.display()
                ),
            );
        }
    }
    Ok(())
}

/// Waits until every link of the lab is as its admin state asks, failing early when a container
/// node stops; the links and an honest account of them.
async fn wait_settled(st: &LabState, spec: &LabSpec, engine: Option<&Engine>) -> Result<Summary> {
    let expected = spec.links.len();
    let wires = Wires::connect(&Target::Socket(st.wires_socket())).await?;
    let timeout = Duration::from_secs(60) + Duration::from_millis(20) * expected as u32;
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    loop {
        let links = wires.links(&st.name).await?;
        let settled = links.iter().filter(|l| wires::settled(l)).count();
        if links.len() >= expected && settled == links.len() {
            return Ok(account(links, true));
        }
        if last.elapsed() > Duration::from_secs(1) {
            say(
                st.names.lab(&st.name),
                &format!("{settled}/{expected} links up"),
            );
            last = Instant::now();
            if let Some(engine) = engine {
                for (node, record) in &st.nodes {
                    if let Some(c) = record.container() {
                        nodes::running_netns(engine, node, &c.id).await?;
                    }
                }
            }
        }
        if Instant::now() > deadline {
            let mut summary = account(links, false);
            summary.line = format!(
                "{} after {} s; the agent's log is {}",
                summary.line,
                timeout.as_secs(),
                st.agent_log().display()
            );
            return Ok(summary);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `8 links: 7 up, 1 down as the file asks (r1:eth1--r2:eth1)` or, when some are not as
/// asked, which.
fn account(links: Vec<Link>, settled: bool) -> Summary {
    let name_all = |ls: &[&Link]| {
        let names: Vec<String> = ls.iter().take(5).map(|l| wires::link_name(l)).collect();
        let more = ls.len().saturating_sub(5);
        if more > 0 {
            format!("{} and {more} more", names.join(", "))
        } else {
            names.join(", ")
        }
    };
    let up = links
        .iter()
        .filter(|l| wires::state_word(l) == "up")
        .count();
    let down: Vec<&Link> = links
        .iter()
        .filter(|l| wires::state_word(l) == "down")
        .collect();
    let wrong: Vec<&Link> = links.iter().filter(|l| !wires::settled(l)).collect();
    let mut line = format!("{} links: {up} up", links.len());
    if !down.is_empty() {
        line.push_str(&format!(
            ", {} down as the file asks ({})",
            down.len(),
            name_all(&down)
        ));
    }
    if !wrong.is_empty() {
        let detail: Vec<String> = wrong
            .iter()
            .take(5)
            .map(|l| {
                format!(
                    "{} {}: {}",
                    wires::link_name(l),
                    wires::state_word(l),
                    l.reason
                )
            })
            .collect();
        line.push_str(&format!(
            ", {} NOT as the file asks ({})",
            wrong.len(),
            detail.join("; ")
        ));
    }
    let settled = settled && wrong.is_empty();
    Summary {
        links,
        line,
        settled,
    }
}

/// Removes lab `name`: its supervisor, agent, nodes (containers and namespaces, with every
/// process in them), management network (when the lab made it), bridge and state; and
/// ovswire's own OVS when no other lab uses it.
pub async fn down(name: &str) -> Result<()> {
    let _lock = tokio::task::block_in_place(|| lock(name))?;
    let mut st = state(name)?;
    let shown = st.names.lab(name).to_owned();
    agent::stop_supervisor(&mut st)?;
    agent::stop_agent(&mut st)?;
    let engine = match &st.engine {
        Some(site) if !nodes::container_nodes(&st).is_empty() || st.mgmt.is_some() => {
            Some(Engine::attach(site).await.with_context(|| {
                format!("lab {name} has containers; start the engine and run `lab down` again")
            })?)
        }
        _ => None,
    };
    let records = std::mem::take(&mut st.nodes);
    let count = records.len();
    let attached: Vec<String> = st.attached.keys().cloned().collect();
    let ifnames_of = |node: &str| -> Vec<String> {
        attached
            .iter()
            .filter_map(|k| k.split_once(':'))
            .filter(|(n, _)| *n == node)
            .map(|(_, i)| i.to_owned())
            .collect()
    };
    let engine_ref = engine.as_ref();
    let failed: Vec<(String, NodeRecord, anyhow::Error)> = {
        use futures::stream::{self, StreamExt};
        stream::iter(records.iter().map(|(node, record)| {
            let ifnames = ifnames_of(node);
            async move {
                let r = nodes::remove(engine_ref, node, record, ifnames).await;
                (node, record, r)
            }
        }))
        .buffer_unordered(NODE_CONCURRENCY)
        .filter_map(|(node, record, r)| async move {
            r.err().map(|e| (node.clone(), record.clone(), e))
        })
        .collect()
        .await
    };
    if !failed.is_empty() {
        // Keep what could not be removed on record, for the next `down`.
        let mut first = None;
        for (node, record, e) in failed {
            st.nodes.insert(node, record);
            first.get_or_insert(e);
        }
        st.save()?;
        if let Some(e) = first {
            return Err(e);
        }
    }
    st.attached.clear();
    st.save()?;
    if let Some(engine) = &engine {
        // Containers of this lab that an interrupted `up` made but had not recorded yet.
        for id in engine.containers_of(name).await? {
            engine.remove(&id).await?;
        }
        if let Some(m) = &st.mgmt
            && m.created
        {
            engine.remove_network(&m.network).await?;
        }
    }
    st.mgmt = None;
    st.save()?;
    if let Some(ovs) = &st.ovs
        && ovs.own
        && !ovswire_netns::ovs::answers(&ovs.rundir.join("db.sock"))
    {
        // ovswire's own OVS stopped under the lab (a reboot, a killed daemon): start it again
        // so that the lab's bridge leaves its database and its device the kernel.
        let progress = |m: &str| say(&shown, m);
        crate::ovs::choose(&crate::ovs::OvsChoice::Own, &progress)?;
    }
    if let Some(ovs) = &st.ovs
        && ovs
            .db
            .strip_prefix("unix:")
            .is_some_and(|p| Path::new(p).exists())
    {
        let db = ovswire_ovsdb::Client::connect(&ovs.db)
            .await
            .with_context(|| {
                format!(
                    "connect to OVSDB at {} to remove bridge {}; start Open vSwitch and run \
                     `ovswire lab down {name}` again",
                    ovs.db, st.bridge
                )
            })?;
        let vswitch = ovswire_ovsdb::vswitch::Vswitch::new(db);
        let deleted = vswitch
            .delete_bridge(&st.bridge)
            .await
            .with_context(|| format!("remove bridge {}", st.bridge))?;
        // ovs-vswitchd removes the bridge's internal device (`ow-<lab>`) when it applies the
        // deletion; stopping our own OVS before that (below) would leave the device behind.
        if let Some(next_cfg) = deleted {
            vswitch
                .wait_applied(next_cfg, BRIDGE_REMOVAL_TIMEOUT)
                .await
                .with_context(|| {
                    format!(
                        "ovs-vswitchd did not remove bridge {} within {} s; is it running? \
                         `ovswire lab down {name}` again finishes the removal",
                        st.bridge,
                        BRIDGE_REMOVAL_TIMEOUT.as_secs()
                    )
                })?;
        }
    }
    let d = dir(name);
    std::fs::remove_dir_all(&d).with_context(|| format!("remove {}", d.display()))?;
    let _ = std::fs::remove_file(labs_dir().join(format!(".{name}.lock")));
    say(
        &shown,
        &format!("removed {count} nodes and bridge {}", st.bridge),
    );
    if st.ovs.as_ref().is_some_and(|o| o.own) && names().is_empty() {
        tokio::task::block_in_place(ovs::stop_own)?;
        say(
            &shown,
            "stopped ovswire's Open vSwitch (no lab uses it any more)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovswire_proto::v1::{AdminState, OperState};

    fn link(a: &str, admin: AdminState, oper: OperState, reason: &str) -> Link {
        Link {
            reason: reason.into(),
            ..wires::test_link(a, "z:eth9", admin, oper)
        }
    }

    #[test]
    fn the_summary_counts_what_is_up_and_names_what_is_not() {
        let s = account(
            vec![
                link("a:eth1", AdminState::Up, OperState::Up, ""),
                link("b:eth1", AdminState::Down, OperState::Down, ""),
                link(
                    "c:eth1",
                    AdminState::Up,
                    OperState::Pending,
                    "waiting for z:eth9",
                ),
            ],
            false,
        );
        assert_eq!(
            s.line,
            "3 links: 1 up, 1 down as the file asks (b:eth1--z:eth9), 1 NOT as the file asks \
             (c:eth1--z:eth9 pending: waiting for z:eth9)"
        );
        assert!(!s.settled);
        let s = account(
            vec![link("a:eth1", AdminState::Up, OperState::Up, "")],
            true,
        );
        assert_eq!(s.line, "1 links: 1 up");
        assert!(s.settled);
    }
}
