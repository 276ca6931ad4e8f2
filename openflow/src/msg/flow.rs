//! FLOW_MOD and FLOW_REMOVED.

use crate::Result;
use crate::action::Action;
use crate::instruction::Instruction;
use crate::oxm::{Match, OxmField};
use crate::types::{OFP_NO_BUFFER, code_enum, group::OFPG_ANY, port::OFPP_ANY};
use crate::wire::{check_len, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};

mod field {
    pub(super) const COOKIE: usize = 0;
    pub(super) const COOKIE_MASK: usize = 8;
    pub(super) const TABLE_ID: usize = 16;
    pub(super) const COMMAND: usize = 17;
    pub(super) const IDLE_TIMEOUT: usize = 18;
    pub(super) const HARD_TIMEOUT: usize = 20;
    pub(super) const PRIORITY: usize = 22;
    pub(super) const BUFFER_ID: usize = 24;
    pub(super) const OUT_PORT: usize = 28;
    pub(super) const OUT_GROUP: usize = 32;
    pub(super) const FLAGS: usize = 36;
    pub(super) const MATCH: usize = 40;

    pub(super) const REM_PRIORITY: usize = 8;
    pub(super) const REM_REASON: usize = 10;
    pub(super) const REM_TABLE_ID: usize = 11;
    pub(super) const REM_DURATION_SEC: usize = 12;
    pub(super) const REM_DURATION_NSEC: usize = 16;
    pub(super) const REM_IDLE_TIMEOUT: usize = 20;
    pub(super) const REM_HARD_TIMEOUT: usize = 22;
    pub(super) const REM_PACKET_COUNT: usize = 24;
    pub(super) const REM_BYTE_COUNT: usize = 32;
    pub(super) const REM_MATCH: usize = 40;
}

code_enum! {
    /// FLOW_MOD commands.
    pub enum FlowModCommand: u8 { Add = 0, Modify = 1, ModifyStrict = 2, Delete = 3, DeleteStrict = 4 }
}

/// The priority `ovs-ofctl` uses when none is given.
pub const OFP_DEFAULT_PRIORITY: u16 = 0x8000;

/// OFPT_FLOW_MOD. Build one with [`FlowMod::add`] / [`FlowMod::delete`] and the
/// consuming setters.
///
/// OVS semantics worth knowing (OpenFlow 1.2+): MODIFY never adds a flow and never changes
/// the cookie (`cookie`/`cookie_mask` only filter); DELETE across tables needs
/// `table_id = OFPTT_ALL`, `out_port = OFPP_ANY` and `out_group = OFPG_ANY` (the defaults here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMod {
    /// Opaque controller-issued id.
    pub cookie: u64,
    /// Cookie bits that must match, for modify and delete.
    pub cookie_mask: u64,
    /// Table, or `OFPTT_ALL` for deletes.
    pub table_id: u8,
    /// What to do.
    pub command: FlowModCommand,
    /// Idle seconds before expiry (0: never).
    pub idle_timeout: u16,
    /// Seconds before expiry (0: never).
    pub hard_timeout: u16,
    /// Priority.
    pub priority: u16,
    /// Buffered packet to apply to, or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// For deletes: only flows that output to this port (`OFPP_ANY`: any).
    pub out_port: u32,
    /// For deletes: only flows that output to this group (`OFPG_ANY`: any).
    pub out_group: u32,
    /// `OFPFF_*` bits.
    pub flags: u16,
    /// The match.
    pub r#match: Match,
    /// Instructions; none at all (or an empty apply-actions) drops.
    pub instructions: Vec<Instruction>,
}

impl FlowMod {
    /// A flow mod with every option at its neutral value.
    pub const fn new(command: FlowModCommand, table_id: u8) -> Self {
        Self {
            cookie: 0,
            cookie_mask: 0,
            table_id,
            command,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: OFP_DEFAULT_PRIORITY,
            buffer_id: OFP_NO_BUFFER,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            flags: 0,
            r#match: Match::any(),
            instructions: Vec::new(),
        }
    }

