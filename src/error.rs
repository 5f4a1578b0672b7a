//! The one error type of the crate, and the typed errors a manager sends back.

use std::fmt;
use std::io;

/// Everything that can go wrong in monogusa.
///
/// The variants tell apart what a caller can act on differently: a local I/O failure before
/// anything was sent ([`Error::Io`]), a rejected key ([`Error::Authentication`]), an error the
/// manager reported for this call ([`Error::Remote`]), and a connection that broke while a call
/// was in flight ([`Error::ConnectionLost`]), whose outcome is unknown.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error while connecting, binding or accepting; no request was sent.
    Io(io::Error),
    /// An address string that could not be parsed.
    InvalidAddress {
        /// The text that was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A configuration the library refuses, such as an empty authkey.
    Config(String),
    /// The handshake broke off: the peer closed, stalled past the deadline, or the socket failed.
    Handshake(String),
    /// The peer is not a manager of this protocol version and codec (or not a manager at all).
    /// Retrying will not help.
    Incompatible(String),
    /// The keys differ: the manager rejected ours, or it could not prove it holds the key.
    Authentication(String),
    /// The manager refused the connection (for example: too many connections).
    Refused(String),
    /// The manager ran the request and reports an error for it.
    Remote(RemoteError),
    /// A deadline passed; the phase says which. A [`Phase::Call`] timeout means no reply
    /// arrived in time: the call may or may not have run. Connect and handshake timeouts
    /// mean nothing was sent.
    Timeout(Phase),
    /// The connection broke while a call was in flight: the call may or may not have run.
    /// It is never retried automatically; the next call opens a new connection.
    ConnectionLost(io::Error),
    /// A frame longer than the configured limit (refused before allocating).
    FrameTooLarge {
        /// The frame's length in bytes.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// A value could not be encoded, or a reply could not be decoded as the expected type.
    Codec(String),
    /// The peer sent bytes that break the protocol after the handshake.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::InvalidAddress { input, reason } => {
                write!(f, "invalid address {input:?}: {reason}")
            }
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Handshake(msg) => write!(f, "handshake failed: {msg}"),
            Error::Incompatible(msg) => write!(f, "incompatible peer: {msg}"),
            Error::Authentication(msg) => write!(f, "authentication failed: {msg}"),
            Error::Refused(msg) => write!(f, "connection refused by the manager: {msg}"),
            Error::Remote(e) => write!(f, "{e}"),
            Error::Timeout(Phase::Connect) => f.write_str(
                "connecting timed out (the manager's host may be down, or a firewall drops the packets)",
            ),
            Error::Timeout(Phase::Handshake) => f.write_str(
                "the handshake timed out: the peer accepted the connection but did not complete it",
            ),
            Error::Timeout(Phase::Call) => {
                f.write_str("the call timed out; it may or may not have run")
            }
            Error::ConnectionLost(e) => write!(
                f,
                "connection lost during the call ({e}); it may or may not have run"
            ),
            Error::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::Codec(msg) => write!(f, "codec error: {msg}"),
            Error::Protocol(msg) => write!(f, "protocol violation: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::ConnectionLost(e) => Some(e),
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }
}

