//! `Dict<K, V>`: a shared map of encoded keys to encoded values.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use super::Bytes;
use crate::error::RemoteError;

/// The wire name of the kind, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = DictKindClient::SERVICE;

/// The methods of a shared dict. (Reads are fallible for the backends that hold dicts
/// elsewhere.)
#[crate::service(crate = "crate", name = "monogusa.Dict")]
pub(crate) trait DictKind {
    /// Sets `key` to `value`, returning the value it had.
    fn insert(&self, key: Bytes, value: Bytes) -> Result<Option<Bytes>, RemoteError>;
    /// The value at `key`.
    fn get(&self, key: Bytes) -> Result<Option<Bytes>, RemoteError>;
    /// Removes `key`, returning the value it had.
    fn remove(&self, key: Bytes) -> Result<Option<Bytes>, RemoteError>;
    /// Whether `key` is set.
    fn contains(&self, key: Bytes) -> Result<bool, RemoteError>;
    /// How many keys are set.
    fn len(&self) -> Result<u64, RemoteError>;
    /// Every key, in order of their encodings.
    fn keys(&self) -> Result<Vec<Bytes>, RemoteError>;
    /// Every entry, in order of their keys' encodings.
    fn items(&self) -> Result<Vec<(Bytes, Bytes)>, RemoteError>;
    /// Removes every entry.
    fn clear(&self) -> Result<(), RemoteError>;
    /// Adds `delta` to the `i64` at `key` (0 if unset), returning the new value.
    fn update_counter(&self, key: Bytes, delta: i64) -> Result<i64, RemoteError>;
    /// Sets `key` to `value` unless it is set; says whether it did.
    fn insert_if_absent(&self, key: Bytes, value: Bytes) -> Result<bool, RemoteError>;
}
