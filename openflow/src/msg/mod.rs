//! OpenFlow messages: the 8-byte header ([`Frame`]) and the typed bodies ([`Message`]).

mod bundle;
mod error;
mod flow;
mod hello;
mod multipart;
mod packet;
mod port;
mod switch;

pub use bundle::{BundleAdd, BundleControl, BundleControlType, Experimenter};
pub use error::{
    BadActionCode, BadInstructionCode, BadMatchCode, BadRequestCode, ErrorKind, ErrorMsg,
    FlowModFailedCode, GroupModFailedCode, HelloFailedCode, MeterModFailedCode, PortModFailedCode,
    QueueOpFailedCode, RoleRequestFailedCode, SwitchConfigFailedCode, TableFeaturesFailedCode,
    TableModFailedCode,
};
pub use flow::{FlowMod, FlowModCommand, FlowRemoved, FlowRemovedReason, OFP_DEFAULT_PRIORITY};
pub use hello::{Hello, HelloElement};
pub use multipart::{
    AggregateStats, Desc, FlowStats, FlowStatsRequest, MultipartReply, MultipartReplyBody,
    MultipartRequest, MultipartRequestBody, PortStats, Reassembler, TableStats,
};
pub use packet::{PacketIn, PacketInReason, PacketOut};
pub use port::{Port, PortMod, PortReason, PortStatus};
pub use switch::{ControllerRole, FeaturesReply, Role, SwitchConfig};

use crate::types::OFP_VERSION;
use crate::wire::{check_len, get_u16, get_u32, put_u16, put_u32};
use crate::{Error, Result};

/// Header offsets (`ofp_header`).
mod field {
    use std::ops::Range;
    pub(super) const VERSION: usize = 0;
    pub(super) const TYPE: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const XID: Range<usize> = 4..8;
    pub(super) const BODY: usize = 8;
}

/// Bytes in the OpenFlow header.
pub const HEADER_LEN: usize = field::BODY;
/// The largest message the 16-bit length field can describe.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// OpenFlow 1.3 message type codes (`ofp_type`), plus the OpenFlow 1.4 bundle types.
pub mod msg_type {
    #![allow(missing_docs)]
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PORT_MOD: u8 = 16;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const BUNDLE_CONTROL: u8 = 33;
    pub const BUNDLE_ADD_MESSAGE: u8 = 34;
}

/// A whole OpenFlow message: header fields plus the typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Wire version; [`OFP_VERSION`] for everything but a peer's HELLO or ERROR.
    pub version: u8,
    /// Transaction id: a reply carries the xid of its request.
    pub xid: u32,
    /// The body.
    pub message: Message,
}

impl Frame {
    /// An OpenFlow 1.3 message.
    pub const fn new(xid: u32, message: Message) -> Self {
        Self {
            version: OFP_VERSION,
            xid,
            message,
        }
    }

    /// The total length announced by the header at the front of `buf`, if it is there.
    pub fn peek_len(buf: &[u8]) -> Option<usize> {
        (buf.len() >= HEADER_LEN).then(|| usize::from(get_u16(buf, field::LENGTH.start)))
    }

    /// The xid in the header at the front of `buf`, if it is there.
    pub fn peek_xid(buf: &[u8]) -> Option<u32> {
        (buf.len() >= HEADER_LEN).then(|| get_u32(buf, field::XID.start))
    }

    /// Decodes one message from the front of `buf` (bytes after its `length` are ignored).
    ///
    /// Messages of a version other than 1.3 are decoded only as far as HELLO and ERROR,
    /// whose layout is the same in every version; anything else is kept as
    /// [`Message::Unknown`].
    pub fn parse(buf: &[u8]) -> Result<Self> {
        Self::parse_nested(buf, false)
    }

    pub(crate) fn parse_nested(buf: &[u8], inside_bundle: bool) -> Result<Self> {
        check_len(buf, HEADER_LEN, "header", "header")?;
        let length = usize::from(get_u16(buf, field::LENGTH.start));
        if length < HEADER_LEN {
            return Err(Error::bad_len(
                "header",
                "length",
                field::LENGTH.start,
                length,
            ));
        }
        check_len(buf, length, "header", "body")?;
        let version = buf[field::VERSION];
        let msg_type = buf[field::TYPE];
        let xid = get_u32(buf, field::XID.start);
        let body = &buf[HEADER_LEN..length];
        let message = Message::parse_body(version, msg_type, body, inside_bundle)
            .map_err(|e| e.at(HEADER_LEN))?;
        Ok(Self {
            version,
            xid,
            message,
        })
    }

