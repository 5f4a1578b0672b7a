//! The blocking client: connections to one manager, and calls over them.
//!
//! A [`Client`] keeps a small pool of authenticated connections. Each call takes one for its
//! whole round trip, so calls from different threads run in parallel on separate connections
//! (and separate manager threads), and a call that blocks in the manager holds up only its own
//! connection. A connection whose state is uncertain after an error (timeout, lost
//! connection) is dropped, never reused; the next call opens a fresh one.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, AuthKey};
use crate::codec;
use crate::error::{Error, RemoteError, Result};
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN, FrameReader};
use crate::message::{NOTICE_ID, Op, RequestHeader, ResponseHeader, Status};
use crate::service::Description;
use crate::transport::{Address, Stream, ToAddress};

/// A socket timeout is adjusted to the call's remaining time only when they differ by more
/// than this; the common case (a reply within one read) then costs no extra syscall.
const TIMEOUT_SLACK: Duration = Duration::from_millis(1);

/// The shortest timeout a socket is given; zero would mean "no timeout" to the OS.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
struct Options {
    connect_timeout: Option<Duration>,
    handshake_timeout: Duration,
    call_timeout: Option<Duration>,
    max_frame_len: u32,
    max_idle_connections: usize,
}

/// Configures a [`Client`]; made by [`Client::builder`].
#[must_use = "a builder does nothing until `connect` is called"]
#[derive(Debug)]
pub struct ClientBuilder {
    address: Result<Address>,
    authkey: Vec<u8>,
    options: Options,
}

impl ClientBuilder {
    /// How long establishing a TCP connection may take (default: the OS's limit).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = Some(timeout);
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

    /// How many idle connections to keep for reuse (default 64). Calls from more threads
    /// than this at once still work; the extra connections are closed after their call.
    pub fn max_idle_connections(mut self, connections: usize) -> Self {
        self.options.max_idle_connections = connections;
        self
    }

    /// Connects and authenticates once, so a wrong address or key is reported here.
    pub fn connect(self) -> Result<Client> {
        let key = AuthKey::new(&self.authkey)?;
        let address = self.address?;
        let first = Connection::open(&address, &key, &self.options)?;
        Ok(Client {
            inner: Arc::new(Inner {
                address,
                key,
                options: self.options,
                idle: Mutex::new(vec![first]),
                session: Mutex::new(Session::default()),
            }),
        })
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
                max_idle_connections: 64,
            },
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

    /// Asks the manager to shut down; returns once it has acknowledged. The manager then
    /// stops accepting, finishes calls in flight and exits its serve loop.
    pub fn shutdown_server(&self) -> Result<()> {
        self.request(Op::Shutdown, &(), self.inner.options.call_timeout)
    }

    /// Describes what the manager offers: its functions, its objects (with their services,
    /// methods and reference counts) and the types clients may create.
    pub fn describe(&self) -> Result<Description> {
        self.request(Op::Describe, &(), self.inner.options.call_timeout)
    }

    /// The default timeout for calls, if one was configured.
    pub(crate) fn call_timeout(&self) -> Option<Duration> {
        self.inner.options.call_timeout
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.inner.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one reference-changing request on the session connection (opened if needed).
    fn session_request<R: DeserializeOwned, A: Serialize>(
        &self,
        session: &mut Session,
        op: Op<'_>,
        args: &A,
    ) -> Result<R> {
        let inner = &*self.inner;
        if session.connection.is_none() {
            session.connection = Some(Connection::open(
                &inner.address,
                &inner.key,
                &inner.options,
            )?);
        }
        let connection = session.connection.as_mut().expect("opened above");
        let (result, health) = connection.call(
            op,
            args,
            inner.options.call_timeout,
            inner.options.max_frame_len,
        );
        if health == Health::Broken {
            session.connection = None;
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
        if session.connection.is_some() {
            if let Err(e) =
                self.session_request::<(), _>(&mut session, Op::Release { object: id }, &())
            {
                log::debug!("releasing object {id}: {e}");
            }
        }
    }

    pub(crate) fn request<R: DeserializeOwned, A: Serialize>(
        &self,
        op: Op<'_>,
        args: &A,
        timeout: Option<Duration>,
    ) -> Result<R> {
        let inner = &*self.inner;
        let pooled = inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => Connection::open(&inner.address, &inner.key, &inner.options)?,
        };
        let (result, health) = connection.call(op, args, timeout, inner.options.max_frame_len);
        if health == Health::Reusable {
            let mut idle = inner.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < inner.options.max_idle_connections {
                idle.push(connection);
            }
        }
        result
    }
}

/// Whether a connection is in a known state after a call.
#[derive(Debug, PartialEq, Eq)]
enum Health {
    /// Every byte sent was answered: the next call can use it.
    Reusable,
    /// A reply may still be on its way, or the stream broke: close it.
    Broken,
}

/// One authenticated connection, used by one call at a time.
struct Connection {
    stream: Stream,
    reader: FrameReader,
    out: Vec<u8>,
    /// Ids start at 1: 0 is the manager's notice id.
    next_id: u64,
    /// The timeout currently set on the socket, to skip redundant syscalls.
    socket_timeout: Option<Duration>,
}

impl Connection {
    fn open(address: &Address, key: &AuthKey, options: &Options) -> Result<Connection> {
        let mut stream = Stream::connect(address, options.connect_timeout)?;
        stream.set_timeouts(Some(options.handshake_timeout))?;
        auth::client_handshake(&mut stream, key)?;
        stream.set_timeouts(None)?;
        Ok(Connection {
            stream,
            reader: FrameReader::new(options.max_frame_len),
            out: Vec::with_capacity(4096),
            next_id: NOTICE_ID + 1,
            socket_timeout: None,
        })
    }

