//! The methods a Python proxy of a plain result may call, as Python's own server exposes them
//! (`public_methods(obj)`): an `int` result answers `conjugate()`, `bit_length()`, ...; a `str`
//! result a useful part of str's; `None` none. Every object also answers `__str__`,
//! `__repr__` and `#GETVALUE`.

use crate::values::value::ForeignValue;

/// An exception raised inside a method: `('#ERROR', exc)` to the client.
pub(crate) fn exception(name: &str, message: impl Into<String>) -> ForeignValue {
    ForeignValue::Exception(name.into(), vec![ForeignValue::Str(message.into())])
}

const INT: &[&str] = &[
    "as_integer_ratio",
    "bit_count",
    "bit_length",
    "conjugate",
    "is_integer",
    "to_bytes",
];
const FLOAT: &[&str] = &["conjugate", "is_integer"];
const COMPLEX: &[&str] = &["conjugate"];
const STR: &[&str] = &[
    "capitalize",
    "count",
    "endswith",
    "find",
    "isalnum",
    "isalpha",
    "isdigit",
    "islower",
    "isspace",
    "isupper",
    "join",
    "lower",
    "lstrip",
    "replace",
    "rstrip",
    "split",
    "startswith",
    "strip",
    "upper",
];
const BYTES: &[&str] = &["decode", "hex"];
const SEQUENCE: &[&str] = &["count", "index"];
const DICT: &[&str] = &["copy", "get", "items", "keys", "values"];

/// The names a proxy of `value` exposes (identifiers only: Python `exec`s a `def` for each).
pub(crate) fn exposed(value: &ForeignValue) -> &'static [&'static str] {
    match value {
        ForeignValue::Bool(_) | ForeignValue::Int(_) | ForeignValue::BigInt(_) => INT,
        ForeignValue::Float(_) => FLOAT,
        ForeignValue::Complex(..) => COMPLEX,
        ForeignValue::Str(_) => STR,
        ForeignValue::Bytes(_) => BYTES,
        ForeignValue::Tuple(_) | ForeignValue::List(_) => SEQUENCE,
        ForeignValue::Dict(_) => DICT,
        _ => &[],
    }
}

fn arg_str(args: &[ForeignValue], at: usize, method: &str) -> Result<String, ForeignValue> {
    match args.get(at) {
        Some(ForeignValue::Str(s)) => Ok(s.clone()),
        Some(other) => Err(exception(
            "TypeError",
            format!(
                "{method}() argument {} must be str, not {}",
                at + 1,
                other.type_name()
            ),
        )),
        None => Err(exception(
            "TypeError",
            format!("{method}() takes at least {} argument", at + 1),
        )),
    }
}

fn int_of(value: &ForeignValue) -> Option<i128> {
    match value {
        ForeignValue::Bool(b) => Some(i128::from(*b)),
        ForeignValue::Int(n) => Some((*n).into()),
        ForeignValue::BigInt(b) => crate::values::value::big_to_i128(b),
        _ => None,
    }
}

fn py_int(n: i128) -> ForeignValue {
    match i64::try_from(n) {
        Ok(n) => ForeignValue::Int(n),
        Err(_) => ForeignValue::BigInt(crate::values::value::i128_to_big(n)),
    }
}

