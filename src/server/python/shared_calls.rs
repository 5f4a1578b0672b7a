//! What Python's proxies of the built-in shared objects call, mapped onto the objects' own
//! methods: `q.put(x)` is `put(x, None)`, `d[k]` is `get(k)` or a `KeyError`, ...

use super::super::Shared;
use super::super::objects::HeldRefs;
use crate::python::methods::exception;
use crate::python::shared::{Kind, PythonShared};
use crate::python::value::PyValue;
use crate::service::Caller;
use crate::store::Bytes;

/// Calls on one native object, from a Python connection.
pub(super) struct Native<'a, 'c> {
    pub(super) shared: &'a Shared,
    pub(super) id: u64,
    pub(super) held: &'a mut HeldRefs,
    pub(super) caller: &'a Caller<'c>,
}

impl Native<'_, '_> {
    fn call<R: serde::de::DeserializeOwned, A: serde::Serialize>(
        &mut self,
        method: &str,
        args: &A,
    ) -> Result<R, PyValue> {
        let mut encoded = Vec::new();
        crate::codec::encode_into(args, &mut encoded)
            .map_err(|e| exception("TypeError", e.to_string()))?;
        let mut out = Vec::new();
        self.shared
            .objects
            .call(
                self.id,
                method.as_bytes(),
                &encoded,
                &mut out,
                self.held,
                self.caller,
            )
            .map_err(|e| exception("RuntimeError", e.to_string()))?;
        crate::codec::decode_exact(&out).map_err(|e| exception("RuntimeError", e.to_string()))
    }
}

/// A keyword or positional argument (Python's proxies pass `block`, `timeout` either way).
fn arg(args: &[PyValue], kwds: &[(PyValue, PyValue)], at: usize, name: &str) -> Option<PyValue> {
    kwds.iter()
        .find(|(k, _)| matches!(k, PyValue::Str(s) if s == name))
        .map(|(_, v)| v.clone())
        .or_else(|| args.get(at).cloned())
}

fn truthy(value: &Option<PyValue>, default: bool) -> bool {
    match value {
        None => default,
        Some(PyValue::Bool(b)) => *b,
        Some(PyValue::Int(n)) => *n != 0,
        Some(PyValue::None) => false,
        Some(_) => true,
    }
}

/// A timeout in seconds as milliseconds; `None` (or absent, or negative) waits forever.
fn timeout_ms(value: &Option<PyValue>) -> Option<u64> {
    match value {
        Some(PyValue::Int(n)) if *n >= 0 => Some((*n as u64).saturating_mul(1000)),
        Some(PyValue::Float(f)) if *f >= 0.0 => Some((f * 1000.0) as u64),
        _ => None,
    }
}

fn first(args: Vec<PyValue>, method: &str) -> Result<PyValue, PyValue> {
    args.into_iter()
        .next()
        .ok_or_else(|| exception("TypeError", format!("{method}() missing an argument")))
}

