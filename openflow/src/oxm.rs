//! OXM match fields and the `ofp_match` structure.
//!
//! An OXM field has a 4-byte header `class:16 | field:7 | hasmask:1 | length:8` followed by
//! `length` bytes (value, then mask when `hasmask` is set) and no padding of its own; only the
//! match as a whole is padded to 8 bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::types::MacAddr;
use crate::wire::{check_len, get_array, get_u16, get_u32, get_u64, pad8, put_u16, put_u32};
use crate::{Error, Result};

/// The OpenFlow basic OXM class.
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
/// The experimenter OXM class: the 4-byte experimenter id follows the header.
pub const OFPXMC_EXPERIMENTER: u16 = 0xffff;
/// `ofp_match.type` for OXM matches.
pub const OFPMT_OXM: u16 = 1;
/// OFPVID_PRESENT: set in `vlan_vid` to match (or set) a VLAN tag.
pub const OFPVID_PRESENT: u16 = 0x1000;

/// One match field. Masks are `Some` only for the fields the spec allows masks on; any
/// other shape (an unknown field, a bad length, an experimenter class) is kept as [`Other`].
///
/// [`Other`]: OxmField::Other
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OxmField {
    /// Switch input port (OpenFlow port number, 32 bits).
    InPort(u32),
    /// Switch physical input port.
    InPhyPort(u32),
    /// Metadata passed between tables.
    Metadata(u64, Option<u64>),
    /// Ethernet destination.
    EthDst(MacAddr, Option<MacAddr>),
    /// Ethernet source.
    EthSrc(MacAddr, Option<MacAddr>),
    /// Ethernet type.
    EthType(u16),
    /// VLAN id with [`OFPVID_PRESENT`].
    VlanVid(u16, Option<u16>),
    /// VLAN priority.
    VlanPcp(u8),
    /// IP DSCP (6 bits).
    IpDscp(u8),
    /// IP ECN (2 bits).
    IpEcn(u8),
    /// IP protocol.
    IpProto(u8),
    /// IPv4 source.
    Ipv4Src(Ipv4Addr, Option<Ipv4Addr>),
    /// IPv4 destination.
    Ipv4Dst(Ipv4Addr, Option<Ipv4Addr>),
    /// TCP source port.
    TcpSrc(u16),
    /// TCP destination port.
    TcpDst(u16),
    /// UDP source port.
    UdpSrc(u16),
    /// UDP destination port.
    UdpDst(u16),
    /// SCTP source port.
    SctpSrc(u16),
    /// SCTP destination port.
    SctpDst(u16),
    /// ICMPv4 type.
    Icmpv4Type(u8),
    /// ICMPv4 code.
    Icmpv4Code(u8),
    /// ARP opcode.
    ArpOp(u16),
    /// ARP source IPv4 address.
    ArpSpa(Ipv4Addr, Option<Ipv4Addr>),
    /// ARP target IPv4 address.
    ArpTpa(Ipv4Addr, Option<Ipv4Addr>),
    /// ARP source hardware address.
    ArpSha(MacAddr, Option<MacAddr>),
    /// ARP target hardware address.
    ArpTha(MacAddr, Option<MacAddr>),
    /// IPv6 source.
    Ipv6Src(Ipv6Addr, Option<Ipv6Addr>),
    /// IPv6 destination.
    Ipv6Dst(Ipv6Addr, Option<Ipv6Addr>),
    /// Tunnel id (VXLAN VNI in the low 24 bits); OXM field 38, 64 bits.
    TunnelId(u64, Option<u64>),
    /// Any other field, kept byte for byte: `payload` is everything after the 4-byte header
    /// (for the experimenter class it starts with the experimenter id).
    Other {
        /// OXM class.
        class: u16,
        /// Field number (7 bits).
        field: u8,
        /// The hasmask bit.
        has_mask: bool,
        /// Value (and mask) bytes.
        payload: Vec<u8>,
    },
}

