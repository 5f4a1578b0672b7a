//! Request and response envelopes: what a frame's payload means.
//!
//! A request frame is an encoded [`RequestHeader`] followed directly by the encoded argument
//! tuple; a response frame is an encoded [`ResponseHeader`] followed by the encoded result or
//! a [`RemoteError`](crate::RemoteError). Keeping the arguments and result outside the header
//! lets each side encode and decode them in place, with no intermediate buffer.
//!
//! The envelopes are encoded by hand, not through serde: decoding one per call through
//! serde's generic struct and enum visitors was about 8% of a pipelined call's instructions
//! (callgrind). The layout is exactly what the codec's serde encoding gives (pinned by the
//! golden tests below, and checked against the codec for every variant: the serde derives
//! exist only under test, for that check), so the wire is
//! unchanged: little-endian fixed-width integers, a `u32` variant index, `u64`-prefixed
//! UTF-8 strings.

use crate::error::Error;

/// The request id of a connection-level notice: the manager is closing this connection
/// because of what it received (an oversize or malformed frame). Clients number their
/// requests from 1, so no call ever carries it.
pub(crate) const NOTICE_ID: u64 = 0;

/// The id of a heartbeat: an empty `Ok` response the manager sends, unasked, every keepalive
/// interval while a call on the connection runs long, so the client can tell a slow call from
/// a dead or unreachable manager. Clients number requests from 1 and never reach it.
pub(crate) const HEARTBEAT_ID: u64 = u64::MAX;

/// Appends a heartbeat frame.
pub(crate) fn encode_heartbeat(out: &mut Vec<u8>) {
    let start = crate::wire::frame::begin(out);
    ResponseHeader {
        id: HEARTBEAT_ID,
        status: Status::Ok,
    }
    .encode(out);
    crate::wire::frame::end(out, start, u32::MAX).expect("a heartbeat is tiny");
}

/// Whether a response frame's payload is a heartbeat (to be skipped).
#[inline]
pub(crate) fn is_heartbeat(payload: &[u8]) -> bool {
    payload.len() >= 8 && payload[..8] == HEARTBEAT_ID.to_le_bytes()
}

