//! The wire protocol, version 1: what a peer in any language must send and expect. This module
//! holds its identity (name, version, codec: the banner); the chapter below is the whole of it.
//!
//! # Connections
//! A TCP or Unix-domain stream. Nothing is trusted until the handshake completes.
//!
//! # Handshake
//! ```text
//! client → manager   [banner length: u8][banner][client nonce: 32 bytes]
//! manager → client   [0x00][manager nonce: 32]                 accept
//!                  | [0x01][length: u8][the manager's banner]   mismatch, then close
//!                  | [0x02][length: u8][why]                    busy, then close
//! client → manager   HMAC-SHA256(key, "monogusa client proof" ‖ client nonce ‖ manager nonce ‖ banner)
//! manager → client   [0x00][HMAC-SHA256(key, "monogusa server proof" ‖ client nonce ‖ manager nonce ‖ banner)]
//!                  | [0x03]                                     wrong key, then close
//!                  | [0x02][length: u8][why]                    proven, but no room; then close
//! ```
//! The banner is [`BANNER`]. The client proves first, so a peer that merely connects learns
//! nothing it could test guesses of the key against. Nonces come from the OS; tags are compared
//! in constant time. The manager cuts a handshake not complete within its deadline (10 s in
//! all), and answers repeated wrong keys from one address ever more slowly.
//!
//! # Frames
//! After the handshake, each direction is a sequence of frames: a 4-byte big-endian length,
//! then that many bytes (64 MiB at most by default; a longer announced length closes the
//! connection with a notice, before anything is buffered).
//!
//! # Envelopes
//! Values are encoded with bincode 2 through serde: little-endian fixed-width integers, a
//! `u64` length before strings, byte strings and sequences, a `u32` variant index before enum
//! payloads, `u8` 0/1 for `Option` and `bool`, struct fields in order without names.
//!
//! A request frame is `[id: u64][op: u32 variant][op fields][arguments]`: the id (from 1; 0 is
//! reserved) comes back in the reply; the arguments are the called function's parameters as a
//! tuple (no prefix). Operations: 0 `Call(name)`, 1 `Shutdown`, 2 `Method{object: u64, method}`,
//! 3 `Open{name, service}`, 4 `Create{type_id, service}`, 5 `Retain{object, service}`,
//! 6 `Release{object}`, 7 `Describe` (optional `(after: u64, limit: u64)`), 8 `OpenShared{kind,
//! name, type_tag}` (creation arguments follow), 9 `Stats`, 10 `DeleteShared{name}`, 11 `Ping`
//! (never answered: a client waiting for a long call sends it as a sign of life).
//!
//! A reply frame is `[id: u64][status: u32]` and then, for status 0, the result; for status 1,
//! a remote error `(kind: u16, message: string)`. Replies to different requests on one
//! connection may be pipelined; requests are handled in order. Two ids are special: 0 is a
//! notice (the manager is closing this connection and says why, as a status-1 reply), and
//! `u64::MAX` a heartbeat (an empty status-0 reply the manager sends while a call runs long;
//! the client answers with a `Ping`).
//!
//! # Versioning
//! Peers agree on the banner byte for byte, and it is bound into both proofs, so neither side
//! can be talked into another version or codec. Within version 1, the manager's top-level reply
//! structs (`Stats`, `Description`) may gain fields at their end, which older clients ignore;
//! new operations and error kinds get new numbers (unknown error kinds decode as
//! `RemoteErrorKind::Other`). Anything else is a new version.

use crate::wire::codec;

/// The protocol's name, which every version's banner starts with (`monogusa/`).
pub const NAME: &str = "monogusa/";

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;

/// The banner each side sends in the handshake: protocol name and version, then the codec.
/// (A constant, so a handshake allocates nothing for it; a test checks it against its parts.)
pub const BANNER: &str = "monogusa/1 bincode2-fixint-le";

// The banner must end with the codec's name: changing the codec is a protocol change peers see.
const _: () = assert!(
    ends_with(BANNER.as_bytes(), codec::NAME.as_bytes()),
    "the banner must name the codec"
);

#[allow(dead_code)] // used by the const assertion above, which rustc 1.88 does not count as a use
const fn ends_with(text: &[u8], suffix: &[u8]) -> bool {
    if suffix.len() > text.len() {
        return false;
    }
    let mut i = 0;
    while i < suffix.len() {
        if text[text.len() - suffix.len() + i] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The environment variables [`ManagerHandle::command`](crate::ManagerHandle::command) and
/// the supervisor set for the processes they start, and
/// [`Client::from_env`](crate::Client::from_env) reads: the manager's address.
pub const ADDRESS_VAR: &str = "MONOGUSA_ADDRESS";
/// See [`ADDRESS_VAR`]: the authkey.
pub const AUTHKEY_VAR: &str = "MONOGUSA_AUTHKEY";
/// The address of the manager's Python door, if it has one: set by the supervisor for the
/// programs it starts, read by `python/monogusa.py`'s `Client.from_env()`.
pub const PYTHON_ADDRESS_VAR: &str = "MONOGUSA_PYTHON_ADDRESS";
/// The address of the manager's msgpack-rpc door, if it has one (see [`PYTHON_ADDRESS_VAR`]).
pub const MSGPACK_ADDRESS_VAR: &str = "MONOGUSA_MSGPACK_ADDRESS";
/// The function every manager serves that lists its doors: `[(door, address)]`, with real
/// ports (`"native"`, `"python"`, `"msgpack-rpc"`, `"http"`), reachable from every door.
pub const DOORS_FUNCTION: &str = "monogusa.doors";

/// How often each side signs of life during a long call, by default: noticed in seconds, well
/// clear of scheduling hiccups on a loaded machine.
pub(crate) const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a side hears nothing before it gives the other up, by default.
pub(crate) const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The banner, as a `String` (see [`BANNER`]).
pub fn banner() -> String {
    BANNER.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_names_version_and_codec() {
        assert_eq!(BANNER, format!("{NAME}{VERSION} {}", codec::NAME));
    }
}
