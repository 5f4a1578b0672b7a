//! Service objects: what `#[service]` generates code against, and the descriptions a manager
//! gives of what it serves.
//!
//! A service is a trait marked `#[monogusa::service]`. For `trait Counter`, the macro
//! generates `CounterClient` (the typed stub) and `CounterServer<T>` (wraps any
//! `T: Counter` so a manager can serve it); `CounterServer` implements [`Service`].

use serde::{Deserialize, Serialize};

use crate::error::{RemoteError, RemoteErrorKind};
use crate::wire::codec;

/// Who is calling a method: passed explicitly to every call, whatever listener it came
/// through, so objects that keep something per caller (the built-in lock and semaphore count
/// permits per connection) and calls that wait (a queue's `get`) know whom they serve and can
/// tell when that caller has gone.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    connection: u64,
    /// The caller's socket, to notice a hang-up; `None` for in-process calls.
    stream: Option<&'a crate::transport::Stream>,
    /// The manager's other objects, for a call that reaches them (a task's transactional
    /// ack); `None` where a call cannot.
    objects: Option<&'a dyn Neighbours>,
}

/// What runs with other objects held ([`Neighbours::with_objects`]): an ack's status.
pub(crate) type WithObjects<'f> = dyn FnMut(&[&dyn std::any::Any]) -> Result<u8, RemoteError> + 'f;

/// How a call reaches other objects of its manager by id.
pub(crate) trait Neighbours {
    /// Runs `f` with the objects `ids` (each as `Any`, in that order), held for the call; an
    /// error, and `f` not run, if one of them is not known.
    fn with_objects(&self, ids: &[u64], f: &mut WithObjects<'_>) -> Result<u8, RemoteError>;
}

impl<'a> Caller<'a> {
    pub(crate) fn new(connection: u64, stream: &'a crate::transport::Stream) -> Self {
        Caller {
            connection,
            stream: Some(stream),
            objects: None,
        }
    }

    /// The same caller, able to reach the manager's other objects.
    pub(crate) fn reaching(mut self, objects: &'a dyn Neighbours) -> Self {
        self.objects = Some(objects);
        self
    }

    /// The manager's other objects, if this call can reach them.
    pub(crate) fn objects(&self) -> Option<&'a dyn Neighbours> {
        self.objects
    }

    /// A caller without a connection (in-process calls, tests): connection 0, never gone.
    #[doc(hidden)]
    pub fn detached() -> Caller<'static> {
        Caller {
            connection: 0,
            stream: None,
            objects: None,
        }
    }

    /// The connection the call came on: unique for the manager's run, 0 for none.
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// Whether the caller has closed or reset its connection: the call's result can no
    /// longer reach it. One non-blocking syscall.
    pub fn is_gone(&self) -> bool {
        self.stream.is_some_and(|s| s.peer_gone())
    }
}

impl std::fmt::Debug for Caller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

pub use crate::server::ErasedReply;

fn not_through_serde(service: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::UnknownMethod,
        format!("{service} cannot be called through another wire format"),
    )
}

/// Decodes a method's argument tuple from any serde format, naming the method in the error.
pub fn decode_erased_args<'de, T: Deserialize<'de>>(
    args: &mut dyn erased_serde::Deserializer<'de>,
    service: &str,
    method: &str,
) -> Result<T, RemoteError> {
    erased_serde::deserialize(args).map_err(|e| {
        RemoteError::new(
            RemoteErrorKind::BadArguments,
            format!(
                "{service}::{method} expected {}: {e}",
                std::any::type_name::<T>()
            ),
        )
    })
}

/// Decodes a method's argument tuple, naming the method in the error. (Generated dispatch
/// and the built-in objects call it; re-exported for macro output.)
#[inline]
pub fn decode_args<'a, T: Deserialize<'a>>(
    args: &'a [u8],
    service: &str,
    method: &str,
) -> Result<T, RemoteError> {
    codec::decode_arguments(args, &format_args!("{service}::{method}"))
}

/// Encodes a method's result.
#[inline]
pub fn encode_result<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), RemoteError> {
    codec::encode_result(value, out)
}

/// The error for a method index that the dispatcher does not have (cannot happen with
/// generated code; reported rather than panicking).
pub fn no_such_method(service: &str, index: usize) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::UnknownMethod,
        format!("{service} has no method at index {index} with that receiver"),
    )
}

/// One method of a service, as the manager dispatches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The method's name.
    pub name: &'static str,
    /// True for `&mut self` methods: they run alone on their object; `&self` methods may run
    /// together.
    pub mutates: bool,
}

/// A service's name (the trait's name) and its methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDescriptor {
    /// The trait's name, e.g. `"Counter"`.
    pub name: &'static str,
    /// Its methods, in declaration order.
    pub methods: &'static [MethodInfo],
}

