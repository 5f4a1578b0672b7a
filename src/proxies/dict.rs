//! The client's side of `Dict<K, V>`, a shared map with atomic single-key operations: the typed
//! proxy over an `ObjectHandle`.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::type_tag;
use crate::client::Client;
use crate::error::Result;
use crate::kinds::dict::{DictKindClient, SERVICE};
use crate::store::Bytes;
use crate::stub::ObjectHandle;

/// Ties a proxy to its key and value types without owning any (so it stays `Send` and
/// `Sync` whatever they are).
type Types<K, V> = fn(K, V) -> (K, V);

/// A shared map in the manager, opened by name with [`Client::dict`]. Keys and values are
/// stored encoded; each method is one atomic step, so `update_counter` and
/// `insert_if_absent` are safe where a `get` followed by an `insert` would race.
#[derive(Debug)]
pub struct Dict<K, V> {
    pub(super) handle: super::Target,
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
    /// A dict held elsewhere (Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn from_target(handle: super::Target) -> Self {
        Dict {
            handle,
            _types: PhantomData,
        }
    }

    pub(crate) fn open(client: &Client, name: &str, tag: Option<&str>) -> Result<Self> {
        let tag = tag.map_or_else(
            || format!("{}, {}", type_tag::<K>(), type_tag::<V>()),
            str::to_string,
        );
        let handle = ObjectHandle::open_shared(client, SERVICE, name, &tag, &())?;
        Ok(Dict {
            handle: super::Target::Manager(handle),
            _types: PhantomData,
        })
    }

    /// The declaration's typed stub over this object's home.
    fn stub(&self) -> DictKindClient<&super::Target> {
        DictKindClient::from_handle(&self.handle)
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>> {
        let old = self
            .stub()
            .insert(Bytes::encode(key)?, Bytes::encode(value)?)?;
        old.map(|b| b.decode()).transpose()
    }

    /// The value at `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let value = self.stub().get(Bytes::encode(key)?)?;
        value.map(|b| b.decode()).transpose()
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        let value = self.stub().remove(Bytes::encode(key)?)?;
        value.map(|b| b.decode()).transpose()
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> Result<bool> {
        self.stub().contains(Bytes::encode(key)?)
    }

    /// How many entries there are.
    pub fn len(&self) -> Result<u64> {
        self.stub().len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// All keys (ordered by their encoding).
    pub fn keys(&self) -> Result<Vec<K>> {
        let keys = self.stub().keys()?;
        keys.iter().map(Bytes::decode).collect()
    }

    /// All entries (ordered by their key's encoding).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        let items = self.stub().items()?;
        items
            .iter()
            .map(|(k, v)| Ok((k.decode()?, v.decode()?)))
            .collect()
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<()> {
        self.stub().clear()
    }

    /// Adds `delta` to the integer at `key` (missing counts as 0) and returns the new value,
    /// atomically. The values must be `i64`.
    pub fn update_counter(&self, key: &K, delta: i64) -> Result<i64> {
        self.stub().update_counter(Bytes::encode(key)?, delta)
    }

    /// Sets `key` to `value` only if `key` is absent; returns whether it did.
    pub fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool> {
        self.stub()
            .insert_if_absent(Bytes::encode(key)?, Bytes::encode(value)?)
    }
}
