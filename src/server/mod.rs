//! The manager: binds an address, accepts connections (one thread each), authenticates them,
//! and serves the registered functions until shut down.

mod admission;
mod closing;
mod connection;
mod defenses;
mod dispatch;
#[cfg(any(feature = "python", feature = "msgpack"))]
mod foreign;
#[cfg(feature = "http")]
mod http;
/// The dashboard's parsers, for the fuzz targets.
#[cfg(all(feature = "http", any(test, feature = "fuzzing")))]
pub(crate) use http::{request as http_request, websocket as http_websocket};
mod keepalive;
mod listener;
#[cfg(feature = "msgpack")]
mod msgpack;
mod objects;
mod pace;
#[cfg(feature = "python")]
mod python;
/// The Python listener's request reader, for the fuzz targets.
#[cfg(all(feature = "python", any(test, feature = "fuzzing")))]
pub(crate) use python::parse_request_for_fuzzing as python_request;
mod registry;
mod replies;
mod threads;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::Mutex;
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use objects::Constructor;
pub use registry::{ErasedReply, Handler, IntoReply, Reply};

use crate::error::{Error, Result};
use crate::service::Service;
use crate::store::StoreLimits;
pub use crate::store::journal::Durability;
use crate::transport::{Address, ListenOptions, ListeningSocket, Stream, ToAddress};
use crate::wire::auth::{self, AuthKey};
use crate::wire::frame::{Budget, DEFAULT_MAX_FRAME_LEN};
use listener::Listener;
use objects::{Objects, ObjectsConfig};
pub(crate) use registry::Registry;

/// Limits a manager enforces on its peers.
#[derive(Debug, Clone)]
struct Limits {
    max_frame_len: u32,
    max_connections: usize,
    max_handshakes: usize,
    handshake_timeout: Duration,
    stall_timeout: Duration,
    thread_stack_size: usize,
    max_decode_depth: u32,
    max_buffered_bytes: usize,
    max_objects_per_connection: usize,
    keepalive: Option<keepalive::KeepaliveConfig>,
}

/// Stack of each connection thread. Registered functions and methods run on it, so it is
/// generous for ordinary code, yet a quarter of Rust's 2 MiB default: with thousands of
/// connections the reserved address space stays modest (only touched pages use memory).
const DEFAULT_STACK_SIZE: usize = 512 << 10;

/// Memory all connections together may use for frames in progress beyond their small first
/// buffers: room for several maximal frames at once, yet far from what a small machine has.
const DEFAULT_MAX_BUFFERED_BYTES: usize = 512 << 20;

/// How long a connection thread whose connection ended waits for the next one.
const IDLE_THREAD_WAIT: Duration = Duration::from_secs(10);

/// At most this many connection threads wait idle for reuse.
const MAX_IDLE_THREADS: usize = 64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_connections: 1024,
            max_handshakes: 64,
            handshake_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            thread_stack_size: DEFAULT_STACK_SIZE,
            max_decode_depth: crate::wire::codec::DEFAULT_MAX_DECODE_DEPTH,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_objects_per_connection: 10_000,
            keepalive: Some(keepalive::KeepaliveConfig {
                interval: crate::wire::protocol::KEEPALIVE_INTERVAL,
                timeout: crate::wire::protocol::KEEPALIVE_TIMEOUT,
            }),
        }
    }
}

/// Configures a [`Manager`]. Made by [`Manager::builder`]; errors surface at
/// [`ManagerBuilder::build`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct ManagerBuilder {
    authkey: Option<Vec<u8>>,
    address: Result<Address>,
    /// Further addresses, from `also_bind`.
    more_addresses: Vec<Result<Address>>,
    /// The other doors, each an address, its listener's name and how to make the listener
    /// (once per name, at `build`, when the rest of the configuration is known).
    doors: Vec<(Result<Address>, &'static str, MakeListener)>,
    /// Doors asked for that this build has no feature for.
    missing: Vec<&'static str>,
    /// The dashboard's token, if not derived from the authkey.
    http_token: Option<String>,
    #[cfg(feature = "python")]
    python_exposed: std::collections::HashMap<String, crate::python::PythonShared>,
    /// Whether Python clients get `SyncManager`'s typeids and the `get_dict(name)` family.
    #[cfg(feature = "python")]
    python_builtins: bool,
    registry: Registry,
    objects: ObjectsConfig,
    duplicates: Vec<String>,
    limits: Limits,
    store_limits: StoreLimits,
    storage: Storage,
    allow_remote_shutdown: bool,
    on_connection: Option<EventCallback>,
    /// Who besides the manager's user may open its named pipes.
    listen_options: ListenOptions,
}

impl ManagerBuilder {
    /// Lets the members of `group` (a name like `Users` or `DOMAIN\\group`, or a SID
    /// `S-1-…`) open the manager's named pipes too. By default only the user the manager runs
    /// as may: each pipe is created with a security descriptor that admits that user alone.
    /// A group that does not exist fails `start` with a clear error.
    #[cfg(windows)]
    pub fn pipe_group(mut self, group: impl Into<String>) -> Self {
        self.listen_options.pipe_group = Some(group.into());
        self
    }

