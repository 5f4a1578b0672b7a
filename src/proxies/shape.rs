//! Type tags: how a client names the element types of a shared object, so that reopening a
//! `Dict<String, i64>` as a `Dict<String, String>` is refused, while two separately built
//! programs that each define the same `struct Task` can share a `Queue<Task>`.
//!
//! What the wire depends on is a type's *shape*, not its module path: the tag is traced from
//! the type's `Deserialize` implementation, which names every struct, field, enum and variant
//! and asks for each primitive (`Task{id:u64,name:str}`). Types whose `Deserialize` cannot be
//! traced this way (self-describing ones, ones that validate values) fall back to their type
//! name without module paths (`Vec<Task>`), which still tells different shapes apart when
//! their names differ.

use std::fmt::{self, Write};

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};

/// Nesting traced at most; deeper (or recursive) types fall back to their name.
const MAX_DEPTH: u32 = 24;

/// Tags longer than this are cut and end in a hash of the whole, so messages stay readable.
const MAX_TAG: usize = 240;

/// The tag of `T`: its traced shape, or its name without module paths.
pub(crate) fn tag_of<T: DeserializeOwned>() -> String {
    let mut out = String::new();
    let traced = T::deserialize(Tracer {
        out: &mut out,
        depth: 0,
    });
    let tag = match traced {
        Ok(_) => out,
        Err(_) => without_paths(std::any::type_name::<T>()),
    };
    if tag.len() <= MAX_TAG {
        return tag;
    }
    let mut cut = MAX_TAG - 20;
    while !tag.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…#{:016x}", &tag[..cut], fnv1a(tag.as_bytes()))
}

/// `alloc::vec::Vec<producer::Task>` → `Vec<Task>`.
fn without_paths(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut segment = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else if c == ':' {
            segment.clear(); // a path segment: what follows `::` is the name
        } else {
            out.push_str(&segment);
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(&segment);
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Why tracing stopped (the tag then falls back to the type's name).
#[derive(Debug)]
struct Untraceable;

impl fmt::Display for Untraceable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this type's shape cannot be traced")
    }
}

impl std::error::Error for Untraceable {}

impl de::Error for Untraceable {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Untraceable
    }
}

/// A deserializer that writes down what is asked of it and answers with the simplest value.
struct Tracer<'a> {
    out: &'a mut String,
    depth: u32,
}

impl<'a> Tracer<'a> {
    fn deeper(&mut self) -> Result<Tracer<'_>, Untraceable> {
        if self.depth >= MAX_DEPTH {
            return Err(Untraceable);
        }
        Ok(Tracer {
            out: self.out,
            depth: self.depth + 1,
        })
    }
}

