//! The client's side of `List<T>`, a shared vector: the typed proxy over an `ObjectHandle`.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::type_tag;
use crate::client::Client;
use crate::error::Result;
use crate::kinds::list::{ListKindClient, SERVICE};
use crate::store::Bytes;
use crate::stub::ObjectHandle;

/// A shared list in the manager, opened by name with [`Client::list`].
#[derive(Debug)]
pub struct List<T> {
    pub(super) handle: ObjectHandle,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        List {
            handle: self.handle.clone(),
            _item: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> List<T> {
    pub(crate) fn open(client: &Client, name: &str, tag: Option<&str>) -> Result<Self> {
        let tag = tag.map_or_else(type_tag::<T>, str::to_string);
        let handle = ObjectHandle::open_shared(client, SERVICE, name, &tag, &())?;
        Ok(List {
            handle,
            _item: PhantomData,
        })
    }

    /// The declaration's typed stub over this list.
    pub(super) fn stub(&self) -> ListKindClient<&ObjectHandle> {
        ListKindClient::from_handle(&self.handle)
    }

    /// Appends `item`; returns the new length.
    pub fn push(&self, item: &T) -> Result<u64> {
        self.stub().push(Bytes::encode(item)?)
    }

    /// Removes and returns the last item.
    pub fn pop(&self) -> Result<Option<T>> {
        let item = self.stub().pop()?;
        item.map(|i| i.decode()).transpose()
    }

    /// The item at `index`.
    pub fn get(&self, index: u64) -> Result<Option<T>> {
        let item = self.stub().get(index)?;
        item.map(|i| i.decode()).transpose()
    }

    /// Replaces the item at `index` (an error past the end); returns the old one.
    pub fn set(&self, index: u64, item: &T) -> Result<T> {
        let old = self.stub().set(index, Bytes::encode(item)?)?;
        old.decode()
    }

    /// How many items there are.
    pub fn len(&self) -> Result<u64> {
        self.stub().len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The items from `start` up to (not including) `end`, clamped to the list.
    pub fn range(&self, start: u64, end: u64) -> Result<Vec<T>> {
        let items = self.stub().range(start, end)?;
        items.iter().map(Bytes::decode).collect()
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<()> {
        self.stub().clear()
    }
}
