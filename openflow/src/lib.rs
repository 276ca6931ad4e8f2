//! OpenFlow 1.3 for Open vSwitch: a wire codec, a sans-IO session and an async connection.
//!
//! ovswire drives one OVS bridge per node over its management socket
//! (`<rundir>/<bridge>.mgmt`). This crate speaks OpenFlow 1.3 (wire version 0x04) plus
//! bundles — the OpenFlow 1.4 messages and the ONF experimenter form that OVS accepts on
//! 1.3 — so that thousands of flows land in one atomic commit.
//!
//! - [`msg`], [`oxm`], [`action`], [`instruction`]: owned message types, each with
//!   `parse(&[u8])`, `buffer_len()` and `emit(&mut [u8])`.
//! - [`session`]: the protocol state (handshake, xids, pending requests, echo keepalive,
//!   multipart reassembly) as plain data, driven with `now` passed in.
//! - `conn` (feature `tokio`, on by default): [`conn::connect`] spawns one connection task
//!   and returns a cheap `Clone` [`conn::Handle`] plus a receiver of asynchronous messages.
//!
//! # Decoding contract
//!
//! Decoding never panics, whatever the bytes: malformed input is an [`Error::Decode`] naming
//! the structure, the field and the offset. Unknown message types, OXM fields, actions,
//! instructions, multipart kinds, error types and experimenter payloads are kept raw and
//! emit back byte for byte. A fuzz target (`fuzz/`, bytes → parse → emit → parse) and a
//! unit test over pseudo-random bytes enforce this.
//!
//! # Example: build a flow and emit it
//!
//! ```
//! use ovswire_openflow::{Action, FlowMod, Frame, Message, OxmField};
//!
//! let flow = FlowMod::add(0)
//!     .priority(100)
//!     .cookie(0x42)
//!     .match_field(OxmField::InPort(32768))
//!     .apply_actions(vec![
//!         Action::SetField(OxmField::TunnelId(5001, None)),
//!         Action::output(32769),
//!     ]);
//! let frame = Frame::new(7, Message::FlowMod(flow));
//! let mut buf = vec![0; frame.buffer_len()];
//! frame.emit(&mut buf);
//! assert_eq!(buf[..2], [0x04, 14]); // version 1.3, OFPT_FLOW_MOD
//! assert_eq!(Frame::parse(&buf)?, frame);
//! # Ok::<(), ovswire_openflow::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod action;
mod error;
pub mod instruction;
pub mod msg;
pub mod oxm;
pub mod session;
pub mod types;
mod wire;

#[cfg(feature = "tokio")]
pub mod conn;

pub use action::Action;
pub use error::{Error, Problem, Result};
pub use instruction::Instruction;
pub use msg::{
    ErrorKind, ErrorMsg, FlowMod, Frame, Message, MultipartReply, MultipartReplyBody, PortMod,
};
pub use oxm::{Match, OxmField};
pub use types::{
    MacAddr, OFP_NO_BUFFER, OFP_VERSION, OFPCML_NO_BUFFER, group::OFPG_ANY, port::OFPP_ANY,
    port::OFPP_CONTROLLER, port::OFPP_LOCAL, table::OFPTT_ALL,
};
