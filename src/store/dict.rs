//! The manager's side of `Dict<K, V>`, a shared map with atomic single-key operations: the
//! state, its limits and its methods (the client's side is in `proxies`).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::Bytes;
use super::backend::Written;
use super::budget::{Budget, Charged};
use super::journal::Change;
use super::{Entries, Persist};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::kinds::dict::DictKind;
pub(crate) use crate::kinds::dict::{DictKindServer, SERVICE};
use crate::service::Hooks;
use crate::wire::codec;

/// The manager's side: encoded keys to encoded values, ordered by their encoding so listings
/// are deterministic.
pub(crate) struct SharedDict {
    state: Mutex<DictState>,
    /// Kept as one entry per key.
    persist: Persist,
}

struct DictState {
    map: BTreeMap<Bytes, Bytes>,
    /// What the keys and values cost the store's budget.
    charged: Charged,
}

impl DictState {
    /// Inserts under the store's limits: refused whole, or done whole.
    fn insert(&mut self, key: Bytes, value: Bytes) -> Result<Option<Bytes>, RemoteError> {
        if self.map.contains_key(&key) {
            self.charged.take(&value)?;
        } else {
            self.charged
                .budget()
                .check_len(self.map.len() + 1, "dict")?;
            self.charged.take_pair(&key, &value)?;
        }
        let old = self.map.insert(key, value);
        if let Some(old) = &old {
            self.charged.give(old);
        }
        Ok(old)
    }

    fn remove(&mut self, key: &Bytes) -> Option<Bytes> {
        let (key, value) = self.map.remove_entry(key)?;
        self.charged.give(&key);
        self.charged.give(&value);
        Some(value)
    }
}

impl SharedDict {
    pub(crate) fn new(
        budget: Arc<Budget>,
        persist: Persist,
        entries: Entries,
    ) -> Result<Self, RemoteError> {
        let mut state = DictState {
            map: BTreeMap::new(),
            charged: Charged::new(budget),
        };
        for (key, value) in entries {
            state.insert(Bytes(key), Bytes(value))?;
        }
        Ok(SharedDict {
            state: Mutex::new(state),
            persist,
        })
    }

    /// Records `key`'s entry as it is now in `state` (removed if absent).
    fn keep(&self, state: &DictState, key: &Bytes) -> Written<'_> {
        self.persist.record(|object| {
            [match state.map.get(key) {
                Some(value) => Change::put(object, key.0.clone(), value.0.clone()),
                None => Change::delete(object, key.0.clone()),
            }]
        })
    }
}

/// A dict locked for a transaction (a task's ack with writes): changed in place, each key
/// as it was kept so the change can be undone, the keys' changes recorded with the
/// transaction's.
pub(crate) struct Held<'a> {
    dict: &'a SharedDict,
    state: MutexGuard<'a, DictState>,
    /// Each key touched, with what it held before the first touch.
    before: BTreeMap<Bytes, Option<Bytes>>,
}

impl SharedDict {
    /// Locks the dict for a transaction.
    pub(crate) fn hold(&self) -> Held<'_> {
        Held {
            dict: self,
            state: self.state.lock(),
            before: BTreeMap::new(),
        }
    }
}

impl Held<'_> {
    fn touch(&mut self, key: &Bytes) {
        if !self.before.contains_key(key) {
            let old = self.state.map.get(key).cloned();
            self.before.insert(key.clone(), old);
        }
    }

    /// Inserts under the store's limits (refused whole).
    pub(crate) fn insert(&mut self, key: Bytes, value: Bytes) -> Result<(), RemoteError> {
        self.touch(&key);
        self.state.insert(key, value).map(drop)
    }

    /// Removes `key` if present.
    pub(crate) fn remove(&mut self, key: &Bytes) {
        self.touch(key);
        self.state.remove(key);
    }

    /// Every key back to what it held when first touched (its place in the budget was held
    /// before, so it is charged whatever the budget says now).
    pub(crate) fn undo(&mut self) {
        for (key, old) in std::mem::take(&mut self.before) {
            self.state.remove(&key);
            if let Some(old) = old {
                self.state.charged.force(&key);
                self.state.charged.force(&old);
                self.state.map.insert(key, old);
            }
        }
    }

    /// The touched keys' changes, for the transaction's one record.
    pub(crate) fn changes(&self, out: &mut Vec<Change>) {
        let map = &self.state.map;
        self.dict.persist.collect(out, |object| {
            self.before.keys().map(move |key| match map.get(key) {
                Some(value) => Change::put(object, key.0.clone(), value.0.clone()),
                None => Change::delete(object, key.0.clone()),
            })
        });
    }
}

impl Hooks for SharedDict {}

impl DictKind for SharedDict {
    fn insert(&self, key: Bytes, value: Bytes) -> Result<Option<Bytes>, RemoteError> {
        let mut state = self.state.lock();
        let old = state.insert(key.clone(), value)?;
        let written = self.keep(&state, &key);
        drop(state);
        written.wait()?;
        Ok(old)
    }

    fn get(&self, key: Bytes) -> Result<Option<Bytes>, RemoteError> {
        Ok(self.state.lock().map.get(&key).cloned())
    }

    fn remove(&self, key: Bytes) -> Result<Option<Bytes>, RemoteError> {
        let mut state = self.state.lock();
        let old = state.remove(&key);
        let written = match old {
            Some(_) => self.keep(&state, &key),
            None => Written::nothing(),
        };
        drop(state);
        written.wait()?;
        Ok(old)
    }

    fn contains(&self, key: Bytes) -> Result<bool, RemoteError> {
        Ok(self.state.lock().map.contains_key(&key))
    }

    fn len(&self) -> Result<u64, RemoteError> {
        Ok(self.state.lock().map.len() as u64)
    }

    fn keys(&self) -> Result<Vec<Bytes>, RemoteError> {
        Ok(self.state.lock().map.keys().cloned().collect())
    }

    fn items(&self) -> Result<Vec<(Bytes, Bytes)>, RemoteError> {
        let state = self.state.lock();
        Ok(state
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn clear(&self) -> Result<(), RemoteError> {
        let mut state = self.state.lock();
        state.map.clear();
        state.charged.give_all();
        let written = self.persist.record(|object| [Change::Clear { object }]);
        drop(state);
        written.wait()?;
        Ok(())
    }

    fn update_counter(&self, key: Bytes, delta: i64) -> Result<i64, RemoteError> {
        let mut state = self.state.lock();
        let current = match state.map.get(&key) {
            Some(value) => codec::decode_exact::<i64>(&value.0).map_err(|_| {
                RemoteError::new(
                    RemoteErrorKind::Misuse,
                    "update_counter needs an i64 value at that key",
                )
            })?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or_else(|| {
            RemoteError::new(
                RemoteErrorKind::Misuse,
                format!("{current} + {delta} overflows i64"),
            )
        })?;
        let mut encoded = Vec::with_capacity(8);
        codec::encode_into(&next, &mut encoded).expect("an i64 encodes");
        state.insert(key.clone(), Bytes(encoded))?;
        let written = self.keep(&state, &key);
        drop(state);
        written.wait()?;
        Ok(next)
    }

    fn insert_if_absent(&self, key: Bytes, value: Bytes) -> Result<bool, RemoteError> {
        let mut state = self.state.lock();
        let absent = !state.map.contains_key(&key);
        let mut written = Written::nothing();
        if absent {
            state.insert(key.clone(), value)?;
            written = self.keep(&state, &key);
        }
        drop(state);
        written.wait()?;
        Ok(absent)
    }
}
