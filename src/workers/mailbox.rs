//! Named mailboxes: every process can have an inbox by name, any process can send to any
//! name, and a group of names can be sent one message at once (a broadcast). Built on the
//! manager's queues (one bounded queue per name) and dicts (a group's members).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
use crate::proxies::{Dict, Queue};

/// How many messages a mailbox holds unless its creator says otherwise.
pub const DEFAULT_CAPACITY: usize = crate::kinds::queue::MAILBOX_CAPACITY as usize;

/// The queue behind a mailbox name.
fn queue_name(name: &str) -> String {
    format!("{}{name}", crate::kinds::queue::MAILBOX_PREFIX)
}

/// An inbox by name, from [`Client::mailbox`]: `send` to it from any process, `recv` in the
/// one it belongs to. Messages are the user's serde type, usually an enum: the message type
/// is its variant, its handler a `match` arm.
///
/// Messages from one sender arrive in the order sent. A mailbox holds at most its capacity
/// (1000 by default); a send to a full one fails with
/// [`RemoteErrorKind::Full`] ([`Error::is_full`]) and delivers nothing.
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// enum Msg { Resize { path: String, width: u32 }, Stop }
///
/// // Anywhere:
/// client.mailbox::<Msg>("resizer-2")?.send(&Msg::Resize { path: "a.png".into(), width: 64 })?;
///
/// // In resizer-2:
/// for msg in client.mailbox::<Msg>("resizer-2")?.iter() {
///     match msg? {
///         Msg::Resize { path, width } => println!("{path} to {width}"),
///         Msg::Stop => break,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Mailbox<M> {
    name: String,
    queue: Queue<M>,
}

impl<M> Clone for Mailbox<M> {
    fn clone(&self) -> Self {
        Mailbox {
            name: self.name.clone(),
            queue: self.queue.clone(),
        }
    }
}

impl<M: Serialize + DeserializeOwned> Mailbox<M> {
    pub(crate) fn open(client: &Client, name: &str, capacity: usize) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::Config("a mailbox needs a name".into()));
        }
        let capacity = if capacity == 0 {
            DEFAULT_CAPACITY
        } else {
            capacity
        };
        Ok(Mailbox {
            name: name.to_string(),
            queue: client.queue(&queue_name(name), capacity)?,
        })
    }

    /// The mailbox's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Delivers `message`: returns once the manager holds it (one-way: the receiver may not
    /// have read it yet). Fails with [`RemoteErrorKind::Full`] if the mailbox is full, and
    /// [`RemoteErrorKind::Closed`] if it was closed.
    pub fn send(&self, message: &M) -> Result<()> {
        self.send_timeout(message, Duration::ZERO)
    }

    /// Like [`Mailbox::send`], waiting up to `timeout` for room in a full mailbox.
    pub fn send_timeout(&self, message: &M, timeout: Duration) -> Result<()> {
        if self.queue.put_timeout(message, timeout)? {
            Ok(())
        } else {
            Err(Error::Remote(RemoteError::new(
                RemoteErrorKind::Full,
                format!(
                    "the mailbox {:?} is full: its receiver is behind",
                    self.name
                ),
            )))
        }
    }

    /// The next message, waiting for one. Fails with `Closed` once the mailbox is closed
    /// and empty.
    pub fn recv(&self) -> Result<M> {
        self.queue.get()
    }

    /// The next message, waiting at most `timeout`; `None` if none arrived.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<M>> {
        self.queue.get_timeout(timeout)
    }

    /// The next message if there is one, without waiting.
    pub fn try_recv(&self) -> Result<Option<M>> {
        self.queue.try_get()
    }

    /// The messages as they arrive, until the mailbox is closed and empty.
    pub fn iter(&self) -> impl Iterator<Item = Result<M>> + '_ {
        self.queue.iter()
    }

    /// How many messages wait.
    pub fn len(&self) -> Result<u64> {
        self.queue.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> Result<bool> {
        self.queue.is_empty()
    }

    /// Closes the mailbox: sends fail with `Closed`, and `recv` returns what is left and then
    /// fails with `Closed` (so [`Mailbox::iter`] ends).
    pub fn close(&self) -> Result<bool> {
        self.queue.close()
    }
}

/// A named group of mailboxes, from [`Client::group`]: members join by name, and a broadcast
/// sends one message to each.
#[derive(Debug)]
pub struct Group<M> {
    client: Client,
    name: String,
    members: Dict<String, u64>,
    _message: std::marker::PhantomData<fn(M) -> M>,
}

/// What a [`Group::broadcast`] delivered.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Broadcast {
    /// The members that hold the message.
    pub delivered: Vec<String>,
    /// The members it could not be given to, and why (a full or closed mailbox).
    pub failed: Vec<(String, Error)>,
}

impl<M: Serialize + DeserializeOwned> Group<M> {
    pub(crate) fn open(client: &Client, name: &str) -> Result<Self> {
        Ok(Group {
            client: client.clone(),
            name: name.to_string(),
            members: client.dict(&format!("monogusa.group:{name}"))?,
            _message: std::marker::PhantomData,
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds the mailbox `member` (returns whether it was new).
    pub fn join(&self, member: &str) -> Result<bool> {
        self.members.insert_if_absent(&member.to_string(), &0)
    }

    /// Removes the mailbox `member` (returns whether it was a member).
    pub fn leave(&self, member: &str) -> Result<bool> {
        Ok(self.members.remove(&member.to_string())?.is_some())
    }

    /// The members' names, sorted.
    pub fn members(&self) -> Result<Vec<String>> {
        let mut members = self.members.keys()?;
        members.sort();
        Ok(members)
    }

    /// Sends `message` to every member's mailbox; a member whose mailbox is full or closed
    /// is reported in [`Broadcast::failed`], and the others still get it. An error of the
    /// connection itself is returned.
    pub fn broadcast(&self, message: &M) -> Result<Broadcast> {
        let mut outcome = Broadcast::default();
        for member in self.members()? {
            match Mailbox::<M>::open(&self.client, &member, 0)?.send(message) {
                Ok(()) => outcome.delivered.push(member),
                Err(e) if e.is_full() || e.is_closed() => outcome.failed.push((member, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(outcome)
    }
}

/// Mailboxes and groups.
impl Client {
    /// Opens the mailbox `name` (created, for 1000 messages, on first use). See [`Mailbox`].
    pub fn mailbox<M: Serialize + DeserializeOwned>(&self, name: &str) -> Result<Mailbox<M>> {
        Mailbox::open(self, name, 0)
    }

    /// Opens the mailbox `name`, created for `capacity` messages if it does not exist (an
    /// existing one keeps its capacity).
    pub fn mailbox_with_capacity<M: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<Mailbox<M>> {
        Mailbox::open(self, name, capacity)
    }

    /// Opens the group of mailboxes `name` (empty at first). See [`Group`].
    pub fn group<M: Serialize + DeserializeOwned>(&self, name: &str) -> Result<Group<M>> {
        Group::open(self, name)
    }
}