mod code {
    pub(super) const IN_PORT: u8 = 0;
    pub(super) const IN_PHY_PORT: u8 = 1;
    pub(super) const METADATA: u8 = 2;
    pub(super) const ETH_DST: u8 = 3;
    pub(super) const ETH_SRC: u8 = 4;
    pub(super) const ETH_TYPE: u8 = 5;
    pub(super) const VLAN_VID: u8 = 6;
    pub(super) const VLAN_PCP: u8 = 7;
    pub(super) const IP_DSCP: u8 = 8;
    pub(super) const IP_ECN: u8 = 9;
    pub(super) const IP_PROTO: u8 = 10;
    pub(super) const IPV4_SRC: u8 = 11;
    pub(super) const IPV4_DST: u8 = 12;
    pub(super) const TCP_SRC: u8 = 13;
    pub(super) const TCP_DST: u8 = 14;
    pub(super) const UDP_SRC: u8 = 15;
    pub(super) const UDP_DST: u8 = 16;
    pub(super) const SCTP_SRC: u8 = 17;
    pub(super) const SCTP_DST: u8 = 18;
    pub(super) const ICMPV4_TYPE: u8 = 19;
    pub(super) const ICMPV4_CODE: u8 = 20;
    pub(super) const ARP_OP: u8 = 21;
    pub(super) const ARP_SPA: u8 = 22;
    pub(super) const ARP_TPA: u8 = 23;
    pub(super) const ARP_SHA: u8 = 24;
    pub(super) const ARP_THA: u8 = 25;
    pub(super) const IPV6_SRC: u8 = 26;
    pub(super) const IPV6_DST: u8 = 27;
    pub(super) const TUNNEL_ID: u8 = 38;
}

/// A value type an OXM field can carry: fixed width, big-endian on the wire.
///
/// This is the OXM counterpart of the TLV trait: the field header and the value/mask
/// layout are written in one place ([`OxmField::emit`]) for every field type.
trait OxmValue: Sized + Copy {
    const LEN: usize;
    fn read(buf: &[u8]) -> Self;
    fn write(self, buf: &mut [u8]);
}

impl OxmValue for u8 {
    const LEN: usize = 1;
    fn read(buf: &[u8]) -> Self {
        buf[0]
    }
    fn write(self, buf: &mut [u8]) {
        buf[0] = self;
    }
}

impl OxmValue for u16 {
    const LEN: usize = 2;
    fn read(buf: &[u8]) -> Self {
        get_u16(buf, 0)
    }
    fn write(self, buf: &mut [u8]) {
        put_u16(buf, 0, self);
    }
}

impl OxmValue for u32 {
    const LEN: usize = 4;
    fn read(buf: &[u8]) -> Self {
        get_u32(buf, 0)
    }
    fn write(self, buf: &mut [u8]) {
        put_u32(buf, 0, self);
    }
}

impl OxmValue for u64 {
    const LEN: usize = 8;
    fn read(buf: &[u8]) -> Self {
        get_u64(buf, 0)
    }
    fn write(self, buf: &mut [u8]) {
        buf[..8].copy_from_slice(&self.to_be_bytes());
    }
}

impl OxmValue for MacAddr {
    const LEN: usize = 6;
    fn read(buf: &[u8]) -> Self {
        Self(get_array(buf, 0))
    }
    fn write(self, buf: &mut [u8]) {
        buf[..6].copy_from_slice(&self.0);
    }
}

impl OxmValue for Ipv4Addr {
    const LEN: usize = 4;
    fn read(buf: &[u8]) -> Self {
        Self::from(get_array::<4>(buf, 0))
    }
    fn write(self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.octets());
    }
}

impl OxmValue for Ipv6Addr {
    const LEN: usize = 16;
    fn read(buf: &[u8]) -> Self {
        Self::from(get_array::<16>(buf, 0))
    }
    fn write(self, buf: &mut [u8]) {
        buf[..16].copy_from_slice(&self.octets());
    }
}

