//! Actions (`ofp_action_*`): 8-byte aligned TLVs whose length includes the padding.
//!
//! "Drop" is an empty action list.

use crate::Result;
use crate::oxm::OxmField;
use crate::wire::{
    Tlv, check_len, emit_tlvs, get_u16, get_u32, parse_tlvs, put_u16, put_u32, tlvs_len,
};

mod kind {
    pub(super) const OUTPUT: u16 = 0;
    pub(super) const COPY_TTL_OUT: u16 = 11;
    pub(super) const COPY_TTL_IN: u16 = 12;
    pub(super) const SET_MPLS_TTL: u16 = 15;
    pub(super) const DEC_MPLS_TTL: u16 = 16;
    pub(super) const PUSH_VLAN: u16 = 17;
    pub(super) const POP_VLAN: u16 = 18;
    pub(super) const PUSH_MPLS: u16 = 19;
    pub(super) const POP_MPLS: u16 = 20;
    pub(super) const SET_QUEUE: u16 = 21;
    pub(super) const GROUP: u16 = 22;
    pub(super) const SET_NW_TTL: u16 = 23;
    pub(super) const DEC_NW_TTL: u16 = 24;
    pub(super) const SET_FIELD: u16 = 25;
    pub(super) const PUSH_PBB: u16 = 26;
    pub(super) const POP_PBB: u16 = 27;
    pub(super) const EXPERIMENTER: u16 = 0xffff;
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Output to a port; `max_len` bytes go to the controller when `port` is
    /// `OFPP_CONTROLLER` (use `OFPCML_NO_BUFFER` for the whole packet).
    Output {
        /// Output port.
        port: u32,
        /// Bytes to send to the controller.
        max_len: u16,
    },
    /// Copy TTL outwards.
    CopyTtlOut,
    /// Copy TTL inwards.
    CopyTtlIn,
    /// Set the MPLS TTL.
    SetMplsTtl(u8),
    /// Decrement the MPLS TTL.
    DecMplsTtl,
    /// Push a VLAN tag with this ethertype (0x8100 or 0x88a8).
    PushVlan(u16),
    /// Pop the outer VLAN tag.
    PopVlan,
    /// Push an MPLS label with this ethertype.
    PushMpls(u16),
    /// Pop an MPLS label; the ethertype is that of the payload.
    PopMpls(u16),
    /// Set the output queue.
    SetQueue(u32),
    /// Apply a group.
    Group(u32),
    /// Set the IP TTL.
    SetNwTtl(u8),
    /// Decrement the IP TTL.
    DecNwTtl,
    /// Set a header field (e.g. `OxmField::TunnelId` for the VXLAN VNI).
    SetField(OxmField),
    /// Push a PBB service tag.
    PushPbb(u16),
    /// Pop the outer PBB service tag.
    PopPbb,
    /// An experimenter action; `data` is everything after the experimenter id, padding included.
    Experimenter {
        /// Experimenter id.
        experimenter: u32,
        /// Raw payload.
        data: Vec<u8>,
    },
    /// An action type this crate does not know, kept as sent (body after the 4-byte header).
    Unknown {
        /// Action type.
        kind: u16,
        /// Raw body, padding included.
        body: Vec<u8>,
    },
}

impl Tlv for Action {
    const LENGTH_INCLUDES_PADDING: bool = true;

    fn tlv_type(&self) -> u16 {
        match self {
            Self::Output { .. } => kind::OUTPUT,
            Self::CopyTtlOut => kind::COPY_TTL_OUT,
            Self::CopyTtlIn => kind::COPY_TTL_IN,
            Self::SetMplsTtl(_) => kind::SET_MPLS_TTL,
            Self::DecMplsTtl => kind::DEC_MPLS_TTL,
            Self::PushVlan(_) => kind::PUSH_VLAN,
            Self::PopVlan => kind::POP_VLAN,
            Self::PushMpls(_) => kind::PUSH_MPLS,
            Self::PopMpls(_) => kind::POP_MPLS,
            Self::SetQueue(_) => kind::SET_QUEUE,
            Self::Group(_) => kind::GROUP,
            Self::SetNwTtl(_) => kind::SET_NW_TTL,
            Self::DecNwTtl => kind::DEC_NW_TTL,
            Self::SetField(_) => kind::SET_FIELD,
            Self::PushPbb(_) => kind::PUSH_PBB,
            Self::PopPbb => kind::POP_PBB,
            Self::Experimenter { .. } => kind::EXPERIMENTER,
            Self::Unknown { kind, .. } => *kind,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            // port, max_len, pad[6]
            Self::Output { .. } => 12,
            Self::CopyTtlOut
            | Self::CopyTtlIn
            | Self::DecMplsTtl
            | Self::PopVlan
            | Self::DecNwTtl
            | Self::PopPbb => 4,
            Self::SetMplsTtl(_) | Self::SetNwTtl(_) => 4,
            Self::PushVlan(_) | Self::PushMpls(_) | Self::PopMpls(_) | Self::PushPbb(_) => 4,
            Self::SetQueue(_) | Self::Group(_) => 4,
            Self::SetField(f) => f.buffer_len(),
            Self::Experimenter { data, .. } => 4 + data.len(),
            Self::Unknown { body, .. } => body.len(),
        }
    }

