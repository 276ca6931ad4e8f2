//! A node running the agent in-process against its private OVS, for wiring tests.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ovswire_agent::runtime::ovs::BridgeConfig;
use ovswire_agent::runtime::{Agent, Config};
use ovswire_core::attach::{AttachRequest, Attacher, Attachment};
use ovswire_core::model::{EndpointKey, LinkKey, LinkSpec};
use ovswire_core::plan::OperState;
use ovswire_core::topology::Topology;
use ovswire_ovsdb::vswitch::DatapathType;
use ovswire_testbed::{Node, Testbed};
use tokio::runtime::Runtime;

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A testbed node, a runtime whose threads live in the node's namespace, and an agent.
pub struct Lab {
    pub node: Node,
    pub rt: Runtime,
    pub agent: Option<Arc<Agent>>,
    pub links: BTreeMap<LinkKey, LinkSpec>,
    /// Start the agent with `--adopt-bridge`.
    pub adopt: bool,
}

impl Lab {
    /// A node with the links of `topology` (YAML); the agent is not started yet.
    pub fn new(name: &str, topology: &str) -> Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let node = Testbed::node(name)?;
        // Threads of a runtime built inside the namespace (and the threads they start) stay in it.
        let rt = node.netns().run(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        })??;
        let links = Topology::parse(topology, "test")?.links;
        Ok(Self {
            node,
            rt,
            agent: None,
            links,
            adopt: false,
        })
    }

    /// Runs a future on the node's runtime (never on the calling thread, which is outside).
    pub fn on<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        self.rt.block_on(self.rt.spawn(fut)).expect("task panicked")
    }

    /// Starts the agent and its reconcile loop.
    pub fn start(&mut self) -> Result<Arc<Agent>> {
        let db = format!("unix:{}", self.node.db_sock().display());
        let config = Config {
            bridge: BridgeConfig {
                name: "ovsbr0".into(),
                datapath_type: DatapathType::Netdev,
                datapath_id: 0x0f57_0000_0000_0001,
                rundir: self.node.rundir().to_owned(),
                adopt: self.adopt,
            },
            here: ovswire_core::peers::Here {
                node: "node".into(),
                ..Default::default()
            },
            peers: Default::default(),
            history: 1000,
        };
        let links = self.links.clone();
        let agent = self.on(async move {
            let db = ovswire_ovsdb::Client::connect(&db).await?;
            let (agent, events) = Agent::start(db, config, links).await?;
            tokio::spawn(agent.clone().run(events));
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(agent)
        })?;
        self.agent = Some(agent.clone());
        Ok(agent)
    }

    /// Stops the agent abruptly, as `kill -9` would: its tasks die, OVS keeps everything.
    pub fn crash(&mut self) {
        self.agent = None;
        let rt = std::mem::replace(
            &mut self.rt,
            self.node
                .netns()
                .run(|| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                })
                .expect("enter the node")
                .expect("build a runtime"),
        );
        rt.shutdown_background();
    }

    pub fn agent(&self) -> Arc<Agent> {
        self.agent.clone().expect("agent started")
    }

    /// Attaches `pod:ifname` of lab `lab` from the pod namespace `netns`.
    pub fn attach(
        &self,
        lab: &str,
        pod: &str,
        ifname: &str,
        container: &str,
        netns: &Path,
    ) -> Result<Attachment> {
        let req = AttachRequest {
            container_id: container.into(),
            netns: netns.to_owned(),
            key: EndpointKey::new(lab, pod, ifname)?,
            mtu: None,
            network: "ovswire".into(),
        };
        let agent = self.agent();
        Ok(self.on(async move { agent.attach(req).await })?)
    }

    pub fn detach(&self, container: &str, ifname: &str) -> Result {
        let agent = self.agent();
        let (c, i) = (container.to_owned(), ifname.to_owned());
        Ok(self.on(async move { agent.detach(&c, &i).await })?)
    }

    /// The status of the link whose display name (`lab/a--b`) is `name`.
    pub fn status(&self, name: &str) -> Option<OperState> {
        self.agent()
            .links()
            .into_iter()
            .find(|(l, _)| l.key.to_string() == name)
            .map(|(_, s)| s)
    }

    /// Waits until `cond` holds, failing with `what` after 20 s.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) -> Result {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for {what}").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Waits until the agent has applied everything asked of it so far.
    pub fn settle(&self) -> Result {
        let agent = self.agent();
        let ok = self.on(async move {
            let n = agent.kick();
            agent.wait_round(n, Duration::from_secs(30)).await
        });
        if ok {
            Ok(())
        } else {
            Err("the agent did not settle within 30 s".into())
        }
    }
}
