//! KNE's topology files: the `topo.Topology` message of KNE (github.com/openconfig/kne), in
//! protobuf text format (`*.pb.txt`, `*.pbtxt`, `*.textproto`) or in YAML.
//!
//! ```text
//! name: "ring"
//! nodes: { name: "r1" vendor: ARISTA config: { image: "localhost/ovswire/frr" file: "r1.cfg" } }
//! nodes: { name: "r2" interfaces: { key: "eth1" value: { name: "Ethernet1" mtu: 9000 } } }
//! links: { a_node: "r1" a_int: "eth1" z_node: "r2" z_int: "eth1" }
//! ```
//!
//! The text is parsed by prost-reflect against ovswire's copy of KNE's schema
//! (`proto/kne/topo.proto`), so a file KNE reads parses here the same way, and a field KNE does
//! not know is refused. What ovswire makes of it:
//!
//! - `name` is the lab (named after the file when empty); `nodes` are its nodes and `links`
//!   its wires, `a_node:a_int` to `z_node:z_int`.
//! - `vendor` (or the older `type`) and `model` give the node's kind (`ARISTA` is containerlab's
//!   `ceos`, `NOKIA` is `srl`, `HOST` is `linux`, see [`kind_of`]).
//! - `config.image` makes the node a container; `command`, `args`, `env` and `file` or `data`
//!   (its startup configuration, from a file or inline, mounted at `config_path`/`config_file`
//!   when they are set) apply to it.
//!   A node without an image (KNE would take its vendor's default image) is a bare network
//!   namespace, and its container settings are not used.
//! - `labels` are the container's labels; an interface's `mtu` is its link's MTU.
//! - Kubernetes-only settings (`services`, `constraints`, `host_constraints`, `cert`, `sleep`,
//!   `init_image`, `entry_command`) and the interfaces' vendor names are read and not used.

use std::collections::BTreeMap;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use super::FileError;
use super::check::{self, Declared, Doc, Draft, DraftLink, DraftMgmt, DraftNode};
use super::k8s_topo::lab_name;
use super::locate::Step;
use super::node::Settings;
use crate::spec::{EndpointSpec, LabSpec};

/// The Rust types of KNE's schema, generated at build time.
#[allow(clippy::all, missing_docs, unreachable_pub, dead_code)]
mod schema {
    include!(concat!(env!("OUT_DIR"), "/topo.rs"));
}

/// The encoded descriptors of KNE's schema, compiled at build time.
const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kne_topo.bin"));

/// File names that are KNE textproto.
pub(super) const TEXT_SUFFIXES: [&str; 5] =
    [".pb.txt", ".pbtxt", ".textproto", ".txtpb", ".prototxt"];

/// `topo.Topology`'s descriptor.
fn topology() -> MessageDescriptor {
    DescriptorPool::decode(DESCRIPTORS)
        .expect("the descriptors compiled at build time decode")
        .get_message_by_name("topo.Topology")
        .expect("the schema defines topo.Topology")
}

/// Parses a KNE textproto file.
pub(super) fn parse_text(doc: &Doc<'_>) -> Result<LabSpec, FileError> {
    let message =
        DynamicMessage::parse_text_format(topology(), doc.text).map_err(|e| text_error(doc, &e))?;
    build(doc, typed(&message))
}

/// Parses a KNE YAML file (the same fields, snake_case or camelCase, enums by name).
pub(super) fn parse_yaml(doc: &Doc<'_>) -> Result<LabSpec, FileError> {
    let de = serde_yaml_ng::Deserializer::from_str(doc.text);
    let message = DynamicMessage::deserialize(topology(), de).map_err(|e| doc.syntax(&e))?;
    build(doc, typed(&message))
}

fn typed(message: &DynamicMessage) -> schema::Topology {
    message
        .transcode_to()
        .expect("a message parsed against the schema converts to its generated type")
}

