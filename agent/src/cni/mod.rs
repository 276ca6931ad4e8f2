//! The agent's side of CNI: requests forwarded by `ovswire-cni`, answered per the CNI spec.
//!
//! The plugin hands over each invocation as the runtime made it (`CNI_*` variables and the
//! network configuration bytes, on the RPC that names the command); [`CniServer`] validates
//! it, negotiates the spec version, asks the node's [`Attacher`] to do the work and returns the
//! result JSON or a CNI error. The commands, versions, codes and the error type are
//! `ovswire_cni::spec`'s. `crate::api::cni` serves it over gRPC:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn serve<A: ovswire_core::attach::Attacher>(attacher: Arc<A>) {
//! use ovswire_proto::v1::cni_server;
//! let service = cni_server::CniServer::new(ovswire_agent::cni::CniServer::new(attacher, false));
//! # let _ = service;
//! # }
//! ```
//!
//! Error codes: the spec's 1 (version), 2 (unsupported field), 3 (no such netns), 4 (bad
//! `CNI_*` variable), 6 (not JSON), 7 (invalid configuration), 11 (agent not ready) and 50
//! (STATUS: not ready), and ovswire's 100 (the node failed: netlink or OVS) and 101 (CHECK
//! found the interface missing or changed); VERSION, which the plugin answers itself, is a 4.
//! `docs/cni.md` describes each command.

mod config;
mod error;
mod result;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ovswire_cni::spec::{CniError, Code, Command};
use ovswire_proto::v1 as proto;
use serde_json::Value;
use tracing::info;

pub use config::{NetConf, PodIdentity};
pub use error::from_attach;
pub use result::{add_result, mac_string};

use crate::netdev::PodLink;
use config::{check_cni_ifname, check_container_id, check_netns};
use error::Result;
use ovswire_core::attach::{AttachRequest, Attacher};
use ovswire_core::model::EndpointKey;
use result::find_sandbox_interface;

/// What ADD and CHECK learn from the kernel about a pod: whether its namespace is one, and its
/// interface as the kernel shows it.
pub trait Sandbox: Send + Sync + 'static {
    /// Whether `netns` can be the network namespace of pod `pod` (see
    /// [`ovswire_netns::check_pod_netns`]); the CNI error saying why not, otherwise.
    fn check_netns(
        &self,
        netns: &Path,
        pod: &str,
    ) -> impl Future<Output = Result<(), CniError>> + Send;

    /// Interface `ifname` in the namespace at `netns`; `None` if it is not there.
    fn pod_link(
        &self,
        netns: &Path,
        ifname: &str,
    ) -> impl Future<Output = Result<Option<PodLink>, String>> + Send;
}

/// The pod name of a local lab's host endpoints (containerlab's `host:IFNAME`): its interfaces
/// go into the agent's own network namespace.
pub const HOST_POD: &str = "host";

/// The real [`Sandbox`]: asks the kernel over netlink from inside the pod's namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Netlink {
    /// Whether pod [`HOST_POD`] is the agent's own namespace (a local lab's agent), rather than
    /// a pod like any other (a cluster node's agent, where no pod may be wired into the host).
    pub host_endpoints: bool,
}

impl Sandbox for Netlink {
    async fn check_netns(&self, netns: &Path, pod: &str) -> Result<(), CniError> {
        let path = netns.to_owned();
        let host = self.host_endpoints && pod == HOST_POD;
        let checked = tokio::task::spawn_blocking(move || {
            if host {
                ovswire_netns::check_own_netns(&path)
            } else {
                ovswire_netns::check_pod_netns(&path)
            }
        })
        .await
        .map_err(|e| {
            CniError::new(
                Code::Internal,
                format!("checking CNI_NETNS {} failed: {e}", netns.display()),
                "see the ovswire-agent log on this node",
            )
        })?;
        checked.map_err(|e| match e {
            ovswire_netns::Error::NotPodNamespace { .. } => CniError::new(
                Code::InvalidEnv,
                format!("CNI_NETNS: {e}"),
                "the runtime must set CNI_NETNS to the pod's own network namespace, like \
                 /var/run/netns/<name> or /proc/<pid>/ns/net",
            ),
            ovswire_netns::Error::Open { .. } => CniError::new(
                Code::UnknownContainer,
                format!("CNI_NETNS: {e}"),
                "the pod's network namespace is gone; the runtime needs no cleanup",
            ),
            e => CniError::new(
                Code::Internal,
                format!("CNI_NETNS: {e}"),
                "see the ovswire-agent log on this node",
            ),
        })
    }

