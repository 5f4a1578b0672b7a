//! What clients in other wire formats (msgpack-rpc, Python's proxies) reach: every built-in
//! kind by a short name (`tasks.take`, `semaphore.acquire`), every served `#[service]`
//! object by its name (`<object>.<method>`), registered functions, and a description made
//! from the same declarations. Calls go through each kind's generated erased entry, so a
//! method declared in `kinds/` is reachable here without touching a listener. (The Python
//! listener uses only `call_object`: Python's proxies name their objects themselves.)
#![cfg_attr(not(feature = "msgpack"), allow(dead_code))]

use super::Shared;
use super::objects::HeldRefs;
use crate::error::{RemoteError, RemoteErrorKind};
use crate::service::{Caller, Service, ServiceDescriptor};
use crate::store;
use crate::values::bridge::ToForeign;
use crate::values::value::ForeignValue;

use crate::proxies::DYNAMIC_TAG;

/// A built-in kind as foreign clients name and open it.
struct Kind {
    /// `counter`, `tasks`, ...: what a method name starts with.
    short: &'static str,
    /// The kind's description (its service name and methods), from its declaration.
    descriptor: fn() -> &'static ServiceDescriptor,
    /// The element tag: `Dynamic` elements for containers, none for signals.
    tag: &'static str,
    /// The creation arguments when a call names an object that does not exist yet; `None`
    /// when there is no sensible default (it must be made with `<kind>.open`).
    default: Option<fn() -> Vec<u8>>,
    /// Decodes `<kind>.open(name, ...)`'s arguments into creation arguments.
    creation: fn(ForeignValue) -> Result<Vec<u8>, RemoteError>,
    /// What `<kind>.open` takes after the name, for errors and the description.
    creation_args: &'static str,
    /// Put before the name the client gives (a mailbox is a queue under its own prefix).
    prefix: &'static str,
    /// Other names of methods (`mailbox.send` is the queue's `put`).
    aliases: &'static [(&'static str, &'static str)],
    /// The one object of the kind, for kinds the manager keeps one of (the worker registry):
    /// its methods take no name.
    only: Option<&'static str>,
}

fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    crate::wire::codec::encode_into(value, &mut out).expect("creation arguments encode");
    out
}

/// Creation arguments of type `T` read from a foreign client's values.
fn creation<T: serde::de::DeserializeOwned + serde::Serialize>(
    args: ForeignValue,
) -> Result<Vec<u8>, RemoteError> {
    let value: T = serde::Deserialize::deserialize(args)
        .map_err(|e| RemoteError::new(RemoteErrorKind::BadArguments, e.to_string()))?;
    Ok(encoded(&value))
}

fn descriptor<S: Service>() -> &'static ServiceDescriptor {
    S::descriptor()
}

/// A kind made with no arguments, under its own name.
const fn plain(
    short: &'static str,
    descriptor: fn() -> &'static ServiceDescriptor,
    tag: &'static str,
) -> Kind {
    Kind {
        short,
        descriptor,
        tag,
        default: Some(Vec::new),
        creation: creation::<()>,
        creation_args: "",
        prefix: "",
        aliases: &[],
        only: None,
    }
}