/// The fixed part of a request.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct RequestHeader<'a> {
    /// Chosen by the client, echoed in the response; lets one connection carry many calls.
    pub id: u64,
    #[cfg_attr(test, serde(borrow))]
    pub op: Op<'a>,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub(crate) enum Op<'a> {
    /// Call the function registered under this name with the arguments that follow.
    Call(&'a str),
    /// Shut the manager down (after replying).
    Shutdown,
    /// Call a method of an object with the arguments that follow.
    Method { object: u64, method: &'a str },
    /// Find the named object, checking it implements `service`; replies with its id.
    Open { name: &'a str, service: &'a str },
    /// Make a new object of the registered type `type_id` from the constructor arguments that
    /// follow, checking it implements `service`; replies with its id. This connection holds
    /// one reference to it.
    Create { type_id: &'a str, service: &'a str },
    /// Take one more reference to an object, held by this connection.
    Retain { object: u64, service: &'a str },
    /// Give back one reference this connection holds.
    Release { object: u64 },
    /// Describe the functions, objects and types the manager offers.
    Describe,
    /// Open the built-in shared object `name` of `kind`, creating it (from the arguments that
    /// follow) if it does not exist; `type_tag` names the element types, checked on reopening.
    /// Replies with its id.
    OpenShared {
        kind: &'a str,
        name: &'a str,
        type_tag: &'a str,
    },
    /// The manager's counters (`Stats`).
    Stats,
    /// Delete the built-in shared object `name`; replies whether it existed.
    DeleteShared { name: &'a str },
    /// The client still waits for a call on this connection: a sign of life the manager's
    /// keepalive watches for. Never answered.
    Ping,
    /// Call the function registered under this name with the arguments that follow, one
    /// way: never answered, not even with an error.
    Notify(&'a str),
}

/// The fixed part of a response.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct ResponseHeader {
    /// The id of the request this answers, or [`NOTICE_ID`].
    pub id: u64,
    pub status: Status,
}

/// Whether a response carries a result or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub(crate) enum Status {
    /// The encoded result follows.
    Ok,
    /// An encoded `RemoteError` follows.
    Err,
}

/// Appends a complete request frame: length, header, then the encoded argument tuple. A
/// frame over `max` (or arguments serde cannot encode) appends nothing and is reported.
pub(crate) fn encode_request<A: serde::Serialize>(
    out: &mut Vec<u8>,
    id: u64,
    op: Op<'_>,
    args: &A,
    max: u32,
) -> Result<(), Error> {
    let start = crate::wire::frame::begin(out);
    RequestHeader { id, op }.encode(out);
    let encoded = crate::wire::codec::encode_into(args, out)
        .and_then(|()| crate::wire::frame::end(out, start, max));
    if encoded.is_err() {
        out.truncate(start);
    }
    encoded
}

/// Reads envelope fields from the front of a payload.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| Error::Codec("the envelope is truncated".into()))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, Error> {
        let len =
            usize::try_from(self.u64()?).map_err(|_| Error::Codec("string too long".into()))?;
        std::str::from_utf8(self.take(len)?)
            .map_err(|e| Error::Codec(format!("invalid UTF-8 in the envelope: {e}")))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl<'a> RequestHeader<'a> {
    /// Appends the header's encoding.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        let variant: u32 = match self.op {
            Op::Call(_) => 0,
            Op::Shutdown => 1,
            Op::Method { .. } => 2,
            Op::Open { .. } => 3,
            Op::Create { .. } => 4,
            Op::Retain { .. } => 5,
            Op::Release { .. } => 6,
            Op::Describe => 7,
            Op::OpenShared { .. } => 8,
            Op::Stats => 9,
            Op::DeleteShared { .. } => 10,
            Op::Ping => 11,
            Op::Notify(_) => 12,
        };
        out.extend_from_slice(&variant.to_le_bytes());
        match self.op {
            Op::Call(name) | Op::Notify(name) => put_str(out, name),
            Op::Shutdown | Op::Describe | Op::Stats | Op::Ping => {}
            Op::Method { object, method } => {
                out.extend_from_slice(&object.to_le_bytes());
                put_str(out, method);
            }
            Op::Open { name, service } => {
                put_str(out, name);
                put_str(out, service);
            }
            Op::Create { type_id, service } => {
                put_str(out, type_id);
                put_str(out, service);
            }
            Op::Retain { object, service } => {
                out.extend_from_slice(&object.to_le_bytes());
                put_str(out, service);
            }
            Op::Release { object } => out.extend_from_slice(&object.to_le_bytes()),
            Op::OpenShared {
                kind,
                name,
                type_tag,
            } => {
                put_str(out, kind);
                put_str(out, name);
                put_str(out, type_tag);
            }
            Op::DeleteShared { name } => put_str(out, name),
        }
    }

    /// Decodes a header from the front of `bytes`, borrowing its strings; returns it and
    /// the number of bytes it used (the arguments follow).
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<(Self, usize), Error> {
        let mut f = Fields { bytes, at: 0 };
        let id = f.u64()?;
        let op = match f.u32()? {
            0 => Op::Call(f.str()?),
            1 => Op::Shutdown,
            2 => Op::Method {
                object: f.u64()?,
                method: f.str()?,
            },
            3 => Op::Open {
                name: f.str()?,
                service: f.str()?,
            },
            4 => Op::Create {
                type_id: f.str()?,
                service: f.str()?,
            },
            5 => Op::Retain {
                object: f.u64()?,
                service: f.str()?,
            },
            6 => Op::Release { object: f.u64()? },
            7 => Op::Describe,
            8 => Op::OpenShared {
                kind: f.str()?,
                name: f.str()?,
                type_tag: f.str()?,
            },
            9 => Op::Stats,
            10 => Op::DeleteShared { name: f.str()? },
            11 => Op::Ping,
            12 => Op::Notify(f.str()?),
            other => return Err(Error::Codec(format!("unknown operation {other}"))),
        };
        Ok((RequestHeader { id, op }, f.at))
    }
}

/// A call of a function or of an object's method, read without checking its name as UTF-8:
/// the manager looks names up by their bytes (see `server::registry`), and a name that
/// matches is one of its own. `peek` gives `None` for every other request, and for anything
/// malformed: [`RequestHeader::decode`] then reads it and says what is wrong.
pub(crate) struct RawCall<'a> {
    pub id: u64,
    /// The object whose method this calls; `None` for a function.
    pub object: Option<u64>,
    pub name: &'a [u8],
    /// Where the arguments start.
    pub args_at: usize,
}

