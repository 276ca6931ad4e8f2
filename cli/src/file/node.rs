//! A node's settings as files write them (ovswire's `nodes:` entries, containerlab's nodes,
//! kinds, groups and defaults), merged the way containerlab merges them and checked into a
//! [`NodeSpec`]: paths resolved from the file's directory and checked to exist, addresses and
//! restart policies parsed, kinds looked up.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::kinds;
use crate::spec::{Bind, NodeSpec};

/// A scalar YAML value taken as text (`ENV: 1` and `ENV: "1"` alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Scalar(pub(super) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// A YAML mapping read in file order (nodes are numbered, and get management addresses, in the
/// order the file lists them); a key given twice is an error, as in containerlab.
#[derive(Debug)]
pub(super) struct InOrder<T>(pub(super) Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for InOrder<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrderVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for InOrderVisitor<T> {
            type Value = InOrder<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<InOrder<T>, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, T>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!(
                            "{key} is given twice; each name may appear once"
                        )));
                    }
                    entries.push((key, value));
                }
                Ok(InOrder(entries))
            }
        }
        d.deserialize_map(InOrderVisitor(std::marker::PhantomData))
    }
}

/// Declares a struct holding every node setting ovswire uses, plus `$extra` fields, and its
/// [`Settings`] view. ovswire's format refuses unknown keys while containerlab's ignores the
/// many node settings ovswire has no use for, so the two formats need two structs with one
/// list of settings.
macro_rules! node_settings {
    ($(#[$attr:meta])* $name:ident { $($extra:tt)* }) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        $(#[$attr])*
        pub(super) struct $name {
            #[serde(default)]
            pub(super) kind: Option<String>,
            #[serde(default)]
            image: Option<String>,
            #[serde(default)]
            cmd: Option<String>,
            #[serde(default)]
            entrypoint: Option<String>,
            #[serde(default)]
            env: Option<BTreeMap<String, Scalar>>,
            #[serde(default)]
            binds: Option<Vec<String>>,
            #[serde(default)]
            user: Option<Scalar>,
            #[serde(default)]
            pub(super) exec: Option<Vec<String>>,
            #[serde(default)]
            labels: Option<BTreeMap<String, Scalar>>,
            #[serde(default)]
            startup_config: Option<String>,
            #[serde(default)]
            mgmt_ipv4: Option<String>,
            #[serde(default)]
            restart_policy: Option<String>,
            $($extra)*
        }

        impl $name {
            /// The settings as written.
            pub(super) fn settings(&self) -> Settings {
                let text = |m: &Option<BTreeMap<String, Scalar>>| {
                    m.iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect::<Vec<_>>()
                };
                Settings {
                    kind: self.kind.clone(),
                    image: self.image.clone(),
                    cmd: self.cmd.clone(),
                    entrypoint: self.entrypoint.clone(),
                    env: text(&self.env),
                    binds: self.binds.clone().unwrap_or_default(),
                    user: self.user.as_ref().map(|u| u.0.clone()),
                    exec: self.exec.clone().unwrap_or_default(),
                    labels: text(&self.labels),
                    startup_config: self.startup_config.clone(),
                    startup_config_inline: None,
                    startup_config_at: None,
                    mgmt_ipv4: self.mgmt_ipv4.clone(),
                    restart_policy: self.restart_policy.clone(),
                }
            }
        }
    };
}

node_settings! {
    /// A node of ovswire's own format.
    #[serde(deny_unknown_fields, rename = "node")]
    NativeNode {}
}

node_settings! {
    /// A containerlab node, or its defaults, a kind or a group: what ovswire uses of them.
    #[serde(rename = "node")]
    ClabNode {
        #[serde(default)]
        pub(super) group: Option<String>,
    }
}

/// A node's settings as written at one level (a node, its group, its kind, the defaults), or
/// merged from all of them.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    pub(super) kind: Option<String>,
    pub(super) image: Option<String>,
    pub(super) cmd: Option<String>,
    pub(super) entrypoint: Option<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) binds: Vec<String>,
    pub(super) user: Option<String>,
    pub(super) exec: Vec<String>,
    pub(super) labels: Vec<(String, String)>,
    pub(super) startup_config: Option<String>,
    pub(super) startup_config_inline: Option<Vec<u8>>,
    pub(super) startup_config_at: Option<String>,
    pub(super) mgmt_ipv4: Option<String>,
    pub(super) restart_policy: Option<String>,
}

