//! The CNI logic against an in-memory [`Attacher`] and [`Sandbox`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use ovswire_cni::spec::Version;
use ovswire_proto::v1::cni_server::Cni;
use serde_json::json;

use super::*;
use ovswire_core::attach::{AttachError, Attachment};

#[derive(Debug, Default)]
struct Fake {
    records: Mutex<BTreeMap<(String, String), Attachment>>,
    links: Mutex<BTreeMap<(PathBuf, String), PodLink>>,
    requests: Mutex<Vec<AttachRequest>>,
    not_ready: Mutex<Option<String>>,
    attach_error: Mutex<Option<AttachError>>,
    detach_error: Mutex<Option<AttachError>>,
    attach_delay: Mutex<Option<Duration>>,
}

impl Attacher for Fake {
    async fn attach(&self, req: AttachRequest) -> Result<Attachment, AttachError> {
        let delay = *self.attach_delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        self.requests.lock().unwrap().push(req.clone());
        if let Some(e) = self.attach_error.lock().unwrap().clone() {
            return Err(e);
        }
        let id = (req.container_id.clone(), req.key.ifname.clone());
        let mut records = self.records.lock().unwrap();
        if let Some(a) = records.get(&id) {
            return Ok(a.clone());
        }
        let n = records.len() as u8;
        let a = Attachment {
            key: req.key.clone(),
            container_id: req.container_id.clone(),
            netns: req.netns.clone(),
            host_ifname: format!("ow{n}"),
            host_mac: [0x02, 0, 0, 0, n, 1],
            pod_mac: [0x02, 0, 0, 0, n, 2],
            mtu: req.mtu.unwrap_or(9500),
            network: req.network.clone(),
        };
        let link = PodLink {
            mtu: a.mtu,
            mac: a.pod_mac,
            tx_checksum: false,
        };
        self.links
            .lock()
            .unwrap()
            .insert((req.netns, req.key.ifname), link);
        records.insert(id, a.clone());
        Ok(a)
    }

    async fn detach(&self, container_id: &str, ifname: &str) -> Result<(), AttachError> {
        if let Some(e) = self.detach_error.lock().unwrap().clone() {
            return Err(e);
        }
        let id = (container_id.to_owned(), ifname.to_owned());
        if let Some(a) = self.records.lock().unwrap().remove(&id) {
            self.links.lock().unwrap().remove(&(a.netns, a.key.ifname));
        }
        Ok(())
    }

    async fn attachment(&self, container_id: &str, ifname: &str) -> Option<Attachment> {
        let id = (container_id.to_owned(), ifname.to_owned());
        self.records.lock().unwrap().get(&id).cloned()
    }

    async fn attachments(&self, network: &str) -> Vec<(String, String)> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .filter(|(_, a)| a.network == network)
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn ready(&self) -> Result<(), String> {
        match self.not_ready.lock().unwrap().clone() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct FakeLinks(Arc<Fake>);

/// The path the fake kernel says is not a pod's namespace.
const NOT_A_POD_NETNS: &str = "/proc/self/ns/net";

impl Sandbox for FakeLinks {
    async fn check_netns(&self, netns: &Path, _pod: &str) -> Result<(), CniError> {
        if netns == Path::new(NOT_A_POD_NETNS) {
            return Err(CniError::new(
                Code::InvalidEnv,
                "the agent's own",
                "pick another",
            ));
        }
        Ok(())
    }

    async fn pod_link(&self, netns: &Path, ifname: &str) -> Result<Option<PodLink>, String> {
        let links = self.0.links.lock().unwrap();
        Ok(links.get(&(netns.to_owned(), ifname.to_owned())).cloned())
    }
}

fn server() -> (Arc<Fake>, CniServer<Fake, FakeLinks>) {
    let fake = Arc::new(Fake::default());
    (
        fake.clone(),
        CniServer::with_sandbox(fake.clone(), FakeLinks(fake)),
    )
}

const POD: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1;K8S_POD_UID=u1";

fn request(conf: Value) -> proto::CniRequest {
    proto::CniRequest {
        container_id: "c1".into(),
        netns: "/run/netns/r1".into(),
        ifname: "eth1".into(),
        args: POD.into(),
        path: "/opt/cni/bin".into(),
        network_config: conf.to_string().into_bytes(),
    }
}

fn conf(version: &str) -> Value {
    json!({"cniVersion": version, "name": "ovswire", "type": "ovswire-cni"})
}

async fn ok(s: &CniServer<Fake, FakeLinks>, command: Command, req: &proto::CniRequest) -> Value {
    let result = s
        .answer(command, req)
        .await
        .unwrap_or_else(|e| panic!("{command} failed: {e}"));
    if result.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&result).unwrap()
    }
}

