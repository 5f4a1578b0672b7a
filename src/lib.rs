//! # monogusa
//!
//! Background work and shared state across processes, from Rust, Python and any language.
//! One process, the **manager**, owns objects, task queues and functions; other processes
//! connect over TCP, a Unix-domain socket or a Windows named pipe, prove they hold the shared
//! **authkey** with a mutual HMAC-SHA256 handshake, and call them. Python's
//! `multiprocessing.managers`, done right, grown into the system around it:
//!
//! - **Typed calls and shared objects**: functions and `#[service]` traits with generated
//!   stubs (below); counters, dicts, lists, queues, locks, semaphores, events and barriers by
//!   name ([`Client::counter`] and friends), every operation atomic in the manager.
//! - **Task queues that lose nothing** ([`Client::tasks`], [`TaskQueue`]): leases, acks,
//!   retries with backoff, dead letters, delays and dedup keys; with
//!   [`ManagerBuilder::data_dir`] they survive a crash.
//! - **Workers** ([`workers`]): [`workers::Worker`] runs a queue on threads and drains on a
//!   stop request; [`workers::Supervisor`] starts, restarts and stops worker processes, each
//!   in its own process group, and ships their output to one log; mailboxes between them.
//! - **Python and any language**: [`ManagerBuilder::python_listener`] serves unmodified
//!   `multiprocessing.managers` clients ([`ManagerBuilder::python_builtins`]: everything a
//!   `SyncManager` creates), [`ManagerBuilder::msgpack_listener`] msgpack-rpc clients.
//! - **A live dashboard and Prometheus `/metrics`**: [`ManagerBuilder::http`].
//! - **Redis and SQS**: [`connect`] opens the same [`TaskQueue`], [`Counter`], [`Dict`] on a
//!   manager, Redis (feature `redis`) or SQS (feature `sqs`), by URL.
//!
//! The README has the whole tour with runnable examples, and what each cargo feature costs.
//!
//! ## A service, declared once as a trait
//!
//! ```
//! use std::collections::HashMap;
//! use monogusa::{Client, Manager};
//!
//! #[monogusa::service]
//! pub trait Counter {
//!     /// Current value of `key`.
//!     fn get(&self, key: String) -> i64;
//!     /// Adds one to `key`; `&mut self` methods run one at a time.
//!     fn inc(&mut self, key: String) -> i64;
//! }
//!
//! #[derive(Default)]
//! struct Counts(HashMap<String, i64>);
//!
//! impl Counter for Counts {
//!     fn get(&self, key: String) -> i64 {
//!         self.0.get(&key).copied().unwrap_or(0)
//!     }
//!     fn inc(&mut self, key: String) -> i64 {
//!         let n = self.0.entry(key).or_insert(0);
//!         *n += 1;
//!         *n
//!     }
//! }
//!
//! # fn main() -> monogusa::Result<()> {
//! // The manager serves one Counter under the name "counter".
//! let manager = Manager::builder()
//!     .authkey("password")
//!     .bind("127.0.0.1:0") // port 0: any free port
//!     .serve("counter", CounterServer::new(Counts::default()))
//!     .build()?
//!     .start()?;
//!
//! // A client, usually in another process, opens it through the generated stub.
//! let client = Client::connect(manager.address(), "password")?;
//! let counter = CounterClient::open(&client, "counter")?;
//! counter.inc("hikakin".into())?;
//! assert_eq!(counter.inc("hikakin".into())?, 2);
//! assert_eq!(counter.get("hikakin".into())?, 2);
//! manager.shutdown();
//! # Ok(()) }
//! ```
//!
//! `#[monogusa::service]` on `trait Counter` generates:
//! - `CounterClient`, the stub: the trait's methods with the same names, arguments and docs,
//!   each returning `monogusa::Result<T>`. A method whose trait signature returns
//!   `Result<T, E>` returns `monogusa::Result<Result<T, E>>`: the outer error is the call's
//!   (connection, timeout, ...), the inner one the application's, decoded typed.
//!   `CounterClient::open(&client, name)` opens a served object; `create(&client, args)` makes
//!   a new one from a type registered with [`ManagerBuilder::register_type`]; `object_ref()`
//!   and `from_ref` pass an object to another process.
//! - `CounterServer<T>`, which wraps any `T: Counter` for [`ManagerBuilder::serve`] and
//!   `register_type`. Each object sits behind its own lock: `&mut self` methods run alone,
//!   `&self` methods together.
//!
//! Arguments and results are any serde types, passed by value, or read in place: `&str`,
//! `&[u8]`, `Cow<'_, str>` and `Cow<'_, [u8]>` arguments borrow from the request. Misuse
//! (generic or `async` methods, `self` by value, other references, patterns, names the stub
//! needs) is a compile error pointing at the offending item.
//!
//! Created objects are reference-counted across clones, connections and processes, and freed
//! when the last stub goes, including stubs of a process that died.
//!
//! ## Plain functions
//!
//! ```
//! use monogusa::{Client, Manager, RemoteErrorKind};
//!
//! # fn main() -> monogusa::Result<()> {
//! let manager = Manager::builder()
//!     .authkey("password")
//!     .register("add", |a: i64, b: i64| a + b) // 0 to 8 serde arguments
//!     .register("divide", |a: i64, b: i64| {
//!         if b == 0 { Err("division by zero") } else { Ok(a / b) }
//!     })
//!     .build()?
//!     .start()?;
//!
//! let client = Client::connect(manager.address(), "password")?;
//! assert_eq!(client.call::<i64>("add", (2i64, 3i64))?, 5);
//! // An `Err` from a function is a typed remote error carrying its message.
//! match client.call::<i64>("divide", (1i64, 0i64)) {
//!     Err(monogusa::Error::Remote(e)) => {
//!         assert_eq!(e.kind(), RemoteErrorKind::Handler);
//!         assert_eq!(e.message(), "division by zero");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! ## Shared objects without a service
//!
//! Every manager also offers built-in shared objects by name, like Python's `SyncManager`:
//! [`Client::counter`], [`Client::value`], [`Client::dict`], [`Client::list`],
//! [`Client::queue`], [`Client::lock`], [`Client::semaphore`], [`Client::event`] and
//! [`Client::barrier`]; see the README. The `monogusa` binary serves them with no user code.
//!
//! ## The pieces
//! - [`Manager`] serves objects and functions. One thread per connection; a panicking method
//!   or function returns an error to its caller and the manager serves on.
//! - [`Client`] connects and calls; clone it freely across threads.
//! - [`Address`] is `host:port`, `unix:/path` or `pipe:NAME`.
//! - [`Error`] tells apart I/O, authentication, remote, timeout, lost-connection, frame-size
//!   and codec failures; [`RemoteError`] carries what the manager reported.
//!
//! The wire protocol, for peers in other languages, is described in [`protocol`];
//! ARCHITECTURE.md in the repository gives the decisions behind it.

