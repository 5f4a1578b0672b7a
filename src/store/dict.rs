//! `Dict<K, V>`: a shared map with atomic single-key operations.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::budget::{Budget, Charged};
use super::builtin::{builtin_methods, builtin_service};
use super::{Bytes, type_tag};
use crate::client::Client;
use crate::codec;
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::stub::ObjectHandle;

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Dict";

/// The manager's side: encoded keys to encoded values, ordered by their encoding so listings
/// are deterministic.
pub(crate) struct SharedDict {
    state: Mutex<DictState>,
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
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        SharedDict {
            state: Mutex::new(DictState {
                map: BTreeMap::new(),
                charged: Charged::new(budget),
            }),
        }
    }
}

builtin_methods!(
    /// The methods of `SharedDict`.
    DictMethod {
        Insert = "insert",
        Get = "get",
        Remove = "remove",
        Contains = "contains",
        Len = "len",
        Keys = "keys",
        Items = "items",
        Clear = "clear",
        UpdateCounter = "update_counter",
        InsertIfAbsent = "insert_if_absent",
    }
);

builtin_service!(SharedDict, SERVICE, DictMethod);

impl SharedDict {
    fn dispatch(
        &self,
        method: DictMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        _: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let mut state = self.state.lock();
        match method {
            DictMethod::Insert => {
                let (key, value): (Bytes, Bytes) = decode_args(args, SERVICE, method.name())?;
                encode_result(&state.insert(key, value)?, out)
            }
            DictMethod::Get => {
                let (key,): (Bytes,) = decode_args(args, SERVICE, method.name())?;
                encode_result(&state.map.get(&key), out)
            }
            DictMethod::Remove => {
                let (key,): (Bytes,) = decode_args(args, SERVICE, method.name())?;
                encode_result(&state.remove(&key), out)
            }
            DictMethod::Contains => {
                let (key,): (Bytes,) = decode_args(args, SERVICE, method.name())?;
                encode_result(&state.map.contains_key(&key), out)
            }
            DictMethod::Len => encode_result(&(state.map.len() as u64), out),
            DictMethod::Keys => encode_result(&state.map.keys().collect::<Vec<_>>(), out),
            DictMethod::Items => encode_result(&state.map.iter().collect::<Vec<_>>(), out),
            DictMethod::Clear => {
                state.map.clear();
                state.charged.give_all();
                encode_result(&(), out)
            }
            DictMethod::UpdateCounter => {
                let (key, delta): (Bytes, i64) = decode_args(args, SERVICE, method.name())?;
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
                state.insert(key, Bytes(encoded))?;
                encode_result(&next, out)
            }
            DictMethod::InsertIfAbsent => {
                let (key, value): (Bytes, Bytes) = decode_args(args, SERVICE, method.name())?;
                let absent = !state.map.contains_key(&key);
                if absent {
                    state.insert(key, value)?;
                }
                encode_result(&absent, out)
            }
        }
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}

/// Ties a proxy to its key and value types without owning any (so it stays `Send` and
/// `Sync` whatever they are).
type Types<K, V> = fn(K, V) -> (K, V);

/// A shared map in the manager, opened by name with [`Client::dict`]. Keys and values are
/// stored encoded; each method is one atomic step, so `update_counter` and
/// `insert_if_absent` are safe where a `get` followed by an `insert` would race.
#[derive(Debug)]
pub struct Dict<K, V> {
    handle: ObjectHandle,
    _types: PhantomData<Types<K, V>>,
}

impl<K, V> Clone for Dict<K, V> {
    fn clone(&self) -> Self {
        Dict {
            handle: self.handle.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Dict<K, V> {
    pub(crate) fn open(client: &Client, name: &str, tag: Option<&str>) -> Result<Self> {
        let tag = tag.map_or_else(
            || format!("{}, {}", type_tag::<K>(), type_tag::<V>()),
            str::to_string,
        );
        let handle = ObjectHandle::open_shared(client, SERVICE, name, &tag, &())?;
        Ok(Dict {
            handle,
            _types: PhantomData,
        })
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>> {
        let old: Option<Bytes> = self
            .handle
            .call("insert", &(Bytes::encode(key)?, Bytes::encode(value)?))?;
        old.map(|b| b.decode()).transpose()
    }

    /// The value at `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let value: Option<Bytes> = self.handle.call("get", &(Bytes::encode(key)?,))?;
        value.map(|b| b.decode()).transpose()
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        let value: Option<Bytes> = self.handle.call("remove", &(Bytes::encode(key)?,))?;
        value.map(|b| b.decode()).transpose()
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> Result<bool> {
        self.handle.call("contains", &(Bytes::encode(key)?,))
    }

    /// How many entries there are.
    pub fn len(&self) -> Result<u64> {
        self.handle.call("len", &())
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// All keys (ordered by their encoding).
    pub fn keys(&self) -> Result<Vec<K>> {
        let keys: Vec<Bytes> = self.handle.call("keys", &())?;
        keys.iter().map(Bytes::decode).collect()
    }

    /// All entries (ordered by their key's encoding).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        let items: Vec<(Bytes, Bytes)> = self.handle.call("items", &())?;
        items
            .iter()
            .map(|(k, v)| Ok((k.decode()?, v.decode()?)))
            .collect()
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<()> {
        self.handle.call("clear", &())
    }

    /// Adds `delta` to the integer at `key` (missing counts as 0) and returns the new value,
    /// atomically. The values must be `i64`.
    pub fn update_counter(&self, key: &K, delta: i64) -> Result<i64> {
        self.handle
            .call("update_counter", &(Bytes::encode(key)?, delta))
    }

    /// Sets `key` to `value` only if `key` is absent; returns whether it did.
    pub fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool> {
        self.handle.call(
            "insert_if_absent",
            &(Bytes::encode(key)?, Bytes::encode(value)?),
        )
    }
}