    async fn pod_link(&self, netns: &Path, ifname: &str) -> Result<Option<PodLink>, String> {
        crate::netdev::pod_link(netns, ifname)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The agent's CNI service: CNI requests in, results or CNI errors out. `crate::api::cni`
/// serves it as the `ovswire.v1.Cni` gRPC service.
pub struct CniServer<A, S = Netlink> {
    inner: Arc<Inner<A, S>>,
}

struct Inner<A, S> {
    attacher: Arc<A>,
    sandbox: S,
}

// By hand: a derive would ask for `A: Clone` and `S: Clone`, and only the `Arc` is cloned.
impl<A, S> Clone for CniServer<A, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A, S> fmt::Debug for CniServer<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CniServer").finish_non_exhaustive()
    }
}

impl<A: Attacher> CniServer<A> {
    /// A service that attaches pods through `attacher` and inspects them over netlink; with
    /// `host_endpoints`, pod [`HOST_POD`]'s interfaces go into the agent's own namespace.
    pub fn new(attacher: Arc<A>, host_endpoints: bool) -> Self {
        Self::with_sandbox(attacher, Netlink { host_endpoints })
    }
}

impl<A: Attacher, S: Sandbox> CniServer<A, S> {
    /// A service that inspects pods through `sandbox` (tests pass a fake one).
    pub fn with_sandbox(attacher: Arc<A>, sandbox: S) -> Self {
        Self {
            inner: Arc::new(Inner { attacher, sandbox }),
        }
    }

    /// Answers one CNI request for `command`: the result JSON to print (empty for the commands
    /// that have none) or the CNI error.
    ///
    /// Dropping the future midway can leave a half-made interface behind; the gRPC service
    /// (`crate::api::cni`) therefore runs each request on a task of its own.
    pub async fn answer(&self, command: Command, req: &proto::CniRequest) -> Result<Vec<u8>> {
        self.inner.dispatch(command, req).await
    }
}

impl<A: Attacher, S: Sandbox> Inner<A, S> {
    async fn dispatch(&self, command: Command, req: &proto::CniRequest) -> Result<Vec<u8>> {
        let conf = NetConf::parse(&req.network_config, command)?;
        match command {
            Command::Add => self.run_add(&conf, req).await,
            Command::Del => self.run_del(req).await,
            Command::Check => self.run_check(&conf, req).await,
            Command::Status => self.run_status().await,
            Command::Gc => self.run_gc(&conf).await,
            Command::Version => Err(CniError::new(
                Code::InvalidEnv,
                "VERSION is not an agent request",
                "the ovswire-cni plugin answers VERSION itself; send the agent ADD, DEL, CHECK, \
                 STATUS or GC",
            )),
        }
    }

    async fn run_add(&self, conf: &NetConf, req: &proto::CniRequest) -> Result<Vec<u8>> {
        check_container_id(&req.container_id)?;
        check_cni_ifname(&req.ifname)?;
        check_netns(&req.netns)?;
        conf.check_supported()?;
        let pod = PodIdentity::resolve(&req.args, &conf.cni_args)?;
        self.check_sandbox(&req.netns, &pod.name).await?;
        let key = EndpointKey::new(&pod.namespace, &pod.name, &req.ifname).map_err(|e| {
            CniError::new(
                Code::InvalidEnv,
                e.to_string(),
                "the pod's namespace, name and interface must be valid names",
            )
        })?;
        let what = format!("ADD {}/{key} (container {})", key.lab, req.container_id);
        let request = AttachRequest {
            container_id: req.container_id.clone(),
            netns: PathBuf::from(&req.netns),
            key,
            mtu: conf.mtu,
            network: conf.name.clone(),
        };
        let attachment = self
            .attacher
            .attach(request)
            .await
            .map_err(|e| from_attach(&what, e))?;
        let result = add_result(conf.version, &attachment, conf.prev_result.as_ref());
        Ok(result.to_string().into_bytes())
    }

    /// Refuses a `CNI_NETNS` that is not pod `pod`'s network namespace, before anything is
    /// made.
    async fn check_sandbox(&self, netns: &str, pod: &str) -> Result<()> {
        self.sandbox.check_netns(Path::new(netns), pod).await
    }

