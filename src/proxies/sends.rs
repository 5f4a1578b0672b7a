//! Pipelined calls on the built-in shared objects, as typed stubs have them:
//! `counter.send().add(1)?` queues the call and returns a [`Pending`] at once, so bulk updates
//! to a shared counter, dict, value, queue, list or event leave many to a write and need no
//! round trip each. Values travel encoded; the pending reply decodes them after its wait.
//!
//! The kinds without one, and why: a `Lock`, `RwLock` or `Semaphore` guard belongs to the
//! connection that took it and releases when dropped, which a reply on the shared pipeline
//! cannot carry; a `Barrier` wait blocks every call behind it on the pipeline; a `TaskQueue`'s
//! bulk form is `push_many` / `take_many` / `ack_many`, one round trip per batch, on every
//! backend.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Counter, Dict, Event, List, Queue, Value, millis};
use crate::client::Pending;
use crate::error::Result;
use crate::store::Bytes;

/// How a pipelined reply carrying a value travels: encoded, decoded after the wait. It only
/// appears as the second parameter of such a [`Pending`]; there is nothing to do with it.
#[derive(Debug)]
pub struct Encoded {
    value: Option<Bytes>,
}

impl<'de> serde::Deserialize<'de> for Encoded {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Encoded {
            value: Option::<Bytes>::deserialize(d)?,
        })
    }
}

/// How a pipelined reply carrying a value that is always there travels (see [`Encoded`]).
#[derive(Debug)]
pub struct EncodedItem {
    value: Bytes,
}

impl<'de> serde::Deserialize<'de> for EncodedItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(EncodedItem {
            value: Bytes::deserialize(d)?,
        })
    }
}

/// An encoded value that may be absent, decoded.
fn decode_option<T: DeserializeOwned>(encoded: Encoded) -> Result<Option<T>> {
    encoded.value.map(|v| v.decode()).transpose()
}

/// Pipelined calls on a [`Counter`], from [`Counter::send`].
#[derive(Debug, Clone, Copy)]
pub struct CounterSend<'a> {
    counter: &'a Counter,
}

impl Counter {
    /// Pipelined calls: `counter.send().add(1)?` queues the call and returns its pending
    /// reply at once (a manager's counters; a Redis one refuses).
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
    /// let hits = client.counter("hits")?;
    /// let pending: Vec<_> = (0..64).map(|_| hits.send().add(1)).collect::<Result<_, _>>()?;
    /// let last = pending.into_iter().map(|p| p.wait()).last();
    /// # Ok(()) }
    /// ```
    pub fn send(&self) -> CounterSend<'_> {
        CounterSend { counter: self }
    }
}

impl CounterSend<'_> {
    /// [`Counter::add`], pipelined.
    #[allow(clippy::should_implement_trait)] // named as `Counter::add`, which it pipelines
    pub fn add(self, delta: i64) -> Result<Pending<i64>> {
        self.counter.stub().send().add(delta)
    }

    /// [`Counter::get`], pipelined.
    pub fn get(self) -> Result<Pending<i64>> {
        self.counter.stub().send().get()
    }

    /// [`Counter::set`], pipelined.
    pub fn set(self, value: i64) -> Result<Pending<i64>> {
        self.counter.stub().send().set(value)
    }
}

/// Pipelined calls on a [`Value`], from [`Value::send`].
#[derive(Debug)]
pub struct ValueSend<'a, T> {
    value: &'a Value<T>,
}

impl<T: Serialize + DeserializeOwned> Value<T> {
    /// Pipelined calls: `value.send().set(&v)?` returns a pending reply at once.
    pub fn send(&self) -> ValueSend<'_, T> {
        ValueSend { value: self }
    }
}

impl<T: Serialize + DeserializeOwned> ValueSend<'_, T> {
    /// [`Value::get`], pipelined.
    pub fn get(self) -> Result<Pending<Option<T>, Encoded>> {
        self.value.handle.send("get", &(), decode_option::<T>)
    }

    /// [`Value::set`], pipelined (a swap whose old value is dropped, as `set` is).
    pub fn set(self, value: &T) -> Result<Pending<(), Encoded>> {
        self.value
            .handle
            .send("swap", &(Bytes::encode(value)?,), |_: Encoded| Ok(()))
    }

    /// [`Value::swap`], pipelined.
    pub fn swap(self, value: &T) -> Result<Pending<Option<T>, Encoded>> {
        self.value
            .handle
            .send("swap", &(Bytes::encode(value)?,), decode_option::<T>)
    }
}

