//! The client's side of the built-in shared objects: typed proxies (`Counter`, `Dict<K, V>`,
//! `Queue<T>`, ...) over an `ObjectHandle`, opened by name from a [`Client`]. The manager's
//! side lives in `store`; the two share only the kinds' names and the encoded values.

mod counter;
mod dict;
mod list;
mod lock;
mod queue;
mod sends;
mod shape;
mod signal;
mod tasks;
mod value;

pub use counter::Counter;
pub use dict::Dict;
pub use list::List;
pub use lock::{Guard, Lock, Semaphore};
pub use queue::Queue;
pub use sends::{
    CounterSend, DictSend, Encoded, EncodedItem, EventSend, ListSend, QueueSend, ValueSend,
};
pub use signal::{Barrier, Event};
#[cfg(any(feature = "redis", feature = "sqs"))]
pub(crate) use tasks::join_by_polling;
pub use tasks::{
    After, DeadLetter, GraphTask, Group, Lease, PushOptions, Retry, Task, TaskGraph, TaskId,
    TaskQueue, TaskQueueSettings, TaskResult, TaskStats, TaskStatus, Transaction,
};
#[cfg(any(feature = "redis", feature = "sqs"))]
pub(crate) use tasks::{LeaseOps, TaskBackend, Write};
pub use value::Value;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::Result;

/// How a client names an element type, to refuse reopening a `Dict<String, i64>` as a
/// `Dict<String, String>`: its shape, whatever module defines it (see `shape`).
pub(crate) fn type_tag<T: DeserializeOwned>() -> String {
    #[cfg(any(feature = "python", feature = "msgpack"))]
    if std::any::type_name::<T>() == std::any::type_name::<crate::Dynamic>() {
        // What other languages' clients put: the one tag Rust, Python and msgpack share.
        return DYNAMIC_TAG.to_string();
    }
    shape::tag_of::<T>()
}

/// The element tag of `Dynamic` values, which clients in other languages put and take.
#[cfg(any(feature = "python", feature = "msgpack"))]
pub(crate) const DYNAMIC_TAG: &str = "dynamic";

/// Where a counter, value or dict lives: the manager (an object handle) or another store,
/// answering the same methods with the same encoded arguments and results.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Manager(crate::stub::ObjectHandle),
    #[cfg(feature = "redis")]
    Redis(std::sync::Arc<crate::backends::redis::RedisObject>),
}

impl Target {
    /// Sends a pipelined call (managers only: Redis has its own pipelines, not ours).
    pub(crate) fn send<R, W: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
        finish: fn(W) -> Result<R>,
    ) -> Result<crate::Pending<R, W>> {
        match self {
            Target::Manager(handle) => handle.send_finished(method, args, finish),
            #[cfg(feature = "redis")]
            Target::Redis(_) => Err(crate::Error::Config(
                "pipelined calls (send) are for a manager's objects, not Redis's".into(),
            )),
        }
    }

    #[inline]
    pub(crate) fn call<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R> {
        match self {
            Target::Manager(handle) => handle.call(method, args),
            #[cfg(feature = "redis")]
            Target::Redis(object) => object.call(method, args),
        }
    }
}

/// The generated stubs of the kinds' declarations call through a `Target`: a manager's
/// object or Redis's, by the same method names.
impl crate::stub::Calls for Target {
    #[inline]
    fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R> {
        Target::call(self, method, args)
    }

    fn send<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<crate::Pending<R>> {
        Target::send(self, method, args, Ok)
    }
}

/// Milliseconds for a timeout argument on the wire.
fn millis(timeout: std::time::Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

/// A shared object's name with options, made by [`Client::named`].
///
/// The element types of a shared dict, list, queue or value are checked when the name is
/// reopened, by a tag: by default the types' *shape* (struct, field and variant names and the
/// primitives they hold, whatever module defines them), so separately built programs that each
/// define the same `struct Task` share a `Queue<Task>`, and a `Task` of another shape is
/// refused. [`Named::type_tag`] replaces it with a tag of your own: programs that agree on it
/// share the object, and the check becomes yours.
#[derive(Debug, Clone, Copy)]
#[must_use = "a name opens nothing until one of its methods is called"]
pub struct Named<'a> {
    client: &'a Client,
    name: &'a str,
    tag: Option<&'a str>,
}

