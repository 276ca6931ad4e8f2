//! OFPT_ERROR: every OpenFlow 1.3 error type and code, plus experimenter errors.

use crate::Result;
use crate::types::code_enum;
use crate::wire::{check_len, get_u16, get_u32, put_u16, put_u32};

code_enum! {
    /// OFPET_HELLO_FAILED codes.
    pub enum HelloFailedCode: u16 { Incompatible = 0, Eperm = 1 }
}
code_enum! {
    /// OFPET_BAD_REQUEST codes.
    pub enum BadRequestCode: u16 {
        BadVersion = 0, BadType = 1, BadMultipart = 2, BadExperimenter = 3, BadExpType = 4,
        Eperm = 5, BadLen = 6, BufferEmpty = 7, BufferUnknown = 8, BadTableId = 9,
        IsSlave = 10, BadPort = 11, BadPacket = 12, MultipartBufferOverflow = 13,
    }
}
code_enum! {
    /// OFPET_BAD_ACTION codes.
    pub enum BadActionCode: u16 {
        BadType = 0, BadLen = 1, BadExperimenter = 2, BadExpType = 3, BadOutPort = 4,
        BadArgument = 5, Eperm = 6, TooMany = 7, BadQueue = 8, BadOutGroup = 9,
        MatchInconsistent = 10, UnsupportedOrder = 11, BadTag = 12, BadSetType = 13,
        BadSetLen = 14, BadSetArgument = 15,
    }
}
code_enum! {
    /// OFPET_BAD_INSTRUCTION codes.
    pub enum BadInstructionCode: u16 {
        UnknownInst = 0, UnsupInst = 1, BadTableId = 2, UnsupMetadata = 3,
        UnsupMetadataMask = 4, BadExperimenter = 5, BadExpType = 6, BadLen = 7, Eperm = 8,
    }
}
code_enum! {
    /// OFPET_BAD_MATCH codes.
    pub enum BadMatchCode: u16 {
        BadType = 0, BadLen = 1, BadTag = 2, BadDlAddrMask = 3, BadNwAddrMask = 4,
        BadWildcards = 5, BadField = 6, BadValue = 7, BadMask = 8, BadPrereq = 9,
        DupField = 10, Eperm = 11,
    }
}
code_enum! {
    /// OFPET_FLOW_MOD_FAILED codes.
    pub enum FlowModFailedCode: u16 {
        UnknownError = 0, TableFull = 1, BadTableId = 2, Overlap = 3, Eperm = 4,
        BadTimeout = 5, BadCommand = 6, BadFlags = 7,
    }
}
code_enum! {
    /// OFPET_GROUP_MOD_FAILED codes.
    pub enum GroupModFailedCode: u16 {
        GroupExists = 0, InvalidGroup = 1, WeightUnsupported = 2, OutOfGroups = 3,
        OutOfBuckets = 4, ChainingUnsupported = 5, WatchUnsupported = 6, Loop = 7,
        UnknownGroup = 8, ChainedGroup = 9, BadType = 10, BadCommand = 11, BadBucket = 12,
        BadWatch = 13, Eperm = 14,
    }
}
code_enum! {
    /// OFPET_PORT_MOD_FAILED codes.
    pub enum PortModFailedCode: u16 {
        BadPort = 0, BadHwAddr = 1, BadConfig = 2, BadAdvertise = 3, Eperm = 4,
    }
}
code_enum! {
    /// OFPET_TABLE_MOD_FAILED codes.
    pub enum TableModFailedCode: u16 { BadTable = 0, BadConfig = 1, Eperm = 2 }
}
code_enum! {
    /// OFPET_QUEUE_OP_FAILED codes.
    pub enum QueueOpFailedCode: u16 { BadPort = 0, BadQueue = 1, Eperm = 2 }
}
code_enum! {
    /// OFPET_SWITCH_CONFIG_FAILED codes.
    pub enum SwitchConfigFailedCode: u16 { BadFlags = 0, BadLen = 1, Eperm = 2 }
}
code_enum! {
    /// OFPET_ROLE_REQUEST_FAILED codes.
    pub enum RoleRequestFailedCode: u16 { Stale = 0, Unsup = 1, BadRole = 2 }
}
code_enum! {
    /// OFPET_METER_MOD_FAILED codes.
    pub enum MeterModFailedCode: u16 {
        UnknownError = 0, MeterExists = 1, InvalidMeter = 2, UnknownMeter = 3, BadCommand = 4,
        BadFlags = 5, BadRate = 6, BadBurst = 7, BadBand = 8, BadBandValue = 9,
        OutOfMeters = 10, OutOfBands = 11,
    }
}
code_enum! {
    /// OFPET_TABLE_FEATURES_FAILED codes.
    pub enum TableFeaturesFailedCode: u16 {
        BadTable = 0, BadMetadata = 1, BadType = 2, BadLen = 3, BadArgument = 4, Eperm = 5,
    }
}

