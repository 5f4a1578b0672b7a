//! `Counter`: a shared integer with atomic read-modify-write.

use parking_lot::Mutex;

use super::builtin::{builtin_methods, builtin_service};
use crate::client::Client;
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::stub::ObjectHandle;

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Counter";

/// The manager's side: the value behind its own lock (methods take `&self`, so the object's
/// lock is shared and this one serializes the changes).
#[derive(Default)]
pub(crate) struct SharedCounter {
    value: Mutex<i64>,
}

builtin_methods!(
    /// The methods of `SharedCounter`.
    CounterMethod {
        Get = "get",
        Add = "add",
        Set = "set",
    }
);

builtin_service!(SharedCounter, SERVICE, CounterMethod);

impl SharedCounter {
    fn dispatch(
        &self,
        method: CounterMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        _: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let mut value = self.value.lock();
        match method {
            CounterMethod::Get => encode_result(&*value, out),
            CounterMethod::Add => {
                let (delta,): (i64,) = decode_args(args, SERVICE, "add")?;
                *value = value.checked_add(delta).ok_or_else(|| {
                    RemoteError::new(
                        RemoteErrorKind::Misuse,
                        format!("{} + {delta} overflows i64", *value),
                    )
                })?;
                encode_result(&*value, out)
            }
            CounterMethod::Set => {
                let (new,): (i64,) = decode_args(args, SERVICE, "set")?;
                encode_result(&std::mem::replace(&mut *value, new), out)
            }
        }
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}

/// A shared integer in the manager, opened by name with [`Client::counter`]. Every change is
/// atomic: ten processes each adding 1 a thousand times end at exactly 10,000.
#[derive(Debug, Clone)]
pub struct Counter {
    handle: ObjectHandle,
}

impl Counter {
    pub(crate) fn open(client: &Client, name: &str) -> Result<Counter> {
        let handle = ObjectHandle::open_shared(client, SERVICE, name, "i64", &())?;
        Ok(Counter { handle })
    }

    /// The current value.
    pub fn get(&self) -> Result<i64> {
        self.handle.call("get", &())
    }

    /// Adds `delta` (which may be negative) and returns the new value, atomically. Overflow
    /// is an error and leaves the value unchanged.
    pub fn add(&self, delta: i64) -> Result<i64> {
        self.handle.call("add", &(delta,))
    }

    /// Sets the value and returns the previous one, atomically.
    pub fn set(&self, value: i64) -> Result<i64> {
        self.handle.call("set", &(value,))
    }
}
