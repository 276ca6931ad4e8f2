//! A lab's nodes: bare network namespaces, and containers run by the engine. What a node is, how
//! it is made, found again, run commands in and removed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::mgmt::MgmtRecord;
use super::{LabState, dir, say};
use crate::engine::{ContainerSpec, Engine, ImageDefaults, LAB_LABEL, NODE_LABEL};
use crate::kinds;
use crate::spec::{LabSpec, NodeSpec};

/// The label holding a digest of a node container's settings: a container whose settings the
/// file changed is made anew.
pub(super) const CONFIG_LABEL: &str = "dev.ovswire.config";

/// What a lab made for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeRecord {
    /// A bare network namespace, by name.
    Namespace(String),
    /// A container.
    Container(ContainerRecord),
    /// The host, whose interfaces `host:IFNAME` endpoints are: nothing is made for it.
    Host,
}

/// The network namespace of `host:IFNAME` endpoints: the one `ovswire` and the lab's agent run
/// in (each reads the path as its own).
pub(super) const HOST_NETNS: &str = "/proc/self/ns/net";

/// A node container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The engine's id.
    pub id: String,
    /// Its name, `<lab>-<node>`.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Its management address.
    pub mgmt_ipv4: Ipv4Addr,
    /// The network namespace its interfaces were last wired into.
    pub netns: Option<PathBuf>,
}

impl NodeRecord {
    /// The node's network namespace, where its interfaces go, while it has one.
    pub fn netns(&self) -> Option<PathBuf> {
        match self {
            Self::Namespace(name) => Some(ovswire_netns::path(name)),
            Self::Container(c) => c.netns.clone(),
            Self::Host => Some(PathBuf::from(HOST_NETNS)),
        }
    }

    /// The container, for a container node.
    pub fn container(&self) -> Option<&ContainerRecord> {
        match self {
            Self::Namespace(_) | Self::Host => None,
            Self::Container(c) => Some(c),
        }
    }
}

/// The name of node `node`'s namespace or container in lab `lab`.
pub fn node_object_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// An error about node `node` of the file, naming the file and the node's line.
pub(super) fn node_error(file: &Path, node: &str, spec: &NodeSpec, message: &str) -> anyhow::Error {
    let line = spec.line.map(|l| format!(", line {l}")).unwrap_or_default();
    anyhow!(
        "topology file {}{line}: node {node}: {message}",
        file.display()
    )
}

/// Holds a container's own entrypoint until ovswire has wired the interfaces its links name
/// (`$OVSWIRE_INTERFACES`), then becomes it: the workload starts with its interfaces there,
/// containerlab's order, after every start of the container, including restarts.
const WAIT_FOR_INTERFACES: &str = "for i in $OVSWIRE_INTERFACES; do \
     while [ ! -e \"/sys/class/net/$i\" ]; do sleep 0.1; done; done; exec \"$@\"";

/// The container a node wants, and the digest of the settings it is made from.
#[derive(Debug, Clone)]
pub(super) struct Wanted {
    pub(super) spec: ContainerSpec,
    pub(super) digest: String,
}

