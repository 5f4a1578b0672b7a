//! # monogusa
//!
//! Python's `multiprocessing.managers`, done right in Rust. One process, the **manager**,
//! owns functions (and soon shared objects); other processes connect over TCP or a
//! Unix-domain socket, prove they hold the shared **authkey** with a mutual HMAC-SHA256
//! handshake, and call those functions with typed arguments and results.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use monogusa::{Client, Manager};
//!
//! # fn main() -> monogusa::Result<()> {
//! // The manager: a shared map and two functions over it.
//! let counts = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
//! let (for_get, for_inc) = (Arc::clone(&counts), Arc::clone(&counts));
//! let manager = Manager::builder()
//!     .authkey("password")
//!     .bind("127.0.0.1:0") // port 0: any free port
//!     .register("get", move |key: String| {
//!         for_get.lock().unwrap().get(&key).copied().unwrap_or(0)
//!     })
//!     .register("inc", move |key: String| {
//!         *for_inc.lock().unwrap().entry(key).or_insert(0) += 1;
//!     })
//!     .build()?
//!     .start()?;
//!
//! // A client, usually in another process.
//! let client = Client::connect(manager.address(), "password")?;
//! client.call::<()>("inc", ("hikakin",))?;
//! client.call::<()>("inc", ("hikakin",))?;
//! let count: i64 = client.call("get", ("hikakin",))?;
//! assert_eq!(count, 2);
//!
//! // Errors are typed: here, an unknown function.
//! let err = client.call::<i64>("nope", ()).unwrap_err();
//! assert!(matches!(err, monogusa::Error::Remote(ref e)
//!     if e.kind() == monogusa::RemoteErrorKind::UnknownFunction));
//!
//! manager.shutdown();
//! # Ok(()) }
//! ```
//!
//! ## The pieces
//! - [`Manager`] serves registered functions: any `Fn` of 0 to 8 serde arguments returning a
//!   serde value or `Result<T, E: Display>`. One thread per connection; a panicking function
//!   returns an error to its caller and the manager serves on.
//! - [`Client`] calls them; clone it freely across threads.
//! - [`Address`] is `host:port` or `unix:/path`.
//! - [`Error`] tells apart I/O, authentication, remote, timeout, lost-connection, frame-size
//!   and codec failures; [`RemoteError`] carries what the manager reported.
//!
//! See ARCHITECTURE.md in the repository for the wire protocol and the decisions behind it.

#![warn(missing_docs)]

mod auth;
mod client;
mod codec;
mod error;
mod frame;
mod message;
mod server;
mod transport;

pub use client::{Client, ClientBuilder};
pub use error::{Error, RemoteError, RemoteErrorKind, Result};
pub use frame::DEFAULT_MAX_FRAME_LEN;
pub use server::{Handler, IntoReply, Manager, ManagerBuilder, ManagerHandle, Reply, Stats};
pub use transport::{Address, ToAddress};

/// Runs the README's code blocks as doctests, so the quick start cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