    /// Calls `callback` whenever a client is authenticated and whenever its connection ends,
    /// from that connection's thread. Keep it short; a panic in it is caught and logged.
    pub fn on_connection(
        mut self,
        callback: impl Fn(&ConnectionEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_connection = Some(Arc::new(callback));
        self
    }

    /// The shared secret clients must prove they hold; must not be empty. Without one, the
    /// manager makes a random key (64 hex digits from 32 random bytes), as Python's `Manager()`
    /// does: hand it to child processes with [`ManagerHandle::command`].
    pub fn authkey(mut self, key: impl AsRef<[u8]>) -> Self {
        self.authkey = Some(key.as_ref().to_vec());
        self
    }

    /// Where to listen: `"127.0.0.1:4343"`, `"[::1]:0"`, `"unix:/run/app.sock"`, ...
    /// Port 0 picks a free port; read it back with [`ManagerHandle::address`].
    /// Defaults to `127.0.0.1:0`.
    pub fn bind(mut self, address: impl ToAddress) -> Self {
        self.address = address.to_address();
        self
    }

    /// Listens on `address` too: one manager, several listeners (a TCP port for remote
    /// clients and a Unix socket for local ones, say), all serving the same functions and
    /// objects. Read them back with [`ManagerHandle::addresses`].
    pub fn also_bind(mut self, address: impl ToAddress) -> Self {
        self.more_addresses.push(address.to_address());
        self
    }

    /// Also listens on `address` for unmodified Python clients of
    /// `multiprocessing.managers` (`BaseManager.connect()` with the same authkey, Python 3.8
    /// and later), serving them the same registered functions (`create(name, *args)` from
    /// `Manager.register(name)`) and the shared objects of [`ManagerBuilder::python_expose`].
    /// See the README's "From Python" section; data frames are capped at
    /// [`ManagerBuilder::max_frame_len`] (Python's own server has no cap). A build without
    /// the default `python` feature refuses it at `build`.
    pub fn python_listener(self, address: impl ToAddress) -> Self {
        self.listen(address, Door::python())
    }

    /// Also listens on `address` for msgpack-rpc clients in any language: registered
    /// functions by name, the built-in shared objects as `<kind>.<method>` (`counter.add`,
    /// `queue.put`, ...; `monogusa.describe` lists them), after proving the authkey with
    /// `monogusa.challenge` and `monogusa.prove`. See the README's "From any language". A
    /// build without the default `msgpack` feature refuses it at `build`.
    pub fn msgpack_listener(self, address: impl ToAddress) -> Self {
        self.listen(address, Door::msgpack_rpc())
    }

    /// Also serves the dashboard page and Prometheus `/metrics` over HTTP at `address`
    /// (feature `http`). Every path but `/healthz` needs the dashboard token (see
    /// [`ManagerHandle::http_token`]); actions that change state are POSTs that check it and the
    /// `Origin`. Bind it to loopback unless a proxy in front of it adds TLS.
    pub fn http(self, address: impl ToAddress) -> Self {
        self.listen(address, Door::http())
    }

    /// Serves `door` at `address`: the one registration every door goes through
    /// (`python_listener`, `msgpack_listener`, `http` and `also_bind` are this with their
    /// door). A door serves the same functions and objects as every other; several addresses
    /// may share a door. A door this build has no feature for is refused at `build`.
    ///
    /// ```
    /// # fn main() -> monogusa::Result<()> {
    /// use monogusa::{Door, Manager};
    /// let manager = Manager::builder()
    ///     .listen("127.0.0.1:0", Door::native())
    ///     .listen("127.0.0.1:0", Door::msgpack_rpc())
    ///     .build()?
    ///     .start()?;
    /// assert_eq!(manager.msgpack_addresses().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn listen(mut self, address: impl ToAddress, door: Door) -> Self {
        match door.make {
            _ if door.name == NATIVE_NAME => self.more_addresses.push(address.to_address()),
            Ok(make) => self.doors.push((address.to_address(), door.name, make)),
            Err(what) => self.missing.push(what),
        }
        self
    }

    /// The dashboard's token (at least 16 characters), instead of the default: the one kept
    /// in the data directory's `dashboard-token` (made 0600 at the first start), or without
    /// one a random token for this run ([`ManagerHandle::http_token`]). The token is never
    /// derived from the authkey, and the log shows only its first characters.
    pub fn http_token(mut self, token: impl Into<String>) -> Self {
        self.http_token = Some(token.into());
        self
    }

    /// Offers a built-in shared object to Python clients under `typeid` (the name they
    /// `register`): `builder.python_expose("get_queue", PythonShared::queue::<u64>("jobs"))`,
    /// then in Python `m.get_queue().put(7)`, while a Rust client's `client.queue::<u64>("jobs",
    /// 0)` gets 7.
    #[cfg(feature = "python")]
    pub fn python_expose(mut self, typeid: &str, shared: crate::python::PythonShared) -> Self {
        if self.python_exposed.contains_key(typeid) || self.registry.get(typeid).is_some() {
            self.duplicates.push(typeid.to_string());
        }
        self.python_exposed.insert(typeid.to_string(), shared);
        self
    }

    /// Serves Python clients what an unmodified `SyncManager(address, authkey).connect()`
    /// creates (`m.dict()`, `m.list()`, `m.Queue()`, `m.JoinableQueue()`, `m.Lock()`,
    /// `m.RLock()`, `m.Semaphore()`, `m.BoundedSemaphore()`, `m.Condition()`, `m.Event()`,
    /// `m.Barrier(n)`, `m.Value(typecode, v)`, `m.Array(typecode, seq)`, `m.Namespace()`),
    /// each freed with its last proxy, and the manager's named shared objects through
    /// `get_dict(name)`, `get_list(name)`, `get_queue(name)`, `get_counter(name)`,
    /// `get_value(name)`, `get_lock(name)` and `get_event(name)` (registered on a plain
    /// `BaseManager` subclass). Their elements are any Python value: from Rust, open them with
    /// [`Dynamic`](crate::Dynamic) elements (`client.dict::<Dynamic, Dynamic>(name)`).
    /// `python_expose` typeids and registered functions of the same name come first.
    /// `monogusa serve --python` turns it on.
    #[cfg(feature = "python")]
    pub fn python_builtins(mut self) -> Self {
        self.python_builtins = true;
        self
    }

