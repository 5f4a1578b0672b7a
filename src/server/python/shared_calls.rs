//! What Python's proxies of the built-in shared objects call, mapped onto the objects' own
//! methods: `q.put(x)` is `put(x, None)`, `d[k]` is `get(k)` or a `KeyError`, ...

use super::super::Shared;
use super::super::objects::HeldRefs;
use crate::python::methods::exception;
use crate::python::shared::{Kind, PythonShared};
use crate::service::Caller;
use crate::store::Bytes;
use crate::values::value::ForeignValue;

/// Calls on one native object, from a Python connection.
pub(super) struct Native<'a, 'c> {
    pub(super) shared: &'a Shared,
    pub(super) id: u64,
    pub(super) held: &'a mut HeldRefs,
    pub(super) caller: &'a Caller<'c>,
}

impl Native<'_, '_> {
    pub(super) fn call<R: serde::de::DeserializeOwned, A: serde::Serialize>(
        &mut self,
        method: &str,
        args: &A,
    ) -> Result<R, ForeignValue> {
        self.shared
            .objects
            .call_typed(self.id, method, args, self.held, self.caller)
            .map_err(|e| match e.kind() {
                crate::RemoteErrorKind::BadArguments => exception("TypeError", e.to_string()),
                _ => exception("RuntimeError", e.to_string()),
            })
    }
}

/// A keyword or positional argument (Python's proxies pass `block`, `timeout` either way).
pub(super) fn arg(
    args: &[ForeignValue],
    kwds: &[(ForeignValue, ForeignValue)],
    at: usize,
    name: &str,
) -> Option<ForeignValue> {
    kwds.iter()
        .find(|(k, _)| matches!(k, ForeignValue::Str(s) if s == name))
        .map(|(_, v)| v.clone())
        .or_else(|| args.get(at).cloned())
}

pub(super) fn truthy(value: &Option<ForeignValue>, default: bool) -> bool {
    match value {
        None => default,
        Some(ForeignValue::Bool(b)) => *b,
        Some(ForeignValue::Int(n)) => *n != 0,
        Some(ForeignValue::None) => false,
        Some(_) => true,
    }
}

/// A timeout in seconds as milliseconds; `None` (or absent, or negative) waits forever.
pub(super) fn timeout_ms(value: &Option<ForeignValue>) -> Option<u64> {
    match value {
        Some(ForeignValue::Int(n)) if *n >= 0 => Some((*n as u64).saturating_mul(1000)),
        Some(ForeignValue::Float(f)) if *f >= 0.0 => Some((f * 1000.0) as u64),
        _ => None,
    }
}

fn first(args: Vec<ForeignValue>, method: &str) -> Result<ForeignValue, ForeignValue> {
    args.into_iter()
        .next()
        .ok_or_else(|| exception("TypeError", format!("{method}() missing an argument")))
}

pub(super) fn shared_method(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<ForeignValue>,
    kwds: &[(ForeignValue, ForeignValue)],
) -> Result<ForeignValue, ForeignValue> {
    let none = Ok(ForeignValue::None);
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
                Err(ForeignValue::Exception("queue.Full".into(), vec![]))
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
                None => Err(ForeignValue::Exception("queue.Empty".into(), vec![])),
            }
        }
        (Kind::Queue, "qsize") => Ok(ForeignValue::Int(native.call::<u64, _>("len", &())? as i64)),
        (Kind::Queue, "empty") => Ok(ForeignValue::Bool(native.call::<u64, _>("len", &())? == 0)),
        (Kind::Queue, "full") => Ok(ForeignValue::Bool(false)),
        (Kind::Queue, "task_done") => native
            .call::<(), _>("task_done", &())
            .map(|()| ForeignValue::None)
            .map_err(|_| exception("ValueError", "task_done() called too many times")),
        (Kind::Queue, "join") => {
            let _: bool = native.call("join", &(None::<u64>,))?;
            none
        }
        (Kind::Tasks, _) => tasks_method(native, spec, method, args, kwds),
        (Kind::Dict, _) => dict_method(native, spec, method, args),
        (Kind::List | Kind::Array, _) => list_method(native, spec, method, args, kwds),
        (Kind::Namespace, _) => namespace_method(native, spec, method, args),
        (Kind::Barrier, _) => barrier_method(native, method, args, kwds),
        (Kind::Semaphore { bounded }, "release") => {
            let released = native.call::<(), _>("release", &());
            match released {
                Ok(()) => none,
                Err(_) if bounded => {
                    Err(exception("ValueError", "Semaphore released too many times"))
                }
                Err(_) => Err(exception(
                    "ValueError",
                    "a release without an acquire of this thread (permits belong to the thread that took them)",
                )),
            }
        }
        (Kind::Value, "get" | "#GETVALUE" | "__str__" | "__repr__") => {
            let value: Option<Bytes> = native.call("get", &())?;
            let value = match value {
                Some(v) => spec.decode_stored(&v)?,
                None => ForeignValue::None,
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
            Ok(present(method, ForeignValue::Int(value)))
        }
        (Kind::Counter | Kind::Value, "set" | "add") => {
            let n = match first(args, method)? {
                ForeignValue::Int(n) => n,
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
            Ok(ForeignValue::Int(new))
        }
        (Kind::Lock | Kind::Semaphore { .. }, "acquire") => {
            let blocking = truthy(&arg(&args, kwds, 0, "blocking"), true);
            let wait = if blocking {
                timeout_ms(&arg(&args, kwds, 1, "timeout"))
            } else {
                Some(0)
            };
            Ok(ForeignValue::Bool(native.call("acquire", &(wait,))?))
        }
        (Kind::Lock, "release") => native
            .call::<(), _>("release", &())
            .map(|()| ForeignValue::None)
            .map_err(|_| exception("RuntimeError", "release unlocked lock")),
        (Kind::Event, "set" | "clear") => {
            native.call::<(), _>(method, &())?;
            none
        }
        (Kind::Event, "is_set") => Ok(ForeignValue::Bool(native.call("is_set", &())?)),
        (Kind::Event, "wait") => {
            let wait = timeout_ms(&arg(&args, kwds, 0, "timeout"));
            Ok(ForeignValue::Bool(native.call("wait", &(wait,))?))
        }
        (_, "__str__" | "__repr__") => Ok(ForeignValue::Str(format!("<shared {:?}>", spec.name))),
        (_, other) => declared(native, spec, other, args, kwds),
    }
}