async fn code(s: &CniServer<Fake, FakeLinks>, command: Command, req: &proto::CniRequest) -> u32 {
    let err = s
        .answer(command, req)
        .await
        .expect_err(&format!("{command} should fail"));
    assert!(!err.msg.is_empty() && !err.details.is_empty(), "{err:?}");
    err.code.into()
}

#[tokio::test]
async fn add_returns_the_result_in_every_version() {
    for v in Version::ALL {
        let (fake, s) = server();
        let mut c = conf(v.as_str());
        c["mtu"] = json!(1500);
        let r = ok(&s, Command::Add, &request(c)).await;
        assert_eq!(r["cniVersion"], v.as_str());
        let ifs = r["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[0]["name"], "ow0");
        assert_eq!(ifs[0].get("sandbox"), None);
        assert_eq!(ifs[1]["name"], "eth1");
        assert_eq!(ifs[1]["sandbox"], "/run/netns/r1");
        assert_eq!(ifs[1]["mac"], "02:00:00:00:00:02");
        assert_eq!(ifs[1].get("mtu").is_some(), v >= Version::V1_1_0);
        assert_eq!(r.get("ips"), None, "ovswire assigns no addresses");
        let sent = fake.requests.lock().unwrap()[0].clone();
        assert_eq!(sent.key, EndpointKey::new("lab", "r1", "eth1").unwrap());
        assert_eq!(sent.mtu, Some(1500));
        assert_eq!(sent.netns, PathBuf::from("/run/netns/r1"));
    }
}

#[tokio::test]
async fn repeated_add_returns_the_same_result() {
    let (_, s) = server();
    let req = request(conf("1.0.0"));
    let first = ok(&s, Command::Add, &req).await;
    assert_eq!(ok(&s, Command::Add, &req).await, first);
}

#[tokio::test]
async fn chained_add_keeps_the_previous_result() {
    let (_, s) = server();
    let mut c = conf("0.4.0");
    c["prevResult"] = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "lo", "sandbox": "/run/netns/r1"}],
        "ips": [{"version": "4", "address": "192.0.2.1/24", "interface": 0}],
    });
    let r = ok(&s, Command::Add, &request(c.clone())).await;
    assert_eq!(r["ips"], c["prevResult"]["ips"]);
    let names: Vec<_> = r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["name"])
        .collect();
    assert_eq!(names, ["lo", "ow0", "eth1"]);
}

#[tokio::test]
async fn bad_add_requests_get_their_code() {
    let (fake, s) = server();
    let base = request(conf("1.1.0"));
    let cases: Vec<(&str, u32, proto::CniRequest)> = vec![
        (
            "malformed JSON",
            6,
            proto::CniRequest {
                network_config: b"{".to_vec(),
                ..base.clone()
            },
        ),
        ("unknown version", 1, request(conf("2.0.0"))),
        (
            "no netns",
            4,
            proto::CniRequest {
                netns: String::new(),
                ..base.clone()
            },
        ),
        (
            "relative netns",
            4,
            proto::CniRequest {
                netns: "r1".into(),
                ..base.clone()
            },
        ),
        (
            "the agent's own netns",
            4,
            proto::CniRequest {
                netns: NOT_A_POD_NETNS.into(),
                ..base.clone()
            },
        ),
        (
            "ifname with %",
            4,
            proto::CniRequest {
                ifname: "eth%d".into(),
                ..base.clone()
            },
        ),
        (
            "long ifname",
            4,
            proto::CniRequest {
                ifname: "eth0123456789012".into(),
                ..base.clone()
            },
        ),
        (
            "no container",
            4,
            proto::CniRequest {
                container_id: String::new(),
                ..base.clone()
            },
        ),
        (
            "no pod name",
            4,
            proto::CniRequest {
                args: "K8S_POD_NAMESPACE=lab".into(),
                ..base.clone()
            },
        ),
        (
            "bad pod name",
            4,
            proto::CniRequest {
                args: "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=R1!".into(),
                ..base.clone()
            },
        ),
        (
            "ipam",
            2,
            request(json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "x"}})),
        ),
    ];
    for (what, want, req) in cases {
        assert_eq!(code(&s, Command::Add, &req).await, want, "{what}");
    }
    let version = request(conf("1.1.0"));
    assert_eq!(
        code(&s, Command::Version, &version).await,
        4,
        "the plugin answers VERSION"
    );
    assert!(
        fake.requests.lock().unwrap().is_empty(),
        "nothing reached the node"
    );

    for (err, want) in [
        (AttachError::Netns("no such file".into()), 3),
        (AttachError::Exists("eth1 exists in the pod".into()), 7),
        (AttachError::InvalidRequest("bad".into()), 7),
        (AttachError::NotReady("starting".into()), 11),
        (AttachError::Internal("netlink said no".into()), 100),
    ] {
        *fake.attach_error.lock().unwrap() = Some(err.clone());
        assert_eq!(code(&s, Command::Add, &base).await, want, "{err:?}");
        let resp = s.answer(Command::Add, &base).await;
        assert!(
            resp.unwrap_err().msg.contains(&err.to_string()),
            "the node's reason is kept"
        );
    }
}