    /// Serves `function` under `name`. It may take 0 to 8 serde arguments and return a
    /// serde value or `Result<T, E>` with `E: Display` (see [`IntoReply`]). It runs on the
    /// calling connection's thread, so functions that share state synchronize it themselves.
    ///
    /// Registering a name twice is reported by [`ManagerBuilder::build`].
    pub fn register<Args: 'static, H: Handler<Args>>(mut self, name: &str, function: H) -> Self {
        if !self.registry.insert(name, function) {
            self.duplicates.push(name.to_string());
        }
        self
    }

    /// Serves `object` under `name` for the manager's whole life. `object` is a generated
    /// server wrapper: for `#[monogusa::service] trait Counter`, `CounterServer::new(value)`
    /// where `value` implements `Counter`. Clients open it with `CounterClient::open`.
    ///
    /// The object sits behind its own lock: `&mut self` methods run one at a time, `&self`
    /// methods may run together. Objects under different names are independent.
    /// Served objects share one namespace with the built-in shared objects: a client opening
    /// `name` as a counter, say, is told it is a served object. An empty name is refused.
    pub fn serve<S: Service>(mut self, name: &str, object: S) -> Self {
        if name.is_empty() {
            self.duplicates.push("an object with an empty name".into());
        } else if !self.objects.serve(name, Box::new(object)) {
            self.duplicates.push(format!("object {name}"));
        }
        self
    }

    /// Lets clients create objects, like Python's `manager.register(typeid, callable)`:
    /// `CounterClient::create(&client, args)` calls `constructor` (0 to 8 serde arguments,
    /// returning a generated `XServer`) in the manager. `type_id` is the name clients use;
    /// a stub's `create` uses its service's name, `create_as` any other.
    ///
    /// A created object lives while any stub refers to it, in any process; references held
    /// by a connection that closes or dies are released with it.
    pub fn register_type<Args: 'static, C: Constructor<Args>>(
        mut self,
        type_id: &str,
        constructor: C,
    ) -> Self {
        if !self.objects.register_type(type_id, constructor) {
            self.duplicates.push(format!("type {type_id}"));
        }
        self
    }

    /// The largest frame accepted from a client (default 64 MiB). Larger frames are refused
    /// before they are buffered, and the connection is closed with a notice.
    pub fn max_frame_len(mut self, bytes: u32) -> Self {
        self.limits.max_frame_len = bytes;
        self
    }

    /// How many authenticated connections each door may have open at once (default 1024; the
    /// dashboard at most 64); further clients are refused in the door's words (a Rust client
    /// gets [`Error::Refused`]) while the others are served.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.max_connections = connections;
        self
    }

    /// How long a client may take, in all, to send a frame it has started, or to read the
    /// replies the manager is writing to it (default 30 s); past that the connection is
    /// closed. A total deadline, not per read: a byte every few seconds does not extend it.
    /// Idle connections, with no frame begun, are never timed out.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.limits.stall_timeout = timeout;
        self
    }

    /// How many connections each door may have in the handshake at once (default 64), apart from the
    /// authenticated ones, which peers without the key can therefore never crowd out. When
    /// all are taken, a new connection displaces the one that has been waiting longest from
    /// the address holding most of them: an honest handshake takes a round trip or two, so
    /// only stalling peers are displaced, and a flood from one host displaces its own.
    pub fn max_handshakes(mut self, handshakes: usize) -> Self {
        self.limits.max_handshakes = handshakes;
        self
    }

    /// How long a new connection has, in all, to complete the handshake (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.handshake_timeout = timeout;
        self
    }

    /// Whether [`Client::shutdown_server`](crate::Client::shutdown_server) may stop this
    /// manager (default: yes; every client holds the key anyway).
    pub fn allow_remote_shutdown(mut self, allow: bool) -> Self {
        self.allow_remote_shutdown = allow;
        self
    }

    /// Stack size of each connection thread; registered functions and methods run on it
    /// (default 512 KiB). Raise it for deeply recursive handlers.
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.limits.thread_stack_size = bytes;
        self
    }

    /// How many bytes of frames still arriving all connections together may buffer, beyond a
    /// few KiB each (default 512 MiB). A connection whose frame cannot grow within it is closed
    /// with a `LimitExceeded` notice; the others are served.
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_buffered_bytes = bytes;
        self
    }

    /// How deeply nested the arguments of a call may be (default 128 levels; `Some(Box<T>)`
    /// counts two). Deeper arguments get a `BadArguments` error instead of overflowing the
    /// connection thread's stack, which would abort the whole manager. Raise it together with
    /// [`ManagerBuilder::thread_stack_size`].
    pub fn max_decode_depth(mut self, levels: u32) -> Self {
        self.limits.max_decode_depth = levels;
        self
    }

    /// How many built-in shared objects (counters, dicts, queues, ...) may exist at once
    /// (default 100,000). Opening a new name past it is a `LimitExceeded` error; see
    /// [`Client::delete_shared`](crate::Client::delete_shared).
    pub fn max_shared_objects(mut self, objects: usize) -> Self {
        self.store_limits.max_objects = objects;
        self
    }

    /// How many bytes the built-in shared objects may hold in all (default 512 MiB), counting
    /// each item's encoding and a small overhead. A put, insert or push past it is a
    /// `LimitExceeded` error and changes nothing.
    pub fn max_store_bytes(mut self, bytes: u64) -> Self {
        self.store_limits.max_bytes = bytes;
        self
    }

    /// Keeps the task queues and the built-in counters, values, dicts, lists and queues in
    /// `dir` (created if missing), so a restarted manager gives them back: ready, delayed and
    /// dead tasks, and leases held at a crash back as ready with the attempt counted. Locks,
    /// semaphores, events and barriers belong to live connections and are not kept.
    ///
    /// Durability: when a mutation returns `Ok`, it is on disk (SQLite in WAL mode with
    /// `synchronous=FULL`; concurrent mutations share a commit). A write that fails (a full
    /// disk) is a [`RemoteErrorKind::Storage`](crate::RemoteErrorKind::Storage) error for its
    /// caller. See [`ManagerBuilder::durability`] to trade that for speed.
    ///
    /// Only one manager may use a directory: a second one fails to start with a clear error.
    /// Without a data directory everything lives in memory, as in Python's managers. A build
    /// without the default `durable` feature refuses a data directory at `build`.
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.storage.dir = Some(dir.into());
        self
    }

    /// When a mutation of a kept object returns (with [`ManagerBuilder::data_dir`]):
    /// [`Durability::Full`] (the default), once it is on disk; or [`Durability::Every`], at
    /// once, committing at least that often, so a crash (not a clean stop) may lose the last
    /// interval's changes.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.storage.durability = durability;
        self
    }

    /// The largest item (encoded) a built-in shared object takes (default 16 MiB).
    pub fn max_item_bytes(mut self, bytes: usize) -> Self {
        self.store_limits.max_item_bytes = bytes;
        self
    }

    /// How long a worker that stopped, exited, was given up on or lost stays in the worker
    /// list (`client.workers()`, `monogusa stat`, the dashboard) before it moves to the short
    /// list of recently gone ones (`client.workers_gone()`): 60 s by default.
    pub fn forget_workers_after(mut self, after: Duration) -> Self {
        self.store_limits.forget_workers_after = after;
        self
    }

    /// How long a task queue remembers a task after its ack, with its result, for
    /// [`TaskQueue::status`](crate::TaskQueue::status) and
    /// [`TaskQueue::result`](crate::TaskQueue::result) (default a day; zero keeps nothing: a
    /// done task's status is then `Unknown`). Each record is charged to `max_store_bytes`
    /// (about 64 bytes and its result) until it goes.
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.store_limits.result_ttl = ttl;
        self
    }

    /// Where the manager's time comes from: the system's clock (the default), or a
    /// [`TestClock`](crate::TestClock) a test moves by hand, so task queues' delays, retries'
    /// backoff, lease expiries and results' time-to-live fall due without real waiting.
    pub fn clock(mut self, clock: impl Into<crate::Clock>) -> Self {
        self.store_limits.clock = clock.into();
        self
    }

    /// How many items one queue, dict or list may hold (default 1,000,000). A queue created
    /// with capacity 0 is bounded by this.
    pub fn max_items_per_container(mut self, items: usize) -> Self {
        self.store_limits.max_items = items;
        self
    }

    /// While a call runs long, the manager sends its client a heartbeat every `interval`, and
    /// closes the connection of a client that has sent nothing (clients ping while they wait)
    /// for `timeout`: a client that died or became unreachable without closing (its host
    /// gone, a relay that stopped forwarding) is noticed in seconds, and what its call waited
    /// for goes to the living. Default: 2 s and 10 s, like the client's
    /// [`ClientBuilder::keepalive`](crate::ClientBuilder::keepalive).
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.limits.keepalive = Some(keepalive::KeepaliveConfig {
            interval: interval.max(Duration::from_millis(1)),
            timeout,
        });
        self
    }

    /// Turns the keepalive off: no heartbeats, and long calls of silent clients are never
    /// cut (for clients built with
    /// [`ClientBuilder::no_keepalive`](crate::ClientBuilder::no_keepalive)).
    pub fn no_keepalive(mut self) -> Self {
        self.limits.keepalive = None;
        self
    }

    /// How many created objects (`register_type`) one connection may hold references to at
    /// once (default 10,000).
    pub fn max_objects_per_connection(mut self, objects: usize) -> Self {
        self.limits.max_objects_per_connection = objects;
        self
    }

    /// Checks the configuration and makes the manager; nothing is bound yet.
    pub fn build(mut self) -> Result<Manager> {
        let key = match self.authkey.take() {
            Some(key) => {
                warn_if_weak(&key);
                key
            }
            None => random_key()?,
        };
        let raw_key = key.clone();
        let key = AuthKey::new(&key)?;
        let first = std::mem::replace(&mut self.address, Ok(Address::tcp("127.0.0.1", 0)));
        let mut addresses = vec![first?];
        for more in std::mem::take(&mut self.more_addresses) {
            addresses.push(more?);
        }
        if let Some(what) = self.missing.first() {
            return Err(Error::Config(format!(
                "this build of monogusa has no {what}"
            )));
        }
        // Each door's listener is made once, however many addresses it serves.
        let pending = std::mem::take(&mut self.doors);
        let mut made: Vec<(&'static str, Arc<dyn Listener>)> = Vec::new();
        let mut doors = Vec::with_capacity(pending.len());
        for (address, name, make) in pending {
            let listener = match made.iter().find(|(made, _)| *made == name) {
                Some((_, listener)) => Arc::clone(listener),
                None => {
                    let listener = make(&self, &raw_key)?;
                    made.push((name, Arc::clone(&listener)));
                    listener
                }
            };
            doors.push((address?, listener));
        }
        if !self.duplicates.is_empty() {
            return Err(Error::Config(format!(
                "names registered more than once, or empty: {}",
                self.duplicates.join(", ")
            )));
        }
        if self.limits.max_connections == 0 {
            return Err(Error::Config("max_connections must be at least 1".into()));
        }
        if self.limits.max_handshakes == 0 {
            return Err(Error::Config("max_handshakes must be at least 1".into()));
        }
        Ok(Manager {
            key,
            raw_key,
            addresses,
            doors,
            registry: self.registry,
            objects: self.objects,
            limits: self.limits,
            store_limits: self.store_limits,
            storage: self.storage,
            allow_remote_shutdown: self.allow_remote_shutdown,
            on_connection: self.on_connection,
            listen_options: self.listen_options,
        })
    }
}

