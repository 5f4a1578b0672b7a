//! The built-in shared objects, exposed to Python clients under a typeid with the method names
//! Python's own proxies use (`q.put(x)`, `d['k']`, `lock.acquire()`, ...). Elements cross as the
//! Rust types given at registration, so a Rust client of the same object reads what Python put
//! (the mapping is `bridge`'s).

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::methods::exception;
use crate::store::Bytes;
use crate::values::value::ForeignValue;
use crate::wire::codec;

/// Converts elements between Python values and the stored encoding.
type ToStored = Arc<dyn Fn(ForeignValue) -> Result<Bytes, String> + Send + Sync>;
type FromStored = Arc<dyn Fn(&Bytes) -> Result<ForeignValue, String> + Send + Sync>;

#[derive(Clone)]
struct Codec {
    to: ToStored,
    from: FromStored,
}

fn codec_of<T: Serialize + DeserializeOwned + 'static>() -> Codec {
    Codec {
        to: Arc::new(|value: ForeignValue| {
            let typed: T = serde::Deserialize::deserialize(value)
                .map_err(|e| format!("expected {}: {e}", std::any::type_name::<T>()))?;
            Bytes::encode(&typed).map_err(|e| e.to_string())
        }),
        from: Arc::new(|bytes: &Bytes| {
            let typed: T = bytes.decode().map_err(|e| e.to_string())?;
            typed
                .serialize(crate::values::bridge::ToForeign)
                .map_err(|e| e.to_string())
        }),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Queue,
    Dict,
    List,
    Value,
    Counter,
    Lock,
    Event,
    /// A semaphore; `bounded`: a release past the initial value is a `ValueError`.
    Semaphore {
        bounded: bool,
    },
    Barrier,
    /// `SyncManager.Namespace()`: attributes kept in a dict of str keys.
    Namespace,
    /// `SyncManager.Array()`: a list of fixed length.
    Array,
    /// A task queue: `push`, `take`, `ack`, `fail`, `extend`, ... (leases by task id; the
    /// tokens stay in the manager, with the connection that took the task).
    Tasks,
    /// The manager's worker registry (`get_workers()`): its declared methods (`report`,
    /// `list`, `gone`), so that a worker in Python heartbeats as a Rust one does.
    Workers,
}

/// A built-in shared object to expose to Python clients, with
/// [`ManagerBuilder::python_expose`](crate::ManagerBuilder::python_expose).
#[derive(Clone)]
pub struct PythonShared {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) tag: String,
    /// The creation arguments, encoded.
    pub(crate) args: Vec<u8>,
    keys: Option<Codec>,
    values: Option<Codec>,
}

impl std::fmt::Debug for PythonShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonShared")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub(crate) fn encoded<A: Serialize>(args: &A) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_into(args, &mut out).expect("creation arguments encode");
    out
}

/// A codec from a typed object's tag (see `values::shaped`).
fn codec_of_shape(tag: &str) -> Result<Codec, String> {
    let (to, from) = crate::values::shaped::element_codec(tag)?;
    Ok(Codec {
        to: Arc::new(move |value| to(value).map(Bytes)),
        from: Arc::new(move |bytes: &Bytes| from(&bytes.0)),
    })
}

impl PythonShared {
    /// This exposure of `Dynamic` elements, for an object that exists with the typed elements
    /// `tag` instead (a Rust client's `Queue<Email>`): elements converted by the type's shape,
    /// a struct as a dict. `Err` says why the tag cannot be used.
    pub(crate) fn shaped(mut self, tag: &str) -> Result<Self, String> {
        match self.kind {
            Kind::Queue | Kind::List | Kind::Value | Kind::Tasks => {
                self.values = Some(codec_of_shape(tag)?);
            }
            Kind::Dict => {
                let (keys, values) = tag
                    .split_once(", ")
                    .ok_or_else(|| format!("{tag:?} is not a dict's tag"))?;
                self.keys = Some(codec_of_shape(keys)?);
                self.values = Some(codec_of_shape(values)?);
            }
            _ => return Err("this kind has no elements to convert".into()),
        }
        self.tag = tag.to_string();
        Ok(self)
    }

    fn new(kind: Kind, name: &str, tag: String, args: Vec<u8>) -> Self {
        PythonShared {
            kind,
            name: name.to_string(),
            tag,
            args,
            keys: None,
            values: None,
        }
    }

