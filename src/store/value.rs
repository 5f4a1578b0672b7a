//! The manager's side of `Value<T>`, one shared value with atomic swap and compare-and-swap:
//! the state, its limits and its methods (the client's side is in `proxies`).

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::Bytes;
use super::budget::{Budget, Charged};
use super::journal::Change;
use super::{Entries, Persist};
use crate::error::{RemoteError, Result};
use crate::kinds::value::ValueKind;
pub(crate) use crate::kinds::value::{SERVICE, ValueKindServer};
use crate::service::Hooks;

/// The manager's side: the encoded value, if one was ever set.
pub(crate) struct SharedValue {
    /// The value, and what it costs the store's budget.
    value: Mutex<(Option<Bytes>, Charged)>,
    /// Kept as one entry while set.
    persist: Persist,
}

impl SharedValue {
    pub(crate) fn new(
        budget: Arc<Budget>,
        persist: Persist,
        entries: Entries,
    ) -> Result<Self, RemoteError> {
        let mut charged = Charged::new(budget);
        let mut value = None;
        if let Some((_, stored)) = entries.into_iter().next() {
            let stored = Bytes(stored);
            charged.take(&stored)?;
            value = Some(stored);
        }
        Ok(SharedValue {
            value: Mutex::new((value, charged)),
            persist,
        })
    }
}

/// Replaces the value under the store's limits, returning the old one.
fn replace(
    value: &mut Option<Bytes>,
    charged: &mut Charged,
    new: Bytes,
) -> Result<Option<Bytes>, RemoteError> {
    charged.take(&new)?;
    let old = value.replace(new);
    if let Some(old) = &old {
        charged.give(old);
    }
    Ok(old)
}

/// A value locked for a transaction (a task's ack with writes): set in place, undone if the
/// transaction fails, its change recorded with the transaction's.
pub(crate) struct Held<'a> {
    value: &'a SharedValue,
    state: MutexGuard<'a, (Option<Bytes>, Charged)>,
    /// What it held before it was first set, once it was.
    before: Option<Option<Bytes>>,
}

impl SharedValue {
    /// Locks the value for a transaction.
    pub(crate) fn hold(&self) -> Held<'_> {
        Held {
            value: self,
            state: self.value.lock(),
            before: None,
        }
    }
}

impl Held<'_> {
    /// Sets it under the store's limits (refused whole).
    pub(crate) fn set(&mut self, new: Bytes) -> Result<(), RemoteError> {
        let (value, charged) = &mut *self.state;
        let old = replace(value, charged, new)?;
        self.before.get_or_insert(old);
        Ok(())
    }

    /// Back to what it held when locked (charged whatever the budget says now: it held its
    /// place before).
    pub(crate) fn undo(&mut self) {
        if let Some(before) = self.before.take() {
            let (value, charged) = &mut *self.state;
            if let Some(now) = value.take() {
                charged.give(&now);
            }
            if let Some(before) = &before {
                charged.force(before);
            }
            *value = before;
        }
    }

    /// Its change, for the transaction's one record.
    pub(crate) fn changes(&self, out: &mut Vec<Change>) {
        if self.before.is_some()
            && let Some(now) = &self.state.0
        {
            self.value
                .persist
                .collect(out, |object| [Change::put(object, [], now.0.clone())]);
        }
    }
}

impl Hooks for SharedValue {}

impl ValueKind for SharedValue {
    fn get(&self) -> Result<Option<Bytes>, RemoteError> {
        Ok(self.value.lock().0.clone())
    }

    fn swap(&self, new: Bytes) -> Result<Option<Bytes>, RemoteError> {
        let mut guard = self.value.lock();
        let (value, charged) = &mut *guard;
        let old = replace(value, charged, new)?;
        let written = self.keep(value.as_ref().expect("just set"));
        drop(guard);
        written.wait()?;
        Ok(old)
    }

    fn compare_and_swap(&self, expected: Option<Bytes>, new: Bytes) -> Result<bool, RemoteError> {
        let mut guard = self.value.lock();
        let (value, charged) = &mut *guard;
        let swapped = *value == expected;
        let mut written = super::backend::Written::nothing();
        if swapped {
            replace(value, charged, new)?;
            written = self.keep(value.as_ref().expect("just set"));
        }
        drop(guard);
        written.wait()?;
        Ok(swapped)
    }
}

impl SharedValue {
    /// Records the value the object is about to hold.
    fn keep(&self, new: &Bytes) -> super::backend::Written<'_> {
        self.persist
            .record(|object| [Change::put(object, [], new.0.clone())])
    }
}
