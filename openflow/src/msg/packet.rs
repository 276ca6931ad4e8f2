//! PACKET_IN and PACKET_OUT.

use crate::action::Action;
use crate::oxm::Match;
use crate::types::code_enum;
use crate::wire::{check_len, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use crate::{Error, Result};

mod field {
    pub(super) const BUFFER_ID: usize = 0;
    pub(super) const TOTAL_LEN: usize = 4;
    pub(super) const REASON: usize = 6;
    pub(super) const TABLE_ID: usize = 7;
    pub(super) const COOKIE: usize = 8;
    pub(super) const MATCH: usize = 16;
    /// Two pad bytes after the match put the Ethernet payload's IP header on a 4-byte boundary.
    pub(super) const PAD_AFTER_MATCH: usize = 2;

    pub(super) const IN_PORT: usize = 4;
    pub(super) const ACTIONS_LEN: usize = 8;
    pub(super) const ACTIONS: usize = 16;
}

code_enum! {
    /// Why a packet was sent to the controller.
    pub enum PacketInReason: u8 { NoMatch = 0, Action = 1, InvalidTtl = 2 }
}

/// OFPT_PACKET_IN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketIn {
    /// Buffer id, or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// Full length of the frame.
    pub total_len: u16,
    /// Why.
    pub reason: PacketInReason,
    /// Table that was looked up.
    pub table_id: u8,
    /// Cookie of the flow that sent it.
    pub cookie: u64,
    /// Pipeline fields (in_port, tunnel_id, ...).
    pub r#match: Match,
    /// The frame (possibly truncated to `max_len`).
    pub data: Vec<u8>,
}

impl PacketIn {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::MATCH, "packet_in", "body")?;
        let (m, used) = Match::parse(&b[field::MATCH..]).map_err(|e| e.at(field::MATCH))?;
        let data_at = field::MATCH + used + field::PAD_AFTER_MATCH;
        check_len(b, data_at, "packet_in", "pad")?;
        Ok(Self {
            buffer_id: get_u32(b, field::BUFFER_ID),
            total_len: get_u16(b, field::TOTAL_LEN),
            reason: b[field::REASON].into(),
            table_id: b[field::TABLE_ID],
            cookie: get_u64(b, field::COOKIE),
            r#match: m,
            data: b[data_at..].to_vec(),
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::MATCH + self.r#match.buffer_len() + field::PAD_AFTER_MATCH + self.data.len()
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        put_u32(b, field::BUFFER_ID, self.buffer_id);
        put_u16(b, field::TOTAL_LEN, self.total_len);
        b[field::REASON] = self.reason.into();
        b[field::TABLE_ID] = self.table_id;
        put_u64(b, field::COOKIE, self.cookie);
        self.r#match.emit(&mut b[field::MATCH..]);
        let pad_at = field::MATCH + self.r#match.buffer_len();
        b[pad_at..pad_at + field::PAD_AFTER_MATCH].fill(0);
        b[pad_at + field::PAD_AFTER_MATCH..].copy_from_slice(&self.data);
    }
}

/// OFPT_PACKET_OUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketOut {
    /// Buffered packet to send, or `OFP_NO_BUFFER` with the frame in `data`.
    pub buffer_id: u32,
    /// Input port for the pipeline (`OFPP_CONTROLLER` when none).
    pub in_port: u32,
    /// Actions to apply.
    pub actions: Vec<Action>,
    /// The frame, when not buffered.
    pub data: Vec<u8>,
}

impl PacketOut {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::ACTIONS, "packet_out", "body")?;
        let actions_len = usize::from(get_u16(b, field::ACTIONS_LEN));
        let end = field::ACTIONS + actions_len;
        if end > b.len() {
            return Err(Error::bad_len(
                "packet_out",
                "actions_len",
                field::ACTIONS_LEN,
                actions_len,
            ));
        }
        let actions =
            Action::parse_list(&b[field::ACTIONS..end]).map_err(|e| e.at(field::ACTIONS))?;
        Ok(Self {
            buffer_id: get_u32(b, field::BUFFER_ID),
            in_port: get_u32(b, field::IN_PORT),
            actions,
            data: b[end..].to_vec(),
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::ACTIONS + Action::list_len(&self.actions) + self.data.len()
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        let actions_len = Action::list_len(&self.actions);
        b[..field::ACTIONS].fill(0);
        put_u32(b, field::BUFFER_ID, self.buffer_id);
        put_u32(b, field::IN_PORT, self.in_port);
        put_u16(b, field::ACTIONS_LEN, actions_len as u16);
        Action::emit_list(&self.actions, &mut b[field::ACTIONS..]);
        b[field::ACTIONS + actions_len..].copy_from_slice(&self.data);
    }
}
