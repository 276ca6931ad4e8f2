//! rtnetlink requests on links and addresses, over a handle opened in the namespace they are
//! about (see [`crate::block_on`]).

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoVeth, LinkAttribute, LinkFlags,
    LinkMessage,
};
pub use rtnetlink::Handle;
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth};

use crate::enter::open_path;
use crate::{Error, Result};

/// Opens a netlink socket in the calling thread's namespace, its connection spawned on the
/// current tokio runtime.
pub fn connect() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| Error::io("open a netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Checks that the kernel would take `name` as an interface name: the rule every part of
/// ovswire applies, [`ovswire_core::check_ifname`].
pub fn check_ifname(name: &str) -> Result<()> {
    ovswire_core::check_ifname(name).map_err(|e| Error::InvalidIfname {
        name: name.to_owned(),
        reason: e.why,
    })
}

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceState {
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: carrier present (its absence is what `ip link` shows as `NO-CARRIER`).
    pub carrier: bool,
    /// The RFC 2863 operational state, e.g. `Up`, `Down`, `LowerLayerDown`.
    pub oper: String,
    /// The link's MTU.
    pub mtu: u32,
    /// The link's MAC address.
    pub mac: [u8; 6],
}

impl IfaceState {
    /// The state an `RTM_NEWLINK` message describes.
    pub fn of(msg: &LinkMessage) -> Self {
        let flags = msg.header.flags;
        let mut st = Self {
            admin_up: flags.contains(LinkFlags::Up),
            carrier: flags.contains(LinkFlags::LowerUp),
            oper: String::new(),
            mtu: 0,
            mac: [0; 6],
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::OperState(s) => st.oper = format!("{s:?}"),
                LinkAttribute::Mtu(m) => st.mtu = *m,
                LinkAttribute::Address(a) if a.len() == 6 => st.mac.copy_from_slice(a),
                _ => {}
            }
        }
        st
    }
}

/// The name a link message carries.
pub fn name_of(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The link `name`, or `None` when there is none.
pub async fn get(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    check_ifname(name)?;
    let found = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .map_err(Error::netlink(format!("look up interface {name}")));
    match found {
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        other => other,
    }
}

/// The index of link `name`.
pub async fn index(handle: &Handle, name: &str) -> Result<u32> {
    get(handle, name)
        .await?
        .map(|l| l.header.index)
        .ok_or_else(|| Error::NoSuchLink {
            name: name.to_owned(),
        })
}

/// Whether link `name` exists.
pub async fn exists(handle: &Handle, name: &str) -> Result<bool> {
    Ok(get(handle, name).await?.is_some())
}

/// The kernel's view of link `name`.
pub async fn state(handle: &Handle, name: &str) -> Result<IfaceState> {
    get(handle, name)
        .await?
        .map(|l| IfaceState::of(&l))
        .ok_or_else(|| Error::NoSuchLink {
            name: name.to_owned(),
        })
}

/// Sets link `name` administratively up.
pub async fn set_up(handle: &Handle, name: &str) -> Result<()> {
    set_admin(handle, name, true).await
}

/// Sets link `name` administratively down.
pub async fn set_down(handle: &Handle, name: &str) -> Result<()> {
    set_admin(handle, name, false).await
}

async fn set_admin(handle: &Handle, name: &str, up: bool) -> Result<()> {
    let index = index(handle, name).await?;
    let msg = LinkUnspec::new_with_index(index);
    let (msg, word) = if up {
        (msg.up(), "up")
    } else {
        (msg.down(), "down")
    };
    handle
        .link()
        .set(msg.build())
        .execute()
        .await
        .map_err(Error::netlink(format!("set {name} {word}")))
}

/// One end of a veth pair: its name, and optionally the namespace it is born in (else the
/// handle's) and its MAC (else a random one).
#[derive(Debug, Clone, Copy)]
pub struct VethEnd<'a> {
    /// Interface name.
    pub name: &'a str,
    /// Path of the namespace the end is created in.
    pub netns: Option<&'a Path>,
    /// MAC address.
    pub mac: Option<[u8; 6]>,
}

impl<'a> VethEnd<'a> {
    /// An end named `name` in the handle's namespace with a random MAC.
    pub fn new(name: &'a str) -> Self {
        Self {
            name,
            netns: None,
            mac: None,
        }
    }

    /// The end is born in the namespace at `path`.
    pub fn netns(self, path: &'a Path) -> Self {
        Self {
            netns: Some(path),
            ..self
        }
    }

    /// The end has MAC `mac`.
    pub fn mac(self, mac: [u8; 6]) -> Self {
        Self {
            mac: Some(mac),
            ..self
        }
    }
}

