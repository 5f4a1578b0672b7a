//! Objects a manager serves: named objects it was built with, and objects clients create from
//! registered types, kept alive by reference counts that connections hold.
//!
//! Object ids carry the manager run's random instance number in their upper 32 bits, so a
//! handle kept across a manager restart is told `StaleObject` instead of reaching whatever
//! object got its number in the new run.
//!
//! Invariants, kept under the table's lock:
//! - an object's `refs` equals the sum, over open connections, of the references each holds;
//! - a created (unnamed) object is in the table exactly while `refs > 0`; named objects stay
//!   for the manager's life.
//!
//! Each object sits behind its own `RwLock`: `&mut self` methods take it exclusively, `&self`
//! methods share it (`parking_lot`'s, which do not poison). A panic in a method is caught by the
//! caller of [`Objects::call`], and the object serves on: one bad call does not make it
//! unusable for everyone (the method's own partial mutation is the implementation's concern).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use serde::de::DeserializeOwned;

use crate::error::{RemoteError, RemoteErrorKind};
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::service::{
    Caller, Description, MethodDescription, ObjectDescription, Service, ServiceDescriptor,
    TypeDescription,
};
use crate::store::backend::StoreBackend;
use crate::store::{Budget, StoreLimits};
use crate::wire::codec;

/// One object in the manager.
struct Object {
    name: Option<String>,
    type_id: Option<String>,
    /// For built-in shared objects: the element types, checked when the name is reopened.
    type_tag: Option<String>,
    descriptor: &'static ServiceDescriptor,
    /// Set when a built-in object is deleted, so calls it wakes are told why.
    deleted: std::sync::atomic::AtomicBool,
    /// Whether the object must hear of its callers' connections closing.
    tracks_connections: bool,
    state: RwLock<Box<dyn Service>>,
}

struct Entry {
    object: Arc<Object>,
    refs: u64,
}

#[derive(Default)]
struct Table {
    /// The low half of the next id (the high half is the instance).
    next_id: u64,
    by_id: FxHashMap<u64, Entry>,
    by_name: HashMap<String, u64>,
    /// Built-in shared objects by name: a namespace of their own, apart from served objects.
    shared_by_name: HashMap<String, u64>,
    /// How many of those are the manager's own (see [`is_own`]).
    own_objects: usize,
}

/// The most objects of the manager's own (see [`is_own`]).
const MAX_OWN_OBJECTS: usize = 10_000;

/// Whether `name` is one of the manager's own bookkeeping objects, counted apart from the
/// user's quota: those under [`INTERNAL_PREFIX`](crate::service::INTERNAL_PREFIX) but the
/// objects Python clients create (`monogusa.python:…`), which are the user's.
fn is_own(name: &str) -> bool {
    name.starts_with(crate::service::INTERNAL_PREFIX) && !name.starts_with("monogusa.python:")
}

/// A constructor for objects of a registered type, from encoded arguments.
type BoxedConstructor = Box<dyn Fn(&[u8]) -> Result<Box<dyn Service>, RemoteError> + Send + Sync>;

struct TypeEntry {
    descriptor: &'static ServiceDescriptor,
    construct: BoxedConstructor,
}

/// What a manager is built with: named objects and constructible types.
#[derive(Default)]
pub(crate) struct ObjectsConfig {
    named: Vec<(String, Box<dyn Service>)>,
    types: HashMap<String, TypeEntry>,
}

impl ObjectsConfig {
    /// Adds a named object; false if the name is taken.
    pub(crate) fn serve(&mut self, name: &str, object: Box<dyn Service>) -> bool {
        if self.named.iter().any(|(n, _)| n == name) {
            return false;
        }
        self.named.push((name.to_string(), object));
        true
    }

    /// Adds a constructible type; false if the type id is taken.
    pub(crate) fn register_type<Args: 'static, C: Constructor<Args>>(
        &mut self,
        type_id: &str,
        constructor: C,
    ) -> bool {
        if self.types.contains_key(type_id) {
            return false;
        }
        let entry = TypeEntry {
            descriptor: C::descriptor(),
            construct: Box::new(move |args: &[u8]| constructor.construct(args)),
        };
        self.types.insert(type_id.to_string(), entry);
        true
    }
}

/// A function that makes objects of a registered type: any `Fn` of 0 to 8 serde arguments
/// returning a [`Service`] (a generated `XServer<T>`).
pub trait Constructor<Args>: Send + Sync + 'static {
    /// The service the constructed objects implement.
    #[doc(hidden)]
    fn descriptor() -> &'static ServiceDescriptor;
    /// Decodes the arguments and makes an object.
    #[doc(hidden)]
    fn construct(&self, args: &[u8]) -> Result<Box<dyn Service>, RemoteError>;
}

