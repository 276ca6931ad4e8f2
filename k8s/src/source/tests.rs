use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::*;
use crate::Wire;
use crate::fake_api::{self, Listing, event, node, pod, yaml, yaml_docs};
use crate::wire::tests::{KNE_RING, OVSWIRE_RING};

const OVSWIRE: &str = "/apis/ovswire.io/v1alpha1/topologies";
const MESHNET: &str = "/apis/networkop.co.uk/v1beta1/topologies";
const PODS: &str = "/api/v1/pods";
const NODES: &str = "/api/v1/nodes";

fn with_version(mut object: Value, version: &str) -> Value {
    object["metadata"]["resourceVersion"] = version.into();
    object
}

fn pods() -> Vec<Value> {
    vec![
        pod("lab1", "r1", "n1"),
        pod("lab1", "r2", "n2"),
        pod("lab1", "r3", "n1"),
        // Not in any lab: left out of pod_nodes.
        pod("kube-system", "coredns-1", "n2"),
    ]
}

fn nodes() -> Vec<Value> {
    vec![
        node("n1", "10.0.0.1", None),
        node("n2", "10.0.0.2", Some("192.0.2.2")),
        node("n3", "10.0.0.3", Some("not-an-ip")),
    ]
}

/// Starts a source on the scripted API and returns its output.
fn start(lists: Vec<(&str, Listing)>) -> (watch::Receiver<Desired>, fake_api::Watches) {
    let (client, handle) = fake_api::client();
    let watches = fake_api::serve(handle, lists);
    let (tx, rx) = watch::channel(Desired::default());
    tokio::spawn(Source::new(client).run(tx));
    (rx, watches)
}

async fn next(rx: &mut watch::Receiver<Desired>) -> Desired {
    tokio::time::timeout(Duration::from_secs(30), rx.changed())
        .await
        .expect("no Desired published")
        .unwrap();
    rx.borrow_and_update().clone()
}

fn names(d: &Desired) -> Vec<String> {
    d.wires.iter().map(Wire::name).collect()
}

