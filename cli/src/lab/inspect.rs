//! What users do with a lab that is up: `inspect` its nodes, `exec` a command in one, `save`
//! the running configuration of its routers.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use super::{NodeRecord, state};
use crate::engine::{Engine, Output};
use crate::kinds;
use crate::wires::{self, Wires};

/// One node of a lab as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// The lab.
    pub lab: String,
    /// The node.
    pub name: String,
    /// `container` or `namespace`.
    #[serde(rename = "type")]
    pub kind_of: &'static str,
    /// The node's kind.
    pub kind: String,
    /// Its image (containers).
    pub image: Option<String>,
    /// Its container's name, or its namespace's.
    pub object: String,
    /// `running`, `exited`, `missing`...
    pub state: String,
    /// Its management address (containers).
    pub mgmt_ipv4: Option<String>,
    /// Its interfaces and the state of their links: `eth1` → `up`.
    pub interfaces: BTreeMap<String, String>,
}

/// Every node of lab `lab`, in name order.
pub async fn inspect(lab: &str) -> Result<Vec<NodeView>> {
    let st = state(lab)?;
    let spec = crate::file::load(&st.file).ok();
    let engine = st.engine().await.ok().flatten();
    let mut link_states: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(target) = st.agent_target()
        && let Ok(w) = Wires::connect(&target).await
    {
        for l in w.links(lab).await.unwrap_or_default() {
            let word = wires::state_word(&l).to_owned();
            if let Some(r) = &l.r#ref {
                for e in [&r.a, &r.b].into_iter().flatten() {
                    link_states.insert(format!("{}:{}", e.pod, e.ifname), word.clone());
                }
            }
        }
    }
    let mut views = Vec::new();
    for (name, record) in &st.nodes {
        let interfaces = st
            .attached
            .keys()
            .filter_map(|k| k.split_once(':'))
            .filter(|(n, _)| n == name)
            .map(|(n, i)| {
                let word = link_states
                    .get(&format!("{n}:{i}"))
                    .cloned()
                    .unwrap_or_else(|| "unknown".into());
                (st.names.ifname(n, i).to_owned(), word)
            })
            .collect();
        let kind = spec
            .as_ref()
            .and_then(|s| s.nodes.get(name))
            .map_or("linux", |n| n.kind())
            .to_owned();
        let view = match record {
            NodeRecord::Namespace(ns) => NodeView {
                lab: st.names.lab(lab).to_owned(),
                name: st.names.node(name).to_owned(),
                kind_of: "namespace",
                kind,
                image: None,
                object: ns.clone(),
                state: if ovswire_netns::exists(ns) {
                    "running".into()
                } else {
                    "missing".into()
                },
                mgmt_ipv4: None,
                interfaces,
            },
            NodeRecord::Host => NodeView {
                lab: st.names.lab(lab).to_owned(),
                name: name.clone(),
                kind_of: "host",
                kind,
                image: None,
                object: "-".into(),
                state: "running".into(),
                mgmt_ipv4: None,
                interfaces,
            },
            NodeRecord::Container(c) => {
                let state = match &engine {
                    Some(e) => match e.container(&c.id).await? {
                        Some(info) => info.status,
                        None => "missing".into(),
                    },
                    None => "unknown (no engine answers)".into(),
                };
                NodeView {
                    lab: st.names.lab(lab).to_owned(),
                    name: st.names.node(name).to_owned(),
                    kind_of: "container",
                    kind,
                    image: Some(c.image.clone()),
                    object: c.name.clone(),
                    state,
                    mgmt_ipv4: Some(c.mgmt_ipv4.to_string()),
                    interfaces,
                }
            }
        };
        views.push(view);
    }
    Ok(views)
}