impl<'a> Named<'a> {
    /// Checks the element types by `tag` instead of their shape.
    pub fn type_tag(mut self, tag: &'a str) -> Self {
        self.tag = Some(tag);
        self
    }

    /// Opens (or creates) the shared [`Dict`].
    pub fn dict<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(
        self,
    ) -> Result<Dict<K, V>> {
        Dict::open(self.client, self.name, self.tag)
    }

    /// Opens (or creates, with room for `capacity` items; 0: as many as the manager allows)
    /// the shared [`Queue`].
    pub fn queue<T: Serialize + DeserializeOwned>(self, capacity: usize) -> Result<Queue<T>> {
        Queue::open(self.client, self.name, capacity, self.tag)
    }

    /// Opens (or creates) the shared [`List`].
    pub fn list<T: Serialize + DeserializeOwned>(self) -> Result<List<T>> {
        List::open(self.client, self.name, self.tag)
    }

    /// Opens (or creates, with `settings`) the [`TaskQueue`]. An existing queue keeps the
    /// settings it was created with.
    pub fn tasks<T: Serialize + DeserializeOwned>(
        self,
        settings: TaskQueueSettings,
    ) -> Result<TaskQueue<T>> {
        TaskQueue::open(self.client, self.name, settings, self.tag)
    }

    /// Opens (or creates) the shared [`Value`].
    pub fn value<T: Serialize + DeserializeOwned>(self) -> Result<Value<T>> {
        Value::open(self.client, self.name, self.tag)
    }
}

/// The built-in shared objects, opened by name.
impl Client {
    /// Names a shared object, to open it with options: [`Named::type_tag`] sets the tag its
    /// element types are checked by.
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
    /// // Programs that agree on "task v1" share the queue, whatever their `Task` looks like.
    /// let tasks = client.named("tasks").type_tag("task v1").queue::<String>(0)?;
    /// # Ok(()) }
    /// ```
    pub fn named<'a>(&'a self, name: &'a str) -> Named<'a> {
        Named {
            client: self,
            name,
            tag: None,
        }
    }

    /// Opens the shared [`Counter`] `name`, creating it (at 0) if it does not exist.
    pub fn counter(&self, name: &str) -> Result<Counter> {
        Counter::open(self, name)
    }

    /// Opens the shared [`Dict`] `name`, creating it empty if it does not exist. Opening a
    /// name that holds another kind of object, or a dict of other key or value types, fails
    /// with a remote error of kind `WrongService`.
    pub fn dict<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Dict<K, V>> {
        Dict::open(self, name, None)
    }

    /// Opens the shared [`Queue`] `name`, creating it with room for `capacity` items (0:
    /// unbounded) if it does not exist; an existing queue keeps its capacity.
    pub fn queue<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<Queue<T>> {
        Queue::open(self, name, capacity, None)
    }

    /// Opens the [`TaskQueue`] `name`, creating it with the default settings (a 30 s lease,
    /// 5 attempts, backoff from 1 s) if it does not exist; see [`Named::tasks`] for others.
    pub fn tasks<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<TaskQueue<T>> {
        TaskQueue::open(self, name, TaskQueueSettings::default(), None)
    }

    /// Opens the shared [`Value`] `name`, creating it unset if it does not exist.
    pub fn value<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<Value<T>> {
        Value::open(self, name, None)
    }

    /// Opens the shared [`List`] `name`, creating it empty if it does not exist.
    pub fn list<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<List<T>> {
        List::open(self, name, None)
    }

    /// Opens the shared [`Lock`] `name`, creating it free if it does not exist.
    pub fn lock(&self, name: &str) -> Result<Lock> {
        Lock::open(self, name)
    }

    /// Opens the shared [`Semaphore`] `name`, creating it with `permits` if it does not exist.
    pub fn semaphore(&self, name: &str, permits: u64) -> Result<Semaphore> {
        Semaphore::open(self, name, permits)
    }

    /// Opens the shared [`Event`] `name`, creating it cleared if it does not exist.
    pub fn event(&self, name: &str) -> Result<Event> {
        Event::open(self, name)
    }

    /// Opens the shared [`Barrier`] `name` for `parties`, creating it if it does not exist.
    pub fn barrier(&self, name: &str, parties: u64) -> Result<Barrier> {
        Barrier::open(self, name, parties)
    }
}
