//! The blocking client: connections to one manager, and calls over them.
//!
//! A [`Client`] keeps a small pool of authenticated connections. Each call takes one for its
//! whole round trip, so calls from different threads run in parallel on separate connections
//! (and separate manager threads), and a call that blocks in the manager holds up only its own
//! connection. A connection whose state is uncertain after an error (timeout, lost
//! connection) is dropped, never reused; the next call opens a fresh one, retrying with
//! backoff if the manager is not reachable yet.
//!
//! [`Client::send`] instead queues calls on one shared pipeline connection and returns
//! [`Pending`] replies: many calls in flight from one thread (see `pipeline`).

mod batch;
mod connection;
mod pipeline;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::service::Description;
use crate::transport::{Address, ToAddress};
use crate::wire::auth::AuthKey;
use crate::wire::frame::DEFAULT_MAX_FRAME_LEN;
use crate::wire::message::Op;

pub use batch::Batch;
pub(crate) use connection::Connection;
use connection::Health;
pub use pipeline::Pending;
use pipeline::Pipe;

/// A change in a client's connection to its manager, reported to the callback given to
/// [`ClientBuilder::on_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Connected and authenticated (first connection, or again after a loss).
    Connected,
    /// A connection broke, or no connection could be made.
    Disconnected {
        /// What went wrong.
        reason: String,
    },
    /// Opening a connection failed; retrying after `delay`.
    Reconnecting {
        /// The retry's number, from 1.
        attempt: u32,
        /// How long the client waits before it.
        delay: Duration,
    },
}

type StatusCallback = Arc<dyn Fn(&ConnectionStatus) + Send + Sync>;

/// How a client notices a manager that went silent while a call waits (see
/// [`ClientBuilder::keepalive`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    /// A waiting call pings the manager this often.
    pub(crate) interval: Duration,
    /// A waiting call that hears nothing for this long gives up with `ConnectionLost`.
    pub(crate) timeout: Duration,
}

/// The default keepalive (the protocol's, which the manager uses too).
pub(crate) const DEFAULT_KEEPALIVE: Keepalive = Keepalive {
    interval: crate::wire::protocol::KEEPALIVE_INTERVAL,
    timeout: crate::wire::protocol::KEEPALIVE_TIMEOUT,
};

#[derive(Debug, Clone)]
pub(crate) struct Options {
    connect_timeout: Option<Duration>,
    handshake_timeout: Duration,
    call_timeout: Option<Duration>,
    max_frame_len: u32,
    max_decode_depth: u32,
    keepalive: Option<Keepalive>,
    max_idle_connections: usize,
    reconnect_attempts: u32,
    reconnect_backoff: Duration,
    prove_with_first_call: bool,
}

