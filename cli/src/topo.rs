//! Turning a topology file into Kubernetes objects (the job k8s-topo did): the lab's namespace,
//! a NetworkAttachmentDefinition for ovswire, one pod per node with Multus annotations naming
//! its interfaces, and an ovswire `Topology` listing the links. The agents on the nodes wire the
//! pods as Multus attaches them.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

use crate::spec::LabSpec;

/// The field manager of objects the CLI applies.
pub const MANAGER: &str = "ovswire-cli";
/// Label on every object the CLI makes, so `delete` removes exactly those.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ovswire");

/// A link's impairments as the Topology CRD writes them: the parameters when both directions
/// have the same, else `aToB`/`bToA`.
fn impair_json(imp: &ovswire_core::impair::LinkImpairment) -> Value {
    let params = |i: &ovswire_core::impair::Impairment| {
        let mut m = serde_json::Map::new();
        for (k, v) in i.fields() {
            let key = match k {
                "jitter-correlation" => "jitterCorrelation",
                "loss-correlation" => "lossCorrelation",
                other => other,
            };
            m.insert(key.to_owned(), Value::String(v));
        }
        Value::Object(m)
    };
    if imp.a_to_b == imp.b_to_a {
        params(&imp.a_to_b)
    } else {
        json!({"aToB": params(&imp.a_to_b), "bToA": params(&imp.b_to_a)})
    }
}

/// Pod settings for `render`/`create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTemplate {
    /// The router image.
    pub image: String,
    /// Its command; `None` keeps the image's own.
    pub command: Option<Vec<String>>,
}

impl Default for PodTemplate {
    fn default() -> Self {
        Self {
            image: "alpine:3".into(),
            command: Some(vec!["sleep".into(), "infinity".into()]),
        }
    }
}

/// Annotation of a pod whose node the file names otherwise: the name as written.
pub const NODE_NAME: &str = "ovswire.io/node-name";
/// Annotation of a pod whose interfaces the file names otherwise: a JSON object, Linux name →
/// the name as written.
pub const INTERFACE_NAMES: &str = "ovswire.io/interface-names";
/// Annotation of a namespace whose lab the file names otherwise: the name as written.
pub const LAB_NAME: &str = "ovswire.io/lab-name";

/// Whether lab `spec` can run on Kubernetes; if not, why and what to do.
pub fn check(spec: &LabSpec) -> Result<()> {
    if let Some(l) = spec.links.iter().find(|l| {
        [&l.a, &l.b].iter().any(|e| {
            spec.nodes
                .get(&e.node)
                .is_some_and(crate::spec::NodeSpec::is_host)
        })
    }) {
        anyhow::bail!(
            "link {} ends in the host, which only a local lab (`ovswire lab up`) has: on \
             Kubernetes no pod is wired into its node's host; remove the host links for Kubernetes",
            spec.written_name(l)
        );
    }
    Ok(())
}