/// Runs `method` on a plain `value`; `Err` is the exception the client raises.
pub(crate) fn call(
    value: &ForeignValue,
    method: &str,
    args: &[ForeignValue],
) -> Result<ForeignValue, ForeignValue> {
    match method {
        "__str__" => return Ok(ForeignValue::Str(value.to_str())),
        "__repr__" => return Ok(ForeignValue::Str(value.repr())),
        "#GETVALUE" => return Ok(value.clone()),
        _ => {}
    }
    if !exposed(value).contains(&method) {
        return Err(exception(
            "AttributeError",
            format!(
                "'{}' object has no exposed method '{method}'",
                value.type_name()
            ),
        ));
    }
    if let Some(n) = int_of(value) {
        return Ok(match method {
            "conjugate" => py_int(n),
            "bit_length" => ForeignValue::Int(i64::from(128 - n.unsigned_abs().leading_zeros())),
            "bit_count" => ForeignValue::Int(i64::from(n.unsigned_abs().count_ones())),
            "as_integer_ratio" => ForeignValue::Tuple(vec![py_int(n), ForeignValue::Int(1)]),
            "is_integer" => ForeignValue::Bool(true),
            "to_bytes" => {
                let length = args.first().and_then(int_of).unwrap_or(1).clamp(0, 16) as usize;
                let big = !matches!(args.get(1), Some(ForeignValue::Str(s)) if s == "little");
                let bytes = n.to_le_bytes();
                let fits = bytes[length..].iter().all(|&b| b == 0);
                if !fits || n < 0 {
                    return Err(exception("OverflowError", "int too big to convert"));
                }
                let mut out = bytes[..length].to_vec();
                if big {
                    out.reverse();
                }
                ForeignValue::Bytes(out)
            }
            _ => unreachable!("exposed"),
        });
    }
    match value {
        ForeignValue::Float(f) => Ok(match method {
            "conjugate" => ForeignValue::Float(*f),
            _ => ForeignValue::Bool(f.fract() == 0.0),
        }),
        ForeignValue::Complex(re, im) => Ok(ForeignValue::Complex(*re, -im)),
        ForeignValue::Str(s) => str_method(s, method, args),
        ForeignValue::Bytes(b) => Ok(match method {
            "hex" => ForeignValue::Str(b.iter().map(|b| format!("{b:02x}")).collect()),
            _ => match std::str::from_utf8(b) {
                Ok(s) => ForeignValue::Str(s.into()),
                Err(e) => return Err(exception("UnicodeDecodeError", e.to_string())),
            },
        }),
        ForeignValue::Tuple(items) | ForeignValue::List(items) => {
            let needle = args.first().cloned().unwrap_or(ForeignValue::None);
            match method {
                "count" => Ok(ForeignValue::Int(
                    items.iter().filter(|i| **i == needle).count() as i64,
                )),
                _ => items
                    .iter()
                    .position(|i| *i == needle)
                    .map(|at| ForeignValue::Int(at as i64))
                    .ok_or_else(|| exception("ValueError", "value is not in the sequence")),
            }
        }
        ForeignValue::Dict(pairs) => Ok(match method {
            "copy" => value.clone(),
            "keys" => ForeignValue::List(pairs.iter().map(|(k, _)| k.clone()).collect()),
            "values" => ForeignValue::List(pairs.iter().map(|(_, v)| v.clone()).collect()),
            "items" => ForeignValue::List(
                pairs
                    .iter()
                    .map(|(k, v)| ForeignValue::Tuple(vec![k.clone(), v.clone()]))
                    .collect(),
            ),
            _ => {
                let key = args.first().cloned().unwrap_or(ForeignValue::None);
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| args.get(1).cloned().unwrap_or(ForeignValue::None))
            }
        }),
        _ => Err(exception("AttributeError", format!("no method {method}"))),
    }
}

fn str_method(s: &str, method: &str, args: &[ForeignValue]) -> Result<ForeignValue, ForeignValue> {
    let text = |t: String| Ok(ForeignValue::Str(t));
    let truth = |b: bool| Ok(ForeignValue::Bool(b));
    let nonempty_all = |f: fn(char) -> bool| !s.is_empty() && s.chars().all(f);
    match method {
        "upper" => text(s.to_uppercase()),
        "lower" => text(s.to_lowercase()),
        "capitalize" => {
            let mut chars = s.chars();
            text(match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            })
        }
        "strip" => text(s.trim().into()),
        "lstrip" => text(s.trim_start().into()),
        "rstrip" => text(s.trim_end().into()),
        "isalnum" => truth(nonempty_all(char::is_alphanumeric)),
        "isalpha" => truth(nonempty_all(char::is_alphabetic)),
        "isdigit" => truth(nonempty_all(|c| c.is_ascii_digit())),
        "isspace" => truth(nonempty_all(char::is_whitespace)),
        "islower" => truth(s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase)),
        "isupper" => truth(s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)),
        "startswith" => truth(s.starts_with(arg_str(args, 0, method)?.as_str())),
        "endswith" => truth(s.ends_with(arg_str(args, 0, method)?.as_str())),
        "count" => Ok(ForeignValue::Int(
            s.matches(arg_str(args, 0, method)?.as_str()).count() as i64,
        )),
        "find" => {
            let needle = arg_str(args, 0, method)?;
            Ok(ForeignValue::Int(
                s.find(needle.as_str())
                    .map_or(-1, |at| s[..at].chars().count() as i64),
            ))
        }
        "replace" => text(s.replace(
            arg_str(args, 0, method)?.as_str(),
            arg_str(args, 1, method)?.as_str(),
        )),
        "split" => {
            let parts: Vec<ForeignValue> = match args.first() {
                None | Some(ForeignValue::None) => s
                    .split_whitespace()
                    .map(|p| ForeignValue::Str(p.into()))
                    .collect(),
                Some(_) => {
                    let sep = arg_str(args, 0, method)?;
                    if sep.is_empty() {
                        return Err(exception("ValueError", "empty separator"));
                    }
                    s.split(sep.as_str())
                        .map(|p| ForeignValue::Str(p.into()))
                        .collect()
                }
            };
            Ok(ForeignValue::List(parts))
        }
        "join" => match args.first() {
            Some(ForeignValue::List(items) | ForeignValue::Tuple(items)) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        ForeignValue::Str(p) => parts.push(p.as_str()),
                        other => {
                            return Err(exception(
                                "TypeError",
                                format!(
                                    "sequence item: expected str instance, {} found",
                                    other.type_name()
                                ),
                            ));
                        }
                    }
                }
                text(parts.join(s))
            }
            _ => Err(exception(
                "TypeError",
                "join() takes a list or tuple of str",
            )),
        },
        _ => Err(exception("AttributeError", format!("no method {method}"))),
    }
}