/// A method Python's proxies do not have, called as the kind declares it (`q.peek()`):
/// positional arguments as the declaration's, elements converted as the exposure's types.
fn declared(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<ForeignValue>,
    kwds: &[(ForeignValue, ForeignValue)],
) -> Result<ForeignValue, ForeignValue> {
    let not_here = || {
        exception(
            "AttributeError",
            format!("{method} is not a method of this shared object"),
        )
    };
    let declares = native
        .shared
        .objects
        .descriptor_of(native.id)
        .is_some_and(|d| d.methods.iter().any(|m| m.name == method));
    if !declares || matches!(spec.kind, Kind::Dict | Kind::Namespace) {
        return Err(not_here());
    }
    if !kwds.is_empty() {
        return Err(exception(
            "TypeError",
            format!("{method}() takes positional arguments only"),
        ));
    }
    let call = || {
        super::super::foreign::call_object(
            native.shared,
            native.id,
            method,
            ForeignValue::Tuple(args),
            native.held,
            native.caller,
        )
    };
    match spec.element_codec() {
        Some(codec) => crate::values::bridge::with_elements(codec, call),
        None => call(),
    }
    .map_err(|e| exception("RuntimeError", e.to_string()))
}

/// What `__str__`, `__repr__` and `#GETVALUE` return for a value.
fn present(method: &str, value: ForeignValue) -> ForeignValue {
    match method {
        "__str__" => ForeignValue::Str(value.to_str()),
        "__repr__" => ForeignValue::Str(value.repr()),
        _ => value,
    }
}

