//! TX checksum offload through the `SIOCETHTOOL` ioctl, in the calling thread's namespace.
//!
//! One of the workspace's two unsafe modules (with [`crate::packet`]): the ioctl takes a pointer into a C struct, and no
//! safe wrapper for it exists (nix has none for `SIOCETHTOOL`; the ethtool netlink family
//! needs generic netlink for two bits). The unsafe block is one call with both structs on this
//! stack frame.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use crate::link::check_ifname;
use crate::{Error, Result};

/// `SIOCETHTOOL` from `<linux/sockios.h>`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_GTXCSUM` from `<linux/ethtool.h>`: get TX checksum offload.
const ETHTOOL_GTXCSUM: u32 = 0x16;
/// `ETHTOOL_STXCSUM`: set TX checksum offload.
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

fn ethtool(ifname: &str, what: &'static str, cmd: u32, data: u32) -> Result<u32> {
    check_ifname(ifname)?;
    let failed = |cause| Error::Ethtool {
        what,
        ifname: ifname.to_owned(),
        cause,
    };
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| failed(io::Error::from(e)))?;
    let mut value = EthtoolValue { cmd, data };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: `req` is a properly initialised `struct ifreq` (the name NUL-terminated, as
    // `check_ifname` keeps it under IFNAMSIZ) whose `ifr_data` points at a live `ethtool_value`
    // on this stack frame; the kernel reads and writes only those two structs for
    // ETHTOOL_[GS]TXCSUM, and both outlive the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(failed(io::Error::last_os_error()));
    }
    Ok(value.data)
}

/// Turns TX checksum offload off on `ifname`.
///
/// On the userspace datapath nobody completes partial checksums, so with offload on, TCP over
/// a wire fails while ping works.
pub fn disable_tx_checksum(ifname: &str) -> Result<()> {
    ethtool(ifname, "turn off TX checksum offload", ETHTOOL_STXCSUM, 0).map(drop)
}

/// Whether TX checksum offload is on for `ifname`.
pub fn tx_checksum(ifname: &str) -> Result<bool> {
    ethtool(ifname, "read TX checksum offload", ETHTOOL_GTXCSUM, 0).map(|v| v != 0)
}
