//! Pod interfaces: veth pairs made through netlink, with the pod end created directly inside the
//! pod's network namespace under its final name.

mod sys;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

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
    /// A netlink request failed.
    #[error("netlink: {what}: {message}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        message: String,
    },
    /// Another system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

type Result<T, E = NetdevError> = std::result::Result<T, E>;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetdevError {
    let what = what.into();
    move |e| NetdevError::Netlink {
        what,
        message: e.to_string(),
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
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetdevError::Io {
            what: "open a netlink socket".into(),
            source: e,
        })?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Creates the pair: the host end stays down (the pod sees no carrier until its wire is
    /// complete), the pod end is up inside the pod, and TX checksum offload is off on both.
    /// Nothing is left behind on failure.
    pub async fn create_veth(&self, spec: &VethSpec<'_>) -> Result<()> {
        let ns = std::fs::File::open(spec.netns).map_err(|source| NetdevError::Netns {
            path: spec.netns.to_owned(),
            source,
        })?;
        let peer = LinkUnspec::new_with_name(spec.ifname)
            .mtu(spec.mtu)
            .address(spec.pod_mac.to_vec())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkVeth::new(spec.host, spec.ifname)
            .mtu(spec.mtu)
            .address(spec.host_mac.to_vec())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        if let Err(e) = self.handle.link().add(msg).execute().await {
            if errno(&e) == Some(libc::EEXIST) {
                let where_ = if self.get(spec.host).await?.is_some() {
                    " on the host"
                } else {
                    " in the pod"
                };
                let ifname = if where_ == " on the host" {
                    spec.host
                } else {
                    spec.ifname
                };
                return Err(NetdevError::Exists {
                    ifname: ifname.to_owned(),
                    where_,
                });
            }
            return Err(nl(format!("create veth {}/{}", spec.host, spec.ifname))(e));
        }
        let tuned = self.tune(spec).await;
        if tuned.is_err() {
            let _ = self.delete(spec.host).await;
        }
        tuned
    }

    /// Stops the kernel from giving a host end IPv6 addresses (addrgenmode none), before it
    /// first comes up: thousands of link-local addresses and their routes make ovs-vswitchd,
    /// which re-reads the routing table on every change for its tunnels, stall for seconds.
    /// A host end is the inside of a cable, not an interface of the host.
    async fn no_ipv6_addresses(&self, host: &str) -> Result<()> {
        use netlink_packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode};
        let Some(link) = self.get(host).await? else {
            return Ok(());
        };
        let mut msg = LinkUnspec::new_with_index(link.header.index).build();
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        match self.handle.link().set(msg).execute().await {
            // A kernel without IPv6 gives no addresses anyway.
            Err(e) if errno(&e) == Some(libc::EAFNOSUPPORT) => Ok(()),
            other => other.map_err(nl(format!("turn off IPv6 addresses on {host}"))),
        }
    }

    /// Turns TX checksum offload off on both ends and sets the pod end up. (The kernel refuses
    /// to create the peer up in another namespace, so that happens from inside the pod.)
    async fn tune(&self, spec: &VethSpec<'_>) -> Result<()> {
        let io = |what: String| move |source| NetdevError::Io { what, source };
        sys::disable_tx_checksum(spec.host)
            .map_err(io(format!("turn off TX checksum offload on {}", spec.host)))?;
        self.no_ipv6_addresses(spec.host).await?;
        let name = spec.ifname.to_owned();
        in_pod(spec.netns, move |handle| async move {
            sys::disable_tx_checksum(&name)?;
            let link = handle
                .link()
                .get()
                .match_name(name.clone())
                .execute()
                .try_next()
                .await;
            let index = link.map_err(std::io::Error::other)?.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{name} vanished"))
            })?;
            let up = LinkUnspec::new_with_index(index.header.index).up().build();
            handle
                .link()
                .set(up)
                .execute()
                .await
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(io(format!("set up {} in the pod", spec.ifname)))
    }

    async fn get(&self, name: &str) -> Result<Option<LinkMessage>> {
        match self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await
        {
            Ok(m) => Ok(m),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl(format!("look up {name}"))(e)),
        }
    }

    /// The MTU of the interface that holds `addr` (the underlay address), if any does.
    pub async fn mtu_of_address(&self, addr: std::net::IpAddr) -> Result<Option<u32>> {
        use netlink_packet_route::address::AddressAttribute;
        let mut addrs = self.handle.address().get().execute();
        let mut index = None;
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(nl(String::from("list addresses")))?
        {
            let has = msg.attributes.iter().any(|a| {
                matches!(a, AddressAttribute::Address(ip) | AddressAttribute::Local(ip) if *ip == addr)
            });
            if has {
                index = Some(msg.header.index);
                break;
            }
        }
        let Some(index) = index else {
            return Ok(None);
        };
        let link = self
            .handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .map_err(nl(format!("look up interface {index}")))?;
        Ok(link.and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        }))
    }

    /// Whether a host interface exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.get(name).await?.is_some())
    }

    /// Deletes a host interface (and so its veth peer); `false` if it was already gone.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let Some(link) = self.get(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(link.header.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(nl(format!("delete {name}"))(e)),
        }
    }

    /// Sets a host interface administratively up or down.
    pub async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        let Some(link) = self.get(name).await? else {
            return Err(NetdevError::Netlink {
                what: format!("set {name} up"),
                message: "no such interface".into(),
            });
        };
        let b = LinkMessageBuilder::<LinkUnspec>::new().index(link.header.index);
        let msg = if up { b.up() } else { b.down() }.build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl(format!("set {name} up={up}")))
    }
}

/// The pod end `ifname` inside `netns`, or `None` if it is not there.
pub async fn pod_link(netns: &Path, ifname: &str) -> Result<Option<PodLink>> {
    let name = ifname.to_owned();
    let found = in_pod(netns, move |handle| async move {
        let msg = handle
            .link()
            .get()
            .match_name(name.clone())
            .execute()
            .try_next()
            .await;
        let Ok(Some(msg)) = msg else { return Ok(None) };
        let mut link = PodLink {
            mtu: 0,
            mac: [0; 6],
            tx_checksum: sys::tx_checksum(&name)?,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::Address(a) if a.len() == 6 => link.mac.copy_from_slice(&a),
                _ => {}
            }
        }
        Ok(Some(link))
    });
    found.await.map_err(|source| NetdevError::Io {
        what: format!("read {ifname} in the pod"),
        source,
    })
}

/// Runs a netlink job inside the pod's namespace on its own thread and runtime.
async fn in_pod<T, F, Fut>(netns: &Path, f: F) -> Result<T, std::io::Error>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    in_netns(netns.to_owned(), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            let task = tokio::spawn(conn);
            let out = f(handle).await;
            task.abort();
            out
        })
    })
    .await
}

/// Runs `f` on a dedicated thread inside `netns` (never on a pooled thread: the thread keeps
/// the namespace) and waits for it without blocking the runtime.
async fn in_netns<T, F>(netns: PathBuf, f: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ovswire-netns".into())
        .spawn(move || {
            let out = sys::enter_netns(&netns).and_then(|()| f());
            let _ = tx.send(out);
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("netns worker thread died"))?
}