/// Where the built-in shared objects are kept.
#[derive(Debug, Clone)]
struct Storage {
    /// A data directory; `None` keeps everything in memory.
    dir: Option<std::path::PathBuf>,
    durability: Durability,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            dir: None,
            durability: Durability::Full,
        }
    }
}

impl Storage {
    fn open(&self) -> Result<Box<dyn crate::store::backend::StoreBackend>> {
        match &self.dir {
            None => Ok(Box::new(crate::store::backend::Memory)),
            #[cfg(feature = "durable")]
            Some(dir) => {
                let store = crate::store::backend::Durable::open(dir, self.durability)?;
                log::info!("keeping shared objects in {}", dir.display());
                Ok(Box::new(store))
            }
            #[cfg(not(feature = "durable"))]
            Some(dir) => {
                let _ = self.durability;
                Err(Error::Config(format!(
                    "cannot keep objects in {}: this build of monogusa has no data directories \
                     (enable its `durable` feature)",
                    dir.display()
                )))
            }
        }
    }
}

/// A fresh random key: 32 random bytes as 64 hex digits, so it travels in an environment
/// variable on any platform.
fn random_key() -> Result<Vec<u8>> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Config(format!("no OS randomness for a random authkey: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes())
}

pub use crate::wire::protocol::{
    ADDRESS_VAR, AUTHKEY_VAR, MSGPACK_ADDRESS_VAR, PYTHON_ADDRESS_VAR,
};

/// Keys shorter than this are warned about (once per process): guessable over the network,
/// however slowly. They are not refused: Python's tutorials use `password`.
const WEAK_KEY_LEN: usize = 16;

fn warn_if_weak(key: &[u8]) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if !key.is_empty() && key.len() < WEAK_KEY_LEN {
        WARNED.call_once(|| {
            log::warn!(
                "the authkey is only {} bytes long: anyone who can connect may guess it; \
                 use at least {WEAK_KEY_LEN} random bytes outside of examples",
                key.len()
            );
        });
    }
}

