//! `Lock` and `Semaphore`: permits held per connection, given back by the manager when the
//! holding connection closes.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use crate::error::RemoteError;
use crate::service::Caller;

/// The wire name of the lock kind.
pub(crate) const LOCK: &str = LockKindClient::SERVICE;
/// The wire name of the semaphore kind.
pub(crate) const SEMAPHORE: &str = SemaphoreKindClient::SERVICE;

/// The methods of a shared semaphore. A timeout of `None` waits as long as the caller lives.
#[crate::service(crate = "crate", name = "monogusa.Semaphore", hooks)]
pub(crate) trait SemaphoreKind {
    /// Takes a permit for the calling connection, waiting up to `timeout_ms` for one; says
    /// whether it did.
    fn acquire(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError>;
    /// Gives back a permit the calling connection holds.
    fn release(&self, caller: &Caller<'_>) -> Result<(), RemoteError>;
    /// How many permits are free.
    fn available(&self) -> u64;
}

/// The methods of a shared lock: a semaphore of one permit.
#[crate::service(crate = "crate", name = "monogusa.Lock", hooks)]
pub(crate) trait LockKind {
    /// Takes the lock for the calling connection, waiting up to `timeout_ms`; says whether
    /// it did.
    fn acquire(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError>;
    /// Gives back the lock the calling connection holds.
    fn release(&self, caller: &Caller<'_>) -> Result<(), RemoteError>;
    /// 1 if the lock is free, else 0.
    fn available(&self) -> u64;
}
