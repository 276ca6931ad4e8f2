//! The agent's only unsafe code: entering a network namespace on the current thread and the
//! `SIOCETHTOOL` ioctl, for which no safe wrapper exists.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

/// `SIOCETHTOOL` from `<linux/sockios.h>`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_STXCSUM` from `<linux/ethtool.h>`: set TX checksum offload.
const ETHTOOL_STXCSUM: u32 = 0x17;
/// `ETHTOOL_GTXCSUM`: get TX checksum offload.
const ETHTOOL_GTXCSUM: u32 = 0x16;

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

/// Moves the calling thread into the network namespace at `path`. Only call it on a thread
/// made for the purpose: the thread stays there.
pub(crate) fn enter_netns(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    nix::sched::setns(file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

fn ethtool(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    let mut value = EthtoolValue { cmd, data };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: `req` is a properly initialised `struct ifreq` whose `ifr_data` points at a live
    // `ethtool_value` on this stack frame; the kernel reads and writes only those two structs
    // for ETHTOOL_[GS]TXCSUM, and both outlive the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data)
}

/// Turns TX checksum offload off on `ifname` (in the calling thread's namespace).
///
/// On the userspace datapath nobody completes partial checksums, so with offload on TCP over a
/// wire fails while ping works.
pub(crate) fn disable_tx_checksum(ifname: &str) -> io::Result<()> {
    ethtool(ifname, ETHTOOL_STXCSUM, 0).map(drop)
}

/// Whether TX checksum offload is on for `ifname`.
pub(crate) fn tx_checksum(ifname: &str) -> io::Result<bool> {
    ethtool(ifname, ETHTOOL_GTXCSUM, 0).map(|v| v != 0)
}
