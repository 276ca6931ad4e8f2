//! Netlink helpers for links inside a namespace.

use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkMessage, State,
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::{Error, Result};

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
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

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |e| Error::Netlink {
        what,
        message: e.to_string(),
    }
}

pub(crate) async fn get(handle: &Handle, name: &str) -> Result<LinkMessage> {
    handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .map_err(nl(format!("look up link {name}")))?
        .ok_or_else(|| Error::Setup(format!("link {name} not found")))
}

pub(crate) async fn set_up(handle: &Handle, name: &str) -> Result<()> {
    let index = get(handle, name).await?.header.index;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl(format!("set {name} up")))
}

/// Creates a veth pair `a`/`b` with both ends up; `b` is moved into `peer_ns` when given.
pub(crate) async fn veth(
    handle: &Handle,
    a: &str,
    b: &str,
    mtu: Option<u32>,
    peer_ns: Option<&Path>,
) -> Result<()> {
    let mut builder = LinkVeth::new(a, b);
    if let Some(mtu) = mtu {
        builder = builder.mtu(mtu);
    }
    handle
        .link()
        .add(builder.build())
        .execute()
        .await
        .map_err(nl(format!("create veth pair {a}/{b}")))?;
    if let Some(mtu) = mtu {
        let index = get(handle, b).await?.header.index;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .map_err(nl(format!("set the MTU of {b}")))?;
    }
    set_up(handle, a).await?;
    match peer_ns {
        None => set_up(handle, b).await,
        Some(path) => {
            let ns = std::fs::File::open(path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            let index = get(handle, b).await?.header.index;
            handle
                .link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .setns_by_fd(ns.as_raw_fd())
                        .build(),
                )
                .execute()
                .await
                .map_err(nl(format!("move {b} into {}", path.display())))
        }
    }
}

pub(crate) async fn state(handle: &Handle, name: &str) -> Result<LinkState> {
    Ok(state_of(get(handle, name).await?))
}

/// The kernel's view of a link, from an `RTM_NEWLINK` message.
pub(crate) fn state_of(msg: LinkMessage) -> LinkState {
    let flags = msg.header.flags;
    let mut st = LinkState {
        admin_up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        oper: String::new(),
        mtu: 0,
        mac: [0; 6],
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::OperState(s) => st.oper = oper_name(s),
            LinkAttribute::Mtu(m) => st.mtu = m,
            LinkAttribute::Address(a) if a.len() == 6 => st.mac.copy_from_slice(&a),
            _ => {}
        }
    }
    st
}

/// The name a link message carries.
pub(crate) fn name_of(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn oper_name(s: State) -> String {
    format!("{s:?}")
}

/// Names of every link of kind `veth` in the namespace the handle belongs to.
pub(crate) async fn names(handle: &Handle) -> Result<Vec<String>> {
    let mut links = handle.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = links.try_next().await.map_err(nl("list links"))? {
        for attr in msg.attributes {
            if let LinkAttribute::IfName(n) = attr {
                out.push(n);
            }
        }
    }
    Ok(out)
}

pub(crate) async fn add_address(
    handle: &Handle,
    name: &str,
    addr: std::net::IpAddr,
    prefix: u8,
) -> Result<()> {
    let index = get(handle, name).await?.header.index;
    handle
        .address()
        .add(index, addr, prefix)
        .execute()
        .await
        .map_err(nl(format!("add {addr}/{prefix} to {name}")))
}

/// Creates a veth pair whose ends are born in place: `a` in `a_ns` (the handle's own namespace
/// when `None`) and `b` in `b_ns`, both with `mtu`, both down. One request, like
/// `ip link add a netns A mtu M type veth peer b netns B mtu M`: no end ever sits in a namespace
/// it does not belong to, so a failure leaves nothing behind.
pub(crate) async fn veth_across(
    handle: &Handle,
    (a, a_ns): (&str, Option<&Path>),
    (b, b_ns): (&str, &Path),
    mtu: u32,
) -> Result<()> {
    let open = |path: &Path| {
        std::fs::File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))
    };
    let b_file = open(b_ns)?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(b.to_owned())
        .mtu(mtu)
        .setns_by_fd(b_file.as_raw_fd())
        .build();
    let a_file = a_ns.map(open).transpose()?;
    let mut builder = LinkVeth::new(a, b)
        .mtu(mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
    if let Some(file) = &a_file {
        builder = builder.setns_by_fd(file.as_raw_fd());
    }
    handle
        .link()
        .add(builder.build())
        .execute()
        .await
        .map_err(nl(format!("create veth pair {a}/{b}")))
}

/// Creates Linux bridge `name` with `mtu`, up, spanning tree off (the kernel's default).
pub(crate) async fn bridge(handle: &Handle, name: &str, mtu: u32) -> Result<()> {
    handle
        .link()
        .add(LinkBridge::new(name).mtu(mtu).build())
        .execute()
        .await
        .map_err(nl(format!("create bridge {name}")))
}

/// Enslaves link `port` to bridge `master` and sets it up.
pub(crate) async fn set_master(handle: &Handle, port: &str, master: &str) -> Result<()> {
    let master_index = get(handle, master).await?.header.index;
    let index = get(handle, port).await?.header.index;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .controller(master_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("attach {port} to bridge {master}")))
}

/// Deletes link `name`; a veth takes its peer with it.
pub(crate) async fn delete(handle: &Handle, name: &str) -> Result<()> {
    let index = get(handle, name).await?.header.index;
    handle
        .link()
        .del(index)
        .execute()
        .await
        .map_err(nl(format!("delete link {name}")))
}

/// The IPv4 addresses on link `name`.
pub(crate) async fn ipv4_addresses(handle: &Handle, name: &str) -> Result<Vec<std::net::Ipv4Addr>> {
    let index = get(handle, name).await?.header.index;
    let mut addrs = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(nl(format!("list the addresses of {name}")))?
    {
        for attr in msg.attributes {
            if let AddressAttribute::Address(std::net::IpAddr::V4(ip)) = attr {
                out.push(ip);
            }
        }
    }
    Ok(out)
}
