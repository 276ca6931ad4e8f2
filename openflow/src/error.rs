//! The crate's one error type.

use crate::msg::ErrorMsg;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with a field that failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The buffer ends before the field does.
    Truncated {
        /// Bytes needed from the start of the structure.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A length field disagrees with the spec or with the enclosing structure.
    BadLength(usize),
    /// A value the spec does not allow here.
    BadValue(u64),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { need, have } => {
                write!(f, "truncated: need {need} bytes, have {have}")
            }
            Self::BadLength(len) => write!(f, "bad length {len}"),
            Self::BadValue(v) => write!(f, "bad value {v:#x}"),
        }
    }
}

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that are not a valid OpenFlow structure. Cheap: no allocation.
    #[error("decoding {what}.{field} at offset {offset}: {problem}")]
    Decode {
        /// The message or structure being decoded (`"flow_mod"`, `"action"`).
        what: &'static str,
        /// The field that failed.
        field: &'static str,
        /// Offset of the field from the start of `what`.
        offset: usize,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A message longer than the 65535 bytes the header's length field can express.
    #[error("message of {0} bytes exceeds the OpenFlow maximum of 65535")]
    TooLong(usize),
    /// The switch answered a request with `OFPT_ERROR`.
    #[error("switch returned {0}")]
    OpenFlow(ErrorMsg),
    /// One message of a bundle (or of a checked batch) was refused.
    #[error("message {index} of the batch failed: {error}")]
    BatchFailed {
        /// Index of the failing message in the slice passed in.
        index: usize,
        /// The decoded error the switch returned for it.
        error: ErrorMsg,
    },
    /// The version negotiation found no common version, or the peer refused ours.
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// The switch sent something we did not expect in answer to a request.
    #[error("unexpected reply to {request}: message type {msg_type}")]
    UnexpectedReply {
        /// What we asked.
        request: &'static str,
        /// The OpenFlow type code of what came back.
        msg_type: u8,
    },
    /// No reply before the deadline.
    #[error("request timed out")]
    Timeout,
    /// The connection is gone (peer closed, echo timeout, or I/O error already reported).
    #[error("connection closed")]
    ConnectionClosed,
    /// Socket I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) const fn truncated(
        what: &'static str,
        field: &'static str,
        need: usize,
        have: usize,
    ) -> Self {
        Self::Decode {
            what,
            field,
            offset: have,
            problem: Problem::Truncated { need, have },
        }
    }

    pub(crate) const fn bad_len(
        what: &'static str,
        field: &'static str,
        offset: usize,
        len: usize,
    ) -> Self {
        Self::Decode {
            what,
            field,
            offset,
            problem: Problem::BadLength(len),
        }
    }

    pub(crate) const fn bad_value(
        what: &'static str,
        field: &'static str,
        offset: usize,
        value: u64,
    ) -> Self {
        Self::Decode {
            what,
            field,
            offset,
            problem: Problem::BadValue(value),
        }
    }

    /// Re-bases a decode error's offset when a nested structure is decoded from a sub-slice.
    pub(crate) fn at(self, base: usize) -> Self {
        match self {
            Self::Decode {
                what,
                field,
                offset,
                problem,
            } => Self::Decode {
                what,
                field,
                offset: offset + base,
                problem,
            },
            other => other,
        }
    }
}