    async fn run_del(&self, req: &proto::CniRequest) -> Result<Vec<u8>> {
        check_container_id(&req.container_id)?;
        check_cni_ifname(&req.ifname)?;
        let what = format!("DEL {} (container {})", req.ifname, req.container_id);
        self.attacher
            .detach(&req.container_id, &req.ifname)
            .await
            .map_err(|e| from_attach(&what, e))?;
        Ok(Vec::new())
    }

    async fn run_check(&self, conf: &NetConf, req: &proto::CniRequest) -> Result<Vec<u8>> {
        check_container_id(&req.container_id)?;
        check_cni_ifname(&req.ifname)?;
        check_netns(&req.netns)?;
        let pod = PodIdentity::resolve(&req.args, &conf.cni_args)
            .map(|p| p.name)
            .unwrap_or_default();
        self.check_sandbox(&req.netns, &pod).await?;
        let (id, ifname, netns) = (&req.container_id, &req.ifname, &req.netns);
        let failed = |msg: String| {
            CniError::new(
                Code::CheckFailed,
                msg,
                "the pod's ovswire interface is not as ADD left it; delete and recreate the pod",
            )
        };
        let prev = conf.prev_result.as_ref().ok_or_else(|| {
            CniError::new(
                Code::InvalidConfig,
                "CHECK needs prevResult, the result of the ADD",
                "the runtime must pass the cached ADD result as prevResult",
            )
        })?;
        let record = self.attacher.attachment(id, ifname).await.ok_or_else(|| {
            failed(format!(
                "the agent has no attachment for container {id} interface {ifname} (never added \
                 on this node, or removed by DEL or GC)"
            ))
        })?;
        let listed = find_sandbox_interface(prev, ifname).ok_or_else(|| {
            failed(format!(
                "prevResult lists no interface {ifname} inside a sandbox"
            ))
        })?;
        let want_mac = mac_string(&record.pod_mac);
        if let Some(mac) = listed.get("mac").and_then(Value::as_str) {
            if !mac.eq_ignore_ascii_case(&want_mac) {
                return Err(failed(format!(
                    "prevResult gives {ifname} MAC {mac}, the agent recorded {want_mac}"
                )));
            }
        }
        let link = self
            .sandbox
            .pod_link(Path::new(netns), ifname)
            .await
            .map_err(|e| failed(format!("cannot inspect {ifname} in {netns}: {e}")))?
            .ok_or_else(|| failed(format!("interface {ifname} is missing from {netns}")))?;
        if link.mtu != record.mtu {
            return Err(failed(format!(
                "{ifname} has MTU {}, the agent recorded {}",
                link.mtu, record.mtu
            )));
        }
        if link.mac != record.pod_mac {
            return Err(failed(format!(
                "{ifname} has MAC {}, the agent recorded {want_mac}",
                mac_string(&link.mac)
            )));
        }
        if link.tx_checksum {
            return Err(failed(format!(
                "{ifname} has TX checksum offload on, so TCP across the wire would fail"
            )));
        }
        Ok(Vec::new())
    }

    async fn run_status(&self) -> Result<Vec<u8>> {
        self.attacher.ready().await.map_err(|why| {
            CniError::new(
                Code::Unavailable,
                format!("the ovswire agent cannot take ADDs: {why}"),
                "wait for the agent to connect to Open vSwitch; see the ovswire-agent log",
            )
        })?;
        Ok(Vec::new())
    }

    async fn run_gc(&self, conf: &NetConf) -> Result<Vec<u8>> {
        let keep = conf.valid_attachments()?;
        let mut failures = Vec::new();
        let mut stale = 0;
        // Only this network's: the runtime lists the valid attachments of this network alone.
        for (id, ifname) in self.attacher.attachments(&conf.name).await {
            if keep.contains(&(id.clone(), ifname.clone())) {
                continue;
            }
            stale += 1;
            if let Err(e) = self.attacher.detach(&id, &ifname).await {
                failures.push(format!("container {id} interface {ifname}: {e}"));
            }
        }
        if failures.is_empty() {
            info!(removed = stale, kept = keep.len(), "CNI GC done");
            return Ok(Vec::new());
        }
        Err(CniError::new(
            Code::Internal,
            format!(
                "GC could not remove {} of {stale} stale attachments",
                failures.len()
            ),
            failures.join("; "),
        ))
    }
}

#[cfg(test)]
mod tests;