fn dict_method(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<ForeignValue>,
) -> Result<ForeignValue, ForeignValue> {
    let key_error =
        |key: &ForeignValue| ForeignValue::Exception("KeyError".into(), vec![key.clone()]);
    let items =
        |native: &mut Native<'_, '_>| -> Result<Vec<(ForeignValue, ForeignValue)>, ForeignValue> {
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
                (None, None) if method == "get" => Ok(ForeignValue::None),
                (None, None) => Err(key_error(&key)),
            }
        }
        "__setitem__" | "setdefault" => {
            let key = spec.key_to_stored(next()?)?;
            let value = next().unwrap_or(ForeignValue::None);
            let stored = spec.to_stored(value.clone())?;
            if method == "setdefault" {
                let _: bool = native.call("insert_if_absent", &(key.clone(), stored))?;
                let found: Option<Bytes> = native.call("get", &(key,))?;
                return found.map_or(Ok(value), |v| spec.decode_stored(&v));
            }
            let _: Option<Bytes> = native.call("insert", &(key, stored))?;
            Ok(ForeignValue::None)
        }
        "__delitem__" => {
            let key = next()?;
            let stored = spec.key_to_stored(key.clone())?;
            let removed: Option<Bytes> = native.call("remove", &(stored,))?;
            removed
                .map(|_| ForeignValue::None)
                .ok_or_else(|| key_error(&key))
        }
        "__contains__" => {
            let key = spec.key_to_stored(next()?)?;
            Ok(ForeignValue::Bool(native.call("contains", &(key,))?))
        }
        "__len__" => Ok(ForeignValue::Int(native.call::<u64, _>("len", &())? as i64)),
        "clear" => {
            native.call::<(), _>("clear", &())?;
            Ok(ForeignValue::None)
        }
        "update" => {
            let pairs = match next()? {
                ForeignValue::Dict(pairs) => pairs,
                ForeignValue::List(items) | ForeignValue::Tuple(items) => items
                    .into_iter()
                    .map(|item| match item {
                        ForeignValue::Tuple(mut kv) | ForeignValue::List(mut kv)
                            if kv.len() == 2 =>
                        {
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
            Ok(ForeignValue::None)
        }
        "keys" => Ok(ForeignValue::List(
            items(native)?.into_iter().map(|(k, _)| k).collect(),
        )),
        "values" => Ok(ForeignValue::List(
            items(native)?.into_iter().map(|(_, v)| v).collect(),
        )),
        "items" => Ok(ForeignValue::List(
            items(native)?
                .into_iter()
                .map(|(k, v)| ForeignValue::Tuple(vec![k, v]))
                .collect(),
        )),
        "popitem" => {
            // The last key in the dict's order (by encoding here, not insertion).
            let stored: Vec<(Bytes, Bytes)> = native.call("items", &())?;
            for (key, _) in stored.iter().rev() {
                let removed: Option<Bytes> = native.call("remove", &(key.clone(),))?;
                if let Some(value) = removed {
                    return Ok(ForeignValue::Tuple(vec![
                        spec.decode_stored_key(key)?,
                        spec.decode_stored(&value)?,
                    ]));
                }
            }
            Err(exception("KeyError", "popitem(): dictionary is empty"))
        }
        "copy" | "#GETVALUE" => Ok(ForeignValue::Dict(items(native)?)),
        "__str__" | "__repr__" => Ok(ForeignValue::Str(ForeignValue::Dict(items(native)?).repr())),
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
    args: Vec<ForeignValue>,
    kwds: &[(ForeignValue, ForeignValue)],
) -> Result<ForeignValue, ForeignValue> {
    let stored_all = |native: &mut Native<'_, '_>| -> Result<Vec<Bytes>, ForeignValue> {
        native.call("range", &(0u64, u64::MAX))
    };
    let all = |native: &mut Native<'_, '_>| -> Result<Vec<ForeignValue>, ForeignValue> {
        stored_all(native)?
            .iter()
            .map(|b| spec.decode_stored(b))
            .collect()
    };
    let index = |native: &mut Native<'_, '_>, value: &ForeignValue| -> Result<u64, ForeignValue> {
        let len: u64 = native.call("len", &())?;
        let ForeignValue::Int(i) = value else {
            return Err(exception(
                "TypeError",
                format!(
                    "list indices must be integers, not {} (slices are not served)",
                    value.type_name()
                ),
            ));
        };
        let i = if *i < 0 { len as i64 + i } else { *i };
        if i < 0 || i as u64 >= len {
            return Err(exception("IndexError", "list index out of range"));
        }
        Ok(i as u64)
    };
    // A change that depends on the whole list (sort, remove by value, ...): computed from a
    // copy and applied only if the list did not change meanwhile, else computed again.
    let rewrite = |native: &mut Native<'_, '_>,
                   change: &dyn Fn(
        Vec<ForeignValue>,
    )
        -> Result<(Vec<ForeignValue>, ForeignValue), ForeignValue>|
     -> Result<ForeignValue, ForeignValue> {
        for _ in 0..1000 {
            let before = stored_all(native)?;
            let items = before
                .iter()
                .map(|b| spec.decode_stored(b))
                .collect::<Result<Vec<_>, _>>()?;
            let (after, result) = change(items)?;
            let after = after
                .into_iter()
                .map(|v| spec.to_stored(v))
                .collect::<Result<Vec<_>, _>>()?;
            if native.call::<bool, _>("replace", &(before, after))? {
                return Ok(result);
            }
        }
        Err(exception(
            "RuntimeError",
            "the list kept changing under this call",
        ))
    };
    let position =
        |items: &[ForeignValue], value: &ForeignValue| items.iter().position(|x| py_eq(x, value));
    let mut args = args.into_iter();
    match method {
        "append" => {
            let item = spec.to_stored(first(args.collect(), method)?)?;
            let _: u64 = native.call("push", &(item,))?;
            Ok(ForeignValue::None)
        }
        "extend" | "__iadd__" => {
            let items = match args.next() {
                Some(ForeignValue::List(items) | ForeignValue::Tuple(items)) => items,
                Some(ForeignValue::Set(items) | ForeignValue::FrozenSet(items)) => items,
                Some(other) => {
                    return Err(exception(
                        "TypeError",
                        format!("'{}' object is not iterable here", other.type_name()),
                    ));
                }
                None => return Err(exception("TypeError", "extend() takes a list")),
            };
            for item in items {
                let _: u64 = native.call("push", &(spec.to_stored(item)?,))?;
            }
            Ok(ForeignValue::None)
        }
        "insert" => {
            let at = match args.next() {
                Some(ForeignValue::Int(i)) => i,
                _ => return Err(exception("TypeError", "insert(index, object)")),
            };
            let item = spec.to_stored(args.next().unwrap_or(ForeignValue::None))?;
            let at = if at < 0 {
                let len: u64 = native.call("len", &())?;
                (len as i64 + at).max(0) as u64
            } else {
                at as u64
            };
            native.call::<(), _>("insert", &(at, item))?;
            Ok(ForeignValue::None)
        }
        "__getitem__" => {
            let at = index(native, &args.next().unwrap_or(ForeignValue::None))?;
            let item: Option<Bytes> = native.call("get", &(at,))?;
            item.map_or(Ok(ForeignValue::None), |b| spec.decode_stored(&b))
        }
        "__setitem__" => {
            let at = index(native, &args.next().unwrap_or(ForeignValue::None))?;
            let item = spec.to_stored(args.next().unwrap_or(ForeignValue::None))?;
            let _: Bytes = native.call("set", &(at, item))?;
            Ok(ForeignValue::None)
        }
        "__delitem__" => {
            let at = index(native, &args.next().unwrap_or(ForeignValue::None))?;
            let _: Option<Bytes> = native.call("remove_at", &(at,))?;
            Ok(ForeignValue::None)
        }
        "__len__" => Ok(ForeignValue::Int(native.call::<u64, _>("len", &())? as i64)),
        "pop" => {
            let item: Option<Bytes> = match args.next() {
                None => native.call("pop", &())?,
                Some(i) => {
                    let at = index(native, &i).map_err(|e| match e {
                        ForeignValue::Exception(name, _) if name == "IndexError" => {
                            exception("IndexError", "pop index out of range")
                        }
                        other => other,
                    })?;
                    native.call("remove_at", &(at,))?
                }
            };
            match item {
                Some(b) => spec.decode_stored(&b),
                None => Err(exception("IndexError", "pop from empty list")),
            }
        }
        "remove" => {
            let value = first(args.collect(), method)?;
            rewrite(native, &|mut items| match position(&items, &value) {
                Some(at) => {
                    items.remove(at);
                    Ok((items, ForeignValue::None))
                }
                None => Err(exception("ValueError", "list.remove(x): x not in list")),
            })
        }
        "index" => {
            let value = first(args.collect(), method)?;
            let items = all(native)?;
            position(&items, &value)
                .map(|at| ForeignValue::Int(at as i64))
                .ok_or_else(|| exception("ValueError", format!("{} is not in list", value.repr())))
        }
        "count" => {
            let value = first(args.collect(), method)?;
            let items = all(native)?;
            Ok(ForeignValue::Int(
                items.iter().filter(|x| py_eq(x, &value)).count() as i64,
            ))
        }
        "__contains__" => {
            let value = first(args.collect(), method)?;
            Ok(ForeignValue::Bool(
                position(&all(native)?, &value).is_some(),
            ))
        }
        "reverse" => rewrite(native, &|mut items| {
            items.reverse();
            Ok((items, ForeignValue::None))
        }),
        "sort" => {
            if arg(&[], kwds, 0, "key").is_some_and(|k| k != ForeignValue::None) {
                return Err(exception(
                    "TypeError",
                    "sort(key=...) cannot send a Python function to a Rust manager",
                ));
            }
            let reverse = truthy(&arg(&[], kwds, 0, "reverse"), false);
            rewrite(native, &|items| {
                Ok((sorted(items, reverse)?, ForeignValue::None))
            })
        }
        "__add__" => {
            let mut items = all(native)?;
            match args.next() {
                Some(ForeignValue::List(more)) => items.extend(more),
                _ => {
                    return Err(exception(
                        "TypeError",
                        "can only concatenate list (not another type) to list",
                    ));
                }
            }
            Ok(ForeignValue::List(items))
        }
        "__mul__" | "__rmul__" | "__imul__" => {
            let times = match args.next() {
                Some(ForeignValue::Int(n)) => n.max(0) as usize,
                _ => {
                    return Err(exception("TypeError", "can't multiply sequence by non-int"));
                }
            };
            let repeat =
                move |items: Vec<ForeignValue>| -> Result<Vec<ForeignValue>, ForeignValue> {
                    let len = items.len().saturating_mul(times);
                    if len > 1 << 20 {
                        return Err(exception("MemoryError", "a list of over 1M items"));
                    }
                    Ok(items.iter().cycle().take(len).cloned().collect())
                };
            if method == "__imul__" {
                rewrite(native, &|items| Ok((repeat(items)?, ForeignValue::None)))
            } else {
                Ok(ForeignValue::List(repeat(all(native)?)?))
            }
        }
        "clear" => {
            native.call::<(), _>("clear", &())?;
            Ok(ForeignValue::None)
        }
        "#GETVALUE" => Ok(ForeignValue::List(all(native)?)),
        "__str__" | "__repr__" => Ok(ForeignValue::Str(ForeignValue::List(all(native)?).repr())),
        other => Err(exception(
            "AttributeError",
            format!("list has no method {other}"),
        )),
    }
}

/// `Namespace()`: attributes as a dict of str keys, through `NamespaceProxy`'s three calls.
fn namespace_method(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<ForeignValue>,
) -> Result<ForeignValue, ForeignValue> {
    let mut args = args.into_iter();
    let mut name = || match args.next() {
        Some(ForeignValue::Str(name)) => Ok(name),
        _ => Err(exception("TypeError", "attribute name must be string")),
    };
    let no_attribute = |n: &str| {
        exception(
            "AttributeError",
            format!("'Namespace' object has no attribute '{n}'"),
        )
    };
    match method {
        "__getattribute__" => {
            let attribute = name()?;
            let key = spec.key_to_stored(ForeignValue::Str(attribute.clone()))?;
            let found: Option<Bytes> = native.call("get", &(key,))?;
            match found {
                Some(value) => spec.decode_stored(&value),
                None => Err(no_attribute(&attribute)),
            }
        }
        "__setattr__" => {
            let key = spec.key_to_stored(ForeignValue::Str(name()?))?;
            let value = spec.to_stored(args.next().unwrap_or(ForeignValue::None))?;
            let _: Option<Bytes> = native.call("insert", &(key, value))?;
            Ok(ForeignValue::None)
        }
        "__delattr__" => {
            let attribute = name()?;
            let key = spec.key_to_stored(ForeignValue::Str(attribute.clone()))?;
            let removed: Option<Bytes> = native.call("remove", &(key,))?;
            removed
                .map(|_| ForeignValue::None)
                .ok_or_else(|| no_attribute(&attribute))
        }
        "update" => dict_method(native, spec, "update", args.collect()),
        "__str__" | "__repr__" | "#GETVALUE" => {
            let stored: Vec<(Bytes, Bytes)> = native.call("items", &())?;
            let mut parts = Vec::new();
            for (k, v) in &stored {
                let (k, v) = (spec.decode_stored_key(k)?, spec.decode_stored(v)?);
                parts.push(format!("{}={}", k.to_str(), v.repr()));
            }
            Ok(ForeignValue::Str(format!(
                "Namespace({})",
                parts.join(", ")
            )))
        }
        other => Err(exception(
            "AttributeError",
            format!("a namespace has no method {other}"),
        )),
    }
}

/// `Barrier(parties)`: `wait` gives each party its arrival index; `parties`, `n_waiting`
/// and `broken` are read through `__getattribute__` (BarrierProxy's properties).
fn barrier_method(
    native: &mut Native<'_, '_>,
    method: &str,
    args: Vec<ForeignValue>,
    kwds: &[(ForeignValue, ForeignValue)],
) -> Result<ForeignValue, ForeignValue> {
    match method {
        "wait" => {
            let wait = timeout_ms(&arg(&args, kwds, 0, "timeout"));
            let passed: Option<u64> = native.call("wait", &(wait,))?;
            passed
                .map(|index| ForeignValue::Int(index as i64))
                .ok_or_else(|| {
                    ForeignValue::Exception("threading.BrokenBarrierError".into(), vec![])
                })
        }
        "__getattribute__" => match args.first() {
            Some(ForeignValue::Str(name)) if name == "parties" => Ok(ForeignValue::Int(
                native.call::<u64, _>("parties", &())? as i64,
            )),
            Some(ForeignValue::Str(name)) if name == "n_waiting" => Ok(ForeignValue::Int(
                native.call::<u64, _>("waiting", &())? as i64,
            )),
            Some(ForeignValue::Str(name)) if name == "broken" => Ok(ForeignValue::Bool(false)),
            Some(other) => Err(exception(
                "AttributeError",
                format!("'Barrier' object has no attribute {}", other.repr()),
            )),
            None => Err(exception("TypeError", "__getattribute__ takes a name")),
        },
        "abort" | "reset" => Err(exception(
            "NotImplementedError",
            format!("Barrier.{method}() is not served: a party that gives up times out instead"),
        )),
        other => Err(exception(
            "AttributeError",
            format!("a barrier has no method {other}"),
        )),
    }
}

/// Python's equality, as far as plain values go: numbers compare by value across int, float
/// and bool (`1 == 1.0 == True`), everything else by shape.
pub(super) fn py_eq(a: &ForeignValue, b: &ForeignValue) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (
                ForeignValue::List(x) | ForeignValue::Tuple(x),
                ForeignValue::List(y) | ForeignValue::Tuple(y),
            ) if std::mem::discriminant(a) == std::mem::discriminant(b) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
            }
            _ => a == b,
        },
    }
}