fn pod_nodes(d: &Desired) -> Vec<(&str, &str, &str)> {
    d.pod_nodes
        .iter()
        .map(|((ns, pod), node)| (ns.as_str(), pod.as_str(), node.as_str()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn initial_lists_yield_the_desired_state() {
    let (mut rx, _watches) = start(vec![
        (OVSWIRE, Listing::Items(vec![yaml(OVSWIRE_RING)])),
        (MESHNET, Listing::Items(vec![])),
        (PODS, Listing::Items(pods())),
        (NODES, Listing::Items(nodes())),
    ]);
    let d = next(&mut rx).await;
    assert!(d.synced);
    assert_eq!(
        names(&d),
        ["r1:eth1--r2:eth1", "r1:eth2--r3:eth2", "r2:eth2--r3:eth1"]
    );
    assert!(
        d.wires
            .iter()
            .all(|w| w.lab == "lab1" && w.mtu.is_none() && !w.down)
    );
    assert_eq!(
        pod_nodes(&d),
        [
            ("lab1", "r1", "n1"),
            ("lab1", "r2", "n2"),
            ("lab1", "r3", "n1")
        ]
    );
    assert_eq!(
        d.node_addrs,
        [
            ("n1".to_owned(), "10.0.0.1".parse().unwrap()),
            ("n2".to_owned(), "192.0.2.2".parse().unwrap()),
        ]
        .into()
    );
    assert!(d.rejected.is_empty());
    let on_n2: Vec<String> = d.wires_on("n2").map(Wire::name).collect();
    assert_eq!(on_n2, ["r1:eth1--r2:eth1", "r2:eth2--r3:eth1"]);
    assert_eq!(d.reporter(&d.wires[2]), Some("n2"));
}

#[tokio::test(start_paused = true)]
async fn nothing_is_published_before_every_kind_is_listed() {
    let (client, mut handle) = fake_api::client();
    let (tx, mut rx) = watch::channel(Desired::default());
    tokio::spawn(Source::new(client).run(tx));
    // Answer every LIST but the nodes'.
    let answering = tokio::spawn(async move {
        let lists = [
            (OVSWIRE, vec![yaml(OVSWIRE_RING)]),
            (MESHNET, vec![]),
            (PODS, pods()),
        ];
        let mut held = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_owned();
            match lists.iter().find(|(p, _)| *p == path) {
                Some((_, items)) if !request.uri().query().unwrap_or("").contains("watch=true") => {
                    let list =
                        serde_json::json!({"metadata": {"resourceVersion": "1"}, "items": items});
                    send.send_response(http::Response::new(kube::client::Body::from(
                        serde_json::to_vec(&list).unwrap(),
                    )));
                }
                _ => held.push(send),
            }
        }
    });
    let waited = tokio::time::timeout(Duration::from_secs(60), rx.changed()).await;
    assert!(waited.is_err(), "published {:?}", *rx.borrow());
    answering.abort();
}

#[tokio::test(start_paused = true)]
async fn a_live_edit_adds_and_removes_links() {
    let (mut rx, watches) = start(vec![
        (OVSWIRE, Listing::Items(vec![yaml(OVSWIRE_RING)])),
        (MESHNET, Listing::Items(vec![])),
        (PODS, Listing::Items(pods())),
        (NODES, Listing::Items(nodes())),
    ]);
    assert_eq!(next(&mut rx).await.wires.len(), 3);

    // kubectl edit: r3:eth2--r1:eth2 removed, r1:eth3--r3:eth3 added, a default MTU set.
    let edited = yaml(
        "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: ring, namespace: lab1, generation: 2}
spec:
  mtu: 9000
  links:
    - endpoints: [r1:eth1, r2:eth1]
    - endpoints: [r2:eth2, r3:eth1]
    - endpoints: [r1:eth3, r3:eth3]
",
    );
    watches.send(OVSWIRE, vec![event("MODIFIED", with_version(edited, "2"))]);
    let d = next(&mut rx).await;
    assert_eq!(
        names(&d),
        ["r1:eth1--r2:eth1", "r1:eth3--r3:eth3", "r2:eth2--r3:eth1"]
    );
    assert!(d.wires.iter().all(|w| w.mtu == Some(9000)));

    // A new pod of the lab is scheduled and r2 is deleted: placement follows.
    watches.send(
        PODS,
        vec![
            event("DELETED", with_version(pod("lab1", "r2", "n2"), "3")),
            event("ADDED", with_version(pod("lab1", "r2", "n1"), "4")),
        ],
    );
    let d = next(&mut rx).await;
    assert_eq!(d.node_of("lab1", "r2"), Some("n1"));

    // The whole Topology is deleted: no wires left.
    watches.send(
        OVSWIRE,
        vec![event("DELETED", with_version(yaml(OVSWIRE_RING), "5"))],
    );
    let d = next(&mut rx).await;
    assert!(d.wires.is_empty() && d.pod_nodes.is_empty(), "{d:?}");
}

#[tokio::test(start_paused = true)]
async fn changes_that_do_not_matter_publish_nothing() {
    let (mut rx, watches) = start(vec![
        (OVSWIRE, Listing::Items(vec![yaml(OVSWIRE_RING)])),
        (MESHNET, Listing::Items(vec![])),
        (PODS, Listing::Items(pods())),
        (NODES, Listing::Items(nodes())),
    ]);
    next(&mut rx).await;
    // A pod outside every lab, and a status-only update of a lab pod.
    let mut r1 = pod("lab1", "r1", "n1");
    r1["status"]["phase"] = "Succeeded".into();
    watches.send(
        PODS,
        vec![
            event("ADDED", with_version(pod("default", "web", "n2"), "7")),
            event("MODIFIED", with_version(r1, "8")),
        ],
    );
    let waited = tokio::time::timeout(Duration::from_secs(10), rx.changed()).await;
    assert!(waited.is_err(), "published {:?}", *rx.borrow());
}

#[tokio::test(start_paused = true)]
async fn a_kne_ring_yields_the_same_wires_without_the_ovswire_crd() {
    let (mut ovswire_rx, _w1) = start(vec![
        (OVSWIRE, Listing::Items(vec![yaml(OVSWIRE_RING)])),
        (MESHNET, Listing::Items(vec![])),
        (PODS, Listing::Items(pods())),
        (NODES, Listing::Items(nodes())),
    ]);
    // KNE's objects, on a cluster where only meshnet's CRD is installed.
    let (mut meshnet_rx, _w2) = start(vec![
        (OVSWIRE, Listing::Fails(404)),
        (MESHNET, Listing::Items(yaml_docs(KNE_RING))),
        (PODS, Listing::Items(pods())),
        (NODES, Listing::Items(nodes())),
    ]);
    let from_ovswire = next(&mut ovswire_rx).await;
    let from_meshnet = next(&mut meshnet_rx).await;
    assert_eq!(from_meshnet.wires.len(), 3);
    assert_eq!(from_meshnet, from_ovswire);
}

#[test]
fn bad_links_are_left_out_and_reported() {
    let topology: Topology = serde_yaml_ng::from_str(
        "
metadata: {name: ring, namespace: lab1}
spec:
  links:
    - endpoints: [r1:eth1, r2:eth1]
    - endpoints: [r1:eth1, r3:eth1]
",
    )
    .unwrap();
    let node: Node = serde_json::from_value(node("n3", "10.0.0.3", Some("not-an-ip"))).unwrap();
    let (d, problems) = build(
        &[Arc::new(topology)],
        &[],
        &[],
        &[Arc::new(node)],
        "ovswire",
    );
    assert_eq!(names(&d), ["r1:eth1--r2:eth1"]);
    assert_eq!(d.rejected.len(), 1);
    let problems: Vec<_> = problems.into_iter().collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains(
            "node n3: annotation ovswire.io/underlay-ip=\"not-an-ip\" is not an IP address"
        )
    );
    assert!(problems[1].starts_with(
        "topology.ovswire.io/ring in namespace lab1: link r1:eth1--r3:eth1: r1:eth1 is already used"
    ));
}

#[test]
fn caches_keep_only_what_is_read() {
    let mut p: Pod = serde_json::from_value(pod("lab1", "r1", "n1")).unwrap();
    strip_pod(&mut p);
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "r1", "namespace": "lab1"},
            "spec": {"containers": [], "nodeName": "n1"},
        })
    );
    let mut n: Node = serde_json::from_value(node("n2", "10.0.0.2", Some("192.0.2.2"))).unwrap();
    strip_node(&mut n);
    assert_eq!(underlay_addr(&n), Ok(Some("192.0.2.2".parse().unwrap())));
    assert_eq!(n.annotations().len(), 1);
}

