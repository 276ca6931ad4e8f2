//! Every YAML document under `deploy/` and `vagrant/` is a valid object of its kind: it
//! deserializes into the Kubernetes type named by its `apiVersion` and `kind` (ovswire's and
//! meshnet's types for Topology objects), and serializing that value back keeps every field of
//! the document, so a misspelt or misplaced field fails here instead of being dropped by the API
//! server. Topology objects must also describe usable links, the generated CRDs must match the
//! code, and the agent DaemonSet's environment must name flags the agent has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ovswire_k8s::crd::{MeshnetTopology, Topology};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A YAML document, where it came from.
struct Doc {
    file: PathBuf,
    index: usize,
    value: Value,
}

impl Doc {
    fn at(&self) -> String {
        format!(
            "{} (document {})",
            self.file
                .strip_prefix(repo())
                .unwrap_or(&self.file)
                .display(),
            self.index + 1
        )
    }

    fn str(&self, field: &str) -> &str {
        self.value.get(field).and_then(Value::as_str).unwrap_or("")
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != ".vagrant" {
                yaml_files(&path, out);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

fn documents() -> Vec<Doc> {
    let mut files = Vec::new();
    yaml_files(&repo().join("deploy"), &mut files);
    yaml_files(&repo().join("vagrant"), &mut files);
    files.sort();
    assert!(files.len() >= 10, "found only {files:?}");
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} (document {}): {e}", file.display(), index + 1));
            if !value.is_null() {
                docs.push(Doc {
                    file: file.clone(),
                    index,
                    value,
                });
            }
        }
    }
    docs
}

/// The paths of `original` that `back` lost or changed.
fn lost(original: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (key, value) in o {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(bv) => lost(value, bv, &here, out),
                    None if value.is_null() => {}
                    None => out.push(format!("{here} is not a field of this kind")),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                lost(ov, bv, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(o), Value::Number(b)) if o.as_f64() == b.as_f64() => {}
        (o, b) if o == b => {}
        (o, b) => out.push(format!("{path}: {o} reads back as {b}")),
    }
}

