//! Local labs: one network namespace per node on this machine, wired by a lab's own agent
//! through the real `ovswire-cni` plugin, on the machine's Open vSwitch or one ovswire starts.
//!
//! Everything a lab makes is recorded in `/run/ovswire/labs/<lab>/lab.json` as it is made, so
//! `down` removes exactly that (and nothing else), even after an `up` that failed midway.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::stream::{self, StreamExt};
use ovswire_cni::Invocation;
use ovswire_cni::spec::{Command, K8S_POD_NAME, K8S_POD_NAMESPACE};
use ovswire_netns::link;
use serde::{Deserialize, Serialize};

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
/// CNI calls in flight at once while wiring.
const CONCURRENCY: usize = 16;

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
    /// Node name → network namespace name.
    pub nodes: BTreeMap<String, String>,
    /// Node interfaces attached through CNI, as `(node, ifname)`.
    pub attached: BTreeSet<(String, String)>,
}

/// A lab's directory.
pub fn dir(name: &str) -> PathBuf {
    labs_dir().join(name)
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
    /// Loads the state of lab `name`, if it is up.
    pub fn load(name: &str) -> Result<Option<Self>> {
        let path = dir(name).join("lab.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{} is damaged; remove the lab by hand", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
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
}

/// The Wires target of lab `name`, or of the only lab when `name` is `None`.
pub fn target(name: Option<&str>) -> Result<Target> {
    let name = match name {
        Some(n) => n.to_owned(),
        None => match names().as_slice() {
            [one] => one.clone(),
            [] => return Ok(Target::Socket(PathBuf::from(wires::NODE_SOCKET))),
            many => bail!(
                "several labs are up ({}); name one with --lab",
                many.join(", ")
            ),
        },
    };
    LabState::load(&name)?
        .map(|s| Target::Socket(s.wires_socket()))
        .ok_or_else(|| anyhow!("no lab named {name} is up; `ovswire lab status` lists the labs"))
}

/// The network namespace of node `node` in lab `lab`.
pub fn netns_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
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

fn container_id(lab: &str, node: &str) -> String {
    format!("ovswire-lab-{lab}-{node}")
}

/// Where a binary of this installation is: next to `ovswire`, else on `PATH`.
fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("find the running executable")?;
    if let Some(dir) = exe.parent()
        && dir.join(name).is_file()
    {
        return Ok(dir.join(name));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "{name} is not installed next to {} nor on PATH; build the workspace \
                 (`cargo build --release`) or install it",
                exe.display()
            )
        })
}

/// Prints a progress line for lab `lab` on stderr.
fn say(lab: &str, msg: &str) {
    eprintln!("lab {lab}: {msg}");
}

