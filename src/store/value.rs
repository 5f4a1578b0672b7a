//! `Value<T>`: one shared value with atomic swap and compare-and-swap.

use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::budget::{Budget, Charged};
use super::builtin::{builtin_methods, builtin_service};
use super::{Bytes, type_tag};
use crate::client::Client;
use crate::error::{RemoteError, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::stub::ObjectHandle;

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Value";

/// The manager's side: the encoded value, if one was ever set.
pub(crate) struct SharedValue {
    /// The value, and what it costs the store's budget.
    value: Mutex<(Option<Bytes>, Charged)>,
}

impl SharedValue {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        SharedValue {
            value: Mutex::new((None, Charged::new(budget))),
        }
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

builtin_methods!(
    /// The methods of `SharedValue`.
    ValueMethod {
        Get = "get",
        Swap = "swap",
        CompareAndSwap = "compare_and_swap",
    }
);

builtin_service!(SharedValue, SERVICE, ValueMethod);

impl SharedValue {
    fn dispatch(
        &self,
        method: ValueMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        _: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let mut guard = self.value.lock();
        let (value, charged) = &mut *guard;
        match method {
            ValueMethod::Get => encode_result(&*value, out),
            ValueMethod::Swap => {
                let (new,): (Bytes,) = decode_args(args, SERVICE, method.name())?;
                encode_result(&replace(value, charged, new)?, out)
            }
            ValueMethod::CompareAndSwap => {
                let (expected, new): (Option<Bytes>, Bytes) =
                    decode_args(args, SERVICE, method.name())?;
                let swapped = *value == expected;
                if swapped {
                    replace(value, charged, new)?;
                }
                encode_result(&swapped, out)
            }
        }
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}

/// One shared value in the manager, opened by name with [`Client::value`]. It starts unset.
#[derive(Debug)]
pub struct Value<T> {
    handle: ObjectHandle,
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
    pub(crate) fn open(client: &Client, name: &str, tag: Option<&str>) -> Result<Self> {
        let tag = tag.map_or_else(type_tag::<T>, str::to_string);
        let handle = ObjectHandle::open_shared(client, SERVICE, name, &tag, &())?;
        Ok(Value {
            handle,
            _type: PhantomData,
        })
    }

    /// The value, or `None` if it was never set.
    pub fn get(&self) -> Result<Option<T>> {
        let value: Option<Bytes> = self.handle.call("get", &())?;
        value.map(|v| v.decode()).transpose()
    }

    /// Sets the value.
    pub fn set(&self, value: &T) -> Result<()> {
        self.swap(value).map(drop)
    }

    /// Sets the value and returns the previous one, atomically.
    pub fn swap(&self, value: &T) -> Result<Option<T>> {
        let old: Option<Bytes> = self.handle.call("swap", &(Bytes::encode(value)?,))?;
        old.map(|v| v.decode()).transpose()
    }

    /// Sets the value to `new` only if it currently is `expected` (`None`: unset), comparing
    /// encodings; returns whether it did. The building block for any read-modify-write.
    pub fn compare_and_swap(&self, expected: Option<&T>, new: &T) -> Result<bool> {
        let expected = expected.map(Bytes::encode).transpose()?;
        self.handle
            .call("compare_and_swap", &(expected, Bytes::encode(new)?))
    }
}
