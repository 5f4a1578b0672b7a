//! `Counter`: a shared integer with atomic read-modify-write.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use crate::error::RemoteError;

/// The wire name of the kind, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = CounterKindClient::SERVICE;

/// The methods of a shared counter.
#[crate::service(crate = "crate", name = "monogusa.Counter")]
pub(crate) trait CounterKind {
    /// The current value. (Fallible for the backends that hold counters elsewhere.)
    fn get(&self) -> Result<i64, RemoteError>;
    /// Adds `delta` and returns the new value; overflow is an error and changes nothing.
    fn add(&self, delta: i64) -> Result<i64, RemoteError>;
    /// Sets the value and returns the previous one.
    fn set(&self, value: i64) -> Result<i64, RemoteError>;
}
