//! A typed object's elements for clients in other languages: the type tag a Rust client gave
//! the object (`Email{to:str,retries:u32,cc:option<str>}`, traced from the type's
//! `Deserialize` by `proxies::shape`) read back as a [`Shape`], and the stored bytes converted
//! by it to and from foreign values — a struct is a dict keyed by field names, a tuple a list,
//! an `Option` a value or nil — so that Python and msgpack-rpc clients push to and take from a
//! `TaskQueue<Email>` as they do from a `Dynamic` one. Sans IO.
//!
//! What a tag cannot describe is refused when the object is opened, with the reason: enums
//! (the tag describes only their first variant), types whose shape was not traced (their tag is
//! a type name), and tags cut for length. Values that do not fit are refused naming the field.

use std::fmt::Write as _;

use serde::Serialize;

use super::bridge::ToForeign;
use super::value::ForeignValue;

/// The conversions of a typed object's elements for a foreign client's calls (see
/// `bridge::with_elements`), from the object's tag; why not, if the tag cannot be used.
pub(crate) fn element_codec(
    tag: &str,
) -> Result<(super::bridge::ElementIn, super::bridge::ElementOut), String> {
    let shape = std::sync::Arc::new(Shape::parse(tag)?);
    let back = std::sync::Arc::clone(&shape);
    Ok((
        std::sync::Arc::new(move |value| shape.encode(value)),
        std::sync::Arc::new(move |bytes: &[u8]| back.decode(bytes)),
    ))
}

/// How deep a shape may nest (the tracer stops at 24).
const MAX_DEPTH: usize = 32;

/// The shape of a typed element, as its tag describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Bool,
    Int(Int),
    F32,
    F64,
    Char,
    Str,
    Bytes,
    /// `()` and unit structs: nothing on the wire, nil to a client.
    Unit,
    Option(Box<Shape>),
    Seq(Box<Shape>),
    Map(Box<Shape>, Box<Shape>),
    /// Tuples and tuple structs: their elements in order, a list to a client.
    Tuple(Vec<Shape>),
    /// A newtype struct: its one field, as itself.
    Newtype(Box<Shape>),
    /// A struct: its name and fields, a dict to a client.
    Struct(String, Vec<(String, Shape)>),
}

/// An integer type: its width in bytes and whether it is signed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Int {
    bytes: usize,
    signed: bool,
}

impl Shape {
    /// The shape a tag describes, or why it cannot be used.
    pub(crate) fn parse(tag: &str) -> Result<Shape, String> {
        let mut parser = Parser { text: tag, at: 0 };
        let shape = parser.shape(0)?;
        if parser.at != tag.len() {
            return Err(parser.unsupported());
        }
        Ok(shape)
    }