/// containerlab's restart policies, which are the container engine's.
const RESTART_POLICIES: [&str; 4] = ["no", "on-failure", "always", "unless-stopped"];

impl Settings {
    /// Merges levels from the least to the most specific (defaults, kind, group, node) as
    /// containerlab does: a scalar comes from the most specific level that sets it; `env` and
    /// `labels` are merged key by key; `binds` by their path in the container; `exec` commands
    /// are all run, the least specific first.
    pub(super) fn merge(levels: &[Self]) -> Self {
        let mut out = Self::default();
        let mut env = BTreeMap::new();
        let mut labels = BTreeMap::new();
        let mut binds: Vec<String> = Vec::new();
        for level in levels {
            for (field, value) in [
                (&mut out.kind, &level.kind),
                (&mut out.image, &level.image),
                (&mut out.cmd, &level.cmd),
                (&mut out.entrypoint, &level.entrypoint),
                (&mut out.user, &level.user),
                (&mut out.startup_config, &level.startup_config),
                (&mut out.mgmt_ipv4, &level.mgmt_ipv4),
                (&mut out.restart_policy, &level.restart_policy),
            ] {
                if value.as_deref().is_some_and(|v| !v.is_empty()) {
                    field.clone_from(value);
                }
            }
            if level.startup_config_inline.is_some() {
                out.startup_config_inline
                    .clone_from(&level.startup_config_inline);
            }
            if level.startup_config_at.is_some() {
                out.startup_config_at.clone_from(&level.startup_config_at);
            }
            env.extend(level.env.iter().cloned());
            labels.extend(level.labels.iter().cloned());
            for bind in &level.binds {
                let target = bind_target(bind);
                binds.retain(|b| bind_target(b) != target);
                binds.push(bind.clone());
            }
            out.exec.extend(level.exec.iter().cloned());
        }
        out.env = env.into_iter().collect();
        out.labels = labels.into_iter().collect();
        out.binds = binds;
        out
    }