impl Error {
    /// The kind of the manager's error, if this is one ([`Error::Remote`]).
    pub fn remote_kind(&self) -> Option<RemoteErrorKind> {
        match self {
            Error::Remote(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// Whether the queue or mailbox is closed ([`RemoteErrorKind::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.remote_kind() == Some(RemoteErrorKind::Closed)
    }

    /// Whether the mailbox or queue was full ([`RemoteErrorKind::Full`]).
    pub fn is_full(&self) -> bool {
        self.remote_kind() == Some(RemoteErrorKind::Full)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Which step of talking to a manager ran out of time (see [`Error::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Opening the connection (`ClientBuilder::connect_timeout`).
    Connect,
    /// Proving the key (`ClientBuilder::handshake_timeout`).
    Handshake,
    /// Waiting for a call's reply (`ClientBuilder::call_timeout`, or a call's own timeout).
    Call,
}

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of error a manager reported for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// No function is registered under the requested name.
    UnknownFunction,
    /// The arguments could not be decoded as the function's parameter types.
    BadArguments,
    /// The function returned `Err`; the message is the error's `Display` text.
    Handler,
    /// The function panicked; the panic was caught and the connection lives on.
    Panicked,
    /// The function's result could not be encoded.
    BadReply,
    /// The request envelope itself could not be decoded; the manager closes the connection.
    MalformedRequest,
    /// A frame exceeded the manager's limit; the manager closes the connection.
    FrameTooLarge,
    /// The manager does not allow this operation (for example a remote shutdown).
    NotPermitted,
    /// No object has that name, or the object with that id is gone.
    UnknownObject,
    /// The object (or type) implements another service than the stub's.
    WrongService,
    /// The object's service has no method of that name (the stub is of another version).
    UnknownMethod,
    /// No type is registered under that type id.
    UnknownType,
    /// The manager is shutting down; the call was woken before it could complete.
    ShuttingDown,
    /// A limit of the manager's was reached: objects, bytes held by the store, items in a
    /// container, an item's size, memory for frames in progress. Nothing was changed.
    LimitExceeded,
    /// The call does not fit the shared object's state: releasing a lock not held, marking
    /// more tasks done than were put, an index out of range, an arithmetic overflow. Distinct
    /// from [`RemoteErrorKind::Handler`], which is a registered function's own `Err`.
    Misuse,
    /// The handle belongs to an earlier run of the manager (it restarted since the handle was
    /// opened): the object it named is gone. Reopen it.
    StaleObject,
    /// The change could not be made durable (the manager's data directory failed: a full
    /// disk, an I/O error). Its outcome is unknown, as after a timeout: it is applied in
    /// memory and written once the disk allows, unless the manager stops first. A retry
    /// applies it again, so retry what is safe to repeat (a push with a dedup key, a `set`).
    /// A `take` that fails so took nothing: its tasks are ready again.
    Storage,
    /// The task's lease ended before this call (it expired, or the task was returned): the
    /// task may be running elsewhere. Delivery is at least once; see `TaskQueue`.
    LeaseExpired,
    /// The queue (or mailbox) was closed: nothing more can be put, and a get finds it empty
    /// for good. Consumers end on it instead of on a sentinel value.
    Closed,
    /// The mailbox (or queue) is full: the message was not delivered. The receiver is behind;
    /// send again later or drop the message.
    Full,
    /// A kind this version of the library does not know (sent by a newer manager).
    Other(u16),
}

impl RemoteErrorKind {
    /// The number that stands for this kind on the wire.
    pub(crate) fn code(self) -> u16 {
        match self {
            RemoteErrorKind::UnknownFunction => 1,
            RemoteErrorKind::BadArguments => 2,
            RemoteErrorKind::Handler => 3,
            RemoteErrorKind::Panicked => 4,
            RemoteErrorKind::BadReply => 5,
            RemoteErrorKind::MalformedRequest => 6,
            RemoteErrorKind::FrameTooLarge => 7,
            RemoteErrorKind::NotPermitted => 8,
            RemoteErrorKind::UnknownObject => 9,
            RemoteErrorKind::WrongService => 10,
            RemoteErrorKind::UnknownMethod => 11,
            RemoteErrorKind::UnknownType => 12,
            RemoteErrorKind::ShuttingDown => 13,
            RemoteErrorKind::LimitExceeded => 14,
            RemoteErrorKind::StaleObject => 15,
            RemoteErrorKind::Misuse => 16,
            RemoteErrorKind::Storage => 17,
            RemoteErrorKind::LeaseExpired => 18,
            RemoteErrorKind::Closed => 19,
            RemoteErrorKind::Full => 20,
            RemoteErrorKind::Other(code) => code,
        }
    }

    /// The kind a wire number stands for; unknown numbers are kept as [`RemoteErrorKind::Other`].
    pub(crate) fn from_code(code: u16) -> Self {
        match code {
            1 => RemoteErrorKind::UnknownFunction,
            2 => RemoteErrorKind::BadArguments,
            3 => RemoteErrorKind::Handler,
            4 => RemoteErrorKind::Panicked,
            5 => RemoteErrorKind::BadReply,
            6 => RemoteErrorKind::MalformedRequest,
            7 => RemoteErrorKind::FrameTooLarge,
            8 => RemoteErrorKind::NotPermitted,
            9 => RemoteErrorKind::UnknownObject,
            10 => RemoteErrorKind::WrongService,
            11 => RemoteErrorKind::UnknownMethod,
            12 => RemoteErrorKind::UnknownType,
            13 => RemoteErrorKind::ShuttingDown,
            14 => RemoteErrorKind::LimitExceeded,
            15 => RemoteErrorKind::StaleObject,
            16 => RemoteErrorKind::Misuse,
            17 => RemoteErrorKind::Storage,
            18 => RemoteErrorKind::LeaseExpired,
            19 => RemoteErrorKind::Closed,
            20 => RemoteErrorKind::Full,
            other => RemoteErrorKind::Other(other),
        }
    }
}

/// An error the manager reported for one call: its kind and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    kind: RemoteErrorKind,
    message: String,
}

impl RemoteError {
    /// Makes a remote error of the given kind.
    pub fn new(kind: RemoteErrorKind, message: impl Into<String>) -> Self {
        RemoteError {
            kind,
            message: message.into(),
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> RemoteErrorKind {
        self.kind
    }

    /// The manager's description of the error.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            RemoteErrorKind::UnknownFunction => "unknown function",
            RemoteErrorKind::BadArguments => "bad arguments",
            RemoteErrorKind::Handler => "the function returned an error",
            RemoteErrorKind::Panicked => "the function panicked",
            RemoteErrorKind::BadReply => "the result could not be encoded",
            RemoteErrorKind::MalformedRequest => "malformed request",
            RemoteErrorKind::FrameTooLarge => "frame too large",
            RemoteErrorKind::NotPermitted => "not permitted",
            RemoteErrorKind::UnknownObject => "unknown object",
            RemoteErrorKind::WrongService => "wrong service",
            RemoteErrorKind::UnknownMethod => "unknown method",
            RemoteErrorKind::UnknownType => "unknown type",
            RemoteErrorKind::ShuttingDown => "the manager is shutting down",
            RemoteErrorKind::LimitExceeded => "limit exceeded",
            RemoteErrorKind::StaleObject => "stale object handle",
            RemoteErrorKind::Misuse => "misuse of a shared object",
            RemoteErrorKind::Storage => "not made durable",
            RemoteErrorKind::LeaseExpired => "lease expired",
            RemoteErrorKind::Closed => "closed",
            RemoteErrorKind::Full => "full",
            RemoteErrorKind::Other(_) => "remote error",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for RemoteError {}

impl serde::Serialize for RemoteError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.kind.code(), self.message.as_str()).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for RemoteError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (code, message) = <(u16, String)>::deserialize(deserializer)?;
        Ok(RemoteError::new(RemoteErrorKind::from_code(code), message))
    }
}

/// Whether an I/O error is a timeout (a blocking read or write that ran out of time): the
/// platforms disagree on its kind.
pub(crate) fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