    /// Bytes on the wire.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.message.body_len()
    }

    /// Writes the message into `buf[..self.buffer_len()]`.
    ///
    /// # Panics
    /// If `buf` is too short, or if the message is longer than [`MAX_MESSAGE_LEN`]
    /// (check [`buffer_len`](Self::buffer_len) first; [`to_vec`](Self::to_vec) does).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        assert!(
            len <= MAX_MESSAGE_LEN,
            "OpenFlow message of {len} bytes exceeds 65535"
        );
        buf[field::VERSION] = self.version;
        buf[field::TYPE] = self.message.msg_type();
        put_u16(buf, field::LENGTH.start, len as u16);
        put_u32(buf, field::XID.start, self.xid);
        self.message.emit_body(&mut buf[HEADER_LEN..len]);
    }

    /// Encodes into a new vector, or fails with [`Error::TooLong`].
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let len = self.buffer_len();
        if len > MAX_MESSAGE_LEN {
            return Err(Error::TooLong(len));
        }
        let mut out = vec![0; len];
        self.emit(&mut out);
        Ok(out)
    }
}

/// A message body, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// OFPT_HELLO.
    Hello(Hello),
    /// OFPT_ERROR.
    Error(ErrorMsg),
    /// OFPT_ECHO_REQUEST with its arbitrary payload.
    EchoRequest(Vec<u8>),
    /// OFPT_ECHO_REPLY, echoing the request's payload.
    EchoReply(Vec<u8>),
    /// OFPT_EXPERIMENTER other than the ONF bundle messages.
    Experimenter(Experimenter),
    /// OFPT_FEATURES_REQUEST.
    FeaturesRequest,
    /// OFPT_FEATURES_REPLY.
    FeaturesReply(FeaturesReply),
    /// OFPT_GET_CONFIG_REQUEST.
    GetConfigRequest,
    /// OFPT_GET_CONFIG_REPLY.
    GetConfigReply(SwitchConfig),
    /// OFPT_SET_CONFIG.
    SetConfig(SwitchConfig),
    /// OFPT_PACKET_IN.
    PacketIn(PacketIn),
    /// OFPT_FLOW_REMOVED.
    FlowRemoved(FlowRemoved),
    /// OFPT_PORT_STATUS.
    PortStatus(PortStatus),
    /// OFPT_PACKET_OUT.
    PacketOut(PacketOut),
    /// OFPT_FLOW_MOD.
    FlowMod(FlowMod),
    /// OFPT_PORT_MOD.
    PortMod(PortMod),
    /// OFPT_MULTIPART_REQUEST.
    MultipartRequest(MultipartRequest),
    /// OFPT_MULTIPART_REPLY (one part; see [`Reassembler`]).
    MultipartReply(MultipartReply),
    /// OFPT_BARRIER_REQUEST.
    BarrierRequest,
    /// OFPT_BARRIER_REPLY.
    BarrierReply,
    /// OFPT_ROLE_REQUEST.
    RoleRequest(Role),
    /// OFPT_ROLE_REPLY.
    RoleReply(Role),
    /// OpenFlow 1.4 OFPT_BUNDLE_CONTROL (type 33).
    BundleControl(BundleControl),
    /// OpenFlow 1.4 OFPT_BUNDLE_ADD_MESSAGE (type 34).
    BundleAdd(BundleAdd),
    /// The ONF experimenter form of BUNDLE_CONTROL (exp_type 2300) that OVS accepts on 1.3.
    OnfBundleControl(BundleControl),
    /// The ONF experimenter form of BUNDLE_ADD_MESSAGE (exp_type 2301).
    OnfBundleAdd(BundleAdd),
    /// Any other message type (or any type of a version other than 1.3), kept as sent.
    Unknown {
        /// The header's type code.
        msg_type: u8,
        /// The body after the 8-byte header.
        body: Vec<u8>,
    },
}