/// The client the agent builds in a cluster: TLS (rustls with ring) set up without a
/// process-wide crypto provider installed by hand.
#[tokio::test]
async fn a_tls_client_builds() {
    let config = kube::Config::new("https://192.0.2.1:6443".parse().unwrap());
    let client = Client::try_from(config).expect("TLS client stack");
    let _: Api<Topology> = Api::all(client);
}

#[tokio::test(start_paused = true)]
async fn peers_are_the_nodes_an_agent_pod_runs_on_in_the_agents_namespace() {
    let agent = |namespace: &str, name: &str, node: &str| {
        let mut p = pod(namespace, name, node);
        p["metadata"]["labels"] = serde_json::json!({AGENT_LABEL.0: AGENT_LABEL.1});
        p
    };
    let mut all = pods();
    // The fake client's namespace, like an agent's service account's, is `default`.
    all.push(agent("default", "ovswire-agent-a", "n1"));
    all.push(agent("default", "ovswire-agent-b", "n2"));
    // The same label elsewhere makes no peer.
    all.push(agent("someone-else", "impostor", "n3"));
    let (mut rx, _watches) = start(vec![
        (OVSWIRE, Listing::Items(vec![yaml(OVSWIRE_RING)])),
        (MESHNET, Listing::Items(vec![])),
        (PODS, Listing::Items(all)),
        (NODES, Listing::Items(nodes())),
    ]);
    let d = next(&mut rx).await;
    let agents: Vec<&str> = d.agent_nodes.iter().map(String::as_str).collect();
    assert_eq!(agents, ["n1", "n2"]);
}