/// A manager: the process that owns functions and serves them to authenticated clients.
///
/// Start it in the background with [`Manager::start`], or run it in the foreground with
/// [`Manager::serve_forever`].
pub struct Manager {
    key: AuthKey,
    /// The key's bytes, for [`ManagerHandle::command`].
    raw_key: Vec<u8>,
    /// Where it listens: at least one address.
    addresses: Vec<Address>,
    /// Its other doors.
    doors: Vec<(Address, Arc<dyn Listener>)>,
    registry: Registry,
    objects: ObjectsConfig,
    limits: Limits,
    store_limits: StoreLimits,
    storage: Storage,
    allow_remote_shutdown: bool,
    on_connection: Option<EventCallback>,
    listen_options: ListenOptions,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("addresses", &self.addresses)
            .field("functions", &self.registry.names())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Starts configuring a manager.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            authkey: None,
            address: Ok(Address::tcp("127.0.0.1", 0)),
            more_addresses: Vec::new(),
            doors: Vec::new(),
            missing: Vec::new(),
            http_token: None,
            #[cfg(feature = "python")]
            python_exposed: std::collections::HashMap::new(),
            #[cfg(feature = "python")]
            python_builtins: false,
            registry: Registry::default(),
            objects: ObjectsConfig::default(),
            duplicates: Vec::new(),
            limits: Limits::default(),
            store_limits: StoreLimits::default(),
            storage: Storage::default(),
            allow_remote_shutdown: true,
            on_connection: None,
            listen_options: ListenOptions::default(),
        }
    }

    /// Binds the address and serves in background threads. The returned handle tells the
    /// bound address and stops the manager when asked or dropped.
    pub fn start(self) -> Result<ManagerHandle> {
        let (shared, listeners) = self.bind()?;
        let mut addresses = Vec::new();
        let mut doors = Vec::new();
        for (socket, door) in &listeners {
            let address = socket.local_address()?;
            let listener = &shared.doors[*door].listener;
            listener.announce(&shared, &address);
            if *door == NATIVE_DOOR {
                addresses.push(address);
            } else {
                doors.push((address, listener.name()));
            }
        }
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("monogusa-accept".into())
                .spawn(move || serve(&shared, listeners))?
        };
        Ok(ManagerHandle {
            shared,
            addresses,
            doors,
            acceptor: Some(acceptor),
        })
    }

    /// Binds the address and serves on the calling thread until SIGINT or SIGTERM arrives or
    /// a client asks for shutdown; then stops accepting, lets calls in flight finish, removes
    /// a Unix socket file, and returns. A second signal during that exits the process at once.
    pub fn serve_forever(self) -> Result<()> {
        self.serve_forever_with(|_| {})
    }

    /// [`Manager::serve_forever`], calling `ready` with the addresses it listens on (real
    /// ports) once they are bound and its signal handlers are in place, before it serves: the
    /// moment to tell a parent process, write a pid file or start a supervisor.
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// monogusa::Manager::builder()
    ///     .bind("127.0.0.1:0")
    ///     .build()?
    ///     .serve_forever_with(|addresses| println!("ready on {}", addresses[0]))?;
    /// # Ok(()) }
    /// ```
    pub fn serve_forever_with(self, ready: impl FnOnce(&[Address])) -> Result<()> {
        let (shared, listeners) = self.bind()?;
        let mut native = Vec::new();
        for (socket, door) in &listeners {
            let address = socket.local_address()?;
            shared.doors[*door].listener.announce(&shared, &address);
            if *door == NATIVE_DOOR {
                native.push(address);
            }
        }
        let second_signal_exits = Arc::new(AtomicBool::new(false));
        // On Unix a second signal ends the process inside the signal handler, even if the
        // shutdown is stuck; elsewhere the watcher below does it.
        #[cfg(unix)]
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(
                signal,
                1,
                Arc::clone(&second_signal_exits),
            )?;
        }
        let signals = {
            let shared = Arc::clone(&shared);
            crate::stop_signals::StopSignals::watch("monogusa-signals", move |signal| {
                if second_signal_exits.swap(true, SeqCst) {
                    log::warn!("{signal} again: exiting at once");
                    std::process::exit(1);
                }
                log::info!("{signal} received: shutting down");
                shared.begin_shutdown();
            })?
        };
        ready(&native);
        serve(&shared, listeners);
        drop(signals);
        Ok(())
    }

    fn bind(self) -> Result<(Arc<Shared>, Vec<Bound>)> {
        defenses::raise_descriptor_limit();
        defenses::watch_for_deadlocks();
        // The store first: a data directory another manager holds stops us before we bind.
        let objects = Objects::new(
            self.objects,
            self.store_limits,
            self.limits.max_objects_per_connection,
            self.storage.open()?,
        )?;
        let mut listeners = Vec::with_capacity(self.addresses.len());
        // The native door first (`NATIVE_DOOR`), then each other listener once.
        let mut doors = vec![admission::Door::new(Arc::new(Native), &self.limits)];
        let mut every: Vec<(&Address, usize)> =
            self.addresses.iter().map(|a| (a, NATIVE_DOOR)).collect();
        for (address, listener) in &self.doors {
            let index = match doors
                .iter()
                .position(|d| Arc::ptr_eq(&d.listener, listener))
            {
                Some(index) => index,
                None => {
                    doors.push(admission::Door::new(Arc::clone(listener), &self.limits));
                    doors.len() - 1
                }
            };
            every.push((address, index));
        }
        for (address, door) in every {
            listeners.push((ListeningSocket::bind(address, &self.listen_options)?, door));
            if let Address::Tcp { host, .. } = address
                && host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_unspecified())
            {
                log::warn!(
                    "listening on every interface ({address}): any host that can reach this \
                     one may try keys; bind to 127.0.0.1 or a Unix socket unless remote \
                     clients need it"
                );
            }
        }
        let wake_addresses = listeners
            .iter()
            .map(|(listener, _)| listener.wake_address())
            .collect::<std::io::Result<Vec<_>>>()?;
        // Where each door listens, for clients to find the others (a supervisor tells its
        // Python programs the Python door's address).
        let published = listeners
            .iter()
            .map(|(socket, door)| {
                let address = socket.local_address()?.to_string();
                Ok((doors[*door].listener.name().to_string(), address))
            })
            .collect::<Result<Vec<(String, String)>>>()?;
        let mut registry = self.registry;
        registry.insert(crate::wire::protocol::DOORS_FUNCTION, move || {
            published.clone()
        });
        let frame_budget = Budget::new(self.limits.max_buffered_bytes);
        let shared = Arc::new(Shared {
            registry,
            objects,
            key: self.key,
            raw_key: self.raw_key,
            limits: self.limits,
            allow_remote_shutdown: self.allow_remote_shutdown,
            wake_addresses,
            wake_spare: parking_lot::Mutex::new(defenses::SpareDescriptor::new()),
            stopping: AtomicBool::new(false),
            connections: Mutex::new(admission::Table::new(doors.len())),
            stats: Counters::default(),
            frame_budget,
            failure_log: defenses::RateLimitedLog::new(),
            guesses: defenses::Guesses::default(),
            on_connection: self.on_connection,
            doors,
            refusals: listener::refuser()?,
        });
        Ok((shared, listeners))
    }
}

