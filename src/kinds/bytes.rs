//! Values as the manager stores them: encoded bytes it never interprets.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Result;
use crate::wire::codec;

/// The newtype name an element travels under: invisible to bincode (a newtype is its
/// content), it tells the foreign formats' bridge that these bytes are an element a foreign
/// client gives and gets as a plain value (encoded as a `Dynamic` on the way in, decoded on
/// the way out), so one declaration of a kind serves bincode and foreign clients alike.
pub(crate) const ELEMENT: &str = "monogusa.Element";

/// An encoded value (an element of a kind). Serialized as one byte string (not byte by byte,
/// as `Vec<u8>` would be), under the newtype name [`ELEMENT`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Bytes {
    pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
        let mut out = Vec::new();
        codec::encode_into(value, &mut out)?;
        Ok(Bytes(out))
    }

    pub(crate) fn decode<T: de::DeserializeOwned>(&self) -> Result<T> {
        codec::decode_exact(&self.0)
    }
}

/// The bytes themselves, inside the [`ELEMENT`] newtype.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(ELEMENT, &Raw(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct BytesVisitor;

        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v))
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> std::result::Result<Bytes, D::Error> {
                deserializer.deserialize_byte_buf(BytesVisitor)
            }
        }

        deserializer.deserialize_newtype_struct(ELEMENT, BytesVisitor)
    }
}
