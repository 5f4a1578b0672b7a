//! The client's side of `Value<T>`, one shared value with atomic swap and compare-and-swap: the
//! typed proxy over an `ObjectHandle`.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::type_tag;
use crate::client::Client;
use crate::error::Result;
use crate::kinds::value::{SERVICE, ValueKindClient};
use crate::store::Bytes;
use crate::stub::ObjectHandle;

/// One shared value in the manager, opened by name with [`Client::value`]. It starts unset.
#[derive(Debug)]
pub struct Value<T> {
    pub(super) handle: super::Target,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            handle: self.handle.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Value<T> {
    /// A value held elsewhere (Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn from_target(handle: super::Target) -> Self {
        Value {
            handle,
            _type: PhantomData,
        }
    }

    pub(crate) fn open(client: &Client, name: &str, tag: Option<&str>) -> Result<Self> {
        let tag = tag.map_or_else(type_tag::<T>, str::to_string);
        let handle = ObjectHandle::open_shared(client, SERVICE, name, &tag, &())?;
        Ok(Value {
            handle: super::Target::Manager(handle),
            _type: PhantomData,
        })
    }

    /// The declaration's typed stub over this value's home.
    fn stub(&self) -> ValueKindClient<&super::Target> {
        ValueKindClient::from_handle(&self.handle)
    }

    /// The value, or `None` if it was never set.
    pub fn get(&self) -> Result<Option<T>> {
        let value = self.stub().get()?;
        value.map(|v| v.decode()).transpose()
    }

    /// Sets the value.
    pub fn set(&self, value: &T) -> Result<()> {
        self.swap(value).map(drop)
    }

    /// Sets the value and returns the previous one, atomically.
    pub fn swap(&self, value: &T) -> Result<Option<T>> {
        let old = self.stub().swap(Bytes::encode(value)?)?;
        old.map(|v| v.decode()).transpose()
    }

    /// Sets the value to `new` only if it currently is `expected` (`None`: unset), comparing
    /// encodings; returns whether it did. The building block for any read-modify-write.
    pub fn compare_and_swap(&self, expected: Option<&T>, new: &T) -> Result<bool> {
        let expected = expected.map(Bytes::encode).transpose()?;
        self.stub().compare_and_swap(expected, Bytes::encode(new)?)
    }
}