/// Controls a manager started with [`Manager::start`]. Dropping it shuts the manager down.
#[derive(Debug)]
pub struct ManagerHandle {
    shared: Arc<Shared>,
    /// Every address it listens on; the first is the one given to `bind`.
    addresses: Vec<Address>,
    /// Its other doors' addresses, by the name of the listener serving each.
    doors: Vec<(Address, &'static str)>,
    acceptor: Option<JoinHandle<()>>,
}

impl ManagerHandle {
    /// The address the manager listens on, with the real port if port 0 was asked for.
    pub fn address(&self) -> &Address {
        &self.addresses[0]
    }

    /// Every address the manager listens on: [`ManagerBuilder::bind`]'s, then each of
    /// [`ManagerBuilder::also_bind`]'s, with real ports.
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// A command for `program` with this manager's address and authkey in its environment
    /// (`MONOGUSA_ADDRESS`, `MONOGUSA_AUTHKEY`; never its arguments, which other users can
    /// read), where [`Client::from_env`](crate::Client::from_env) finds them: the one line that
    /// starts a worker process.
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// let manager = monogusa::Manager::builder().build()?.start()?; // a random key
    /// let mut worker = manager.command(std::env::current_exe()?).arg("--worker").spawn()?;
    /// // In the worker: let client = monogusa::Client::from_env()?;
    /// # worker.wait()?;
    /// # Ok(()) }
    /// ```
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.env(ADDRESS_VAR, self.address().to_string());
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            command.env(
                AUTHKEY_VAR,
                std::ffi::OsStr::from_bytes(&self.shared.raw_key),
            );
        }
        #[cfg(not(unix))]
        command.env(
            AUTHKEY_VAR,
            String::from_utf8_lossy(&self.shared.raw_key).as_ref(),
        );
        command
    }

    /// A client of this manager, connected to its first address with its key (the key it
    /// made, for a manager built without one).
    pub fn client(&self) -> Result<crate::Client> {
        crate::Client::connect(self.address().clone(), &self.shared.raw_key)
    }

    /// The addresses of [`ManagerBuilder::http`], with real ports.
    pub fn http_addresses(&self) -> Vec<Address> {
        self.door_addresses("http")
    }

    /// Where the listener named `door` listens.
    fn door_addresses(&self, door: &str) -> Vec<Address> {
        self.doors
            .iter()
            .filter(|(_, name)| *name == door)
            .map(|(address, _)| address.clone())
            .collect()
    }

    /// The dashboard's token (given, or derived from the authkey): open
    /// `http://ADDRESS/?token=TOKEN` once, and the page keeps it in a cookie. `None` without
    /// a dashboard.
    pub fn http_token(&self) -> Option<&str> {
        self.shared.doors.iter().find_map(|d| d.listener.token())
    }

    /// The key clients prove, as given (or generated), for supervisors in this process.
    pub(crate) fn raw_key(&self) -> &[u8] {
        &self.shared.raw_key
    }

    /// The addresses of [`ManagerBuilder::python_listener`], with real ports.
    pub fn python_addresses(&self) -> Vec<Address> {
        self.door_addresses("python")
    }

    /// The addresses of [`ManagerBuilder::msgpack_listener`], with real ports.
    pub fn msgpack_addresses(&self) -> Vec<Address> {
        self.door_addresses("msgpack-rpc")
    }

    /// Counters of what the manager has done so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// What the manager offers, as [`Client::describe`](crate::Client::describe) sees it, without
    /// a connection: its functions, its first 1000 objects (and how many there are) and the
    /// types clients may create.
    pub fn describe(&self) -> crate::Description {
        let functions = self
            .shared
            .registry
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        self.shared
            .objects
            .describe(functions, 0, objects::DESCRIBE_PAGE)
    }

    /// Stops accepting, lets calls in flight finish and their replies go out, closes every
    /// connection, removes a Unix socket file, and returns once all of that is done.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Blocks until the manager stops, for example because a client called
    /// [`Client::shutdown_server`](crate::Client::shutdown_server).
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }

    fn stop(&mut self) {
        self.shared.begin_shutdown();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for ManagerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A change in a manager's connections, reported to the callback given to
/// [`ManagerBuilder::on_connection`] (in-process observers: a dashboard, a log, a test).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A client proved the key and is served.
    Connected {
        /// The connection's id, unique for the manager's run.
        id: u64,
        /// Who is on the other end (an address, or `unix peer`).
        peer: String,
    },
    /// An authenticated connection ended.
    Closed {
        /// The connection's id.
        id: u64,
        /// Who was on the other end.
        peer: String,
        /// Why it ended, in words.
        reason: String,
    },
}

type EventCallback = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

