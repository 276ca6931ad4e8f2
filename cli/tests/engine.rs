//! The container engine client against the real engine (Podman's Docker-compatible service, or
//! Docker): images, networks, containers, commands inside them and events. Needs root, a running
//! engine and the test image (`scripts/build-image busybox`; scripts/test builds it).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use ovswire_cli::engine::{ContainerSpec, Engine, LAB_LABEL, NODE_LABEL};
use ovswire_cli::spec::Ipv4Net;

const IMAGE: &str = "localhost/ovswire/busybox:latest";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Removes what the test made, whatever happened.
struct Made {
    engine: Engine,
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        let rt = runtime();
        rt.block_on(async {
            for c in &self.containers {
                let _ = self.engine.remove(c).await;
            }
            for n in &self.networks {
                let _ = self.engine.remove_network(n).await;
            }
        });
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and a container engine; scripts/test runs it"
)]
fn the_engine_runs_containers_on_a_network_and_reports_their_events() {
    let rt = runtime();
    let engine = rt
        .block_on(Engine::connect(None))
        .expect("a running engine");
    let tag = format!("ovswire-t{}", std::process::id());
    let mut made = Made {
        engine: engine.clone(),
        containers: Vec::new(),
        networks: Vec::new(),
    };
    rt.block_on(async {
        let image = engine.image(IMAGE).await.unwrap();
        assert!(
            image.is_some_and(|i| i.cmd == ["/bin/sh"]),
            "{IMAGE} is missing: run scripts/build-image busybox"
        );
        assert_eq!(
            engine.image("localhost/ovswire/nope:1").await.unwrap(),
            None
        );
        let pulled = engine.pull("localhost/ovswire/nope:1").await;
        assert!(pulled.is_err(), "no registry serves it");

        // A network on a subnet nobody uses.
        let taken: Vec<Ipv4Net> = engine
            .networks()
            .await
            .unwrap()
            .into_iter()
            .flat_map(|n| n.subnets)
            .collect();
        let subnet = (0..=255u8)
            .map(|i| Ipv4Net::of(format!("172.29.{i}.0/24").parse().unwrap()))
            .find(|s| !taken.iter().any(|t| t.overlaps(*s)))
            .expect("a free subnet");
        let labels = BTreeMap::from([(LAB_LABEL.to_owned(), tag.clone())]);
        engine.create_network(&tag, subnet, &labels).await.unwrap();
        made.networks.push(tag.clone());
        let net = engine.networks().await.unwrap();
        let ours = net.iter().find(|n| n.name == tag).expect("the new network");
        assert_eq!(ours.subnets, [subnet]);
        assert_eq!(ours.labels[LAB_LABEL], tag);

        let mut events = Box::pin(engine.events(&tag, std::time::SystemTime::now()));
        let ip = subnet.hosts().next().unwrap();
        let spec = ContainerSpec {
            name: format!("{tag}-c1"),
            hostname: "c1".into(),
            image: IMAGE.into(),
            cmd: vec!["sleep".into(), "600".into()],
            env: vec!["GREETING=hello".into()],
            labels: BTreeMap::from([
                (LAB_LABEL.to_owned(), tag.clone()),
                (NODE_LABEL.to_owned(), "c1".to_owned()),
            ]),
            network: Some((tag.clone(), ip)),
            extra_hosts: vec![format!("peer:{}", subnet.gateway())],
            ..ContainerSpec::default()
        };
        let id = engine.create(&spec).await.unwrap();
        made.containers.push(id.clone());
        let created = engine.container(&id).await.unwrap().unwrap();
        assert!(!created.running() && created.netns.is_none());
        engine.start(&id).await.unwrap();
        let running = engine.container(&spec.name).await.unwrap().unwrap();
        assert!(running.running(), "{running:?}");
        assert!(running.netns.as_ref().is_some_and(|p| p.exists()));
        assert_eq!(running.labels[NODE_LABEL], "c1");

        let (code, out) = engine
            .exec_output(
                &id,
                &[
                    "sh".into(),
                    "-c".into(),
                    "echo $GREETING; ip -4 -o addr show eth0; grep peer /etc/hosts; exit 3".into(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("hello"), "{out}");
        assert!(out.contains(&format!("{ip}/24")), "{out}");
        assert!(out.contains(&subnet.gateway().to_string()), "{out}");

        let start = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(start.node, "c1", "{start:?}");

        engine.remove(&id).await.unwrap();
        assert_eq!(engine.container(&id).await.unwrap(), None);
        engine.remove(&id).await.expect("removing twice is fine");
        engine.remove_network(&tag).await.unwrap();
        engine
            .remove_network(&tag)
            .await
            .expect("removing twice is fine");
    });
}