/// Everything needed to run the lab's container nodes, checked before anything is made: the
/// kinds run, the images are here (pulled when missing), the names are free, every node has
/// something to run; then the management network is made (see [`super::mgmt::establish`]).
pub(super) async fn prepare(
    engine: &Engine,
    spec: &LabSpec,
    file: &Path,
    st: &LabState,
) -> Result<(MgmtRecord, BTreeMap<String, Wanted>)> {
    let lab = &spec.name;
    let containers: Vec<(&String, &NodeSpec)> = spec
        .nodes_in_file_order()
        .into_iter()
        .filter(|(_, n)| n.is_container())
        .collect();
    for (name, node) in &containers {
        kinds::check_bootable(node.kind()).map_err(|e| node_error(file, name, node, &e))?;
    }

    // Images: each is looked at once, and pulled once when missing.
    let mut images: BTreeMap<&str, Vec<(&String, &NodeSpec)>> = BTreeMap::new();
    for (name, node) in &containers {
        let image = node.image.as_deref().unwrap_or_default();
        images.entry(image).or_default().push((name, node));
    }
    let mut defaults: BTreeMap<&str, ImageDefaults> = BTreeMap::new();
    for (image, users) in &images {
        let found = match engine.image(image).await? {
            Some(d) => d,
            None => {
                say(spec.names.lab(lab), &format!("pulling image {image}"));
                let pulled = engine.pull(image).await;
                match (pulled, engine.image(image).await?) {
                    (Ok(()), Some(d)) => d,
                    (result, _) => {
                        let why = result.err().map_or_else(
                            || "the engine has no such image after the pull".to_owned(),
                            |e| e.to_string(),
                        );
                        let (name, node) = users[0];
                        let others: Vec<&str> =
                            users[1..].iter().map(|(n, _)| n.as_str()).collect();
                        let also = if others.is_empty() {
                            String::new()
                        } else {
                            format!(" (also used by {})", others.join(", "))
                        };
                        return Err(node_error(
                            file,
                            name,
                            node,
                            &format!(
                                "image {image}{also} is not on this machine and cannot be \
                                 pulled ({why}); load it (`{runtime} load -i FILE`), build it \
                                 (`{runtime} build` or `{runtime} import`), or make its registry \
                                 reachable; nothing was created",
                                runtime = engine.site().runtime
                            ),
                        ));
                    }
                }
            }
        };
        defaults.insert(image, found);
    }

    // Names: `<lab>-<node>` must be free, or this lab's.
    for (name, node) in &containers {
        let object = node_object_name(lab, name);
        if let Some(c) = engine.container(&object).await?
            && c.labels.get(LAB_LABEL) != Some(lab)
        {
            return Err(node_error(
                file,
                name,
                node,
                &format!(
                    "a container named {object} exists and is not part of lab {lab}; remove it \
                     (`{} rm -f {object}`) or rename the node",
                    engine.site().runtime
                ),
            ));
        }
    }

    // The last step: the management network is made here, once everything else checked out.
    let (mgmt, addresses) = super::mgmt::establish(engine, spec, st).await?;
    let hosts: Vec<String> = addresses.iter().map(|(n, a)| format!("{n}:{a}")).collect();

    let mut wanted = BTreeMap::new();
    for (name, node) in &containers {
        let image = node.image.clone().unwrap_or_default();
        let argv = command_line(node, &defaults[image.as_str()])
            .map_err(|e| node_error(file, name, node, &e))?;
        let ifnames: Vec<String> = spec
            .interfaces_of(name)
            .iter()
            .map(|e| e.ifname.clone())
            .collect();
        let mut binds: Vec<String> = node.binds.iter().map(ToString::to_string).collect();
        let mut digest = sha1_smol::Sha1::new();
        if let Some(text) = startup_config_text(name, node)? {
            let copy = startup_config_copy(lab, name);
            let target = node
                .startup_config_at
                .as_deref()
                .unwrap_or(kinds::startup_config_target(&image));
            binds.push(format!("{}:{target}", copy.display()));
            digest.update(target.as_bytes());
            digest.update(&text);
        }
        let mut env: Vec<String> = node.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut labels = node.labels.clone();
        labels.insert(LAB_LABEL.to_owned(), lab.clone());
        labels.insert(NODE_LABEL.to_owned(), (*name).clone());
        let mut container = ContainerSpec {
            name: node_object_name(lab, name),
            hostname: (*name).clone(),
            image,
            entrypoint: vec![
                "/bin/sh".into(),
                "-c".into(),
                WAIT_FOR_INTERFACES.into(),
                "ovswire-wait".into(),
            ],
            cmd: argv,
            env: env.clone(),
            labels,
            binds,
            user: node.user.clone(),
            restart_policy: node.restart_policy.clone(),
            network: Some((mgmt.network.clone(), addresses[*name])),
            extra_hosts: hosts.clone(),
        };
        // The digest covers the node's own settings, not its interfaces (added live) nor the
        // other nodes' addresses.
        let mut own = container.clone();
        own.extra_hosts.clear();
        digest.update(format!("{own:?}").as_bytes());
        let digest = digest.digest().to_string();
        container
            .labels
            .insert(CONFIG_LABEL.to_owned(), digest.clone());
        env.push(format!("OVSWIRE_INTERFACES={}", ifnames.join(" ")));
        // containerlab's variable: how many data interfaces the node gets (images that count
        // them wait for them on their own).
        env.push(format!("CLAB_INTFS={}", ifnames.len()));
        container.env = env;
        wanted.insert(
            (*name).clone(),
            Wanted {
                spec: container,
                digest,
            },
        );
    }
    Ok((mgmt, wanted))
}

