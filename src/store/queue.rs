//! The manager's side of `Queue<T>`, a shared FIFO with blocking, timed and non-blocking puts
//! and gets, and `task_done`/`join` like Python's `JoinableQueue`: the state, its limits and
//! its methods (the client's side is in `proxies`).

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::Bytes;
use super::backend::Written;
use super::budget::{Budget, Charged};
use super::journal::Change;
use super::waiting::{Waiting, deadline, wait_while};
use super::{Entries, Persist};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::kinds::queue::QueueKind;
pub(crate) use crate::kinds::queue::{QueueKindServer, SERVICE};
use crate::service::{Caller, Hooks};

struct State {
    items: VecDeque<Bytes>,
    /// The sequence number of `items[0]`: item `i` is kept under key `1, head + i`.
    head: u64,
    /// What the items cost the store's budget.
    charged: Charged,
    /// Items put and not yet marked done with `task_done`.
    unfinished: u64,
    /// `close` was called: puts are refused, gets drain what is left and then fail `Closed`.
    closed: bool,
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
    /// Kept as one entry per item (key: 1 then its sequence number, big-endian), one for the
    /// count of unfinished items (the empty key) and, once closed, the key `[2]`.
    persist: Persist,
}

/// The key an item of sequence number `seq` is kept under.
/// The key kept once the queue is closed (after every item key).
const CLOSED_KEY: [u8; 1] = [2];

/// The error of a put on a closed queue, or a get on a closed and empty one.
fn closed() -> RemoteError {
    RemoteError::new(RemoteErrorKind::Closed, "the queue is closed")
}

fn item_key(seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(1);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

impl SharedQueue {
    /// A queue for `capacity` items (0: as many as the store's limit allows).
    pub(crate) fn new(
        capacity: u64,
        budget: Arc<Budget>,
        persist: Persist,
        entries: Entries,
    ) -> Result<Self, RemoteError> {
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
        let mut state = State {
            items: VecDeque::new(),
            head: 0,
            charged: Charged::new(budget),
            unfinished: 0,
            closed: false,
            closing: false,
        };
        // Entries come sorted by key: the count first (empty key), then items in order.
        for (key, value) in entries {
            if key.is_empty() {
                state.unfinished = super::stored_u64(SERVICE, &value)?;
                continue;
            }
            if key == CLOSED_KEY {
                state.closed = true;
                continue;
            }
            let seq = match key.as_slice() {
                [1, seq @ ..] => {
                    u64::from_be_bytes(seq.try_into().map_err(|_| super::bad_entry(SERVICE))?)
                }
                _ => return Err(super::bad_entry(SERVICE)),
            };
            if state.items.is_empty() {
                state.head = seq;
            } else if seq != state.head + state.items.len() as u64 {
                return Err(super::bad_entry(SERVICE));
            }
            let item = Bytes(value);
            state.charged.take(&item)?;
            state.items.push_back(item);
        }
        Ok(SharedQueue {
            capacity,
            state: Mutex::new(state),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
            persist,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl Hooks for SharedQueue {
    fn shutdown(&self) {
        self.state().closing = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
        self.all_done.notify_all();
    }
}

impl QueueKind for SharedQueue {
    fn put(
        &self,
        item: Bytes,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<bool, RemoteError> {
        let capacity = self.capacity;
        // A close wakes a blocked put, which then fails below.
        let full = move |s: &State| s.items.len() >= capacity && !s.closed;
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
        if state.closed {
            return Err(closed());
        }
        if room {
            // Refused whole if the store is full: the item is not half-put.
            state.charged.take(&item)?;
            let seq = state.head + state.items.len() as u64;
            let unfinished = state.unfinished + 1;
            let written = self.persist.record(|object| {
                [
                    Change::put(object, item_key(seq), item.0.clone()),
                    Change::put(object, [], unfinished.to_le_bytes()),
                ]
            });
            state.items.push_back(item);
            state.unfinished = unfinished;
            self.not_empty.notify_one();
            drop(state);
            written.wait()?;
        }
        Ok(room)
    }

    fn get(
        &self,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Option<Bytes>, RemoteError> {
        let empty = |s: &State| s.items.is_empty() && !s.closed;
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
        if ready && item.is_none() {
            return Err(closed()); // closed, and nothing is left
        }
        let mut written = Written::nothing();
        if let Some(item) = &item {
            state.charged.give(item);
            let seq = state.head;
            state.head += 1;
            written = self
                .persist
                .record(|object| [Change::delete(object, item_key(seq))]);
            self.not_full.notify_one();
        }
        drop(state);
        written.wait()?;
        Ok(item)
    }

    fn peek(&self) -> Option<Bytes> {
        self.state().items.front().cloned()
    }

    fn len(&self) -> u64 {
        self.state().items.len() as u64
    }

    fn task_done(&self) -> Result<(), RemoteError> {
        let mut state = self.state();
        if state.unfinished == 0 {
            return Err(RemoteError::new(
                RemoteErrorKind::Misuse,
                "task_done() called more times than items were put",
            ));
        }
        state.unfinished -= 1;
        let unfinished = state.unfinished;
        if unfinished == 0 {
            self.all_done.notify_all();
        }
        let written = self
            .persist
            .record(|object| [Change::put(object, [], unfinished.to_le_bytes())]);
        drop(state);
        written.wait()?;
        Ok(())
    }

    fn join(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError> {
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
        Ok(done)
    }

    fn close(&self) -> Result<bool, RemoteError> {
        let mut state = self.state();
        let was_open = !state.closed;
        let mut written = Written::nothing();
        if was_open {
            state.closed = true;
            written = self
                .persist
                .record(|object| [Change::put(object, CLOSED_KEY, [])]);
            self.not_empty.notify_all();
            self.not_full.notify_all();
        }
        drop(state);
        written.wait()?;
        Ok(was_open)
    }
}