macro_rules! primitives {
    ($($method:ident => $name:literal, $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Untraceable> {
            self.out.push_str($name);
            visitor.$visit($value)
        }
    )*};
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Untraceable;

    primitives! {
        deserialize_bool => "bool", visit_bool(false);
        deserialize_i8 => "i8", visit_i8(0);
        deserialize_i16 => "i16", visit_i16(0);
        deserialize_i32 => "i32", visit_i32(0);
        deserialize_i64 => "i64", visit_i64(0);
        deserialize_i128 => "i128", visit_i128(0);
        deserialize_u8 => "u8", visit_u8(0);
        deserialize_u16 => "u16", visit_u16(0);
        deserialize_u32 => "u32", visit_u32(0);
        deserialize_u64 => "u64", visit_u64(0);
        deserialize_u128 => "u128", visit_u128(0);
        deserialize_f32 => "f32", visit_f32(0.0);
        deserialize_f64 => "f64", visit_f64(0.0);
        deserialize_char => "char", visit_char('a');
        deserialize_str => "str", visit_str("");
        deserialize_string => "str", visit_str("");
        deserialize_bytes => "bytes", visit_bytes(&[]);
        deserialize_byte_buf => "bytes", visit_bytes(&[]);
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Untraceable> {
        self.out.push_str("()");
        visitor.visit_unit()
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Untraceable> {
        Err(Untraceable) // self-describing: no shape to read
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Untraceable> {
        Err(Untraceable)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Untraceable> {
        Err(Untraceable)
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Untraceable> {
        self.out.push_str("option<");
        let value = visitor.visit_some(self.deeper()?)?;
        self.out.push('>');
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.out.push_str(name);
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        write!(self.out, "{name}(").map_err(|_| Untraceable)?;
        let value = visitor.visit_newtype_struct(self.deeper()?)?;
        self.out.push(')');
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Untraceable> {
        self.out.push('[');
        let value = visitor.visit_seq(Elements::new(self.deeper()?, 1, &[]))?;
        self.out.push(']');
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.out.push('(');
        let value = visitor.visit_seq(Elements::new(self.deeper()?, len, &[]))?;
        self.out.push(')');
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        write!(self.out, "{name}(").map_err(|_| Untraceable)?;
        let value = visitor.visit_seq(Elements::new(self.deeper()?, len, &[]))?;
        self.out.push(')');
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Untraceable> {
        self.out.push('{');
        let value = visitor.visit_map(OneEntry {
            tracer: self.deeper()?,
            state: 0,
        })?;
        self.out.push('}');
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        write!(self.out, "{name}{{").map_err(|_| Untraceable)?;
        let value = visitor.visit_seq(Elements::new(self.deeper()?, fields.len(), fields))?;
        self.out.push('}');
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        // Every variant's name; the first one's payload (a value must be made of one).
        write!(self.out, "{name}<{}>", variants.join("|")).map_err(|_| Untraceable)?;
        visitor.visit_enum(FirstVariant {
            tracer: self.deeper()?,
        })
    }

    fn is_human_readable(&self) -> bool {
        false // like the codec
    }
}

/// The elements of a sequence, tuple or struct: `len` of them, each traced (named, for a
/// struct's fields).
struct Elements<'a> {
    tracer: Tracer<'a>,
    left: usize,
    names: &'static [&'static str],
    at: usize,
}

impl<'a> Elements<'a> {
    fn new(tracer: Tracer<'a>, len: usize, names: &'static [&'static str]) -> Self {
        Elements {
            tracer,
            left: len,
            names,
            at: 0,
        }
    }
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Untraceable;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Untraceable> {
        if self.left == 0 {
            return Ok(None);
        }
        if self.at > 0 {
            self.tracer.out.push(',');
        }
        if let Some(name) = self.names.get(self.at) {
            write!(self.tracer.out, "{name}:").map_err(|_| Untraceable)?;
        }
        self.left -= 1;
        self.at += 1;
        seed.deserialize(Tracer {
            out: self.tracer.out,
            depth: self.tracer.depth,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A map with one entry: its key's and its value's shapes.
struct OneEntry<'a> {
    tracer: Tracer<'a>,
    /// 0: key next, 1: value next, 2: done.
    state: u8,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = Untraceable;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Untraceable> {
        if self.state != 0 {
            return Ok(None);
        }
        self.state = 1;
        seed.deserialize(Tracer {
            out: self.tracer.out,
            depth: self.tracer.depth,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Untraceable> {
        self.state = 2;
        self.tracer.out.push(':');
        seed.deserialize(Tracer {
            out: self.tracer.out,
            depth: self.tracer.depth,
        })
    }
}

/// The first variant of an enum, with its payload traced.
struct FirstVariant<'a> {
    tracer: Tracer<'a>,
}

impl<'de, 'a> EnumAccess<'de> for FirstVariant<'a> {
    type Error = Untraceable;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), Untraceable> {
        let index: de::value::U32Deserializer<Untraceable> = 0u32.into_deserializer();
        Ok((seed.deserialize(index)?, self))
    }
}

impl<'de> VariantAccess<'de> for FirstVariant<'_> {
    type Error = Untraceable;

    fn unit_variant(self) -> Result<(), Untraceable> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Untraceable> {
        self.tracer.out.push('(');
        let value = seed.deserialize(Tracer {
            out: self.tracer.out,
            depth: self.tracer.depth,
        })?;
        self.tracer.out.push(')');
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        let Tracer { out, depth } = self.tracer;
        out.push('(');
        let value = visitor.visit_seq(Elements::new(
            Tracer {
                out: &mut *out,
                depth,
            },
            len,
            &[],
        ))?;
        out.push(')');
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        let Tracer { out, depth } = self.tracer;
        out.push('{');
        let value = visitor.visit_seq(Elements::new(
            Tracer {
                out: &mut *out,
                depth,
            },
            fields.len(),
            fields,
        ))?;
        out.push('}');
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod producer {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Task {
            pub id: u64,
            pub name: String,
        }
    }

    mod consumer {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Task {
            pub id: u64,
            pub name: String,
        }
    }

    mod other {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Task {
            pub id: u64,
            pub urgent: bool,
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    enum Expr {
        Lit(i64),
        Neg(Box<Expr>),
        Add { a: Box<Expr>, b: Box<Expr> },
    }

    #[test]
    fn the_same_shape_in_two_modules_has_one_tag() {
        assert_eq!(tag_of::<producer::Task>(), tag_of::<consumer::Task>());
        assert_eq!(tag_of::<producer::Task>(), "Task{id:u64,name:str}");
        assert_ne!(tag_of::<producer::Task>(), tag_of::<other::Task>());
    }

    #[test]
    fn tags_of_common_shapes() {
        assert_eq!(tag_of::<String>(), "str");
        assert_eq!(tag_of::<Vec<u32>>(), "[u32]");
        assert_eq!(tag_of::<Option<(u8, bool)>>(), "option<(u8,bool)>");
        assert_eq!(
            tag_of::<std::collections::BTreeMap<String, Vec<i64>>>(),
            "{str:[i64]}"
        );
        assert_eq!(tag_of::<Expr>(), "Expr<Lit|Neg|Add>(i64)");
        assert_ne!(tag_of::<i64>(), tag_of::<u64>());
    }

    #[test]
    fn untraceable_types_fall_back_to_their_name_without_paths() {
        assert_eq!(
            without_paths("alloc::vec::Vec<producer::Task>"),
            "Vec<Task>"
        );
        assert_eq!(
            without_paths("std::collections::HashMap<alloc::string::String, u8>"),
            "HashMap<String, u8>"
        );
        // NonZeroU32 refuses the 0 the tracer offers: its name stands in.
        assert_eq!(tag_of::<std::num::NonZeroU32>(), "NonZero<u32>");
    }
}

#[cfg(all(test, any(feature = "python", feature = "msgpack")))]
mod shaped_tests {
    //! The tags this module makes, read back by `values::shaped`: what other languages see.
    use crate::values::shaped::Shape;
    use crate::values::value::ForeignValue;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Email {
        to: String,
        retries: u32,
        cc: Option<String>,
        sizes: Vec<(u8, i64)>,
        score: f64,
        tag: Tag,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Tag(char);

    fn s(t: &str) -> ForeignValue {
        ForeignValue::Str(t.into())
    }

    #[test]
    fn a_struct_crosses_as_a_dict_both_ways_and_misfits_name_their_field() {
        let tag = super::tag_of::<Email>();
        let shape = Shape::parse(&tag).unwrap();
        let email = Email {
            to: "ada@x".into(),
            retries: 3,
            cc: None,
            sizes: vec![(1, -2)],
            score: 0.5,
            tag: Tag('é'),
        };
        let mut stored = Vec::new();
        crate::wire::codec::encode_into(&email, &mut stored).unwrap();
        let foreign = shape.decode(&stored).unwrap();
        let dict = ForeignValue::Dict(vec![
            (s("to"), s("ada@x")),
            (s("retries"), ForeignValue::Int(3)),
            (s("cc"), ForeignValue::None),
            (
                s("sizes"),
                ForeignValue::List(vec![ForeignValue::List(vec![
                    ForeignValue::Int(1),
                    ForeignValue::Int(-2),
                ])]),
            ),
            (s("score"), ForeignValue::Float(0.5)),
            (s("tag"), s("é")),
        ]);
        assert_eq!(foreign, dict);
        assert_eq!(shape.encode(dict).unwrap(), stored);
        // A missing Option is None; field order does not matter.
        let sparse = ForeignValue::Dict(vec![
            (s("tag"), s("x")),
            (s("score"), ForeignValue::Int(1)),
            (s("sizes"), ForeignValue::List(vec![])),
            (s("retries"), ForeignValue::Int(0)),
            (s("to"), s("b")),
        ]);
        let bytes = shape.encode(sparse).unwrap();
        let back: Email = crate::wire::codec::decode_exact(&bytes).unwrap();
        assert_eq!(back.cc, None);
        assert_eq!(back.score, 1.0);
        // What does not fit is refused, naming the field.
        let wrong = |value: ForeignValue| shape.encode(value).unwrap_err();
        let with = |key: &str, value: ForeignValue| {
            let mut entries = vec![
                (s("to"), s("a")),
                (s("retries"), ForeignValue::Int(1)),
                (s("sizes"), ForeignValue::List(vec![])),
                (s("score"), ForeignValue::Float(1.0)),
                (s("tag"), s("t")),
            ];
            entries.retain(|(k, _)| *k != s(key));
            entries.push((s(key), value));
            ForeignValue::Dict(entries)
        };
        assert!(
            wrong(with("retries", ForeignValue::Int(-1)))
                .contains("Email.retries: -1 is out of range for u32")
        );
        assert!(
            wrong(with("to", ForeignValue::Int(1))).contains("Email.to: expected a str, got int")
        );
        assert!(wrong(with("extra", ForeignValue::Int(1))).contains("no field \"extra\" in Email"));
        assert!(wrong(ForeignValue::Dict(vec![])).contains("Email.to: missing"));
        assert!(wrong(s("x")).contains("expected a dict for Email"));
        // Truncated or overlong stored bytes are errors, not panics.
        for cut in 0..stored.len() {
            assert!(shape.decode(&stored[..cut]).is_err());
        }
    }

    #[test]
    fn enums_and_untraced_tags_are_refused_with_the_reason() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        enum Job {
            Resize(u32),
            Stop,
        }
        let tag = super::tag_of::<Job>();
        assert!(Shape::parse(&tag).unwrap_err().contains("enums"));
        assert!(Shape::parse("Vec<Task>").is_err());
        let big = Shape::parse("u64").unwrap();
        let stored = u64::MAX.to_le_bytes();
        assert_eq!(big.encode(big.decode(&stored).unwrap()).unwrap(), stored);
        let tuple = Shape::parse(&super::tag_of::<(String, u64)>()).unwrap();
        let mut stored = Vec::new();
        crate::wire::codec::encode_into(&("a".to_string(), u64::MAX), &mut stored).unwrap();
        let value = tuple.decode(&stored).unwrap();
        assert_eq!(tuple.encode(value).unwrap(), stored);
    }
}
