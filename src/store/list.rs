//! The manager's side of `List<T>`, a shared vector: the state, its limits and its methods (the
//! client's side is in `proxies`).

use std::sync::Arc;

use parking_lot::Mutex;

use super::Bytes;
use super::backend::Written;
use super::budget::{Budget, Charged};
use super::journal::Change;
use super::{Entries, Persist};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::kinds::list::ListKind;
pub(crate) use crate::kinds::list::{ListKindServer, SERVICE};
use crate::service::Hooks;

pub(crate) struct SharedList {
    state: Mutex<ListState>,
    /// Kept as one entry per item, keyed by its index (big-endian, so keys sort as indices).
    persist: Persist,
}

struct ListState {
    items: Vec<Bytes>,
    /// What the items cost the store's budget.
    charged: Charged,
}

impl SharedList {
    pub(crate) fn new(
        budget: Arc<Budget>,
        persist: Persist,
        entries: Entries,
    ) -> Result<Self, RemoteError> {
        let mut state = ListState {
            items: Vec::with_capacity(entries.len()),
            charged: Charged::new(budget),
        };
        // Stored in index order (the keys sort so).
        for (_, item) in entries {
            let item = Bytes(item);
            state.charged.take(&item)?;
            state.items.push(item);
        }
        Ok(SharedList {
            state: Mutex::new(state),
            persist,
        })
    }

    /// Records every item from `from` on as it is now, and the removal of those past the
    /// end up to `old_len` (after an insert, a removal or a replacement).
    fn keep_from(&self, items: &[Bytes], from: usize, old_len: usize) -> Written<'_> {
        self.persist.record(|object| {
            (from..items.len().max(old_len)).map(move |index| {
                let key = (index as u64).to_be_bytes();
                match items.get(index) {
                    Some(item) => Change::put(object, key, item.0.clone()),
                    None => Change::delete(object, key),
                }
            })
        })
    }

    /// Records the item at `index` as it is now (removed if past the end).
    fn keep(&self, items: &[Bytes], index: usize) -> Written<'_> {
        let key = (index as u64).to_be_bytes();
        self.persist.record(|object| {
            [match items.get(index) {
                Some(item) => Change::put(object, key, item.0.clone()),
                None => Change::delete(object, key),
            }]
        })
    }
}

impl Hooks for SharedList {}

impl ListKind for SharedList {
    fn push(&self, item: Bytes) -> Result<u64, RemoteError> {
        let mut guard = self.state.lock();
        let ListState { items, charged } = &mut *guard;
        charged.budget().check_len(items.len() + 1, "list")?;
        charged.take(&item)?;
        items.push(item);
        let len = items.len();
        let written = self.keep(items, len - 1);
        drop(guard);
        written.wait()?;
        Ok(len as u64)
    }

    fn pop(&self) -> Result<Option<Bytes>, RemoteError> {
        let mut guard = self.state.lock();
        let ListState { items, charged } = &mut *guard;
        let item = items.pop();
        let mut written = Written::nothing();
        if let Some(item) = &item {
            charged.give(item);
            written = self.keep(items, items.len());
        }
        drop(guard);
        written.wait()?;
        Ok(item)
    }

    fn get(&self, at: u64) -> Option<Bytes> {
        let guard = self.state.lock();
        usize::try_from(at)
            .ok()
            .and_then(|i| guard.items.get(i))
            .cloned()
    }

    fn set(&self, at: u64, item: Bytes) -> Result<Bytes, RemoteError> {
        let mut guard = self.state.lock();
        let ListState { items, charged } = &mut *guard;
        let len = items.len();
        let slot = usize::try_from(at)
            .ok()
            .and_then(|i| items.get_mut(i))
            .ok_or_else(|| {
                RemoteError::new(
                    RemoteErrorKind::Misuse,
                    format!("index {at} out of range for a list of {len}"),
                )
            })?;
        charged.take(&item)?;
        let old = std::mem::replace(slot, item);
        charged.give(&old);
        let written = self.keep(items, at as usize);
        drop(guard);
        written.wait()?;
        Ok(old)
    }

    fn len(&self) -> u64 {
        self.state.lock().items.len() as u64
    }

    fn range(&self, start: u64, end: u64) -> Vec<Bytes> {
        let guard = self.state.lock();
        let len = guard.items.len();
        let end = usize::try_from(end).unwrap_or(len).min(len);
        let start = usize::try_from(start).unwrap_or(len).min(end);
        guard.items[start..end].to_vec()
    }

    fn clear(&self) -> Result<(), RemoteError> {
        let mut guard = self.state.lock();
        guard.items.clear();
        guard.charged.give_all();
        let written = self.persist.record(|object| [Change::Clear { object }]);
        drop(guard);
        written.wait()?;
        Ok(())
    }

    fn insert(&self, at: u64, item: Bytes) -> Result<(), RemoteError> {
        let mut guard = self.state.lock();
        let ListState { items, charged } = &mut *guard;
        charged.budget().check_len(items.len() + 1, "list")?;
        charged.take(&item)?;
        let at = usize::try_from(at).unwrap_or(usize::MAX).min(items.len());
        let old_len = items.len();
        items.insert(at, item);
        let written = self.keep_from(items, at, old_len);
        drop(guard);
        written.wait()?;
        Ok(())
    }

    fn remove_at(&self, at: u64) -> Result<Option<Bytes>, RemoteError> {
        let mut guard = self.state.lock();
        let ListState { items, charged } = &mut *guard;
        let old_len = items.len();
        let Some(at) = usize::try_from(at).ok().filter(|&i| i < old_len) else {
            return Ok(None);
        };
        let item = items.remove(at);
        charged.give(&item);
        let written = self.keep_from(items, at, old_len);
        drop(guard);
        written.wait()?;
        Ok(Some(item))
    }

    fn replace(&self, expected: Vec<Bytes>, new: Vec<Bytes>) -> Result<bool, RemoteError> {
        // A whole new content in one step (a sort, a reversal, a removal by value), if the
        // list still holds `expected`: else nothing, and `false` (the caller reads again and
        // retries, as with a compare-and-swap).
        let mut guard = self.state.lock();
        let ListState { items, charged } = &mut *guard;
        if expected != *items {
            return Ok(false);
        }
        charged.budget().check_len(new.len(), "list")?;
        let old_len = items.len();
        let old = std::mem::take(items);
        charged.give_all();
        for item in &new {
            if let Err(e) = charged.take(item) {
                charged.give_all();
                for item in &old {
                    charged.take(item)?;
                }
                *items = old;
                return Err(e);
            }
        }
        *items = new;
        let written = self.keep_from(items, 0, old_len);
        drop(guard);
        written.wait()?;
        Ok(true)
    }
}