    /// OFPFC_ADD into `table_id`.
    pub const fn add(table_id: u8) -> Self {
        Self::new(FlowModCommand::Add, table_id)
    }

    /// OFPFC_DELETE in `table_id` (`OFPTT_ALL` for every table).
    pub const fn delete(table_id: u8) -> Self {
        Self::new(FlowModCommand::Delete, table_id)
    }

    /// OFPFC_DELETE_STRICT in `table_id` (match and priority must be equal).
    pub const fn delete_strict(table_id: u8) -> Self {
        Self::new(FlowModCommand::DeleteStrict, table_id)
    }

    /// OFPFC_MODIFY in `table_id`.
    pub const fn modify(table_id: u8) -> Self {
        Self::new(FlowModCommand::Modify, table_id)
    }

    /// OFPFC_MODIFY_STRICT in `table_id`.
    pub const fn modify_strict(table_id: u8) -> Self {
        Self::new(FlowModCommand::ModifyStrict, table_id)
    }

    /// Sets the priority.
    #[must_use]
    pub const fn priority(mut self, priority: u16) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the cookie (for add).
    #[must_use]
    pub const fn cookie(mut self, cookie: u64) -> Self {
        self.cookie = cookie;
        self
    }

    /// Restricts modify/delete to flows whose cookie equals `cookie` under `mask`.
    #[must_use]
    pub const fn cookie_filter(mut self, cookie: u64, mask: u64) -> Self {
        self.cookie = cookie;
        self.cookie_mask = mask;
        self
    }

    /// Sets the idle timeout in seconds.
    #[must_use]
    pub const fn idle_timeout(mut self, secs: u16) -> Self {
        self.idle_timeout = secs;
        self
    }

    /// Sets the hard timeout in seconds.
    #[must_use]
    pub const fn hard_timeout(mut self, secs: u16) -> Self {
        self.hard_timeout = secs;
        self
    }

    /// Sets the `OFPFF_*` flags.
    #[must_use]
    pub const fn flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the buffered packet to apply the flow to.
    #[must_use]
    pub const fn buffer_id(mut self, buffer_id: u32) -> Self {
        self.buffer_id = buffer_id;
        self
    }

    /// Restricts deletes to flows that output to `port`.
    #[must_use]
    pub const fn out_port(mut self, port: u32) -> Self {
        self.out_port = port;
        self
    }

    /// Restricts deletes to flows that output to `group`.
    #[must_use]
    pub const fn out_group(mut self, group: u32) -> Self {
        self.out_group = group;
        self
    }

    /// Adds one match field.
    #[must_use]
    pub fn match_field(mut self, field: OxmField) -> Self {
        self.r#match.fields.push(field);
        self
    }

    /// Replaces the whole match.
    #[must_use]
    pub fn with_match(mut self, m: Match) -> Self {
        self.r#match = m;
        self
    }

    /// Adds an apply-actions instruction (an empty list means drop).
    #[must_use]
    pub fn apply_actions(mut self, actions: Vec<Action>) -> Self {
        self.instructions.push(Instruction::ApplyActions(actions));
        self
    }

    /// Adds a goto-table instruction.
    #[must_use]
    pub fn goto_table(mut self, table_id: u8) -> Self {
        self.instructions.push(Instruction::GotoTable(table_id));
        self
    }