    /// The shared `Queue<T>` `name` (unbounded if created here), as Python's `Queue` proxy:
    /// `put`, `put_nowait`, `get`, `get_nowait`, `qsize`, `empty`, `full`, `task_done`, `join`.
    pub fn queue<T: Serialize + DeserializeOwned + 'static>(name: &str) -> Self {
        let mut shared = Self::new(
            Kind::Queue,
            name,
            crate::proxies::type_tag::<T>(),
            encoded(&(0u64,)),
        );
        shared.values = Some(codec_of::<T>());
        shared
    }

    /// The [`TaskQueue<T>`](crate::TaskQueue) `name` (created with the default settings):
    /// `push(payload)` → id, `push_many(payloads)` → ids, `take(timeout=None)` →
    /// `(id, payload, attempt)` or `None` when the timeout (seconds) passed, `ack(id)`,
    /// `fail(id, reason)` → `"retry"` or `"dead"`, `extend(id, seconds)`, `release(id)`,
    /// `stats()`, `dead_letters(limit=100)`, `requeue(id=None)`. A lease belongs to the
    /// connection that took it: acked, failed or extended through it, and given back at once
    /// when it closes (its worker died).
    pub fn tasks<T: Serialize + DeserializeOwned + 'static>(name: &str) -> Self {
        let mut shared = Self::new(
            Kind::Tasks,
            name,
            crate::proxies::type_tag::<T>(),
            encoded(&(crate::store::tasks::Settings::default(),)),
        );
        shared.values = Some(codec_of::<T>());
        shared
    }

    /// The shared `Dict<K, V>` `name`, as Python's dict proxy: `d[k]`, `d[k] = v`, `del d[k]`,
    /// `k in d`, `len(d)`, `get`, `keys`, `values`, `items`, `update`, `pop`, `popitem`,
    /// `setdefault`, `clear`, `copy`.
    pub fn dict<K, V>(name: &str) -> Self
    where
        K: Serialize + DeserializeOwned + 'static,
        V: Serialize + DeserializeOwned + 'static,
    {
        // As `Dict::open` tags it.
        let tag = format!(
            "{}, {}",
            crate::proxies::type_tag::<K>(),
            crate::proxies::type_tag::<V>()
        );
        let mut shared = Self::new(Kind::Dict, name, tag, encoded(&()));
        shared.keys = Some(codec_of::<K>());
        shared.values = Some(codec_of::<V>());
        shared
    }

    /// The shared `List<T>` `name`, as Python's list proxy: `append`, `extend`, `insert`,
    /// `l[i]`, `l[i] = x`, `del l[i]`, `x in l`, `len(l)`, `pop(i)`, `remove`, `index`, `count`,
    /// `reverse`, `sort(reverse=)`, `clear`.
    pub fn list<T: Serialize + DeserializeOwned + 'static>(name: &str) -> Self {
        let mut shared = Self::new(
            Kind::List,
            name,
            crate::proxies::type_tag::<T>(),
            encoded(&()),
        );
        shared.values = Some(codec_of::<T>());
        shared
    }

    /// The shared `Value<T>` `name`, as Python's `Value` proxy: `get`, `set`, `.value`.
    pub fn value<T: Serialize + DeserializeOwned + 'static>(name: &str) -> Self {
        let mut shared = Self::new(
            Kind::Value,
            name,
            crate::proxies::type_tag::<T>(),
            encoded(&()),
        );
        shared.values = Some(codec_of::<T>());
        shared
    }

    /// The shared `Counter` `name`: `get`, `set`, `add(n)` (atomic), and `.value`.
    pub fn counter(name: &str) -> Self {
        // As `Client::counter` tags it.
        Self::new(Kind::Counter, name, "i64".into(), encoded(&()))
    }

    /// The shared `Lock` `name`, as Python's lock proxy: `acquire(blocking, timeout)`,
    /// `release`, `with`. Released if the holder's connection dies (Python's is not).
    pub fn lock(name: &str) -> Self {
        Self::new(Kind::Lock, name, String::new(), encoded(&()))
    }

    /// The shared `Event` `name`, as Python's event proxy: `set`, `clear`, `is_set`, `wait`.
    pub fn event(name: &str) -> Self {
        Self::new(Kind::Event, name, String::new(), encoded(&()))
    }

    /// An object of `kind` holding any Python value ([`Dynamic`](crate::Dynamic) in Rust),
    /// as `SyncManager`'s typeids and the `get_dict(name)` family make them.
    pub(crate) fn dynamic(kind: Kind, name: &str, args: Vec<u8>) -> Self {
        use crate::values::Dynamic;
        let mut shared = match kind {
            Kind::Dict => Self::dict::<Dynamic, Dynamic>(name),
            Kind::Namespace => {
                let mut shared = Self::dict::<String, Dynamic>(name);
                shared.kind = Kind::Namespace;
                shared
            }
            Kind::List | Kind::Array => {
                let mut shared = Self::list::<Dynamic>(name);
                shared.kind = kind;
                shared
            }
            Kind::Queue => Self::queue::<Dynamic>(name),
            Kind::Value => Self::value::<Dynamic>(name),
            Kind::Counter => Self::counter(name),
            Kind::Lock => Self::lock(name),
            Kind::Event => Self::event(name),
            Kind::Tasks => Self::tasks::<Dynamic>(name),
            Kind::Semaphore { .. } | Kind::Barrier => {
                Self::new(kind, name, String::new(), Vec::new())
            }
            Kind::Workers => Self::new(
                kind,
                crate::kinds::workers::REGISTRY_NAME,
                crate::kinds::workers::REGISTRY_TAG.into(),
                Vec::new(),
            ),
        };
        if !args.is_empty() {
            shared.args = args;
        }
        shared
    }

    /// The native kind's service name.
    pub(crate) fn service(&self) -> &'static str {
        match self.kind {
            Kind::Queue => crate::store::queue::SERVICE,
            Kind::Dict | Kind::Namespace => crate::store::dict::SERVICE,
            Kind::List | Kind::Array => crate::store::list::SERVICE,
            Kind::Semaphore { .. } => crate::store::lock::SEMAPHORE,
            Kind::Barrier => crate::store::signal::BARRIER,
            Kind::Value => crate::store::value::SERVICE,
            Kind::Counter => crate::store::counter::SERVICE,
            Kind::Lock => crate::store::lock::LOCK,
            Kind::Event => crate::store::signal::EVENT,
            Kind::Tasks => crate::store::tasks::SERVICE,
            Kind::Workers => crate::kinds::workers::SERVICE,
        }
    }

    /// The methods Python's proxy of this kind calls.
    pub(crate) fn exposed(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Queue => &[
                "empty",
                "full",
                "get",
                "get_nowait",
                "join",
                "put",
                "put_nowait",
                "qsize",
                "task_done",
            ],
            Kind::Dict => &[
                "__contains__",
                "__delitem__",
                "__getitem__",
                "__len__",
                "__setitem__",
                "clear",
                "copy",
                "get",
                "items",
                "keys",
                "pop",
                "popitem",
                "setdefault",
                "update",
                "values",
            ],
            Kind::List => &[
                "__contains__",
                "__delitem__",
                "__getitem__",
                "__len__",
                "__setitem__",
                "append",
                "clear",
                "count",
                "extend",
                "index",
                "insert",
                "pop",
                "remove",
                "reverse",
                "sort",
            ],
            Kind::Value | Kind::Counter => &["add", "get", "set"],
            Kind::Lock | Kind::Semaphore { .. } => &["acquire", "release"],
            Kind::Event => &["clear", "is_set", "set", "wait"],
            Kind::Barrier => &["__getattribute__", "abort", "reset", "wait"],
            Kind::Workers => &[],
            Kind::Namespace => &["__delattr__", "__getattribute__", "__setattr__"],
            Kind::Array => &["__getitem__", "__len__", "__setitem__"],
            Kind::Tasks => &[
                "ack",
                "dead_letters",
                "extend",
                "fail",
                "fail_permanently",
                "inputs",
                "join",
                "push",
                "push_after",
                "push_chain",
                "push_group",
                "push_many",
                "release",
                "requeue",
                "result",
                "settings",
                "stats",
                "status",
                "take",
            ],
        }
    }

    /// The element conversion for calls through the kind's declaration (see
    /// `values::bridge::with_elements`), for kinds with one element type; `None` for dicts
    /// (keys and values may differ) and kinds without elements.
    pub(crate) fn element_codec(
        &self,
    ) -> Option<(
        crate::values::bridge::ElementIn,
        crate::values::bridge::ElementOut,
    )> {
        if self.keys.is_some() {
            return None;
        }
        let codec = self.values.as_ref()?;
        let (to, from) = (Arc::clone(&codec.to), Arc::clone(&codec.from));
        Some((
            Arc::new(move |value| to(value).map(|bytes| bytes.0)),
            Arc::new(move |bytes: &[u8]| from(&Bytes(bytes.to_vec()))),
        ))
    }

    fn value_codec(&self) -> &Codec {
        self.values
            .as_ref()
            .expect("kinds with elements have a codec")
    }

    pub(crate) fn to_stored(&self, value: ForeignValue) -> Result<Bytes, ForeignValue> {
        (self.value_codec().to)(value).map_err(|e| exception("TypeError", e))
    }

    pub(crate) fn decode_stored(&self, bytes: &Bytes) -> Result<ForeignValue, ForeignValue> {
        (self.value_codec().from)(bytes).map_err(|e| exception("TypeError", e))
    }

    pub(crate) fn key_to_stored(&self, value: ForeignValue) -> Result<Bytes, ForeignValue> {
        let codec = self.keys.as_ref().expect("dicts have a key codec");
        (codec.to)(value).map_err(|e| exception("TypeError", e))
    }

    pub(crate) fn decode_stored_key(&self, bytes: &Bytes) -> Result<ForeignValue, ForeignValue> {
        let codec = self.keys.as_ref().expect("dicts have a key codec");
        (codec.from)(bytes).map_err(|e| exception("TypeError", e))
    }
}