macro_rules! constructor_for_arity {
    ($($arg:ident),*) => {
        impl<F, S, $($arg,)*> Constructor<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> S + Send + Sync + 'static,
            S: Service,
            $($arg: DeserializeOwned,)*
        {
            fn descriptor() -> &'static ServiceDescriptor {
                S::descriptor()
            }

            fn construct(&self, args: &[u8]) -> Result<Box<dyn Service>, RemoteError> {
                #[allow(non_snake_case)]
                let ($($arg,)*): ($($arg,)*) = codec::decode_arguments(args, &"the constructor")?;
                Ok(Box::new((self)($($arg),*)))
            }
        }
    };
}

constructor_for_arity!();
constructor_for_arity!(A1);
constructor_for_arity!(A1, A2);
constructor_for_arity!(A1, A2, A3);
constructor_for_arity!(A1, A2, A3, A4);
constructor_for_arity!(A1, A2, A3, A4, A5);
constructor_for_arity!(A1, A2, A3, A4, A5, A6);
constructor_for_arity!(A1, A2, A3, A4, A5, A6, A7);
constructor_for_arity!(A1, A2, A3, A4, A5, A6, A7, A8);

/// The manager's objects.
pub(crate) struct Objects {
    table: Mutex<Table>,
    types: HashMap<String, TypeEntry>,
    /// This run's number, random, never 0: the high half of every object id.
    instance: u32,
    /// What the built-in objects hold, and the store's limits.
    budget: Arc<Budget>,
    /// How many created objects one connection may hold references to at once.
    max_held_per_connection: usize,
    /// What makes and keeps the built-in shared objects.
    backend: Box<dyn StoreBackend>,
}

/// How many objects one page of a description lists at most.
pub(crate) const DESCRIBE_PAGE: usize = 1000;

/// References one connection holds, released when it closes, and the objects it called that
/// keep something per connection (locks it may hold), told when it closes: so closing costs
/// what the connection touched, not a walk over every object.
#[derive(Default)]
pub(crate) struct HeldRefs {
    counts: HashMap<u64, u64>,
    tracked: FxHashSet<u64>,
    /// Lease tokens by (task queue, task id), for adapters whose clients name a lease by its
    /// task alone (Python's task proxy): the tokens stay with the connection that took them.
    #[cfg(feature = "python")]
    pub(crate) leases: FxHashMap<(u64, u64), u64>,
}

impl HeldRefs {
    #[cfg(feature = "msgpack")]
    /// Takes over what `other` holds (a call's, into its connection's).
    pub(crate) fn absorb(&mut self, other: HeldRefs) {
        for (id, count) in other.counts {
            *self.counts.entry(id).or_insert(0) += count;
        }
        self.tracked.extend(other.tracked);
        #[cfg(feature = "python")]
        self.leases.extend(other.leases);
    }
}

fn unknown_object(what: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(RemoteErrorKind::UnknownObject, format!("no object {what}"))
}

/// A call woken because its object was deleted (not because the manager stops) says so.
fn deleted_while_waiting(
    object: &Object,
    id: u64,
    result: Result<(), RemoteError>,
) -> Result<(), RemoteError> {
    match result {
        Err(e)
            if e.kind() == RemoteErrorKind::ShuttingDown
                && object.deleted.load(std::sync::atomic::Ordering::Acquire) =>
        {
            Err(unknown_object(format_args!(
                "{id}: it was deleted while the call waited"
            )))
        }
        other => other,
    }
}

/// A fresh run number: random, so ids of different runs differ; never 0.
fn fresh_instance() -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: the clock still tells runs apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        bytes = nanos.to_le_bytes();
    }
    u32::from_le_bytes(bytes).max(1)
}

fn check_service(
    descriptor: &ServiceDescriptor,
    expected: &str,
    what: &str,
) -> Result<(), RemoteError> {
    if descriptor.name == expected {
        Ok(())
    } else {
        Err(RemoteError::new(
            RemoteErrorKind::WrongService,
            format!("{what} implements {}, not {expected}", descriptor.name),
        ))
    }
}

impl Table {
    /// Adds an object with `refs` references; returns its new id.
    fn insert(&mut self, object: Object, refs: u64, instance: u32) -> Result<u64, RemoteError> {
        if self.next_id > u64::from(u32::MAX) {
            return Err(RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                "this manager run has made 2^32 objects; restart it",
            ));
        }
        let id = u64::from(instance) << 32 | self.next_id;
        self.next_id += 1;
        self.by_id.insert(
            id,
            Entry {
                object: Arc::new(object),
                refs,
            },
        );
        Ok(id)
    }
}

