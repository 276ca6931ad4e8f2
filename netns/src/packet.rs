//! Raw Ethernet frames on one interface (`AF_PACKET`), byte-exact both ways: what the agent's
//! impairment stage reads from and writes to its end of a veth pair.
//!
//! The kernel takes an 802.1Q/802.1ad tag off every frame it receives before packet sockets
//! see it, and hands it over beside the frame (`PACKET_AUXDATA`); [`PacketSocket::recv`] puts
//! it back, so a tagged frame leaves as it came. Frames the interface sends are skipped.
//!
//! Unsafe code: registering the socket with tokio asks for its descriptor's validity to be
//! promised, `bind` takes a `struct sockaddr_ll` and `recvmsg` a `struct msghdr` with a
//! control buffer, and nix has no safe form of either for packet sockets. Each unsafe block is
//! one call on structs of its own stack frame.
#![allow(unsafe_code)]

use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, send, setsockopt, socket, sockopt,
};

use crate::link::check_ifname;
use crate::{Error, Result};

/// `PACKET_AUXDATA` from `<linux/if_packet.h>`.
const PACKET_AUXDATA: libc::c_int = 8;
/// `PACKET_OUTGOING`: a frame the interface sent.
const PACKET_OUTGOING: u8 = 4;
/// `TP_STATUS_VLAN_VALID`: the frame had a VLAN tag.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `TP_STATUS_VLAN_TPID_VALID`: and its TPID is given.
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// 802.1Q's TPID, when the kernel gives none.
const ETH_P_8021Q: u16 = 0x8100;
/// Room [`PacketSocket::recv`] needs in front of a frame to put its tag back.
pub const HEADROOM: usize = 4;

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy)]
struct AuxData {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// A non-blocking packet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket for every frame on `ifname` (in the calling thread's namespace), with
    /// `buffer` bytes of kernel queue each way.
    pub fn bind(ifname: &str, buffer: usize) -> Result<Self> {
        check_ifname(ifname)?;
        let failed = |cause: io::Error| Error::Packet {
            ifname: ifname.to_owned(),
            cause,
        };
        let index = nix::net::if_::if_nametoindex(ifname).map_err(|e| failed(e.into()))?;
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .map_err(|e| failed(e.into()))?;
        // Best effort: the kernel caps the sizes at its rmem_max/wmem_max.
        let _ = setsockopt(&fd, sockopt::RcvBuf, &buffer);
        let _ = setsockopt(&fd, sockopt::SndBuf, &buffer);
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int on this frame and the length given is its size; the
        // kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_AUXDATA,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(failed(io::Error::last_os_error()));
        }
        // SAFETY: sockaddr_ll is plain integers and bytes, for which all zeroes is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is an initialised sockaddr_ll on this frame and the length given is
        // its size; the kernel only reads it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(failed(io::Error::last_os_error()));
        }
        Ok(Self { fd })
    }

    /// Takes the next frame into `buf`: where it lies in `buf` (its VLAN tag put back), or
    /// `None` for a frame to skip (one the interface sent, or one larger than `buf`).
    /// `WouldBlock` when no frame is queued. `buf` needs [`HEADROOM`] bytes besides the
    /// largest frame.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Range<usize>>> {
        if buf.len() <= HEADROOM + 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer too small for a frame",
            ));
        }
        let room = buf.len() - HEADROOM;
        // SAFETY: all-zero sockaddr_ll, msghdr and control bytes are valid values.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf[HEADROOM..].as_mut_ptr().cast(),
            iov_len: room,
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: every pointer in `msg` points at a buffer of this frame (or `buf`, borrowed
        // mutably for the call) with the length given; the kernel writes within them.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if from.sll_pkttype == PACKET_OUTGOING || n > room || n < 14 {
            return Ok(None);
        }
        let mut tag = None;
        // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control buffer within
        // `msg_controllen`, and the auxdata is read unaligned from inside it after its
        // level, type and length are checked.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let hdr = &*cmsg;
                if hdr.cmsg_level == libc::SOL_PACKET
                    && hdr.cmsg_type == PACKET_AUXDATA
                    && hdr.cmsg_len as usize
                        >= libc::CMSG_LEN(std::mem::size_of::<AuxData>() as u32) as usize
                {
                    let aux: AuxData = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    if aux.status & TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.status & TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.vlan_tpid
                        } else {
                            ETH_P_8021Q
                        };
                        tag = Some((tpid, aux.vlan_tci));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(Some(match tag {
            None => HEADROOM..HEADROOM + n,
            Some((tpid, tci)) => {
                // The addresses move to the front; the tag goes between them and the type.
                buf.copy_within(HEADROOM..HEADROOM + 12, 0);
                buf[12..14].copy_from_slice(&tpid.to_be_bytes());
                buf[14..16].copy_from_slice(&tci.to_be_bytes());
                0..HEADROOM + n
            }
        }))
    }

    /// Sends one frame out of the interface. `WouldBlock` when the queue is full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        send(self.fd.as_raw_fd(), frame, MsgFlags::empty())
            .map(drop)
            .map_err(io::Error::from)
    }
}

impl PacketSocket {
    /// The socket registered with the current tokio runtime, to wait for frames.
    pub fn into_async(self) -> io::Result<tokio::io::unix::AsyncFd<Self>> {
        // SAFETY: the descriptor is the `OwnedFd` this socket owns; it stays open and the same
        // until the `AsyncFd`, which owns the socket, drops it.
        unsafe { tokio::io::unix::AsyncFd::register(self) }.map_err(|e| e.into_parts().1)
    }
}

/// A one-shot monotonic timer with microsecond precision (`timerfd`), for waits a runtime's
/// millisecond timer would round up: a frame held for 20 ms leaves after 20 ms, not 21.
#[derive(Debug)]
pub struct Timer {
    fd: nix::sys::timerfd::TimerFd,
}

impl Timer {
    /// A disarmed timer.
    pub fn new() -> io::Result<Self> {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(Self { fd })
    }

    /// Fires once, `after` from now (at least a microsecond: zero would disarm it).
    pub fn arm(&self, after: std::time::Duration) -> io::Result<()> {
        use nix::sys::time::TimeSpec;
        use nix::sys::timer::{Expiration, TimerSetTimeFlags};
        let after = after.max(std::time::Duration::from_micros(1));
        self.fd
            .set(
                Expiration::OneShot(TimeSpec::from_duration(after)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(io::Error::from)
    }

    /// Takes the expiry in, so the timer reads as not ready until it fires again.
    pub fn clear(&self) {
        // EAGAIN when it had not fired: nothing to take.
        let _ = self.fd.wait();
    }

    /// The timer registered with the current tokio runtime.
    pub fn into_async(self) -> io::Result<tokio::io::unix::AsyncFd<Self>> {
        // SAFETY: the descriptor is the `TimerFd` this timer owns; it stays open and the same
        // until the `AsyncFd`, which owns the timer, drops it.
        unsafe { tokio::io::unix::AsyncFd::register(self) }.map_err(|e| e.into_parts().1)
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_fd().as_raw_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
