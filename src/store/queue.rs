//! `Queue<T>`: a shared FIFO with blocking, timed and non-blocking puts and gets, and
//! `task_done`/`join` like Python's `JoinableQueue`.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::budget::{Budget, Charged};
use super::builtin::{Waiting, builtin_methods, builtin_service, deadline, millis, wait_while};
use super::{Bytes, type_tag};
use crate::client::Client;
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::stub::ObjectHandle;

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Queue";

struct State {
    items: VecDeque<Bytes>,
    /// What the items cost the store's budget.
    charged: Charged,
    /// Items put and not yet marked done with `task_done`.
    unfinished: u64,
    closing: bool,
}

/// The manager's side. Its methods take `&self` (the object's lock is shared), so a `get`
/// blocked on an empty queue holds nothing a `put` needs; it waits on `not_empty` only.
pub(crate) struct SharedQueue {
    /// At most this many items (the creator's capacity, or the store's limit).
    capacity: usize,
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
}

impl SharedQueue {
    /// A queue for `capacity` items (0: as many as the store's limit allows).
    pub(crate) fn new(capacity: u64, budget: Arc<Budget>) -> Result<Self, RemoteError> {
        let max = budget.limits.max_items;
        let capacity = match usize::try_from(capacity) {
            Ok(0) => max,
            Ok(c) if c <= max => c,
            _ => {
                return Err(RemoteError::new(
                    RemoteErrorKind::LimitExceeded,
                    format!(
                        "a queue for {capacity} items is over the store's limit of {max} items per container"
                    ),
                ));
            }
        };
        Ok(SharedQueue {
            capacity,
            state: Mutex::new(State {
                items: VecDeque::new(),
                charged: Charged::new(budget),
                unfinished: 0,
                closing: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

builtin_methods!(
    /// The methods of `SharedQueue`.
    QueueMethod {
        Put = "put",
        Get = "get",
        Len = "len",
        TaskDone = "task_done",
        Join = "join",
    }
);

builtin_service!(SharedQueue, SERVICE, QueueMethod);

impl SharedQueue {
    fn dispatch(
        &self,
        method: QueueMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        match method {
            QueueMethod::Put => {
                let (item, timeout_ms): (Bytes, Option<u64>) =
                    decode_args(args, SERVICE, method.name())?;
                let capacity = self.capacity;
                let full = move |s: &State| s.items.len() >= capacity;
                let (mut state, room) = wait_while(
                    self.state(),
                    &self.not_full,
                    Waiting {
                        deadline: deadline(timeout_ms),
                        what: "queue",
                        caller,
                    },
                    |s| s.closing,
                    full,
                    |_| {},
                )?;
                if room {
                    // Refused whole if the store is full: the item is not half-put.
                    state.charged.take(&item)?;
                    state.items.push_back(item);
                    state.unfinished += 1;
                    self.not_empty.notify_one();
                }
                encode_result(&room, out)
            }
            QueueMethod::Get => {
                let (timeout_ms,): (Option<u64>,) = decode_args(args, SERVICE, method.name())?;
                let empty = |s: &State| s.items.is_empty();
                let (mut state, ready) = wait_while(
                    self.state(),
                    &self.not_empty,
                    Waiting {
                        deadline: deadline(timeout_ms),
                        what: "queue",
                        caller,
                    },
                    |s| s.closing,
                    empty,
                    |_| {},
                )?;
                let item = if ready { state.items.pop_front() } else { None };
                if let Some(item) = &item {
                    state.charged.give(item);
                    self.not_full.notify_one();
                }
                encode_result(&item, out)
            }
            QueueMethod::Len => encode_result(&(self.state().items.len() as u64), out),
            QueueMethod::TaskDone => {
                let mut state = self.state();
                if state.unfinished == 0 {
                    return Err(RemoteError::new(
                        RemoteErrorKind::Misuse,
                        "task_done() called more times than items were put",
                    ));
                }
                state.unfinished -= 1;
                if state.unfinished == 0 {
                    self.all_done.notify_all();
                }
                encode_result(&(), out)
            }
            QueueMethod::Join => {
                let (timeout_ms,): (Option<u64>,) = decode_args(args, SERVICE, method.name())?;
                let pending = |s: &State| s.unfinished > 0;
                let (_state, done) = wait_while(
                    self.state(),
                    &self.all_done,
                    Waiting {
                        deadline: deadline(timeout_ms),
                        what: "queue",
                        caller,
                    },
                    |s| s.closing,
                    pending,
                    |_| {},
                )?;
                encode_result(&done, out)
            }
        }
    }

    fn wake_all(&self) {
        self.state().closing = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
        self.all_done.notify_all();
    }

    fn forget(&self, _: u64) {}
}

/// A shared FIFO queue in the manager, opened by name with [`Client::queue`].
///
/// Blocking calls block only the calling thread: other threads of the program using the same
/// [`Client`] go on over other connections. A manager shutdown wakes every blocked call with
/// a [`RemoteErrorKind::ShuttingDown`] error.
///
/// As with any call, a client that gives up on a blocked `get` (a call timeout, a killed
/// process) cannot stop the manager from handing it the next item: prefer
/// [`Queue::get_timeout`] to a short client call timeout.
#[derive(Debug)]
pub struct Queue<T> {
    handle: ObjectHandle,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            handle: self.handle.clone(),
            _item: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    pub(crate) fn open(
        client: &Client,
        name: &str,
        capacity: usize,
        tag: Option<&str>,
    ) -> Result<Self> {
        let tag = tag.map_or_else(type_tag::<T>, str::to_string);
        let handle = ObjectHandle::open_shared(client, SERVICE, name, &tag, &(capacity as u64,))?;
        Ok(Queue {
            handle,
            _item: PhantomData,
        })
    }

    /// Appends `item`, waiting while the queue is full.
    pub fn put(&self, item: &T) -> Result<()> {
        let _: bool = self
            .handle
            .call("put", &(Bytes::encode(item)?, None::<u64>))?;
        Ok(())
    }

    /// Appends `item` unless the queue stays full for `timeout`; returns whether it did.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<bool> {
        self.handle
            .call("put", &(Bytes::encode(item)?, Some(millis(timeout))))
    }

    /// Takes the oldest item, waiting while the queue is empty.
    pub fn get(&self) -> Result<T> {
        let item: Option<Bytes> = self.handle.call("get", &(None::<u64>,))?;
        match item {
            Some(item) => item.decode(),
            None => Err(crate::Error::Protocol(
                "a blocking get returned nothing".into(),
            )),
        }
    }

    /// Takes the oldest item, waiting at most `timeout`; `None` if none arrived.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>> {
        let item: Option<Bytes> = self.handle.call("get", &(Some(millis(timeout)),))?;
        item.map(|i| i.decode()).transpose()
    }

    /// Takes the oldest item if there is one, without waiting.
    pub fn try_get(&self) -> Result<Option<T>> {
        self.get_timeout(Duration::ZERO)
    }

    /// How many items are queued.
    pub fn len(&self) -> Result<u64> {
        self.handle.call("len", &())
    }

    /// Whether no items are queued.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Marks one item taken with `get` as processed (for [`Queue::join`]).
    pub fn task_done(&self) -> Result<()> {
        self.handle.call("task_done", &())
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) -> Result<()> {
        let _: bool = self.handle.call("join", &(None::<u64>,))?;
        Ok(())
    }

    /// Like [`Queue::join`], waiting at most `timeout`; returns whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.handle.call("join", &(Some(millis(timeout)),))
    }
}
