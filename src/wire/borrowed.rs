//! Arguments decoded in place: strings and byte strings borrowed from the call's frame
//! instead of copied into a fresh `String` or `Vec<u8>` for every call.
//!
//! Two ways in:
//! - `#[service]` methods take `&str`, `&[u8]`, `Cow<'_, str>` or `Cow<'_, [u8]>` as they
//!   are; the generated dispatch decodes them through [`WireStr`] and [`WireBytes`].
//! - Registered functions take [`Str`] and [`Bytes`]. A closure cannot take `&str` there:
//!   rustc cannot pick between "an owned argument" and "a borrowed one" for a closure whose
//!   argument has a lifetime (the two candidate impls differ only by lifetimes, which trait
//!   selection ignores), so the borrowed kinds are our own types with their own
//!   [`Argument`] impls.
//!
//! A string is validated as UTF-8 once, by the codec, where it lies in the frame; nothing
//! copies it. Through the serde boundary (msgpack-rpc, Python clients), a format that cannot
//! lend its input gives an owned string instead, so the same function serves every listener.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Visitor};

/// A string argument of a registered function, borrowed from the call's frame:
/// `register("greet", |name: Str| format!("hello {name}"))`. Dereferences to `str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Str<'a>(Cow<'a, str>);

/// A byte-string argument of a registered function, borrowed from the call's frame:
/// `register("size", |data: Bytes| data.len())`. Dereferences to `[u8]`. Callers send
/// `&[u8]`, `Vec<u8>` or `serde_bytes::ByteBuf`: all three have the same encoding.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes<'a>(Cow<'a, [u8]>);

impl<'a> Str<'a> {
    /// The string, borrowed from the frame when the wire format allowed it.
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }

    /// True if it points into the frame (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }
}

impl<'a> Bytes<'a> {
    /// The bytes, borrowed from the frame when the wire format allowed it.
    pub fn into_cow(self) -> Cow<'a, [u8]> {
        self.0
    }

    /// True if they point into the frame (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Deref for Bytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for Str<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl serde::Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// How one argument of a registered function is decoded: owned types (every
/// `DeserializeOwned` type) as themselves, [`Str`] and [`Bytes`] borrowed from the frame.
///
/// `At<'a>` is the argument as the function receives it from a frame that lives for `'a`;
/// `Wire<'a>` is what the codec decodes first.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a registered function",
    label = "not `serde::Deserialize` (owned), nor `monogusa::Str` / `monogusa::Bytes`",
    note = "arguments are owned serde types (`String`, `Vec<u8>`, your own `#[derive(Deserialize)]` \
            types), or `monogusa::Str` / `monogusa::Bytes` to borrow from the call's frame"
)]
pub trait Argument {
    /// The argument as the function receives it.
    type At<'a>;
    /// What the codec decodes.
    #[doc(hidden)]
    type Wire<'a>: Deserialize<'a>;
    /// Turns what was decoded into the argument.
    #[doc(hidden)]
    fn from_wire<'a>(wire: Self::Wire<'a>) -> Self::At<'a>;
}

impl<T: DeserializeOwned> Argument for T {
    type At<'a> = T;
    type Wire<'a> = T;
    #[inline]
    fn from_wire<'a>(wire: Self::Wire<'a>) -> Self::At<'a> {
        wire
    }
}

impl Argument for Str<'_> {
    type At<'a> = Str<'a>;
    type Wire<'a> = WireStr<'a>;
    #[inline]
    fn from_wire<'a>(wire: Self::Wire<'a>) -> Self::At<'a> {
        Str(wire.0)
    }
}

impl Argument for Bytes<'_> {
    type At<'a> = Bytes<'a>;
    type Wire<'a> = WireBytes<'a>;
    #[inline]
    fn from_wire<'a>(wire: Self::Wire<'a>) -> Self::At<'a> {
        Bytes(wire.0)
    }
}

/// A string decoded in place when the format lends its input, owned otherwise. (Generated
/// dispatch decodes `&str` and `Cow<str>` method arguments through it.)
#[doc(hidden)]
pub struct WireStr<'a>(pub Cow<'a, str>);

/// Bytes decoded in place when the format lends its input, owned otherwise.
#[doc(hidden)]
pub struct WireBytes<'a>(pub Cow<'a, [u8]>);

impl<'a> WireStr<'a> {
    /// The string as `&str`, for a method that takes `&str`.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> WireBytes<'a> {
    /// The bytes as `&[u8]`, for a method that takes `&[u8]`.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireStr<'a> {
    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            #[inline]
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                std::str::from_utf8(v)
                    .map(Cow::Borrowed)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                std::str::from_utf8(v)
                    .map(|s| Cow::Owned(s.to_owned()))
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
            }
        }
        d.deserialize_str(StrVisitor).map(WireStr)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireBytes<'a> {
    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Cow<'de, [u8]>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            #[inline]
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v.as_bytes()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.as_bytes().to_vec()))
            }
            // Formats without a byte-string type (JSON, a Python list) send a sequence.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(byte) = seq.next_element::<u8>()? {
                    bytes.push(byte);
                }
                Ok(Cow::Owned(bytes))
            }
        }
        d.deserialize_bytes(BytesVisitor).map(WireBytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codec_lends_strings_and_bytes_from_the_frame() {
        let mut frame = Vec::new();
        crate::wire::codec::encode_into(
            &("hello", serde_bytes::Bytes::new(b"\x00\xff")),
            &mut frame,
        )
        .unwrap();
        let (s, b): (WireStr<'_>, WireBytes<'_>) =
            crate::wire::codec::decode_arguments(&frame, &"test").unwrap();
        assert!(matches!(s.0, Cow::Borrowed("hello")));
        assert!(matches!(b.0, Cow::Borrowed(&[0x00, 0xff])));
        // Inside the frame, not a copy.
        let range = frame.as_ptr_range();
        assert!(range.contains(&s.as_str().as_ptr()));
        assert!(range.contains(&b.as_slice().as_ptr()));
    }

    #[test]
    fn a_vec_of_bytes_encodes_as_bytes_do() {
        let mut from_vec = Vec::new();
        crate::wire::codec::encode_into(&(vec![1u8, 2, 3],), &mut from_vec).unwrap();
        let mut from_slice = Vec::new();
        crate::wire::codec::encode_into(&(serde_bytes::Bytes::new(&[1, 2, 3]),), &mut from_slice)
            .unwrap();
        assert_eq!(from_vec, from_slice);
        let (b,): (WireBytes<'_>,) =
            crate::wire::codec::decode_arguments(&from_vec, &"test").unwrap();
        assert_eq!(b.as_slice(), &[1, 2, 3]);
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut frame = Vec::new();
        crate::wire::codec::encode_into(&(serde_bytes::Bytes::new(b"\xff\xfe"),), &mut frame)
            .unwrap();
        let refused = crate::wire::codec::decode_arguments::<(WireStr<'_>,)>(&frame, &"greet");
        let message = refused.err().unwrap().to_string();
        assert!(message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn formats_that_cannot_lend_give_owned_values() {
        // An escaped string cannot be lent: JSON unescapes it into a buffer of its own.
        let s: WireStr<'_> = serde_json::from_str("\"caf\\u00e9\"").unwrap();
        assert!(matches!(s.0, Cow::Owned(ref o) if o == "café"));
        let s: WireStr<'_> = serde_json::from_str("\"plain\"").unwrap();
        assert!(matches!(s.0, Cow::Borrowed("plain")));
        let b: WireBytes<'_> = serde_json::from_str("[1,2,255]").unwrap();
        assert_eq!(b.as_slice(), &[1, 2, 255]);
    }
}