/// A snapshot of a manager's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted (including ones that then failed the handshake).
    pub connections_accepted: u64,
    /// Authenticated connections open now.
    pub connections_open: u64,
    /// Connections in the handshake now.
    pub handshakes_in_progress: u64,
    /// Handshakes cut short to make room for newer connections (see
    /// [`ManagerBuilder::max_handshakes`]).
    pub handshakes_displaced: u64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: u64,
    /// Handshakes that failed for a reason other than a wrong key (garbage, timeout, ...).
    pub handshake_failures: u64,
    /// Peers that presented a wrong authkey.
    pub auth_failures: u64,
    /// Connections closed because their client fell silent during a long call (see
    /// [`ManagerBuilder::keepalive`]).
    pub keepalive_cuts: u64,
    /// Connections closed for breaking the protocol after the handshake.
    pub protocol_errors: u64,
    /// Function calls received.
    pub calls: u64,
    /// Bytes all connections buffer now for frames in progress, beyond their small first
    /// buffers (bounded by [`ManagerBuilder::max_buffered_bytes`]).
    pub buffered_bytes: u64,
    /// Bytes the built-in shared objects hold now (see [`ManagerBuilder::max_store_bytes`]).
    pub store_bytes: u64,
    /// Built-in shared objects that exist now.
    pub shared_objects: u64,
    /// Connection threads waiting, idle, to serve the next connection.
    pub idle_threads: u64,
}

#[derive(Default)]
struct Counters {
    keepalive_cuts: AtomicU64,
    connections_accepted: AtomicU64,
    handshakes_displaced: AtomicU64,
    connections_refused: AtomicU64,
    handshake_failures: AtomicU64,
    auth_failures: AtomicU64,
    protocol_errors: AtomicU64,
    calls: AtomicU64,
}

/// A door a manager listens with: the wire format its clients speak. Give it to
/// [`ManagerBuilder::listen`] with an address.
#[derive(Clone, Copy)]
pub struct Door {
    name: &'static str,
    /// How its listener is made, or what this build lacks for it.
    make: std::result::Result<MakeListener, &'static str>,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Door").field(&self.name).finish()
    }
}

/// The native door's name.
const NATIVE_NAME: &str = "native";

impl Door {
    /// This crate's own protocol, for its Rust clients (what [`ManagerBuilder::bind`] and
    /// [`ManagerBuilder::also_bind`] serve).
    pub fn native() -> Door {
        Door {
            name: NATIVE_NAME,
            make: Ok(|_, _| Ok(Arc::new(Native))),
        }
    }

    /// Unmodified clients of Python's `multiprocessing.managers` (feature `python`; see
    /// [`ManagerBuilder::python_listener`]).
    pub fn python() -> Door {
        Door {
            name: "python",
            #[cfg(feature = "python")]
            make: Ok(python::Door::make),
            #[cfg(not(feature = "python"))]
            make: Err("Python listener (enable its `python` feature)"),
        }
    }

    /// msgpack-rpc clients in any language (feature `msgpack`; see
    /// [`ManagerBuilder::msgpack_listener`]).
    pub fn msgpack_rpc() -> Door {
        Door {
            name: "msgpack-rpc",
            #[cfg(feature = "msgpack")]
            make: Ok(msgpack::Door::make),
            #[cfg(not(feature = "msgpack"))]
            make: Err("msgpack listener (enable its `msgpack` feature)"),
        }
    }

    /// The dashboard and Prometheus `/metrics` over HTTP (feature `http`; see
    /// [`ManagerBuilder::http`]).
    pub fn http() -> Door {
        Door {
            name: "http",
            #[cfg(feature = "http")]
            make: Ok(http::Door::make),
            #[cfg(not(feature = "http"))]
            make: Err("HTTP dashboard (enable its `http` feature)"),
        }
    }

    /// Its name, as the log says it: `"native"`, `"python"`, `"msgpack-rpc"`, `"http"`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A bound socket and the door it serves (an index into `Shared::doors`).
type Bound = (ListeningSocket, usize);

/// How a door's listener is made at `build`, from the builder and the key.
type MakeListener = fn(&ManagerBuilder, &[u8]) -> Result<Arc<dyn Listener>>;

/// The native door's index in `Shared::doors`.
const NATIVE_DOOR: usize = 0;

/// The native door: the protocol of this crate's clients (see [`Listener`]).
struct Native;

impl Listener for Native {
    fn name(&self) -> &'static str {
        NATIVE_NAME
    }

    fn serve(&self, shared: &Arc<Shared>, connection: &listener::Admitted) -> String {
        connection::serve(shared, connection)
    }

    fn busy(&self, why: &str) -> Vec<u8> {
        auth::busy(why)
    }

    /// For reading only: calls in flight finish and their replies go out (the replies'
    /// writes are bounded by the stall deadline).
    fn closing(&self) -> Shutdown {
        Shutdown::Read
    }

    fn announce(&self, _: &Shared, address: &Address) {
        log::info!("manager listening on {address}");
    }
}

/// What the acceptor and every connection thread share.
struct Shared {
    registry: Registry,
    objects: Objects,
    key: AuthKey,
    /// The key's bytes, for [`ManagerHandle::command`] and the doors that MAC with it.
    raw_key: Vec<u8>,
    limits: Limits,
    allow_remote_shutdown: bool,
    /// Where to connect to wake each acceptor from a blocking `accept`.
    wake_addresses: Vec<Address>,
    /// A descriptor kept for those wake connections.
    wake_spare: parking_lot::Mutex<defenses::SpareDescriptor>,
    /// Set once, when shutdown begins; never cleared.
    stopping: AtomicBool,
    /// Every door's open connections (`admission`).
    connections: Mutex<admission::Table>,
    /// The doors: the native one first, then each other listener.
    doors: Vec<admission::Door>,
    stats: Counters,
    /// Memory for frames in progress, shared by every connection.
    frame_budget: Arc<Budget>,
    /// Log lines about peers that failed the handshake, rate-limited: a peer without the key
    /// must not be able to flood the log.
    failure_log: defenses::RateLimitedLog,
    /// Wrong keys by peer address, to slow down guessing.
    guesses: defenses::Guesses,
    on_connection: Option<EventCallback>,
    /// Refused peers, for the refuser thread (`listener::refuse`).
    refusals: std::sync::mpsc::SyncSender<(Stream, Vec<u8>)>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Starts shutting down (once): stop accepting; connection threads see the flag after
    /// their current batch. Safe to call from any thread, including a connection's own.
    fn begin_shutdown(&self) {
        if self.stopping.swap(true, SeqCst) {
            return;
        }
        // The acceptor is blocked in accept(): a connection of our own wakes it. Out of
        // descriptors, that connection could not be made (the manager once stayed up for
        // 27 minutes after SIGTERM): a descriptor kept for it is given up first.
        self.wake_spare.lock().release();
        for address in &self.wake_addresses {
            if let Err(e) = Stream::connect(address, Some(Duration::from_secs(1))) {
                log::debug!("waking the acceptor of {address}: {e}");
            }
        }
    }