/// Configures a [`Client`]; made by [`Client::builder`].
#[must_use = "a builder does nothing until `connect` is called"]
pub struct ClientBuilder {
    address: Result<Address>,
    authkey: Vec<u8>,
    options: Options,
    status: Option<StatusCallback>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("address", &self.address)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// How long establishing a connection may take (default: the OS's limit). It also
    /// bounds waiting for a manager that is still starting: [`ClientBuilder::connect`]
    /// retries a refused first connection (nothing listens yet, or a Unix socket not made
    /// yet) until `timeout` has passed, so a program started beside its manager needs no
    /// retry loop of its own.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = Some(timeout);
        self
    }

    /// Sends the client's proof of the key together with its first call instead of waiting
    /// for the manager's answer first: a fresh client's first call then costs two round
    /// trips instead of three (connect, handshake and call together, as measured by the
    /// harness's "connect + handshake + call + close"). The manager checks the proof before
    /// it reads the call: with a wrong key the call never runs.
    ///
    /// The price: [`ClientBuilder::connect`] no longer knows whether the key is right (it
    /// still reports a wrong address, and a manager that is not one of ours), so a wrong key
    /// is reported as [`Error::Authentication`] by the first call. Off by default. Whatever
    /// this says, connections a client opens after its key was accepted once (more threads
    /// calling at once, reconnecting after a restart) always send their proof with their
    /// first call.
    pub fn prove_with_first_call(mut self, yes: bool) -> Self {
        self.options.prove_with_first_call = yes;
        self
    }

    /// How long the handshake may take (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.options.handshake_timeout = timeout;
        self
    }

    /// A default timeout for every call (default: none, calls wait as long as the function
    /// runs). A call that times out returns [`Error::Timeout`]; it may still run in the manager.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.options.call_timeout = Some(timeout);
        self
    }

    /// The largest frame sent or accepted (default 64 MiB). A request over it is refused
    /// locally with [`Error::FrameTooLarge`] and nothing is sent.
    pub fn max_frame_len(mut self, bytes: u32) -> Self {
        self.options.max_frame_len = bytes;
        self
    }

    /// How deeply nested a reply may be (default 128 levels; `Some(Box<T>)` counts two).
    /// A deeper reply is an [`Error::Codec`] instead of a stack overflow.
    pub fn max_decode_depth(mut self, levels: u32) -> Self {
        self.options.max_decode_depth = levels;
        self
    }

    /// How a waiting call notices a manager that died or became unreachable without closing
    /// the connection (a host gone, a relay that stops forwarding): while a call waits, the
    /// client pings every `interval` and the manager sends heartbeats; a call that hears
    /// nothing for `timeout` fails with [`Error::ConnectionLost`]. Calls that rightly wait
    /// long (`Queue::get`, `Lock::acquire`) wait as long as the manager lives. Default: 2 s and
    /// 10 s. The manager's side is [`ManagerBuilder::keepalive`](crate::ManagerBuilder::keepalive).
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.options.keepalive = Some(Keepalive {
            interval: interval.max(Duration::from_millis(1)),
            timeout,
        });
        self
    }

    /// Turns the keepalive off: a call without a timeout waits for its reply however long
    /// the manager stays silent.
    pub fn no_keepalive(mut self) -> Self {
        self.options.keepalive = None;
        self
    }

    /// How many idle connections to keep for reuse (default 64). Calls from more threads
    /// than this at once still work; the extra connections are closed after their call.
    pub fn max_idle_connections(mut self, connections: usize) -> Self {
        self.options.max_idle_connections = connections;
        self
    }

    /// After a lost connection, how often to retry opening a new one before a call fails,
    /// and the first delay (doubled each time, at most 1 s). Default: 4 retries from 25 ms.
    /// The first connection ([`ClientBuilder::connect`]) is never retried: a wrong address
    /// should fail at once.
    pub fn reconnect(mut self, attempts: u32, first_delay: Duration) -> Self {
        self.options.reconnect_attempts = attempts;
        self.options.reconnect_backoff = first_delay;
        self
    }

    /// Calls `callback` on every change of connection status (connected, disconnected,
    /// reconnecting), from whichever thread noticed it. Keep it short; it must not call
    /// the client.
    pub fn on_status(
        mut self,
        callback: impl Fn(&ConnectionStatus) + Send + Sync + 'static,
    ) -> Self {
        self.status = Some(Arc::new(callback));
        self
    }

    /// Connects and authenticates once, so a wrong address or key is reported here.
    pub fn connect(self) -> Result<Client> {
        let key = AuthKey::new(&self.authkey)?;
        let address = self.address?;
        let client = Client {
            inner: Arc::new(Inner {
                address,
                key,
                options: self.options,
                idle: Mutex::new(Vec::new()),
                session: Mutex::new(Session::default()),
                pipe: Mutex::new(None),
                connected: AtomicBool::new(false),
                proven: AtomicBool::new(false),
                status: self.status,
            }),
        };
        let first = client.first_connection()?;
        client.inner.idle.lock().push(first);
        Ok(client)
    }
}

/// Whether a connect failed because nothing listens there (yet).
fn nobody_listens(error: &Error) -> bool {
    matches!(error, Error::Io(e) if matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
    ))
}

impl Client {
    /// The first connection: with a connect timeout, a manager not listening yet is waited
    /// for until the timeout has passed.
    fn first_connection(&self) -> Result<Connection> {
        let Some(limit) = self.inner.options.connect_timeout else {
            return self.open_connection(0);
        };
        let deadline = std::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.open_connection(0) {
                Err(e) if nobody_listens(&e) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }
}

/// A connection to a manager. Cheap to clone; clones share connections and may be used
/// from any number of threads at once.
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
/// let n: i64 = client.call("get", ("hikakin",))?;
/// client.call::<()>("inc", ("hikakin",))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    address: Address,
    key: AuthKey,
    options: Options,
    idle: Mutex<Vec<Connection>>,
    session: Mutex<Session>,
    /// The pipeline connection for `send`, made on first use and replaced after a failure.
    pipe: Mutex<Option<Arc<Pipe>>>,
    /// Last status reported: connected or not.
    connected: AtomicBool,
    /// The manager accepted our key once: new connections send their proof with their
    /// first request.
    proven: AtomicBool,
    status: Option<StatusCallback>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.get_mut().take() {
            pipe.close();
        }
    }
}