/// Creates veth pair `a`/`b` with both ends born in place, both with `mtu` when given, both
/// down. One request, like `ip link add A netns NA type veth peer B netns NB`: no end ever sits
/// in a namespace it does not belong to, so a failure leaves nothing behind.
pub async fn add_veth(
    handle: &Handle,
    a: VethEnd<'_>,
    b: VethEnd<'_>,
    mtu: Option<u32>,
) -> Result<()> {
    check_ifname(a.name)?;
    check_ifname(b.name)?;
    let a_ns = a.netns.map(open_path).transpose()?;
    let b_ns = b.netns.map(open_path).transpose()?;
    let mut peer = LinkUnspec::new_with_name(b.name);
    let mut link = LinkVeth::new(a.name, b.name);
    if let Some(mtu) = mtu {
        peer = peer.mtu(mtu);
        link = link.mtu(mtu);
    }
    if let Some(mac) = b.mac {
        peer = peer.address(mac.to_vec());
    }
    if let Some(mac) = a.mac {
        link = link.address(mac.to_vec());
    }
    if let Some(ns) = &b_ns {
        peer = peer.setns_by_fd(ns.as_raw_fd());
    }
    if let Some(ns) = &a_ns {
        link = link.setns_by_fd(ns.as_raw_fd());
    }
    let msg = link
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(Error::netlink(format!(
            "create veth pair {}/{}",
            a.name, b.name
        )))
}

/// Creates Linux bridge `name` with `mtu`, up, spanning tree off (the kernel's default).
pub async fn add_bridge(handle: &Handle, name: &str, mtu: u32) -> Result<()> {
    check_ifname(name)?;
    handle
        .link()
        .add(LinkBridge::new(name).mtu(mtu).build())
        .execute()
        .await
        .map_err(Error::netlink(format!("create bridge {name}")))
}

/// Enslaves link `port` to bridge `master` and sets it up.
pub async fn set_master(handle: &Handle, port: &str, master: &str) -> Result<()> {
    let master_index = index(handle, master).await?;
    let port_index = index(handle, port).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(port_index)
                .controller(master_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(Error::netlink(format!("attach {port} to bridge {master}")))
}

/// Deletes link `name` (a veth takes its peer with it); `false` when it was not there.
pub async fn delete(handle: &Handle, name: &str) -> Result<bool> {
    let Some(link) = get(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) => {
            let e = Error::netlink(format!("delete interface {name}"))(e);
            // Gone between the lookup and the request.
            if e.errno() == Some(libc::ENODEV) {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Names of all links in the handle's namespace.
pub async fn names(handle: &Handle) -> Result<Vec<String>> {
    let mut links = handle.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = links
        .try_next()
        .await
        .map_err(Error::netlink("list interfaces"))?
    {
        out.extend(name_of(&msg).map(str::to_owned));
    }
    Ok(out)
}

/// Adds `addr/prefix` (IPv4 or IPv6) to link `name`. An address already there fails with
/// errno `EEXIST` (see [`Error::errno`]).
pub async fn add_address(handle: &Handle, name: &str, addr: IpAddr, prefix: u8) -> Result<()> {
    let index = index(handle, name).await?;
    handle
        .address()
        .add(index, addr, prefix)
        .execute()
        .await
        .map_err(Error::netlink(format!("add {addr}/{prefix} to {name}")))
}

/// The addresses on link `name`.
pub async fn addresses(handle: &Handle, name: &str) -> Result<Vec<IpAddr>> {
    let index = index(handle, name).await?;
    let mut addrs = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(Error::netlink(format!("list the addresses of {name}")))?
    {
        for attr in msg.attributes {
            if let AddressAttribute::Address(ip) = attr {
                out.push(ip);
            }
        }
    }
    Ok(out)
}

/// The link holding address `addr`, if any does.
pub async fn with_address(handle: &Handle, addr: IpAddr) -> Result<Option<IfaceState>> {
    Ok(link_with_address(handle, addr)
        .await?
        .map(|l| IfaceState::of(&l)))
}

/// The name of the link holding address `addr`, if any does.
pub async fn name_with_address(handle: &Handle, addr: IpAddr) -> Result<Option<String>> {
    Ok(link_with_address(handle, addr)
        .await?
        .and_then(|l| name_of(&l).map(str::to_owned)))
}

async fn link_with_address(handle: &Handle, addr: IpAddr) -> Result<Option<LinkMessage>> {
    let mut addrs = handle.address().get().execute();
    let mut index = None;
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(Error::netlink("list addresses"))?
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
    let link = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .map_err(Error::netlink(format!("look up interface {index}")))?;
    Ok(link)
}

/// Stops the kernel from giving link `name` IPv6 addresses (`addrgenmode none`); a kernel
/// without IPv6 gives none anyway.
pub async fn disable_ipv6_addresses(handle: &Handle, name: &str) -> Result<()> {
    let index = index(handle, name).await?;
    let mut msg = LinkUnspec::new_with_index(index).build();
    msg.attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )]));
    match handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(Error::netlink(format!("turn off IPv6 addresses on {name}")))
    {
        Err(e) if e.errno() == Some(libc::EAFNOSUPPORT) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_the_kernel_takes_pass() {
        for ok in ["eth0", "lo", "ow-lab1", "owt12345-0-ab", &"x".repeat(15)] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn interface_names_the_kernel_refuses_fail() {
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\0b", &"x".repeat(16)] {
            let err = check_ifname(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidIfname { name, .. } if name == bad),
                "{bad:?}: {err}"
            );
        }
    }
}
