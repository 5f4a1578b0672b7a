//! A msgpack reader and writer for the msgpack-rpc listener, over the same values the Python
//! listener uses (`ForeignValue`), so one serde bridge serves both.
//!
//! The reader is incremental: [`read`] says how many bytes one whole value needs, or that it
//! needs more. Every length is checked against the bytes that are there before anything is
//! allocated (a `bin32` header claiming 4 GiB allocates nothing), and nesting is limited by an
//! explicit stack, not recursion.

use crate::values::value::{ForeignValue, i128_to_big};

/// Why bytes are not a msgpack value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The value goes on past the bytes given: read more and try again.
    Incomplete,
    /// The bytes are not msgpack (or go past a limit): the connection cannot go on.
    Invalid(String),
}

fn invalid<T>(why: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Invalid(why.into()))
}

/// A container being filled.
enum Open {
    Array(usize, Vec<ForeignValue>),
    Map(
        usize,
        Vec<(ForeignValue, ForeignValue)>,
        Option<ForeignValue>,
    ),
}

struct Cursor<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if self.input.len() - self.at < n {
            return Err(ReadError::Incomplete);
        }
        let bytes = &self.input[self.at..self.at + n];
        self.at += n;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, ReadError> {
        let bytes = self.take(n)?;
        Ok(bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }
}

/// Reads one value from the start of `input`: the value and the bytes it took. Values nest
/// at most `max_depth` deep; `max_len` bounds every string, binary and container length.
pub(crate) fn read(
    input: &[u8],
    max_depth: usize,
    max_len: usize,
) -> Result<(ForeignValue, usize), ReadError> {
    let mut cursor = Cursor { input, at: 0 };
    let mut stack: Vec<Open> = Vec::new();
    loop {
        let marker = cursor.take(1)?[0];
        let mut value = match marker {
            0x00..=0x7f => ForeignValue::Int(marker.into()),
            0xe0..=0xff => ForeignValue::Int(i64::from(marker as i8)),
            0xc0 => ForeignValue::None,
            0xc2 => ForeignValue::Bool(false),
            0xc3 => ForeignValue::Bool(true),
            0xcc..=0xcf => {
                let n = cursor.uint(1 << (marker - 0xcc))?;
                match i64::try_from(n) {
                    Ok(n) => ForeignValue::Int(n),
                    Err(_) => ForeignValue::BigInt(i128_to_big(n.into())),
                }
            }
            0xd0..=0xd3 => {
                let width = 1usize << (marker - 0xd0);
                let raw = cursor.uint(width)?;
                let shift = 64 - 8 * width as u32;
                ForeignValue::Int(((raw << shift) as i64) >> shift)
            }
            0xca => ForeignValue::Float(f32::from_bits(cursor.uint(4)? as u32).into()),
            0xcb => ForeignValue::Float(f64::from_bits(cursor.uint(8)?)),
            0xa0..=0xbf | 0xd9 | 0xda | 0xdb => {
                let len = match marker {
                    0xa0..=0xbf => (marker & 0x1f) as usize,
                    _ => cursor.uint(1 << (marker - 0xd9))? as usize,
                };
                if len > max_len {
                    return invalid(format!(
                        "a str of {len} bytes is over the limit of {max_len}"
                    ));
                }
                // Old clients (msgpack-python before 1.0, msgpack-rpc-python) pack bytes as
                // str ("raw" in the old spec had no bin): a str that is not UTF-8 is bytes.
                let raw = cursor.take(len)?;
                match std::str::from_utf8(raw) {
                    Ok(s) => ForeignValue::Str(s.to_string()),
                    Err(_) => ForeignValue::Bytes(raw.to_vec()),
                }
            }
            0xc4..=0xc6 => {
                let len = cursor.uint(1 << (marker - 0xc4))? as usize;
                if len > max_len {
                    return invalid(format!(
                        "a bin of {len} bytes is over the limit of {max_len}"
                    ));
                }
                ForeignValue::Bytes(cursor.take(len)?.to_vec())
            }
            0x90..=0x9f | 0xdc | 0xdd | 0x80..=0x8f | 0xde | 0xdf => {
                let is_map = matches!(marker, 0x80..=0x8f | 0xde | 0xdf);
                let len = match marker {
                    0x80..=0x9f => (marker & 0x0f) as usize,
                    0xdc | 0xde => cursor.uint(2)? as usize,
                    _ => cursor.uint(4)? as usize,
                };
                // Each element takes at least one byte: a longer claim than the bytes left
                // would only be waited for, so bound it by the limit instead.
                if len > max_len {
                    return invalid(format!(
                        "a container of {len} items is over the limit of {max_len}"
                    ));
                }
                if stack.len() >= max_depth {
                    return invalid(format!("values nest deeper than {max_depth}"));
                }
                if len == 0 {
                    if is_map {
                        ForeignValue::Dict(Vec::new())
                    } else {
                        ForeignValue::List(Vec::new())
                    }
                } else {
                    let room = len.min(1024);
                    stack.push(if is_map {
                        Open::Map(len, Vec::with_capacity(room), None)
                    } else {
                        Open::Array(len, Vec::with_capacity(room))
                    });
                    continue;
                }
            }
            0xd4..=0xd8 | 0xc7..=0xc9 => {
                // Extension types carry application data we do not interpret: as bytes.
                let len = match marker {
                    0xd4..=0xd8 => 1usize << (marker - 0xd4),
                    _ => cursor.uint(1 << (marker - 0xc7))? as usize,
                };
                if len > max_len {
                    return invalid(format!(
                        "an ext of {len} bytes is over the limit of {max_len}"
                    ));
                }
                let _type = cursor.take(1)?;
                ForeignValue::Bytes(cursor.take(len)?.to_vec())
            }
            0xc1 => return invalid("0xc1 is never used in msgpack"),
        };
        // Place the value in the innermost open container; close those that are full.
        loop {
            match stack.last_mut() {
                None => return Ok((value, cursor.at)),
                Some(Open::Array(len, items)) => {
                    items.push(value);
                    if items.len() < *len {
                        break;
                    }
                    let Some(Open::Array(_, items)) = stack.pop() else {
                        unreachable!("just matched")
                    };
                    value = ForeignValue::List(items);
                }
                Some(Open::Map(len, pairs, key)) => {
                    match key.take() {
                        None => {
                            *key = Some(value);
                            break;
                        }
                        Some(k) => pairs.push((k, value)),
                    }
                    if pairs.len() < *len {
                        break;
                    }
                    let Some(Open::Map(_, pairs, _)) = stack.pop() else {
                        unreachable!("just matched")
                    };
                    value = ForeignValue::Dict(pairs);
                }
            }
        }
    }
}