impl Objects {
    /// The manager's objects: those it serves, and the shared objects `backend` kept.
    pub(crate) fn new(
        config: ObjectsConfig,
        limits: StoreLimits,
        max_held_per_connection: usize,
        backend: Box<dyn StoreBackend>,
    ) -> crate::Result<Self> {
        let instance = fresh_instance();
        let budget = Budget::new(limits);
        let mut table = Table {
            next_id: 1,
            ..Table::default()
        };
        for (name, state) in config.named {
            let object = Object {
                descriptor: state.service(),
                name: Some(name.clone()),
                type_id: None,
                type_tag: None,
                deleted: Default::default(),
                tracks_connections: state.tracks_connections(),
                state: RwLock::new(state),
            };
            let id = table
                .insert(object, 0, instance)
                .expect("the first ids are free");
            table.by_name.insert(name, id);
        }
        for restored in backend.restore(&budget)? {
            if table.by_name.contains_key(&restored.name) {
                return Err(crate::Error::Config(format!(
                    "{:?} is both served and a shared object kept in {}",
                    restored.name,
                    backend.place()
                )));
            }
            let object = Object {
                descriptor: restored.object.service(),
                name: Some(restored.name.clone()),
                type_id: None,
                type_tag: Some(restored.tag),
                deleted: Default::default(),
                tracks_connections: restored.object.tracks_connections(),
                state: RwLock::new(restored.object),
            };
            let id = table
                .insert(object, 0, instance)
                .expect("ids are free at start");
            if is_own(&restored.name) {
                table.own_objects += 1;
            }
            table.shared_by_name.insert(restored.name, id);
        }
        if !table.shared_by_name.is_empty() {
            log::info!(
                "restored {} shared objects from {}",
                table.shared_by_name.len(),
                backend.place()
            );
        }
        Ok(Objects {
            table: Mutex::new(table),
            types: config.types,
            instance,
            budget,
            max_held_per_connection,
            backend,
        })
    }

    /// Writes what the store has pending and closes it: the manager has stopped.
    pub(crate) fn close_store(&self) {
        self.backend.close();
    }

    /// The error for an id the table does not have: from another run, or gone.
    fn missing(&self, id: u64) -> RemoteError {
        if id >> 32 != u64::from(self.instance) {
            RemoteError::new(
                RemoteErrorKind::StaleObject,
                format!(
                    "object {id} belongs to an earlier run of the manager (it restarted); reopen it"
                ),
            )
        } else {
            unknown_object(id)
        }
    }

    /// Bytes the built-in objects hold now.
    pub(crate) fn store_bytes(&self) -> u64 {
        self.budget.used()
    }

    /// How many built-in shared objects exist now.
    pub(crate) fn shared_count(&self) -> usize {
        self.table().shared_by_name.len()
    }