/// Brings lab `spec` up (read from `file`), or converges a lab that is up to it.
pub async fn up(
    spec: &LabSpec,
    file: &Path,
    choice: &OvsChoice,
) -> Result<Vec<ovswire_proto::v1::Link>> {
    let name = spec.name.as_str();
    let started = Instant::now();
    let mut st = LabState::load(name)?.unwrap_or_else(|| LabState {
        name: name.to_owned(),
        bridge: bridge_name(name),
        ..LabState::default()
    });
    st.file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    st.save()?;

    // Open vSwitch.
    let ovs = match &st.ovs {
        Some(o)
            if o.db
                .strip_prefix("unix:")
                .is_some_and(|p| Path::new(p).exists()) =>
        {
            o.clone()
        }
        _ => tokio::task::block_in_place(|| ovs::choose(choice, &|m| say(name, m)))?,
    };
    st.ovs = Some(ovs.clone());
    st.save()?;

    // The agent, restarted when the topology changed (it adopts the wiring it left).
    let topology = crate::file::agent_topology(spec);
    let topo_path = dir(name).join("topology.yaml");
    let changed = std::fs::read_to_string(&topo_path).ok().as_deref() != Some(topology.as_str());
    let running = st.agent_pid.is_some_and(process::alive);
    if running && changed {
        say(name, "topology changed; restarting the lab's agent");
        stop_agent(&mut st)?;
    }
    std::fs::write(&topo_path, &topology)
        .with_context(|| format!("write {}", topo_path.display()))?;
    if !st.agent_pid.is_some_and(process::alive) {
        start_agent(&mut st, &ovs, &topo_path).await?;
    }

    // Nodes: namespaces for new ones, gone ones removed with their interfaces.
    let mut created = Vec::new();
    for node in spec.nodes.keys() {
        if st.nodes.contains_key(node) && ovswire_netns::exists(&st.nodes[node]) {
            continue;
        }
        let ns = netns_name(name, node);
        if ovswire_netns::exists(&ns) {
            bail!(
                "network namespace {ns} exists and is not part of lab {name}; remove it \
                 (`ip netns del {ns}`) or rename node {node}"
            );
        }
        let _ = ovswire_netns::delete(&ns); // an unmounted leftover file
        ovswire_netns::create(&ns)
            .with_context(|| format!("create the namespace of node {node}"))?;
        st.nodes.insert(node.clone(), ns);
        st.save()?;
        created.push(node.clone());
    }
    if !created.is_empty() {
        say(name, &format!("created {} node namespaces", created.len()));
    }
    let plugin = binary("ovswire-cni")?;
    let wanted: BTreeSet<(String, String)> = spec
        .links
        .iter()
        .flat_map(|l| [&l.a, &l.b])
        .map(|e| (e.node.clone(), e.ifname.clone()))
        .collect();
    let stale: Vec<_> = st.attached.difference(&wanted).cloned().collect();
    for (node, ifname) in &stale {
        if let Some(ns) = st.nodes.get(node) {
            cni(&plugin, &st, Command::Del, node, ns, ifname).await?;
        }
        st.attached.remove(&(node.clone(), ifname.clone()));
        st.save()?;
    }
    let gone: Vec<_> = st
        .nodes
        .keys()
        .filter(|n| !spec.nodes.contains_key(*n))
        .cloned()
        .collect();
    for node in gone {
        remove_namespace(&st.nodes[&node])?;
        st.nodes.remove(&node);
        st.save()?;
    }
    if !stale.is_empty() {
        say(
            name,
            &format!("removed {} interfaces no longer in the file", stale.len()),
        );
    }

    // Interfaces, through the real CNI plugin, many at once.
    let todo: Vec<_> = wanted
        .iter()
        .filter(|k| !st.attached.contains(*k))
        .cloned()
        .collect();
    if !todo.is_empty() {
        say(name, &format!("wiring {} interfaces", todo.len()));
        let total = todo.len();
        let mut results = stream::iter(todo.into_iter().map(|(node, ifname)| {
            let (plugin, st) = (&plugin, &st);
            async move {
                let r = cni(plugin, st, Command::Add, &node, &st.nodes[&node], &ifname).await;
                (node, ifname, r)
            }
        }))
        .buffer_unordered(CONCURRENCY);
        let mut done = Vec::new();
        let mut failed = None;
        let mut last = Instant::now();
        while let Some((node, ifname, r)) = results.next().await {
            match r {
                Ok(()) => done.push((node, ifname)),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
            if last.elapsed() > Duration::from_secs(1) {
                say(name, &format!("{}/{total} interfaces attached", done.len()));
                last = Instant::now();
            }
        }
        drop(results);
        st.attached.extend(done);
        st.save()?;
        if let Some(e) = failed {
            return Err(e.context(format!(
                "wiring lab {name} failed; `ovswire lab down {name}` removes what was made"
            )));
        }
    }

    // Addresses from the file.
    for l in &spec.links {
        for e in [&l.a, &l.b] {
            if e.addrs.is_empty() {
                continue;
            }
            let (ifname, addrs) = (e.ifname.clone(), e.addrs.clone());
            let ns = ovswire_netns::path(&st.nodes[&e.node]);
            tokio::task::block_in_place(|| {
                ovswire_netns::block_on(&ns, |h| async move {
                    for a in addrs {
                        match link::add_address(&h, &ifname, a.addr, a.prefix).await {
                            // Already there from an earlier `up`.
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

    let links = wait_settled(&st, spec.links.len()).await?;

    // Commands of nodes made in this run, once their wires are up.
    for node in &created {
        for cmd in &spec.nodes[node].exec {
            let log = dir(name).join(format!("{node}.log"));
            let status = tokio::task::block_in_place(|| sh(&st.nodes[node], cmd, &log))?;
            if !status.success() {
                say(
                    name,
                    &format!(
                        "warning: `{cmd}` on {node} failed ({status}); see {}",
                        log.display()
                    ),
                );
            }
        }
    }
    say(
        name,
        &format!(
            "{} nodes, {} links up in {:.1} s",
            spec.nodes.len(),
            links.len(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(links)
}

/// Removes a node's namespace with every process still in it (the commands the lab started),
/// so that the namespace really goes away.
fn remove_namespace(ns: &str) -> Result<()> {
    ovswire_netns::kill_processes(ns)
        .and_then(|_| ovswire_netns::delete(ns))
        .with_context(|| format!("remove network namespace {ns}"))
}

/// Runs `sh -c command` inside namespace `ns`, its output appended to `log`, and waits for it;
/// the command's exit status.
fn sh(ns: &str, command: &str, log: &Path) -> Result<std::process::ExitStatus> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    let err = out.try_clone()?;
    ovswire_netns::run(&ovswire_netns::path(ns), || {
        std::process::Command::new("sh")
            .args(["-c", command])
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
    })?
    .with_context(|| format!("run `{command}` in {ns}"))
}

/// Waits until every link of the lab is as its admin state asks.
async fn wait_settled(st: &LabState, expected: usize) -> Result<Vec<ovswire_proto::v1::Link>> {
    let wires = Wires::connect(&Target::Socket(st.wires_socket())).await?;
    let timeout = Duration::from_secs(60) + Duration::from_millis(20) * expected as u32;
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    loop {
        let links = wires.links(&st.name).await?;
        let settled = links.iter().filter(|l| wires::settled(l)).count();
        if links.len() >= expected && settled == links.len() {
            return Ok(links);
        }
        if Instant::now() > deadline {
            let stuck: Vec<_> = links
                .iter()
                .filter(|l| !wires::settled(l))
                .take(5)
                .map(|l| {
                    format!(
                        "{} ({}: {})",
                        wires::link_name(l),
                        wires::state_word(l),
                        l.reason
                    )
                })
                .collect();
            bail!(
                "{settled} of {expected} links settled after {} s; still waiting: {}; the \
                 agent's log is {}",
                timeout.as_secs(),
                stuck.join(", "),
                dir(&st.name).join("agent.log").display()
            );
        }
        if last.elapsed() > Duration::from_secs(1) {
            say(&st.name, &format!("{settled}/{expected} links up"));
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_agent(st: &mut LabState, ovs: &OvsSite, topology: &Path) -> Result<()> {
    let agent = binary("ovswire-agent")?;
    let d = dir(&st.name);
    let log_path = d.join("agent.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let dpid = ovswire_core::naming::datapath_id(&format!("{host}/{}", st.name));
    let mut cmd = std::process::Command::new(&agent);
    cmd.arg(format!("--ovsdb={}", ovs.db))
        .arg(format!("--ovs-rundir={}", ovs.rundir.display()))
        .arg(format!("--bridge={}", st.bridge))
        .arg(format!("--datapath-type={}", ovs.datapath))
        .arg(format!("--datapath-id={dpid:016x}"))
        .arg(format!("--topology={}", topology.display()))
        .arg(format!("--cni-socket={}", st.cni_socket().display()))
        .arg(format!("--wires-socket={}", st.wires_socket().display()))
        .arg(format!("--node-name={host}"))
        // Its log is for people: errors without Rust backtraces.
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // Its own process group: a Ctrl-C at the terminal stops `ovswire`, not the lab's agent.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", agent.display()))?;
    st.agent_pid = Some(child.id() as i32);
    st.save()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let answers = |p: &Path| std::os::unix::net::UnixStream::connect(p).is_ok();
    while !(answers(&st.cni_socket()) && answers(&st.wires_socket())) {
        if let Some(status) = child.try_wait()? {
            st.agent_pid = None;
            st.save()?;
            bail!(
                "the lab's agent exited ({status}); the end of its log ({}):\n{}",
                log_path.display(),
                tail(&log_path, 10)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the lab's agent did not serve within 30 s; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn stop_agent(st: &mut LabState) -> Result<()> {
    if let Some(pid) = st.agent_pid {
        process::terminate(pid, "the lab's agent", Duration::from_secs(10))?;
    }
    st.agent_pid = None;
    st.save()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs the CNI plugin once, the way a container runtime does.
async fn cni(
    plugin: &Path,
    st: &LabState,
    command: Command,
    node: &str,
    netns: &str,
    ifname: &str,
) -> Result<()> {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "ovswire",
        "type": "ovswire-cni",
        "socket": st.cni_socket(),
    })
    .to_string();
    let invocation = Invocation::new(plugin, command)
        .container_id(container_id(&st.name, node))
        .netns(ovswire_netns::path(netns))
        .ifname(ifname)
        .args(&[(K8S_POD_NAMESPACE, &st.name), (K8S_POD_NAME, node)])
        .config(conf);
    // The plugin process blocks its thread until the agent answers, and many run at once.
    tokio::task::spawn_blocking(move || invocation.run())
        .await
        .context("the thread running the CNI plugin failed")?
        .with_context(|| format!("CNI {command} of {node}:{ifname}"))?;
    Ok(())
}

/// Removes lab `name`: its agent, node namespaces (and every process in them), bridge and
/// state; and ovswire's own OVS when no other lab uses it.
pub async fn down(name: &str) -> Result<()> {
    let Some(mut st) = LabState::load(name)? else {
        let up = names();
        bail!(
            "no lab named {name} is up{}",
            if up.is_empty() {
                String::new()
            } else {
                format!(" (up: {})", up.join(", "))
            }
        );
    };
    stop_agent(&mut st)?;
    let nodes = std::mem::take(&mut st.nodes);
    for (node, ns) in &nodes {
        // Deleting the pod ends removes the pairs at once; a namespace's own teardown would
        // too, but later, in the background.
        let ifnames: Vec<String> = st
            .attached
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, i)| i.clone())
            .collect();
        if ovswire_netns::exists(ns) {
            tokio::task::block_in_place(|| {
                ovswire_netns::block_on(&ovswire_netns::path(ns), |h| async move {
                    for ifname in ifnames {
                        link::delete(&h, &ifname).await?;
                    }
                    Ok::<_, ovswire_netns::Error>(())
                })
            })
            .and_then(|deleted| deleted)
            .with_context(|| format!("remove the interfaces of node {node}"))?;
        }
        remove_namespace(ns)?;
    }
    st.attached.clear();
    st.save()?;
    if let Some(ovs) = &st.ovs
        && ovs
            .db
            .strip_prefix("unix:")
            .is_some_and(|p| Path::new(p).exists())
    {
        let db = ovswire_ovsdb::Client::connect(&ovs.db)
            .await
            .with_context(|| format!("connect to OVSDB at {}", ovs.db))?;
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
    say(
        name,
        &format!("removed {} nodes and bridge {}", nodes.len(), st.bridge),
    );
    if st.ovs.as_ref().is_some_and(|o| o.own) && names().is_empty() {
        tokio::task::block_in_place(ovs::stop_own)?;
        say(
            name,
            "stopped ovswire's Open vSwitch (no lab uses it any more)",
        );
    }
    Ok(())
}