/// The connection that holds this client's references to objects in the manager.
///
/// References live on one dedicated connection, not on the pooled ones: a pooled connection
/// may be closed after any error, and the manager releases what a closed connection held.
/// Stubs count locally (clones cost no round trip); the manager holds one reference per
/// object while the local count is above zero.
#[derive(Default)]
struct Session {
    connection: Option<Connection>,
    /// Local reference counts by object id, for references taken in this generation.
    counts: HashMap<u64, usize>,
    /// Bumped whenever the session connection is lost, which releases every reference it
    /// held: handles counted in an older generation then own nothing.
    generation: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects with the address and authkey a supervising process put in the environment
    /// (`MONOGUSA_ADDRESS`, `MONOGUSA_AUTHKEY`, as
    /// [`ManagerHandle::command`](crate::ManagerHandle::command) sets them). A missing
    /// variable is an [`Error::Config`] naming it.
    pub fn from_env() -> Result<Client> {
        let read = |name: &str| {
            std::env::var_os(name).ok_or_else(|| {
                Error::Config(format!(
                    "{name} is not set (ManagerHandle::command sets it for child processes)"
                ))
            })
        };
        let address = read(crate::wire::protocol::ADDRESS_VAR)?;
        let address = address.to_str().ok_or_else(|| {
            Error::Config(format!(
                "{} is not UTF-8",
                crate::wire::protocol::ADDRESS_VAR
            ))
        })?;
        let key = read(crate::wire::protocol::AUTHKEY_VAR)?;
        #[cfg(unix)]
        let key = std::os::unix::ffi::OsStrExt::as_bytes(key.as_os_str()).to_vec();
        #[cfg(not(unix))]
        let key = key.to_string_lossy().into_owned().into_bytes();
        Client::connect(address, key)
    }

    /// Connects to the manager at `address` and proves `authkey`.
    ///
    /// Fails with [`Error::Authentication`] if the keys differ, [`Error::Io`] if nothing
    /// listens there, [`Error::Handshake`] if something else does.
    pub fn connect(address: impl ToAddress, authkey: impl AsRef<[u8]>) -> Result<Client> {
        Client::builder(address, authkey).connect()
    }

    /// Starts configuring a client (timeouts, limits).
    pub fn builder(address: impl ToAddress, authkey: impl AsRef<[u8]>) -> ClientBuilder {
        ClientBuilder {
            address: address.to_address(),
            authkey: authkey.as_ref().to_vec(),
            options: Options {
                connect_timeout: None,
                handshake_timeout: Duration::from_secs(10),
                call_timeout: None,
                max_frame_len: DEFAULT_MAX_FRAME_LEN,
                max_decode_depth: crate::wire::codec::DEFAULT_MAX_DECODE_DEPTH,
                keepalive: Some(DEFAULT_KEEPALIVE),
                max_idle_connections: 64,
                reconnect_attempts: 4,
                reconnect_backoff: Duration::from_millis(25),
                prove_with_first_call: false,
            },
            status: None,
        }
    }

    /// The manager's address.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// Calls the function registered as `function` with the argument tuple `args` (`()` for
    /// none, `(x,)` for one) and decodes its result as `R`.
    ///
    /// A function that returned `Err` or panicked, an unknown name or arguments of the wrong
    /// types come back as [`Error::Remote`]; the connection stays usable.
    pub fn call<R: DeserializeOwned>(&self, function: &str, args: impl Serialize) -> Result<R> {
        self.request(Op::Call(function), &args, self.inner.options.call_timeout)
    }

