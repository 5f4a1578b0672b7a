//! The client's side of `Counter`, a shared integer with atomic read-modify-write: the typed
//! proxy over an `ObjectHandle`.

use crate::client::Client;
use crate::error::Result;
use crate::kinds::counter::{CounterKindClient, SERVICE};
use crate::stub::ObjectHandle;

/// A shared integer in the manager, opened by name with [`Client::counter`]. Every change is
/// atomic: ten processes each adding 1 a thousand times end at exactly 10,000.
#[derive(Debug, Clone)]
pub struct Counter {
    pub(super) handle: super::Target,
}

impl Counter {
    /// A counter held elsewhere (Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn from_target(handle: super::Target) -> Counter {
        Counter { handle }
    }

    pub(crate) fn open(client: &Client, name: &str) -> Result<Counter> {
        let handle = ObjectHandle::open_shared(client, SERVICE, name, "i64", &())?;
        Ok(Counter {
            handle: super::Target::Manager(handle),
        })
    }

    /// The declaration's typed stub over this counter's home.
    pub(super) fn stub(&self) -> CounterKindClient<&super::Target> {
        CounterKindClient::from_handle(&self.handle)
    }

    /// The current value.
    pub fn get(&self) -> Result<i64> {
        self.stub().get()
    }

    /// Adds `delta` (which may be negative) and returns the new value, atomically. Overflow
    /// is an error and leaves the value unchanged.
    pub fn add(&self, delta: i64) -> Result<i64> {
        self.stub().add(delta)
    }

    /// Sets the value and returns the previous one, atomically.
    pub fn set(&self, value: i64) -> Result<i64> {
        self.stub().set(value)
    }
}