/// A text-format error with its line and column, and what to do.
fn text_error(doc: &Doc<'_>, e: &prost_reflect::text_format::ParseError) -> FileError {
    use miette::Diagnostic;
    let offset = e
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset());
    let (line, column) = match offset {
        Some(offset) => {
            let before = &doc.text[..offset.min(doc.text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    let message = e.to_string();
    let hint = if message.contains("not found") && message.contains("field") {
        "remove it or correct its spelling (KNE's topo.proto names the fields)"
    } else if message.contains("enum") {
        "use one of the names KNE's topo.proto gives"
    } else {
        "fix the text there (braces, colons, quotes)"
    };
    FileError::Syntax {
        path: doc.origin.to_owned(),
        line,
        column,
        message: format!("{message}; {hint}"),
    }
}

/// containerlab's kind for a KNE node: from its vendor and model, or from the older `type`.
/// Vendors containerlab has no kind for, and plain hosts, are `linux`.
pub(super) fn kind_of(vendor: schema::Vendor, model: &str, ty: schema::node::Type) -> &'static str {
    use schema::Vendor as V;
    use schema::node::Type as T;
    match vendor {
        V::Arista => "ceos",
        V::Nokia => "srl",
        V::Juniper => "juniper_cjunosevolved",
        V::Cisco if model.is_empty() || model.eq_ignore_ascii_case("xrd") => "xrd",
        V::Cisco => "cisco_c8000",
        V::Keysight => "keysight_ixia-c-one",
        V::Sonic => "sonic-vs",
        V::Unknown => match ty {
            T::AristaCeos => "ceos",
            T::NokiaSrl => "srl",
            T::JuniperCevo => "juniper_cjunosevolved",
            T::JuniperVmx => "juniper_vmx",
            T::CiscoXrd | T::CiscoCxr => "xrd",
            T::CiscoE8000 => "cisco_c8000",
            T::CiscoCsr => "cisco_csr1000v",
            T::IxiaTg => "keysight_ixia-c-one",
            _ => "linux",
        },
        _ => "linux",
    }
}

/// The node settings of a KNE node; `Err` says what cannot be used.
fn settings(node: &schema::Node, kind: &str) -> Result<Settings, String> {
    let mut s = Settings {
        kind: Some(kind.to_owned()),
        labels: node.labels.clone().into_iter().collect(),
        ..Settings::default()
    };
    let Some(config) = &node.config else {
        return Ok(s);
    };
    if config.image.trim().is_empty() {
        // KNE would run its vendor's default image; here it is a bare namespace.
        return Ok(s);
    }
    s.image = Some(config.image.clone());
    let join = |words: &[String]| {
        shlex::try_join(words.iter().map(String::as_str))
            .map_err(|_| "a command word has a NUL character; remove it".to_owned())
    };
    if !config.command.is_empty() {
        s.entrypoint = Some(join(&config.command)?);
    }
    if !config.args.is_empty() {
        s.cmd = Some(join(&config.args)?);
    }
    s.env = config.env.clone().into_iter().collect();
    let file_name = match &config.config_data {
        None => return Ok(s),
        Some(schema::config::ConfigData::Data(data)) => {
            s.startup_config_inline = Some(data.clone());
            "startup-config"
        }
        Some(schema::config::ConfigData::File(file)) => {
            s.startup_config = Some(file.clone());
            std::path::Path::new(file)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(file)
        }
    };
    if !config.config_path.is_empty() || !config.config_file.is_empty() {
        let dir = if config.config_path.is_empty() {
            "/"
        } else {
            config.config_path.as_str()
        };
        let name = if config.config_file.is_empty() {
            file_name
        } else {
            config.config_file.as_str()
        };
        s.startup_config_at = Some(std::path::Path::new(dir).join(name).display().to_string());
    }
    Ok(s)
}

fn build(doc: &Doc<'_>, topo: schema::Topology) -> Result<LabSpec, FileError> {
    let (name, name_at) = if topo.name.is_empty() {
        (lab_name(doc.origin), Vec::new())
    } else {
        (topo.name.clone(), vec![Step::key("name")])
    };

    let mut nodes = Vec::with_capacity(topo.nodes.len());
    // Each interface's MTU, by node and interface.
    let mut mtus: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for (i, node) in topo.nodes.iter().enumerate() {
        let at = vec![Step::key("nodes"), Step::Index(i)];
        if node.name.is_empty() {
            return Err(doc.invalid(&at, format!("node {} has no name; give it one", i + 1)));
        }
        let kind = kind_of(node.vendor(), &node.model, node.r#type());
        let settings = settings(node, kind)
            .map_err(|e| doc.invalid(&at, format!("node {}: {e}", node.name)))?;
        for (ifname, iface) in &node.interfaces {
            if iface.mtu != 0 {
                mtus.insert((&node.name, ifname), iface.mtu);
            }
        }
        nodes.push(DraftNode {
            name: node.name.clone(),
            own: settings.clone(),
            settings,
            at,
        });
    }

    let mut links = Vec::with_capacity(topo.links.len());
    for (i, link) in topo.links.iter().enumerate() {
        let at = vec![Step::key("links"), Step::Index(i)];
        for (field, value) in [
            ("a_node", &link.a_node),
            ("a_int", &link.a_int),
            ("z_node", &link.z_node),
            ("z_int", &link.z_int),
        ] {
            if value.is_empty() {
                return Err(doc.invalid(
                    &at,
                    format!(
                        "link {}: {field} is not set; a link names a_node, a_int, z_node and z_int",
                        i + 1
                    ),
                ));
            }
        }
        let ends = [(&link.a_node, &link.a_int), (&link.z_node, &link.z_int)];
        let mut mtu = None;
        for (node, ifname) in ends {
            if let Some(&m) = mtus.get(&(node.as_str(), ifname.as_str())) {
                match mtu {
                    Some((other, at_end)) if other != m => {
                        return Err(doc.invalid(
                            &at,
                            format!(
                                "link {}: {at_end} has mtu {other} and {node}:{ifname} has mtu {m}; a \
                                 link has one MTU, set the same on both interfaces",
                                i + 1
                            ),
                        ));
                    }
                    _ => mtu = Some((m, format!("{node}:{ifname}"))),
                }
            }
        }
        let endpoints = ends
            .iter()
            .map(|(node, ifname)| EndpointSpec {
                node: (*node).clone(),
                ifname: (*ifname).clone(),
                addrs: Vec::new(),
            })
            .collect();
        links.push(DraftLink::up(endpoints, mtu.map(|(m, _)| m), at));
    }

    check::finish(
        doc,
        Draft {
            name,
            name_at,
            mtu: None,
            mtu_at: Vec::new(),
            mgmt: DraftMgmt::default(),
            declared: Some(Declared {
                under: "nodes",
                nodes,
            }),
            links,
        },
    )
}

/// The 1-based line of the top-level field at `path` of a textproto file: `[name]`, or the
/// `n`th `nodes`/`links` entry for `[nodes, n, ...]` (what lies deeper is not looked into).
pub(super) fn text_line_of(text: &str, path: &[Step]) -> Option<usize> {
    let (Some(Step::Key(key)), index) = (path.first(), path.get(1)) else {
        return None;
    };
    let wanted = match index {
        Some(Step::Index(n)) => *n,
        _ => 0,
    };
    let mut found = 0;
    let (mut line, mut depth) = (1, 0usize);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => while chars.next_if(|(_, c)| *c != '\n').is_some() {},
            '"' | '\'' => {
                while let Some((_, s)) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '\n' => {
                            line += 1;
                            break;
                        }
                        s if s == c => break,
                        _ => {}
                    }
                }
            }
            '{' | '<' | '[' => depth += 1,
            '}' | '>' | ']' => depth = depth.saturating_sub(1),
            c if depth == 0 && (c.is_ascii_alphabetic() || c == '_') => {
                let mut end = i + c.len_utf8();
                while let Some((j, d)) =
                    chars.next_if(|(_, d)| d.is_ascii_alphanumeric() || *d == '_')
                {
                    end = j + d.len_utf8();
                }
                if &text[i..end] == key.as_str() {
                    if found == wanted {
                        return Some(line);
                    }
                    found += 1;
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether YAML `top` reads like a KNE topology: `nodes` a list, or links with `a_node`.
pub(super) fn looks_like_yaml(top: &serde_yaml_ng::Mapping) -> bool {
    use serde_yaml_ng::Value;
    let has = |v: &Value, key: &str| v.get(key).is_some() || v.get(camel(key)).is_some();
    matches!(top.get("nodes"), Some(Value::Sequence(_)))
        || matches!(top.get("links"), Some(Value::Sequence(links))
            if links.first().is_some_and(|l| has(l, "a_node")))
}

/// `a_node` → `aNode`.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether text that is not YAML reads like a KNE textproto: a top-level `nodes` or `links`
/// message.
pub(super) fn looks_like_text(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        ["nodes", "links"].iter().any(|k| {
            l.strip_prefix(k)
                .map(|rest| rest.trim_start().trim_start_matches(':').trim_start())
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with('<'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_their_line() {
        let text = "name: \"x\" # nodes {\nnodes {\n  name: \"links\"\n  interfaces { key: \"eth1\" }\n}\n\
                    nodes: { name: 'a\\'b' }\nlinks { a_node: \"r1\" }\n";
        assert_eq!(text_line_of(text, &[Step::key("name")]), Some(1));
        assert_eq!(
            text_line_of(text, &[Step::key("nodes"), Step::Index(0)]),
            Some(2)
        );
        assert_eq!(
            text_line_of(text, &[Step::key("nodes"), Step::Index(1)]),
            Some(6)
        );
        assert_eq!(
            text_line_of(text, &[Step::key("links"), Step::Index(0)]),
            Some(7)
        );
        assert_eq!(
            text_line_of(text, &[Step::key("links"), Step::Index(1)]),
            None
        );
    }

    #[test]
    fn kinds_follow_the_vendor_then_the_type() {
        use schema::Vendor as V;
        use schema::node::Type as T;
        assert_eq!(kind_of(V::Arista, "", T::Unknown), "ceos");
        assert_eq!(kind_of(V::Cisco, "", T::Unknown), "xrd");
        assert_eq!(kind_of(V::Cisco, "8201", T::Unknown), "cisco_c8000");
        assert_eq!(kind_of(V::Unknown, "", T::NokiaSrl), "srl");
        assert_eq!(kind_of(V::Host, "", T::AristaCeos), "linux");
        assert_eq!(kind_of(V::Unknown, "", T::Unknown), "linux");
        for kind in [
            "ceos",
            "srl",
            "juniper_cjunosevolved",
            "juniper_vmx",
            "xrd",
            "cisco_c8000",
            "cisco_csr1000v",
            "keysight_ixia-c-one",
            "sonic-vs",
        ] {
            assert!(crate::kinds::check_known(kind).is_ok(), "{kind}");
        }
    }

    #[test]
    fn text_and_yaml_are_told_apart_from_other_formats() {
        assert!(looks_like_text("name: \"x\"\nnodes: {\n name: \"r1\"\n}\n"));
        assert!(looks_like_text("links <\n>\n"));
        assert!(!looks_like_text("nodes:\n  - name: r1\n"));
        let yaml = |t: &str| serde_yaml_ng::from_str::<serde_yaml_ng::Mapping>(t).unwrap();
        assert!(looks_like_yaml(&yaml("nodes: [{name: r1}]")));
        assert!(looks_like_yaml(&yaml("links: [{aNode: r1}]")));
        assert!(!looks_like_yaml(&yaml("nodes: {r1: {}}")));
        assert!(!looks_like_yaml(&yaml("links: [{endpoints: []}]")));
    }
}