    /// Like [`Client::call`], but gives up after `timeout` with [`Error::Timeout`]. The
    /// function may still run to completion in the manager.
    pub fn call_with_timeout<R: DeserializeOwned>(
        &self,
        function: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> Result<R> {
        self.request(Op::Call(function), &args, Some(timeout))
    }

    /// Queues a call on the client's pipeline connection and returns at once with a
    /// [`Pending`] reply; [`Pending::wait`] collects it. One thread can keep hundreds of calls
    /// in flight this way; calls queued together leave in one write, and each reply goes to
    /// its own caller whatever order they wait in.
    ///
    /// Calls sent this way run in order on one manager thread: a slow one delays those behind
    /// it. For independent blocking calls, use [`Client::call`] from separate threads. If the
    /// connection is lost, every unanswered call fails with [`Error::ConnectionLost`] (none is
    /// retried) and the next `send` connects afresh.
    pub fn send<R: DeserializeOwned>(
        &self,
        function: &str,
        args: impl Serialize,
    ) -> Result<Pending<R>> {
        self.send_op(Op::Call(function), &args)
    }

    /// Starts a [`Batch`]: calls encoded together, without a lock per call, and sent with one
    /// write by [`Batch::send`]. For bursts of small calls this is the fastest way to keep
    /// many in flight; replies come as with [`Client::send`].
    pub fn batch(&self) -> Result<Batch<'_>> {
        Ok(Batch::new(self, self.pipe()?))
    }

    pub(crate) fn send_op<R: DeserializeOwned, A: Serialize>(
        &self,
        op: Op<'_>,
        args: &A,
    ) -> Result<Pending<R>> {
        self.send_op_finished(op, args, Ok)
    }

    /// [`Client::send_op`] whose reply, as the wire carries it (`W`), becomes `R` by `finish`.
    pub(crate) fn send_op_finished<R, W: DeserializeOwned, A: Serialize>(
        &self,
        op: Op<'_>,
        args: &A,
        finish: fn(W) -> Result<R>,
    ) -> Result<Pending<R, W>> {
        let pipe = self.pipe()?;
        match pipe.send(op, args) {
            Ok(id) => Ok(Pending::finished_by(pipe, id, finish)),
            Err(e) => {
                if matches!(e, Error::ConnectionLost(_)) {
                    self.lost(&e);
                }
                Err(e)
            }
        }
    }

    /// The live pipeline connection, opening one if there is none or the last one failed.
    fn pipe(&self) -> Result<Arc<Pipe>> {
        let mut slot = self.inner.pipe.lock();
        if let Some(pipe) = slot.as_ref().filter(|p| !p.is_failed()) {
            return Ok(Arc::clone(pipe));
        }
        if let Some(old) = slot.take() {
            old.close();
        }
        let connection = self.open_connection(self.inner.options.reconnect_attempts)?;
        let pipe = Pipe::start(connection, self.inner.options.max_frame_len)?;
        *slot = Some(Arc::clone(&pipe));
        Ok(pipe)
    }

    /// Opens and authenticates a connection, retrying `retries` times with backoff when
    /// the manager cannot be reached (a restart, say). Wrong keys are never retried.
    fn open_connection(&self, retries: u32) -> Result<Connection> {
        let inner = &*self.inner;
        let mut delay = inner.options.reconnect_backoff;
        let mut attempt = 0;
        // A client already connected that opens one more connection keeps the keepalive's
        // promise: a manager gone silent is reported within its timeout, retries included.
        let give_up = inner
            .options
            .keepalive
            .filter(|_| inner.connected.load(Ordering::Acquire))
            .map(|k| Instant::now() + k.timeout);
        let defer_proof =
            inner.options.prove_with_first_call || inner.proven.load(Ordering::Acquire);
        loop {
            match Connection::open(&inner.address, &inner.key, &inner.options, defer_proof) {
                Ok(connection) => {
                    if !defer_proof {
                        inner.proven.store(true, Ordering::Release);
                    }
                    if !inner.connected.swap(true, Ordering::AcqRel) {
                        self.report(ConnectionStatus::Connected);
                    }
                    return Ok(connection);
                }
                Err(e)
                    if attempt < retries
                        && is_transient(&e)
                        && give_up.is_none_or(|t| Instant::now() + delay < t) =>
                {
                    attempt += 1;
                    self.lost(&e);
                    self.report(ConnectionStatus::Reconnecting { attempt, delay });
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    self.lost(&e);
                    return Err(e);
                }
            }
        }
    }

