//! What a CNI request says: the spec version, the network configuration from stdin and the
//! `CNI_*` variables, each validated with an error that names the culprit.

use std::collections::BTreeSet;
use std::path::Path;

use ovswire_cni::spec::{CniError, Code, Command, K8S_POD_NAME, K8S_POD_NAMESPACE, Version};
use serde_json::{Map, Value};

use super::error::Result;
use ovswire_core::model::{MAX_MTU, MIN_MTU, check_ifname, check_mtu, check_object_name};

fn invalid(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidConfig, msg, details)
}

/// The network configuration (stdin), as far as ovswire reads it. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub version: Version,
    /// `name`.
    pub name: String,
    /// `mtu`: the MTU of an interface that no link of the topology names. A link always has an
    /// MTU of its own (the topology's, 9500 when it sets none), which wins.
    pub mtu: Option<u32>,
    /// `prevResult`, the result of the plugins before us (ADD) or of the last ADD (CHECK, DEL).
    pub prev_result: Option<Map<String, Value>>,
    /// `args.cni`: per-attachment arguments (Multus puts the annotation's `cni-args` here).
    pub cni_args: Map<String, Value>,
    raw: Map<String, Value>,
}

impl NetConf {
    /// Decodes and validates the configuration for `command`.
    pub fn parse(bytes: &[u8], command: Command) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(
                Code::Decode,
                format!("the network configuration on stdin is not valid JSON: {e}"),
                "fix the JSON of the network configuration (the NetworkAttachmentDefinition's \
                 spec.config, or the file in the CNI configuration directory)",
            )
        })?;
        let Value::Object(raw) = value else {
            return Err(CniError::new(
                Code::Decode,
                format!("the network configuration must be a JSON object, not {value}"),
                "write it as {\"cniVersion\": \"1.1.0\", \"name\": ..., \"type\": \"ovswire-cni\"}",
            ));
        };
        let version = match raw.get("cniVersion") {
            None => {
                return Err(invalid(
                    "the network configuration has no cniVersion",
                    format!("add \"cniVersion\" with one of {}", Version::choices()),
                ));
            }
            Some(Value::String(v)) => Version::parse(v).ok_or_else(|| {
                CniError::new(
                    Code::IncompatibleVersion,
                    format!("incompatible CNI versions: the configuration asks for {v}"),
                    format!("set cniVersion to one of {}", Version::choices()),
                )
            })?,
            Some(other) => {
                return Err(invalid(
                    format!("cniVersion must be a string, not {other}"),
                    format!("set cniVersion to one of {}", Version::choices()),
                ));
            }
        };
        if version < command.since() {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "CNI {version} has no {command} command (it came with {})",
                    command.since()
                ),
                format!("set cniVersion to {} or later", command.since()),
            ));
        }
        let name = match raw.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => {
                return Err(invalid(
                    "the network configuration has no name",
                    "add \"name\": a non-empty string naming the network, such as \"ovswire\"",
                ));
            }
        };
        let mtu = match raw.get("mtu") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .filter(|m| check_mtu(*m).is_ok())
                    .ok_or_else(|| {
                        invalid(
                            format!("mtu {v} is not a valid MTU"),
                            format!("set mtu to a whole number from {MIN_MTU} to {MAX_MTU}"),
                        )
                    })?,
            ),
        };
        let prev_result = match raw.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => {
                if !matches!(p.get("interfaces"), None | Some(Value::Array(_))) {
                    return Err(invalid(
                        "prevResult.interfaces must be a list",
                        "the runtime must pass the previous result unchanged",
                    ));
                }
                Some(p.clone())
            }
            Some(other) => {
                return Err(invalid(
                    format!("prevResult must be an object, not {other}"),
                    "the runtime must pass the previous result unchanged",
                ));
            }
        };
        let cni_args = match raw.get("args") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(args)) => match args.get("cni") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(cni)) => cni.clone(),
                Some(other) => {
                    return Err(invalid(
                        format!("args.cni must be an object, not {other}"),
                        "write args as {\"cni\": {\"KEY\": \"value\"}}",
                    ));
                }
            },
            Some(other) => {
                return Err(invalid(
                    format!("args must be an object, not {other}"),
                    "write args as {\"cni\": {\"KEY\": \"value\"}}",
                ));
            }
        };
        Ok(Self {
            version,
            name,
            mtu,
            prev_result,
            cni_args,
            raw,
        })
    }

    /// Rejects what ADD cannot honour: address management and runtime-requested MACs or IPs.
    /// The spec says a requested address must be applied or the attachment must fail.
    pub fn check_supported(&self) -> Result<()> {
        let unsupported = |key: &str, value: &Value| {
            CniError::new(
                Code::UnsupportedField,
                format!("unsupported field {key}={value}"),
                "ovswire links are layer-2 wires and assign no MAC or IP addresses; remove it and \
                 configure addresses inside the routers",
            )
        };
        match self.raw.get("ipam") {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) if o.is_empty() => {}
            Some(v) => return Err(unsupported("ipam", v)),
        }
        if let Some(Value::Object(rc)) = self.raw.get("runtimeConfig") {
            for key in ["mac", "ips"] {
                match rc.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) if s.is_empty() => {}
                    Some(Value::Array(a)) if a.is_empty() => {}
                    Some(v) => return Err(unsupported(&format!("runtimeConfig.{key}"), v)),
                }
            }
        }
        Ok(())
    }

    /// GC's `cni.dev/valid-attachments` (libcni also sends it as `cni.dev/attachments`): the
    /// (container id, ifname) pairs to keep.
    pub fn valid_attachments(&self) -> Result<BTreeSet<(String, String)>> {
        let list = self
            .raw
            .get("cni.dev/valid-attachments")
            .or_else(|| self.raw.get("cni.dev/attachments"))
            .ok_or_else(|| {
                invalid(
                    "GC needs cni.dev/valid-attachments; refusing to remove every attachment",
                    "pass the list of attachments to keep (it may be empty: [])",
                )
            })?;
        let bad = |what: String| {
            invalid(
                format!("cni.dev/valid-attachments: {what}"),
                "write it as [{\"containerID\": \"...\", \"ifname\": \"eth1\"}, ...]",
            )
        };
        let Value::Array(items) = list else {
            return Err(bad(format!("must be a list, not {list}")));
        };
        items
            .iter()
            .map(|item| {
                let field = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
                match (field("containerID"), field("ifname")) {
                    (Some(c), Some(i)) => Ok((c, i)),
                    _ => Err(bad(format!("{item} needs string containerID and ifname"))),
                }
            })
            .collect()
    }
}

