//! Instructions (`ofp_instruction_*`): 8-byte aligned TLVs whose length includes the padding.

use crate::Result;
use crate::action::Action;
use crate::wire::{
    Tlv, check_len, emit_tlvs, get_u32, get_u64, parse_tlvs, put_u32, put_u64, tlvs_len,
};

mod kind {
    pub(super) const GOTO_TABLE: u16 = 1;
    pub(super) const WRITE_METADATA: u16 = 2;
    pub(super) const WRITE_ACTIONS: u16 = 3;
    pub(super) const APPLY_ACTIONS: u16 = 4;
    pub(super) const CLEAR_ACTIONS: u16 = 5;
    pub(super) const METER: u16 = 6;
    pub(super) const EXPERIMENTER: u16 = 0xffff;
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Instruction {
    /// Continue in a later table.
    GotoTable(u8),
    /// Write metadata under a mask.
    WriteMetadata {
        /// Metadata value.
        metadata: u64,
        /// Bits to change.
        mask: u64,
    },
    /// Merge actions into the action set.
    WriteActions(Vec<Action>),
    /// Apply actions at once. An empty list drops the packet.
    ApplyActions(Vec<Action>),
    /// Clear the action set.
    ClearActions,
    /// Apply a meter.
    Meter(u32),
    /// An experimenter instruction; `data` follows the experimenter id, padding included.
    Experimenter {
        /// Experimenter id.
        experimenter: u32,
        /// Raw payload.
        data: Vec<u8>,
    },
    /// An instruction type this crate does not know, kept as sent.
    Unknown {
        /// Instruction type.
        kind: u16,
        /// Raw body after the 4-byte header, padding included.
        body: Vec<u8>,
    },
}

impl Tlv for Instruction {
    const LENGTH_INCLUDES_PADDING: bool = true;

    fn tlv_type(&self) -> u16 {
        match self {
            Self::GotoTable(_) => kind::GOTO_TABLE,
            Self::WriteMetadata { .. } => kind::WRITE_METADATA,
            Self::WriteActions(_) => kind::WRITE_ACTIONS,
            Self::ApplyActions(_) => kind::APPLY_ACTIONS,
            Self::ClearActions => kind::CLEAR_ACTIONS,
            Self::Meter(_) => kind::METER,
            Self::Experimenter { .. } => kind::EXPERIMENTER,
            Self::Unknown { kind, .. } => *kind,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            // table_id, pad[3]
            Self::GotoTable(_) | Self::ClearActions | Self::Meter(_) => 4,
            // pad[4], metadata, metadata_mask
            Self::WriteMetadata { .. } => 20,
            // pad[4], actions
            Self::WriteActions(a) | Self::ApplyActions(a) => 4 + tlvs_len(a),
            Self::Experimenter { data, .. } => 4 + data.len(),
            Self::Unknown { body, .. } => body.len(),
        }
    }

    fn emit_body(&self, buf: &mut [u8]) {
        buf.fill(0);
        match self {
            Self::GotoTable(t) => buf[0] = *t,
            Self::WriteMetadata { metadata, mask } => {
                put_u64(buf, 4, *metadata);
                put_u64(buf, 12, *mask);
            }
            Self::WriteActions(a) | Self::ApplyActions(a) => {
                emit_tlvs(a, &mut buf[4..]);
            }
            Self::Meter(id) => put_u32(buf, 0, *id),
            Self::Experimenter { experimenter, data } => {
                put_u32(buf, 0, *experimenter);
                buf[4..].copy_from_slice(data);
            }
            Self::Unknown { body, .. } => buf.copy_from_slice(body),
            Self::ClearActions => {}
        }
    }
}

impl Instruction {
    fn parse_body(kind: u16, b: &[u8]) -> Result<Self> {
        // Lengths are multiples of 8 (checked by the TLV splitter), so every body has 4 bytes.
        check_len(b, 4, "instruction", "body")?;
        Ok(match kind {
            kind::GOTO_TABLE => Self::GotoTable(b[0]),
            kind::WRITE_METADATA => {
                check_len(b, 20, "instruction", "metadata")?;
                Self::WriteMetadata {
                    metadata: get_u64(b, 4),
                    mask: get_u64(b, 12),
                }
            }
            kind::WRITE_ACTIONS => {
                Self::WriteActions(Action::parse_list(&b[4..]).map_err(|e| e.at(4))?)
            }
            kind::APPLY_ACTIONS => {
                Self::ApplyActions(Action::parse_list(&b[4..]).map_err(|e| e.at(4))?)
            }
            kind::CLEAR_ACTIONS => Self::ClearActions,
            kind::METER => Self::Meter(get_u32(b, 0)),
            kind::EXPERIMENTER => Self::Experimenter {
                experimenter: get_u32(b, 0),
                data: b[4..].to_vec(),
            },
            other => Self::Unknown {
                kind: other,
                body: b.to_vec(),
            },
        })
    }

    /// Decodes a list of instructions that fills `buf` exactly.
    pub fn parse_list(buf: &[u8]) -> Result<Vec<Self>> {
        parse_tlvs(buf, "instruction", Self::parse_body)
    }

    /// Bytes a list of instructions occupies.
    pub fn list_len(items: &[Self]) -> usize {
        tlvs_len(items)
    }

    /// Writes a list of instructions; returns the bytes written.
    pub fn emit_list(items: &[Self], buf: &mut [u8]) -> usize {
        emit_tlvs(items, buf)
    }
}