    fn emit_body(&self, buf: &mut [u8]) {
        buf.fill(0);
        match self {
            Self::Output { port, max_len } => {
                put_u32(buf, 0, *port);
                put_u16(buf, 4, *max_len);
            }
            Self::SetMplsTtl(ttl) | Self::SetNwTtl(ttl) => buf[0] = *ttl,
            Self::PushVlan(e) | Self::PushMpls(e) | Self::PopMpls(e) | Self::PushPbb(e) => {
                put_u16(buf, 0, *e)
            }
            Self::SetQueue(id) | Self::Group(id) => put_u32(buf, 0, *id),
            Self::SetField(f) => f.emit(buf),
            Self::Experimenter { experimenter, data } => {
                put_u32(buf, 0, *experimenter);
                buf[4..].copy_from_slice(data);
            }
            Self::Unknown { body, .. } => buf.copy_from_slice(body),
            Self::CopyTtlOut
            | Self::CopyTtlIn
            | Self::DecMplsTtl
            | Self::PopVlan
            | Self::DecNwTtl
            | Self::PopPbb => {}
        }
    }
}

impl Action {
    /// Output to `port` with `max_len` 0 (no bytes to the controller).
    pub const fn output(port: u32) -> Self {
        Self::Output { port, max_len: 0 }
    }

    fn parse_body(kind: u16, b: &[u8]) -> Result<Self> {
        // Every known fixed-size action is at least 8 bytes, i.e. a 4-byte body.
        let fixed = |need: usize| check_len(b, need, "action", "body");
        Ok(match kind {
            kind::OUTPUT => {
                fixed(12)?;
                Self::Output {
                    port: get_u32(b, 0),
                    max_len: get_u16(b, 4),
                }
            }
            kind::COPY_TTL_OUT => Self::CopyTtlOut,
            kind::COPY_TTL_IN => Self::CopyTtlIn,
            kind::SET_MPLS_TTL => {
                fixed(4)?;
                Self::SetMplsTtl(b[0])
            }
            kind::DEC_MPLS_TTL => Self::DecMplsTtl,
            kind::PUSH_VLAN | kind::PUSH_MPLS | kind::POP_MPLS | kind::PUSH_PBB => {
                fixed(4)?;
                let e = get_u16(b, 0);
                match kind {
                    kind::PUSH_VLAN => Self::PushVlan(e),
                    kind::PUSH_MPLS => Self::PushMpls(e),
                    kind::POP_MPLS => Self::PopMpls(e),
                    _ => Self::PushPbb(e),
                }
            }
            kind::POP_VLAN => Self::PopVlan,
            kind::SET_QUEUE => {
                fixed(4)?;
                Self::SetQueue(get_u32(b, 0))
            }
            kind::GROUP => {
                fixed(4)?;
                Self::Group(get_u32(b, 0))
            }
            kind::SET_NW_TTL => {
                fixed(4)?;
                Self::SetNwTtl(b[0])
            }
            kind::DEC_NW_TTL => Self::DecNwTtl,
            kind::POP_PBB => Self::PopPbb,
            kind::SET_FIELD => {
                let (field, _) = OxmField::parse(b)?;
                Self::SetField(field)
            }
            kind::EXPERIMENTER => {
                fixed(4)?;
                Self::Experimenter {
                    experimenter: get_u32(b, 0),
                    data: b[4..].to_vec(),
                }
            }
            other => Self::Unknown {
                kind: other,
                body: b.to_vec(),
            },
        })
    }

    /// Decodes a list of actions that fills `buf` exactly.
    pub fn parse_list(buf: &[u8]) -> Result<Vec<Self>> {
        parse_tlvs(buf, "action", Self::parse_body)
    }

    /// Bytes a list of actions occupies.
    pub fn list_len(actions: &[Self]) -> usize {
        tlvs_len(actions)
    }

    /// Writes a list of actions; returns the bytes written.
    pub fn emit_list(actions: &[Self], buf: &mut [u8]) -> usize {
        emit_tlvs(actions, buf)
    }
}