pub(super) fn shared_method(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<PyValue>,
    kwds: &[(PyValue, PyValue)],
) -> Result<PyValue, PyValue> {
    let none = Ok(PyValue::None);
    match (spec.kind, method) {
        (Kind::Queue, "put" | "put_nowait") => {
            let block = method == "put" && truthy(&arg(&args, kwds, 1, "block"), true);
            let wait = if block {
                timeout_ms(&arg(&args, kwds, 2, "timeout"))
            } else {
                Some(0)
            };
            let item = spec.to_stored(first(args, method)?)?;
            let put: bool = native.call("put", &(item, wait))?;
            if put {
                none
            } else {
                Err(PyValue::Exception("queue.Full".into(), vec![]))
            }
        }
        (Kind::Queue, "get" | "get_nowait") => {
            let block = method == "get" && truthy(&arg(&args, kwds, 0, "block"), true);
            let wait = if block {
                timeout_ms(&arg(&args, kwds, 1, "timeout"))
            } else {
                Some(0)
            };
            let item: Option<Bytes> = native.call("get", &(wait,))?;
            match item {
                Some(item) => spec.decode_stored(&item),
                None => Err(PyValue::Exception("queue.Empty".into(), vec![])),
            }
        }
        (Kind::Queue, "qsize") => Ok(PyValue::Int(native.call::<u64, _>("len", &())? as i64)),
        (Kind::Queue, "empty") => Ok(PyValue::Bool(native.call::<u64, _>("len", &())? == 0)),
        (Kind::Queue, "full") => Ok(PyValue::Bool(false)),
        (Kind::Queue, "task_done") => native
            .call::<(), _>("task_done", &())
            .map(|()| PyValue::None)
            .map_err(|_| exception("ValueError", "task_done() called too many times")),
        (Kind::Queue, "join") => {
            let _: bool = native.call("join", &(None::<u64>,))?;
            none
        }
        (Kind::Dict, _) => dict_method(native, spec, method, args),
        (Kind::List, _) => list_method(native, spec, method, args),
        (Kind::Value, "get" | "#GETVALUE" | "__str__" | "__repr__") => {
            let value: Option<Bytes> = native.call("get", &())?;
            let value = match value {
                Some(v) => spec.decode_stored(&v)?,
                None => PyValue::None,
            };
            Ok(present(method, value))
        }
        (Kind::Value, "set") => {
            let value = spec.to_stored(first(args, method)?)?;
            let _: Option<Bytes> = native.call("swap", &(value,))?;
            none
        }
        (Kind::Counter, "get" | "#GETVALUE" | "__str__" | "__repr__") => {
            let value: i64 = native.call("get", &())?;
            Ok(present(method, PyValue::Int(value)))
        }
        (Kind::Counter | Kind::Value, "set" | "add") => {
            let n = match first(args, method)? {
                PyValue::Int(n) => n,
                other => {
                    return Err(exception(
                        "TypeError",
                        format!("a counter takes an int, not {}", other.type_name()),
                    ));
                }
            };
            let new: i64 = if method == "add" {
                native.call("add", &(n,))?
            } else {
                native.call::<i64, _>("set", &(n,))?;
                n
            };
            Ok(PyValue::Int(new))
        }
        (Kind::Lock, "acquire") => {
            let blocking = truthy(&arg(&args, kwds, 0, "blocking"), true);
            let wait = if blocking {
                timeout_ms(&arg(&args, kwds, 1, "timeout"))
            } else {
                Some(0)
            };
            Ok(PyValue::Bool(native.call("acquire", &(wait,))?))
        }
        (Kind::Lock, "release") => native
            .call::<(), _>("release", &())
            .map(|()| PyValue::None)
            .map_err(|_| exception("RuntimeError", "release unlocked lock")),
        (Kind::Event, "set" | "clear") => {
            native.call::<(), _>(method, &())?;
            none
        }
        (Kind::Event, "is_set") => Ok(PyValue::Bool(native.call("is_set", &())?)),
        (Kind::Event, "wait") => {
            let wait = timeout_ms(&arg(&args, kwds, 0, "timeout"));
            Ok(PyValue::Bool(native.call("wait", &(wait,))?))
        }
        (_, "__str__" | "__repr__") => Ok(PyValue::Str(format!("<shared {:?}>", spec.name))),
        (_, other) => Err(exception(
            "AttributeError",
            format!("{other} is not a method of this shared object"),
        )),
    }
}

/// What `__str__`, `__repr__` and `#GETVALUE` return for a value.
fn present(method: &str, value: PyValue) -> PyValue {
    match method {
        "__str__" => PyValue::Str(value.to_str()),
        "__repr__" => PyValue::Str(value.repr()),
        _ => value,
    }
}