/// Finds where one whole value ends in a buffer that grows, looking at each byte once: it
/// keeps its place and the open containers between calls, so a message arriving in many reads
/// costs time linear in its size (re-parsing the whole buffer after every read was quadratic:
/// a 64 MiB message burned minutes of CPU). Only a whole message is then parsed.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    /// Where the next element starts.
    at: usize,
    /// The elements still to come in each open container, innermost last.
    open: Vec<u64>,
}

impl Scanner {
    /// Scans on over `buffer` (which holds what earlier calls saw, and more): the length of
    /// the first whole value once it is there, `None` while it is not. Errors where the
    /// parser would refuse the value anyway (a length or a depth over the limits).
    pub(crate) fn scan(
        &mut self,
        buffer: &[u8],
        max_depth: usize,
        max_len: usize,
    ) -> Result<Option<usize>, ReadError> {
        loop {
            let Some(&marker) = buffer.get(self.at) else {
                return Ok(None);
            };
            let header = |n: usize| -> Option<u64> {
                let bytes = buffer.get(self.at + 1..self.at + 1 + n)?;
                Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            };
            // (bytes of marker and header, bytes of payload, items it opens)
            let (head, body, items) = match marker {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 | 0xc1 => (1, 0, 0),
                0xcc..=0xcf => (1 + (1usize << (marker - 0xcc)), 0, 0),
                0xd0..=0xd3 => (1 + (1usize << (marker - 0xd0)), 0, 0),
                0xca => (5, 0, 0),
                0xcb => (9, 0, 0),
                0xa0..=0xbf => (1, (marker & 0x1f) as u64, 0),
                0xd9..=0xdb | 0xc4..=0xc6 => {
                    let n = 1usize << (marker - if marker >= 0xd9 { 0xd9 } else { 0xc4 });
                    let Some(len) = header(n) else {
                        return Ok(None);
                    };
                    (1 + n, len, 0)
                }
                0xd4..=0xd8 => (2, 1u64 << (marker - 0xd4), 0),
                0xc7..=0xc9 => {
                    let n = 1usize << (marker - 0xc7);
                    let Some(len) = header(n) else {
                        return Ok(None);
                    };
                    (2 + n, len, 0)
                }
                0x90..=0x9f => (1, 0, u64::from(marker & 0x0f)),
                0x80..=0x8f => (1, 0, 2 * u64::from(marker & 0x0f)),
                0xdc..=0xdf => {
                    let n = if matches!(marker, 0xdc | 0xde) { 2 } else { 4 };
                    let Some(len) = header(n) else {
                        return Ok(None);
                    };
                    let per = if marker >= 0xde { 2 } else { 1 };
                    (1 + n, 0, len * per)
                }
            };
            if body > max_len as u64 || items > 2 * max_len as u64 {
                return invalid(format!(
                    "a value of {} is over the limit of {max_len}",
                    body.max(items)
                ));
            }
            let end = (self.at + head) as u64 + body;
            if end > buffer.len() as u64 {
                return Ok(None); // this element again, from its start, when more arrived
            }
            self.at = end as usize;
            if items > 0 {
                if self.open.len() >= max_depth {
                    return invalid(format!("values nest deeper than {max_depth}"));
                }
                self.open.push(items);
                continue;
            }
            // A whole element: it fills a place in its container, which may close it, ...
            loop {
                match self.open.last_mut() {
                    None => {
                        let end = self.at;
                        *self = Scanner::default();
                        return Ok(Some(end));
                    }
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                }
            }
        }
    }
}

