//! Switch-level messages: FEATURES_REPLY, GET_CONFIG_REPLY / SET_CONFIG, ROLE request/reply.

use crate::Result;
use crate::types::code_enum;
use crate::wire::{check_len, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};

mod field {
    pub(super) const DATAPATH_ID: usize = 0;
    pub(super) const N_BUFFERS: usize = 8;
    pub(super) const N_TABLES: usize = 12;
    pub(super) const AUXILIARY_ID: usize = 13;
    pub(super) const CAPABILITIES: usize = 16;
    pub(super) const RESERVED: usize = 20;
    pub(super) const FEATURES_LEN: usize = 24;

    pub(super) const CONFIG_FLAGS: usize = 0;
    pub(super) const MISS_SEND_LEN: usize = 2;
    pub(super) const CONFIG_LEN: usize = 4;

    pub(super) const ROLE: usize = 0;
    pub(super) const GENERATION_ID: usize = 8;
    pub(super) const ROLE_LEN: usize = 16;
}

/// OFPT_FEATURES_REPLY (OpenFlow 1.3 has no port list here: use PORT_DESC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeaturesReply {
    /// Datapath id (pin it with `other_config:datapath-id`).
    pub datapath_id: u64,
    /// Packets the switch can buffer.
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// Auxiliary connection id (0 for the main connection).
    pub auxiliary_id: u8,
    /// `OFPC_*` bits.
    pub capabilities: u32,
    /// Reserved word, kept as sent.
    pub reserved: u32,
}

impl FeaturesReply {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::FEATURES_LEN, "features_reply", "body")?;
        Ok(Self {
            datapath_id: get_u64(b, field::DATAPATH_ID),
            n_buffers: get_u32(b, field::N_BUFFERS),
            n_tables: b[field::N_TABLES],
            auxiliary_id: b[field::AUXILIARY_ID],
            capabilities: get_u32(b, field::CAPABILITIES),
            reserved: get_u32(b, field::RESERVED),
        })
    }

    /// Bytes of the body.
    pub const fn buffer_len(&self) -> usize {
        field::FEATURES_LEN
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::FEATURES_LEN].fill(0);
        put_u64(b, field::DATAPATH_ID, self.datapath_id);
        put_u32(b, field::N_BUFFERS, self.n_buffers);
        b[field::N_TABLES] = self.n_tables;
        b[field::AUXILIARY_ID] = self.auxiliary_id;
        put_u32(b, field::CAPABILITIES, self.capabilities);
        put_u32(b, field::RESERVED, self.reserved);
    }
}

/// The body of GET_CONFIG_REPLY and SET_CONFIG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*` bits.
    pub flags: u16,
    /// Bytes of a table-miss packet sent to the controller. OVS sends no asynchronous
    /// messages at all on its `.mgmt` service socket until this is nonzero.
    pub miss_send_len: u16,
}

impl SwitchConfig {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::CONFIG_LEN, "switch_config", "body")?;
        Ok(Self {
            flags: get_u16(b, field::CONFIG_FLAGS),
            miss_send_len: get_u16(b, field::MISS_SEND_LEN),
        })
    }

    /// Bytes of the body.
    pub const fn buffer_len(&self) -> usize {
        field::CONFIG_LEN
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        put_u16(b, field::CONFIG_FLAGS, self.flags);
        put_u16(b, field::MISS_SEND_LEN, self.miss_send_len);
    }
}

code_enum! {
    /// Controller roles (`ofp_controller_role`).
    pub enum ControllerRole: u32 { NoChange = 0, Equal = 1, Master = 2, Slave = 3 }
}

/// The body of ROLE_REQUEST and ROLE_REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// The role.
    pub role: ControllerRole,
    /// Master election generation id.
    pub generation_id: u64,
}

impl Role {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::ROLE_LEN, "role", "body")?;
        Ok(Self {
            role: get_u32(b, field::ROLE).into(),
            generation_id: get_u64(b, field::GENERATION_ID),
        })
    }

    /// Bytes of the body.
    pub const fn buffer_len(&self) -> usize {
        field::ROLE_LEN
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::ROLE_LEN].fill(0);
        put_u32(b, field::ROLE, self.role.into());
        put_u64(b, field::GENERATION_ID, self.generation_id);
    }
}