fn dict_method(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<PyValue>,
) -> Result<PyValue, PyValue> {
    let key_error = |key: &PyValue| PyValue::Exception("KeyError".into(), vec![key.clone()]);
    let items = |native: &mut Native<'_, '_>| -> Result<Vec<(PyValue, PyValue)>, PyValue> {
        let stored: Vec<(Bytes, Bytes)> = native.call("items", &())?;
        stored
            .iter()
            .map(|(k, v)| Ok((spec.decode_stored_key(k)?, spec.decode_stored(v)?)))
            .collect()
    };
    let mut args = args.into_iter();
    let mut next = || {
        args.next()
            .ok_or_else(|| exception("TypeError", format!("{method}() missing an argument")))
    };
    match method {
        "__getitem__" | "get" | "pop" => {
            let key = next()?;
            let default = next().ok();
            let stored = spec.key_to_stored(key.clone())?;
            let native_method = if method == "pop" { "remove" } else { "get" };
            let found: Option<Bytes> = native.call(native_method, &(stored,))?;
            match (found, default) {
                (Some(v), _) => spec.decode_stored(&v),
                (None, Some(default)) => Ok(default),
                (None, None) if method == "get" => Ok(PyValue::None),
                (None, None) => Err(key_error(&key)),
            }
        }
        "__setitem__" | "setdefault" => {
            let key = spec.key_to_stored(next()?)?;
            let value = next().unwrap_or(PyValue::None);
            let stored = spec.to_stored(value.clone())?;
            if method == "setdefault" {
                let _: bool = native.call("insert_if_absent", &(key.clone(), stored))?;
                let found: Option<Bytes> = native.call("get", &(key,))?;
                return found.map_or(Ok(value), |v| spec.decode_stored(&v));
            }
            let _: Option<Bytes> = native.call("insert", &(key, stored))?;
            Ok(PyValue::None)
        }
        "__delitem__" => {
            let key = next()?;
            let stored = spec.key_to_stored(key.clone())?;
            let removed: Option<Bytes> = native.call("remove", &(stored,))?;
            removed
                .map(|_| PyValue::None)
                .ok_or_else(|| key_error(&key))
        }
        "__contains__" => {
            let key = spec.key_to_stored(next()?)?;
            Ok(PyValue::Bool(native.call("contains", &(key,))?))
        }
        "__len__" => Ok(PyValue::Int(native.call::<u64, _>("len", &())? as i64)),
        "clear" => {
            native.call::<(), _>("clear", &())?;
            Ok(PyValue::None)
        }
        "update" => {
            let pairs = match next()? {
                PyValue::Dict(pairs) => pairs,
                PyValue::List(items) | PyValue::Tuple(items) => items
                    .into_iter()
                    .map(|item| match item {
                        PyValue::Tuple(mut kv) | PyValue::List(mut kv) if kv.len() == 2 => {
                            let v = kv.pop().expect("2");
                            Ok((kv.pop().expect("2"), v))
                        }
                        _ => Err(exception("TypeError", "update() takes pairs")),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(exception(
                        "TypeError",
                        format!("update() takes a dict, not {}", other.type_name()),
                    ));
                }
            };
            for (k, v) in pairs {
                let (k, v) = (spec.key_to_stored(k)?, spec.to_stored(v)?);
                let _: Option<Bytes> = native.call("insert", &(k, v))?;
            }
            Ok(PyValue::None)
        }
        "keys" => Ok(PyValue::List(
            items(native)?.into_iter().map(|(k, _)| k).collect(),
        )),
        "values" => Ok(PyValue::List(
            items(native)?.into_iter().map(|(_, v)| v).collect(),
        )),
        "items" => Ok(PyValue::List(
            items(native)?
                .into_iter()
                .map(|(k, v)| PyValue::Tuple(vec![k, v]))
                .collect(),
        )),
        "copy" | "#GETVALUE" => Ok(PyValue::Dict(items(native)?)),
        "__str__" | "__repr__" => Ok(PyValue::Str(PyValue::Dict(items(native)?).repr())),
        other => Err(exception(
            "AttributeError",
            format!("dict has no method {other}"),
        )),
    }
}

fn list_method(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<PyValue>,
) -> Result<PyValue, PyValue> {
    let all = |native: &mut Native<'_, '_>| -> Result<Vec<PyValue>, PyValue> {
        let stored: Vec<Bytes> = native.call("range", &(0u64, u64::MAX))?;
        stored.iter().map(|b| spec.decode_stored(b)).collect()
    };
    let index = |native: &mut Native<'_, '_>, value: &PyValue| -> Result<u64, PyValue> {
        let len: u64 = native.call("len", &())?;
        let PyValue::Int(i) = value else {
            return Err(exception("TypeError", "list indices must be integers"));
        };
        let i = if *i < 0 { len as i64 + i } else { *i };
        if i < 0 || i as u64 >= len {
            return Err(exception("IndexError", "list index out of range"));
        }
        Ok(i as u64)
    };
    let mut args = args.into_iter();
    match method {
        "append" => {
            let item = spec.to_stored(first(args.collect(), method)?)?;
            let _: u64 = native.call("push", &(item,))?;
            Ok(PyValue::None)
        }
        "extend" => {
            let items = match args.next() {
                Some(PyValue::List(items) | PyValue::Tuple(items)) => items,
                _ => return Err(exception("TypeError", "extend() takes a list")),
            };
            for item in items {
                let _: u64 = native.call("push", &(spec.to_stored(item)?,))?;
            }
            Ok(PyValue::None)
        }
        "__getitem__" => {
            let at = index(native, &args.next().unwrap_or(PyValue::None))?;
            let item: Option<Bytes> = native.call("get", &(at,))?;
            item.map_or(Ok(PyValue::None), |b| spec.decode_stored(&b))
        }
        "__setitem__" => {
            let at = index(native, &args.next().unwrap_or(PyValue::None))?;
            let item = spec.to_stored(args.next().unwrap_or(PyValue::None))?;
            let _: Bytes = native.call("set", &(at, item))?;
            Ok(PyValue::None)
        }
        "__len__" => Ok(PyValue::Int(native.call::<u64, _>("len", &())? as i64)),
        "pop" => {
            if args.next().is_some() {
                return Err(exception(
                    "NotImplementedError",
                    "only pop() of the last item",
                ));
            }
            let item: Option<Bytes> = native.call("pop", &())?;
            match item {
                Some(b) => spec.decode_stored(&b),
                None => Err(exception("IndexError", "pop from empty list")),
            }
        }
        "clear" => {
            native.call::<(), _>("clear", &())?;
            Ok(PyValue::None)
        }
        "#GETVALUE" => Ok(PyValue::List(all(native)?)),
        "__str__" | "__repr__" => Ok(PyValue::Str(PyValue::List(all(native)?).repr())),
        other => Err(exception(
            "AttributeError",
            format!("list has no method {other}"),
        )),
    }
}