/// Decodes a field without a mask, or `None` if the shape does not fit.
fn exact<T: OxmValue>(has_mask: bool, payload: &[u8]) -> Option<T> {
    (!has_mask && payload.len() == T::LEN).then(|| T::read(payload))
}

/// Decodes a maskable field, or `None` if the shape does not fit.
fn masked<T: OxmValue>(has_mask: bool, payload: &[u8]) -> Option<(T, Option<T>)> {
    match (has_mask, payload.len()) {
        (false, n) if n == T::LEN => Some((T::read(payload), None)),
        (true, n) if n == 2 * T::LEN => Some((T::read(payload), Some(T::read(&payload[T::LEN..])))),
        _ => None,
    }
}

/// Writes value and optional mask; returns the payload length.
fn put_masked<T: OxmValue>(buf: &mut [u8], value: T, mask: Option<T>) -> usize {
    value.write(buf);
    match mask {
        Some(m) => {
            m.write(&mut buf[T::LEN..]);
            2 * T::LEN
        }
        None => T::LEN,
    }
}

impl OxmField {
    /// Decodes one field from the front of `buf`; returns it and the bytes consumed.
    pub fn parse(buf: &[u8]) -> Result<(Self, usize)> {
        check_len(buf, 4, "oxm", "header")?;
        let class = get_u16(buf, 0);
        let field = buf[2] >> 1;
        let has_mask = buf[2] & 1 == 1;
        let len = usize::from(buf[3]);
        check_len(buf, 4 + len, "oxm", "payload")?;
        let p = &buf[4..4 + len];
        let known = if class == OFPXMC_OPENFLOW_BASIC {
            Self::parse_basic(field, has_mask, p)
        } else {
            None
        };
        let parsed = known.unwrap_or_else(|| Self::Other {
            class,
            field,
            has_mask,
            payload: p.to_vec(),
        });
        Ok((parsed, 4 + len))
    }

    fn parse_basic(field: u8, m: bool, p: &[u8]) -> Option<Self> {
        Some(match field {
            code::IN_PORT => Self::InPort(exact(m, p)?),
            code::IN_PHY_PORT => Self::InPhyPort(exact(m, p)?),
            code::METADATA => masked(m, p).map(|(v, k)| Self::Metadata(v, k))?,
            code::ETH_DST => masked(m, p).map(|(v, k)| Self::EthDst(v, k))?,
            code::ETH_SRC => masked(m, p).map(|(v, k)| Self::EthSrc(v, k))?,
            code::ETH_TYPE => Self::EthType(exact(m, p)?),
            code::VLAN_VID => masked(m, p).map(|(v, k)| Self::VlanVid(v, k))?,
            code::VLAN_PCP => Self::VlanPcp(exact(m, p)?),
            code::IP_DSCP => Self::IpDscp(exact(m, p)?),
            code::IP_ECN => Self::IpEcn(exact(m, p)?),
            code::IP_PROTO => Self::IpProto(exact(m, p)?),
            code::IPV4_SRC => masked(m, p).map(|(v, k)| Self::Ipv4Src(v, k))?,
            code::IPV4_DST => masked(m, p).map(|(v, k)| Self::Ipv4Dst(v, k))?,
            code::TCP_SRC => Self::TcpSrc(exact(m, p)?),
            code::TCP_DST => Self::TcpDst(exact(m, p)?),
            code::UDP_SRC => Self::UdpSrc(exact(m, p)?),
            code::UDP_DST => Self::UdpDst(exact(m, p)?),
            code::SCTP_SRC => Self::SctpSrc(exact(m, p)?),
            code::SCTP_DST => Self::SctpDst(exact(m, p)?),
            code::ICMPV4_TYPE => Self::Icmpv4Type(exact(m, p)?),
            code::ICMPV4_CODE => Self::Icmpv4Code(exact(m, p)?),
            code::ARP_OP => Self::ArpOp(exact(m, p)?),
            code::ARP_SPA => masked(m, p).map(|(v, k)| Self::ArpSpa(v, k))?,
            code::ARP_TPA => masked(m, p).map(|(v, k)| Self::ArpTpa(v, k))?,
            code::ARP_SHA => masked(m, p).map(|(v, k)| Self::ArpSha(v, k))?,
            code::ARP_THA => masked(m, p).map(|(v, k)| Self::ArpTha(v, k))?,
            code::IPV6_SRC => masked(m, p).map(|(v, k)| Self::Ipv6Src(v, k))?,
            code::IPV6_DST => masked(m, p).map(|(v, k)| Self::Ipv6Dst(v, k))?,
            code::TUNNEL_ID => masked(m, p).map(|(v, k)| Self::TunnelId(v, k))?,
            _ => return None,
        })
    }

