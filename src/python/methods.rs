//! The methods a Python proxy of a plain result may call, as Python's own server exposes them
//! (`public_methods(obj)`): an `int` result answers `conjugate()`, `bit_length()`, ...; a `str`
//! result a useful part of str's; `None` none. Every object also answers `__str__`,
//! `__repr__` and `#GETVALUE`.

use super::value::PyValue;

/// An exception raised inside a method: `('#ERROR', exc)` to the client.
pub(crate) fn exception(name: &str, message: impl Into<String>) -> PyValue {
    PyValue::Exception(name.into(), vec![PyValue::Str(message.into())])
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
pub(crate) fn exposed(value: &PyValue) -> &'static [&'static str] {
    match value {
        PyValue::Bool(_) | PyValue::Int(_) | PyValue::BigInt(_) => INT,
        PyValue::Float(_) => FLOAT,
        PyValue::Complex(..) => COMPLEX,
        PyValue::Str(_) => STR,
        PyValue::Bytes(_) => BYTES,
        PyValue::Tuple(_) | PyValue::List(_) => SEQUENCE,
        PyValue::Dict(_) => DICT,
        _ => &[],
    }
}

fn arg_str(args: &[PyValue], at: usize, method: &str) -> Result<String, PyValue> {
    match args.get(at) {
        Some(PyValue::Str(s)) => Ok(s.clone()),
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

fn int_of(value: &PyValue) -> Option<i128> {
    match value {
        PyValue::Bool(b) => Some(i128::from(*b)),
        PyValue::Int(n) => Some((*n).into()),
        PyValue::BigInt(b) => super::value::big_to_i128(b),
        _ => None,
    }
}

fn py_int(n: i128) -> PyValue {
    match i64::try_from(n) {
        Ok(n) => PyValue::Int(n),
        Err(_) => PyValue::BigInt(super::value::i128_to_big(n)),
    }
}

/// Runs `method` on a plain `value`; `Err` is the exception the client raises.
pub(crate) fn call(value: &PyValue, method: &str, args: &[PyValue]) -> Result<PyValue, PyValue> {
    match method {
        "__str__" => return Ok(PyValue::Str(value.to_str())),
        "__repr__" => return Ok(PyValue::Str(value.repr())),
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
            "bit_length" => PyValue::Int(i64::from(128 - n.unsigned_abs().leading_zeros())),
            "bit_count" => PyValue::Int(i64::from(n.unsigned_abs().count_ones())),
            "as_integer_ratio" => PyValue::Tuple(vec![py_int(n), PyValue::Int(1)]),
            "is_integer" => PyValue::Bool(true),
            "to_bytes" => {
                let length = args.first().and_then(int_of).unwrap_or(1).clamp(0, 16) as usize;
                let big = !matches!(args.get(1), Some(PyValue::Str(s)) if s == "little");
                let bytes = n.to_le_bytes();
                let fits = bytes[length..].iter().all(|&b| b == 0);
                if !fits || n < 0 {
                    return Err(exception("OverflowError", "int too big to convert"));
                }
                let mut out = bytes[..length].to_vec();
                if big {
                    out.reverse();
                }
                PyValue::Bytes(out)
            }
            _ => unreachable!("exposed"),
        });
    }
    match value {
        PyValue::Float(f) => Ok(match method {
            "conjugate" => PyValue::Float(*f),
            _ => PyValue::Bool(f.fract() == 0.0),
        }),
        PyValue::Complex(re, im) => Ok(PyValue::Complex(*re, -im)),
        PyValue::Str(s) => str_method(s, method, args),
        PyValue::Bytes(b) => Ok(match method {
            "hex" => PyValue::Str(b.iter().map(|b| format!("{b:02x}")).collect()),
            _ => match std::str::from_utf8(b) {
                Ok(s) => PyValue::Str(s.into()),
                Err(e) => return Err(exception("UnicodeDecodeError", e.to_string())),
            },
        }),
        PyValue::Tuple(items) | PyValue::List(items) => {
            let needle = args.first().cloned().unwrap_or(PyValue::None);
            match method {
                "count" => Ok(PyValue::Int(
                    items.iter().filter(|i| **i == needle).count() as i64
                )),
                _ => items
                    .iter()
                    .position(|i| *i == needle)
                    .map(|at| PyValue::Int(at as i64))
                    .ok_or_else(|| exception("ValueError", "value is not in the sequence")),
            }
        }
        PyValue::Dict(pairs) => Ok(match method {
            "copy" => value.clone(),
            "keys" => PyValue::List(pairs.iter().map(|(k, _)| k.clone()).collect()),
            "values" => PyValue::List(pairs.iter().map(|(_, v)| v.clone()).collect()),
            "items" => PyValue::List(
                pairs
                    .iter()
                    .map(|(k, v)| PyValue::Tuple(vec![k.clone(), v.clone()]))
                    .collect(),
            ),
            _ => {
                let key = args.first().cloned().unwrap_or(PyValue::None);
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| args.get(1).cloned().unwrap_or(PyValue::None))
            }
        }),
        _ => Err(exception("AttributeError", format!("no method {method}"))),
    }
}

fn str_method(s: &str, method: &str, args: &[PyValue]) -> Result<PyValue, PyValue> {
    let text = |t: String| Ok(PyValue::Str(t));
    let truth = |b: bool| Ok(PyValue::Bool(b));
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
        "count" => Ok(PyValue::Int(
            s.matches(arg_str(args, 0, method)?.as_str()).count() as i64,
        )),
        "find" => {
            let needle = arg_str(args, 0, method)?;
            Ok(PyValue::Int(
                s.find(needle.as_str())
                    .map_or(-1, |at| s[..at].chars().count() as i64),
            ))
        }
        "replace" => text(s.replace(
            arg_str(args, 0, method)?.as_str(),
            arg_str(args, 1, method)?.as_str(),
        )),
        "split" => {
            let parts: Vec<PyValue> = match args.first() {
                None | Some(PyValue::None) => s
                    .split_whitespace()
                    .map(|p| PyValue::Str(p.into()))
                    .collect(),
                Some(_) => {
                    let sep = arg_str(args, 0, method)?;
                    if sep.is_empty() {
                        return Err(exception("ValueError", "empty separator"));
                    }
                    s.split(sep.as_str())
                        .map(|p| PyValue::Str(p.into()))
                        .collect()
                }
            };
            Ok(PyValue::List(parts))
        }
        "join" => match args.first() {
            Some(PyValue::List(items) | PyValue::Tuple(items)) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        PyValue::Str(p) => parts.push(p.as_str()),
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