// Lets the crate's own tests use `#[service]`, whose output names `::monogusa`.
#[cfg(test)]
extern crate self as monogusa;

mod backends;
#[cfg(any(feature = "sqs", feature = "http"))]
mod base64;
mod client;
mod clock;
mod error;
#[cfg(test)]
mod fuzz_tests;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod fxhash;
mod kinds;
#[cfg(feature = "msgpack")]
mod msgpack;
pub use wire::protocol;
mod proxies;
#[cfg(feature = "python")]
mod python;
mod server;
mod service;
mod stop_signals;
mod store;
mod stub;
mod transport;
#[cfg(any(feature = "python", feature = "msgpack"))]
mod values;
mod wire;
pub mod workers;

pub use backends::connect::{Secrets, Store, connect, connect_with};
pub use client::{Batch, Client, ClientBuilder, ConnectionStatus, Pending};
pub use clock::{Clock, TestClock};
pub use error::{Error, Phase, RemoteError, RemoteErrorKind, Result};
pub use proxies::{
    After, Barrier, Counter, CounterSend, DeadLetter, Dict, DictSend, Encoded, EncodedItem, Event,
    EventSend, GraphTask, Group, Guard, Lease, List, ListSend, Lock, Named, PushOptions, Queue,
    QueueSend, Retry, Semaphore, Task, TaskGraph, TaskId, TaskQueue, TaskQueueSettings, TaskResult,
    TaskStats, TaskStatus, Transaction, Value, ValueSend,
};
pub use server::{
    ADDRESS_VAR, AUTHKEY_VAR, ConnectionEvent, Constructor, Door, Durability, Handler, IntoReply,
    MSGPACK_ADDRESS_VAR, Manager, ManagerBuilder, ManagerHandle, PYTHON_ADDRESS_VAR, Reply, Stats,
};
pub use service::{
    Caller, Description, Hooks, INTERNAL_PREFIX, MethodDescription, MethodInfo, ObjectDescription,
    ObjectRef, Service, ServiceDescriptor, TypeDescription,
};
pub use stub::ObjectHandle;
pub use wire::borrowed::{Argument, Bytes, Str};
pub use wire::codec::DEFAULT_MAX_DECODE_DEPTH;
pub use wire::frame::DEFAULT_MAX_FRAME_LEN;