    /// `(class, field, has_mask, payload length)` of the header.
    fn header(&self) -> (u16, u8, bool, usize) {
        fn b<T: OxmValue>(field: u8, mask: Option<T>) -> (u16, u8, bool, usize) {
            let n = if mask.is_some() { 2 * T::LEN } else { T::LEN };
            (OFPXMC_OPENFLOW_BASIC, field, mask.is_some(), n)
        }
        match self {
            Self::InPort(_) => b::<u32>(code::IN_PORT, None),
            Self::InPhyPort(_) => b::<u32>(code::IN_PHY_PORT, None),
            Self::Metadata(_, m) => b(code::METADATA, *m),
            Self::EthDst(_, m) => b(code::ETH_DST, *m),
            Self::EthSrc(_, m) => b(code::ETH_SRC, *m),
            Self::EthType(_) => b::<u16>(code::ETH_TYPE, None),
            Self::VlanVid(_, m) => b(code::VLAN_VID, *m),
            Self::VlanPcp(_) => b::<u8>(code::VLAN_PCP, None),
            Self::IpDscp(_) => b::<u8>(code::IP_DSCP, None),
            Self::IpEcn(_) => b::<u8>(code::IP_ECN, None),
            Self::IpProto(_) => b::<u8>(code::IP_PROTO, None),
            Self::Ipv4Src(_, m) => b(code::IPV4_SRC, *m),
            Self::Ipv4Dst(_, m) => b(code::IPV4_DST, *m),
            Self::TcpSrc(_) => b::<u16>(code::TCP_SRC, None),
            Self::TcpDst(_) => b::<u16>(code::TCP_DST, None),
            Self::UdpSrc(_) => b::<u16>(code::UDP_SRC, None),
            Self::UdpDst(_) => b::<u16>(code::UDP_DST, None),
            Self::SctpSrc(_) => b::<u16>(code::SCTP_SRC, None),
            Self::SctpDst(_) => b::<u16>(code::SCTP_DST, None),
            Self::Icmpv4Type(_) => b::<u8>(code::ICMPV4_TYPE, None),
            Self::Icmpv4Code(_) => b::<u8>(code::ICMPV4_CODE, None),
            Self::ArpOp(_) => b::<u16>(code::ARP_OP, None),
            Self::ArpSpa(_, m) => b(code::ARP_SPA, *m),
            Self::ArpTpa(_, m) => b(code::ARP_TPA, *m),
            Self::ArpSha(_, m) => b(code::ARP_SHA, *m),
            Self::ArpTha(_, m) => b(code::ARP_THA, *m),
            Self::Ipv6Src(_, m) => b(code::IPV6_SRC, *m),
            Self::Ipv6Dst(_, m) => b(code::IPV6_DST, *m),
            Self::TunnelId(_, m) => b(code::TUNNEL_ID, *m),
            Self::Other {
                class,
                field,
                has_mask,
                payload,
            } => (*class, *field, *has_mask, payload.len()),
        }
    }

    /// Bytes on the wire: the 4-byte header plus value and mask, unpadded.
    pub fn buffer_len(&self) -> usize {
        4 + self.header().3
    }