#[tokio::test]
async fn del_is_idempotent() {
    let (fake, s) = server();
    ok(&s, Command::Add, &request(conf("0.4.0"))).await;
    let del = request(conf("0.4.0"));
    assert_eq!(ok(&s, Command::Del, &del).await, Value::Null);
    assert!(fake.records.lock().unwrap().is_empty());
    ok(&s, Command::Del, &del).await;
    let gone_netns = proto::CniRequest {
        netns: String::new(),
        args: String::new(),
        ..del.clone()
    };
    ok(&s, Command::Del, &gone_netns).await;
    let no_id = proto::CniRequest {
        container_id: String::new(),
        ..del.clone()
    };
    assert_eq!(code(&s, Command::Del, &no_id).await, 4);
    *fake.detach_error.lock().unwrap() = Some(AttachError::NotReady("starting".into()));
    assert_eq!(code(&s, Command::Del, &del).await, 11);
}

#[tokio::test]
async fn check_compares_the_pod_with_the_record() {
    let (fake, s) = server();
    let added = ok(&s, Command::Add, &request(conf("1.0.0"))).await;
    let mut c = conf("1.0.0");
    c["prevResult"] = added.clone();
    let check = request(c.clone());
    assert_eq!(ok(&s, Command::Check, &check).await, Value::Null);

    let key = (PathBuf::from("/run/netns/r1"), "eth1".to_owned());
    let good = fake.links.lock().unwrap()[&key].clone();
    for (what, bad) in [
        (
            "mtu",
            PodLink {
                mtu: 1500,
                ..good.clone()
            },
        ),
        (
            "mac",
            PodLink {
                mac: [2, 9, 9, 9, 9, 9],
                ..good.clone()
            },
        ),
        (
            "checksum",
            PodLink {
                tx_checksum: true,
                ..good.clone()
            },
        ),
    ] {
        fake.links.lock().unwrap().insert(key.clone(), bad);
        assert_eq!(code(&s, Command::Check, &check).await, 101, "{what}");
    }
    fake.links.lock().unwrap().remove(&key);
    assert_eq!(
        code(&s, Command::Check, &check).await,
        101,
        "interface gone"
    );
    fake.links.lock().unwrap().insert(key, good);

    let mut wrong_prev = c.clone();
    wrong_prev["prevResult"]["interfaces"][1]["mac"] = json!("02:00:00:00:00:99");
    assert_eq!(code(&s, Command::Check, &request(wrong_prev)).await, 101);
    let mut no_pod_if = c.clone();
    no_pod_if["prevResult"]["interfaces"] = json!([]);
    assert_eq!(code(&s, Command::Check, &request(no_pod_if)).await, 101);
    assert_eq!(code(&s, Command::Check, &request(conf("1.0.0"))).await, 7);
    let mut old = c.clone();
    old["cniVersion"] = json!("0.3.1");
    assert_eq!(code(&s, Command::Check, &request(old)).await, 1);

    ok(&s, Command::Del, &request(conf("1.0.0"))).await;
    assert_eq!(code(&s, Command::Check, &check).await, 101, "no record");
}

#[tokio::test]
async fn status_reports_readiness() {
    let (fake, s) = server();
    let status = proto::CniRequest {
        container_id: String::new(),
        netns: String::new(),
        ifname: String::new(),
        args: String::new(),
        ..request(conf("1.1.0"))
    };
    ok(&s, Command::Status, &status).await;
    *fake.not_ready.lock().unwrap() = Some("OVSDB connection lost".into());
    assert_eq!(code(&s, Command::Status, &status).await, 50);
    let old = request(conf("1.0.0"));
    assert_eq!(code(&s, Command::Status, &old).await, 1);
}

