use std::time::Duration;

use http::{Method, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};

use super::*;
use crate::fake_api::{self, ApiHandle, error_response};

const RING: &str = "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: ring, namespace: lab1, uid: u-ring, generation: 1}
spec:
  links:
    - endpoints: [r1:eth1, r2:eth1]
    - endpoints: [r2:eth2, r3:eth1]
    - endpoints: [r3:eth2, r1:eth2]
";

const PAIR: &str = "
apiVersion: ovswire.io/v1alpha1
kind: Topology
metadata: {name: pair, namespace: lab2, uid: u-pair, generation: 4}
spec:
  links:
    - endpoints: [a:e1, b:e1]
    - endpoints: [a:e1, c:e1]
";

fn topology(yaml: &str) -> Topology {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn desired(objects: &[&Topology], placement: &[(&str, &str, &str)]) -> Desired {
    let arcs: Vec<Arc<Topology>> = objects.iter().map(|t| Arc::new((*t).clone())).collect();
    let (mut d, _) = crate::source::build(&arcs, &[], &[], &[], "ovswire");
    d.pod_nodes = placement
        .iter()
        .map(|(ns, pod, node)| ((ns.to_string(), pod.to_string()), node.to_string()))
        .collect();
    d
}

fn placement() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("lab1", "r1", "n1"),
        ("lab1", "r2", "n2"),
        ("lab1", "r3", "n1"),
        ("lab2", "a", "n1"),
    ]
}

fn report(lab: &str, link: &str, state: LinkState) -> LinkReport {
    LinkReport {
        lab: lab.into(),
        link: link.into(),
        state,
        reason: None,
        node_a: None,
        node_b: None,
        tunnel_key: None,
        effective_mtu: Some(9500),
        impairment: None,
    }
}

fn n1_reports() -> Vec<LinkReport> {
    vec![
        LinkReport {
            tunnel_key: Some(4242),
            ..report("lab1", "r1:eth1--r2:eth1", LinkState::Ready)
        },
        report("lab1", "r1:eth2--r3:eth2", LinkState::Ready),
        // n2 reports this one (its end a, r2, runs there): left out here.
        report("lab1", "r2:eth2--r3:eth1", LinkState::Pending),
        LinkReport {
            reason: Some("waiting for pod b's interface e1".into()),
            ..report("lab2", "a:e1--b:e1", LinkState::Pending)
        },
    ]
}

fn ring_body() -> Value {
    json!({
        "apiVersion": "ovswire.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": "ring", "namespace": "lab1"},
        "status": {
            "observedGeneration": 1,
            "total": 3, "ready": 2, "pending": 1, "down": 0, "errors": 0,
            "links": [
                {"name": "r1:eth1--r2:eth1", "state": "ready", "nodeA": "n1", "nodeB": "n2",
                 "tunnelKey": 4242, "effectiveMtu": 9500},
                {"name": "r1:eth2--r3:eth2", "state": "ready", "nodeA": "n1", "nodeB": "n1",
                 "effectiveMtu": 9500},
            ],
        },
    })
}

fn pair_body() -> Value {
    json!({
        "apiVersion": "ovswire.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": "pair", "namespace": "lab2"},
        "status": {
            "observedGeneration": 4,
            "total": 2, "ready": 0, "pending": 1, "down": 0, "errors": 1,
            "links": [
                {"name": "a:e1--b:e1", "state": "pending", "nodeA": "n1",
                 "reason": "waiting for pod b's interface e1", "effectiveMtu": 9500},
                {"name": "a:e1--c:e1", "state": "error",
                 "reason": "a:e1 is already used by spec.links[0] (a:e1--b:e1); an interface joins one link only"},
            ],
        },
    })
}

/// A writer for node n1 over `objects`, and the API it talks to.
fn start(
    objects: &[&Topology],
    reports: Vec<LinkReport>,
) -> (ApiHandle, StatusReporter, watch::Sender<Desired>) {
    let (store, mut cache) = reflector::store::<Topology>();
    for t in objects {
        cache.apply_watcher_event(&watcher::Event::Apply((*t).clone()));
    }
    let (desired_tx, desired_rx) = watch::channel(desired(objects, &placement()));
    let (client, handle) = fake_api::client();
    let (writer, reporter) = StatusWriter::new(client, "n1", store, desired_rx);
    assert_eq!(writer.field_manager(), "ovswire-agent-n1");
    reporter.report(reports);
    tokio::spawn(writer.run());
    // Keep the cache's writer alive with the test.
    std::mem::forget(cache);
    (handle, reporter, desired_tx)
}