    fn table(&self) -> parking_lot::MutexGuard<'_, Table> {
        self.table.lock()
    }

    /// The id of the named object, if it implements `service`.
    pub(crate) fn open(&self, name: &str, service: &str) -> Result<u64, RemoteError> {
        let table = self.table();
        let Some(&id) = table.by_name.get(name) else {
            // One namespace: a shared object's name is not free for a served one.
            if let Some(id) = table.shared_by_name.get(name) {
                let kind = table.by_id[id].object.descriptor.name;
                return Err(RemoteError::new(
                    RemoteErrorKind::WrongService,
                    format!("{name:?} is a {kind}, not a served {service}"),
                ));
            }
            return Err(unknown_object(format_args!("named {name:?}")));
        };
        check_service(
            table.by_id[&id].object.descriptor,
            service,
            &format!("object {name:?}"),
        )?;
        Ok(id)
    }

    /// The id of the built-in shared object `name` if it exists and is a `service`.
    #[cfg(any(feature = "http", feature = "python", feature = "msgpack"))]
    pub(crate) fn find_shared(&self, name: &str, service: &str) -> Option<u64> {
        let table = self.table();
        let id = *table.shared_by_name.get(name)?;
        (table.by_id.get(&id)?.object.descriptor.name == service).then_some(id)
    }

    /// The element type tag the built-in shared object `name` was made with, if it exists,
    /// is a `service`, and its tag is not `than` (compared under the lock: nothing is copied
    /// in the usual case, a foreign client on an object of its own tag).
    #[cfg(any(feature = "python", feature = "msgpack"))]
    pub(crate) fn other_tag(&self, name: &str, service: &str, than: &str) -> Option<String> {
        let table = self.table();
        let object = &table.by_id.get(table.shared_by_name.get(name)?)?.object;
        if object.descriptor.name != service {
            return None;
        }
        object
            .type_tag
            .as_deref()
            .filter(|&tag| tag != than)
            .map(str::to_string)
    }

    /// The service object `id` implements, if it is alive.
    #[cfg(feature = "python")]
    pub(crate) fn descriptor_of(&self, id: u64) -> Option<&'static ServiceDescriptor> {
        Some(self.table().by_id.get(&id)?.object.descriptor)
    }

    /// The object served under `name` (by the manager's builder), if there is one.
    #[cfg(any(feature = "python", feature = "msgpack"))]
    pub(crate) fn find_served(&self, name: &str) -> Option<u64> {
        self.table().by_name.get(name).copied()
    }

    /// The objects served by name, with their services, sorted by name.
    #[cfg(any(feature = "python", feature = "msgpack"))]
    pub(crate) fn served(&self) -> Vec<(String, &'static ServiceDescriptor)> {
        let table = self.table();
        let mut served: Vec<_> = table
            .by_name
            .iter()
            .map(|(name, id)| (name.clone(), table.by_id[id].object.descriptor))
            .collect();
        served.sort_by(|a, b| a.0.cmp(&b.0));
        served
    }

    /// Opens the built-in shared object `name`, creating it from `args` if it does not exist.
    /// Its kind and element types must match those it was created with.
    pub(crate) fn open_shared(
        &self,
        kind: &str,
        name: &str,
        type_tag: &str,
        args: &[u8],
    ) -> Result<u64, RemoteError> {
        if name.is_empty() {
            return Err(RemoteError::new(
                RemoteErrorKind::BadArguments,
                "a shared object needs a name",
            ));
        }
        let mut table = self.table();
        // One namespace for every named object: a served object's name is taken.
        if let Some(id) = table.by_name.get(name) {
            let service = table.by_id[id].object.descriptor.name;
            return Err(RemoteError::new(
                RemoteErrorKind::WrongService,
                format!("{name:?} is a served {service}, not a {kind}"),
            ));
        }
        if let Some(&id) = table.shared_by_name.get(name) {
            let object = &table.by_id[&id].object;
            check_service(object.descriptor, kind, &format!("{name:?}"))?;
            if object.type_tag.as_deref() != Some(type_tag) {
                return Err(RemoteError::new(
                    RemoteErrorKind::WrongService,
                    format!(
                        "{name:?} is a {kind} of {}, not of {type_tag}",
                        object.type_tag.as_deref().unwrap_or("?")
                    ),
                ));
            }
            return Ok(id);
        }
        // The manager's own bookkeeping objects (the worker registry, the log buffer,
        // supervisors' groups, control mailboxes) have a quota of their own, so that the
        // operator's tools work even when the user's objects fill theirs.
        let own = is_own(name);
        let (count, max) = if own {
            (table.own_objects, MAX_OWN_OBJECTS)
        } else {
            (
                table.shared_by_name.len() - table.own_objects,
                self.budget.limits.max_objects,
            )
        };
        if count >= max {
            return Err(RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                if own {
                    format!("the manager holds its limit of {max} objects of its own")
                } else {
                    format!("the manager holds its limit of {max} shared objects; delete some")
                },
            ));
        }
        // Built-in constructors are quick and trusted: made under the lock, so two clients
        // opening a new name at once get the same object.
        let state = self
            .backend
            .create(kind, name, type_tag, args, &self.budget)?;
        let object = Object {
            descriptor: state.service(),
            name: Some(name.to_string()),
            type_id: None,
            type_tag: Some(type_tag.to_string()),
            deleted: Default::default(),
            tracks_connections: state.tracks_connections(),
            state: RwLock::new(state),
        };
        let id = table.insert(object, 0, self.instance)?;
        table.shared_by_name.insert(name.to_string(), id);
        if own {
            table.own_objects += 1;
        }
        Ok(id)
    }

    /// The store's byte budget, which what listeners hold for their clients (Python's result
    /// proxies) is charged to as well.
    #[cfg(feature = "python")]
    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The names of the shared objects that start with `prefix`.
    #[cfg(feature = "python")]
    pub(crate) fn shared_names_with(&self, prefix: &str) -> Vec<String> {
        self.table()
            .shared_by_name
            .keys()
            .filter(|name| name.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Deletes the built-in shared object `name`; false if there is none. Calls blocked in it
    /// are woken with an `UnknownObject` error; what it held goes back to the store's budget
    /// once the last call running on it ends.
    pub(crate) fn delete_shared(&self, name: &str) -> Result<bool, RemoteError> {
        let removed = {
            let mut table = self.table();
            let Some(id) = table.shared_by_name.remove(name) else {
                return Ok(false);
            };
            if is_own(name) {
                table.own_objects -= 1;
            }
            // Recorded under the table's lock, so a new object of the same name is recorded
            // after this deletion.
            self.backend.delete(name)?;
            table.by_id.remove(&id)
        };
        if let Some(entry) = removed {
            entry
                .object
                .deleted
                .store(true, std::sync::atomic::Ordering::Release);
            // Built-in objects only take their lock shared, so this never waits on a call.
            entry.object.state.read().shutdown();
        }
        Ok(true)
    }

    /// Wakes every call blocked in a built-in shared object: the manager is stopping.
    pub(crate) fn shutdown(&self) {
        for object in self.shared_objects() {
            // Built-in objects only take their lock shared, so this never waits on a call.
            object.state.read().shutdown();
        }
    }

    /// Tells the objects connection `id` called that keep something per connection (locks,
    /// semaphores) that it is gone, so what it held is released. Returns how many it told:
    /// what the connection touched, however many objects exist.
    pub(crate) fn connection_closed(&self, id: u64, held: &mut HeldRefs) -> usize {
        let mut told = 0;
        for object_id in held.tracked.drain() {
            let object = {
                let table = self.table();
                match table.by_id.get(&object_id) {
                    Some(entry) => Arc::clone(&entry.object),
                    None => continue, // deleted meanwhile
                }
            };
            object.state.read().connection_closed(id);
            told += 1;
        }
        told
    }

    fn shared_objects(&self) -> Vec<Arc<Object>> {
        let table = self.table();
        table
            .shared_by_name
            .values()
            .map(|id| Arc::clone(&table.by_id[id].object))
            .collect()
    }

    /// Makes an object of a registered type; `held` gets its first reference.
    pub(crate) fn create(
        &self,
        type_id: &str,
        service: &str,
        args: &[u8],
        held: &mut HeldRefs,
    ) -> Result<u64, RemoteError> {
        let entry = self.types.get(type_id).ok_or_else(|| {
            RemoteError::new(
                RemoteErrorKind::UnknownType,
                format!("no type registered as {type_id:?}"),
            )
        })?;
        check_service(entry.descriptor, service, &format!("type {type_id:?}"))?;
        if held.counts.len() >= self.max_held_per_connection {
            return Err(RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                format!(
                    "this connection holds its limit of {} created objects; drop some",
                    self.max_held_per_connection
                ),
            ));
        }
        // The constructor runs outside the table's lock: it is user code and may be slow.
        let state = (entry.construct)(args)?;
        let object = Object {
            descriptor: entry.descriptor,
            name: None,
            type_id: Some(type_id.to_string()),
            type_tag: None,
            deleted: Default::default(),
            tracks_connections: state.tracks_connections(),
            state: RwLock::new(state),
        };
        let id = self.table().insert(object, 1, self.instance)?;
        *held.counts.entry(id).or_insert(0) += 1;
        Ok(id)
    }

    /// Takes one more reference to object `id` for `held`.
    pub(crate) fn retain(
        &self,
        id: u64,
        service: &str,
        held: &mut HeldRefs,
    ) -> Result<(), RemoteError> {
        let mut table = self.table();
        let missing = || self.missing(id);
        let entry = table.by_id.get_mut(&id).ok_or_else(missing)?;
        check_service(entry.object.descriptor, service, &format!("object {id}"))?;
        entry.refs += 1;
        *held.counts.entry(id).or_insert(0) += 1;
        Ok(())
    }

    /// Gives back one reference `held` has to object `id`; a reference it does not hold is
    /// ignored (its connection may have been replaced since).
    pub(crate) fn release(&self, id: u64, held: &mut HeldRefs) {
        let Some(count) = held.counts.get_mut(&id) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            held.counts.remove(&id);
        }
        self.drop_refs(id, 1);
    }

    /// Gives back every reference a closing connection held.
    pub(crate) fn release_all(&self, held: &mut HeldRefs) {
        for (id, count) in held.counts.drain() {
            self.drop_refs(id, count);
        }
    }

    fn drop_refs(&self, id: u64, count: u64) {
        let removed = {
            let mut table = self.table();
            let Some(entry) = table.by_id.get_mut(&id) else {
                return;
            };
            entry.refs = entry.refs.saturating_sub(count);
            if entry.refs == 0 && entry.object.name.is_none() {
                table.by_id.remove(&id)
            } else {
                None
            }
        };
        // The object itself is dropped here, outside the lock (its Drop is user code), or
        // later by a call still running on it.
        drop(removed);
    }

    /// Runs method `method` of object `id`, appending its encoded result to `out`.
    pub(crate) fn call(
        &self,
        id: u64,
        method: &[u8],
        args: &[u8],
        out: &mut Vec<u8>,
        held: &mut HeldRefs,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let (object, index, mutates) = self.resolve(id, method, held)?;
        let result = if mutates {
            object
                .state
                .write()
                .call_exclusive(index, args, out, caller)
        } else {
            object.state.read().call_shared(index, args, out, caller)
        };
        deleted_while_waiting(&object, id, result)
    }

    /// The objects `ids` (sorted and each locked once, for reading: built-in kinds take no
    /// exclusive lock, and a reader already inside one of them may ask for it again).
    fn neighbours(&self, ids: &[u64]) -> Result<Vec<(u64, Arc<Object>)>, RemoteError> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let table = self.table();
        sorted
            .into_iter()
            .map(|id| {
                let entry = table.by_id.get(&id).ok_or_else(|| self.missing(id))?;
                // Built-in shared objects only: a served object's exclusive call could hold
                // its lock (and so the caller's queue) for as long as it runs.
                if entry.object.type_tag.is_none() {
                    return Err(RemoteError::new(
                        RemoteErrorKind::BadArguments,
                        format!("object {id} is not a built-in shared object"),
                    ));
                }
                Ok((id, Arc::clone(&entry.object)))
            })
            .collect()
    }

    /// Runs method `method` of object `id` in process with `args`, its result decoded: how
    /// the dashboard and the Python listener's adapters call the built-in objects.
    #[cfg(any(feature = "python", feature = "http"))]
    pub(crate) fn call_typed<R: DeserializeOwned, A: serde::Serialize>(
        &self,
        id: u64,
        method: &str,
        args: &A,
        held: &mut HeldRefs,
        caller: &Caller<'_>,
    ) -> Result<R, RemoteError> {
        let mut encoded = Vec::new();
        codec::encode_into(args, &mut encoded)
            .map_err(|e| RemoteError::new(RemoteErrorKind::BadArguments, e.to_string()))?;
        let mut out = Vec::new();
        self.call(id, method.as_bytes(), &encoded, &mut out, held, caller)?;
        codec::decode_exact(&out)
            .map_err(|e| RemoteError::new(RemoteErrorKind::BadReply, e.to_string()))
    }

    /// Runs method `method` of object `id` through the serde boundary: arguments from any
    /// format, the result to `reply`. For listeners that speak another wire format.
    #[cfg(any(test, feature = "python", feature = "msgpack"))]
    pub(crate) fn call_erased(
        &self,
        id: u64,
        method: &str,
        args: &mut dyn erased_serde::Deserializer<'_>,
        reply: crate::server::ErasedReply<'_>,
        held: &mut HeldRefs,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let (object, index, mutates) = self.resolve(id, method.as_bytes(), held)?;
        let result = if mutates {
            object
                .state
                .write()
                .call_exclusive_erased(index, args, reply, caller)
        } else {
            object
                .state
                .read()
                .call_shared_erased(index, args, reply, caller)
        };
        deleted_while_waiting(&object, id, result)
    }

    /// The object `id` and its method `method` (index, whether it takes `&mut self`), with
    /// the object recorded in `held` if it keeps something per connection: recorded before
    /// the call, so if the call blocks and the connection dies meanwhile, the object still
    /// hears of it.
    /// The object `id` and the index of its method named `method` (compared byte for byte:
    /// a name that matches is one of ours, so a request's name needs no UTF-8 check).
    #[inline(always)] // on every method call; with two callers it went out of line (+28 instructions a call)
    fn resolve(
        &self,
        id: u64,
        method: &[u8],
        held: &mut HeldRefs,
    ) -> Result<(Arc<Object>, usize, bool), RemoteError> {
        let object = {
            let table = self.table();
            let entry = table.by_id.get(&id).ok_or_else(|| self.missing(id))?;
            Arc::clone(&entry.object)
        };
        if object.tracks_connections {
            held.tracked.insert(id);
        }
        let methods = object.descriptor.methods;
        let index = methods
            .iter()
            .position(|m| m.name.as_bytes() == method)
            .ok_or_else(|| {
                RemoteError::new(
                    RemoteErrorKind::UnknownMethod,
                    format!(
                        "{} has no method `{}`",
                        object.descriptor.name,
                        String::from_utf8_lossy(method)
                    ),
                )
            })?;
        let mutates = methods[index].mutates;
        Ok((object, index, mutates))
    }

    /// Objects and types, for `Client::describe`: at most `limit` objects (and never more
    /// than a page), those with ids after `after`, in id order.
    pub(crate) fn describe(&self, functions: Vec<String>, after: u64, limit: usize) -> Description {
        let limit = limit.min(DESCRIBE_PAGE);
        let (objects_total, mut objects): (usize, Vec<ObjectDescription>) = {
            let table = self.table();
            let mut ids: Vec<u64> = table
                .by_id
                .keys()
                .copied()
                .filter(|&id| id > after)
                .collect();
            if ids.len() > limit {
                ids.select_nth_unstable(limit);
                ids.truncate(limit);
            }
            let objects = ids
                .into_iter()
                .map(|id| (id, &table.by_id[&id]))
                .map(|(id, entry)| ObjectDescription {
                    id,
                    name: entry.object.name.clone(),
                    type_id: entry.object.type_id.clone(),
                    service: entry.object.descriptor.name.to_string(),
                    methods: MethodDescription::of(entry.object.descriptor.methods),
                    references: entry.refs,
                    type_tag: entry.object.type_tag.clone(),
                })
                .collect();
            (table.by_id.len(), objects)
        };
        objects.sort_by_key(|o| o.id);
        let mut types: Vec<TypeDescription> = self
            .types
            .iter()
            .map(|(type_id, entry)| TypeDescription {
                type_id: type_id.clone(),
                service: entry.descriptor.name.to_string(),
                methods: MethodDescription::of(entry.descriptor.methods),
            })
            .collect();
        types.sort_by(|a, b| a.type_id.cmp(&b.type_id));
        Description {
            functions,
            objects,
            objects_total: objects_total as u64,
            types,
        }
    }
}