/// An object a manager can serve. Implemented by the `XServer<T>` types that
/// `#[monogusa::service]` generates; there is no need to implement it by hand.
pub trait Service: Send + Sync + 'static {
    /// The service this type implements.
    fn descriptor() -> &'static ServiceDescriptor
    where
        Self: Sized;

    /// The service this object implements (for objects behind `dyn Service`).
    fn service(&self) -> &'static ServiceDescriptor;

    /// Runs the `&self` method at `index` of the descriptor's methods for `caller`.
    #[doc(hidden)]
    fn call_shared(
        &self,
        index: usize,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError>;

    /// Runs the `&mut self` method at `index` of the descriptor's methods.
    #[doc(hidden)]
    fn call_exclusive(
        &mut self,
        index: usize,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError>;

    /// Runs the `&self` method at `index` with its arguments from any serde format and its
    /// result to `reply`: the serde boundary other wire formats call through. Generated
    /// services implement it; the default refuses.
    #[doc(hidden)]
    fn call_shared_erased(
        &self,
        index: usize,
        args: &mut dyn erased_serde::Deserializer<'_>,
        reply: ErasedReply<'_>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let _ = (index, args, reply, caller);
        Err(not_through_serde(self.service().name))
    }

    /// Like [`Service::call_shared_erased`], for the `&mut self` method at `index`.
    #[doc(hidden)]
    fn call_exclusive_erased(
        &mut self,
        index: usize,
        args: &mut dyn erased_serde::Deserializer<'_>,
        reply: ErasedReply<'_>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let _ = (index, args, reply, caller);
        Err(not_through_serde(self.service().name))
    }

    /// The object as `Any`, so the manager can reach a built-in kind's implementation behind
    /// `dyn Service` (a task's transactional ack writes to counters and dicts). Generated
    /// services give themselves.
    #[doc(hidden)]
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The manager is shutting down: wake every call blocked in this object. The built-in
    /// shared objects use it; generated services have nothing to wake.
    #[doc(hidden)]
    fn shutdown(&self) {}

    /// Whether this object keeps something per calling connection (the built-in lock and
    /// semaphore), so it must hear of each caller's [`Service::connection_closed`]. Only
    /// those connections that called it are reported to it.
    #[doc(hidden)]
    fn tracks_connections(&self) -> bool {
        false
    }

    /// Connection `connection` closed: release what it held. The built-in lock and semaphore
    /// use it; generated services hold nothing per connection.
    #[doc(hidden)]
    fn connection_closed(&self, connection: u64) {
        let _ = connection;
    }
}

/// What an object hears from its manager besides calls, for services declared with
/// `#[service(hooks)]`: the generated server forwards these to the implementation. Every
/// method has a default that does nothing.
pub trait Hooks {
    /// The manager is shutting down: wake every call blocked in this object (they should
    /// fail with a `ShuttingDown` error).
    fn shutdown(&self) {}

    /// Whether this object keeps something per calling connection, so it must hear of each
    /// caller's [`Hooks::connection_closed`]. Only connections that called it are reported.
    fn tracks_connections(&self) -> bool {
        false
    }

    /// Connection `connection` (see [`Caller::connection`]) closed: release what it held.
    fn connection_closed(&self, connection: u64) {
        let _ = connection;
    }
}

/// A reference to an object in a manager that can travel as a serde value (to another
/// process, say) and be reopened there with the stub's `from_ref`. Holding an `ObjectRef`
/// does not keep the object alive: keep a stub until the receiver has reopened it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's id in its manager.
    pub id: u64,
    /// The service it implements.
    pub service: String,
}

/// What a manager offers, from [`Client::describe`](crate::Client::describe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Description {
    /// Registered function names, sorted.
    pub functions: Vec<String>,
    /// Objects alive in the manager, by id: at most one page of them (see
    /// [`Client::describe_objects`](crate::Client::describe_objects) for the rest).
    pub objects: Vec<ObjectDescription>,
    /// How many objects are alive in all, listed or not.
    pub objects_total: u64,
    /// Types clients may create objects of, by type id.
    pub types: Vec<TypeDescription>,
}

/// One object alive in a manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ObjectDescription {
    /// Its id.
    pub id: u64,
    /// The name it is served under, for objects the manager was built with.
    pub name: Option<String>,
    /// The type id it was created from, for objects created by clients.
    pub type_id: Option<String>,
    /// The service it implements.
    pub service: String,
    /// Its methods.
    pub methods: Vec<MethodDescription>,
    /// How many client references keep it alive (named objects live regardless).
    pub references: u64,
    /// For a built-in shared object, the element types it was made with (what a typed
    /// client opens it with: `Named::type_tag`).
    pub type_tag: Option<String>,
}

/// Names of the manager's own bookkeeping objects (mailboxes, supervisor groups, the worker
/// registry, the log buffer, objects Python clients made) begin with this: `monogusa stat`
/// and the dashboard hide them unless asked.
pub const INTERNAL_PREFIX: &str = "monogusa.";

impl ObjectDescription {
    /// Whether it is one of the manager's own bookkeeping objects ([`INTERNAL_PREFIX`]).
    pub fn is_internal(&self) -> bool {
        self.name
            .as_deref()
            .is_some_and(|name| name.starts_with(INTERNAL_PREFIX))
    }
}

/// One type clients may create objects of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TypeDescription {
    /// The type id clients name.
    pub type_id: String,
    /// The service its objects implement.
    pub service: String,
    /// Their methods.
    pub methods: Vec<MethodDescription>,
}

/// One method, as described to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MethodDescription {
    /// The method's name.
    pub name: String,
    /// True for `&mut self` methods.
    pub mutates: bool,
}

impl MethodDescription {
    pub(crate) fn of(methods: &[MethodInfo]) -> Vec<MethodDescription> {
        methods
            .iter()
            .map(|m| MethodDescription {
                name: m.name.to_string(),
                mutates: m.mutates,
            })
            .collect()
    }
}