/// The next request, checked to be a server-side apply of a Topology's status by n1; returns
/// its path and body.
async fn next_apply(
    handle: &mut ApiHandle,
) -> (
    String,
    Value,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(120), handle.next_request())
        .await
        .expect("no request")
        .unwrap();
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(
        request.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    let query = request.uri().query().unwrap_or_default().to_owned();
    assert!(
        query.contains("fieldManager=ovswire-agent-n1") && query.contains("force=true"),
        "{query}"
    );
    let path = request.uri().path().to_owned();
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    (path, serde_json::from_slice(&bytes).unwrap(), send)
}

/// The API server's answer to an apply: the object with the applied status.
fn ok(body: &Value) -> Response<Body> {
    let mut object = body.clone();
    object["spec"] = json!({"links": []});
    Response::new(Body::from(serde_json::to_vec(&object).unwrap()))
}

async fn assert_quiet(handle: &mut ApiHandle, for_: Duration) {
    if let Ok(Some((request, _))) = tokio::time::timeout(for_, handle.next_request()).await {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

#[tokio::test(start_paused = true)]
async fn one_apply_per_object_with_the_node_s_entries_and_counts() {
    let (ring, pair) = (topology(RING), topology(PAIR));
    let (mut handle, reporter, _desired) = start(&[&ring, &pair], n1_reports());

    let mut applied = Vec::new();
    for _ in 0..2 {
        let (path, body, send) = next_apply(&mut handle).await;
        send.send_response(ok(&body));
        applied.push((path, body));
    }
    applied.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        applied[0].0,
        "/apis/ovswire.io/v1alpha1/namespaces/lab1/topologies/ring/status"
    );
    assert_eq!(applied[0].1, ring_body());
    assert_eq!(
        applied[1].0,
        "/apis/ovswire.io/v1alpha1/namespaces/lab2/topologies/pair/status"
    );
    assert_eq!(applied[1].1, pair_body());

    // Nothing changed: nothing is sent again.
    assert_quiet(&mut handle, Duration::from_secs(10)).await;

    // A link goes down: one apply of that object only, with every entry of the node.
    let mut reports = n1_reports();
    reports[1].state = LinkState::Down;
    reports[1].reason = Some("taken down through the Wires API".into());
    reporter.report(reports);
    let (path, body, send) = next_apply(&mut handle).await;
    send.send_response(ok(&body));
    assert!(path.ends_with("/lab1/topologies/ring/status"), "{path}");
    let mut want = ring_body();
    want["status"]["ready"] = 1.into();
    want["status"]["down"] = 1.into();
    want["status"]["links"][1]["state"] = "down".into();
    want["status"]["links"][1]["reason"] = "taken down through the Wires API".into();
    assert_eq!(body, want);
    assert_quiet(&mut handle, Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn backs_off_on_429_then_applies_again() {
    let ring = topology(RING);
    let (mut handle, _reporter, _desired) = start(&[&ring], n1_reports());

    let (_, first, send) = next_apply(&mut handle).await;
    let refused_at = tokio::time::Instant::now();
    send.send_response(error_response(429));

    let (_, second, send) = next_apply(&mut handle).await;
    assert!(
        refused_at.elapsed() >= Duration::from_secs(1),
        "{:?}",
        refused_at.elapsed()
    );
    assert_eq!(first, second);
    assert_eq!(second, ring_body());
    send.send_response(error_response(503));

    // The pause doubles.
    let (_, third, send) = next_apply(&mut handle).await;
    assert!(
        refused_at.elapsed() >= Duration::from_secs(3),
        "{:?}",
        refused_at.elapsed()
    );
    assert_eq!(third, ring_body());
    send.send_response(ok(&third));
    assert_quiet(&mut handle, Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_written_before_the_first_report_and_sync() {
    let ring = topology(RING);
    let (store, mut cache) = reflector::store::<Topology>();
    cache.apply_watcher_event(&watcher::Event::Apply(ring.clone()));
    let (desired_tx, desired_rx) = watch::channel(Desired::default());
    let (client, mut handle) = fake_api::client();
    let (writer, reporter) = StatusWriter::new(client, "n1", store, desired_rx);
    tokio::spawn(writer.run());
    assert_quiet(&mut handle, Duration::from_secs(5)).await;
    reporter.report(n1_reports());
    assert_quiet(&mut handle, Duration::from_secs(5)).await;
    desired_tx.send_replace(desired(&[&ring], &placement()));
    let (_, body, send) = next_apply(&mut handle).await;
    send.send_response(ok(&body));
    assert_eq!(body, ring_body());
    drop(cache);
}

#[test]
fn counts_take_other_agents_entries_and_rejected_links() {
    let mut ring = topology(RING);
    // n2 already reported its link as ready.
    ring.status = Some(TopologyStatus {
        links: vec![LinkStatus {
            name: "r2:eth2--r3:eth1".into(),
            state: LinkState::Ready,
            ..LinkStatus::default()
        }],
        ..TopologyStatus::default()
    });
    let objects = [Arc::new(ring.clone())];
    let d = desired(&[&ring], &placement());
    let got = intents("n1", "ovswire-agent-n1", &n1_reports(), &d, &objects);
    assert_eq!(got.len(), 1);
    let s = &got[0].status;
    assert_eq!((s.total, s.ready, s.pending), (Some(3), Some(3), Some(0)));

    // n2 writes its entry only: no counts, it does not run r1.
    let got = intents(
        "n2",
        "ovswire-agent-n2",
        &[report("lab1", "r2:eth2--r3:eth1", LinkState::Ready)],
        &d,
        &objects,
    );
    let s = &got[0].status;
    assert_eq!(s.total, None);
    assert_eq!(s.links.len(), 1);
    assert_eq!(s.links[0].node_a.as_deref(), Some("n2"));
    assert_eq!(s.links[0].node_b.as_deref(), Some("n1"));
}

#[test]
fn the_owner_marks_links_of_unscheduled_pods_pending() {
    let ring = topology(RING);
    let objects = [Arc::new(ring.clone())];
    let d = desired(&[&ring], &[("lab1", "r3", "n1")]);
    let got = intents("n1", "ovswire-agent-n1", &[], &d, &objects);
    let links: Vec<_> = got[0]
        .status
        .links
        .iter()
        .map(|l| (l.name.as_str(), l.state, l.reason.as_deref()))
        .collect();
    assert_eq!(
        links,
        [(
            "r1:eth1--r2:eth1",
            LinkState::Pending,
            Some("waiting for pods r1 and r2 to be scheduled")
        )]
    );
    assert_eq!(got[0].status.pending, Some(3));
}

#[test]
fn a_node_with_nothing_left_clears_what_it_wrote() {
    let mut ring = topology(RING);
    ring.metadata.managed_fields = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
            manager: Some("ovswire-agent-n9".into()),
            subresource: Some("status".into()),
            operation: Some("Apply".into()),
            ..Default::default()
        },
    ]);
    let objects = [Arc::new(ring.clone())];
    let d = desired(&[&ring], &placement());
    let got = intents("n9", "ovswire-agent-n9", &[], &d, &objects);
    assert_eq!(got.len(), 1);
    assert!(got[0].owns_fields);
    assert_eq!(got[0].status, TopologyStatus::default());
    assert_eq!(
        apply_body(&got[0])["status"],
        json!({}),
        "an empty apply removes the node's fields"
    );
    // A node with no part in the lab and nothing written has nothing to do.
    assert!(intents("n8", "ovswire-agent-n8", &[], &d, &objects).is_empty());
}

#[test]
fn field_managers_fit_the_api_limit() {
    assert_eq!(field_manager("n1"), "ovswire-agent-n1");
    let long = "n".repeat(253);
    let m = field_manager(&long);
    assert_eq!(m.len(), 128);
    assert_ne!(m, field_manager(&"n".repeat(252)));
}