const KINDS: &[Kind] = &[
    plain(
        "counter",
        descriptor::<store::counter::CounterKindServer<store::counter::SharedCounter>>,
        "i64",
    ),
    plain(
        "value",
        descriptor::<store::value::ValueKindServer<store::value::SharedValue>>,
        DYNAMIC_TAG,
    ),
    plain(
        "dict",
        descriptor::<store::dict::DictKindServer<store::dict::SharedDict>>,
        "dynamic, dynamic",
    ),
    plain(
        "list",
        descriptor::<store::list::ListKindServer<store::list::SharedList>>,
        DYNAMIC_TAG,
    ),
    Kind {
        short: "queue",
        descriptor: descriptor::<store::queue::QueueKindServer<store::queue::SharedQueue>>,
        tag: DYNAMIC_TAG,
        default: Some(|| encoded(&(0u64,))),
        creation: creation::<(u64,)>,
        creation_args: "capacity (0: unbounded)",
        prefix: "",
        aliases: &[],
        only: None,
    },
    Kind {
        short: "tasks",
        descriptor: descriptor::<store::tasks::TaskKindServer<store::tasks::SharedTasks>>,
        tag: DYNAMIC_TAG,
        default: Some(|| encoded(&(store::tasks::Settings::default(),))),
        creation: creation::<(store::tasks::Settings,)>,
        creation_args: "{lease_ms, max_attempts, backoff_base_ms, backoff_max_ms} (each optional)",
        prefix: "",
        aliases: &[],
        only: None,
    },
    plain(
        "lock",
        descriptor::<store::lock::LockKindServer<store::lock::SharedLock>>,
        "",
    ),
    Kind {
        short: "semaphore",
        descriptor: descriptor::<store::lock::SemaphoreKindServer<store::lock::SharedSemaphore>>,
        tag: "",
        default: Some(|| encoded(&(1u64,))),
        creation: creation::<(u64,)>,
        creation_args: "permits",
        prefix: "",
        aliases: &[],
        only: None,
    },
    plain(
        "event",
        descriptor::<store::signal::EventKindServer<store::signal::SharedEvent>>,
        "",
    ),
    Kind {
        short: "barrier",
        descriptor: descriptor::<store::signal::BarrierKindServer<store::signal::SharedBarrier>>,
        tag: "",
        default: None,
        creation: creation::<(u64,)>,
        creation_args: "parties",
        prefix: "",
        aliases: &[],
        only: None,
    },
    Kind {
        short: "mailbox",
        descriptor: descriptor::<store::queue::QueueKindServer<store::queue::SharedQueue>>,
        tag: DYNAMIC_TAG,
        default: Some(|| encoded(&(crate::kinds::queue::MAILBOX_CAPACITY,))),
        creation: creation::<(u64,)>,
        creation_args: "capacity",
        prefix: crate::kinds::queue::MAILBOX_PREFIX,
        aliases: &[("send", "put"), ("recv", "get")],
        only: None,
    },
    // A worker in any language reports itself: `workers.report({"name": ..., "heartbeat":
    // true, ...})`, as Rust's and Python's workers do.
    Kind {
        short: "workers",
        descriptor: descriptor::<store::workers::WorkersKindServer<store::workers::SharedWorkers>>,
        tag: crate::kinds::workers::REGISTRY_TAG,
        default: Some(Vec::new),
        creation: creation::<()>,
        creation_args: "",
        prefix: "",
        aliases: &[],
        only: Some(crate::kinds::workers::REGISTRY_NAME),
    },
];

fn bad(message: impl Into<String>) -> RemoteError {
    RemoteError::new(RemoteErrorKind::BadArguments, message)
}

/// Runs `method` with `params` for a foreign client: `monogusa.describe`,
/// `<kind>.<method>(name, ...)`, `<kind>.open(name, ...)`, `<object>.<method>(...)` on a
/// served object, or a registered function.
pub(super) fn call(
    shared: &Shared,
    method: &str,
    params: Vec<ForeignValue>,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<ForeignValue, RemoteError> {
    if method == "monogusa.describe" {
        return Ok(describe(shared));
    }
    if let Some((prefix, name)) = method.split_once('.') {
        if let Some(kind) = KINDS.iter().find(|k| k.short == prefix) {
            return call_kind(shared, kind, name, params, held, caller);
        }
        if let Some(id) = shared.objects.find_served(prefix) {
            return call_object(shared, id, name, ForeignValue::List(params), held, caller);
        }
    }
    let mut result = ForeignValue::None;
    shared.registry.call_erased(
        method,
        &mut <dyn erased_serde::Deserializer>::erase(ForeignValue::List(params)),
        &mut |value| {
            result = to_foreign(value)?;
            Ok(())
        },
    )?;
    Ok(result)
}

fn call_kind(
    shared: &Shared,
    kind: &Kind,
    method: &str,
    params: Vec<ForeignValue>,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<ForeignValue, RemoteError> {
    let short = kind.short;
    let mut params = params.into_iter();
    let name = match (kind.only, params.next()) {
        (Some(only), first) => {
            // No name: what was read first is the method's first argument.
            params = first
                .into_iter()
                .chain(params)
                .collect::<Vec<_>>()
                .into_iter();
            only.to_string()
        }
        (None, Some(ForeignValue::Str(name))) => format!("{}{name}", kind.prefix),
        _ => {
            return Err(bad(format!(
                "{short}.{method} takes the object's name first"
            )));
        }
    };
    let method = kind
        .aliases
        .iter()
        .find(|(alias, _)| *alias == method)
        .map_or(method, |(_, declared)| declared);
    let service = (kind.descriptor)().name;
    // An object a Rust client made with typed elements (`client.tasks::<Email>(name)`) is
    // reached with its elements converted by the type's shape (a struct is a map).
    let typed = if kind.tag == DYNAMIC_TAG {
        shared.objects.other_tag(&name, service, DYNAMIC_TAG)
    } else {
        None
    };
    let codec = match &typed {
        Some(existing) => Some(
            crate::values::shaped::element_codec(existing).map_err(|why| {
                RemoteError::new(
                    RemoteErrorKind::WrongService,
                    format!(
                        "{name:?} holds elements of {existing}, which cannot be converted: {why}"
                    ),
                )
            })?,
        ),
        None => None,
    };
    let tag = typed.as_deref().unwrap_or(kind.tag);
    if method == "open" {
        let args = (kind.creation)(ForeignValue::List(params.collect())).map_err(|e| {
            bad(format!(
                "{short}.open(name, {}): {}",
                kind.creation_args,
                e.message()
            ))
        })?;
        shared.objects.open_shared(service, &name, tag, &args)?;
        return Ok(ForeignValue::None);
    }
    let id = match kind.default {
        Some(default) => shared
            .objects
            .open_shared(service, &name, tag, &default())?,
        None => match shared.objects.find_shared(&name, service) {
            Some(_) => shared.objects.open_shared(service, &name, tag, &[])?,
            None => {
                return Err(RemoteError::new(
                    RemoteErrorKind::UnknownObject,
                    format!(
                        "there is no {short} {name:?}: make it with {short}.open(name, {})",
                        kind.creation_args
                    ),
                ));
            }
        },
    };
    let args = ForeignValue::List(params.collect());
    match codec {
        Some(codec) => crate::values::bridge::with_elements(codec, || {
            call_object(shared, id, method, args, held, caller)
        }),
        None => call_object(shared, id, method, args, held, caller),
    }
}

/// Method `method` of object `id`, through its erased entry: `args` as the method's
/// arguments, the result as a foreign value. (The Python listener's served objects and
/// declared methods come here too.)
pub(super) fn call_object(
    shared: &Shared,
    id: u64,
    method: &str,
    args: ForeignValue,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<ForeignValue, RemoteError> {
    let mut result = ForeignValue::None;
    // A panicking method is an error for its caller, as on the native door; the connection
    // (a Python proxy's, which has no other guard per call) serves on.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shared.objects.call_erased(
            id,
            method,
            &mut <dyn erased_serde::Deserializer>::erase(args),
            &mut |value| {
                result = to_foreign(value)?;
                Ok(())
            },
            held,
            caller,
        )
    }))
    .unwrap_or_else(|payload| Err(super::dispatch::panicked(method, payload)))?;
    Ok(result)
}