impl crate::service::Neighbours for Objects {
    fn with_objects(
        &self,
        ids: &[u64],
        f: &mut crate::service::WithObjects<'_>,
    ) -> Result<u8, RemoteError> {
        let objects = self.neighbours(ids)?;
        let guards: Vec<_> = objects
            .iter()
            .map(|(id, object)| (*id, object.state.read_recursive()))
            .collect();
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let at = guards
                .binary_search_by_key(id, |(g, _)| *g)
                .expect("every id was looked up");
            let guard = &guards[at].1;
            let any = guard.as_any().ok_or_else(|| {
                RemoteError::new(
                    RemoteErrorKind::BadArguments,
                    format!("object {id} is not a built-in shared object"),
                )
            })?;
            found.push(any);
        }
        f(&found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[crate::service]
    pub trait Tally {
        fn add(&mut self, n: i64) -> i64;
        fn total(&self) -> i64;
    }

    #[derive(Default)]
    struct Sum(i64);

    impl Tally for Sum {
        fn add(&mut self, n: i64) -> i64 {
            self.0 += n;
            self.0
        }
        fn total(&self) -> i64 {
            self.0
        }
    }

    /// A manager's objects in memory, serving a `Tally` as "tally".
    fn serving_a_tally() -> Objects {
        let mut config = ObjectsConfig::default();
        config.serve("tally", Box::new(TallyServer::new(Sum::default())));
        Objects::new(
            config,
            StoreLimits::default(),
            10,
            Box::new(crate::store::backend::Memory),
        )
        .unwrap()
    }

    /// What a task's ack with writes may reach: built-in shared objects, each as its
    /// implementation, in the order asked; a served object is refused before any lock is
    /// taken (its exclusive call could hold the queue), and an unknown id too.
    #[test]
    fn neighbours_are_built_in_objects_only() {
        use crate::service::Neighbours;
        let objects = serving_a_tally();
        let tally = objects.open("tally", "Tally").unwrap();
        let a = objects
            .open_shared("monogusa.Counter", "a", "", &[])
            .unwrap();
        let b = objects.open_shared("monogusa.Dict", "b", "", &[]).unwrap();
        let mut seen = Vec::new();
        let mut look = |found: &[&dyn std::any::Any]| {
            seen = found
                .iter()
                .map(|any| {
                    any.is::<crate::store::counter::CounterKindServer<
                        crate::store::counter::SharedCounter,
                    >>()
                })
                .collect();
            Ok(0)
        };
        objects.with_objects(&[a, b], &mut look).unwrap();
        assert_eq!(seen, [true, false], "each object as asked, in order");
        let mut ran = false;
        let mut never = |_: &[&dyn std::any::Any]| {
            ran = true;
            Ok(0)
        };
        let served = objects.with_objects(&[a, tally], &mut never).unwrap_err();
        assert!(
            served.message().contains("not a built-in shared object"),
            "{served}"
        );
        assert!(objects.with_objects(&[a, 999_999], &mut never).is_err());
        assert!(!ran, "nothing ran");
    }

    /// A generated service is callable through any serde format (JSON here), both its
    /// `&mut self` and `&self` methods; built-in objects refuse that path clearly.
    #[test]
    fn services_are_callable_through_any_serde_format() {
        let objects = serving_a_tally();
        let id = objects.open("tally", "Tally").unwrap();
        let call = |method: &str, args: &str| -> Result<String, RemoteError> {
            let mut json = serde_json::Deserializer::from_str(args);
            let mut erased = <dyn erased_serde::Deserializer>::erase(&mut json);
            let mut out = String::new();
            objects.call_erased(
                id,
                method,
                &mut erased,
                &mut |value| {
                    out = serde_json::to_string(value).expect("serializes");
                    Ok(())
                },
                &mut HeldRefs::default(),
                &Caller::detached(),
            )?;
            Ok(out)
        };
        assert_eq!(call("add", "[5]").unwrap(), "5");
        assert_eq!(call("add", "[2]").unwrap(), "7");
        // No arguments is `()`, which JSON spells `null`.
        assert_eq!(call("total", "null").unwrap(), "7");
        assert_eq!(
            call("add", r#"["x"]"#).unwrap_err().kind(),
            RemoteErrorKind::BadArguments
        );
        assert_eq!(
            call("nope", "[]").unwrap_err().kind(),
            RemoteErrorKind::UnknownMethod
        );
        // The built-in kinds are declared like services: reachable the same way.
        let counter = objects
            .open_shared("monogusa.Counter", "c", "", &[])
            .unwrap();
        let call_counter = |method: &str, args: &str| {
            let mut json = serde_json::Deserializer::from_str(args);
            let mut erased = <dyn erased_serde::Deserializer>::erase(&mut json);
            let mut out = String::new();
            objects.call_erased(
                counter,
                method,
                &mut erased,
                &mut |value| {
                    out = serde_json::to_string(value).unwrap();
                    Ok(())
                },
                &mut HeldRefs::default(),
                &Caller::detached(),
            )?;
            Ok::<_, RemoteError>(out)
        };
        assert_eq!(call_counter("add", "[3]").unwrap(), "3");
        assert_eq!(call_counter("get", "null").unwrap(), "3");
        let overflow = call_counter("add", &format!("[{}]", i64::MAX)).unwrap_err();
        assert_eq!(overflow.kind(), RemoteErrorKind::Misuse, "{overflow}");
    }

    /// Closing a connection once cloned and locked every shared object under the table lock
    /// (150 ms per close with a million objects). Now it visits what the connection touched.
    #[test]
    fn closing_costs_what_the_connection_touched() {
        let objects = Objects::new(
            ObjectsConfig::default(),
            StoreLimits::default(),
            10,
            Box::new(crate::store::backend::Memory),
        )
        .unwrap();
        let locks: Vec<u64> = (0..10_000)
            .map(|i| {
                objects
                    .open_shared("monogusa.Lock", &format!("lock{i}"), "", &[])
                    .unwrap()
            })
            .collect();
        let counter = objects
            .open_shared("monogusa.Counter", "c", "", &[])
            .unwrap();
        let mut held = HeldRefs::default();
        let mut out = Vec::new();
        objects
            .call(
                locks[5],
                b"acquire",
                &[0],
                &mut out,
                &mut held,
                &Caller::detached(),
            )
            .unwrap();
        objects
            .call(
                counter,
                b"add",
                &1i64.to_le_bytes(),
                &mut out,
                &mut held,
                &Caller::detached(),
            )
            .unwrap();
        assert_eq!(objects.connection_closed(0, &mut held), 1);
        // What it held is free again.
        let mut out = Vec::new();
        objects
            .call(
                locks[5],
                b"available",
                &[],
                &mut out,
                &mut HeldRefs::default(),
                &Caller::detached(),
            )
            .unwrap();
        assert_eq!(out, 1u64.to_le_bytes());
        // A connection that touched nothing costs nothing.
        assert_eq!(objects.connection_closed(1, &mut HeldRefs::default()), 0);
    }
}
