//! Python values to and from serde: how a registered Rust function is called with a Python
//! client's arguments, and how its result goes back.
//!
//! The mapping (both ways): `None` ↔ `()`/`None`; `bool`; `int` ↔ every integer type (range
//! checked; beyond 64 bits ↔ `i128`/`u128`); `float` ↔ `f32`/`f64` (an `int` is accepted for
//! a float); `str` ↔ `String`/`&str`/`char`/unit enum variants; `bytes` ↔ `serde_bytes`
//! (`Vec<u8>` is a list of ints); `tuple`/`list`/`set` ↔ sequences and tuples; `dict` ↔ maps,
//! and structs by field name; `{"Variant": value}` ↔ an enum variant with data;
//! `complex` → `(re, im)`.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

use super::value::{ForeignValue, big_to_i128, i128_to_big};

/// A value that does not fit the Rust type (or the reverse), in words.
#[derive(Debug)]
pub(crate) struct BridgeError(pub(crate) String);

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BridgeError {}

impl de::Error for BridgeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        BridgeError(msg.to_string())
    }
}

impl ser::Error for BridgeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        BridgeError(msg.to_string())
    }
}

type DeResult<T> = Result<T, BridgeError>;

struct Seq(std::vec::IntoIter<ForeignValue>);

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = BridgeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> DeResult<Option<T::Value>> {
        self.0.next().map(|v| seed.deserialize(v)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map {
    pairs: std::vec::IntoIter<(ForeignValue, ForeignValue)>,
    value: Option<ForeignValue>,
}

impl<'de> de::MapAccess<'de> for Map {
    type Error = BridgeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> DeResult<Option<K::Value>> {
        match self.pairs.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> DeResult<V::Value> {
        seed.deserialize(self.value.take().unwrap_or(ForeignValue::None))
    }
}

struct Enum {
    variant: String,
    value: Option<ForeignValue>,
}

impl<'de> de::EnumAccess<'de> for Enum {
    type Error = BridgeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> DeResult<(V::Value, Self)> {
        let name = seed.deserialize(self.variant.clone().into_deserializer())?;
        Ok((name, self))
    }
}

impl<'de> de::VariantAccess<'de> for Enum {
    type Error = BridgeError;

    fn unit_variant(self) -> DeResult<()> {
        match self.value {
            None | Some(ForeignValue::None) => Ok(()),
            Some(other) => Err(BridgeError(format!(
                "variant {} takes no value, got a {}",
                self.variant,
                other.type_name()
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> DeResult<T::Value> {
        seed.deserialize(self.value.unwrap_or(ForeignValue::None))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> DeResult<V::Value> {
        de::Deserializer::deserialize_tuple(self.value.unwrap_or(ForeignValue::None), len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> DeResult<V::Value> {
        de::Deserializer::deserialize_struct(
            self.value.unwrap_or(ForeignValue::None),
            "",
            fields,
            visitor,
        )
    }
}

fn mismatch(value: &ForeignValue, expected: &str) -> BridgeError {
    BridgeError(format!("expected {expected}, got a {}", value.type_name()))
}

impl<'de> de::Deserializer<'de> for ForeignValue {
    type Error = BridgeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> DeResult<V::Value> {
        match self {
            ForeignValue::None => visitor.visit_unit(),
            ForeignValue::Bool(b) => visitor.visit_bool(b),
            ForeignValue::Int(n) => visitor.visit_i64(n),
            ForeignValue::BigInt(bytes) => match big_to_i128(&bytes) {
                // A u64 past i64 (a lease token) as a u64, which every integer type takes.
                Some(n) => match u64::try_from(n) {
                    Ok(n) => visitor.visit_u64(n),
                    Err(_) => visitor.visit_i128(n),
                },
                None => Err(BridgeError("an int too large for 128 bits".into())),
            },
            ForeignValue::Float(f) => visitor.visit_f64(f),
            ForeignValue::Complex(re, im) => {
                visitor.visit_seq(Seq(
                    vec![ForeignValue::Float(re), ForeignValue::Float(im)].into_iter()
                ))
            }
            ForeignValue::Str(s) => visitor.visit_string(s),
            ForeignValue::Bytes(b) => visitor.visit_byte_buf(b),
            ForeignValue::Tuple(items)
            | ForeignValue::List(items)
            | ForeignValue::Set(items)
            | ForeignValue::FrozenSet(items) => visitor.visit_seq(Seq(items.into_iter())),
            ForeignValue::Dict(pairs) => visitor.visit_map(Map {
                pairs: pairs.into_iter(),
                value: None,
            }),
            other @ (ForeignValue::Exception(..) | ForeignValue::Token { .. }) => {
                Err(mismatch(&other, "a plain value"))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> DeResult<V::Value> {
        match self {
            ForeignValue::None => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> DeResult<V::Value> {
        match self {
            ForeignValue::None => visitor.visit_unit(),
            ForeignValue::Tuple(items) | ForeignValue::List(items) if items.is_empty() => {
                visitor.visit_unit()
            }
            other => Err(mismatch(&other, "None")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> DeResult<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> DeResult<V::Value> {
        match self {
            ForeignValue::Int(n) => visitor.visit_f64(n as f64),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> DeResult<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> DeResult<V::Value> {
        match self {
            ForeignValue::Tuple(mut items) | ForeignValue::List(mut items) => {
                // Trailing values left out read as None: optional trailing arguments (a
                // timeout) may be omitted, as in Python.
                if items.len() < len {
                    items.resize(len, ForeignValue::None);
                }
                if items.len() != len {
                    return Err(BridgeError(format!(
                        "expected {len} values, got {}",
                        items.len()
                    )));
                }
                visitor.visit_seq(Seq(items.into_iter()))
            }
            other => Err(mismatch(&other, &format!("a tuple of {len}"))),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> DeResult<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> DeResult<V::Value> {
        if name == crate::kinds::ELEMENT {
            // A kind's element: whatever plain value the client gave, kept as a `Dynamic`.
            return visitor.visit_newtype_struct(ForeignValue::Bytes(element_in(self)?));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> DeResult<V::Value> {
        match self {
            ForeignValue::Str(variant) => visitor.visit_enum(Enum {
                variant,
                value: None,
            }),
            ForeignValue::Dict(mut pairs) if pairs.len() == 1 => match pairs.pop() {
                Some((ForeignValue::Str(variant), value)) => visitor.visit_enum(Enum {
                    variant,
                    value: Some(value),
                }),
                _ => Err(BridgeError("an enum as a dict needs a str key".into())),
            },
            other => Err(mismatch(&other, "a variant name, or {name: value}")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string bytes byte_buf
        seq map struct identifier ignored_any
    }
}

/// Serializes a Rust value into a Python value.
pub(crate) struct ToForeign;

/// Collects a sequence's, tuple's or map's parts.
pub(crate) struct Collect {
    items: Vec<ForeignValue>,
    pairs: Vec<(ForeignValue, ForeignValue)>,
    key: Option<ForeignValue>,
    /// Wrap the result as `{variant: ...}`.
    variant: Option<&'static str>,
    tuple: bool,
}

impl Collect {
    fn new(variant: Option<&'static str>, tuple: bool) -> Self {
        Collect {
            items: Vec::new(),
            pairs: Vec::new(),
            key: None,
            variant,
            tuple,
        }
    }

    fn wrap(variant: Option<&'static str>, value: ForeignValue) -> ForeignValue {
        match variant {
            Some(name) => ForeignValue::Dict(vec![(ForeignValue::Str(name.into()), value)]),
            None => value,
        }
    }

    fn finish_seq(self) -> ForeignValue {
        let value = if self.tuple {
            ForeignValue::Tuple(self.items)
        } else {
            ForeignValue::List(self.items)
        };
        Self::wrap(self.variant, value)
    }

    fn finish_map(self) -> ForeignValue {
        Self::wrap(self.variant, ForeignValue::Dict(self.pairs))
    }
}

type SerResult = Result<ForeignValue, BridgeError>;

impl ser::Serializer for ToForeign {
    type Ok = ForeignValue;
    type Error = BridgeError;
    type SerializeSeq = Collect;
    type SerializeTuple = Collect;
    type SerializeTupleStruct = Collect;
    type SerializeTupleVariant = Collect;
    type SerializeMap = Collect;
    type SerializeStruct = Collect;
    type SerializeStructVariant = Collect;

    fn serialize_bool(self, v: bool) -> SerResult {
        Ok(ForeignValue::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> SerResult {
        Ok(ForeignValue::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> SerResult {
        Ok(ForeignValue::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> SerResult {
        Ok(ForeignValue::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> SerResult {
        Ok(ForeignValue::Int(v))
    }
    fn serialize_i128(self, v: i128) -> SerResult {
        Ok(match i64::try_from(v) {
            Ok(n) => ForeignValue::Int(n),
            Err(_) => ForeignValue::BigInt(i128_to_big(v)),
        })
    }
    fn serialize_u8(self, v: u8) -> SerResult {
        Ok(ForeignValue::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> SerResult {
        Ok(ForeignValue::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> SerResult {
        Ok(ForeignValue::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> SerResult {
        self.serialize_i128(v.into())
    }
    fn serialize_u128(self, v: u128) -> SerResult {
        match i128::try_from(v) {
            Ok(n) => self.serialize_i128(n),
            Err(_) => Err(BridgeError("a u128 above i128::MAX".into())),
        }
    }
    fn serialize_f32(self, v: f32) -> SerResult {
        Ok(ForeignValue::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> SerResult {
        Ok(ForeignValue::Float(v))
    }
    fn serialize_char(self, v: char) -> SerResult {
        Ok(ForeignValue::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> SerResult {
        Ok(ForeignValue::Str(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> SerResult {
        Ok(ForeignValue::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> SerResult {
        Ok(ForeignValue::None)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> SerResult {
        value.serialize(self)
    }
    fn serialize_unit(self) -> SerResult {
        Ok(ForeignValue::None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> SerResult {
        Ok(ForeignValue::None)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> SerResult {
        Ok(ForeignValue::Str(variant.into()))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> SerResult {
        match value.serialize(self)? {
            // A kind's element: given back as the plain value it holds.
            ForeignValue::Bytes(bytes) if name == crate::kinds::ELEMENT => element_out(&bytes),
            other => Ok(other),
        }
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> SerResult {
        Ok(Collect::wrap(Some(variant), value.serialize(ToForeign)?))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Collect, BridgeError> {
        Ok(Collect::new(None, false))
    }
    fn serialize_tuple(self, _: usize) -> Result<Collect, BridgeError> {
        Ok(Collect::new(None, true))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Collect, BridgeError> {
        Ok(Collect::new(None, true))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Collect, BridgeError> {
        Ok(Collect::new(Some(variant), true))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Collect, BridgeError> {
        Ok(Collect::new(None, false))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Collect, BridgeError> {
        Ok(Collect::new(None, false))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Collect, BridgeError> {
        Ok(Collect::new(Some(variant), false))
    }
}

impl ser::SerializeSeq for Collect {
    type Ok = ForeignValue;
    type Error = BridgeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), BridgeError> {
        self.items.push(value.serialize(ToForeign)?);
        Ok(())
    }
    fn end(self) -> SerResult {
        Ok(self.finish_seq())
    }
}

impl ser::SerializeTuple for Collect {
    type Ok = ForeignValue;
    type Error = BridgeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), BridgeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> SerResult {
        Ok(self.finish_seq())
    }
}

impl ser::SerializeTupleStruct for Collect {
    type Ok = ForeignValue;
    type Error = BridgeError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), BridgeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> SerResult {
        Ok(self.finish_seq())
    }
}

impl ser::SerializeTupleVariant for Collect {
    type Ok = ForeignValue;
    type Error = BridgeError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), BridgeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> SerResult {
        Ok(self.finish_seq())
    }
}

impl ser::SerializeMap for Collect {
    type Ok = ForeignValue;
    type Error = BridgeError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), BridgeError> {
        self.key = Some(key.serialize(ToForeign)?);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), BridgeError> {
        let key = self.key.take().unwrap_or(ForeignValue::None);
        self.pairs.push((key, value.serialize(ToForeign)?));
        Ok(())
    }
    fn end(self) -> SerResult {
        Ok(self.finish_map())
    }
}

impl ser::SerializeStruct for Collect {
    type Ok = ForeignValue;
    type Error = BridgeError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), BridgeError> {
        self.pairs
            .push((ForeignValue::Str(key.into()), value.serialize(ToForeign)?));
        Ok(())
    }
    fn end(self) -> SerResult {
        Ok(self.finish_map())
    }
}

impl ser::SerializeStructVariant for Collect {
    type Ok = ForeignValue;
    type Error = BridgeError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), BridgeError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> SerResult {
        Ok(self.finish_map())
    }
}

/// How a kind's elements are kept, when not as `Dynamic` values: an exposure with Rust types
/// (Python's `PythonShared::queue::<T>`) converts them as `T`.
pub(crate) type ElementIn =
    std::sync::Arc<dyn Fn(ForeignValue) -> Result<Vec<u8>, String> + Send + Sync>;
/// The way back of [`ElementIn`].
pub(crate) type ElementOut =
    std::sync::Arc<dyn Fn(&[u8]) -> Result<ForeignValue, String> + Send + Sync>;

thread_local! {
    /// The element conversion of the call running on this thread, if not `Dynamic`'s.
    static ELEMENTS: std::cell::RefCell<Option<(ElementIn, ElementOut)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `call` with a kind's elements converted by `codec` instead of as `Dynamic` values.
pub(crate) fn with_elements<R>(codec: (ElementIn, ElementOut), call: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ELEMENTS.with(|e| e.borrow_mut().take());
        }
    }
    ELEMENTS.with(|e| *e.borrow_mut() = Some(codec));
    let _reset = Reset;
    call()
}

/// The conversion in force on this thread, if any.
fn elements() -> Option<(ElementIn, ElementOut)> {
    ELEMENTS.with(|e| e.borrow().clone())
}

/// A foreign client's value as a kind keeps it: a `Dynamic`, encoded (or as the call's
/// element type says).
fn element_in(value: ForeignValue) -> Result<Vec<u8>, BridgeError> {
    if let Some((into, _)) = elements() {
        return into(value).map_err(BridgeError);
    }
    let dynamic = <crate::values::Dynamic as serde::Deserialize>::deserialize(value)
        .map_err(|e| BridgeError(format!("not a plain value: {e}")))?;
    let mut out = Vec::new();
    crate::wire::codec::encode_into(&dynamic, &mut out).map_err(|e| BridgeError(e.to_string()))?;
    Ok(out)
}

/// A kept element as a foreign client gets it.
fn element_out(bytes: &[u8]) -> SerResult {
    if let Some((_, out)) = elements() {
        return out(bytes).map_err(BridgeError);
    }
    let dynamic: crate::values::Dynamic =
        crate::wire::codec::decode_exact(bytes).map_err(|_| {
            BridgeError(
                "a stored value is not a plain value (a typed Rust program put it there?)".into(),
            )
        })?;
    dynamic.serialize(ToForeign)
}

/// Conversions between `Dynamic` and any serde type go through the foreign values (here, so
/// that `dynamic` does not lean on the bridge that leans on it).
impl crate::values::Dynamic {
    /// Any serde value as a `Dynamic`, as Python and msgpack-rpc see it: a struct becomes a
    /// map keyed by its field names, a tuple or `Vec` a list, a unit enum variant its name.
    /// What a Rust producer pushes this way, a worker in any language reads (the inverse of
    /// [`Dynamic::decode`](Self::decode)). An integer beyond `i64` is an error.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> crate::Result<Self> {
        let foreign = value
            .serialize(ToForeign)
            .map_err(|e| crate::Error::Codec(e.to_string()))?;
        <Self as serde::Deserialize>::deserialize(foreign)
            .map_err(|e| crate::Error::Codec(format!("to a Dynamic: {e}")))
    }

    /// Converts to any type serde can build, by field names: a dict becomes a struct (its
    /// keys naming the fields; a missing `Option` field is `None`), a list a tuple or a
    /// `Vec`, a str a unit enum variant. An item pushed from Python or msgpack-rpc reads as
    /// the Rust type it stands for:
    ///
    /// ```
    /// # fn main() -> monogusa::Result<()> {
    /// use monogusa::Dynamic;
    /// #[derive(serde::Deserialize, Debug, PartialEq)]
    /// struct Email { to: String, retries: u32, cc: Option<String> }
    ///
    /// let pushed = Dynamic::Map(vec![
    ///     (Dynamic::Str("to".into()), Dynamic::Str("ada@example.com".into())),
    ///     (Dynamic::Str("retries".into()), Dynamic::Int(3)),
    /// ]);
    /// let email: Email = pushed.decode()?;
    /// assert_eq!(email, Email { to: "ada@example.com".into(), retries: 3, cc: None });
    /// // What does not fit is an error that names it.
    /// let wrong = Dynamic::Map(vec![(Dynamic::Str("to".into()), Dynamic::Int(1))]);
    /// assert!(wrong.decode::<Email>().unwrap_err().to_string().contains("integer"));
    /// # Ok(()) }
    /// ```
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        let foreign = self
            .serialize(ToForeign)
            .map_err(|e| crate::Error::Codec(e.to_string()))?;
        T::deserialize(foreign).map_err(|e| crate::Error::Codec(format!("from a Dynamic: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Point {
        x: i32,
        y: Option<String>,
    }

    #[test]
    fn python_values_become_rust_values_and_back() {
        let args = ForeignValue::Tuple(vec![
            ForeignValue::Str("a".into()),
            ForeignValue::Int(7),
            ForeignValue::Dict(vec![
                (ForeignValue::Str("x".into()), ForeignValue::Int(1)),
                (ForeignValue::Str("y".into()), ForeignValue::None),
            ]),
        ]);
        let (name, n, point): (String, u8, Point) = Deserialize::deserialize(args).unwrap();
        assert_eq!(
            (name.as_str(), n, &point),
            ("a", 7, &Point { x: 1, y: None })
        );
        assert_eq!(
            point.serialize(ToForeign).unwrap(),
            ForeignValue::Dict(vec![
                (ForeignValue::Str("x".into()), ForeignValue::Int(1)),
                (ForeignValue::Str("y".into()), ForeignValue::None),
            ])
        );
        let err =
            <(u8,)>::deserialize(ForeignValue::Tuple(vec![ForeignValue::Int(300)])).unwrap_err();
        assert!(err.0.contains("300"), "{err}");
        // Trailing values left out read as None: fine for an option, an error otherwise.
        let err =
            <(i64, i64)>::deserialize(ForeignValue::Tuple(vec![ForeignValue::Int(1)])).unwrap_err();
        assert!(err.0.contains("unit value"), "{err}");
        assert_eq!(
            <(i64, Option<u64>)>::deserialize(ForeignValue::Tuple(vec![ForeignValue::Int(1)]))
                .unwrap(),
            (1, None)
        );
        let err = <(i64,)>::deserialize(ForeignValue::Tuple(vec![
            ForeignValue::Int(1),
            ForeignValue::Int(2),
        ]))
        .unwrap_err();
        assert!(err.0.contains("expected 1 values, got 2"), "{err}");
        assert_eq!(
            u64::MAX.serialize(ToForeign).unwrap(),
            ForeignValue::BigInt(i128_to_big(u64::MAX.into()))
        );
    }

    #[test]
    fn dynamic_is_natural_in_python_tagged_in_bincode() {
        let value = crate::values::Dynamic::List(vec![
            crate::values::Dynamic::Int(1),
            crate::values::Dynamic::Str("x".into()),
            crate::values::Dynamic::None,
        ]);
        let py = value.serialize(ToForeign).unwrap();
        assert_eq!(
            py,
            crate::values::value::ForeignValue::List(vec![
                crate::values::value::ForeignValue::Int(1),
                crate::values::value::ForeignValue::Str("x".into()),
                crate::values::value::ForeignValue::None,
            ])
        );
        assert_eq!(crate::values::Dynamic::deserialize(py).unwrap(), value);
        let mut bytes = Vec::new();
        crate::wire::codec::encode_into(&value, &mut bytes).unwrap();
        assert_eq!(
            crate::wire::codec::decode_exact::<crate::values::Dynamic>(&bytes).unwrap(),
            value
        );
        assert_eq!(serde_json::to_string(&value).unwrap(), r#"[1,"x",null]"#);
    }
}
