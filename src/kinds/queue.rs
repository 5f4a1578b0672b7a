//! `Queue<T>`: a shared FIFO with blocking, timed and non-blocking puts and gets, and
//! `task_done`/`join` like Python's `JoinableQueue`.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use super::Bytes;
use crate::error::RemoteError;
use crate::service::Caller;

/// The wire name of the kind, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = QueueKindClient::SERVICE;

/// A mailbox is a queue under this name prefix (`monogusa.mailbox:<name>`), so every client,
/// in any language, finds the same one.
pub(crate) const MAILBOX_PREFIX: &str = "monogusa.mailbox:";

/// How many messages a mailbox holds unless its opener says otherwise.
pub(crate) const MAILBOX_CAPACITY: u64 = 1000;

/// The methods of a shared queue. A timeout of `None` waits as long as the caller lives.
#[crate::service(crate = "crate", name = "monogusa.Queue", hooks)]
pub(crate) trait QueueKind {
    /// Appends `item`, waiting up to `timeout_ms` for room; says whether it did.
    fn put(
        &self,
        item: Bytes,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<bool, RemoteError>;
    /// Takes the first item, waiting up to `timeout_ms` for one.
    fn get(
        &self,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Option<Bytes>, RemoteError>;
    /// The first item, left in place.
    fn peek(&self) -> Option<Bytes>;
    /// How many items it holds.
    fn len(&self) -> u64;
    /// Marks one item put as finished (for `join`).
    fn task_done(&self) -> Result<(), RemoteError>;
    /// Waits up to `timeout_ms` until every item put is finished; says whether they are.
    fn join(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError>;
    /// Refuses further puts; gets drain what is left. Says whether it was open.
    fn close(&self) -> Result<bool, RemoteError>;
}