    /// Notes that the connection to the manager was lost (reported once per loss).
    fn lost(&self, error: &Error) {
        if self.inner.connected.swap(false, Ordering::AcqRel) {
            self.report(ConnectionStatus::Disconnected {
                reason: error.to_string(),
            });
        }
    }

    fn report(&self, status: ConnectionStatus) {
        if let Some(callback) = &self.inner.status {
            callback(&status);
        }
    }

    /// Asks the manager to shut down; returns once it has acknowledged. The manager then
    /// stops accepting, finishes calls in flight and exits its serve loop.
    pub fn shutdown_server(&self) -> Result<()> {
        self.request(Op::Shutdown, &(), self.inner.options.call_timeout)
    }

    /// Describes what the manager offers: its functions, its objects (with their services,
    /// methods and reference counts) and the types clients may create. At most 1000 objects
    /// are listed, those with the lowest ids; `objects_total` says how many there are, and
    /// [`Client::describe_objects`] lists the rest page by page.
    pub fn describe(&self) -> Result<Description> {
        self.request(Op::Describe, &(), self.inner.options.call_timeout)
    }

    /// Like [`Client::describe`], listing at most `limit` objects (1000 at most) with ids
    /// greater than `after`: pass the last id of one page to get the next.
    pub fn describe_objects(&self, after: u64, limit: u64) -> Result<Description> {
        self.request(
            Op::Describe,
            &(after, limit),
            self.inner.options.call_timeout,
        )
    }

    /// Deletes the built-in shared object `name` (a counter, dict, queue, ...), whatever its
    /// kind; returns whether there was one. What it held is freed; calls blocked in it fail
    /// with a remote error of kind `UnknownObject`, as do later calls through its handles. A
    /// later open of the name creates a new object.
    pub fn delete_shared(&self, name: &str) -> Result<bool> {
        self.request(
            Op::DeleteShared { name },
            &(),
            self.inner.options.call_timeout,
        )
    }

    /// The manager's counters: connections open and accepted, calls served, failures.
    pub fn manager_stats(&self) -> Result<crate::Stats> {
        self.request(Op::Stats, &(), self.inner.options.call_timeout)
    }

    /// Where the manager listens, door by door: `(door, address)` with real ports, the door
    /// being `"native"`, `"python"`, `"msgpack-rpc"` or `"http"`.
    pub fn doors(&self) -> Result<Vec<(String, String)>> {
        self.call(crate::wire::protocol::DOORS_FUNCTION, ())
    }

    /// The default timeout for calls, if one was configured.
    pub(crate) fn call_timeout(&self) -> Option<Duration> {
        self.inner.options.call_timeout
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.inner.session.lock()
    }

    /// Runs one reference-changing request on the session connection (taken from the pool
    /// or opened, with reconnection and status reports, if there is none).
    fn session_request<R: DeserializeOwned, A: Serialize>(
        &self,
        session: &mut Session,
        op: Op<'_>,
        args: &A,
    ) -> Result<R> {
        let timeout = self.inner.options.call_timeout;
        let result = self.request_on(&mut session.connection, op, args, timeout);
        if session.connection.is_none() {
            // Lost (or never opened): the manager holds no reference for this client now.
            session.counts.clear();
            session.generation += 1;
        }
        result
    }

    /// Creates an object of `type_id` and takes the first reference to it. Returns its id
    /// and the session generation the reference belongs to.
    pub(crate) fn create_object<A: Serialize>(
        &self,
        type_id: &str,
        service: &str,
        args: &A,
    ) -> Result<(u64, u64)> {
        let mut session = self.session();
        let id: u64 = self.session_request(&mut session, Op::Create { type_id, service }, args)?;
        *session.counts.entry(id).or_insert(0) += 1;
        Ok((id, session.generation))
    }

    /// Takes a reference to object `id`: locally if this client already holds one, else
    /// from the manager (which checks the object exists and implements `service`).
    pub(crate) fn retain_object(&self, id: u64, service: &str) -> Result<u64> {
        let mut session = self.session();
        if let Some(count) = session.counts.get_mut(&id) {
            *count += 1;
            return Ok(session.generation);
        }
        self.session_request::<(), _>(
            &mut session,
            Op::Retain {
                object: id,
                service,
            },
            &(),
        )?;
        session.counts.insert(id, 1);
        Ok(session.generation)
    }