fn to_foreign(value: &dyn erased_serde::Serialize) -> Result<ForeignValue, RemoteError> {
    erased_serde::serialize(value, ToForeign)
        .map_err(|e| RemoteError::new(RemoteErrorKind::BadReply, e.to_string()))
}

/// `monogusa.describe`: functions, the kinds with their methods (`<kind>.<method>`, and what
/// `<kind>.open` takes), and the served objects with theirs.
fn describe(shared: &Shared) -> ForeignValue {
    let s = |text: &str| ForeignValue::Str(text.to_string());
    let functions = shared.registry.names().into_iter().map(s).collect();
    let kinds = KINDS
        .iter()
        .map(|kind| {
            let methods = (kind.descriptor)()
                .methods
                .iter()
                .map(|m| m.name)
                .chain(kind.aliases.iter().map(|(alias, _)| *alias))
                .chain(std::iter::once("open"))
                .map(|m| ForeignValue::Str(format!("{}.{m}", kind.short)))
                .collect();
            (s(kind.short), ForeignValue::List(methods))
        })
        .collect();
    let served = shared
        .objects
        .served()
        .into_iter()
        .map(|(name, descriptor)| {
            let methods = descriptor
                .methods
                .iter()
                .map(|m| ForeignValue::Str(format!("{name}.{}", m.name)))
                .collect();
            (ForeignValue::Str(name), ForeignValue::List(methods))
        })
        .collect();
    let creation = KINDS
        .iter()
        .map(|kind| (s(kind.short), s(kind.creation_args)))
        .collect();
    ForeignValue::Dict(vec![
        (s("functions"), ForeignValue::List(functions)),
        (s("objects"), ForeignValue::Dict(kinds)),
        (s("open"), ForeignValue::Dict(creation)),
        (s("services"), ForeignValue::Dict(served)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_names_a_declared_method() {
        for kind in KINDS {
            let methods = (kind.descriptor)().methods;
            for (alias, declared) in kind.aliases {
                assert!(
                    methods.iter().any(|m| m.name == *declared),
                    "{}.{alias} names {declared}, which the kind does not declare",
                    kind.short
                );
            }
        }
        let mut shorts: Vec<&str> = KINDS.iter().map(|k| k.short).collect();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(shorts.len(), KINDS.len(), "one short name per kind");
    }
}
