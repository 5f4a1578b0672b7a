//! `List<T>`: a shared vector.

use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::budget::{Budget, Charged};
use super::builtin::{builtin_methods, builtin_service};
use super::{Bytes, type_tag};
use crate::client::Client;
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::stub::ObjectHandle;

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.List";

pub(crate) struct SharedList {
    state: Mutex<ListState>,
}

struct ListState {
    items: Vec<Bytes>,
    /// What the items cost the store's budget.
    charged: Charged,
}

impl SharedList {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        SharedList {
            state: Mutex::new(ListState {
                items: Vec::new(),
                charged: Charged::new(budget),
            }),
        }
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
                encode_result(&(items.len() as u64), out)
            }
            ListMethod::Pop => {
                let item = items.pop();
                if let Some(item) = &item {
                    charged.give(item);
                }
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
            ListMethod::Clear => {
                items.clear();
                charged.give_all();
                encode_result(&(), out)
            }
        }
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}

/// A shared list in the manager, opened by name with [`Client::list`].
#[derive(Debug)]
pub struct List<T> {
    handle: ObjectHandle,
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

    /// Appends `item`; returns the new length.
    pub fn push(&self, item: &T) -> Result<u64> {
        self.handle.call("push", &(Bytes::encode(item)?,))
    }

    /// Removes and returns the last item.
    pub fn pop(&self) -> Result<Option<T>> {
        let item: Option<Bytes> = self.handle.call("pop", &())?;
        item.map(|i| i.decode()).transpose()
    }

    /// The item at `index`.
    pub fn get(&self, index: u64) -> Result<Option<T>> {
        let item: Option<Bytes> = self.handle.call("get", &(index,))?;
        item.map(|i| i.decode()).transpose()
    }

    /// Replaces the item at `index` (an error past the end); returns the old one.
    pub fn set(&self, index: u64, item: &T) -> Result<T> {
        let old: Bytes = self.handle.call("set", &(index, Bytes::encode(item)?))?;
        old.decode()
    }

    /// How many items there are.
    pub fn len(&self) -> Result<u64> {
        self.handle.call("len", &())
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The items from `start` up to (not including) `end`, clamped to the list.
    pub fn range(&self, start: u64, end: u64) -> Result<Vec<T>> {
        let items: Vec<Bytes> = self.handle.call("range", &(start, end))?;
        items.iter().map(Bytes::decode).collect()
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<()> {
        self.handle.call("clear", &())
    }
}