/// An aligned table of nodes, like containerlab's `inspect`.
pub fn table(views: &[NodeView]) -> String {
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            [
                v.name.clone(),
                v.kind.clone(),
                v.image.clone().unwrap_or_else(|| "-".into()),
                v.object.clone(),
                v.state.clone(),
                v.mgmt_ipv4.clone().unwrap_or_else(|| "-".into()),
                v.interfaces
                    .iter()
                    .map(|(i, s)| format!("{i}:{s}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    crate::table::aligned(
        [
            "NODE",
            "KIND",
            "IMAGE",
            "CONTAINER/NETNS",
            "STATE",
            "MGMT IPV4",
            "INTERFACES",
        ],
        &rows,
    )
}

/// Where a node runs commands.
enum Place {
    /// In this container of this engine.
    Container(String, Engine),
    /// In this network namespace (with the host's filesystem).
    Namespace(String),
}

/// Where node `node` of lab `lab` runs commands.
async fn locate(lab: &str, node: &str) -> Result<Place> {
    let st = state(lab)?;
    match st.nodes.get(node) {
        None => bail!(
            "lab {lab} has no node {node}; its nodes: {}",
            st.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        Some(NodeRecord::Namespace(ns)) => Ok(Place::Namespace(ns.clone())),
        Some(NodeRecord::Host) => {
            bail!("{node} is the host of lab {lab}'s host links, not a node; run the command here")
        }
        Some(NodeRecord::Container(c)) => {
            let engine = st.engine().await?.ok_or_else(|| {
                anyhow!("node {node} is a container, but the lab records no container engine")
            })?;
            Ok(Place::Container(c.id.clone(), engine))
        }
    }
}

/// Runs `argv` in node `node` of lab `lab` with this terminal's output (in a container, as the
/// engine's exec does; in a namespace node, as `ip netns exec` does); its exit code.
pub async fn exec(lab: &str, node: &str, argv: &[String]) -> Result<i32> {
    if argv.is_empty() {
        bail!("give the command after --, like `ovswire lab exec {node} -- ip addr`");
    }
    match locate(lab, node).await? {
        Place::Container(id, engine) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let _raw = RawTerminal::enter()?;
            let size = |var: &str, default: u16| {
                std::env::var(var)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default)
            };
            let code = engine
                .exec_tty(&id, argv, (size("COLUMNS", 80), size("LINES", 24)))
                .await?;
            Ok(i32::try_from(code).unwrap_or(1))
        }
        Place::Container(id, engine) => {
            let code = engine
                .exec(&id, argv, |o| {
                    let _ = match o {
                        Output::Stdout(b) => std::io::stdout().write_all(b),
                        Output::Stderr(b) => std::io::stderr().write_all(b),
                    };
                })
                .await?;
            let _ = std::io::stdout().flush();
            Ok(i32::try_from(code).unwrap_or(1))
        }
        Place::Namespace(ns) => {
            if !ovswire_netns::exists(&ns) {
                bail!("node {node}'s namespace {ns} is gone; `ovswire lab up` makes it again");
            }
            let status = tokio::task::block_in_place(|| {
                ovswire_netns::run(&ovswire_netns::path(&ns), || {
                    std::process::Command::new(&argv[0])
                        .args(&argv[1..])
                        .status()
                })
            })?
            .with_context(|| format!("run {} in node {node}", argv[0]))?;
            Ok(status.code().unwrap_or(1))
        }
    }
}

/// This terminal in raw mode (keys go to the command as typed, Ctrl-C included), restored when
/// dropped.
struct RawTerminal(nix::sys::termios::Termios);

impl RawTerminal {
    fn enter() -> Result<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("read the terminal's settings")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("put the terminal in raw mode")?;
        Ok(Self(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

/// What `save` did for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// Its running configuration, written to this file.
    To(PathBuf),
    /// Nothing to save, and why.
    Nothing(String),
}

/// Saves the running configuration of every router of lab `lab` that has one: FRR nodes write
/// their configuration inside the node (`vtysh -c write`), and a copy goes to `out/<node>.conf`.
pub async fn save(lab: &str, out: &Path) -> Result<BTreeMap<String, Saved>> {
    let st = state(lab)?;
    let engine = st.engine().await?;
    let mut saved = BTreeMap::new();
    for (node, record) in &st.nodes {
        let c = match record {
            NodeRecord::Container(c) if kinds::is_frr(&c.image) => c,
            NodeRecord::Container(c) => {
                saved.insert(
                    node.clone(),
                    Saved::Nothing(format!(
                        "image {} is not FRR; ovswire saves FRR routers' configurations",
                        c.image
                    )),
                );
                continue;
            }
            NodeRecord::Namespace(_) => {
                saved.insert(
                    node.clone(),
                    Saved::Nothing("a bare network namespace has no configuration".into()),
                );
                continue;
            }
            NodeRecord::Host => continue,
        };
        let engine = engine
            .as_ref()
            .ok_or_else(|| anyhow!("node {node} is a container, but no engine is recorded"))?;
        let vtysh = |args: &[&str]| {
            let argv: Vec<String> = std::iter::once("vtysh")
                .chain(args.iter().copied())
                .map(String::from)
                .collect();
            async move { engine.exec_output(&c.id, &argv).await }
        };
        let (code, text) = vtysh(&["-c", "write memory"]).await?;
        if code != 0 {
            bail!(
                "node {node}: `vtysh -c 'write memory'` failed ({code}): {}",
                text.trim()
            );
        }
        let (code, running) = vtysh(&["-c", "show running-config"]).await?;
        if code != 0 {
            bail!(
                "node {node}: `vtysh -c 'show running-config'` failed ({code}): {}",
                running.trim()
            );
        }
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        let path = out.join(format!("{node}.conf"));
        std::fs::write(&path, running).with_context(|| format!("write {}", path.display()))?;
        saved.insert(node.clone(), Saved::To(path));
    }
    Ok(saved)
}
