//! Request and response envelopes: what a frame's payload means.
//!
//! A request frame is an encoded [`RequestHeader`] followed directly by the encoded argument
//! tuple; a response frame is an encoded [`ResponseHeader`] followed by the encoded result or
//! a [`RemoteError`](crate::RemoteError). Keeping the arguments and result outside the header
//! lets each side encode and decode them in place, with no intermediate buffer.

use serde::{Deserialize, Serialize};

/// The request id of a connection-level notice: the manager is closing this connection
/// because of what it received (an oversize or malformed frame). Clients number their
/// requests from 1, so no call ever carries it.
pub(crate) const NOTICE_ID: u64 = 0;

/// The fixed part of a request.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RequestHeader<'a> {
    /// Chosen by the client, echoed in the response; lets one connection carry many calls.
    pub id: u64,
    #[serde(borrow)]
    pub op: Op<'a>,
}

/// What a request asks for.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
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
}

/// The fixed part of a response.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ResponseHeader {
    /// The id of the request this answers, or [`NOTICE_ID`].
    pub id: u64,
    pub status: Status,
}

/// Whether a response carries a result or an error.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Status {
    /// The encoded result follows.
    Ok,
    /// An encoded `RemoteError` follows.
    Err,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::error::{RemoteError, RemoteErrorKind};

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_into(value, &mut out).unwrap();
        out
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
