//! A pickle writer for what the Python listener replies: builtin data, complex numbers,
//! builtin exceptions and `Token`s. Protocol 4 opcodes without frames or memo (frames are
//! optional, and nothing we write repeats), which every Python 3.4+ reads.

use crate::values::value::{ForeignValue, i128_to_big};

/// Appends the pickle of `value` to `out`.
pub(crate) fn pickle(value: &ForeignValue, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x80, 4]);
    write(value, out);
    out.push(b'.');
}

fn global(module: &str, name: &str, out: &mut Vec<u8>) {
    out.push(b'c');
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn str_(s: &str, out: &mut Vec<u8>) {
    if s.len() < 256 {
        out.push(0x8c);
        out.push(s.len() as u8);
    } else {
        out.push(b'X');
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn tuple(items: &[ForeignValue], out: &mut Vec<u8>) {
    match items.len() {
        0 => out.push(b')'),
        n @ 1..=3 => {
            for item in items {
                write(item, out);
            }
            out.push(0x84 + n as u8);
        }
        _ => {
            out.push(b'(');
            for item in items {
                write(item, out);
            }
            out.push(b't');
        }
    }
}

fn int(n: i64, out: &mut Vec<u8>) {
    match n {
        0..=0xff => {
            out.push(b'K');
            out.push(n as u8);
        }
        0x100..=0xffff => {
            out.push(b'M');
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        n if i32::try_from(n).is_ok() => {
            out.push(b'J');
            out.extend_from_slice(&(n as i32).to_le_bytes());
        }
        n => long(&i128_to_big(n.into()), out),
    }
}

fn long(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.len() < 256 {
        out.push(0x8a);
        out.push(bytes.len() as u8);
    } else {
        out.push(0x8b);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(bytes);
}

fn write(value: &ForeignValue, out: &mut Vec<u8>) {
    match value {
        ForeignValue::None => out.push(b'N'),
        ForeignValue::Bool(true) => out.push(0x88),
        ForeignValue::Bool(false) => out.push(0x89),
        ForeignValue::Int(n) => int(*n, out),
        ForeignValue::BigInt(bytes) => long(bytes, out),
        ForeignValue::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        ForeignValue::Complex(re, im) => {
            global("builtins", "complex", out);
            tuple(&[ForeignValue::Float(*re), ForeignValue::Float(*im)], out);
            out.push(b'R');
        }
        ForeignValue::Str(s) => str_(s, out),
        ForeignValue::Bytes(b) => {
            if b.len() < 256 {
                out.push(b'C');
                out.push(b.len() as u8);
            } else {
                out.push(b'B');
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            }
            out.extend_from_slice(b);
        }
        ForeignValue::Tuple(items) => tuple(items, out),
        ForeignValue::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                for item in items {
                    write(item, out);
                }
                out.push(b'e');
            }
        }
        ForeignValue::Dict(pairs) => {
            out.push(b'}');
            if !pairs.is_empty() {
                out.push(b'(');
                for (k, v) in pairs {
                    write(k, out);
                    write(v, out);
                }
                out.push(b'u');
            }
        }
        ForeignValue::Set(items) => {
            out.push(0x8f);
            if !items.is_empty() {
                out.push(b'(');
                for item in items {
                    write(item, out);
                }
                out.push(0x90);
            }
        }
        ForeignValue::FrozenSet(items) => {
            out.push(b'(');
            for item in items {
                write(item, out);
            }
            out.push(0x91);
        }
        ForeignValue::Exception(name, args) => {
            // `queue.Empty` names its module; builtin exceptions do not.
            let (module, class) = name.rsplit_once('.').unwrap_or(("builtins", name));
            global(module, class, out);
            tuple(args, out);
            out.push(b'R');
        }
        ForeignValue::Token {
            typeid,
            address,
            id,
        } => {
            global("multiprocessing.managers", "Token", out);
            out.push(b')');
            out.push(0x81);
            tuple(
                &[
                    ForeignValue::Str(typeid.clone()),
                    (**address).clone(),
                    ForeignValue::Str(id.clone()),
                ],
                out,
            );
            out.push(b'b');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::unpickle::unpickle;
    use super::*;

    #[test]
    fn what_we_write_reads_back() {
        let values = [
            ForeignValue::None,
            ForeignValue::Bool(true),
            ForeignValue::Int(0),
            ForeignValue::Int(255),
            ForeignValue::Int(65_535),
            ForeignValue::Int(-1),
            ForeignValue::Int(i64::MAX),
            ForeignValue::Int(i64::MIN),
            ForeignValue::BigInt(i128_to_big(1 << 100)),
            ForeignValue::Float(-0.5),
            ForeignValue::Complex(2.0, -3.0),
            ForeignValue::Str("é".repeat(300)),
            ForeignValue::Bytes(vec![0; 300]),
            ForeignValue::Tuple(vec![ForeignValue::Int(1); 5]),
            ForeignValue::List(vec![
                ForeignValue::List(vec![]),
                ForeignValue::Str("x".into()),
            ]),
            ForeignValue::Dict(vec![(ForeignValue::Str("k".into()), ForeignValue::Int(3))]),
            ForeignValue::Set(vec![ForeignValue::Int(1)]),
            ForeignValue::FrozenSet(vec![]),
            ForeignValue::Exception("KeyError".into(), vec![ForeignValue::Str("missing".into())]),
            ForeignValue::Token {
                typeid: "Queue".into(),
                address: Box::new(ForeignValue::Tuple(vec![
                    ForeignValue::Str("127.0.0.1".into()),
                    ForeignValue::Int(4343),
                ])),
                id: "3".into(),
            },
        ];
        for value in values {
            let mut out = Vec::new();
            pickle(&value, &mut out);
            assert_eq!(unpickle(&out, 128).unwrap(), value);
        }
    }
}