/// The command a container runs, as the engine would make it: the node's entrypoint, or the
/// image's; then the node's command, or the image's unless the node replaced the entrypoint.
fn command_line(node: &NodeSpec, image: &ImageDefaults) -> Result<Vec<String>, String> {
    let split = |what: &str, s: &str| {
        shlex::split(s).ok_or_else(|| format!("{what} {s:?} has unbalanced quotes"))
    };
    let (entrypoint, cmd) = match &node.entrypoint {
        Some(e) => (
            split("entrypoint", e)?,
            node.cmd
                .as_deref()
                .map(|c| split("cmd", c))
                .transpose()?
                .unwrap_or_default(),
        ),
        None => (
            image.entrypoint.clone(),
            match &node.cmd {
                Some(c) => split("cmd", c)?,
                None => image.cmd.clone(),
            },
        ),
    };
    let argv = [entrypoint, cmd].concat();
    if argv.is_empty() {
        return Err(format!(
            "image {} has no entrypoint or command, and the node sets no cmd; give it one \
             (cmd: sleep infinity, say)",
            node.image.as_deref().unwrap_or_default()
        ));
    }
    Ok(argv)
}

/// Node `name`'s startup configuration, inline or read from its file.
fn startup_config_text(name: &str, node: &NodeSpec) -> Result<Option<Vec<u8>>> {
    match (&node.startup_config_inline, &node.startup_config) {
        (Some(text), _) => Ok(Some(text.clone())),
        (None, Some(path)) => std::fs::read(path)
            .map(Some)
            .with_context(|| format!("read the startup-config of node {name}")),
        (None, None) => Ok(None),
    }
}

/// Where the lab keeps its copy of node `node`'s startup-config: the copy is what the container
/// mounts, so the node (FRR changes the owner of its files) never touches the user's file.
fn startup_config_copy(lab: &str, node: &str) -> PathBuf {
    dir(lab).join("nodes").join(node).join("startup-config")
}

/// Makes node `name`'s container as `wanted`, unless the one there (this lab's, by name) has
/// the same settings; starts it when it is not running. Returns its record (keeping the
/// namespace its interfaces were wired into, when it is the same container) and whether its
/// workload started afresh (its `exec` commands are to run).
pub(super) async fn ensure_container(
    engine: &Engine,
    st: &LabState,
    spec: &LabSpec,
    name: &str,
    wanted: &Wanted,
) -> Result<(ContainerRecord, bool)> {
    let object = &wanted.spec.name;
    let current = engine.container(object).await?;
    let kept = match &current {
        Some(c) if c.labels.get(CONFIG_LABEL) == Some(&wanted.digest) => Some(c.clone()),
        Some(c) => {
            say(
                &st.name,
                &format!("node {name} changed in the file; making its container anew"),
            );
            engine.remove(&c.id).await?;
            None
        }
        None => None,
    };
    let mut fresh = false;
    let id = match kept {
        Some(c) => c.id,
        None => {
            if let Some(text) = startup_config_text(name, &spec.nodes[name])? {
                let copy = startup_config_copy(&st.name, name);
                if let Some(parent) = copy.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("create {}", parent.display()))?;
                }
                std::fs::write(&copy, text).with_context(|| {
                    format!(
                        "copy the startup-config of node {name} to {}",
                        copy.display()
                    )
                })?;
            }
            fresh = true;
            engine.create(&wanted.spec).await?
        }
    };
    let record = ContainerRecord {
        id: id.clone(),
        name: object.clone(),
        image: wanted.spec.image.clone(),
        mgmt_ipv4: wanted
            .spec
            .network
            .as_ref()
            .map_or(Ipv4Addr::UNSPECIFIED, |n| n.1),
        netns: st
            .nodes
            .get(name)
            .and_then(NodeRecord::container)
            .filter(|c| c.id == id)
            .and_then(|c| c.netns.clone()),
    };
    let info = engine
        .container(&id)
        .await?
        .ok_or_else(|| anyhow!("container {object} vanished right after it was made"))?;
    if !info.running() {
        engine.start(&id).await.map_err(|e| {
            e.context(format!(
                "node {name}: its container does not start (ovswire holds its entrypoint with \
                 /bin/sh until its interfaces are wired: the image needs a shell)"
            ))
        })?;
        fresh = true;
    }
    Ok((record, fresh))
}

