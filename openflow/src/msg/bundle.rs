//! Bundles (OpenFlow 1.4 types 33/34 and the ONF experimenter form OVS accepts on 1.3) and
//! other experimenter messages.

use super::{Frame, HEADER_LEN, Message};
use crate::types::{
    ONF_ET_BUNDLE_ADD_MESSAGE, ONF_ET_BUNDLE_CONTROL, ONF_EXPERIMENTER_ID, code_enum,
};
use crate::wire::{check_len, get_u16, get_u32, put_u16, put_u32};
use crate::{Error, Result};

mod field {
    pub(super) const EXPERIMENTER: usize = 0;
    pub(super) const EXP_TYPE: usize = 4;

    pub(super) const BUNDLE_ID: usize = 0;
    pub(super) const TYPE: usize = 4;
    pub(super) const FLAGS: usize = 6;
    pub(super) const PROPERTIES: usize = 8;
    pub(super) const MESSAGE: usize = 8;
}

/// Bytes of `{experimenter: u32, exp_type: u32}` after the OpenFlow header.
pub(super) const ONF_HEADER_LEN: usize = 8;

pub(super) fn emit_onf_header(b: &mut [u8], exp_type: u32) {
    put_u32(b, field::EXPERIMENTER, ONF_EXPERIMENTER_ID);
    put_u32(b, field::EXP_TYPE, exp_type);
}

/// Decodes an OFPT_EXPERIMENTER body, recognising the ONF bundle messages. A bundle add
/// inside a bundle add is not decoded further (OVS refuses it too), which bounds recursion.
pub(super) fn parse_experimenter(b: &[u8], inside_bundle: bool) -> Result<Message> {
    let exp = Experimenter::parse(b)?;
    let rest = &b[ONF_HEADER_LEN..];
    Ok(match (exp.experimenter, exp.exp_type) {
        (ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_CONTROL) => {
            Message::OnfBundleControl(BundleControl::parse(rest).map_err(|e| e.at(ONF_HEADER_LEN))?)
        }
        (ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_ADD_MESSAGE) if !inside_bundle => {
            Message::OnfBundleAdd(BundleAdd::parse(rest).map_err(|e| e.at(ONF_HEADER_LEN))?)
        }
        _ => Message::Experimenter(exp),
    })
}

/// OFPT_EXPERIMENTER: `{experimenter: u32, exp_type: u32, data}`, kept raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experimenter {
    /// Experimenter id.
    pub experimenter: u32,
    /// Experimenter-defined type.
    pub exp_type: u32,
    /// Payload.
    pub data: Vec<u8>,
}

impl Experimenter {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, ONF_HEADER_LEN, "experimenter", "header")?;
        Ok(Self {
            experimenter: get_u32(b, field::EXPERIMENTER),
            exp_type: get_u32(b, field::EXP_TYPE),
            data: b[ONF_HEADER_LEN..].to_vec(),
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        ONF_HEADER_LEN + self.data.len()
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        put_u32(b, field::EXPERIMENTER, self.experimenter);
        put_u32(b, field::EXP_TYPE, self.exp_type);
        b[ONF_HEADER_LEN..].copy_from_slice(&self.data);
    }
}

code_enum! {
    /// Bundle control types: requests are even, their replies are the request + 1.
    pub enum BundleControlType: u16 {
        OpenRequest = 0, OpenReply = 1, CloseRequest = 2, CloseReply = 3,
        CommitRequest = 4, CommitReply = 5, DiscardRequest = 6, DiscardReply = 7,
    }
}

/// `ofp14_bundle_ctrl_msg`: open, close, commit or discard a bundle (and their replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleControl {
    /// Bundle id, chosen by the controller.
    pub bundle_id: u32,
    /// Request or reply type.
    pub kind: BundleControlType,
    /// `OFPBF_ATOMIC` / `OFPBF_ORDERED`.
    pub flags: u16,
    /// Properties, kept raw.
    pub properties: Vec<u8>,
}

impl BundleControl {
    /// A control message without properties.
    pub const fn new(bundle_id: u32, kind: BundleControlType, flags: u16) -> Self {
        Self {
            bundle_id,
            kind,
            flags,
            properties: Vec::new(),
        }
    }

    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::PROPERTIES, "bundle_control", "body")?;
        Ok(Self {
            bundle_id: get_u32(b, field::BUNDLE_ID),
            kind: get_u16(b, field::TYPE).into(),
            flags: get_u16(b, field::FLAGS),
            properties: b[field::PROPERTIES..].to_vec(),
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::PROPERTIES + self.properties.len()
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        put_u32(b, field::BUNDLE_ID, self.bundle_id);
        put_u16(b, field::TYPE, self.kind.into());
        put_u16(b, field::FLAGS, self.flags);
        b[field::PROPERTIES..].copy_from_slice(&self.properties);
    }
}

/// `ofp14_bundle_add_msg`: one message added to an open bundle.
///
/// The spec: the embedded message's xid MUST equal the xid of the bundle add message
/// itself; [`BundleAdd::new`] and the connection keep them equal. Decoding keeps whatever
/// was sent so a mismatch can be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleAdd {
    /// Bundle id.
    pub bundle_id: u32,
    /// `OFPBF_*` flags (must match the open request's).
    pub flags: u16,
    /// The embedded message, with its own header.
    pub message: Box<Frame>,
    /// Bytes after the embedded message (padding and properties), kept raw.
    pub trailer: Vec<u8>,
}

impl BundleAdd {
    /// Wraps `message` for `bundle_id`; `xid` is used for the embedded header and must be
    /// the xid of the enclosing bundle add.
    pub fn new(bundle_id: u32, flags: u16, xid: u32, message: Message) -> Self {
        Self {
            bundle_id,
            flags,
            message: Box::new(Frame::new(xid, message)),
            trailer: Vec::new(),
        }
    }

    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::MESSAGE + HEADER_LEN, "bundle_add", "message")?;
        let inner = &b[field::MESSAGE..];
        let inner_len = usize::from(get_u16(inner, 2));
        if inner_len < HEADER_LEN || inner_len > inner.len() {
            return Err(Error::bad_len(
                "bundle_add",
                "message.length",
                field::MESSAGE + 2,
                inner_len,
            ));
        }
        let message =
            Frame::parse_nested(&inner[..inner_len], true).map_err(|e| e.at(field::MESSAGE))?;
        Ok(Self {
            bundle_id: get_u32(b, field::BUNDLE_ID),
            flags: get_u16(b, field::FLAGS),
            message: Box::new(message),
            trailer: inner[inner_len..].to_vec(),
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::MESSAGE + self.message.buffer_len() + self.trailer.len()
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        put_u32(b, field::BUNDLE_ID, self.bundle_id);
        put_u16(b, field::TYPE, 0);
        put_u16(b, field::FLAGS, self.flags);
        let end = field::MESSAGE + self.message.buffer_len();
        self.message.emit(&mut b[field::MESSAGE..end]);
        b[end..].copy_from_slice(&self.trailer);
    }
}