impl Message {
    /// The header's type code.
    pub fn msg_type(&self) -> u8 {
        use self::msg_type as t;
        match self {
            Self::Hello(_) => t::HELLO,
            Self::Error(_) => t::ERROR,
            Self::EchoRequest(_) => t::ECHO_REQUEST,
            Self::EchoReply(_) => t::ECHO_REPLY,
            Self::Experimenter(_) | Self::OnfBundleControl(_) | Self::OnfBundleAdd(_) => {
                t::EXPERIMENTER
            }
            Self::FeaturesRequest => t::FEATURES_REQUEST,
            Self::FeaturesReply(_) => t::FEATURES_REPLY,
            Self::GetConfigRequest => t::GET_CONFIG_REQUEST,
            Self::GetConfigReply(_) => t::GET_CONFIG_REPLY,
            Self::SetConfig(_) => t::SET_CONFIG,
            Self::PacketIn(_) => t::PACKET_IN,
            Self::FlowRemoved(_) => t::FLOW_REMOVED,
            Self::PortStatus(_) => t::PORT_STATUS,
            Self::PacketOut(_) => t::PACKET_OUT,
            Self::FlowMod(_) => t::FLOW_MOD,
            Self::PortMod(_) => t::PORT_MOD,
            Self::MultipartRequest(_) => t::MULTIPART_REQUEST,
            Self::MultipartReply(_) => t::MULTIPART_REPLY,
            Self::BarrierRequest => t::BARRIER_REQUEST,
            Self::BarrierReply => t::BARRIER_REPLY,
            Self::RoleRequest(_) => t::ROLE_REQUEST,
            Self::RoleReply(_) => t::ROLE_REPLY,
            Self::BundleControl(_) => t::BUNDLE_CONTROL,
            Self::BundleAdd(_) => t::BUNDLE_ADD_MESSAGE,
            Self::Unknown { msg_type, .. } => *msg_type,
        }
    }

    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Error(_) => "error",
            Self::EchoRequest(_) => "echo_request",
            Self::EchoReply(_) => "echo_reply",
            Self::Experimenter(_) => "experimenter",
            Self::FeaturesRequest => "features_request",
            Self::FeaturesReply(_) => "features_reply",
            Self::GetConfigRequest => "get_config_request",
            Self::GetConfigReply(_) => "get_config_reply",
            Self::SetConfig(_) => "set_config",
            Self::PacketIn(_) => "packet_in",
            Self::FlowRemoved(_) => "flow_removed",
            Self::PortStatus(_) => "port_status",
            Self::PacketOut(_) => "packet_out",
            Self::FlowMod(_) => "flow_mod",
            Self::PortMod(_) => "port_mod",
            Self::MultipartRequest(_) => "multipart_request",
            Self::MultipartReply(_) => "multipart_reply",
            Self::BarrierRequest => "barrier_request",
            Self::BarrierReply => "barrier_reply",
            Self::RoleRequest(_) => "role_request",
            Self::RoleReply(_) => "role_reply",
            Self::BundleControl(_) | Self::OnfBundleControl(_) => "bundle_control",
            Self::BundleAdd(_) | Self::OnfBundleAdd(_) => "bundle_add",
            Self::Unknown { .. } => "unknown",
        }
    }

    fn parse_body(version: u8, kind: u8, b: &[u8], inside_bundle: bool) -> Result<Self> {
        use self::msg_type as t;
        let msg_type = kind;
        if version != OFP_VERSION && msg_type != t::HELLO && msg_type != t::ERROR {
            return Ok(Self::Unknown {
                msg_type,
                body: b.to_vec(),
            });
        }
        Ok(match msg_type {
            t::HELLO => Self::Hello(Hello::parse(b)?),
            t::ERROR => Self::Error(ErrorMsg::parse(b)?),
            t::ECHO_REQUEST => Self::EchoRequest(b.to_vec()),
            t::ECHO_REPLY => Self::EchoReply(b.to_vec()),
            t::EXPERIMENTER => bundle::parse_experimenter(b, inside_bundle)?,
            t::FEATURES_REQUEST => Self::FeaturesRequest,
            t::FEATURES_REPLY => Self::FeaturesReply(FeaturesReply::parse(b)?),
            t::GET_CONFIG_REQUEST => Self::GetConfigRequest,
            t::GET_CONFIG_REPLY => Self::GetConfigReply(SwitchConfig::parse(b)?),
            t::SET_CONFIG => Self::SetConfig(SwitchConfig::parse(b)?),
            t::PACKET_IN => Self::PacketIn(PacketIn::parse(b)?),
            t::FLOW_REMOVED => Self::FlowRemoved(FlowRemoved::parse(b)?),
            t::PORT_STATUS => Self::PortStatus(PortStatus::parse(b)?),
            t::PACKET_OUT => Self::PacketOut(PacketOut::parse(b)?),
            t::FLOW_MOD => Self::FlowMod(FlowMod::parse(b)?),
            t::PORT_MOD => Self::PortMod(PortMod::parse(b)?),
            t::MULTIPART_REQUEST => Self::MultipartRequest(MultipartRequest::parse(b)?),
            t::MULTIPART_REPLY => Self::MultipartReply(MultipartReply::parse(b)?),
            t::BARRIER_REQUEST => Self::BarrierRequest,
            t::BARRIER_REPLY => Self::BarrierReply,
            t::ROLE_REQUEST => Self::RoleRequest(Role::parse(b)?),
            t::ROLE_REPLY => Self::RoleReply(Role::parse(b)?),
            t::BUNDLE_CONTROL => Self::BundleControl(BundleControl::parse(b)?),
            t::BUNDLE_ADD_MESSAGE if !inside_bundle => Self::BundleAdd(BundleAdd::parse(b)?),
            _ => Self::Unknown {
                msg_type,
                body: b.to_vec(),
            },
        })
    }

    /// Bytes after the header.
    pub fn body_len(&self) -> usize {
        match self {
            Self::Hello(m) => m.buffer_len(),
            Self::Error(m) => m.buffer_len(),
            Self::EchoRequest(d) | Self::EchoReply(d) => d.len(),
            Self::Experimenter(m) => m.buffer_len(),
            Self::FeaturesRequest
            | Self::GetConfigRequest
            | Self::BarrierRequest
            | Self::BarrierReply => 0,
            Self::FeaturesReply(m) => m.buffer_len(),
            Self::GetConfigReply(m) | Self::SetConfig(m) => m.buffer_len(),
            Self::PacketIn(m) => m.buffer_len(),
            Self::FlowRemoved(m) => m.buffer_len(),
            Self::PortStatus(m) => m.buffer_len(),
            Self::PacketOut(m) => m.buffer_len(),
            Self::FlowMod(m) => m.buffer_len(),
            Self::PortMod(m) => m.buffer_len(),
            Self::MultipartRequest(m) => m.buffer_len(),
            Self::MultipartReply(m) => m.buffer_len(),
            Self::RoleRequest(m) | Self::RoleReply(m) => m.buffer_len(),
            Self::BundleControl(m) => m.buffer_len(),
            Self::BundleAdd(m) => m.buffer_len(),
            Self::OnfBundleControl(m) => bundle::ONF_HEADER_LEN + m.buffer_len(),
            Self::OnfBundleAdd(m) => bundle::ONF_HEADER_LEN + m.buffer_len(),
            Self::Unknown { body, .. } => body.len(),
        }
    }

    /// Writes the body into `buf[..self.body_len()]`.
    pub fn emit_body(&self, buf: &mut [u8]) {
        match self {
            Self::Hello(m) => m.emit(buf),
            Self::Error(m) => m.emit(buf),
            Self::EchoRequest(d) | Self::EchoReply(d) => buf.copy_from_slice(d),
            Self::Experimenter(m) => m.emit(buf),
            Self::FeaturesRequest
            | Self::GetConfigRequest
            | Self::BarrierRequest
            | Self::BarrierReply => {}
            Self::FeaturesReply(m) => m.emit(buf),
            Self::GetConfigReply(m) | Self::SetConfig(m) => m.emit(buf),
            Self::PacketIn(m) => m.emit(buf),
            Self::FlowRemoved(m) => m.emit(buf),
            Self::PortStatus(m) => m.emit(buf),
            Self::PacketOut(m) => m.emit(buf),
            Self::FlowMod(m) => m.emit(buf),
            Self::PortMod(m) => m.emit(buf),
            Self::MultipartRequest(m) => m.emit(buf),
            Self::MultipartReply(m) => m.emit(buf),
            Self::RoleRequest(m) | Self::RoleReply(m) => m.emit(buf),
            Self::BundleControl(m) => m.emit(buf),
            Self::BundleAdd(m) => m.emit(buf),
            Self::OnfBundleControl(m) => {
                bundle::emit_onf_header(buf, crate::types::ONF_ET_BUNDLE_CONTROL);
                m.emit(&mut buf[bundle::ONF_HEADER_LEN..]);
            }
            Self::OnfBundleAdd(m) => {
                bundle::emit_onf_header(buf, crate::types::ONF_ET_BUNDLE_ADD_MESSAGE);
                m.emit(&mut buf[bundle::ONF_HEADER_LEN..]);
            }
            Self::Unknown { body, .. } => buf.copy_from_slice(body),
        }
    }
}
