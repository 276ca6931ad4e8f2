//! Names as users write them, and the names systems need.
//!
//! A topology file may name its lab and nodes as containerlab allows (`ciena_saos`, `PC1`) and
//! its interfaces as the router calls them (`ethernet-1/1`, `1/1/c1/1`). Kubernetes wants
//! lower-case DNS names for namespaces and pods, and Linux wants interface names of at most 15
//! characters without `/`. Everything a user sees (arguments, tables, graphs, events) keeps
//! the written names; the lab, its agent, the kernel and Kubernetes get these mappings:
//!
//! | written | system | rule |
//! |---|---|---|
//! | `ciena_saos` (lab or node) | `ciena-saos` | lower-case; any character but `a-z`, `0-9`, `-`, `.` becomes `-`; `-` and `.` trimmed from both ends |
//! | `PC1` and `pc1` in one lab | `pc1-1209` and `pc1` | a node whose mapped name another node has gets a hash of its written name |
//! | `ethernet-1/1` | `e1-1` | SR Linux ports, as containerlab's alias |
//! | `1/1/c1/1` | `e1-1-c1-1` | SR OS ports, as containerlab's alias |
//! | `Ethernet1/1` | `Ethernet1-1` | any other `/`, `:`, `%` or space becomes `-` |
//! | `GigabitEthernet0/0/0/0` | `GigabitEth-9e61` | over 15 characters: the first 10, `-` and a hash of the written name |
//!
//! A name already valid for its system is kept as it is. Two interfaces of a node that map to
//! one name are refused, naming both.

use std::collections::BTreeMap;

use ovswire_core::model::{MAX_IFNAME, check_ifname, check_object_name};
use serde::{Deserialize, Serialize};

/// Longest Kubernetes object name derived here (a DNS label).
const MAX_OBJECT: usize = 63;

/// FNV-1a of `text`, as four hex digits.
fn hash4(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:04x}", (h ^ (h >> 16)) & 0xffff)
}

/// The Kubernetes form of a lab or node name, without collision handling; `Err` when nothing
/// of it is left.
pub fn object(what: &'static str, written: &str) -> Result<String, String> {
    if check_object_name(what, written).is_ok() && written.len() <= MAX_OBJECT {
        return Ok(written.to_owned());
    }
    let mapped: String = written
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mapped = mapped.trim_matches(['-', '.']);
    if !mapped.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{what} {written:?} has no letter or digit a Kubernetes name can keep; rename it"
        ));
    }
    if mapped.len() > MAX_OBJECT {
        let head = mapped[..MAX_OBJECT - 5].trim_end_matches(['-', '.']);
        return Ok(format!("{head}-{}", hash4(written)));
    }
    Ok(mapped.to_owned())
}

/// The system name of every node of a lab, by written name: [`object`], and where two nodes
/// arrive at one name, a hash of the written name on each that had to change.
pub fn nodes<'a>(
    written: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for w in written {
        out.insert(w.to_owned(), object("node name", w)?);
    }
    // Names kept as written win; the others give way.
    let mut taken: BTreeMap<String, String> = out
        .iter()
        .filter(|(w, s)| w == s)
        .map(|(w, s)| (s.clone(), w.clone()))
        .collect();
    for (w, s) in out.iter_mut().filter(|(w, s)| w != s) {
        if let Some(other) = taken.get(s.as_str()) {
            let head = &s[..s.len().min(MAX_OBJECT - 5)];
            let renamed = format!("{}-{}", head.trim_end_matches(['-', '.']), hash4(w));
            if let Some(third) = taken.get(&renamed) {
                return Err(format!(
                    "nodes {other}, {w} and {third} map to the same Kubernetes name; rename one"
                ));
            }
            *s = renamed;
        }
        taken.insert(s.clone(), w.clone());
    }
    Ok(out)
}

