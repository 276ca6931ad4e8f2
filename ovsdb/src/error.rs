use std::time::Duration;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to an OVSDB server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address is not `unix:PATH` or `tcp:HOST:PORT`.
    #[error("invalid OVSDB address {0:?}: expected unix:PATH or tcp:HOST:PORT")]
    InvalidAddress(String),

    /// Connecting to the server failed.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address as given.
        addr: String,
        /// Why (part of the message, so that it is not repeated as a cause).
        reason: std::io::Error,
    },

    /// Reading from or writing to the socket failed.
    #[error("OVSDB socket I/O failed: {0}")]
    Io(#[from] std::io::Error),

    /// The byte stream is not a sequence of JSON objects.
    #[error("invalid JSON in the OVSDB stream at byte offset {offset}: {reason}")]
    Framing {
        /// Offset from the start of the stream of the first byte that cannot be accepted.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A single JSON value grew beyond the configured limit.
    #[error("OVSDB message starting at byte offset {offset} exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// Offset of the first byte of the message.
        offset: u64,
        /// The limit in bytes.
        limit: usize,
    },

    /// A well-formed JSON value that is not a valid JSON-RPC 1.0 message or reply.
    #[error("OVSDB protocol error: {0}")]
    Protocol(String),

    /// The server answered a request with a JSON-RPC error.
    #[error("OVSDB server rejected {method}: {error}{}", details_suffix(.details))]
    Rpc {
        /// The method that failed.
        method: String,
        /// The `error` string.
        error: String,
        /// The `details` string, if any.
        details: Option<String>,
    },

    /// The server does not implement the method.
    #[error("OVSDB server does not support the {method:?} method")]
    UnsupportedMethod {
        /// The method name.
        method: String,
    },

    /// One operation of a transaction failed, so none of it was committed.
    #[error(
        "OVSDB transaction failed at operation {index} ({op}): {error}{}",
        details_suffix(.details)
    )]
    OperationFailed {
        /// Position of the failed operation in the transaction.
        index: usize,
        /// The operation name (`insert`, `mutate`, …).
        op: &'static str,
        /// The OVSDB error string, e.g. `constraint violation`.
        error: String,
        /// The OVSDB details string.
        details: Option<String>,
    },

    /// Every operation succeeded but the commit failed (RFC 7047 §4.1.3: the extra result).
    #[error("OVSDB transaction commit failed: {error}{}", details_suffix(.details))]
    CommitFailed {
        /// The OVSDB error string, e.g. `constraint violation`.
        error: String,
        /// The OVSDB details string.
        details: Option<String>,
    },

    /// A value does not have the type the caller asked for.
    #[error("expected {expected}, found {found}")]
    UnexpectedType {
        /// What the caller wanted.
        expected: &'static str,
        /// What the value is (JSON, truncated).
        found: String,
    },

    /// A column is absent from a row.
    #[error("column {0:?} is missing from the row")]
    MissingColumn(String),

    /// A `named-uuid` id does not match `[A-Za-z_][A-Za-z0-9_]*` (RFC 7047 §3.1).
    #[error("invalid named-uuid {0:?}: must match [A-Za-z_][A-Za-z0-9_]*")]
    InvalidNamedUuid(String),

    /// A UUID string is malformed.
    #[error("invalid UUID {0:?}")]
    InvalidUuid(String),

    /// The schema lacks a table or column the caller needs.
    #[error("schema of {db} has no {what}")]
    Schema {
        /// Database name.
        db: String,
        /// The missing table or column.
        what: String,
    },

    /// A row looked up by name does not exist.
    #[error("no {table} row named {name:?}")]
    NotFound {
        /// Table name.
        table: &'static str,
        /// The name searched for.
        name: String,
    },

    /// The connection is closed (or its task stopped) and will not come back.
    #[error("OVSDB connection closed")]
    ConnectionClosed,

    /// The connection dropped while the request was in flight: it may or may not have been applied.
    #[error(
        "OVSDB connection lost while {method} was in flight ({reason}); its outcome is unknown"
    )]
    ConnectionLost {
        /// The method in flight.
        method: String,
        /// Why the connection was dropped.
        reason: String,
    },

    /// The server stopped answering echo probes.
    #[error("OVSDB server did not answer an echo probe within {0:?}")]
    PeerUnresponsive(Duration),

    /// The client stayed disconnected longer than a request may wait.
    #[error("not connected to the OVSDB server: gave up after waiting {0:?} for a reconnect")]
    Disconnected(Duration),

    /// Waiting for something the server should report took too long.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
    },
}

impl Error {
    /// The OVSDB error string (`constraint violation`, `timed out`, …) if the server sent one.
    pub fn ovsdb_error(&self) -> Option<&str> {
        match self {
            Self::Rpc { error, .. }
            | Self::OperationFailed { error, .. }
            | Self::CommitFailed { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn details_suffix(details: &Option<String>) -> String {
    match details {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    }
}
