//! `Dynamic`: a value of any plain shape, for functions that take whatever a Python client
//! sends (the tutorial's key-value store keeps `10`, `'x'` or `[1, 2]` alike).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Any plain value: what Python's `None`, `bool`, `int`, `float`, `str`, `bytes`, `list`/
/// `tuple` and `dict` are. In self-describing formats (Python's pickles, JSON) it is the value
/// itself; in the native protocol it is sent tagged, so Rust clients use it as an enum.
///
/// ```
/// use monogusa::Dynamic;
/// let value = Dynamic::Int(10);
/// assert_eq!(value.as_i64(), Some(10));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Dynamic {
    /// `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits 64 bits.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// A `list` or `tuple`.
    List(Vec<Dynamic>),
    /// A `dict`, in order.
    Map(Vec<(Dynamic, Dynamic)>),
}

impl Dynamic {
    /// The integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Dynamic::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The text, if it is a str.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Dynamic::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The tagged form, for formats that are not self-describing (bincode).
#[derive(Serialize, Deserialize)]
enum Tagged {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    List(Vec<Dynamic>),
    Map(Vec<(Dynamic, Dynamic)>),
}

/// `Vec<u8>` as one byte string (without a serde_bytes dependency).
mod serde_bytes_compat {
    pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let bytes: crate::store::Bytes = serde::Deserialize::deserialize(d)?;
        Ok(bytes.0)
    }
}

impl Serialize for Dynamic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            let tagged = match self.clone() {
                Dynamic::None => Tagged::None,
                Dynamic::Bool(b) => Tagged::Bool(b),
                Dynamic::Int(n) => Tagged::Int(n),
                Dynamic::Float(f) => Tagged::Float(f),
                Dynamic::Str(t) => Tagged::Str(t),
                Dynamic::Bytes(b) => Tagged::Bytes(b),
                Dynamic::List(l) => Tagged::List(l),
                Dynamic::Map(m) => Tagged::Map(m),
            };
            return tagged.serialize(s);
        }
        match self {
            Dynamic::None => s.serialize_none(),
            Dynamic::Bool(b) => s.serialize_bool(*b),
            Dynamic::Int(n) => s.serialize_i64(*n),
            Dynamic::Float(f) => s.serialize_f64(*f),
            Dynamic::Str(t) => s.serialize_str(t),
            Dynamic::Bytes(b) => s.serialize_bytes(b),
            Dynamic::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Dynamic::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Dynamic;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a plain value")
    }
    fn visit_unit<E>(self) -> Result<Dynamic, E> {
        Ok(Dynamic::None)
    }
    fn visit_none<E>(self) -> Result<Dynamic, E> {
        Ok(Dynamic::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Dynamic, D::Error> {
        Dynamic::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Dynamic, E> {
        Ok(Dynamic::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Dynamic, E> {
        Ok(Dynamic::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dynamic, E> {
        i64::try_from(v)
            .map(Dynamic::Int)
            .map_err(|_| E::custom("an integer above i64::MAX"))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Dynamic, E> {
        i64::try_from(v)
            .map(Dynamic::Int)
            .map_err(|_| E::custom("an integer beyond 64 bits"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Dynamic, E> {
        Ok(Dynamic::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Dynamic, E> {
        Ok(Dynamic::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Dynamic, E> {
        Ok(Dynamic::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Dynamic, E> {
        Ok(Dynamic::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Dynamic, E> {
        Ok(Dynamic::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dynamic, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Dynamic::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dynamic, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Dynamic::Map(pairs))
    }
}

impl<'de> Deserialize<'de> for Dynamic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dynamic, D::Error> {
        if !d.is_human_readable() {
            return Ok(match Tagged::deserialize(d)? {
                Tagged::None => Dynamic::None,
                Tagged::Bool(b) => Dynamic::Bool(b),
                Tagged::Int(n) => Dynamic::Int(n),
                Tagged::Float(f) => Dynamic::Float(f),
                Tagged::Str(t) => Dynamic::Str(t),
                Tagged::Bytes(b) => Dynamic::Bytes(b),
                Tagged::List(l) => Dynamic::List(l),
                Tagged::Map(m) => Dynamic::Map(m),
            });
        }
        d.deserialize_any(AnyVisitor)
    }
}