/// Checks `CNI_CONTAINERID` as the spec defines it.
pub(super) fn check_container_id(id: &str) -> Result<()> {
    let env = |msg: String| {
        CniError::new(
            Code::InvalidEnv,
            msg,
            "the runtime must set CNI_CONTAINERID to the container's id",
        )
    };
    let mut chars = id.chars();
    match chars.next() {
        None => Err(env("CNI_CONTAINERID is missing".into())),
        Some(c) if !c.is_ascii_alphanumeric() => Err(env(format!(
            "CNI_CONTAINERID {id:?} must start with a letter or digit"
        ))),
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) => Err(env(format!(
            "CNI_CONTAINERID {id:?} may only hold letters, digits, '_', '.' and '-'"
        ))),
        _ => Ok(()),
    }
}

/// Checks `CNI_IFNAME`.
pub(super) fn check_cni_ifname(ifname: &str) -> Result<()> {
    if ifname.is_empty() {
        return Err(CniError::new(
            Code::InvalidEnv,
            "CNI_IFNAME is missing",
            "the runtime must name the pod's interface in CNI_IFNAME",
        ));
    }
    check_ifname(ifname).map_err(|e| {
        CniError::new(
            Code::InvalidEnv,
            format!("CNI_IFNAME: {e}"),
            "pick another `interface` in the pod's k8s.v1.cni.cncf.io/networks annotation",
        )
    })
}