/// The network namespace container `id` runs in now; an error when it does not run.
pub(super) async fn running_netns(engine: &Engine, name: &str, id: &str) -> Result<PathBuf> {
    let info = engine.container(id).await?.ok_or_else(|| {
        anyhow!("the container of node {name} is gone; `ovswire lab up` makes it again")
    })?;
    match (&info.netns, info.running()) {
        (Some(netns), true) => Ok(netns.clone()),
        _ => {
            let logs = engine.logs(id, 10).await;
            bail!(
                "the container of node {name} is not running ({}, exit code {}); its last \
                 output:\n{}",
                info.status,
                info.exit_code,
                logs.trim_end()
            )
        }
    }
}

/// Makes node `name`'s namespace when it is missing (new, or deleted by hand); whether it made
/// it.
pub(super) fn ensure_namespace(st: &mut LabState, name: &str) -> Result<bool> {
    let ns = node_object_name(&st.name, name);
    if matches!(st.nodes.get(name), Some(NodeRecord::Namespace(n)) if ovswire_netns::exists(n)) {
        return Ok(false);
    }
    if ovswire_netns::exists(&ns) && !st.nodes.contains_key(name) {
        bail!(
            "network namespace {ns} exists and is not part of lab {}; remove it (`ip netns del \
             {ns}`) or rename node {name}",
            st.name
        );
    }
    let _ = ovswire_netns::delete(&ns); // an unmounted leftover file
    ovswire_netns::create(&ns).with_context(|| format!("create the namespace of node {name}"))?;
    st.nodes.insert(name.to_owned(), NodeRecord::Namespace(ns));
    st.save()?;
    Ok(true)
}

/// Removes node `name` and everything running in it. A namespace node's interfaces `ifnames`
/// are deleted first: that removes the veth pairs at once, where the namespace's own teardown
/// would too, but later, in the background.
pub(super) async fn remove(
    engine: Option<&Engine>,
    name: &str,
    record: &NodeRecord,
    ifnames: Vec<String>,
) -> Result<()> {
    match record {
        NodeRecord::Namespace(ns) => {
            if ovswire_netns::exists(ns) && !ifnames.is_empty() {
                ovswire_netns::spawn(ovswire_netns::path(ns), |h| async move {
                    for ifname in ifnames {
                        ovswire_netns::link::delete(&h, &ifname).await?;
                    }
                    Ok::<_, ovswire_netns::Error>(())
                })
                .await
                .and_then(|deleted| deleted)
                .with_context(|| format!("remove the interfaces of node {name}"))?;
            }
            let ns = ns.clone();
            tokio::task::spawn_blocking(move || {
                ovswire_netns::kill_processes(&ns)
                    .and_then(|_| ovswire_netns::delete(&ns))
                    .with_context(|| format!("remove network namespace {ns}"))
            })
            .await
            .context("the thread removing a namespace failed")?
            .with_context(|| format!("remove node {name}"))
        }
        NodeRecord::Host => {
            // The host's ends of its links; removing one removes its veth pair.
            ovswire_netns::spawn(PathBuf::from(HOST_NETNS), |h| async move {
                for ifname in ifnames {
                    ovswire_netns::link::delete(&h, &ifname).await?;
                }
                Ok::<_, ovswire_netns::Error>(())
            })
            .await
            .and_then(|deleted| deleted)
            .context("remove the host's ends of the lab's host links")
        }
        NodeRecord::Container(c) => match engine {
            Some(engine) => engine.remove(&c.id).await,
            None => bail!(
                "node {name} is container {}, but no container engine answers; start it and run \
                 this again",
                c.name
            ),
        },
    }
}