impl<'a> RawCall<'a> {
    #[inline]
    pub(crate) fn peek(bytes: &'a [u8]) -> Option<RawCall<'a>> {
        let mut f = Fields { bytes, at: 0 };
        let id = f.u64().ok()?;
        if id == NOTICE_ID {
            return None;
        }
        let object = match f.u32().ok()? {
            0 => None,
            2 => Some(f.u64().ok()?),
            _ => return None,
        };
        let len = usize::try_from(f.u64().ok()?).ok()?;
        let name = f.take(len).ok()?;
        Some(RawCall {
            id,
            object,
            name,
            args_at: f.at,
        })
    }
}

impl ResponseHeader {
    /// Appends the header's encoding.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        let status: u32 = match self.status {
            Status::Ok => 0,
            Status::Err => 1,
        };
        out.extend_from_slice(&status.to_le_bytes());
    }

    /// Decodes a header from the front of `bytes`; returns it and the bytes it used.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Self, usize), Error> {
        let mut f = Fields { bytes, at: 0 };
        let id = f.u64()?;
        let status = match f.u32()? {
            0 => Status::Ok,
            1 => Status::Err,
            other => return Err(Error::Codec(format!("unknown reply status {other}"))),
        };
        Ok((ResponseHeader { id, status }, f.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{RemoteError, RemoteErrorKind};
    use crate::wire::codec;
    use serde::Serialize;

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_into(value, &mut out).unwrap();
        out
    }

    fn every_op() -> Vec<Op<'static>> {
        vec![
            Op::Call("inc"),
            Op::Shutdown,
            Op::Method {
                object: 5,
                method: "m",
            },
            Op::Open {
                name: "n",
                service: "S",
            },
            Op::Create {
                type_id: "T",
                service: "S",
            },
            Op::Retain {
                object: u64::MAX,
                service: "",
            },
            Op::Release { object: 9 },
            Op::Describe,
            Op::OpenShared {
                kind: "Queue",
                name: "jobs",
                type_tag: "u64",
            },
            Op::Stats,
            Op::DeleteShared { name: "q" },
            Op::Ping,
            Op::Notify("log_event"),
        ]
    }

    /// The hand-written envelopes are byte for byte what the codec's serde encoding gives.
    #[test]
    fn hand_encoding_matches_the_codec() {
        for op in every_op() {
            let header = RequestHeader {
                id: 0x0102_0304_0506_0708,
                op,
            };
            let mut hand = Vec::new();
            header.encode(&mut hand);
            assert_eq!(hand, encode(&header), "{header:?}");
            let (decoded, used) = RequestHeader::decode(&hand).unwrap();
            assert_eq!((decoded, used), (header, hand.len()));
            // Every strict prefix is reported as truncated, never misread.
            for cut in 0..hand.len() {
                assert!(RequestHeader::decode(&hand[..cut]).is_err(), "{cut}");
            }
        }
        for status in [Status::Ok, Status::Err] {
            let header = ResponseHeader { id: 77, status };
            let mut hand = Vec::new();
            header.encode(&mut hand);
            assert_eq!(hand, encode(&header));
            assert_eq!(ResponseHeader::decode(&hand).unwrap(), (header, 12));
        }
    }

    #[test]
    fn hostile_envelopes_are_errors() {
        // Unknown operation, lying string length, invalid UTF-8, unknown status.
        let mut unknown = 1u64.to_le_bytes().to_vec();
        unknown.extend_from_slice(&99u32.to_le_bytes());
        assert!(RequestHeader::decode(&unknown).is_err());
        let mut lying = 1u64.to_le_bytes().to_vec();
        lying.extend_from_slice(&0u32.to_le_bytes());
        lying.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(RequestHeader::decode(&lying).is_err());
        let mut bad_utf8 = 1u64.to_le_bytes().to_vec();
        bad_utf8.extend_from_slice(&0u32.to_le_bytes());
        bad_utf8.extend_from_slice(&1u64.to_le_bytes());
        bad_utf8.push(0xff);
        assert!(RequestHeader::decode(&bad_utf8).is_err());
        let mut status = 1u64.to_le_bytes().to_vec();
        status.extend_from_slice(&2u32.to_le_bytes());
        assert!(ResponseHeader::decode(&status).is_err());
    }

    /// Pins the envelope layout: these bytes are the protocol.
    #[test]
    fn golden_request_header() {
        let call = RequestHeader {
            id: 1,
            op: Op::Call("inc"),
        };
        #[rustfmt::skip]
        assert_eq!(encode(&call), [
            1, 0, 0, 0, 0, 0, 0, 0,          // id
            0, 0, 0, 0,                      // Op::Call
            3, 0, 0, 0, 0, 0, 0, 0, b'i', b'n', b'c',
        ]);
        let shutdown = RequestHeader {
            id: 258,
            op: Op::Shutdown,
        };
        assert_eq!(encode(&shutdown), [2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn golden_object_ops() {
        let method = RequestHeader {
            id: 1,
            op: Op::Method {
                object: 5,
                method: "m",
            },
        };
        #[rustfmt::skip]
        assert_eq!(encode(&method), [
            1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0,                      // Op::Method
            5, 0, 0, 0, 0, 0, 0, 0,          // object
            1, 0, 0, 0, 0, 0, 0, 0, b'm',
        ]);
        let describe = RequestHeader {
            id: 1,
            op: Op::Describe,
        };
        assert_eq!(encode(&describe)[8..], [7, 0, 0, 0]);
        let delete = RequestHeader {
            id: 1,
            op: Op::DeleteShared { name: "q" },
        };
        #[rustfmt::skip]
        assert_eq!(encode(&delete)[8..], [
            10, 0, 0, 0,                     // Op::DeleteShared
            1, 0, 0, 0, 0, 0, 0, 0, b'q',
        ]);
        let ping = RequestHeader {
            id: 1,
            op: Op::Ping,
        };
        assert_eq!(encode(&ping)[8..], [11, 0, 0, 0]);
    }

    /// A heartbeat is an empty `Ok` response with the all-ones id.
    #[test]
    fn golden_heartbeat() {
        let mut out = Vec::new();
        encode_heartbeat(&mut out);
        #[rustfmt::skip]
        assert_eq!(out, [
            0, 0, 0, 12,                     // length
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0, 0, 0, 0,                      // Ok
        ]);
        assert!(is_heartbeat(&out[4..]));
        assert!(!is_heartbeat(&[0xff; 7]));
    }

    #[test]
    fn golden_response() {
        let header = ResponseHeader {
            id: 9,
            status: Status::Err,
        };
        assert_eq!(encode(&header), [9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        let err = RemoteError::new(RemoteErrorKind::UnknownFunction, "x");
        assert_eq!(encode(&err), [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'x']);
    }

    #[test]
    fn header_and_arguments_split() {
        let mut frame = encode(&RequestHeader {
            id: 3,
            op: Op::Call("get"),
        });
        frame.extend(encode(&("hikakin",)));
        let (header, used): (RequestHeader, usize) = codec::decode_prefix(&frame).unwrap();
        assert_eq!(header.op, Op::Call("get"));
        let (key,): (String,) = codec::decode_exact(&frame[used..]).unwrap();
        assert_eq!(key, "hikakin");
    }

    #[test]
    fn remote_error_kinds_round_trip() {
        for code in 0..20 {
            let kind = RemoteErrorKind::from_code(code);
            assert_eq!(kind.code(), code);
            let err = RemoteError::new(kind, "m");
            let back: RemoteError = codec::decode_exact(&encode(&err)).unwrap();
            assert_eq!(back, err);
        }
    }
}
