//! The manager's side of `Counter`, a shared integer with atomic read-modify-write: the state,
//! its limits and its methods (the client's side is in `proxies`).

use parking_lot::Mutex;

use super::builtin::{builtin_methods, builtin_service};
use super::journal::Change;
use super::{Entries, Persist};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Counter";

/// The manager's side: the value behind its own lock (methods take `&self`, so the object's
/// lock is shared and this one serializes the changes). Kept as one entry: the value.
pub(crate) struct SharedCounter {
    value: Mutex<i64>,
    persist: Persist,
}

impl SharedCounter {
    /// A counter at 0, or at the value it had (restored).
    pub(crate) fn new(persist: Persist, entries: Entries) -> Result<Self, RemoteError> {
        let value = match entries.first() {
            Some((_, value)) => super::stored_u64(SERVICE, value)? as i64,
            None => 0,
        };
        Ok(SharedCounter {
            value: Mutex::new(value),
            persist,
        })
    }

    /// Records the value the counter now has.
    fn keep(&self, value: i64) -> super::backend::Written<'_> {
        self.persist
            .record(|object| [Change::put(object, [], value.to_le_bytes())])
    }
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
                let written = self.keep(*value);
                let result = *value;
                drop(value);
                written.wait()?;
                encode_result(&result, out)
            }
            CounterMethod::Set => {
                let (new,): (i64,) = decode_args(args, SERVICE, "set")?;
                let old = std::mem::replace(&mut *value, new);
                let written = self.keep(new);
                drop(value);
                written.wait()?;
                encode_result(&old, out)
            }
        }
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}
