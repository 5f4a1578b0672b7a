//! Encoding of values on the wire. This is the only module that names the serializer
//! (bincode 2 through its serde API), so it can be swapped without touching anything else.
//!
//! The format is bincode's fixed-width integer encoding, little-endian: measured faster than
//! varints for pipelined calls (see ARCHITECTURE.md). Its name goes into the handshake banner,
//! so peers that encode differently refuse each other instead of misreading each other.

mod borrowing;

use std::marker::PhantomData;

use bincode::config::{Configuration, Fixint, LittleEndian, NoLimit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, RemoteError, RemoteErrorKind};

/// The codec's name as it appears in the handshake banner.
#[allow(dead_code)] // used by the banner's const assertion, which rustc 1.88 does not count
pub(crate) const NAME: &str = "bincode2-fixint-le";

const CONFIG: Configuration<LittleEndian, Fixint, NoLimit> =
    bincode::config::standard().with_fixed_int_encoding();

/// How deeply nested a decoded value may be by default (`Some(Box<Expr>)` counts two levels).
/// Serde decodes by recursion: the limit keeps a hostile 10,000-level value from
/// overflowing the stack, while leaving room for any data shape met in practice.
pub const DEFAULT_MAX_DECODE_DEPTH: u32 = 128;

thread_local! {
    /// The depth limit for values decoded on this thread: a manager's connection threads
    /// set the manager's, every other thread has the default.
    static MAX_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(DEFAULT_MAX_DECODE_DEPTH) };
}

/// Sets the depth limit for values decoded on the calling thread from now on.
pub(crate) fn set_thread_max_depth(depth: u32) {
    MAX_DEPTH.with(|d| d.set(depth));
}

/// Appends to a caller's buffer, so encoding a call allocates nothing once the buffer is warm.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for AppendTo<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        // serde hands `Vec<u8>` and `[u8]` over one byte at a time: `push` is much
        // cheaper than a one-byte `extend_from_slice` (measured 3x on 4 KiB in benches/micro).
        if let [byte] = bytes {
            self.0.push(*byte);
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// Appends the encoding of `value` to `out`. On error `out` may hold a partial encoding;
/// callers truncate it.
pub(crate) fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    bincode::serde::encode_into_writer(value, AppendTo(out), CONFIG)
        .map_err(|e| Error::Codec(format!("cannot encode value: {e}")))
}

/// Decodes a value from the front of `bytes`, returning it and the number of bytes it used.
///
/// Owned strings and byte buffers are read through [`borrowing`], so a length prefix is
/// checked against the input before anything is allocated (bincode alone would allocate the
/// claimed length first: nine bytes claiming 2^60 would abort the process).
/// Values nested deeper than the thread's limit (see [`DEFAULT_MAX_DECODE_DEPTH`]) are refused.
#[cfg(test)]
pub(crate) fn decode_prefix<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, usize), Error> {
    decode_prefix_at_depth(bytes, MAX_DEPTH.with(|d| d.get()))
}

/// [`decode_prefix`] with an explicit depth limit.
pub(crate) fn decode_prefix_at_depth<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    max_depth: u32,
) -> Result<(T, usize), Error> {
    let root = borrowing::Root::<T> {
        max_depth,
        value: PhantomData,
    };
    bincode::serde::seed_decode_from_slice(root, bytes, CONFIG)
        .map_err(|e| Error::Codec(explain(&e)))
}

/// Says what went wrong in words: bincode's own `Display` is its `Debug`
/// (`UnexpectedEnd { additional: 8 }`).
fn explain(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match error {
        E::UnexpectedEnd { additional } => {
            format!("the input ends too early ({additional} more bytes were needed)")
        }
        E::UnexpectedVariant {
            type_name, found, ..
        } => format!("{found} is not a variant of {type_name}"),
        E::Utf8 { inner } => format!("a string is not valid UTF-8 ({inner})"),
        E::InvalidBooleanValue(byte) => format!("{byte} is not a boolean (0 or 1)"),
        E::InvalidCharEncoding(bytes) => format!("{bytes:?} is not a char"),
        E::OutsideUsizeRange(n) => format!("a length of {n} does not fit this machine"),
        E::OtherString(message) => message.clone(),
        E::Other(message) => (*message).to_string(),
        other => format!("{other:?}"),
    }
}

/// Decodes a call's argument tuple exactly. A mismatch is the caller's fault: a
/// `BadArguments` error naming what was called (`what`) and the types it expects.
#[inline]
pub(crate) fn decode_arguments<'a, T: Deserialize<'a>>(
    args: &'a [u8],
    what: &dyn std::fmt::Display,
) -> Result<T, RemoteError> {
    decode_exact(args).map_err(|e| {
        RemoteError::new(
            RemoteErrorKind::BadArguments,
            format!("{what} expected {}: {e}", std::any::type_name::<T>()),
        )
    })
}

/// Encodes a call's result; a value serde cannot encode is a `BadReply` error.
#[inline]
pub(crate) fn encode_result<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), RemoteError> {
    encode_into(value, out).map_err(|e| RemoteError::new(RemoteErrorKind::BadReply, e.to_string()))
}

/// Decodes a value that must fill `bytes` exactly: trailing bytes are an error, because they
/// mean the sender encoded something else than the receiver expects.
#[inline]
pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    decode_exact_at_depth(bytes, MAX_DEPTH.with(|d| d.get()))
}

