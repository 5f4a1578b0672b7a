//! The built-in shared objects, like Python's `SyncManager` offers: opened by name from any
//! client (created on first use), stored encoded so the manager needs no user types, with
//! typed proxies on the client side.
//!
//! Each is a [`Service`] whose methods all take `&self` and synchronize inside, so a call
//! blocked in one (a `get` on an empty queue) holds only that object's own condition, never a
//! lock another call needs.

mod bytes;
mod counter;
mod dict;
mod queue;

pub use counter::Counter;
pub use dict::Dict;
pub use queue::Queue;

pub(crate) use bytes::Bytes;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::decode_args;
use crate::client::Client;
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::Service;

/// How a client names an element type, to refuse reopening a `Dict<String, i64>` as a
/// `Dict<String, String>`. Rust's type names are stable within one build; programs built by
/// different compilers may spell a type differently, and will be told so.
fn type_tag<T>() -> String {
    std::any::type_name::<T>().to_string()
}

/// Makes the manager's object of `kind` from its creation arguments.
pub(crate) fn construct(kind: &str, args: &[u8]) -> Result<Box<dyn Service>, RemoteError> {
    match kind {
        counter::KIND => Ok(Box::new(counter::SharedCounter::default())),
        dict::KIND => Ok(Box::new(dict::SharedDict::default())),
        queue::KIND => {
            let (capacity,): (u64,) = decode_args(args, "Queue", "new")?;
            Ok(Box::new(queue::SharedQueue::new(capacity)))
        }
        other => Err(RemoteError::new(
            RemoteErrorKind::UnknownType,
            format!("no built-in shared object kind {other:?}"),
        )),
    }
}

/// The built-in shared objects, opened by name.
impl Client {
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
        Dict::open(self, name)
    }

    /// Opens the shared [`Queue`] `name`, creating it with room for `capacity` items (0:
    /// unbounded) if it does not exist; an existing queue keeps its capacity.
    pub fn queue<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<Queue<T>> {
        Queue::open(self, name, capacity)
    }
}