/// Runs `sh -c command` in node `name`, its output appended to `log`; whether it succeeded, and
/// how it ended.
pub(super) async fn sh(
    engine: Option<&Engine>,
    record: &NodeRecord,
    command: &str,
    log: &Path,
) -> Result<(bool, String)> {
    use std::io::Write;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    match record {
        NodeRecord::Namespace(ns) => {
            let err = out.try_clone()?;
            let status = tokio::task::block_in_place(|| {
                ovswire_netns::run(&ovswire_netns::path(ns), || {
                    std::process::Command::new("sh")
                        .args(["-c", command])
                        .stdin(std::process::Stdio::null())
                        .stdout(out)
                        .stderr(err)
                        .status()
                })
            })?
            .with_context(|| format!("run `{command}` in {ns}"))?;
            Ok((status.success(), status.to_string()))
        }
        NodeRecord::Container(c) => {
            let engine = engine.ok_or_else(|| anyhow!("no container engine answers"))?;
            let argv = ["sh", "-c", command].map(String::from);
            let code = engine
                .exec(&c.id, &argv, |o| {
                    let (crate::engine::Output::Stdout(b) | crate::engine::Output::Stderr(b)) = o;
                    let _ = out.write_all(b);
                })
                .await?;
            Ok((code == 0, format!("exit code {code}")))
        }
        NodeRecord::Host => bail!("the host is not a node of the lab; it runs no commands"),
    }
}

/// The nodes whose records say they are containers.
pub(super) fn container_nodes(st: &LabState) -> BTreeSet<String> {
    st.nodes
        .iter()
        .filter(|(_, r)| r.container().is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageDefaults {
        ImageDefaults {
            entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn command_lines_follow_the_engines_rules() {
        let frr = image(&["/usr/bin/tini", "--"], &["/usr/lib/frr/docker-start"]);
        let node = |entrypoint: Option<&str>, cmd: Option<&str>| NodeSpec {
            image: Some("frr".into()),
            entrypoint: entrypoint.map(str::to_owned),
            cmd: cmd.map(str::to_owned),
            ..NodeSpec::default()
        };
        assert_eq!(
            command_line(&node(None, None), &frr).unwrap(),
            ["/usr/bin/tini", "--", "/usr/lib/frr/docker-start"]
        );
        assert_eq!(
            command_line(&node(None, Some("sleep 'a b'")), &frr).unwrap(),
            ["/usr/bin/tini", "--", "sleep", "a b"]
        );
        assert_eq!(
            command_line(&node(Some("/bin/bash -c"), None), &frr).unwrap(),
            ["/bin/bash", "-c"],
            "a new entrypoint drops the image's command"
        );
        assert!(command_line(&node(None, Some("echo 'x")), &frr).is_err());
        assert!(
            command_line(&node(None, None), &image(&[], &[]))
                .unwrap_err()
                .contains("cmd")
        );
    }

    #[test]
    fn the_wait_script_holds_until_every_interface_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let script =
            WAIT_FOR_INTERFACES.replace("/sys/class/net", &dir.path().display().to_string());
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script, "ovswire-wait", "echo", "started"])
            .env("OVSWIRE_INTERFACES", "eth1 eth2")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "waits for eth1 and eth2"
        );
        std::fs::write(dir.path().join("eth1"), "").unwrap();
        std::fs::write(dir.path().join("eth2"), "").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    }
}
