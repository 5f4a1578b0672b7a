//! The manager's side of `List<T>`, a shared vector: the state, its limits and its methods (the
//! client's side is in `proxies`).

use std::sync::Arc;

use parking_lot::Mutex;

use super::Bytes;
use super::backend::Written;
use super::budget::{Budget, Charged};
use super::builtin::{builtin_methods, builtin_service};
use super::journal::Change;
use super::{Entries, Persist};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.List";

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

builtin_methods!(
    /// The methods of `SharedList`.
    ListMethod {
        Push = "push",
        Pop = "pop",
        Get = "get",
        Set = "set",
        Len = "len",
        Range = "range",
        Clear = "clear",
        Insert = "insert",
        RemoveAt = "remove_at",
        Replace = "replace",
    }
);

builtin_service!(SharedList, SERVICE, ListMethod);

impl SharedList {
    fn dispatch(
        &self,
        method: ListMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        _: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let mut guard = self.state.lock();
        let ListState { items, charged } = &mut *guard;
        match method {
            ListMethod::Push => {
                let (item,): (Bytes,) = decode_args(args, SERVICE, method.name())?;
                charged.budget().check_len(items.len() + 1, "list")?;
                charged.take(&item)?;
                items.push(item);
                let len = items.len();
                let written = self.keep(items, len - 1);
                drop(guard);
                written.wait()?;
                encode_result(&(len as u64), out)
            }
            ListMethod::Pop => {
                let item = items.pop();
                let mut written = Written::nothing();
                if let Some(item) = &item {
                    charged.give(item);
                    written = self.keep(items, items.len());
                }
                drop(guard);
                written.wait()?;
                encode_result(&item, out)
            }
            ListMethod::Get => {
                let (at,): (u64,) = decode_args(args, SERVICE, method.name())?;
                encode_result(&usize::try_from(at).ok().and_then(|i| items.get(i)), out)
            }
            ListMethod::Set => {
                let (at, item): (u64, Bytes) = decode_args(args, SERVICE, method.name())?;
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
                encode_result(&old, out)
            }
            ListMethod::Len => encode_result(&(items.len() as u64), out),
            ListMethod::Range => {
                let (start, end): (u64, u64) = decode_args(args, SERVICE, method.name())?;
                let len = items.len();
                let end = usize::try_from(end).unwrap_or(len).min(len);
                let start = usize::try_from(start).unwrap_or(len).min(end);
                encode_result(&&items[start..end], out)
            }
            ListMethod::Insert => {
                // Python's `insert`: an index past the end appends.
                let (at, item): (u64, Bytes) = decode_args(args, SERVICE, method.name())?;
                charged.budget().check_len(items.len() + 1, "list")?;
                charged.take(&item)?;
                let at = usize::try_from(at).unwrap_or(usize::MAX).min(items.len());
                let old_len = items.len();
                items.insert(at, item);
                let written = self.keep_from(items, at, old_len);
                drop(guard);
                written.wait()?;
                encode_result(&(), out)
            }
            ListMethod::RemoveAt => {
                let (at,): (u64,) = decode_args(args, SERVICE, method.name())?;
                let old_len = items.len();
                let Some(at) = usize::try_from(at).ok().filter(|&i| i < old_len) else {
                    return encode_result(&None::<Bytes>, out);
                };
                let item = items.remove(at);
                charged.give(&item);
                let written = self.keep_from(items, at, old_len);
                drop(guard);
                written.wait()?;
                encode_result(&Some(item), out)
            }
            ListMethod::Replace => {
                // A whole new content in one step (a sort, a reversal, a removal by value),
                // if the list still holds `expected`: else nothing, and `false` (the caller
                // reads again and retries, as with a compare-and-swap).
                let (expected, new): (Vec<Bytes>, Vec<Bytes>) =
                    decode_args(args, SERVICE, method.name())?;
                if expected != *items {
                    return encode_result(&false, out);
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
                encode_result(&true, out)
            }
            ListMethod::Clear => {
                items.clear();
                charged.give_all();
                let written = self.persist.record(|object| [Change::Clear { object }]);
                drop(guard);
                written.wait()?;
                encode_result(&(), out)
            }
        }
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}
