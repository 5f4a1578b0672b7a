//! A serde `Deserializer` adapter that reads owned strings and byte buffers by borrowing them
//! from the input first.
//!
//! bincode decodes an owned `String` (or `serde_bytes::ByteBuf`) by allocating a zero-filled
//! buffer of the length its prefix claims and then reading into it. That is slower than
//! needed (zeroing, `calloc`), and it trusts the claimed length: nine bytes claiming 2^60 would
//! abort the process. Asking for the borrowed form instead (`deserialize_str`,
//! `deserialize_bytes`) makes bincode check the length against the input before anything is
//! allocated, and serde's `String` visitor then copies exactly the bytes present.
//!
//! The adapter has to wrap every nested deserializer (sequence elements, map entries, enum
//! variants, options, newtypes), since serde hands those out through visitors and accessors.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// The seed that decodes a `T` through the adapter, refusing values nested deeper than
/// `max_depth` levels.
pub(super) struct Root<T> {
    pub(super) max_depth: u32,
    pub(super) value: PhantomData<T>,
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Root<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(Borrowing {
            inner: deserializer,
            depth: Depth {
                left: self.max_depth,
                max: self.max_depth,
            },
        })
    }
}

/// How many more levels of nesting a value may have. Serde decodes nested values by
/// recursion, so without a bound a recursive type (`enum Expr { Neg(Box<Expr>) }`) sent
/// 10,000 levels deep overflows the decoding thread's stack and aborts the whole process;
/// `catch_unwind` cannot catch that.
#[derive(Clone, Copy)]
struct Depth {
    left: u32,
    max: u32,
}

impl Depth {
    /// The depth one level further in; an error once the limit is passed.
    #[inline]
    fn enter<E: de::Error>(self) -> Result<Depth, E> {
        match self.left.checked_sub(1) {
            Some(left) => Ok(Depth { left, ..self }),
            None => Err(E::custom(format_args!(
                "the value is nested deeper than {} levels",
                self.max
            ))),
        }
    }
}

/// The deserializer adapter. Every value decoded through it counts one level of nesting.
struct Borrowing<D> {
    inner: D,
    depth: Depth,
}

macro_rules! forward {
    ($($method:ident),* $(,)?) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let depth = self.depth.enter()?;
            self.inner.$method(Wrap(visitor, depth))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Borrowing<D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_bytes,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner.deserialize_str(Wrap(visitor, depth))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner.deserialize_bytes(Wrap(visitor, depth))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_unit_struct(name, Wrap(visitor, depth))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_newtype_struct(name, Wrap(visitor, depth))
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner.deserialize_tuple(len, Wrap(visitor, depth))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_tuple_struct(name, len, Wrap(visitor, depth))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_struct(name, fields, Wrap(visitor, depth))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_enum(name, variants, Wrap(visitor, depth))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor whose nested deserializers are wrapped too, at the depth of the value it visits.
struct Wrap<V>(V, Depth);

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            self.0.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Borrowing {
            inner: deserializer,
            depth: self.1,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Borrowing {
            inner: deserializer,
            depth: self.1,
        })
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(WrapSeq(seq, self.1))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(WrapMap(map, self.1))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(WrapEnum(data, self.1))
    }
}

/// A seed whose deserializer is wrapped, one level below its container.
struct WrapSeed<S>(S, Depth);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for WrapSeed<S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Borrowing {
            inner: deserializer,
            depth: self.1,
        })
    }
}

struct WrapSeq<A>(A, Depth);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for WrapSeq<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(WrapSeed(seed, self.1))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct WrapMap<A>(A, Depth);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WrapMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(WrapSeed(seed, self.1))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(WrapSeed(seed, self.1))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct WrapEnum<A>(A, Depth);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for WrapEnum<A> {
    type Error = A::Error;
    type Variant = WrapVariant<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(WrapSeed(seed, self.1))?;
        Ok((value, WrapVariant(variant, self.1)))
    }
}

struct WrapVariant<A>(A, Depth);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for WrapVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(WrapSeed(seed, self.1))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor, self.1))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(visitor, self.1))
    }
}