/// The objects for lab `spec`, in the order they must be created.
pub fn render(spec: &LabSpec, pod: &PodTemplate) -> Vec<Value> {
    let ns = spec.name.as_str();
    let labels = json!({ MANAGED_BY.0: MANAGED_BY.1, "ovswire.io/lab": ns });
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": ns, "labels": labels },
    })];
    if let Some(written) = &spec.names.lab {
        objects[0]["metadata"]["annotations"] = json!({ LAB_NAME: written });
    }
    let mut config = json!({ "cniVersion": "1.0.0", "name": "ovswire", "type": "ovswire-cni" });
    if let Some(mtu) = spec.mtu {
        config["mtu"] = mtu.into();
    }
    objects.push(json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": { "name": "ovswire", "namespace": ns, "labels": labels },
        "spec": { "config": config.to_string() },
    }));
    let links: Vec<Value> = spec
        .links
        .iter()
        .map(|l| {
            let mut v = json!({ "endpoints": [l.a.to_string(), l.b.to_string()] });
            if let Some(mtu) = l.mtu {
                v["mtu"] = mtu.into();
            }
            if l.down {
                v["state"] = "down".into();
            }
            if !l.impair.is_none() {
                v["impair"] = impair_json(&l.impair);
            }
            v
        })
        .collect();
    let mut topo_spec = json!({ "links": links });
    if let Some(mtu) = spec.mtu {
        topo_spec["mtu"] = mtu.into();
    }
    let segments: Vec<&str> = spec.segments().collect();
    if !segments.is_empty() {
        topo_spec["segments"] = json!(segments);
    }
    objects.push(json!({
        "apiVersion": "ovswire.io/v1alpha1",
        "kind": "Topology",
        "metadata": { "name": ns, "namespace": ns, "labels": labels },
        "spec": topo_spec,
    }));
    // A pod for every node but the segments, which are the agents' flows.
    let mut ifaces: BTreeMap<&str, Vec<&str>> = spec
        .nodes
        .iter()
        .filter(|(_, n)| !n.is_segment())
        .map(|(name, _)| (name.as_str(), Vec::new()))
        .collect();
    for e in spec.interfaces() {
        ifaces.entry(&e.node).or_default().push(&e.ifname);
    }
    for (node, names) in ifaces {
        let mut names = names;
        names.sort_unstable();
        let networks: Vec<Value> = names
            .iter()
            .map(|i| json!({ "name": "ovswire", "interface": i }))
            .collect();
        let mut container = json!({
            "name": "router",
            "image": pod.image,
            // Routers configure their interfaces and routes.
            "securityContext": { "capabilities": { "add": ["NET_ADMIN", "NET_RAW"] } },
        });
        match spec.nodes.get(node).filter(|n| n.is_container()) {
            // A node with its own image runs it as the file says: its entrypoint is the pod's
            // command, its cmd the pod's args, with its environment.
            Some(n) => {
                container["image"] = json!(n.image);
                let words = |s: &Option<String>| s.as_deref().and_then(shlex::split);
                if let Some(entrypoint) = words(&n.entrypoint) {
                    container["command"] = json!(entrypoint);
                }
                if let Some(args) = words(&n.cmd) {
                    container["args"] = json!(args);
                }
                if !n.env.is_empty() {
                    let env: Vec<Value> = n
                        .env
                        .iter()
                        .map(|(k, v)| json!({ "name": k, "value": v }))
                        .collect();
                    container["env"] = Value::Array(env);
                }
            }
            None => {
                if let Some(cmd) = &pod.command {
                    container["command"] = json!(cmd);
                }
            }
        }
        let mut annotations = json!({
            "k8s.v1.cni.cncf.io/networks": Value::Array(networks).to_string(),
        });
        // The names the file writes, where Kubernetes or Linux needed others.
        if spec.names.node(node) != node {
            annotations[NODE_NAME] = spec.names.node(node).into();
        }
        let renamed: BTreeMap<&str, &str> = names
            .iter()
            .map(|i| (*i, spec.names.ifname(node, i)))
            .filter(|(i, w)| i != w)
            .collect();
        if !renamed.is_empty() {
            annotations[INTERFACE_NAMES] = json!(renamed).to_string().into();
        }
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": node,
                "namespace": ns,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": { "containers": [container], "terminationGracePeriodSeconds": 1 },
        }));
    }
    objects
}

/// The objects as one multi-document YAML text.
pub fn to_yaml(objects: &[Value]) -> Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).context("render YAML")?);
    }
    Ok(out)
}