    /// Writes the field into `buf[..self.buffer_len()]`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len), or if an
    /// [`Other`](Self::Other) payload exceeds the 255 bytes the length field can express.
    pub fn emit(&self, buf: &mut [u8]) {
        let (class, field, has_mask, len) = self.header();
        assert!(
            len <= 255,
            "OXM payload of {len} bytes does not fit the 8-bit length"
        );
        put_u16(buf, 0, class);
        buf[2] = (field << 1) | u8::from(has_mask);
        buf[3] = len as u8;
        let p = &mut buf[4..4 + len];
        match self {
            Self::InPort(v) | Self::InPhyPort(v) => put_masked(p, *v, None),
            Self::Metadata(v, m) | Self::TunnelId(v, m) => put_masked(p, *v, *m),
            Self::EthDst(v, m) | Self::EthSrc(v, m) | Self::ArpSha(v, m) | Self::ArpTha(v, m) => {
                put_masked(p, *v, *m)
            }
            Self::EthType(v)
            | Self::TcpSrc(v)
            | Self::TcpDst(v)
            | Self::UdpSrc(v)
            | Self::UdpDst(v)
            | Self::SctpSrc(v)
            | Self::SctpDst(v)
            | Self::ArpOp(v) => put_masked(p, *v, None),
            Self::VlanVid(v, m) => put_masked(p, *v, *m),
            Self::VlanPcp(v)
            | Self::IpDscp(v)
            | Self::IpEcn(v)
            | Self::IpProto(v)
            | Self::Icmpv4Type(v)
            | Self::Icmpv4Code(v) => put_masked(p, *v, None),
            Self::Ipv4Src(v, m) | Self::Ipv4Dst(v, m) | Self::ArpSpa(v, m) | Self::ArpTpa(v, m) => {
                put_masked(p, *v, *m)
            }
            Self::Ipv6Src(v, m) | Self::Ipv6Dst(v, m) => put_masked(p, *v, *m),
            Self::Other { payload, .. } => {
                p.copy_from_slice(payload);
                len
            }
        };
    }
}

/// An `ofp_match` of type OXM: `{type: u16 = 1, length: u16, oxm_fields, pad to 8}`, where
/// `length` counts the 4-byte header and the fields but not the padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Match {
    /// The fields, in wire order.
    pub fields: Vec<OxmField>,
}

impl Match {
    /// An empty match: every packet.
    pub const fn any() -> Self {
        Self { fields: Vec::new() }
    }

    /// Adds a field (builder style).
    #[must_use]
    pub fn with(mut self, field: OxmField) -> Self {
        self.fields.push(field);
        self
    }

    /// Decodes a match from the front of `buf`; returns it and the bytes consumed
    /// (padding included).
    pub fn parse(buf: &[u8]) -> Result<(Self, usize)> {
        check_len(buf, 4, "match", "header")?;
        let kind = get_u16(buf, 0);
        if kind != OFPMT_OXM {
            return Err(Error::bad_value("match", "type", 0, u64::from(kind)));
        }
        let length = usize::from(get_u16(buf, 2));
        if length < 4 {
            return Err(Error::bad_len("match", "length", 2, length));
        }
        let padded = pad8(length);
        check_len(buf, padded, "match", "padding")?;
        let mut fields = Vec::new();
        let mut at = 4;
        while at < length {
            let (f, used) = OxmField::parse(&buf[at..length]).map_err(|e| e.at(at))?;
            fields.push(f);
            at += used;
        }
        Ok((Self { fields }, padded))
    }

    fn unpadded_len(&self) -> usize {
        4 + self.fields.iter().map(OxmField::buffer_len).sum::<usize>()
    }

    /// Bytes on the wire, padding included.
    pub fn buffer_len(&self) -> usize {
        pad8(self.unpadded_len())
    }

    /// Writes the match and its zero padding into `buf[..self.buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let length = self.unpadded_len();
        put_u16(buf, 0, OFPMT_OXM);
        put_u16(buf, 2, length as u16);
        let mut at = 4;
        for f in &self.fields {
            f.emit(&mut buf[at..]);
            at += f.buffer_len();
        }
        buf[length..pad8(length)].fill(0);
    }
}