    /// Adds any instruction.
    #[must_use]
    pub fn instruction(mut self, instruction: Instruction) -> Self {
        self.instructions.push(instruction);
        self
    }

    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::MATCH, "flow_mod", "body")?;
        let (m, used) = Match::parse(&b[field::MATCH..]).map_err(|e| e.at(field::MATCH))?;
        let at = field::MATCH + used;
        let instructions = Instruction::parse_list(&b[at..]).map_err(|e| e.at(at))?;
        Ok(Self {
            cookie: get_u64(b, field::COOKIE),
            cookie_mask: get_u64(b, field::COOKIE_MASK),
            table_id: b[field::TABLE_ID],
            command: b[field::COMMAND].into(),
            idle_timeout: get_u16(b, field::IDLE_TIMEOUT),
            hard_timeout: get_u16(b, field::HARD_TIMEOUT),
            priority: get_u16(b, field::PRIORITY),
            buffer_id: get_u32(b, field::BUFFER_ID),
            out_port: get_u32(b, field::OUT_PORT),
            out_group: get_u32(b, field::OUT_GROUP),
            flags: get_u16(b, field::FLAGS),
            r#match: m,
            instructions,
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::MATCH + self.r#match.buffer_len() + Instruction::list_len(&self.instructions)
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::MATCH].fill(0);
        put_u64(b, field::COOKIE, self.cookie);
        put_u64(b, field::COOKIE_MASK, self.cookie_mask);
        b[field::TABLE_ID] = self.table_id;
        b[field::COMMAND] = self.command.into();
        put_u16(b, field::IDLE_TIMEOUT, self.idle_timeout);
        put_u16(b, field::HARD_TIMEOUT, self.hard_timeout);
        put_u16(b, field::PRIORITY, self.priority);
        put_u32(b, field::BUFFER_ID, self.buffer_id);
        put_u32(b, field::OUT_PORT, self.out_port);
        put_u32(b, field::OUT_GROUP, self.out_group);
        put_u16(b, field::FLAGS, self.flags);
        self.r#match.emit(&mut b[field::MATCH..]);
        Instruction::emit_list(
            &self.instructions,
            &mut b[field::MATCH + self.r#match.buffer_len()..],
        );
    }
}

code_enum! {
    /// Why a flow was removed.
    pub enum FlowRemovedReason: u8 { IdleTimeout = 0, HardTimeout = 1, Delete = 2, GroupDelete = 3 }
}

/// OFPT_FLOW_REMOVED (sent for flows with `OFPFF_SEND_FLOW_REM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRemoved {
    /// The flow's cookie.
    pub cookie: u64,
    /// The flow's priority.
    pub priority: u16,
    /// Why.
    pub reason: FlowRemovedReason,
    /// The flow's table.
    pub table_id: u8,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds alive beyond `duration_sec`.
    pub duration_nsec: u32,
    /// The flow's idle timeout.
    pub idle_timeout: u16,
    /// The flow's hard timeout.
    pub hard_timeout: u16,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The flow's match.
    pub r#match: Match,
}

impl FlowRemoved {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::REM_MATCH, "flow_removed", "body")?;
        let (m, _) = Match::parse(&b[field::REM_MATCH..]).map_err(|e| e.at(field::REM_MATCH))?;
        Ok(Self {
            cookie: get_u64(b, field::COOKIE),
            priority: get_u16(b, field::REM_PRIORITY),
            reason: b[field::REM_REASON].into(),
            table_id: b[field::REM_TABLE_ID],
            duration_sec: get_u32(b, field::REM_DURATION_SEC),
            duration_nsec: get_u32(b, field::REM_DURATION_NSEC),
            idle_timeout: get_u16(b, field::REM_IDLE_TIMEOUT),
            hard_timeout: get_u16(b, field::REM_HARD_TIMEOUT),
            packet_count: get_u64(b, field::REM_PACKET_COUNT),
            byte_count: get_u64(b, field::REM_BYTE_COUNT),
            r#match: m,
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::REM_MATCH + self.r#match.buffer_len()
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        put_u64(b, field::COOKIE, self.cookie);
        put_u16(b, field::REM_PRIORITY, self.priority);
        b[field::REM_REASON] = self.reason.into();
        b[field::REM_TABLE_ID] = self.table_id;
        put_u32(b, field::REM_DURATION_SEC, self.duration_sec);
        put_u32(b, field::REM_DURATION_NSEC, self.duration_nsec);
        put_u16(b, field::REM_IDLE_TIMEOUT, self.idle_timeout);
        put_u16(b, field::REM_HARD_TIMEOUT, self.hard_timeout);
        put_u64(b, field::REM_PACKET_COUNT, self.packet_count);
        put_u64(b, field::REM_BYTE_COUNT, self.byte_count);
        self.r#match.emit(&mut b[field::REM_MATCH..]);
    }
}
