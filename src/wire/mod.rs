//! The wire, sans IO: the protocol's identity (`protocol`), the codec, frames, request and
//! reply envelopes, the handshake's state machines (`auth`) and arguments read in place
//! (`borrowed`). Nothing here opens a socket or starts a thread; the blocking drivers take any
//! `Read + Write`.

pub(crate) mod auth;
pub(crate) mod borrowed;
pub(crate) mod codec;
pub(crate) mod frame;
pub(crate) mod message;
pub mod protocol;
