//! Pod interfaces: veth pairs made through netlink, with the pod end created directly inside the
//! pod's network namespace under its final name.

use std::path::{Path, PathBuf};

use ovswire_netns::ethtool;
use ovswire_netns::link::{self, Handle, IfaceState, VethEnd};

/// What went wrong with a pod interface.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// The pod's network namespace is not there.
    #[error("network namespace {path} cannot be opened: {source}")]
    Netns {
        /// The path given by the runtime.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An interface with that name already exists.
    #[error("interface {ifname} already exists{where_}")]
    Exists {
        /// The name.
        ifname: String,
        /// " in the pod" or " on the host".
        where_: &'static str,
    },
    /// A netlink request, ioctl or namespace switch failed.
    #[error("{what}: {source}")]
    Link {
        /// What was being done.
        what: String,
        /// Why.
        source: Box<ovswire_netns::Error>,
    },
}

type Result<T, E = NetdevError> = std::result::Result<T, E>;

/// Work inside pod namespaces (each job a thread of its own, with a runtime and a netlink
/// socket) that runs at once; more waits its turn. The kernel serializes link changes anyway,
/// and a burst of ADDs would otherwise hold a thread and its buffers per ADD in flight.
static POD_JOBS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// Runs `f` with a netlink handle inside the pod namespace `netns`, once [`POD_JOBS`] allows.
async fn in_pod<F, Fut>(netns: &Path, f: F) -> ovswire_netns::Result<Fut::Output>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future,
    Fut::Output: Send + 'static,
{
    // The semaphore is never closed.
    let _turn = POD_JOBS.acquire().await;
    ovswire_netns::spawn(netns.to_owned(), f).await
}

/// An error of `ovswire-netns` while doing `what`; a namespace that cannot be opened is the
/// runtime's problem (a wrong or stale path), everything else ours.
fn failed(what: impl Into<String>) -> impl FnOnce(ovswire_netns::Error) -> NetdevError {
    let what = what.into();
    move |e| match e {
        ovswire_netns::Error::Open { path, cause } => NetdevError::Netns {
            path,
            source: cause,
        },
        source => NetdevError::Link {
            what,
            source: Box::new(source),
        },
    }
}

/// A veth pair to create for a pod interface.
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    /// Host end name (15 characters at most).
    pub host: &'a str,
    /// Host end MAC.
    pub host_mac: [u8; 6],
    /// The pod's network namespace.
    pub netns: &'a Path,
    /// Pod end name (`CNI_IFNAME`).
    pub ifname: &'a str,
    /// Pod end MAC.
    pub pod_mac: [u8; 6],
    /// MTU of both ends.
    pub mtu: u32,
}

/// The pod end as the kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLink {
    /// MTU.
    pub mtu: u32,
    /// MAC.
    pub mac: [u8; 6],
    /// TX checksum offload is on (it must be off).
    pub tx_checksum: bool,
}

/// Netlink access in the agent's own (host) network namespace.
#[derive(Debug, Clone)]
pub struct Netdev {
    handle: Handle,
}

impl Netdev {
    /// Opens a netlink connection in the calling thread's namespace and spawns it on the
    /// current tokio runtime.
    pub fn new() -> Result<Self> {
        let handle = link::connect().map_err(failed("connect to netlink"))?;
        Ok(Self { handle })
    }

    /// Creates the pair: the host end stays down (the pod sees no carrier until its wire is
    /// complete), the pod end is up inside the pod, and TX checksum offload is off on both.
    /// Nothing is left behind on failure.
    pub async fn create_veth(&self, spec: &VethSpec<'_>) -> Result<()> {
        let host = VethEnd::new(spec.host).mac(spec.host_mac);
        let pod = VethEnd::new(spec.ifname)
            .netns(spec.netns)
            .mac(spec.pod_mac);
        if let Err(e) = link::add_veth(&self.handle, host, pod, Some(spec.mtu)).await {
            if e.errno() == Some(nix::errno::Errno::EEXIST as i32) {
                let (ifname, where_) = if self.exists(spec.host).await? {
                    (spec.host, " on the host")
                } else {
                    (spec.ifname, " in the pod")
                };
                return Err(NetdevError::Exists {
                    ifname: ifname.to_owned(),
                    where_,
                });
            }
            return Err(failed(format!("create veth {}/{}", spec.host, spec.ifname))(e));
        }
        let tuned = self.tune(spec).await;
        if tuned.is_err() {
            let _ = self.delete(spec.host).await;
        }
        tuned
    }