    /// Another handle shares a reference taken in `generation`; false if that generation's
    /// references are already gone.
    pub(crate) fn share_object(&self, id: u64, generation: u64) -> bool {
        let mut session = self.session();
        if session.generation != generation {
            return false;
        }
        match session.counts.get_mut(&id) {
            Some(count) => {
                *count += 1;
                true
            }
            None => false,
        }
    }

    /// Drops one local reference; the last one is given back to the manager. Never opens
    /// a connection and ignores failures: it runs from `Drop`.
    pub(crate) fn release_object(&self, id: u64, generation: u64) {
        let mut session = self.session();
        if session.generation != generation {
            return;
        }
        let Some(count) = session.counts.get_mut(&id) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        session.counts.remove(&id);
        if session.connection.is_some()
            && let Err(e) =
                self.session_request::<(), _>(&mut session, Op::Release { object: id }, &())
        {
            log::debug!("releasing object {id}: {e}");
        }
    }

    /// Calls the registered function `function` one way, like msgpack-rpc's notifications:
    /// returns once the request is written, without waiting for it to run; no reply is
    /// sent, not even an error (the manager logs a failing or unknown one). It travels on
    /// a pooled connection, so it may run after a later call returns: use [`Client::call`]
    /// to know that it ran, or when order matters.
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
    /// client.notify("log_event", ("user signed in", 42u64))?;
    /// # Ok(()) }
    /// ```
    pub fn notify(&self, function: &str, args: impl Serialize) -> Result<()> {
        let inner = &*self.inner;
        let mut connection = match inner.idle.lock().pop() {
            Some(pooled) => pooled,
            None => self.open_connection(inner.options.reconnect_attempts)?,
        };
        let (result, health) = connection.notify(
            function,
            &args,
            inner.options.call_timeout,
            inner.options.max_frame_len,
        );
        if let Err(e @ Error::ConnectionLost(_)) = &result {
            self.lost(e);
        }
        if health == Health::Reusable {
            self.give_back(connection);
        }
        result
    }

    pub(crate) fn request<R: DeserializeOwned, A: Serialize>(
        &self,
        op: Op<'_>,
        args: &A,
        timeout: Option<Duration>,
    ) -> Result<R> {
        let mut connection = None;
        let result = self.request_on(&mut connection, op, args, timeout);
        if let Some(connection) = connection {
            self.give_back(connection);
        }
        result
    }

    /// Sends a request on `connection`, taking one from the pool (or opening one) if it is
    /// `None`. A connection left in doubt by the call is dropped, leaving `None`. Lock guards
    /// use this to keep acquire and release on one connection: the manager ties a held lock
    /// to the connection, and frees it if that connection dies.
    pub(crate) fn request_on<R: DeserializeOwned, A: Serialize>(
        &self,
        connection: &mut Option<Connection>,
        op: Op<'_>,
        args: &A,
        timeout: Option<Duration>,
    ) -> Result<R> {
        let inner = &*self.inner;
        if connection.is_none() {
            let pooled = inner.idle.lock().pop();
            *connection = Some(match pooled {
                Some(pooled) => pooled,
                None => self.open_connection(inner.options.reconnect_attempts)?,
            });
        }
        let open = connection.as_mut().expect("set above");
        let (result, health) = open.call(op, args, timeout, inner.options.max_frame_len);
        if let Err(e @ Error::ConnectionLost(_)) = &result {
            self.lost(e);
        }
        if health == Health::Broken {
            *connection = None;
        }
        result
    }

    /// Returns a connection to the pool (or closes it if the pool is full).
    pub(crate) fn give_back(&self, connection: Connection) {
        let inner = &*self.inner;
        let mut idle = inner.idle.lock();
        if idle.len() < inner.options.max_idle_connections {
            idle.push(connection);
        }
    }
}

/// Errors worth retrying a connection for: the manager may be restarting or busy.
fn is_transient(error: &Error) -> bool {
    matches!(
        error,
        Error::Io(_)
            | Error::Refused(_)
            | Error::Handshake(_)
            | Error::Timeout(crate::error::Phase::Connect | crate::error::Phase::Handshake)
    )
}
