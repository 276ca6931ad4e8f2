//! Netlink helpers for links inside a namespace.

use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

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
    let msg = get(handle, name).await?;
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
    Ok(st)
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