/// Marks a trait as a remote service: generates the typed client stub `<Trait>Client` and the
/// server wrapper `<Trait>Server<T>`. See [the crate documentation](crate#a-service-declared-once-as-a-trait).
///
/// Options: `#[service(name = "billing.Ledger")]` names the service on the wire (the trait's
/// name otherwise); `#[service(hooks)]` has the implementation also implement [`Hooks`], to
/// hear of the manager's shutdown and of each calling connection's end;
/// `#[service(crate = "path")]` names a re-exported monogusa. A method may take
/// `caller: &Caller<'_>` (not sent: who calls) and may return `Result<T, RemoteError>`, whose
/// error fails the call itself with its kind (the stub returns `monogusa::Result<T>`). The
/// built-in shared objects are declared this way.
///
/// ```
/// use monogusa::{Caller, Hooks, RemoteError, RemoteErrorKind};
///
/// #[monogusa::service(name = "venue.Seats", hooks)]
/// pub trait Seats {
///     fn take(&self, caller: &Caller<'_>) -> Result<u64, RemoteError>;
/// }
///
/// struct Venue(parking_lot::Mutex<std::collections::HashMap<u64, u64>>);
///
/// impl Seats for Venue {
///     fn take(&self, caller: &Caller<'_>) -> Result<u64, RemoteError> {
///         let mut held = self.0.lock();
///         if held.values().sum::<u64>() == 100 {
///             return Err(RemoteError::new(RemoteErrorKind::LimitExceeded, "full"));
///         }
///         *held.entry(caller.connection()).or_insert(0) += 1;
///         Ok(held.values().sum())
///     }
/// }
///
/// impl Hooks for Venue {
///     fn tracks_connections(&self) -> bool {
///         true
///     }
///     fn connection_closed(&self, connection: u64) {
///         self.0.lock().remove(&connection); // its seats are free again
///     }
/// }
/// # let _ = SeatsServer::new(Venue(Default::default()));
/// ```
pub use monogusa_macros::service;

