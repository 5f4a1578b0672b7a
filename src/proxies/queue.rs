//! The client's side of `Queue<T>`, a shared FIFO with blocking, timed and non-blocking puts
//! and gets, and `task_done`/`join` like Python's `JoinableQueue`: the typed proxy over an
//! `ObjectHandle`.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{millis, type_tag};
use crate::client::Client;
use crate::error::Result;
use crate::kinds::queue::{QueueKindClient, SERVICE};
use crate::store::Bytes;
use crate::stub::ObjectHandle;

/// A shared FIFO queue in the manager, opened by name with [`Client::queue`].
///
/// Blocking calls block only the calling thread: other threads of the program using the same
/// [`Client`] go on over other connections. A manager shutdown wakes every blocked call with
/// a [`RemoteErrorKind::ShuttingDown`](crate::RemoteErrorKind::ShuttingDown) error.
///
/// As with any call, a client that gives up on a blocked `get` (a call timeout, a killed
/// process) cannot stop the manager from handing it the next item: prefer
/// [`Queue::get_timeout`] to a short client call timeout.
#[derive(Debug)]
pub struct Queue<T> {
    pub(super) handle: ObjectHandle,
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

    /// The declaration's typed stub over this queue.
    pub(super) fn stub(&self) -> QueueKindClient<&ObjectHandle> {
        QueueKindClient::from_handle(&self.handle)
    }

    /// Appends `item`, waiting while the queue is full.
    pub fn put(&self, item: &T) -> Result<()> {
        self.stub().put(Bytes::encode(item)?, None)?;
        Ok(())
    }

    /// Appends `item` unless the queue stays full for `timeout`; returns whether it did.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<bool> {
        self.stub().put(Bytes::encode(item)?, Some(millis(timeout)))
    }

    /// Takes the oldest item, waiting while the queue is empty. Once the queue is
    /// [closed](Queue::close) and drained, fails with
    /// [`RemoteErrorKind::Closed`](crate::RemoteErrorKind::Closed) ([`Error::is_closed`](crate::Error::is_closed)).
    pub fn get(&self) -> Result<T> {
        let item = self.stub().get(None)?;
        match item {
            Some(item) => item.decode(),
            None => Err(crate::Error::Protocol(
                "a blocking get returned nothing".into(),
            )),
        }
    }

    /// Takes the oldest item, waiting at most `timeout`; `None` if none arrived.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>> {
        let item = self.stub().get(Some(millis(timeout)))?;
        item.map(|i| i.decode()).transpose()
    }

    /// The oldest item, left in the queue (`None` if it is empty).
    pub fn peek(&self) -> Result<Option<T>> {
        let item = self.stub().peek()?;
        item.map(|i| i.decode()).transpose()
    }

    /// Takes the oldest item if there is one, without waiting.
    pub fn try_get(&self) -> Result<Option<T>> {
        self.get_timeout(Duration::ZERO)
    }

    /// Closes the queue: later puts fail with
    /// [`RemoteErrorKind::Closed`](crate::RemoteErrorKind::Closed), blocked ones included,
    /// and gets take what is left and then fail the same way, so consumers end without a
    /// sentinel value ([`Queue::iter`] ends). Returns whether this call closed it (false: it
    /// was closed already). A durable manager keeps it closed across restarts.
    pub fn close(&self) -> Result<bool> {
        self.stub().close()
    }

    /// The items as they arrive, blocking for each, until the queue is closed and drained
    /// (then the iterator ends). An error other than `Closed` is yielded once, then the
    /// iterator ends.
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
    /// let jobs = client.queue::<String>("jobs", 0)?;
    /// for job in jobs.iter() {
    ///     println!("{}", job?);
    /// }
    /// // Another process called `jobs.close()` and every job was taken.
    /// # Ok(()) }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Result<T>> + '_ {
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            match self.get() {
                Ok(item) => Some(Ok(item)),
                Err(e) if e.is_closed() => {
                    done = true;
                    None
                }
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        })
    }

    /// How many items are queued.
    pub fn len(&self) -> Result<u64> {
        self.stub().len()
    }

    /// Whether no items are queued.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Marks one item taken with `get` as processed (for [`Queue::join`]).
    pub fn task_done(&self) -> Result<()> {
        self.stub().task_done()
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) -> Result<()> {
        self.stub().join(None)?;
        Ok(())
    }

    /// Like [`Queue::join`], waiting at most `timeout`; returns whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.stub().join(Some(millis(timeout)))
    }
}