/// Appends the msgpack of `value` to `out`.
pub(crate) fn write(value: &ForeignValue, out: &mut Vec<u8>) {
    match value {
        ForeignValue::None => out.push(0xc0),
        ForeignValue::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        ForeignValue::Int(n) => int(*n, out),
        ForeignValue::BigInt(bytes) => match crate::values::value::big_to_i128(bytes) {
            Some(n) if n >= 0 && n <= i128::from(u64::MAX) => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
            // Beyond 64 bits msgpack has no integer: its digits, as a str.
            Some(n) => string(&n.to_string(), out),
            None => string("<int>", out),
        },
        ForeignValue::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        ForeignValue::Complex(re, im) => write(
            &ForeignValue::List(vec![ForeignValue::Float(*re), ForeignValue::Float(*im)]),
            out,
        ),
        ForeignValue::Str(s) => string(s, out),
        ForeignValue::Bytes(b) => {
            match b.len() {
                n if n < 256 => out.extend_from_slice(&[0xc4, n as u8]),
                n if n < 65536 => {
                    out.push(0xc5);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    out.push(0xc6);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
            }
            out.extend_from_slice(b);
        }
        ForeignValue::Tuple(items)
        | ForeignValue::List(items)
        | ForeignValue::Set(items)
        | ForeignValue::FrozenSet(items) => {
            header(items.len(), 0x90, 0xdc, out);
            for item in items {
                write(item, out);
            }
        }
        ForeignValue::Dict(pairs) => {
            header(pairs.len(), 0x80, 0xde, out);
            for (k, v) in pairs {
                write(k, out);
                write(v, out);
            }
        }
        ForeignValue::Exception(name, args) => {
            let message = args.first().map(ForeignValue::to_str).unwrap_or_default();
            write(
                &ForeignValue::List(vec![
                    ForeignValue::Str(name.clone()),
                    ForeignValue::Str(message),
                ]),
                out,
            );
        }
        ForeignValue::Token { id, .. } => string(id, out),
    }
}

fn header(len: usize, fix: u8, wide: u8, out: &mut Vec<u8>) {
    match len {
        n if n < 16 => out.push(fix | n as u8),
        n if n < 65536 => {
            out.push(wide);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(wide + 1);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    match s.len() {
        n if n < 32 => out.push(0xa0 | n as u8),
        n if n < 256 => out.extend_from_slice(&[0xd9, n as u8]),
        n if n < 65536 => {
            out.push(0xda);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0xdb);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

fn int(n: i64, out: &mut Vec<u8>) {
    match n {
        0..=0x7f => out.push(n as u8),
        -32..=-1 => out.push(n as i8 as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        -0x80..=-33 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
        -0x8000..=-0x81 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -0x8000_0000..=-0x8001 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_partial_input_asks_for_more() {
        let values = [
            ForeignValue::None,
            ForeignValue::Bool(true),
            ForeignValue::Int(0),
            ForeignValue::Int(-1),
            ForeignValue::Int(-33),
            ForeignValue::Int(200),
            ForeignValue::Int(70_000),
            ForeignValue::Int(i64::MIN),
            ForeignValue::Int(i64::MAX),
            ForeignValue::Float(1.5),
            ForeignValue::Str("é".repeat(40)),
            ForeignValue::Bytes(vec![1; 300]),
            ForeignValue::List((0..20).map(ForeignValue::Int).collect()),
            ForeignValue::Dict(vec![(
                ForeignValue::Str("k".into()),
                ForeignValue::List(vec![]),
            )]),
        ];
        for value in values {
            let mut out = Vec::new();
            write(&value, &mut out);
            assert_eq!(
                read(&out, 64, 1 << 20),
                Ok((value.clone(), out.len())),
                "{value:?}"
            );
            for cut in 0..out.len() {
                assert_eq!(
                    read(&out[..cut], 64, 1 << 20),
                    Err(ReadError::Incomplete),
                    "{value:?} cut at {cut}"
                );
            }
            // The scanner, fed a byte more each time (with what follows the value), finds
            // the value's end exactly when it is whole.
            let mut stream = out.clone();
            stream.extend_from_slice(&[0x91, 0x01]);
            let mut scanner = Scanner::default();
            for have in 0..=stream.len() {
                let found = scanner.scan(&stream[..have], 64, 1 << 20).unwrap();
                if have < out.len() {
                    assert_eq!(found, None, "{value:?} with {have} bytes");
                } else {
                    assert_eq!(found, Some(out.len()), "{value:?} with {have} bytes");
                    break;
                }
            }
        }
        // u64 above i64::MAX, from another writer.
        let big = [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read(&big, 64, 10),
            Ok((ForeignValue::BigInt(_), 9))
        ));
        // A str that is not UTF-8 is bytes, as old writers (no bin type) pack them.
        assert_eq!(
            read(&[0xa2, 0xff, 0x00], 64, 10),
            Ok((ForeignValue::Bytes(vec![0xff, 0x00]), 3))
        );
        assert_eq!(
            read(&[0xa2, b'o', b'k'], 64, 10),
            Ok((ForeignValue::Str("ok".into()), 3))
        );
    }

    #[test]
    fn the_scanner_refuses_what_the_parser_would_and_nests_exactly() {
        let mut scanner = Scanner::default();
        assert!(
            scanner
                .scan(&[0xc6, 0xff, 0xff, 0xff, 0xff], 64, 1 << 20)
                .is_err()
        );
        let mut scanner = Scanner::default();
        assert!(scanner.scan(&[0x91; 100], 64, 1 << 20).is_err(), "too deep");
        // [[1, 2], {"a": [3]}] arriving in pieces, then a second message.
        let mut message = Vec::new();
        let value = ForeignValue::List(vec![
            ForeignValue::List(vec![ForeignValue::Int(1), ForeignValue::Int(2)]),
            ForeignValue::Dict(vec![(
                ForeignValue::Str("a".into()),
                ForeignValue::List(vec![ForeignValue::Int(3)]),
            )]),
        ]);
        write(&value, &mut message);
        let len = message.len();
        message.push(0xc0);
        let mut scanner = Scanner::default();
        assert_eq!(scanner.scan(&message[..4], 64, 100).unwrap(), None);
        assert_eq!(scanner.scan(&message, 64, 100).unwrap(), Some(len));
        assert_eq!(scanner.scan(&message[len..], 64, 100).unwrap(), Some(1));
    }

    #[test]
    fn hostile_headers_are_refused_without_allocating() {
        // A bin32 of 4 GiB, an array32 of 4G items, a str32 of 4 GiB: refused by the limit.
        for header in [
            [0xc6u8, 0xff, 0xff, 0xff, 0xff],
            [0xdd, 0xff, 0xff, 0xff, 0xff],
            [0xdb, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(matches!(
                read(&header, 64, 1 << 20),
                Err(ReadError::Invalid(_))
            ));
        }
        // 100,000 nested arrays: refused by depth, no recursion.
        let deep = vec![0x91u8; 100_000];
        assert!(
            matches!(read(&deep, 64, 1 << 20), Err(ReadError::Invalid(e)) if e.contains("nest"))
        );
        assert!(matches!(read(&[0xc1], 64, 10), Err(ReadError::Invalid(_))));
    }
}