    /// Sends one request and waits for its reply.
    fn call<R: DeserializeOwned, A: Serialize>(
        &mut self,
        op: Op<'_>,
        args: &A,
        timeout: Option<Duration>,
        max_frame_len: u32,
    ) -> (Result<R>, Health) {
        let id = self.next_id;
        self.next_id += 1;
        let function: &str = match &op {
            Op::Call(name) | Op::Method { method: name, .. } => name,
            Op::Create { type_id, .. } => type_id,
            Op::Open { .. } => "open",
            Op::Retain { .. } => "retain",
            Op::Release { .. } => "release",
            Op::Describe => "describe",
            Op::Shutdown => "shutdown",
        };
        self.out.clear();
        let start = frame::begin(&mut self.out);
        let encoded = codec::encode_into(&RequestHeader { id, op }, &mut self.out)
            .and_then(|()| codec::encode_into(args, &mut self.out))
            .and_then(|()| frame::end(&mut self.out, start, max_frame_len));
        if let Err(e) = encoded {
            // Nothing was sent: the connection is as good as before.
            return (Err(e), Health::Reusable);
        }

        let timeout = timeout.map(|t| t.max(MIN_TIMEOUT));
        let deadline = timeout.map(|t| Instant::now() + t);
        if let Err(e) = self.set_socket_timeout(timeout) {
            return (Err(Error::Io(e)), Health::Broken);
        }
        if let Err(e) = self.stream.write_all(&self.out) {
            return (Err(in_flight_failure(e)), Health::Broken);
        }
        loop {
            match self.reader.next_frame() {
                Ok(Some(reply)) => return decode_reply(reply, id, function),
                Ok(None) => {}
                Err(e) => return (Err(e), Health::Broken),
            }
            if let Some(deadline) = deadline {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return (Err(Error::Timeout), Health::Broken);
                }
                let set = self.socket_timeout.unwrap_or(Duration::MAX);
                if set > remaining + TIMEOUT_SLACK {
                    if let Err(e) = self.set_socket_timeout(Some(remaining.max(MIN_TIMEOUT))) {
                        return (Err(Error::Io(e)), Health::Broken);
                    }
                }
            }
            match self.reader.fill(&mut self.stream) {
                Ok(0) => {
                    let eof = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the manager closed the connection",
                    );
                    return (Err(Error::ConnectionLost(eof)), Health::Broken);
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(in_flight_failure(e)), Health::Broken),
            }
        }
    }

    fn set_socket_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.socket_timeout != timeout {
            self.stream.set_timeouts(timeout)?;
            self.socket_timeout = timeout;
        }
        Ok(())
    }
}

/// A socket error once a request may have left: a timeout, or a lost connection.
fn in_flight_failure(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
        _ => Error::ConnectionLost(e),
    }
}

/// Reads the reply to request `id`.
fn decode_reply<R: DeserializeOwned>(reply: &[u8], id: u64, function: &str) -> (Result<R>, Health) {
    let (header, used) = match codec::decode_prefix::<ResponseHeader>(reply) {
        Ok(decoded) => decoded,
        Err(e) => {
            let e = Error::Protocol(format!("unreadable reply envelope: {e}"));
            return (Err(e), Health::Broken);
        }
    };
    let body = &reply[used..];
    if header.id == NOTICE_ID {
        // The manager is closing this connection and says why.
        let result = match codec::decode_exact::<RemoteError>(body) {
            Ok(notice) => Err(Error::Remote(notice)),
            Err(e) => Err(Error::Protocol(format!(
                "unreadable notice from the manager: {e}"
            ))),
        };
        return (result, Health::Broken);
    }
    if header.id != id {
        let e = Error::Protocol(format!(
            "reply to request {} while waiting for {id}",
            header.id
        ));
        return (Err(e), Health::Broken);
    }
    let result = match header.status {
        Status::Ok => codec::decode_exact::<R>(body).map_err(|e| {
            Error::Codec(format!(
                "the reply of `{function}` is not a {}: {e}",
                std::any::type_name::<R>()
            ))
        }),
        Status::Err => match codec::decode_exact::<RemoteError>(body) {
            Ok(remote) => Err(Error::Remote(remote)),
            Err(e) => Err(Error::Codec(format!("unreadable error reply: {e}"))),
        },
    };
    (result, Health::Reusable)
}