    /// Tells the connection observer, if there is one; its panic is caught.
    fn report(&self, event: &ConnectionEvent) {
        if let Some(callback) = &self.on_connection
            && panic::catch_unwind(AssertUnwindSafe(|| callback(event))).is_err()
        {
            log::warn!("the on_connection callback panicked on {event:?}");
        }
    }

    /// A wrong key from `stream`'s peer, at any door: repeated ones from one address are
    /// answered ever more slowly, and a guess at one door slows every door for that address.
    pub(crate) fn wrong_key(&self, stream: &Stream) {
        let delay = self.guesses.failed(stream.peer_ip());
        if !delay.is_zero() {
            std::thread::sleep(delay.min(self.limits.handshake_timeout));
        }
    }

    /// The counters now, with the connections open.
    fn stats(&self) -> Stats {
        let (open, handshaking) = self.open_counts();
        let counters = &self.stats;
        Stats {
            connections_accepted: counters.connections_accepted.load(Relaxed),
            connections_open: open as u64,
            handshakes_in_progress: handshaking as u64,
            handshakes_displaced: counters.handshakes_displaced.load(Relaxed),
            keepalive_cuts: counters.keepalive_cuts.load(Relaxed),
            connections_refused: counters.connections_refused.load(Relaxed),
            handshake_failures: counters.handshake_failures.load(Relaxed),
            auth_failures: counters.auth_failures.load(Relaxed),
            protocol_errors: counters.protocol_errors.load(Relaxed),
            calls: counters.calls.load(Relaxed),
            buffered_bytes: self.frame_budget.used() as u64,
            store_bytes: self.objects.store_bytes(),
            shared_objects: self.objects.shared_count() as u64,
            idle_threads: self.idle_threads() as u64,
        }
    }
}

/// Serves every listener (an accept loop each; the first on this thread) until shutdown
/// begins, then ends in order: listeners closed, blocked calls woken, connections finished.
fn serve(shared: &Arc<Shared>, mut listeners: Vec<Bound>) {
    let keepalive = start_keepalive(shared);
    let first = listeners.remove(0);
    let others: Vec<JoinHandle<()>> = listeners
        .into_iter()
        .filter_map(|listener| {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name("monogusa-accept".into())
                .spawn(move || accept_loop(&shared, listener.0, listener.1))
                .map_err(|e| log::error!("cannot start an acceptor: {e}"))
                .ok()
        })
        .collect();
    accept_loop(shared, first.0, first.1);
    for other in others {
        let _ = other.join();
    }
    shared.objects.shutdown(); // wake calls blocked in shared objects, so they can reply
    shared.close_connections();
    if let Some((stop, thread)) = keepalive {
        drop(stop);
        let _ = thread.join();
    }
    shared.objects.close_store();
    log::info!("manager stopped");
}

/// One listener's accept loop: runs until shutdown begins, then drops the listener (which
/// removes a Unix socket file).
fn accept_loop(shared: &Arc<Shared>, socket: ListeningSocket, door: usize) {
    let listener = &*shared.doors[door].listener;
    // A descriptor kept in reserve: when the process runs out, it is given up for a moment to
    // accept the waiting peer and tell it BUSY, instead of leaving it hanging.
    let mut spare = defenses::SpareDescriptor::new();
    loop {
        match socket.accept() {
            Ok(stream) if shared.stopping.load(SeqCst) => {
                drop(stream);
                break;
            }
            Ok(stream) => {
                // Nothing in admitting a connection should panic, but a panic there (in a
                // logger, say) must not end the acceptor and with it the whole manager.
                let admitted = panic::catch_unwind(AssertUnwindSafe(|| shared.admit(door, stream)));
                if admitted.is_err() {
                    shared
                        .failure_log
                        .warn(format_args!("admitting a connection panicked; serving on"));
                }
            }
            Err(_) if shared.stopping.load(SeqCst) => break,
            Err(e) if defenses::out_of_descriptors(&e) => {
                shared.failure_log.warn(format_args!(
                    "accept failed: {e}; refusing new connections until descriptors free up"
                ));
                if spare.release() {
                    if let Ok(stream) = socket.accept() {
                        listener::refuse_at_once(
                            shared,
                            listener,
                            stream,
                            "the manager is out of file descriptors",
                        );
                    }
                    spare.restore();
                }
                // Back off: the condition persists until connections close.
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                // A connection reset before accept, say: keep serving the others, but do not
                // spin if the condition persists.
                shared.failure_log.warn(format_args!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    drop(socket); // stop queueing new connections; removes a Unix socket file
}

/// Starts the keepalive thread, if the manager has a keepalive; dropping the sender stops it.
fn start_keepalive(shared: &Arc<Shared>) -> Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)> {
    let config = shared.limits.keepalive?;
    let (stop, stopped) = std::sync::mpsc::channel();
    let shared = Arc::clone(shared);
    let thread = thread::Builder::new()
        .name("monogusa-keepalive".into())
        .spawn(move || {
            keepalive::watch(
                config,
                stopped,
                || shared.busy_connections(),
                |_| {
                    shared.stats.keepalive_cuts.fetch_add(1, Relaxed);
                },
            )
        });
    match thread {
        Ok(thread) => Some((stop, thread)),
        Err(e) => {
            log::error!("cannot start the keepalive thread: {e}");
            None
        }
    }
}

/// Reads and discards what a refused peer already sent, briefly, so our refusal reaches it
/// before a reset would.
fn drain_briefly(stream: &mut Stream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut sink = [0u8; 1024];
    let _ = stream.read(&mut sink);
    let _ = stream.flush();
}
