//! `List<T>`: a shared sequence of encoded items.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use super::Bytes;
use crate::error::RemoteError;

/// The wire name of the kind, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = ListKindClient::SERVICE;

/// The methods of a shared list.
#[crate::service(crate = "crate", name = "monogusa.List")]
pub(crate) trait ListKind {
    /// Appends `item`, returning the new length.
    fn push(&self, item: Bytes) -> Result<u64, RemoteError>;
    /// Removes and returns the last item.
    fn pop(&self) -> Result<Option<Bytes>, RemoteError>;
    /// The item at `at`.
    fn get(&self, at: u64) -> Option<Bytes>;
    /// Replaces the item at `at` (which must exist), returning the old one.
    fn set(&self, at: u64, item: Bytes) -> Result<Bytes, RemoteError>;
    /// How many items it holds.
    fn len(&self) -> u64;
    /// The items from `start` up to `end` (clamped to the list).
    fn range(&self, start: u64, end: u64) -> Vec<Bytes>;
    /// Removes every item.
    fn clear(&self) -> Result<(), RemoteError>;
    /// Inserts `item` before `at` (Python's `insert`: past the end appends).
    fn insert(&self, at: u64, item: Bytes) -> Result<(), RemoteError>;
    /// Removes and returns the item at `at`, if there is one.
    fn remove_at(&self, at: u64) -> Result<Option<Bytes>, RemoteError>;
    /// Replaces the whole content with `new` if it is still `expected`; says whether it did.
    fn replace(&self, expected: Vec<Bytes>, new: Vec<Bytes>) -> Result<bool, RemoteError>;
}
