//! `Value<T>`: one shared value with atomic swap and compare-and-swap.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use super::Bytes;
use crate::error::RemoteError;

/// The wire name of the kind, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = ValueKindClient::SERVICE;

/// The methods of a shared value.
#[crate::service(crate = "crate", name = "monogusa.Value")]
pub(crate) trait ValueKind {
    /// The value, if one was ever set.
    fn get(&self) -> Result<Option<Bytes>, RemoteError>;
    /// Sets the value and returns the previous one.
    fn swap(&self, new: Bytes) -> Result<Option<Bytes>, RemoteError>;
    /// Sets the value to `new` if it is `expected`; says whether it did.
    fn compare_and_swap(&self, expected: Option<Bytes>, new: Bytes) -> Result<bool, RemoteError>;
}
