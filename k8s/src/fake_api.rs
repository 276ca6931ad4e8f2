//! A scripted Kubernetes API for tests: `tower_test`'s mock service, answering the LIST and
//! WATCH requests of the source's watchers from recorded objects and events.

use std::collections::{HashMap, VecDeque};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle, SendResponse};

pub(crate) type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// A client whose every request arrives at the returned handle.
pub(crate) fn client() -> (Client, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// What a LIST of a collection answers.
pub(crate) enum Listing {
    /// These objects, at resourceVersion 1.
    Items(Vec<Value>),
    /// This error status (404 for a CRD that is not installed).
    Fails(u16),
}

/// Feeds watch events to the running fake API.
pub(crate) struct Watches {
    tx: mpsc::UnboundedSender<(String, Vec<Value>)>,
}

impl Watches {
    /// Sends `events` (`{"type": ..., "object": ...}`) on the watch of collection `path`: they
    /// answer the pending WATCH request, whose stream then ends and is resumed by the watcher.
    pub(crate) fn send(&self, path: &str, events: Vec<Value>) {
        self.tx.send((path.to_owned(), events)).unwrap();
    }
}

/// Serves `lists` (collection path → listing) and the watches on them until the test ends.
pub(crate) fn serve(mut handle: ApiHandle, lists: Vec<(&str, Listing)>) -> Watches {
    let lists: HashMap<String, Listing> =
        lists.into_iter().map(|(p, l)| (p.to_owned(), l)).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Vec<Value>)>();
    tokio::spawn(async move {
        let mut pending: HashMap<String, VecDeque<SendResponse<Response<Body>>>> = HashMap::new();
        let mut queued: HashMap<String, VecDeque<Vec<Value>>> = HashMap::new();
        loop {
            tokio::select! {
                request = handle.next_request() => {
                    let Some((request, send)) = request else { return };
                    let path = request.uri().path().to_owned();
                    let query = request.uri().query().unwrap_or_default().to_owned();
                    assert_eq!(request.method(), http::Method::GET, "unexpected {request:?}");
                    if query.contains("watch=true") {
                        match queued.get_mut(&path).and_then(VecDeque::pop_front) {
                            Some(events) => send.send_response(watch_response(&events)),
                            None => pending.entry(path).or_default().push_back(send),
                        }
                    } else {
                        let listing = lists
                            .get(&path)
                            .unwrap_or_else(|| panic!("no listing for {path}"));
                        send.send_response(list_response(listing));
                    }
                }
                command = rx.recv() => {
                    let Some((path, events)) = command else { return };
                    match pending.get_mut(&path).and_then(VecDeque::pop_front) {
                        Some(send) => send.send_response(watch_response(&events)),
                        None => queued.entry(path).or_default().push_back(events),
                    }
                }
            }
        }
    });
    Watches { tx }
}

fn list_response(listing: &Listing) -> Response<Body> {
    match listing {
        Listing::Items(items) => {
            let list = json!({
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            });
            Response::new(Body::from(serde_json::to_vec(&list).unwrap()))
        }
        Listing::Fails(code) => error_response(*code),
    }
}

/// An API error, as the API server writes it.
pub(crate) fn error_response(code: u16) -> Response<Body> {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": format!("scripted failure {code}"),
        "reason": "Scripted",
        "code": code,
    });
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .body(Body::from(serde_json::to_vec(&status).unwrap()))
        .unwrap()
}

fn watch_response(events: &[Value]) -> Response<Body> {
    let mut body = Vec::new();
    for e in events {
        serde_json::to_writer(&mut body, e).unwrap();
        body.push(b'\n');
    }
    Response::new(Body::from(body))
}

/// A watch event.
pub(crate) fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

/// A pod scheduled on `node`.
pub(crate) fn pod(namespace: &str, name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"nodeName": node, "containers": [{"name": "router", "image": "frr"}]},
        "status": {"phase": "Running", "podIP": "10.244.0.7"},
    })
}

/// A node with an InternalIP and, optionally, the underlay annotation.
pub(crate) fn node(name: &str, internal_ip: &str, underlay: Option<&str>) -> Value {
    let mut annotations = json!({"node.alpha.kubernetes.io/ttl": "0"});
    if let Some(u) = underlay {
        annotations[crate::UNDERLAY_ANNOTATION] = json!(u);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "resourceVersion": "1", "annotations": annotations},
        "status": {"addresses": [
            {"type": "InternalIP", "address": internal_ip},
            {"type": "Hostname", "address": name},
        ]},
    })
}

/// A YAML document as the JSON the API server sends.
pub(crate) fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

/// Every document of a YAML stream.
pub(crate) fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}
