//! The manager's side of `Counter`, a shared integer with atomic read-modify-write: the state,
//! its limits and its methods (the client's side is in `proxies`).

use parking_lot::{Mutex, MutexGuard};

use super::journal::Change;
use super::{Entries, Persist};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::kinds::counter::CounterKind;
pub(crate) use crate::kinds::counter::{CounterKindServer, SERVICE};
use crate::service::Hooks;

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

/// A counter locked for a transaction (a task's ack with writes): changed in place, undone
/// if the transaction fails, its change recorded with the transaction's.
pub(crate) struct Held<'a> {
    counter: &'a SharedCounter,
    value: MutexGuard<'a, i64>,
    before: i64,
}

impl SharedCounter {
    /// Locks the counter for a transaction.
    pub(crate) fn hold(&self) -> Held<'_> {
        let value = self.value.lock();
        Held {
            counter: self,
            before: *value,
            value,
        }
    }
}

impl Held<'_> {
    /// Adds `delta`; an error (and no change) if it overflows.
    pub(crate) fn add(&mut self, delta: i64) -> Result<(), RemoteError> {
        *self.value = self.value.checked_add(delta).ok_or_else(|| {
            RemoteError::new(
                RemoteErrorKind::Misuse,
                format!("{} + {delta} overflows i64", *self.value),
            )
        })?;
        Ok(())
    }

    /// Back to what it held when locked.
    pub(crate) fn undo(&mut self) {
        *self.value = self.before;
    }

    /// Its change, for the transaction's one record.
    pub(crate) fn changes(&self, out: &mut Vec<Change>) {
        if *self.value != self.before {
            let value = *self.value;
            self.counter
                .persist
                .collect(out, |object| [Change::put(object, [], value.to_le_bytes())]);
        }
    }
}

impl Hooks for SharedCounter {}

impl CounterKind for SharedCounter {
    fn get(&self) -> Result<i64, RemoteError> {
        Ok(*self.value.lock())
    }

    fn add(&self, delta: i64) -> Result<i64, RemoteError> {
        let mut value = self.value.lock();
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
        Ok(result)
    }

    fn set(&self, new: i64) -> Result<i64, RemoteError> {
        let mut value = self.value.lock();
        let old = std::mem::replace(&mut *value, new);
        let written = self.keep(new);
        drop(value);
        written.wait()?;
        Ok(old)
    }
}