/// Checks `CNI_NETNS` for commands that need it.
pub(super) fn check_netns(netns: &str) -> Result<()> {
    let details = "the runtime must set CNI_NETNS to the pod's network namespace, like \
                   /var/run/netns/<name> or /proc/<pid>/ns/net";
    if netns.is_empty() {
        return Err(CniError::new(
            Code::InvalidEnv,
            "CNI_NETNS is missing",
            details,
        ));
    }
    if !Path::new(netns).is_absolute() {
        return Err(CniError::new(
            Code::InvalidEnv,
            format!("CNI_NETNS {netns:?} is not an absolute path"),
            details,
        ));
    }
    Ok(())
}

/// The pod a request is for: its namespace (the lab) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
}

const KNOWN_ARGS: [&str; 5] = [
    "IgnoreUnknown",
    K8S_POD_NAMESPACE,
    K8S_POD_NAME,
    "K8S_POD_UID",
    "K8S_POD_INFRA_CONTAINER_ID",
];

impl PodIdentity {
    /// Reads the pod from `CNI_ARGS`, which the runtime sets. The configuration's `args.cni`
    /// comes from the pod's own annotation (Multus's `cni-args`), so it never names the pod: one
    /// that names another pod or lab than `CNI_ARGS` does is refused.
    pub fn resolve(cni_args: &str, conf_args: &Map<String, Value>) -> Result<Self> {
        let env = parse_cni_args(cni_args)?;
        let get = |key: &str| -> Result<(String, Code, String)> {
            let runtime = env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            if let Some(claimed) = conf_args.get(key)
                && runtime.as_deref() != claimed.as_str()
            {
                return Err(invalid(
                    format!(
                        "args.cni.{key} is {claimed}, but the pod is {} by CNI_ARGS",
                        runtime.as_deref().unwrap_or("not named")
                    ),
                    "args.cni comes from the pod's annotation and cannot choose its lab or \
                     router; remove it from the pod's cni-args (the runtime names the pod in \
                     CNI_ARGS)",
                ));
            }
            match runtime {
                Some(v) => Ok((v, Code::InvalidEnv, format!("CNI_ARGS {key}"))),
                None => Err(CniError::new(
                    Code::InvalidEnv,
                    format!("CNI_ARGS has no {key}"),
                    format!(
                        "ovswire names each endpoint after its pod: the runtime (kubelet via \
                         Multus) sets {K8S_POD_NAMESPACE} and {K8S_POD_NAME} in CNI_ARGS; when \
                         calling the plugin by hand, set \
                         CNI_ARGS={K8S_POD_NAMESPACE}=<lab>;{K8S_POD_NAME}=<router>"
                    ),
                )),
            }
        };
        let check = |what: &'static str, key: &str| -> Result<String> {
            let (value, code, source) = get(key)?;
            check_object_name(what, &value).map_err(|e| {
                CniError::new(
                    code,
                    format!("{source}: {e}"),
                    "ovswire takes the lab from the pod's namespace and the router from the pod's \
                     name; both must be valid Kubernetes names",
                )
            })?;
            Ok(value)
        };
        Ok(Self {
            namespace: check("lab name", K8S_POD_NAMESPACE)?,
            name: check("pod name", K8S_POD_NAME)?,
        })
    }
}

/// Splits `CNI_ARGS` (`K=V;K=V`). Unknown keys are an error unless `IgnoreUnknown` is true,
/// as the CNI conventions say.
fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>> {
    let bad = |msg: String| {
        CniError::new(
            Code::InvalidEnv,
            msg,
            "write CNI_ARGS as KEY=VALUE pairs separated by ';'",
        )
    };
    let mut pairs = Vec::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("CNI_ARGS: {part:?} is not KEY=VALUE")))?;
        pairs.push((k.to_owned(), v.to_owned()));
    }
    let ignore_unknown = match pairs.iter().find(|(k, _)| k == "IgnoreUnknown") {
        None => false,
        Some((_, v)) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return Err(bad(format!(
                    "CNI_ARGS: IgnoreUnknown={v:?} is not a boolean"
                )));
            }
        },
    };
    if !ignore_unknown {
        if let Some((k, v)) = pairs
            .iter()
            .find(|(k, _)| !KNOWN_ARGS.contains(&k.as_str()))
        {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!("CNI_ARGS: unknown argument {k}={v}"),
                format!(
                    "ovswire knows {}; add IgnoreUnknown=true to pass others",
                    KNOWN_ARGS.join(", ")
                ),
            ));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests;
