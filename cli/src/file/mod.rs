//! Topology files: ovswire's own format, containerlab's `.clab.yml`, KNE's (textproto or YAML)
//! and k8s-topo's YAML, each read into a [`LabSpec`]; and the agent's topology text for a lab.
//!
//! Every format gets the same checks (names as Kubernetes and the kernel accept them, two
//! endpoints per link, each interface in one link only, MTUs from 68 to 65535), and every error
//! names the file, the line where it is known, what is wrong and what to do:
//!
//! ```text
//! topology file lab.clab.yml, line 42: link 3 (r1:eth1 -- r2:eth1): r1:eth1 is already used by link 1 (r1:eth1 -- r3:eth1); an interface can be in one link only
//! ```
//!
//! ```no_run
//! let spec = ovswire_cli::file::load(std::path::Path::new("srl.clab.yml"))?;
//! println!("{} nodes, {} links", spec.nodes.len(), spec.links.len());
//! print!("{}", ovswire_cli::file::agent_topology(&spec));
//! # Ok::<(), ovswire_cli::file::FileError>(())
//! ```

mod check;
mod clab;
mod k8s_topo;
mod kne;
mod locate;
mod native;
mod node;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::spec::LabSpec;

/// The topology file formats `ovswire` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ovswire's own (`docs/topology.md`): `lab`, `mtu`, `pods` or `nodes`, `links`.
    Native,
    /// containerlab's topology definition (`*.clab.yml`): `name`, `topology.nodes/links`.
    Containerlab,
    /// networkop/k8s-topo's: `links` of `host:intf[:ip/len]` endpoints; the lab is named after
    /// the file.
    K8sTopo,
    /// KNE's `topo.Topology` in protobuf text format (`*.pb.txt`): `name`, `nodes`, `links`.
    KneText,
    /// KNE's `topo.Topology` in YAML.
    KneYaml,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "ovswire",
            Self::Containerlab => "containerlab",
            Self::K8sTopo => "k8s-topo",
            Self::KneText => "KNE textproto",
            Self::KneYaml => "KNE YAML",
        })
    }
}

/// A topology file that could not be used; the message says which file, where, why, and what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read topology file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown field or a value of the wrong type.
    #[error("topology file {path}{}: {message}", place(.line, .column))]
    Syntax {
        /// The file.
        path: String,
        /// Where (from 1), when the parser knows.
        line: Option<usize>,
        /// The column (from 1) on that line.
        column: Option<usize>,
        /// What is wrong and what to do.
        message: String,
    },
    /// The file parses but describes a lab ovswire cannot build.
    #[error("topology file {path}{}: {message}", place(.line, &None))]
    Invalid {
        /// The file.
        path: String,
        /// The line (from 1) of the offending link or node, when it could be found.
        line: Option<usize>,
        /// What is wrong (naming the link by number and endpoints) and what to do.
        message: String,
    },
}

impl FileError {
    /// The line (from 1) the error is about, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { line, .. } | Self::Invalid { line, .. } => *line,
        }
    }
}

/// `, line 3 column 7`, `, line 3` or nothing.
fn place(line: &Option<usize>, column: &Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l} column {c}"),
        (Some(l), None) => format!(", line {l}"),
        (None, _) => String::new(),
    }
}

/// Reads a topology file, detects its format (see [`detect`]) and parses it.
pub fn load(path: &Path) -> Result<LabSpec, FileError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: origin.clone(),
        source,
    })?;
    parse(&text, &origin, detect(path, &text))
}

/// Parses and validates topology text in `format`; `origin` (the file's path) names it in
/// errors and, for k8s-topo files, which carry no lab name, gives the lab its name.
pub fn parse(text: &str, origin: &str, format: Format) -> Result<LabSpec, FileError> {
    let doc = check::Doc {
        origin,
        text,
        format,
    };
    match format {
        Format::Native => native::parse(&doc),
        Format::Containerlab => clab::parse(&doc),
        Format::K8sTopo => k8s_topo::parse(&doc, origin),
        Format::KneText => kne::parse_text(&doc),
        Format::KneYaml => kne::parse_yaml(&doc),
    }
}

/// Tells the format of a topology file from its name and content:
/// `*.clab.yml`/`*.clab.yaml` or a top-level `topology:` key is containerlab's; `*.pb.txt`,
/// `*.pbtxt`, `*.textproto`, or text that is not YAML but has top-level `nodes {` or `links {`,
/// is KNE's textproto; a top-level `lab:` key is ovswire's; a top-level `nodes:` list, or links
/// with `a_node`, is KNE's YAML; top-level `links:` whose endpoints read `host:intf[:ip]` (or one
/// of k8s-topo's own keys such as `etcd_port`) is k8s-topo's. Anything else is taken as
/// ovswire's, whose parser then says what is missing.
pub fn detect(path: &Path, text: &str) -> Format {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".clab.yml") || name.ends_with(".clab.yaml") {
        return Format::Containerlab;
    }
    if kne::TEXT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Format::KneText;
    }
    let top = match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Mapping(top)) => top,
        Err(_) if kne::looks_like_text(text) => return Format::KneText,
        _ => return Format::Native,
    };
    if top.contains_key("topology") {
        return Format::Containerlab;
    }
    if top.contains_key("lab") {
        return Format::Native;
    }
    if kne::looks_like_yaml(&top) {
        return Format::KneYaml;
    }
    if k8s_topo::OWN_KEYS.iter().any(|k| top.contains_key(*k)) {
        return Format::K8sTopo;
    }
    match top.get("links") {
        Some(Value::Sequence(links))
            if !links.is_empty() && links.iter().all(k8s_topo::looks_like_link) =>
        {
            Format::K8sTopo
        }
        _ => Format::Native,
    }
}

/// The agent's topology file (`ovswire-agent --topology`, `docs/topology.md`) for `spec`: the
/// lab, its default MTU when set, every node under `pods` (LAN segments under `segments`), and
/// the links with their MTU and state. Addresses and `exec` commands have no place there: they
/// are the CLI's business.
pub fn agent_topology(spec: &LabSpec) -> String {
    #[derive(Serialize)]
    struct AgentFile<'a> {
        lab: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        pods: BTreeSet<&'a str>,
        #[serde(skip_serializing_if = "BTreeSet::is_empty")]
        segments: BTreeSet<&'a str>,
        links: Vec<AgentLink>,
    }
    #[derive(Serialize)]
    struct AgentLink {
        endpoints: [String; 2],
        #[serde(skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        impair: Option<String>,
    }
    // Links' nodes are listed too, in case `spec` was not built by `parse`: the agent requires
    // every endpoint's pod to be listed.
    let segments: BTreeSet<&str> = spec.segments().collect();
    let pods = spec
        .nodes
        .keys()
        .map(String::as_str)
        .chain(
            spec.links
                .iter()
                .flat_map(|l| [l.a.node.as_str(), l.b.node.as_str()]),
        )
        .filter(|n| !segments.contains(n))
        .collect();
    let file = AgentFile {
        lab: &spec.name,
        mtu: spec.mtu,
        pods,
        segments,
        links: spec
            .links
            .iter()
            .map(|l| AgentLink {
                endpoints: [l.a.to_string(), l.b.to_string()],
                mtu: l.mtu,
                state: l.down.then_some("down"),
                impair: (!l.impair.is_none()).then(|| l.impair.to_string()),
            })
            .collect(),
    };
    serde_yaml_ng::to_string(&file).expect("strings, numbers and lists always serialize to YAML")
}

#[cfg(test)]
mod tests;