    /// `value` as the bytes a Rust client of this shape reads.
    pub(crate) fn encode(&self, value: ForeignValue) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.write(value, &mut out, &mut String::new())?;
        Ok(out)
    }

    /// Stored bytes of this shape as a foreign value.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<ForeignValue, String> {
        let mut reader = Reader { bytes, at: 0 };
        let value = self.read(&mut reader, &mut String::new())?;
        if reader.at != bytes.len() {
            return Err(format!(
                "{} bytes left after the value: the element is not of this shape",
                bytes.len() - reader.at
            ));
        }
        Ok(value)
    }

    fn write(
        &self,
        value: ForeignValue,
        out: &mut Vec<u8>,
        path: &mut String,
    ) -> Result<(), String> {
        let mismatch = |what: &str, value: &ForeignValue| {
            format!("{}: expected {what}, got {}", at(path), value.type_name())
        };
        match self {
            Shape::Bool => match value {
                ForeignValue::Bool(b) => out.push(u8::from(b)),
                other => return Err(mismatch("a bool", &other)),
            },
            Shape::Int(int) => {
                let n = integer(&value).ok_or_else(|| mismatch("an int", &value))?;
                int.write(n, out)
                    .map_err(|range| format!("{}: {n} is out of range for {range}", at(path)))?;
            }
            Shape::F32 | Shape::F64 => {
                let f = match value {
                    ForeignValue::Float(f) => f,
                    ForeignValue::Int(n) => n as f64,
                    other => return Err(mismatch("a float", &other)),
                };
                if *self == Shape::F32 {
                    out.extend_from_slice(&(f as f32).to_le_bytes());
                } else {
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
            Shape::Char => match value {
                ForeignValue::Str(s) if s.chars().count() == 1 => {
                    out.extend_from_slice(s.as_bytes());
                }
                other => return Err(mismatch("one character", &other)),
            },
            Shape::Str => match value {
                ForeignValue::Str(s) => {
                    length(s.len(), out);
                    out.extend_from_slice(s.as_bytes());
                }
                other => return Err(mismatch("a str", &other)),
            },
            Shape::Bytes => match value {
                ForeignValue::Bytes(b) => {
                    length(b.len(), out);
                    out.extend_from_slice(&b);
                }
                other => return Err(mismatch("bytes", &other)),
            },
            Shape::Unit => match value {
                ForeignValue::None => {}
                other => return Err(mismatch("nil", &other)),
            },
            Shape::Option(inner) => match value {
                ForeignValue::None => out.push(0),
                value => {
                    out.push(1);
                    inner.write(value, out, path)?;
                }
            },
            Shape::Seq(element) => match value {
                ForeignValue::List(items) | ForeignValue::Tuple(items) => {
                    length(items.len(), out);
                    for (i, item) in items.into_iter().enumerate() {
                        let len = path.len();
                        let _ = write!(path, "[{i}]");
                        element.write(item, out, path)?;
                        path.truncate(len);
                    }
                }
                other => return Err(mismatch("a list", &other)),
            },
            Shape::Map(key, val) => match value {
                ForeignValue::Dict(entries) => {
                    length(entries.len(), out);
                    for (k, v) in entries {
                        key.write(k, out, path)?;
                        let len = path.len();
                        path.push_str("[…]");
                        val.write(v, out, path)?;
                        path.truncate(len);
                    }
                }
                other => return Err(mismatch("a dict", &other)),
            },
            Shape::Tuple(elements) => match value {
                ForeignValue::List(items) | ForeignValue::Tuple(items)
                    if items.len() == elements.len() =>
                {
                    for (i, (shape, item)) in elements.iter().zip(items).enumerate() {
                        let len = path.len();
                        let _ = write!(path, "[{i}]");
                        shape.write(item, out, path)?;
                        path.truncate(len);
                    }
                }
                other => {
                    return Err(mismatch(&format!("a list of {}", elements.len()), &other));
                }
            },
            Shape::Newtype(inner) => inner.write(value, out, path)?,
            Shape::Struct(name, fields) => {
                let ForeignValue::Dict(mut entries) = value else {
                    return Err(mismatch(&format!("a dict for {name}"), &value));
                };
                for (field, shape) in fields {
                    let found = entries
                        .iter()
                        .position(|(k, _)| matches!(k, ForeignValue::Str(s) if s == field));
                    let len = path.len();
                    if path.is_empty() {
                        let _ = write!(path, "{name}.{field}");
                    } else {
                        let _ = write!(path, ".{field}");
                    }
                    match found {
                        Some(i) => shape.write(entries.swap_remove(i).1, out, path)?,
                        None if matches!(shape, Shape::Option(_)) => out.push(0),
                        None => return Err(format!("{}: missing", at(path))),
                    }
                    path.truncate(len);
                }
                if let Some((key, _)) = entries.first() {
                    let key = match key {
                        ForeignValue::Str(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    return Err(format!("{}: no field {key:?} in {name}", at(path)));
                }
            }
        }
        Ok(())
    }

    fn read(&self, reader: &mut Reader<'_>, path: &mut String) -> Result<ForeignValue, String> {
        let broken = |path: &String| format!("{}: the stored element ends early", at(path));
        Ok(match self {
            Shape::Bool => match reader.take(1).ok_or_else(|| broken(path))?[0] {
                0 => ForeignValue::Bool(false),
                1 => ForeignValue::Bool(true),
                b => return Err(format!("{}: {b} is not a bool", at(path))),
            },
            Shape::Int(int) => int.read(reader).ok_or_else(|| broken(path))?,
            Shape::F32 => {
                let b = reader.take(4).ok_or_else(|| broken(path))?;
                ForeignValue::Float(f32::from_le_bytes(b.try_into().expect("4 bytes")).into())
            }
            Shape::F64 => {
                let b = reader.take(8).ok_or_else(|| broken(path))?;
                ForeignValue::Float(f64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            Shape::Char => {
                let first = *reader.bytes.get(reader.at).ok_or_else(|| broken(path))?;
                let len = match first {
                    0x00..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                let b = reader.take(len).ok_or_else(|| broken(path))?;
                let s = std::str::from_utf8(b).map_err(|_| format!("{}: not a char", at(path)))?;
                ForeignValue::Str(s.to_string())
            }
            Shape::Str => {
                let b = reader.counted().ok_or_else(|| broken(path))?;
                let s = std::str::from_utf8(b)
                    .map_err(|_| format!("{}: a str that is not UTF-8", at(path)))?;
                ForeignValue::Str(s.to_string())
            }
            Shape::Bytes => {
                ForeignValue::Bytes(reader.counted().ok_or_else(|| broken(path))?.to_vec())
            }
            Shape::Unit => ForeignValue::None,
            Shape::Option(inner) => match reader.take(1).ok_or_else(|| broken(path))?[0] {
                0 => ForeignValue::None,
                1 => inner.read(reader, path)?,
                b => return Err(format!("{}: {b} is not an option's tag", at(path))),
            },
            Shape::Seq(element) => {
                let n = reader.len().ok_or_else(|| broken(path))?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(element.read(reader, path)?);
                }
                ForeignValue::List(items)
            }
            Shape::Map(key, val) => {
                let n = reader.len().ok_or_else(|| broken(path))?;
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let k = key.read(reader, path)?;
                    entries.push((k, val.read(reader, path)?));
                }
                ForeignValue::Dict(entries)
            }
            Shape::Tuple(elements) => ForeignValue::List(
                elements
                    .iter()
                    .map(|shape| shape.read(reader, path))
                    .collect::<Result<_, _>>()?,
            ),
            Shape::Newtype(inner) => inner.read(reader, path)?,
            Shape::Struct(_, fields) => ForeignValue::Dict(
                fields
                    .iter()
                    .map(|(field, shape)| {
                        Ok((ForeignValue::Str(field.clone()), shape.read(reader, path)?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}

/// Where in the value an error is, for its message.
fn at(path: &str) -> &str {
    if path.is_empty() { "the value" } else { path }
}

/// A length, as the codec writes it (fixed 8 bytes, little endian).
fn length(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

/// A foreign integer as an i128 (which holds every Rust integer type's range but u128's top).
fn integer(value: &ForeignValue) -> Option<i128> {
    match value {
        ForeignValue::Int(n) => Some(i128::from(*n)),
        ForeignValue::BigInt(_) => <i128 as serde::Deserialize>::deserialize(value.clone()).ok(),
        ForeignValue::Bool(b) => Some(i128::from(*b)),
        _ => None,
    }
}

impl Int {
    fn write(self, n: i128, out: &mut Vec<u8>) -> Result<(), String> {
        let (min, max) = match (self.bytes, self.signed) {
            (16, true) => (i128::MIN, i128::MAX),
            (16, false) => (0, i128::MAX),
            (bytes, true) => (-(1i128 << (bytes * 8 - 1)), (1i128 << (bytes * 8 - 1)) - 1),
            (bytes, false) => (0, (1i128 << (bytes * 8)) - 1),
        };
        if n < min || n > max {
            return Err(format!(
                "{}{}",
                if self.signed { "i" } else { "u" },
                self.bytes * 8
            ));
        }
        out.extend_from_slice(&n.to_le_bytes()[..self.bytes]);
        Ok(())
    }

    fn read(self, reader: &mut Reader<'_>) -> Option<ForeignValue> {
        let b = reader.take(self.bytes)?;
        let mut wide = [0u8; 16];
        wide[..self.bytes].copy_from_slice(b);
        if self.signed && b[self.bytes - 1] & 0x80 != 0 {
            wide[self.bytes..].fill(0xff);
        }
        let n = i128::from_le_bytes(wide);
        let value = if self.signed || self.bytes < 16 {
            n.serialize(ToForeign)
        } else {
            u128::from_le_bytes(wide).serialize(ToForeign)
        };
        value.ok()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    /// A length, not more than the bytes left (each element takes at least one byte, or the
    /// length is a lie): nothing is allocated for what is not there.
    fn len(&mut self) -> Option<usize> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().ok()?);
        let n = usize::try_from(n).ok()?;
        (n <= self.bytes.len() - self.at).then_some(n)
    }

    fn counted(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unsupported())
        }
    }

    fn unsupported(&self) -> String {
        format!(
            "its type tag {:?} does not describe a shape other languages can use (at {:?}): \
             enums, types traced by name only and very long tags are not converted",
            self.text,
            self.rest().chars().take(20).collect::<String>()
        )
    }

    fn name(&mut self) -> &str {
        let start = self.at;
        let len = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        self.at += len;
        &self.text[start..self.at]
    }

    fn shape(&mut self, depth: usize) -> Result<Shape, String> {
        if depth > MAX_DEPTH {
            return Err(self.unsupported());
        }
        if self.eat("()") {
            return Ok(Shape::Unit);
        }
        if self.eat("option<") {
            let inner = self.shape(depth + 1)?;
            self.expect(">")?;
            return Ok(Shape::Option(Box::new(inner)));
        }
        if self.eat("[") {
            let inner = self.shape(depth + 1)?;
            self.expect("]")?;
            return Ok(Shape::Seq(Box::new(inner)));
        }
        if self.eat("(") {
            return Ok(Shape::Tuple(self.elements(depth)?));
        }
        if self.eat("{") {
            let key = self.shape(depth + 1)?;
            self.expect(":")?;
            let value = self.shape(depth + 1)?;
            self.expect("}")?;
            return Ok(Shape::Map(Box::new(key), Box::new(value)));
        }
        let name = self.name().to_string();
        if name.is_empty() {
            return Err(self.unsupported());
        }
        if self.eat("(") {
            let mut elements = self.elements(depth)?;
            return Ok(if elements.len() == 1 {
                Shape::Newtype(Box::new(elements.remove(0)))
            } else {
                Shape::Tuple(elements)
            });
        }
        if self.eat("{") {
            let mut fields = Vec::new();
            while !self.eat("}") {
                if !fields.is_empty() {
                    self.expect(",")?;
                }
                let field = self.name().to_string();
                self.expect(":")?;
                fields.push((field, self.shape(depth + 1)?));
            }
            return Ok(Shape::Struct(name, fields));
        }
        if self.rest().starts_with('<') {
            return Err(self.unsupported()); // an enum, or a type traced by name only
        }
        let int = |bytes, signed| Ok(Shape::Int(Int { bytes, signed }));
        match name.as_str() {
            "bool" => Ok(Shape::Bool),
            "i8" => int(1, true),
            "i16" => int(2, true),
            "i32" => int(4, true),
            "i64" => int(8, true),
            "i128" => int(16, true),
            "u8" => int(1, false),
            "u16" => int(2, false),
            "u32" => int(4, false),
            "u64" => int(8, false),
            "u128" => int(16, false),
            "f32" => Ok(Shape::F32),
            "f64" => Ok(Shape::F64),
            "char" => Ok(Shape::Char),
            "str" => Ok(Shape::Str),
            "bytes" => Ok(Shape::Bytes),
            _ => Ok(Shape::Unit), // a unit struct
        }
    }

    /// `A,B,C)` after an opening parenthesis.
    fn elements(&mut self, depth: usize) -> Result<Vec<Shape>, String> {
        let mut elements = Vec::new();
        while !self.eat(")") {
            if !elements.is_empty() {
                self.expect(",")?;
            }
            elements.push(self.shape(depth + 1)?);
        }
        Ok(elements)
    }
}