fn api_for(client: &kube::Client, o: &Value) -> Result<(Api<DynamicObject>, String)> {
    let api_version = o["apiVersion"]
        .as_str()
        .context("an object without apiVersion")?;
    let kind = o["kind"].as_str().context("an object without kind")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk(&gvk);
    let name = o["metadata"]["name"]
        .as_str()
        .context("an object without a name")?;
    let api = match o["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    Ok((api, name.to_owned()))
}

/// Applies the objects with server-side apply; `progress` is told about each one.
pub async fn create(
    client: &kube::Client,
    objects: &[Value],
    progress: &dyn Fn(&str),
) -> Result<()> {
    let params = PatchParams::apply(MANAGER).force();
    for o in objects {
        let (api, name) = api_for(client, o)?;
        let kind = o["kind"].as_str().unwrap_or("object");
        api.patch(&name, &params, &Patch::Apply(o))
            .await
            .with_context(|| {
                format!(
                    "cannot apply {kind} {name}; is the cluster reachable, are the ovswire CRDs \
                     and Multus installed (see docs/deploy.md)?"
                )
            })?;
        progress(&format!("applied {kind} {name}"));
    }
    Ok(())
}

/// Deletes the objects `create` made for this lab (newest first); ones already gone are
/// skipped, and the namespace only goes when the CLI created it.
pub async fn delete(
    client: &kube::Client,
    objects: &[Value],
    progress: &dyn Fn(&str),
) -> Result<()> {
    for o in objects.iter().rev() {
        let (api, name) = api_for(client, o)?;
        let kind = o["kind"].as_str().unwrap_or("object");
        match api.get_opt(&name).await {
            Ok(Some(existing)) => {
                let ours = existing
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(MANAGED_BY.0))
                    .is_some_and(|v| v == MANAGED_BY.1);
                if !ours {
                    progress(&format!("kept {kind} {name}: ovswire did not create it"));
                    continue;
                }
                api.delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("cannot delete {kind} {name}"))?;
                progress(&format!("deleted {kind} {name}"));
            }
            Ok(None) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {kind} {name}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> LabSpec {
        crate::file::parse(
            "lab: ring\nmtu: 9000\nlinks:\n  - endpoints: [\"r1:eth1\", \"r2:eth1\"]\n  - endpoints: [\"r2:eth2\", \"r3:eth1\"]\n    state: down\n  - endpoints: [\"r3:eth2\", \"r1:eth2\"]\n    mtu: 1500\n    impair: {a->b: {delay: 20ms, loss: 1%}}\n",
            "ring.yaml",
            crate::file::Format::Native,
        )
        .unwrap()
    }

    #[test]
    fn a_node_with_an_image_gets_its_own_image_command_and_environment() {
        let spec = crate::file::parse(
            "lab: img\nnodes:\n  r1: {image: quay.io/frrouting/frr:10.2.1, cmd: \"sleep 'a b'\", env: {A: 1}}\n  r2: {}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n",
            "img.yaml",
            crate::file::Format::Native,
        )
        .unwrap();
        let objects = render(&spec, &PodTemplate::default());
        let r1 = &objects[3]["spec"]["containers"][0];
        assert_eq!(r1["image"], "quay.io/frrouting/frr:10.2.1");
        assert_eq!(r1["args"], json!(["sleep", "a b"]));
        assert_eq!(r1.get("command"), None, "the image's own entrypoint");
        assert_eq!(r1["env"], json!([{"name": "A", "value": "1"}]));
        let r2 = &objects[4]["spec"]["containers"][0];
        assert_eq!(r2["image"], "alpine:3");
        assert_eq!(r2["command"], json!(["sleep", "infinity"]));
    }

    #[test]
    fn a_lab_becomes_a_namespace_nad_topology_and_annotated_pods() {
        let objects = render(&lab(), &PodTemplate::default());
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "NetworkAttachmentDefinition",
                "Topology",
                "Pod",
                "Pod",
                "Pod"
            ]
        );
        let pods: Vec<k8s_openapi::api::core::v1::Pod> = objects[3..]
            .iter()
            .map(|o| serde_json::from_value(o.clone()).unwrap())
            .collect();
        let r1 = &pods[0];
        assert_eq!(r1.metadata.name.as_deref(), Some("r1"));
        assert_eq!(r1.metadata.namespace.as_deref(), Some("ring"));
        let nets: Value = serde_json::from_str(
            &r1.metadata.annotations.as_ref().unwrap()["k8s.v1.cni.cncf.io/networks"],
        )
        .unwrap();
        assert_eq!(
            nets,
            json!([{"name": "ovswire", "interface": "eth1"}, {"name": "ovswire", "interface": "eth2"}])
        );
        let nad_config: Value =
            serde_json::from_str(objects[1]["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(nad_config["type"], "ovswire-cni");
        assert_eq!(nad_config["mtu"], 9000);
    }

    #[test]
    fn the_topology_object_gives_the_same_wires_as_the_file() {
        let spec = lab();
        let objects = render(&spec, &PodTemplate::default());
        let topo: ovswire_k8s::crd::Topology = serde_json::from_value(objects[2].clone()).unwrap();
        let wires = ovswire_k8s::wires_from_ovswire("ring", &topo).unwrap();
        let mut names: Vec<(String, Option<u32>, bool)> =
            wires.iter().map(|w| (w.name(), w.mtu, w.down)).collect();
        names.sort();
        let agent =
            ovswire_core::topology::Topology::parse(&crate::file::agent_topology(&spec), "ring")
                .unwrap();
        let mut expected: Vec<(String, Option<u32>, bool)> = agent
            .links
            .values()
            .map(|l| {
                (
                    l.key.name(),
                    Some(l.mtu),
                    l.admin == ovswire_core::model::AdminState::Down,
                )
            })
            .collect();
        expected.sort();
        // The file's default MTU reaches the links through the Topology's spec.mtu.
        let resolved: Vec<_> = names
            .into_iter()
            .map(|(n, m, d)| (n, m.or(Some(9000)), d))
            .collect();
        assert_eq!(resolved, expected);
        // Impairments too, the direction as written (r3 sends with the delay).
        let w = wires
            .iter()
            .find(|w| w.name() == "r1:eth2--r3:eth2")
            .unwrap();
        assert_eq!(w.impair.to_string(), "a->b: none; b->a: delay=20ms loss=1%");
        let l = agent
            .links
            .values()
            .find(|l| l.key.name() == w.name())
            .unwrap();
        assert_eq!(l.impair, w.impair);
    }

    #[test]
    fn yaml_is_one_document_per_object() {
        let text = to_yaml(&render(&lab(), &PodTemplate::default())).unwrap();
        assert_eq!(text.matches("---\n").count(), 6);
        assert!(text.contains("kind: Topology"));
    }
}