mod ty {
    pub(super) const HELLO_FAILED: u16 = 0;
    pub(super) const BAD_REQUEST: u16 = 1;
    pub(super) const BAD_ACTION: u16 = 2;
    pub(super) const BAD_INSTRUCTION: u16 = 3;
    pub(super) const BAD_MATCH: u16 = 4;
    pub(super) const FLOW_MOD_FAILED: u16 = 5;
    pub(super) const GROUP_MOD_FAILED: u16 = 6;
    pub(super) const PORT_MOD_FAILED: u16 = 7;
    pub(super) const TABLE_MOD_FAILED: u16 = 8;
    pub(super) const QUEUE_OP_FAILED: u16 = 9;
    pub(super) const SWITCH_CONFIG_FAILED: u16 = 10;
    pub(super) const ROLE_REQUEST_FAILED: u16 = 11;
    pub(super) const METER_MOD_FAILED: u16 = 12;
    pub(super) const TABLE_FEATURES_FAILED: u16 = 13;
    pub(super) const EXPERIMENTER: u16 = 0xffff;
}

/// The error type and code of an OFPT_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// OFPET_HELLO_FAILED.
    HelloFailed(HelloFailedCode),
    /// OFPET_BAD_REQUEST.
    BadRequest(BadRequestCode),
    /// OFPET_BAD_ACTION.
    BadAction(BadActionCode),
    /// OFPET_BAD_INSTRUCTION.
    BadInstruction(BadInstructionCode),
    /// OFPET_BAD_MATCH.
    BadMatch(BadMatchCode),
    /// OFPET_FLOW_MOD_FAILED.
    FlowModFailed(FlowModFailedCode),
    /// OFPET_GROUP_MOD_FAILED.
    GroupModFailed(GroupModFailedCode),
    /// OFPET_PORT_MOD_FAILED.
    PortModFailed(PortModFailedCode),
    /// OFPET_TABLE_MOD_FAILED.
    TableModFailed(TableModFailedCode),
    /// OFPET_QUEUE_OP_FAILED.
    QueueOpFailed(QueueOpFailedCode),
    /// OFPET_SWITCH_CONFIG_FAILED.
    SwitchConfigFailed(SwitchConfigFailedCode),
    /// OFPET_ROLE_REQUEST_FAILED.
    RoleRequestFailed(RoleRequestFailedCode),
    /// OFPET_METER_MOD_FAILED.
    MeterModFailed(MeterModFailedCode),
    /// OFPET_TABLE_FEATURES_FAILED.
    TableFeaturesFailed(TableFeaturesFailedCode),
    /// OFPET_EXPERIMENTER (e.g. the ONF bundle errors OVS sends on 1.3).
    Experimenter {
        /// Experimenter-defined type.
        exp_type: u16,
        /// Experimenter id.
        experimenter: u32,
    },
    /// An error type this crate does not know.
    Unknown {
        /// Error type.
        err_type: u16,
        /// Error code.
        code: u16,
    },
}

