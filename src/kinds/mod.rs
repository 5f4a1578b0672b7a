//! The contract of each built-in kind, declared once: a `#[service]` trait per kind, from
//! which come the manager's dispatch, the erased entry other wire formats and the dashboard
//! call, and the description. The manager's implementations live in `store`, the typed
//! proxies in `proxies`.
//!
//! To add a method to a kind: declare it in the kind's trait here and implement it in
//! `store` (and in each backend that holds that kind). Every listener reaches it by name.

pub(crate) mod counter;
pub(crate) mod dict;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod logs;
pub(crate) mod queue;
pub(crate) mod signal;
pub(crate) mod tasks;
pub(crate) mod value;
pub(crate) mod workers;

mod bytes;

pub(crate) use bytes::Bytes;
#[cfg(any(feature = "python", feature = "msgpack"))]
pub(crate) use bytes::ELEMENT;