fn number(value: &ForeignValue) -> Option<f64> {
    match value {
        ForeignValue::Int(n) => Some(*n as f64),
        ForeignValue::Float(f) => Some(*f),
        ForeignValue::Bool(b) => Some(*b as u8 as f64),
        _ => None,
    }
}

/// Python's `<` on plain values, or `None` where Python raises `TypeError`.
fn py_cmp(a: &ForeignValue, b: &ForeignValue) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.partial_cmp(&y);
    }
    match (a, b) {
        (ForeignValue::Str(x), ForeignValue::Str(y)) => Some(x.cmp(y)),
        (ForeignValue::Bytes(x), ForeignValue::Bytes(y)) => Some(x.cmp(y)),
        (ForeignValue::List(x), ForeignValue::List(y))
        | (ForeignValue::Tuple(x), ForeignValue::Tuple(y)) => {
            for (a, b) in x.iter().zip(y) {
                if !py_eq(a, b) {
                    return py_cmp(a, b);
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => None,
    }
}

/// Sorts as `list.sort(reverse=...)` does (stable); a `key` function cannot cross.
fn sorted(mut items: Vec<ForeignValue>, reverse: bool) -> Result<Vec<ForeignValue>, ForeignValue> {
    let mut failed = None;
    items.sort_by(|a, b| {
        py_cmp(a, b).unwrap_or_else(|| {
            failed.get_or_insert_with(|| {
                format!(
                    "'<' not supported between instances of '{}' and '{}'",
                    a.type_name(),
                    b.type_name()
                )
            });
            std::cmp::Ordering::Equal
        })
    });
    if let Some(why) = failed {
        return Err(exception("TypeError", why));
    }
    if reverse {
        // Stable as Python's: equal items keep their order.
        let mut groups: Vec<Vec<ForeignValue>> = Vec::new();
        for item in items {
            match groups.last_mut() {
                Some(group) if py_eq(&group[0], &item) => group.push(item),
                _ => groups.push(vec![item]),
            }
        }
        items = groups.into_iter().rev().flatten().collect();
    }
    Ok(items)
}

/// A task's id from a Python int.
fn task_id(value: Option<ForeignValue>, method: &str) -> Result<u64, ForeignValue> {
    match value {
        Some(ForeignValue::Int(id)) if id >= 0 => Ok(id as u64),
        _ => Err(exception(
            "TypeError",
            format!("{method}() takes a task id (an int)"),
        )),
    }
}

/// The token of the lease this connection holds on task `id`, taken out of its keeping
/// unless `keep`.
fn lease_token(native: &mut Native<'_, '_>, id: u64, keep: bool) -> Result<u64, ForeignValue> {
    let key = (native.id, id);
    let token = if keep {
        native.held.leases.get(&key).copied()
    } else {
        native.held.leases.remove(&key)
    };
    token.ok_or_else(|| {
        exception(
            "KeyError",
            format!(
                "this connection holds no lease on task {id} (acked, failed or never taken here)"
            ),
        )
    })
}

/// A Python value as a result is kept: a `Dynamic`, encoded.
fn dynamic_bytes(value: ForeignValue) -> Result<Bytes, ForeignValue> {
    let dynamic = <crate::values::Dynamic as serde::Deserialize>::deserialize(value)
        .map_err(|e| exception("TypeError", format!("a result must be a plain value: {e}")))?;
    Bytes::encode(&dynamic).map_err(|e| exception("TypeError", e.to_string()))
}

/// `fail(id, reason)`'s arguments.
fn id_and_reason(args: Vec<ForeignValue>, method: &str) -> Result<(u64, String), ForeignValue> {
    let mut args = args.into_iter();
    let id = task_id(args.next(), method)?;
    let reason = match args.next() {
        Some(ForeignValue::Str(reason)) => reason,
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    Ok((id, reason))
}

/// Task `id`'s result as a plain value (`None` after a plain ack).
fn plain_result(id: u64, result: Option<Bytes>) -> Result<ForeignValue, ForeignValue> {
    let Some(bytes) = result else {
        return Ok(ForeignValue::None);
    };
    let value: crate::values::Dynamic = bytes.decode().map_err(|e| {
        exception(
            "TypeError",
            format!("task {id}'s result is not a plain value: {e}"),
        )
    })?;
    serde::Serialize::serialize(&value, crate::values::bridge::ToForeign)
        .map_err(|e| exception("RuntimeError", e.to_string()))
}

/// Python's task proxy over the task queue kind.
fn tasks_method(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    method: &str,
    args: Vec<ForeignValue>,
    kwds: &[(ForeignValue, ForeignValue)],
) -> Result<ForeignValue, ForeignValue> {
    use crate::store::tasks::{ACKED, Counts, DeadLetter, Delivery, EXPIRED, Failed, PushOptions};
    let int = |n: u64| ForeignValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
    match method {
        "push" | "push_many" => {
            let payloads = match (method, first(args, method)?) {
                ("push", payload) => vec![payload],
                (_, ForeignValue::List(items) | ForeignValue::Tuple(items)) => items,
                _ => {
                    return Err(exception(
                        "TypeError",
                        "push_many() takes a list of payloads",
                    ));
                }
            };
            let tasks = payloads
                .into_iter()
                .map(|p| Ok((spec.to_stored(p)?, PushOptions::default())))
                .collect::<Result<Vec<_>, ForeignValue>>()?;
            let ids: Vec<(u64, bool)> = native.call("push", &(tasks,))?;
            let ids: Vec<ForeignValue> = ids.into_iter().map(|(id, _)| int(id)).collect();
            Ok(match method {
                "push" => ids.into_iter().next().unwrap_or(ForeignValue::None),
                _ => ForeignValue::List(ids),
            })
        }
        "push_after" => {
            // `push_after(parents, payload)`: the id of a task that waits for them.
            let mut args = args.into_iter();
            let parents = match args.next() {
                Some(ForeignValue::List(ids) | ForeignValue::Tuple(ids)) => ids
                    .into_iter()
                    .map(|id| task_id(Some(id), method))
                    .collect::<Result<Vec<u64>, ForeignValue>>()?,
                _ => {
                    return Err(exception(
                        "TypeError",
                        "push_after(parents, payload) takes a list of task ids first",
                    ));
                }
            };
            let payload = args.next().ok_or_else(|| {
                exception("TypeError", "push_after(parents, payload) takes a payload")
            })?;
            let tasks = vec![(spec.to_stored(payload)?, PushOptions::default())];
            let ids: Vec<(u64, bool)> = native.call("push_after", &(parents, tasks))?;
            Ok(ids.first().map_or(ForeignValue::None, |&(id, _)| int(id)))
        }
        "push_group" | "push_chain" => {
            // `push_group(members, callback, run_if_parents_die=False)`: `(callback id,
            // [member ids])`; `push_chain(steps)`: the steps' ids.
            use crate::store::tasks::{Node, Parent};
            let usage = match method {
                "push_group" => "push_group(members, callback) takes a list of payloads first",
                _ => "push_chain(steps) takes a list of payloads",
            };
            let payloads = match args.first() {
                Some(ForeignValue::List(items) | ForeignValue::Tuple(items)) => items.clone(),
                _ => return Err(exception("TypeError", usage)),
            };
            let node =
                |payload, after: Vec<Parent>, options: PushOptions| -> Result<Node, ForeignValue> {
                    Ok(Node {
                        payload: spec.to_stored(payload)?,
                        options,
                        after,
                    })
                };
            let mut nodes = Vec::with_capacity(payloads.len() + 1);
            for (at, payload) in payloads.into_iter().enumerate() {
                let after = match method {
                    "push_chain" if at > 0 => vec![Parent::Node(at as u32 - 1)],
                    _ => Vec::new(),
                };
                nodes.push(node(payload, after, PushOptions::default())?);
            }
            if method == "push_group" {
                let callback = arg(&args, kwds, 1, "callback").ok_or_else(|| {
                    exception(
                        "TypeError",
                        "push_group(members, callback) takes a callback",
                    )
                })?;
                let anyway = matches!(
                    arg(&args, kwds, 2, "run_if_parents_die"),
                    Some(ForeignValue::Bool(true))
                );
                let after = (0..nodes.len() as u32).map(Parent::Node).collect();
                let options = PushOptions {
                    run_if_parents_die: anyway,
                    ..PushOptions::default()
                };
                nodes.push(node(callback, after, options)?);
            }
            let ids: Vec<(u64, bool)> = native.call("push_graph", &(nodes,))?;
            let mut ids: Vec<ForeignValue> = ids.into_iter().map(|(id, _)| int(id)).collect();
            Ok(match method {
                "push_group" => {
                    let callback = ids.pop().unwrap_or(ForeignValue::None);
                    ForeignValue::Tuple(vec![callback, ForeignValue::List(ids)])
                }
                _ => ForeignValue::List(ids),
            })
        }
        "inputs" => {
            // What the task's parents ended with, in order: a dict each.
            use crate::kinds::tasks::Outcome as O;
            let id = task_id(args.into_iter().next(), method)?;
            let inputs: Vec<(u64, O)> = native.call("inputs", &(id,))?;
            let s = |t: &str| ForeignValue::Str(t.into());
            inputs
                .into_iter()
                .map(|(parent, outcome)| {
                    let mut entry = vec![(s("id"), int(parent))];
                    match outcome {
                        O::Done(result) => {
                            entry.push((s("status"), s("done")));
                            entry.push((s("result"), plain_result(parent, result)?));
                        }
                        O::Dead(reasons) => {
                            entry.push((s("status"), s("dead")));
                            entry.push((
                                s("reasons"),
                                ForeignValue::List(
                                    reasons.into_iter().map(ForeignValue::Str).collect(),
                                ),
                            ));
                        }
                        _ => entry.push((s("status"), s("pending"))),
                    }
                    Ok(ForeignValue::Dict(entry))
                })
                .collect::<Result<Vec<_>, ForeignValue>>()
                .map(ForeignValue::List)
        }
        "take" => {
            let wait = timeout_ms(&arg(&args, kwds, 0, "timeout"));
            let taken: Vec<Delivery> = native.call("take", &(1u32, wait))?;
            let Some(task) = taken.into_iter().next() else {
                return Ok(ForeignValue::None);
            };
            native.held.leases.insert((native.id, task.id), task.token);
            Ok(ForeignValue::Tuple(vec![
                int(task.id),
                spec.decode_stored(&task.payload)?,
                ForeignValue::Int(i64::from(task.attempt)),
            ]))
        }
        "ack" => {
            // `ack(id, result=None)`: a result is kept as a plain value (Rust reads it as a
            // `Dynamic`), whatever the queue's elements are.
            let mut args = args.into_iter();
            let id = task_id(args.next(), method)?;
            let result = match args.next().or_else(|| arg(&[], kwds, 1, "result")) {
                None | Some(ForeignValue::None) => None,
                Some(value) => Some(dynamic_bytes(value)?),
            };
            let token = lease_token(native, id, false)?;
            let statuses: Vec<u8> = match result {
                None => native.call("ack", &(vec![(id, token)],))?,
                Some(result) => native.call("complete", &(vec![(id, token, result)],))?,
            };
            match statuses.first() {
                Some(&ACKED) => Ok(ForeignValue::None),
                Some(&EXPIRED) => Err(exception(
                    "RuntimeError",
                    format!("task {id}'s lease is over: it may be running elsewhere"),
                )),
                _ => Err(exception(
                    "KeyError",
                    format!("task {id} is not in the queue"),
                )),
            }
        }
        "status" => {
            let id = task_id(args.into_iter().next(), method)?;
            let status: crate::kinds::tasks::TaskStatus = native.call("status", &(id,))?;
            use crate::kinds::tasks::TaskStatus as S;
            let word = match status {
                S::Ready => "ready",
                S::Delayed => "delayed",
                S::Leased { .. } => "leased",
                S::Waiting => "waiting",
                S::Done => "done",
                S::Dead => "dead",
                _ => "unknown",
            };
            Ok(ForeignValue::Str(word.into()))
        }
        "result" => {
            let id = task_id(args.first().cloned(), method)?;
            let wait = timeout_ms(&arg(&args, kwds, 1, "timeout"));
            let outcome: crate::kinds::tasks::Outcome = native.call("outcome", &(id, wait))?;
            use crate::kinds::tasks::Outcome as O;
            match outcome {
                O::Done(result) => plain_result(id, result),
                O::Dead(reasons) => Err(exception(
                    "RuntimeError",
                    format!("task {id} is dead: {}", reasons.join("; ")),
                )),
                O::Pending => Err(exception(
                    "TimeoutError",
                    format!("task {id} did not finish in time"),
                )),
                _ => Err(exception("KeyError", format!("task {id} is not known"))),
            }
        }
        "fail_permanently" => {
            let (id, reason) = id_and_reason(args, method)?;
            let token = lease_token(native, id, false)?;
            native.call::<(), _>("fail_permanently", &(id, token, reason))?;
            Ok(ForeignValue::Str("dead".into()))
        }
        "fail" => {
            let (id, reason) = id_and_reason(args, method)?;
            let token = lease_token(native, id, false)?;
            let failed: Failed = native.call("fail", &(id, token, reason))?;
            Ok(ForeignValue::Str(
                match failed {
                    Failed::RetryAt(_) => "retry",
                    Failed::Dead => "dead",
                }
                .into(),
            ))
        }
        "extend" => {
            let mut args = args.into_iter();
            let id = task_id(args.next(), method)?;
            let extra = timeout_ms(&args.next()).ok_or_else(|| {
                exception("TypeError", "extend(id, seconds) takes a number of seconds")
            })?;
            let token = lease_token(native, id, true)?;
            let _until: u64 = native.call("extend", &(id, token, extra))?;
            Ok(ForeignValue::None)
        }
        "release" => {
            let id = task_id(args.into_iter().next(), method)?;
            let token = lease_token(native, id, false)?;
            native.call::<(), _>("release", &(id, token))?;
            Ok(ForeignValue::None)
        }
        "stats" => {
            let counts: Counts = native.call("stats", &())?;
            serde::Serialize::serialize(&counts, crate::values::bridge::ToForeign)
                .map_err(|e| exception("RuntimeError", e.to_string()))
        }
        "join" => {
            let wait = timeout_ms(&arg(&args, kwds, 0, "timeout"));
            Ok(ForeignValue::Bool(native.call("join", &(wait,))?))
        }
        "settings" => {
            let settings: crate::kinds::tasks::Settings = native.call("settings", &())?;
            serde::Serialize::serialize(&settings, crate::values::bridge::ToForeign)
                .map_err(|e| exception("RuntimeError", e.to_string()))
        }
        "dead_letters" => {
            let limit = match arg(&args, kwds, 0, "limit") {
                Some(ForeignValue::Int(n)) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
                _ => 100,
            };
            let dead: Vec<DeadLetter> = native.call("dead", &(0u64, limit))?;
            let s = |t: &str| ForeignValue::Str(t.into());
            dead.into_iter()
                .map(|letter| {
                    Ok(ForeignValue::Dict(vec![
                        (s("id"), int(letter.id)),
                        (s("attempts"), ForeignValue::Int(i64::from(letter.attempts))),
                        (
                            s("reasons"),
                            ForeignValue::List(
                                letter.reasons.into_iter().map(ForeignValue::Str).collect(),
                            ),
                        ),
                        (s("payload"), spec.decode_stored(&letter.payload)?),
                    ]))
                })
                .collect::<Result<Vec<_>, ForeignValue>>()
                .map(ForeignValue::List)
        }
        "requeue" => {
            let id = match args.into_iter().next() {
                None | Some(ForeignValue::None) => None,
                other => Some(task_id(other, method)?),
            };
            let moved: u64 = native.call("requeue", &(id,))?;
            Ok(int(moved))
        }
        other => Err(exception(
            "AttributeError",
            format!("a task queue has no method {other:?}"),
        )),
    }
}