/// What the code generated by `#[service]` refers to. Not a public API: it may change in
/// any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::Client;
    pub use crate::client::Pending;
    pub use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
    pub use crate::service::{
        Caller, ErasedReply, Hooks, MethodInfo, ObjectRef, Service, ServiceDescriptor, decode_args,
        decode_erased_args, encode_result, no_such_method,
    };
    pub use crate::stub::{Calls, ObjectHandle};
    pub use crate::wire::borrowed::{WireBytes, WireStr};
    pub use erased_serde;
    pub use serde;

    /// Internals exposed for the micro-benchmarks in `benches/`; not an API.
    pub mod bench {
        use std::io::Read;

        use crate::error::{RemoteError, Result};
        use crate::server::{Handler, Registry};
        use crate::wire::frame::{self, FrameReader};
        use crate::wire::message::{Op, RequestHeader, ResponseHeader, Status};

        /// Appends a complete call frame (length, header, arguments) to `out`.
        pub fn encode_call<A: serde::Serialize>(
            id: u64,
            function: &str,
            args: &A,
            out: &mut Vec<u8>,
        ) -> Result<()> {
            crate::wire::message::encode_request(
                out,
                id,
                Op::Call(function),
                args,
                frame::DEFAULT_MAX_FRAME_LEN,
            )
        }

        /// Decodes a call frame's header, returning the id, function name and argument bytes.
        pub fn decode_call(payload: &[u8]) -> Result<(u64, &str, &[u8])> {
            let (header, used) = RequestHeader::decode(payload)?;
            match header.op {
                Op::Call(name) => Ok((header.id, name, &payload[used..])),
                _ => Err(crate::Error::Protocol("not a call".into())),
            }
        }

        /// Appends a complete success reply frame whose body is already encoded.
        pub fn encode_reply_with(id: u64, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
            let start = frame::begin(out);
            ResponseHeader {
                id,
                status: Status::Ok,
            }
            .encode(out);
            body(out);
            frame::end(out, start, frame::DEFAULT_MAX_FRAME_LEN).expect("within the limit");
        }

        /// Decodes argument bytes as `T`, exactly.
        pub fn decode_args<T: serde::de::DeserializeOwned>(args: &[u8]) -> Result<T> {
            crate::wire::codec::decode_exact(args)
        }

        /// Decodes a reply frame's payload as `R`.
        pub fn decode_reply<R: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<R> {
            let (_, used) = ResponseHeader::decode(payload)?;
            crate::wire::codec::decode_exact(&payload[used..])
        }

        /// Cuts buffered bytes into frames.
        pub struct Frames(FrameReader);

        impl Frames {
            /// An empty frame buffer.
            pub fn new() -> Self {
                Frames(FrameReader::new(frame::DEFAULT_MAX_FRAME_LEN))
            }
            /// Reads once from `source`.
            pub fn fill_from<R: Read>(&mut self, source: &mut R) -> std::io::Result<usize> {
                self.0.fill(source)
            }
            /// The next complete frame's payload.
            pub fn next_frame(&mut self) -> Option<&[u8]> {
                self.0.next_frame().ok().flatten()
            }
        }

        impl Default for Frames {
            fn default() -> Self {
                Self::new()
            }
        }

        /// Registered functions, dispatched in-process.
        #[derive(Default)]
        pub struct Functions(Registry);

        impl Functions {
            /// Registers `function` under `name`.
            pub fn register<Args: 'static, H: Handler<Args>>(&mut self, name: &str, function: H) {
                self.0.insert(name, function);
            }
            /// Looks `name` up and runs it, appending the encoded result.
            pub fn call(
                &self,
                name: &str,
                args: &[u8],
                out: &mut Vec<u8>,
            ) -> ::core::result::Result<(), RemoteError> {
                match self.0.get(name) {
                    Some(function) => function.call(args, out),
                    None => Err(RemoteError::new(
                        crate::RemoteErrorKind::UnknownFunction,
                        name,
                    )),
                }
            }
        }
    }
}
#[cfg(feature = "python")]
pub use python::PythonShared;
pub use transport::{Address, ToAddress};
#[cfg(any(feature = "python", feature = "msgpack"))]
pub use values::Dynamic;

/// The serde this crate is built with, so applications derive `Serialize` and `Deserialize`
/// against the same version without naming it in their own dependencies.
pub use serde;

/// Runs the README's code blocks as doctests, so the quick start cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