    /// Turns TX checksum offload off on both ends and sets the pod end up (the kernel refuses
    /// to create the peer up in another namespace, so that happens from inside the pod).
    ///
    /// The host end gets no IPv6 addresses (addrgenmode none), before it first comes up:
    /// thousands of link-local addresses and their routes make ovs-vswitchd, which re-reads the
    /// routing table on every change for its tunnels, stall for seconds. A host end is the
    /// inside of a cable, not an interface of the host.
    async fn tune(&self, spec: &VethSpec<'_>) -> Result<()> {
        ethtool::disable_tx_checksum(spec.host).map_err(failed("tune the host end"))?;
        link::disable_ipv6_addresses(&self.handle, spec.host)
            .await
            .map_err(failed("tune the host end"))?;
        let name = spec.ifname.to_owned();
        in_pod(spec.netns, move |h| async move {
            ethtool::disable_tx_checksum(&name)?;
            link::set_up(&h, &name).await
        })
        .await
        .and_then(|done| done)
        .map_err(failed(format!("set up {} in the pod", spec.ifname)))
    }

    /// Creates a veth pair with both ends on the host, `mtu` on both, TX checksum offload off
    /// and no IPv6 on either (neither end may put a frame of the host's into a wire); both
    /// stay down. Nothing is left behind on failure.
    pub async fn create_host_pair(&self, a: &str, b: &str, mtu: u32) -> Result<()> {
        if let Err(e) =
            link::add_veth(&self.handle, VethEnd::new(a), VethEnd::new(b), Some(mtu)).await
        {
            if e.errno() == Some(nix::errno::Errno::EEXIST as i32) {
                return Err(NetdevError::Exists {
                    ifname: a.to_owned(),
                    where_: " on the host",
                });
            }
            return Err(failed(format!("create veth {a}/{b}"))(e));
        }
        let tuned = async {
            for end in [a, b] {
                ethtool::disable_tx_checksum(end).map_err(failed(format!("tune {end}")))?;
                link::disable_ipv6_addresses(&self.handle, end)
                    .await
                    .map_err(failed(format!("tune {end}")))?;
                disable_ipv6(end)?;
            }
            Ok(())
        }
        .await;
        if tuned.is_err() {
            let _ = self.delete(a).await;
        }
        tuned
    }

    /// The MTU of the interface that holds `addr` (the underlay address), if any does.
    pub async fn mtu_of_address(&self, addr: std::net::IpAddr) -> Result<Option<u32>> {
        let found = link::with_address(&self.handle, addr)
            .await
            .map_err(failed(format!("find the interface holding {addr}")))?;
        Ok(found.map(|l| l.mtu))
    }

    /// Whether a host interface exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        link::exists(&self.handle, name)
            .await
            .map_err(failed(format!("look up {name}")))
    }

    /// Deletes a host interface (and so its veth peer); `false` if it was already gone.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        link::delete(&self.handle, name)
            .await
            .map_err(failed(format!("delete {name}")))
    }

    /// Sets a host interface administratively up or down.
    pub async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        let done = if up {
            link::set_up(&self.handle, name).await
        } else {
            link::set_down(&self.handle, name).await
        };
        done.map_err(failed(format!("set {name} up={up}")))
    }
}

/// Turns IPv6 off on a host interface (`net.ipv6.conf.IF.disable_ipv6`), so the kernel sends
/// no neighbour discovery or MLD from it; a kernel without IPv6 has nothing to turn off.
fn disable_ipv6(ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| NetdevError::Link {
            what: format!("turn off IPv6 on {ifname}"),
            source: Box::new(ovswire_netns::Error::Io {
                what: format!("write {path}"),
                cause: e,
            }),
        }),
    }
}

/// The pod end `ifname` inside `netns`, or `None` if it is not there.
pub async fn pod_link(netns: &Path, ifname: &str) -> Result<Option<PodLink>> {
    let name = ifname.to_owned();
    in_pod(netns, move |h| async move {
        let Some(msg) = link::get(&h, &name).await? else {
            return Ok(None);
        };
        let state = IfaceState::of(&msg);
        Ok(Some(PodLink {
            mtu: state.mtu,
            mac: state.mac,
            tx_checksum: ethtool::tx_checksum(&name)?,
        }))
    })
    .await
    .and_then(|found| found)
    .map_err(failed(format!("read {ifname} in the pod")))
}