    /// A setting only a container takes, when one is set.
    fn container_only(&self) -> Option<&'static str> {
        [
            ("cmd", self.cmd.is_some()),
            ("entrypoint", self.entrypoint.is_some()),
            ("env", !self.env.is_empty()),
            ("binds", !self.binds.is_empty()),
            ("user", self.user.is_some()),
            (
                "startup-config",
                self.startup_config.is_some() || self.startup_config_inline.is_some(),
            ),
            ("mgmt-ipv4", self.mgmt_ipv4.is_some()),
            ("restart-policy", self.restart_policy.is_some()),
        ]
        .into_iter()
        .find_map(|(setting, set)| set.then_some(setting))
    }

    /// The checked node: paths resolved against `base` (the topology file's directory) and
    /// found, the address and restart policy parsed, the kind known. `own` is what the node
    /// itself sets (without what it inherits): a node without an image is a bare network
    /// namespace, and may not set what only containers take, while inherited container
    /// settings (the defaults' `env`, say) just do not apply to it. An error says what is wrong
    /// with which setting and what to do.
    pub(super) fn resolve(self, name: &str, base: &Path, own: &Self) -> Result<NodeSpec, String> {
        let kind = self.kind.filter(|k| !k.is_empty());
        if let Some(kind) = &kind {
            kinds::check_known(kind).map_err(|e| format!("node {name}: {e}"))?;
        }
        let image = self.image.filter(|i| !i.trim().is_empty());
        if image.is_none() {
            if let Some(setting) = own.container_only() {
                return Err(format!(
                    "node {name} has {setting} but no image: only a container node takes it (a \
                     node without an image is a bare network namespace); give the node an image \
                     or remove {setting}"
                ));
            }
            return Ok(NodeSpec {
                kind,
                exec: self.exec,
                labels: self.labels.into_iter().collect(),
                ..NodeSpec::default()
            });
        }
        let startup_config = match &self.startup_config {
            None => None,
            Some(p) => {
                let path = resolve_path(base, p);
                if !path.is_file() {
                    return Err(format!(
                        "node {name}: startup-config {} does not exist or is not a file; \
                         correct the path (a relative one is taken from the topology file's \
                         directory)",
                        path.display()
                    ));
                }
                Some(path)
            }
        };
        let binds = self
            .binds
            .iter()
            .map(|b| parse_bind(b, base).map_err(|e| format!("node {name}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mgmt_ipv4 = match &self.mgmt_ipv4 {
            None => None,
            Some(a) => Some(a.trim().parse::<Ipv4Addr>().map_err(|_| {
                format!("node {name}: mgmt-ipv4 {a:?} is not an IPv4 address like 172.20.20.5")
            })?),
        };
        if let Some(p) = &self.restart_policy
            && !RESTART_POLICIES.contains(&p.as_str())
        {
            return Err(format!(
                "node {name}: restart-policy {p:?} is not one of {}",
                RESTART_POLICIES.join(", ")
            ));
        }
        Ok(NodeSpec {
            kind,
            image,
            cmd: self.cmd,
            entrypoint: self.entrypoint,
            env: self.env.into_iter().collect(),
            binds,
            user: self.user,
            exec: self.exec,
            labels: self.labels.into_iter().collect(),
            startup_config,
            startup_config_inline: self.startup_config_inline,
            startup_config_at: self.startup_config_at,
            mgmt_ipv4,
            restart_policy: self.restart_policy,
            position: 0,
            line: None,
        })
    }
}

/// The path a bind mounts at in the container: `/etc/frr/daemons` of `daemons:/etc/frr/daemons:ro`.
fn bind_target(bind: &str) -> &str {
    bind.split(':').nth(1).unwrap_or(bind)
}

/// `path` taken from `base` when relative, with `~/` meaning the home directory (as
/// containerlab reads paths).
fn resolve_path(base: &Path, path: &str) -> PathBuf {
    let path = path.trim();
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    base.join(path)
}

/// A bind written `HOST:CONTAINER[:OPTIONS]`, its host path resolved and found.
fn parse_bind(bind: &str, base: &Path) -> Result<Bind, String> {
    let mut parts = bind.splitn(3, ':');
    let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "bind {bind:?} must be written HOST-PATH:CONTAINER-PATH[:OPTIONS], like \
             configs/daemons:/etc/frr/daemons:ro"
        ));
    };
    if host.is_empty() || !container.starts_with('/') {
        return Err(format!(
            "bind {bind:?} needs a host path and an absolute container path, like \
             configs/daemons:/etc/frr/daemons"
        ));
    }
    let host = resolve_path(base, host);
    if !host.exists() {
        return Err(format!(
            "bind {bind:?}: {} does not exist; create it or correct the path (a relative one is \
             taken from the topology file's directory)",
            host.display()
        ));
    }
    Ok(Bind {
        host,
        container: container.to_owned(),
        options: parts.next().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(image: Option<&str>, binds: &[&str], exec: &[&str], env: &[(&str, &str)]) -> Settings {
        Settings {
            image: image.map(str::to_owned),
            binds: binds.iter().map(|b| (*b).to_owned()).collect(),
            exec: exec.iter().map(|e| (*e).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Settings::default()
        }
    }

    #[test]
    fn levels_merge_as_containerlab_merges_them() {
        let defaults = level(
            Some("a:1"),
            &["x:/etc/x", "y:/etc/y"],
            &["d"],
            &[("A", "1")],
        );
        let kind = level(Some("b:1"), &[], &["k"], &[("A", "2"), ("B", "1")]);
        let node = level(None, &["z:/etc/x:ro"], &["n"], &[("C", "1")]);
        let merged = Settings::merge(&[defaults, kind, node]);
        assert_eq!(
            merged.image.as_deref(),
            Some("b:1"),
            "the most specific image"
        );
        assert_eq!(
            merged.binds,
            ["y:/etc/y", "z:/etc/x:ro"],
            "one bind per target"
        );
        assert_eq!(merged.exec, ["d", "k", "n"], "every command, general first");
        assert_eq!(
            merged.env,
            [
                ("A".into(), "2".into()),
                ("B".into(), "1".into()),
                ("C".into(), "1".into())
            ]
        );
    }

    #[test]
    fn binds_resolve_from_the_files_directory_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("daemons"), "").unwrap();
        let b = parse_bind("daemons:/etc/frr/daemons:ro", dir.path()).unwrap();
        assert_eq!(b.host, dir.path().join("daemons"));
        assert_eq!(b.options.as_deref(), Some("ro"));
        let e = parse_bind("missing:/etc/x", dir.path()).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(parse_bind("daemons", dir.path()).is_err());
        assert!(parse_bind("daemons:etc/x", dir.path()).is_err());
    }
}
