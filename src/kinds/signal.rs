//! `Event` and `Barrier`: processes waiting for each other.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use crate::error::RemoteError;
use crate::service::Caller;

/// The wire name of the event kind.
pub(crate) const EVENT: &str = EventKindClient::SERVICE;
/// The wire name of the barrier kind.
pub(crate) const BARRIER: &str = BarrierKindClient::SERVICE;

/// The methods of a shared event. A timeout of `None` waits as long as the caller lives.
#[crate::service(crate = "crate", name = "monogusa.Event", hooks)]
pub(crate) trait EventKind {
    /// Sets the flag, waking every waiter.
    fn set(&self);
    /// Clears the flag.
    fn clear(&self);
    /// Whether the flag is set.
    fn is_set(&self) -> bool;
    /// Waits up to `timeout_ms` for the flag; says whether it is set.
    fn wait(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError>;
}

/// The methods of a shared barrier.
#[crate::service(crate = "crate", name = "monogusa.Barrier", hooks)]
pub(crate) trait BarrierKind {
    /// Waits up to `timeout_ms` for every party; the caller's arrival position, or `None` if
    /// the time ran out (it then no longer counts toward the round).
    fn wait(
        &self,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Option<u64>, RemoteError>;
    /// How many parties a round needs.
    fn parties(&self) -> u64;
    /// How many have arrived in the current round.
    fn waiting(&self) -> u64;
}
