//! The few netlink calls a lab needs inside its nodes.

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use rtnetlink::Handle;

use crate::spec::Cidr;

/// The index of interface `name`.
pub async fn index(handle: &Handle, name: &str) -> Result<u32> {
    handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .with_context(|| format!("find interface {name}"))?
        .map(|l| l.header.index)
        .ok_or_else(|| anyhow!("interface {name} does not exist"))
}

/// Adds `cidr` to interface `name`; an address already there is left as it is.
pub async fn add_address(handle: &Handle, name: &str, cidr: Cidr) -> Result<()> {
    let index = index(handle, name).await?;
    match handle
        .address()
        .add(index, cidr.addr, cidr.prefix)
        .execute()
        .await
    {
        Err(rtnetlink::Error::NetlinkError(e))
            if e.code.map(|c| -c.get()) == Some(libc_eexist()) =>
        {
            Ok(())
        }
        other => other.with_context(|| format!("add {cidr} to {name}")),
    }
}

/// Deletes interface `name` (and its veth peer); one that is not there is not an error.
pub async fn delete(handle: &Handle, name: &str) -> Result<()> {
    let found = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await;
    match found {
        Ok(Some(link)) => handle
            .link()
            .del(link.header.index)
            .execute()
            .await
            .with_context(|| format!("delete interface {name}")),
        // No such device.
        Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("find interface {name}")),
    }
}

/// `EEXIST`, without a libc dependency for one constant.
const fn libc_eexist() -> i32 {
    nix::errno::Errno::EEXIST as i32
}