/// Pipelined calls on a [`Dict`], from [`Dict::send`].
#[derive(Debug)]
pub struct DictSend<'a, K, V> {
    dict: &'a Dict<K, V>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Dict<K, V> {
    /// Pipelined calls: `dict.send().insert(&k, &v)?` returns a pending reply at once.
    pub fn send(&self) -> DictSend<'_, K, V> {
        DictSend { dict: self }
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictSend<'_, K, V> {
    /// [`Dict::insert`], pipelined.
    pub fn insert(self, key: &K, value: &V) -> Result<Pending<Option<V>, Encoded>> {
        self.dict.handle.send(
            "insert",
            &(Bytes::encode(key)?, Bytes::encode(value)?),
            decode_option::<V>,
        )
    }

    /// [`Dict::get`], pipelined.
    pub fn get(self, key: &K) -> Result<Pending<Option<V>, Encoded>> {
        self.dict
            .handle
            .send("get", &(Bytes::encode(key)?,), decode_option::<V>)
    }

    /// [`Dict::remove`], pipelined.
    pub fn remove(self, key: &K) -> Result<Pending<Option<V>, Encoded>> {
        self.dict
            .handle
            .send("remove", &(Bytes::encode(key)?,), decode_option::<V>)
    }

    /// [`Dict::contains`], pipelined.
    pub fn contains(self, key: &K) -> Result<Pending<bool>> {
        self.dict
            .handle
            .send("contains", &(Bytes::encode(key)?,), Ok)
    }

    /// [`Dict::update_counter`], pipelined.
    pub fn update_counter(self, key: &K, delta: i64) -> Result<Pending<i64>> {
        self.dict
            .handle
            .send("update_counter", &(Bytes::encode(key)?, delta), Ok)
    }

    /// [`Dict::insert_if_absent`], pipelined.
    pub fn insert_if_absent(self, key: &K, value: &V) -> Result<Pending<bool>> {
        self.dict.handle.send(
            "insert_if_absent",
            &(Bytes::encode(key)?, Bytes::encode(value)?),
            Ok,
        )
    }
}

/// Pipelined calls on a [`Queue`], from [`Queue::send`].
#[derive(Debug)]
pub struct QueueSend<'a, T> {
    queue: &'a Queue<T>,
    _item: PhantomData<fn(T) -> T>,
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Pipelined calls: `queue.send().put(&item)?` returns a pending reply at once. A put
    /// that must wait for room holds up the pipelined calls behind it on the manager's side;
    /// use [`QueueSend::put_timeout`] for a full queue.
    pub fn send(&self) -> QueueSend<'_, T> {
        QueueSend {
            queue: self,
            _item: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> QueueSend<'_, T> {
    /// [`Queue::put_timeout`], pipelined: whether it was put.
    pub fn put_timeout(self, item: &T, timeout: Duration) -> Result<Pending<bool>> {
        self.queue
            .handle
            .send_finished("put", &(Bytes::encode(item)?, Some(millis(timeout))), Ok)
    }

    /// [`Queue::try_get`], pipelined.
    pub fn try_get(self) -> Result<Pending<Option<T>, Encoded>> {
        self.queue
            .handle
            .send_finished("get", &(Some(0u64),), decode_option::<T>)
    }

    /// [`Queue::len`], pipelined.
    pub fn len(self) -> Result<Pending<u64>> {
        self.queue.stub().send().len()
    }
}

/// Pipelined calls on a [`List`], from [`List::send`].
#[derive(Debug)]
pub struct ListSend<'a, T> {
    list: &'a List<T>,
}

impl<T: Serialize + DeserializeOwned> List<T> {
    /// Pipelined calls: `list.send().push(&item)?` returns a pending reply at once.
    pub fn send(&self) -> ListSend<'_, T> {
        ListSend { list: self }
    }
}

impl<T: Serialize + DeserializeOwned> ListSend<'_, T> {
    /// [`List::push`], pipelined: the new length.
    pub fn push(self, item: &T) -> Result<Pending<u64>> {
        self.list
            .handle
            .send_finished("push", &(Bytes::encode(item)?,), Ok)
    }

    /// [`List::pop`], pipelined.
    pub fn pop(self) -> Result<Pending<Option<T>, Encoded>> {
        self.list
            .handle
            .send_finished("pop", &(), decode_option::<T>)
    }

    /// [`List::get`], pipelined.
    pub fn get(self, index: u64) -> Result<Pending<Option<T>, Encoded>> {
        self.list
            .handle
            .send_finished("get", &(index,), decode_option::<T>)
    }

    /// [`List::set`], pipelined: the old item (an error past the end).
    pub fn set(self, index: u64, item: &T) -> Result<Pending<T, EncodedItem>> {
        self.list
            .handle
            .send_finished("set", &(index, Bytes::encode(item)?), |old: EncodedItem| {
                old.value.decode()
            })
    }

    /// [`List::len`], pipelined.
    pub fn len(self) -> Result<Pending<u64>> {
        self.list.stub().send().len()
    }
}

/// Pipelined calls on an [`Event`], from [`Event::send`].
#[derive(Debug, Clone, Copy)]
pub struct EventSend<'a> {
    event: &'a Event,
}

impl Event {
    /// Pipelined calls: `event.send().set()?` returns a pending reply at once. (Waiting for
    /// the flag is not among them: it would hold up every call behind it on the pipeline.)
    pub fn send(&self) -> EventSend<'_> {
        EventSend { event: self }
    }
}

impl EventSend<'_> {
    /// [`Event::set`], pipelined.
    pub fn set(self) -> Result<Pending<()>> {
        self.event.stub().send().set()
    }

    /// [`Event::clear`], pipelined.
    pub fn clear(self) -> Result<Pending<()>> {
        self.event.stub().send().clear()
    }

    /// [`Event::is_set`], pipelined.
    pub fn is_set(self) -> Result<Pending<bool>> {
        self.event.handle.send_finished("is_set", &(), Ok)
    }
}