#[tokio::test]
async fn gc_removes_what_is_not_listed() {
    let (fake, s) = server();
    for id in ["c1", "c2", "c3"] {
        let req = proto::CniRequest {
            container_id: id.into(),
            ..request(conf("1.1.0"))
        };
        ok(&s, Command::Add, &req).await;
    }
    // An attachment of another network, which this network's GC does not list.
    let mut other = conf("1.1.0");
    other["name"] = json!("other-net");
    let req = proto::CniRequest {
        container_id: "c7".into(),
        ..request(other)
    };
    ok(&s, Command::Add, &req).await;
    let mut c = conf("1.1.0");
    c["cni.dev/valid-attachments"] = json!([
        {"containerID": "c2", "ifname": "eth1"},
        {"containerID": "c9", "ifname": "eth1"},
    ]);
    let gc = proto::CniRequest {
        container_id: String::new(),
        ..request(c.clone())
    };
    ok(&s, Command::Gc, &gc).await;
    let left: Vec<_> = fake.records.lock().unwrap().keys().cloned().collect();
    assert_eq!(
        left,
        [
            ("c2".to_owned(), "eth1".to_owned()),
            ("c7".to_owned(), "eth1".to_owned())
        ]
    );

    c["cni.dev/valid-attachments"] = json!([]);
    *fake.detach_error.lock().unwrap() = Some(AttachError::Internal("OVSDB refused".into()));
    let err = s.answer(Command::Gc, &request(c)).await.unwrap_err();
    assert_eq!(err.code, ovswire_cni::spec::Code::Internal);
    assert!(
        err.details.contains("c2") && err.details.contains("OVSDB refused"),
        "{err:?}"
    );
    assert!(!err.details.contains("c7"), "{err:?}");
    assert_eq!(code(&s, Command::Gc, &request(conf("1.1.0"))).await, 7);
}

#[tokio::test]
async fn grpc_methods_serve_their_command() {
    let (_, s) = server();
    let add = s
        .add(tonic::Request::new(request(conf("1.1.0"))))
        .await
        .unwrap();
    assert!(add.get_ref().error.is_none());
    let mut c = conf("1.1.0");
    c["prevResult"] = serde_json::from_slice(&add.get_ref().result).unwrap();
    let check = s.check(tonic::Request::new(request(c))).await.unwrap();
    assert!(check.get_ref().error.is_none());
    let status = s.status(tonic::Request::new(request(conf("1.1.0")))).await;
    assert!(status.unwrap().get_ref().error.is_none());
    let mut c = conf("1.1.0");
    c["cni.dev/valid-attachments"] = json!([]);
    let gc = s.gc(tonic::Request::new(request(c))).await.unwrap();
    assert!(gc.get_ref().error.is_none());
    let del = s
        .del(tonic::Request::new(request(conf("1.1.0"))))
        .await
        .unwrap();
    assert!(del.get_ref().error.is_none());
}

#[tokio::test]
async fn an_add_whose_caller_gave_up_still_completes() {
    let (fake, s) = server();
    *fake.attach_delay.lock().unwrap() = Some(Duration::from_millis(50));
    let add = s.add(tonic::Request::new(request(conf("1.1.0"))));
    // The plugin times out: its call is dropped while the node is still attaching.
    assert!(
        tokio::time::timeout(Duration::from_millis(5), add)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.records.lock().unwrap().len(),
        1,
        "the ADD ran to the end"
    );
}

#[tokio::test]
async fn the_deployed_examples_are_accepted() {
    let nad: serde_yaml_ng::Value = serde_yaml_ng::from_str(include_str!(
        "../../../deploy/nad/network-attachment-definition.yaml"
    ))
    .unwrap();
    let config = nad["spec"]["config"].as_str().unwrap();
    let (fake, s) = server();
    let req = proto::CniRequest {
        network_config: config.as_bytes().to_vec(),
        ..request(Value::Null)
    };
    let r = ok(&s, Command::Add, &req).await;
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(fake.requests.lock().unwrap()[0].mtu, Some(9500));

    for (file, text) in [
        (
            "short",
            include_str!("../../../deploy/nad/pod-annotation-short.yaml"),
        ),
        (
            "json",
            include_str!("../../../deploy/nad/pod-annotation-json.yaml"),
        ),
    ] {
        let pod: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
        let networks = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
            .as_str()
            .unwrap();
        let ifnames: Vec<String> = match serde_json::from_str::<Value>(networks) {
            Ok(list) => list
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["interface"].as_str().unwrap().to_owned())
                .collect(),
            Err(_) => networks
                .split(',')
                .map(|n| n.split_once('@').unwrap().1.to_owned())
                .collect(),
        };
        assert_eq!(ifnames, ["eth1", "eth2", "eth3"], "{file}");
    }
}