/// Deserializes `doc` as `T` and checks that nothing was dropped.
fn typed<T: DeserializeOwned + Serialize>(doc: &Doc, problems: &mut Vec<String>) -> Option<T> {
    match serde_json::from_value::<T>(doc.value.clone()) {
        Ok(t) => {
            let back = serde_json::to_value(&t).unwrap();
            let mut missing = Vec::new();
            lost(&doc.value, &back, "", &mut missing);
            for m in missing {
                problems.push(format!("{}: {m}", doc.at()));
            }
            Some(t)
        }
        Err(e) => {
            problems.push(format!("{}: {e}", doc.at()));
            None
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    images: Vec<KustomizeImage>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KustomizeImage {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new_tag: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NetworkAttachmentDefinition {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<NadSpec>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NadSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<String>,
}

/// The OVSWIRE_* environment variables the agent reads, from its clap attributes.
fn agent_env_vars() -> BTreeSet<String> {
    fn scan(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("env = \"OVSWIRE_") {
                    let start = i + "env = \"".len();
                    let end = start + text[start..].find('"').unwrap();
                    out.insert(text[start..end].to_owned());
                }
            }
        }
    }
    let mut vars = BTreeSet::new();
    scan(&repo().join("agent/src"), &mut vars);
    vars
}

/// Checks what only makes sense across objects: links against the pods' annotations, kustomize
/// paths, the DaemonSet against the agent's flags.
#[derive(Default)]
struct Labs {
    /// namespace → endpoints the Topology objects use (pod, ifname), with where.
    endpoints: BTreeMap<String, Vec<(String, String, String)>>,
    /// namespace → interfaces the pods' Multus annotations ask for.
    attached: BTreeMap<String, BTreeSet<(String, String)>>,
    meshnet: BTreeMap<String, Vec<MeshnetTopology>>,
}

/// The interfaces a Multus annotation asks for: `net@ifname,...` or the JSON form.
fn annotation_ifnames(value: &str) -> Vec<String> {
    let value = value.trim();
    if value.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(value).unwrap_or_default();
        list.iter()
            .filter_map(|e| {
                e.get("interface")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    } else {
        value
            .split(',')
            .filter_map(|e| {
                e.split_once('@')
                    .map(|(_, ifname)| ifname.trim().to_owned())
            })
            .collect()
    }
}

#[test]
fn every_manifest_is_a_valid_object_of_its_kind() {
    let mut problems = Vec::new();
    let mut labs = Labs::default();
    let agent_env = agent_env_vars();
    assert!(
        agent_env.contains("OVSWIRE_OVSDB"),
        "no OVSWIRE_* flags found in agent/src: {agent_env:?}"
    );
    let docs = documents();
    for doc in &docs {
        let (api, kind) = (doc.str("apiVersion"), doc.str("kind"));
        let namespace = doc
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        match (api, kind) {
            ("v1", "Namespace") => drop(typed::<Namespace>(doc, &mut problems)),
            ("v1", "ServiceAccount") => drop(typed::<ServiceAccount>(doc, &mut problems)),
            ("v1", "ConfigMap") => drop(typed::<ConfigMap>(doc, &mut problems)),
            ("v1", "Pod") => {
                if let Some(pod) = typed::<Pod>(doc, &mut problems) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let networks = pod
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("k8s.v1.cni.cncf.io/networks"));
                    for ifname in networks.map(|n| annotation_ifnames(n)).unwrap_or_default() {
                        labs.attached
                            .entry(namespace.clone())
                            .or_default()
                            .insert((name.clone(), ifname));
                    }
                }
            }
            ("apps/v1", "DaemonSet") => {
                if let Some(ds) = typed::<DaemonSet>(doc, &mut problems) {
                    check_daemonset(doc, &ds, &agent_env, &mut problems);
                }
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                drop(typed::<ClusterRole>(doc, &mut problems))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                drop(typed::<ClusterRoleBinding>(doc, &mut problems))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => drop(typed::<Role>(doc, &mut problems)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                drop(typed::<RoleBinding>(doc, &mut problems))
            }
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                if let Some(crd) = typed::<CustomResourceDefinition>(doc, &mut problems) {
                    check_structural(doc, &crd, &mut problems);
                }
            }
            ("ovswire.io/v1alpha1", "Topology") => {
                if let Some(t) = typed::<Topology>(doc, &mut problems) {
                    match ovswire_k8s::wires_from_ovswire(&namespace, &t) {
                        Ok(wires) => {
                            let entry = labs.endpoints.entry(namespace.clone()).or_default();
                            for w in wires {
                                for (pod, ifname) in [w.a.clone(), w.b.clone()] {
                                    entry.push((pod, ifname, doc.at()));
                                }
                            }
                        }
                        Err(e) => problems.push(format!("{}: {e}", doc.at())),
                    }
                }
            }
            ("networkop.co.uk/v1beta1", "Topology") => {
                if let Some(t) = typed::<MeshnetTopology>(doc, &mut problems) {
                    labs.meshnet.entry(namespace.clone()).or_default().push(t);
                }
            }
            ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition") => {
                if let Some(nad) = typed::<NetworkAttachmentDefinition>(doc, &mut problems) {
                    check_nad(doc, &nad, &mut problems);
                }
            }
            ("kustomize.config.k8s.io/v1beta1", "Kustomization") => {
                if let Some(k) = typed::<Kustomization>(doc, &mut problems) {
                    check_kustomization(doc, &k, &mut problems);
                }
            }
            (api, kind) => problems.push(format!(
                "{}: no type for apiVersion {api:?} kind {kind:?}; add it to this test",
                doc.at()
            )),
        }
    }
    for (namespace, objects) in &labs.meshnet {
        if let Err(e) = ovswire_k8s::wires_from_meshnet(namespace, objects) {
            problems.push(e.to_string());
        }
    }
    // A sample lab whose pods are in the same files must attach every interface it wires.
    for (namespace, endpoints) in &labs.endpoints {
        let Some(attached) = labs.attached.get(namespace) else {
            continue;
        };
        for (pod, ifname, at) in endpoints {
            if !attached.contains(&(pod.clone(), ifname.clone())) {
                problems.push(format!(
                    "{at}: endpoint {pod}:{ifname} is not in pod {pod}'s \
                     k8s.v1.cni.cncf.io/networks annotation in namespace {namespace}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn check_daemonset(
    doc: &Doc,
    ds: &DaemonSet,
    agent_env: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let Some(spec) = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        problems.push(format!("{}: no pod template spec", doc.at()));
        return;
    };
    let volumes: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        for m in c.volume_mounts.iter().flatten() {
            if !volumes.contains(m.name.as_str()) {
                problems.push(format!(
                    "{}: container {} mounts volume {} that the pod does not define",
                    doc.at(),
                    c.name,
                    m.name
                ));
            }
        }
        let runs_agent = c
            .command
            .iter()
            .flatten()
            .any(|a| a.ends_with("/ovswire-agent"));
        for e in c.env.iter().flatten() {
            if runs_agent && e.name.starts_with("OVSWIRE_") && !agent_env.contains(&e.name) {
                problems.push(format!(
                    "{}: container {} sets {}, which no flag of ovswire-agent reads (known: {})",
                    doc.at(),
                    c.name,
                    e.name,
                    agent_env.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
}

/// The API server only accepts structural schemas: every node typed, no `anyOf`/`oneOf`/
/// `allOf`/`not` carrying types of their own (ovswire's CRDs use none).
fn check_structural(doc: &Doc, crd: &CustomResourceDefinition, problems: &mut Vec<String>) {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        let Some(map) = node.as_object() else {
            return;
        };
        let typed = map.contains_key("type")
            || map.contains_key("x-kubernetes-int-or-string")
            || map.contains_key("x-kubernetes-preserve-unknown-fields");
        if !typed {
            out.push(format!("{path} has no type"));
        }
        for key in ["anyOf", "oneOf", "allOf", "not"] {
            if map.contains_key(key) {
                out.push(format!("{path} uses {key}"));
            }
        }
        if let Some(Value::Object(props)) = map.get("properties") {
            for (k, v) in props {
                walk(v, &format!("{path}.{k}"), out);
            }
        }
        if let Some(items) = map.get("items") {
            walk(items, &format!("{path}[]"), out);
        }
    }
    for version in &crd.spec.versions {
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let Some(schema) = schema else {
            problems.push(format!(
                "{}: version {} has no schema",
                doc.at(),
                version.name
            ));
            continue;
        };
        let mut out = Vec::new();
        walk(&serde_json::to_value(schema).unwrap(), "", &mut out);
        for o in out {
            problems.push(format!(
                "{}: version {}: schema{o}: not a structural schema",
                doc.at(),
                version.name
            ));
        }
    }
}

fn check_nad(doc: &Doc, nad: &NetworkAttachmentDefinition, problems: &mut Vec<String>) {
    let Some(config) = nad.spec.as_ref().and_then(|s| s.config.as_ref()) else {
        return;
    };
    let conf: Value = match serde_json::from_str(config) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("{}: spec.config is not JSON: {e}", doc.at()));
            return;
        }
    };
    if conf.get("type").and_then(Value::as_str) != Some("ovswire-cni") {
        return;
    }
    let version = conf.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    if !["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].contains(&version) {
        problems.push(format!(
            "{}: spec.config cniVersion {version:?} is not one ovswire-cni speaks",
            doc.at()
        ));
    }
    if conf
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        problems.push(format!("{}: spec.config has no name", doc.at()));
    }
    if conf
        .get("ipam")
        .is_some_and(|i| i != &serde_json::json!({}))
    {
        problems.push(format!(
            "{}: spec.config has ipam; ovswire-cni refuses it",
            doc.at()
        ));
    }
}

fn check_kustomization(doc: &Doc, k: &Kustomization, problems: &mut Vec<String>) {
    let dir = doc.file.parent().unwrap();
    for r in &k.resources {
        let path = dir.join(r);
        let ok = path.is_file() || path.join("kustomization.yaml").is_file();
        if !ok {
            problems.push(format!(
                "{}: resource {r} is neither a file nor a directory with a kustomization.yaml",
                doc.at()
            ));
        }
        if path.is_file() && r.contains("..") {
            problems.push(format!(
                "{}: resource {r} is a file outside the kustomization's directory; kustomize \
                 refuses those",
                doc.at()
            ));
        }
    }
}

#[test]
fn generated_crds_are_up_to_date() {
    for file in ovswire_k8s::crdgen::crd_files().unwrap() {
        let path = repo().join("deploy/crds").join(file.file_name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == file.yaml,
            "{} is stale or missing: the CRD types in k8s/src/crd changed. Run \
             `cargo run -p ovswire-k8s --bin ovswire-crdgen -- --write deploy/crds` and commit \
             the result.",
            path.display()
        );
    }
}