impl ErrorKind {
    /// `(type, code)` as on the wire; for experimenter errors the code is `exp_type`.
    pub fn type_code(&self) -> (u16, u16) {
        match *self {
            Self::HelloFailed(c) => (ty::HELLO_FAILED, c.into()),
            Self::BadRequest(c) => (ty::BAD_REQUEST, c.into()),
            Self::BadAction(c) => (ty::BAD_ACTION, c.into()),
            Self::BadInstruction(c) => (ty::BAD_INSTRUCTION, c.into()),
            Self::BadMatch(c) => (ty::BAD_MATCH, c.into()),
            Self::FlowModFailed(c) => (ty::FLOW_MOD_FAILED, c.into()),
            Self::GroupModFailed(c) => (ty::GROUP_MOD_FAILED, c.into()),
            Self::PortModFailed(c) => (ty::PORT_MOD_FAILED, c.into()),
            Self::TableModFailed(c) => (ty::TABLE_MOD_FAILED, c.into()),
            Self::QueueOpFailed(c) => (ty::QUEUE_OP_FAILED, c.into()),
            Self::SwitchConfigFailed(c) => (ty::SWITCH_CONFIG_FAILED, c.into()),
            Self::RoleRequestFailed(c) => (ty::ROLE_REQUEST_FAILED, c.into()),
            Self::MeterModFailed(c) => (ty::METER_MOD_FAILED, c.into()),
            Self::TableFeaturesFailed(c) => (ty::TABLE_FEATURES_FAILED, c.into()),
            Self::Experimenter { exp_type, .. } => (ty::EXPERIMENTER, exp_type),
            Self::Unknown { err_type, code } => (err_type, code),
        }
    }

    fn from_type_code(err_type: u16, code: u16) -> Self {
        match err_type {
            ty::HELLO_FAILED => Self::HelloFailed(code.into()),
            ty::BAD_REQUEST => Self::BadRequest(code.into()),
            ty::BAD_ACTION => Self::BadAction(code.into()),
            ty::BAD_INSTRUCTION => Self::BadInstruction(code.into()),
            ty::BAD_MATCH => Self::BadMatch(code.into()),
            ty::FLOW_MOD_FAILED => Self::FlowModFailed(code.into()),
            ty::GROUP_MOD_FAILED => Self::GroupModFailed(code.into()),
            ty::PORT_MOD_FAILED => Self::PortModFailed(code.into()),
            ty::TABLE_MOD_FAILED => Self::TableModFailed(code.into()),
            ty::QUEUE_OP_FAILED => Self::QueueOpFailed(code.into()),
            ty::SWITCH_CONFIG_FAILED => Self::SwitchConfigFailed(code.into()),
            ty::ROLE_REQUEST_FAILED => Self::RoleRequestFailed(code.into()),
            ty::METER_MOD_FAILED => Self::MeterModFailed(code.into()),
            ty::TABLE_FEATURES_FAILED => Self::TableFeaturesFailed(code.into()),
            err_type => Self::Unknown { err_type, code },
        }
    }
}

/// OFPT_ERROR: the error kind and (at least 64 bytes of) the offending request, kept raw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorMsg {
    /// Type and code.
    pub kind: ErrorKind,
    /// The start of the offending message (or, for HELLO_FAILED, an ASCII reason).
    pub data: Vec<u8>,
}

impl std::fmt::Display for ErrorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (t, c) = self.kind.type_code();
        write!(f, "OpenFlow error {:?} (type {t}, code {c})", self.kind)?;
        if let Some(&msg_type) = self.data.get(1) {
            write!(f, " for message type {msg_type}")?;
        }
        Ok(())
    }
}

impl ErrorMsg {
    /// An error with no data.
    pub const fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            data: Vec::new(),
        }
    }

    /// The xid of the offending message, read from the echoed header in `data`.
    pub fn offending_xid(&self) -> Option<u32> {
        (self.data.len() >= 8).then(|| get_u32(&self.data, 4))
    }

    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, 4, "error", "code")?;
        let err_type = get_u16(b, 0);
        let code = get_u16(b, 2);
        if err_type == ty::EXPERIMENTER {
            check_len(b, 8, "error", "experimenter")?;
            let kind = ErrorKind::Experimenter {
                exp_type: code,
                experimenter: get_u32(b, 4),
            };
            return Ok(Self {
                kind,
                data: b[8..].to_vec(),
            });
        }
        Ok(Self {
            kind: ErrorKind::from_type_code(err_type, code),
            data: b[4..].to_vec(),
        })
    }

    fn header_len(&self) -> usize {
        if matches!(self.kind, ErrorKind::Experimenter { .. }) {
            8
        } else {
            4
        }
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.data.len()
    }

    /// Writes the body.
    pub fn emit(&self, buf: &mut [u8]) {
        let (t, c) = self.kind.type_code();
        put_u16(buf, 0, t);
        put_u16(buf, 2, c);
        if let ErrorKind::Experimenter { experimenter, .. } = self.kind {
            put_u32(buf, 4, experimenter);
        }
        let h = self.header_len();
        buf[h..h + self.data.len()].copy_from_slice(&self.data);
    }
}