/// The Linux name of an interface written `written`; `Err` says why none can be made.
pub fn ifname(written: &str) -> Result<String, String> {
    if check_ifname(written).is_ok() {
        return Ok(written.to_owned());
    }
    let numeric = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    // SR Linux: ethernet-1/1 -> e1-1, ethernet-1/3/1 -> e1-3-1.
    if let Some(rest) = written.strip_prefix("ethernet-") {
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() >= 2 && parts.iter().all(|p| numeric(p)) {
            return fit(written, format!("e{}", parts.join("-")));
        }
    }
    // SR OS: 1/1/1 -> e1-1-1, 1/1/c1/1 -> e1-1-c1-1.
    let parts: Vec<&str> = written.split('/').collect();
    let sros_part = |p: &&str| numeric(p) || p.strip_prefix(['c', 'm']).is_some_and(numeric);
    if parts.len() >= 2 && numeric(parts[0]) && parts.iter().all(sros_part) {
        return fit(written, format!("e{}", parts.join("-")));
    }
    let mapped: String = written
        .chars()
        .map(|c| {
            if c == '/' || c == ':' || c == '%' || c.is_whitespace() || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect();
    if mapped.trim_matches(['-', '.']).is_empty() {
        return Err(format!(
            "interface name {written:?} has nothing Linux can keep; rename it"
        ));
    }
    fit(written, mapped)
}

/// `mapped`, or when it is longer than Linux allows, its first 10 characters, `-` and a hash
/// of `written`.
fn fit(written: &str, mapped: String) -> Result<String, String> {
    if mapped.len() <= MAX_IFNAME {
        return Ok(mapped);
    }
    let mut head = String::new();
    for c in mapped.chars() {
        if head.len() + c.len_utf8() > MAX_IFNAME - 5 {
            break;
        }
        head.push(c);
    }
    Ok(format!("{head}-{}", hash4(written)))
}

/// The written names of a lab whose system names differ, for showing them back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// The lab's name as written, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// System node name → written, where they differ.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, String>,
    /// `node:ifname` in system names → the interface as written, where it differs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ifnames: BTreeMap<String, String>,
}

impl Names {
    /// Whether every name is as written.
    pub fn is_identity(&self) -> bool {
        self.lab.is_none() && self.nodes.is_empty() && self.ifnames.is_empty()
    }

    /// Node `node` (a system name) as written.
    pub fn node<'a>(&'a self, node: &'a str) -> &'a str {
        self.nodes.get(node).map_or(node, String::as_str)
    }

    /// Interface `ifname` of `node` (system names) as written.
    pub fn ifname<'a>(&'a self, node: &str, ifname: &'a str) -> &'a str {
        self.ifnames
            .get(&format!("{node}:{ifname}"))
            .map_or(ifname, String::as_str)
    }

    /// `node:ifname` (system names) as written.
    pub fn endpoint(&self, node: &str, ifname: &str) -> String {
        format!("{}:{}", self.node(node), self.ifname(node, ifname))
    }

    /// The lab `lab` (its system name) as written.
    pub fn lab<'a>(&'a self, lab: &'a str) -> &'a str {
        self.lab.as_deref().unwrap_or(lab)
    }

    /// Node `node` as a user typed it (written, or already the system name), as systems know it.
    pub fn node_system(&self, node: &str) -> String {
        self.nodes
            .iter()
            .find(|(_, w)| w.as_str() == node)
            .map_or(node, |(s, _)| s.as_str())
            .to_owned()
    }

    /// An endpoint a user typed, `node:ifname` in written names (or already in system names),
    /// in system names.
    pub fn to_system(&self, endpoint: &str) -> String {
        let Some((node, ifname)) = endpoint.split_once(':') else {
            return endpoint.to_owned();
        };
        let node_sys = self.node_system(node);
        let prefix = format!("{node_sys}:");
        let if_sys = self
            .ifnames
            .iter()
            .find(|(k, w)| k.starts_with(&prefix) && w.as_str() == ifname)
            .map_or(ifname, |(k, _)| &k[prefix.len()..]);
        format!("{node_sys}:{if_sys}")
    }

    /// Rewrites a link the agent reports into written names.
    pub fn show(&self, link: &mut ovswire_proto::v1::Link) {
        if self.is_identity() {
            return;
        }
        if let Some(r) = &mut link.r#ref {
            if let Some(lab) = &self.lab
                && !r.lab.is_empty()
            {
                r.lab.clone_from(lab);
            }
            for e in [&mut r.a, &mut r.b].into_iter().flatten() {
                // The reason names endpoints too (`waiting for the port of r1:e1-1`).
                let (system, written) = (
                    format!("{}:{}", e.pod, e.ifname),
                    self.endpoint(&e.pod, &e.ifname),
                );
                if system != written {
                    link.reason = link.reason.replace(&system, &written);
                }
                let ifname = self.ifname(&e.pod, &e.ifname).to_owned();
                e.ifname = ifname;
                e.pod = self.node(&e.pod).to_owned();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_map_as_documented() {
        assert_eq!(object("lab name", "ciena_saos").unwrap(), "ciena-saos");
        assert_eq!(object("node name", "PC1").unwrap(), "pc1");
        assert_eq!(object("node name", "r1").unwrap(), "r1");
        assert_eq!(object("node name", "_Core.1_").unwrap(), "core.1");
        assert!(
            object("node name", "__")
                .unwrap_err()
                .contains("no letter or digit")
        );
        let long = object("node name", &"A".repeat(80)).unwrap();
        assert_eq!(long.len(), 63);
        assert!(check_object_name("x", &long).is_ok(), "{long}");
    }

    #[test]
    fn nodes_that_collide_get_a_hash_and_valid_names_keep_theirs() {
        let m = nodes(["pc1", "PC1", "Pc_2", "pc-2"]).unwrap();
        assert_eq!(m["pc1"], "pc1");
        assert_eq!(m["pc-2"], "pc-2");
        assert_eq!(m["PC1"], "pc1-1209");
        assert!(m["Pc_2"].starts_with("pc-2-"), "{m:?}");
        let m = nodes(["PC1", "pC1"]).unwrap();
        assert_ne!(m["PC1"], m["pC1"]);
        for s in m.values() {
            assert!(check_object_name("x", s).is_ok());
        }
    }

    #[test]
    fn interface_names_map_as_containerlab_aliases_them() {
        for (written, system) in [
            ("eth1", "eth1"),
            ("ethernet-1/1", "e1-1"),
            ("ethernet-1/3/2", "e1-3-2"),
            ("1/1/c1/1", "e1-1-c1-1"),
            ("1/1/1", "e1-1-1"),
            ("Ethernet1/1", "Ethernet1-1"),
            ("et-0/0/0", "et-0-0-0"),
            ("eth%d", "eth-d"),
        ] {
            assert_eq!(ifname(written).unwrap(), system, "{written}");
        }
        let long = ifname("GigabitEthernet0/0/0/0").unwrap();
        assert!(
            long.starts_with("GigabitEth-") && long.len() == 15,
            "{long}"
        );
        assert_ne!(long, ifname("GigabitEthernet0/0/0/1").unwrap());
        assert!(check_ifname(&long).is_ok());
        assert!(ifname("//").is_err());
    }

    #[test]
    fn names_show_and_take_back_endpoints() {
        let mut n = Names::default();
        n.nodes.insert("pc1".into(), "PC1".into());
        n.ifnames.insert("pc1:e1-1".into(), "ethernet-1/1".into());
        assert_eq!(n.endpoint("pc1", "e1-1"), "PC1:ethernet-1/1");
        assert_eq!(n.endpoint("r2", "eth1"), "r2:eth1");
        assert_eq!(n.to_system("PC1:ethernet-1/1"), "pc1:e1-1");
        assert_eq!(n.to_system("pc1:e1-1"), "pc1:e1-1");
        assert_eq!(n.to_system("r2:eth1"), "r2:eth1");

        let mut link = ovswire_proto::v1::Link {
            r#ref: Some(ovswire_proto::v1::LinkRef {
                lab: "lab".into(),
                a: Some(ovswire_proto::v1::Endpoint {
                    pod: "pc1".into(),
                    ifname: "e1-1".into(),
                }),
                b: Some(ovswire_proto::v1::Endpoint {
                    pod: "r2".into(),
                    ifname: "eth1".into(),
                }),
            }),
            reason: "waiting for the port of pc1:e1-1".into(),
            ..Default::default()
        };
        n.lab = Some("Lab".into());
        n.show(&mut link);
        let r = link.r#ref.unwrap();
        assert_eq!(r.lab, "Lab");
        assert_eq!(r.a.unwrap().pod, "PC1");
        assert_eq!(link.reason, "waiting for the port of PC1:ethernet-1/1");
    }
}