/// [`decode_exact`] with an explicit depth limit.
#[inline]
pub(crate) fn decode_exact_at_depth<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    max_depth: u32,
) -> Result<T, Error> {
    let (value, used) = decode_prefix_at_depth(bytes, max_depth)?;
    if used != bytes.len() {
        return Err(Error::Codec(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(value, &mut out).unwrap();
        out
    }

    /// Pins the encoding of the primitive shapes; a change here breaks every peer.
    #[test]
    fn golden_bytes() {
        assert_eq!(encode(&7u64), [7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            encode(&-2i64),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(encode(&true), [1]);
        assert_eq!(encode(&"hi"), [2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(encode(&()), Vec::<u8>::new());
        assert_eq!(encode(&(1u8, 2u16)), [1, 2, 0]);
        assert_eq!(encode(&Some(1u8)), [1, 1]);
        assert_eq!(encode(&None::<u8>), [0]);
        assert_eq!(encode(&vec![1u32]), [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn round_trip_borrowed() {
        let bytes = encode(&("key", 5i64));
        let (key, n): (&str, i64) = decode_exact(&bytes).unwrap();
        assert_eq!((key, n), ("key", 5));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&5i64);
        bytes.push(0);
        let err = decode_exact::<i64>(&bytes).unwrap_err();
        assert!(err.to_string().contains("1 trailing bytes"), "{err}");
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = encode(&"hello");
        assert!(decode_exact::<String>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn huge_length_prefix_does_not_allocate_it() {
        // A string claiming 2^60 bytes inside a 9-byte input must fail, not try to allocate.
        let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
        bytes.push(b'x');
        assert!(decode_exact::<String>(&bytes).is_err());
        assert!(decode_exact::<Vec<u64>>(&bytes).is_err());
    }

    #[test]
    fn values_filling_their_size_class_decode() {
        for len in [
            0,
            1,
            0x1000 - 8,
            0x1000 - 7,
            0x1_0000 - 8,
            0x1_0000,
            0x30_0000,
        ] {
            let text = "x".repeat(len);
            let bytes = encode(&text);
            assert_eq!(decode_exact::<String>(&bytes).unwrap().len(), len);
            let blob = serde_bytes_like(len);
            let bytes = encode(&blob);
            assert_eq!(decode_exact::<Vec<u8>>(&bytes).unwrap(), blob);
        }
        let many: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        assert_eq!(decode_exact::<Vec<String>>(&encode(&many)).unwrap(), many);
    }

    fn serde_bytes_like(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    /// A lying length anywhere a `String` can sit is refused before allocation, and honest
    /// nested values still round-trip.
    #[test]
    fn nested_owned_strings_are_length_checked() {
        use std::collections::BTreeMap;

        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        enum Shape {
            Named { name: String },
            Tagged(String, Vec<String>),
            Empty,
        }

        let lie = |prefix: &[u8]| {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
            bytes.push(b'x');
            bytes
        };
        assert!(decode_exact::<Vec<String>>(&lie(&1u64.to_le_bytes())).is_err());
        assert!(decode_exact::<Option<String>>(&lie(&[1])).is_err());
        assert!(decode_exact::<(u8, String)>(&lie(&[7])).is_err());
        assert!(decode_exact::<Shape>(&lie(&0u32.to_le_bytes())).is_err());
        assert!(decode_exact::<BTreeMap<String, u8>>(&lie(&1u64.to_le_bytes())).is_err());

        let shapes = vec![
            Shape::Named { name: "n".into() },
            Shape::Tagged("t".into(), vec!["a".into(), "bc".into()]),
            Shape::Empty,
        ];
        assert_eq!(
            decode_exact::<Vec<Shape>>(&encode(&shapes)).unwrap(),
            shapes
        );
        let map = BTreeMap::from([("k".to_string(), Some("v".to_string()))]);
        assert_eq!(
            decode_exact::<BTreeMap<String, Option<String>>>(&encode(&map)).unwrap(),
            map
        );
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Expr {
        Lit(i64),
        Neg(Box<Expr>),
        Pair(Vec<Expr>),
    }

    /// `levels` nested `Neg`s around a literal, encoded by hand (encoding it with serde would
    /// recurse as deep).
    fn deep_neg(levels: usize) -> Vec<u8> {
        let mut bytes = 1u32.to_le_bytes().repeat(levels);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&7i64.to_le_bytes());
        bytes
    }

    /// 10,000 levels in 40 KB once overflowed the stack and aborted the process.
    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let err = decode_exact::<Expr>(&deep_neg(10_000)).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 128"), "{err}");
        // Just inside the limit decodes, on a thread with the manager's small stack.
        let ok = std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(|| decode_exact::<Expr>(&deep_neg(120)).is_ok())
            .unwrap()
            .join()
            .unwrap();
        assert!(ok);
        // Sequences nest too.
        let mut nested = Vec::new();
        for _ in 0..200 {
            nested.extend_from_slice(&2u32.to_le_bytes());
            nested.extend_from_slice(&1u64.to_le_bytes());
        }
        nested.extend_from_slice(&0u32.to_le_bytes());
        nested.extend_from_slice(&1i64.to_le_bytes());
        assert!(decode_exact::<Expr>(&nested).is_err());
        // The limit is the thread's, or explicit.
        assert!(decode_exact_at_depth::<Expr>(&deep_neg(10), 5).is_err());
        assert!(decode_exact_at_depth::<Expr>(&deep_neg(10), 12).is_ok());
        std::thread::spawn(|| {
            set_thread_max_depth(4);
            assert!(decode_exact::<Expr>(&deep_neg(4)).is_err());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0, 0xff];
        assert!(decode_exact::<String>(&bytes).is_err());
    }
}
