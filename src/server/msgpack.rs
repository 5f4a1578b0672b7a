//! The msgpack-rpc listener: any language's msgpack-rpc client calls the registered functions
//! and the built-in shared objects.
//!
//! The spec (`[0, msgid, method, params]` → `[1, msgid, error, result]`, notifications
//! `[2, method, params]`) has no authentication, so a connection must first prove the
//! authkey: `monogusa.challenge()` returns 32 random bytes, and `monogusa.prove(proof)` takes
//! `HMAC-SHA256(key, "monogusa msgpack proof" ‖ those bytes)`. Anything else first, or a
//! wrong proof, is an error and the connection closes; one try per connection, within the
//! handshake timeout.
//!
//! Requests run on threads of their own (up to `MAX_IN_FLIGHT` per connection), so a call that
//! blocks (`queue.get`) does not hold up the next, and replies go out as calls finish, matched
//! by msgid.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use parking_lot::{Condvar, Mutex};
use sha2::Sha256;

use super::Shared;
use super::listener::Admitted;
use super::objects::HeldRefs;
use crate::error::RemoteError;
use crate::msgpack::codec::{self, ReadError, Scanner};
use crate::service::Caller;
use crate::transport::Stream;
use crate::values::value::ForeignValue;

/// What the proof MACs before the nonce.
pub(crate) const PROOF_LABEL: &[u8] = b"monogusa msgpack proof";

/// Calls one connection may have running at once; the next request waits for a free slot.
const MAX_IN_FLIGHT: usize = 64;

/// The door of msgpack-rpc clients.
pub(crate) struct Door;

impl Door {
    /// The door as `ManagerBuilder::msgpack_listener` registers it.
    pub(crate) fn make(
        _: &super::ManagerBuilder,
        _: &[u8],
    ) -> crate::error::Result<Arc<dyn super::listener::Listener>> {
        Ok(Arc::new(Door))
    }
}

impl super::listener::Listener for Door {
    fn name(&self) -> &'static str {
        "msgpack-rpc"
    }

    fn serve(&self, shared: &Arc<Shared>, connection: &Admitted) -> String {
        match serve(shared, Arc::clone(&connection.stream), connection.id) {
            Ok(()) => "the connection ended".into(),
            Err(e) => {
                log::debug!("msgpack client {}: {e}", connection.stream.peer_label());
                format!("connection ended: {e}")
            }
        }
    }

    /// An error response to message id 0: `[1, 0, ["Busy", why], nil]`.
    fn busy(&self, why: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_reply(0, Err(("Busy".into(), why.to_string())), &mut out);
        out
    }

    /// Values are converted recursively (up to the depth limit), in frames that are large
    /// in debug builds: room for them, in untouched virtual memory.
    fn stack_size(&self, limits: &super::Limits) -> usize {
        limits.thread_stack_size.max(8 << 20)
    }

    fn thread_name(&self) -> &'static str {
        "monogusa-msgpack"
    }
}

/// The bytes a connection has read and not yet used, and how far the scanner looked.
#[derive(Default)]
struct Incoming {
    bytes: Vec<u8>,
    scanner: Scanner,
}

/// The largest message before authentication: a challenge or a proof is tens of bytes, so a
/// peer without the key can make the manager hold no more than this.
const MAX_UNAUTHENTICATED: usize = 4096;

/// One message read from the stream, whole.
fn next_message(
    stream: &Stream,
    incoming: &mut Incoming,
    shared: &Shared,
    handshake: Option<std::time::Instant>,
    before_waiting: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<Option<ForeignValue>> {
    // Before authentication, every read is bounded by the handshake's one deadline.
    let authenticated = handshake.is_none();
    let max = if authenticated {
        shared.limits.max_frame_len as usize
    } else {
        MAX_UNAUTHENTICATED
    };
    let depth = shared.limits.max_decode_depth as usize;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    loop {
        // Only the bytes not yet looked at are scanned: linear in the message's size.
        match incoming.scanner.scan(&incoming.bytes, depth, max) {
            Ok(Some(end)) => {
                let parsed = codec::read(&incoming.bytes[..end], depth, max);
                incoming.bytes.drain(..end);
                return match parsed {
                    Ok((value, used)) if used == end => Ok(Some(value)),
                    Ok(_) | Err(ReadError::Incomplete) => Err(invalid(
                        "a message the scanner and the parser disagree on".into(),
                    )),
                    Err(ReadError::Invalid(why)) => Err(invalid(why)),
                };
            }
            Ok(None) if incoming.bytes.len() < max => {}
            Ok(None) => {
                return Err(invalid(if authenticated {
                    format!("a message over the limit of {max} bytes")
                } else {
                    format!("a message over {max} bytes before authentication")
                }));
            }
            Err(ReadError::Invalid(why)) => return Err(invalid(why)),
            Err(ReadError::Incomplete) => unreachable!("the scanner says None instead"),
        }
        // A message begun must be finished in time; between messages, waiting is fine.
        match handshake {
            None => {
                let limit = (!incoming.bytes.is_empty()).then_some(shared.limits.stall_timeout);
                stream.set_read_timeout(limit)?;
            }
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the authentication took too long",
                    ));
                }
                stream.set_read_timeout(Some(left))?;
            }
        }
        // Nothing whole is left to parse: what was held back goes out before we wait.
        before_waiting()?;
        let mut chunk = [0u8; 16 * 1024];
        // Never more than the limit allows, before authentication above all.
        let room = (max + 1 - incoming.bytes.len()).min(chunk.len());
        let mut reader = stream;
        let n = reader.read(&mut chunk[..room])?;
        if n == 0 {
            return Ok(None);
        }
        incoming.bytes.extend_from_slice(&chunk[..n]);
    }
}

/// A parsed message.
enum Message {
    Request {
        msgid: u64,
        method: String,
        params: Vec<ForeignValue>,
    },
    Notify {
        method: String,
        params: Vec<ForeignValue>,
    },
}

fn parse(value: ForeignValue) -> Result<Message, String> {
    let ForeignValue::List(parts) = value else {
        return Err("a message must be an array".into());
    };
    let mut parts = parts.into_iter();
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ForeignValue::Int(0)), Some(ForeignValue::Int(msgid)), Some(ForeignValue::Str(method)), params, None)
            if msgid >= 0 =>
        {
            Ok(Message::Request {
                msgid: msgid as u64,
                method,
                params: params_of(params)?,
            })
        }
        (Some(ForeignValue::Int(2)), Some(ForeignValue::Str(method)), params, None, None) => {
            Ok(Message::Notify {
                method,
                params: params_of(params)?,
            })
        }
        _ => Err("not a msgpack-rpc request [0, msgid, method, params] or notification [2, method, params]".into()),
    }
}

fn params_of(params: Option<ForeignValue>) -> Result<Vec<ForeignValue>, String> {
    match params {
        Some(ForeignValue::List(p)) => Ok(p),
        // Some clients send nil for no parameters.
        None | Some(ForeignValue::None) => Ok(Vec::new()),
        Some(_) => Err("params must be an array".into()),
    }
}

/// Appends `[1, msgid, error, result]` to `out`.
fn encode_reply(msgid: u64, result: Result<ForeignValue, (String, String)>, out: &mut Vec<u8>) {
    let (error, value) = match result {
        Ok(value) => (ForeignValue::None, value),
        Err((kind, message)) => (
            ForeignValue::List(vec![ForeignValue::Str(kind), ForeignValue::Str(message)]),
            ForeignValue::None,
        ),
    };
    codec::write(
        &ForeignValue::List(vec![
            ForeignValue::Int(1),
            ForeignValue::Int(msgid as i64),
            error,
            value,
        ]),
        out,
    );
}

/// The proof as a client sent it: bin; or a str, as clients without bin send bytes (old
/// msgpack libraries pack bytes as str), or as 64 hex digits (for clients that can send text
/// only).
fn proof_bytes(value: &ForeignValue) -> Vec<u8> {
    match value {
        ForeignValue::Bytes(bytes) => bytes.clone(),
        ForeignValue::Str(text)
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect()
        }
        ForeignValue::Str(text) => text.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// Writes `[1, msgid, error, result]` (during authentication).
fn respond(
    stream: &Stream,
    msgid: u64,
    result: Result<ForeignValue, (String, String)>,
) -> io::Result<()> {
    let mut out = Vec::new();
    encode_reply(msgid, result, &mut out);
    let mut writer = stream;
    writer.write_all(&out)
}

fn error_of(e: &RemoteError) -> (String, String) {
    (format!("{:?}", e.kind()), e.message().to_string())
}

fn serve(shared: &Arc<Shared>, stream: Arc<Stream>, id: u64) -> io::Result<()> {
    let mut incoming = Incoming::default();
    // Authentication first, under the handshake deadline (one, for all its reads).
    stream.set_timeouts(Some(shared.limits.handshake_timeout))?;
    let handshake = std::time::Instant::now() + shared.limits.handshake_timeout;
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let mut challenged = false;
    loop {
        let Some(message) =
            next_message(&stream, &mut incoming, shared, Some(handshake), &mut || {
                Ok(())
            })?
        else {
            return Ok(());
        };
        let (msgid, method, params) = match parse(message) {
            Ok(Message::Request {
                msgid,
                method,
                params,
            }) => (msgid, method, params),
            _ => return Ok(()),
        };
        match (method.as_str(), challenged) {
            ("monogusa.challenge", false) => {
                challenged = true;
                respond(&stream, msgid, Ok(ForeignValue::Bytes(nonce.to_vec())))?;
            }
            ("monogusa.prove", true) => {
                let proof = params.first().map(proof_bytes).unwrap_or_default();
                let mut mac = Hmac::<Sha256>::new_from_slice(&shared.raw_key).expect("any key");
                mac.update(PROOF_LABEL);
                mac.update(&nonce);
                // `verify_slice` compares in constant time.
                if mac.verify_slice(&proof).is_err() {
                    shared.failure_log.warn(format_args!(
                        "msgpack client {} gave a wrong proof of the authkey",
                        stream.peer_label()
                    ));
                    shared.wrong_key(&stream);
                    let _ = respond(
                        &stream,
                        msgid,
                        Err((
                            "AuthenticationFailed".into(),
                            "the proof does not match the authkey".into(),
                        )),
                    );
                    return Ok(());
                }
                // Counted authenticated before the client hears so: its next connection finds
                // this one no longer displaceable.
                if let Err(why) = shared.promote(id) {
                    let _ = respond(&stream, msgid, Err(("Busy".into(), why)));
                    return Ok(());
                }
                respond(&stream, msgid, Ok(ForeignValue::Bool(true)))?;
                break;
            }
            _ => {
                let _ = respond(
                    &stream,
                    msgid,
                    Err((
                        "NotAuthenticated".into(),
                        "call monogusa.challenge() then monogusa.prove(hmac) first".into(),
                    )),
                );
                return Ok(());
            }
        }
    }
    stream.set_timeouts(None)?;
    let conn = Arc::new(Conn {
        stream,
        buffer: Mutex::new(incoming),
        lead: Mutex::new(Lead::default()),
        wake: Condvar::new(),
        out: Mutex::new(Vec::new()),
        in_flight: Mutex::new(HashSet::new()),
        threads: Mutex::new(Vec::new()),
        held: Mutex::new(HeldRefs::default()),
    });
    spawn_standby(shared, &conn, id);
    role_loop(shared, &conn, id, 0);
    conn.lead.lock().closing = true;
    conn.wake.notify_all();
    loop {
        let Some(thread) = conn.threads.lock().pop() else {
            break;
        };
        let _ = thread.join();
    }
    // Its leases go back and its permits are freed at once: its worker is gone.
    shared.objects.connection_closed(id, &mut conn.held.lock());
    match conn.lead.lock().error.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How long a call runs on the reading thread before a standby takes over the reading, so
/// the calls behind it are not held up (a blocking `queue.get`, a slow function).
const TAKEOVER: std::time::Duration = std::time::Duration::from_millis(1);

/// After this long without a call, standbys stop watching and sleep until the next one.
const ACTIVE: std::time::Duration = std::time::Duration::from_millis(50);

/// Which thread reads, and whether its call has been running long.
///
/// Invariants, under the lock: exactly one thread is the reader (`reader`); the others are
/// standbys (counted in `standbys`, `asleep` of them waiting without a timeout) or running a
/// call they read earlier; `busy_since` is set only while the reader runs a call.
#[derive(Default)]
struct Lead {
    reader: u64,
    busy_since: Option<std::time::Instant>,
    last_call: Option<std::time::Instant>,
    standbys: usize,
    asleep: usize,
    /// Threads of this connection, the first included.
    threads: usize,
    next_thread: u64,
    closing: bool,
    error: Option<io::Error>,
}

/// One authenticated connection's threads: the reader runs each call itself (no hand-off per
/// call), and a standby takes over the reading when a call runs past `TAKEOVER`.
struct Conn {
    stream: Arc<Stream>,
    /// Bytes read and not yet parsed: the reader's.
    buffer: Mutex<Incoming>,
    lead: Mutex<Lead>,
    wake: Condvar,
    /// Replies not yet written: the reader holds its replies back while more requests are
    /// already here, and writes them together before it waits (one write for a burst).
    out: Mutex<Vec<u8>>,
    in_flight: Mutex<HashSet<u64>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// What the connection's calls hold (leases, permits, locks): released when the
    /// connection closes, not when a call ends. Each call runs with its own and adds it here
    /// after, so a blocked call holds no lock other calls need.
    held: Mutex<HeldRefs>,
}

impl Conn {
    /// Queues `[1, msgid, error, result]`; writes what is queued unless `hold`.
    fn reply(
        &self,
        msgid: u64,
        result: Result<ForeignValue, (String, String)>,
        hold: bool,
    ) -> io::Result<()> {
        let mut out = self.out.lock();
        encode_reply(msgid, result, &mut out);
        if hold {
            return Ok(());
        }
        let mut writer = &*self.stream;
        let written = writer.write_all(&out);
        out.clear();
        written
    }

    /// Writes the replies held back.
    fn flush(&self) -> io::Result<()> {
        let mut out = self.out.lock();
        if out.is_empty() {
            return Ok(());
        }
        let mut writer = &*self.stream;
        let written = writer.write_all(&out);
        out.clear();
        written
    }
}

/// Starts a standby thread if the connection has none and room for one.
fn spawn_standby(shared: &Arc<Shared>, conn: &Arc<Conn>, id: u64) {
    let me = {
        let mut lead = conn.lead.lock();
        if lead.standbys > 0 || lead.threads >= MAX_IN_FLIGHT || lead.closing {
            return;
        }
        lead.threads += 1;
        lead.standbys += 1;
        lead.next_thread += 1;
        lead.next_thread
    };
    let (for_thread, conn_for_thread) = (Arc::clone(shared), Arc::clone(conn));
    let spawned = std::thread::Builder::new()
        .name("monogusa-msgpack-call".into())
        .stack_size(shared.limits.thread_stack_size.max(2 << 20))
        .spawn(move || {
            if standby(&for_thread, &conn_for_thread, id, me) {
                role_loop(&for_thread, &conn_for_thread, id, me);
            }
        });
    match spawned {
        Ok(thread) => conn.threads.lock().push(thread),
        Err(e) => {
            shared
                .failure_log
                .warn(format_args!("cannot start a msgpack call thread: {e}"));
            let mut lead = conn.lead.lock();
            lead.threads -= 1;
            lead.standbys -= 1;
        }
    }
}

/// Waits as a standby; true once this thread has taken over the reading, false when the
/// connection closes.
fn standby(shared: &Arc<Shared>, conn: &Arc<Conn>, id: u64, me: u64) -> bool {
    let mut lead = conn.lead.lock();
    loop {
        if lead.closing {
            lead.standbys -= 1;
            return false;
        }
        if lead
            .busy_since
            .is_some_and(|since| since.elapsed() >= TAKEOVER)
        {
            lead.reader = me;
            lead.busy_since = None;
            lead.standbys -= 1;
            drop(lead);
            // Someone must watch this reader too.
            spawn_standby(shared, conn, id);
            return true;
        }
        if lead.busy_since.is_some() || lead.last_call.is_some_and(|t| t.elapsed() < ACTIVE) {
            conn.wake.wait_for(&mut lead, TAKEOVER);
        } else {
            lead.asleep += 1;
            conn.wake.wait(&mut lead);
            lead.asleep -= 1;
        }
    }
}

/// A connection thread: reads and runs calls while it is the reader; becomes a standby when
/// another took over the reading during its call.
fn role_loop(shared: &Arc<Shared>, conn: &Arc<Conn>, id: u64, me: u64) {
    loop {
        let message = {
            let mut buffer = conn.buffer.lock();
            next_message(&conn.stream, &mut buffer, shared, None, &mut || {
                conn.flush()
            })
        };
        let message = match message {
            Ok(Some(m)) => m,
            end => {
                let mut lead = conn.lead.lock();
                if let Err(e) = end {
                    lead.error = Some(e);
                }
                lead.closing = true;
                drop(lead);
                conn.wake.notify_all();
                let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                return;
            }
        };
        let (msgid, method, params) = match parse(message) {
            Ok(Message::Request {
                msgid,
                method,
                params,
            }) => (Some(msgid), method, params),
            Ok(Message::Notify { method, params }) => (None, method, params),
            Err(why) => {
                log::debug!("msgpack client {}: {why}", conn.stream.peer_label());
                conn.lead.lock().closing = true;
                conn.wake.notify_all();
                let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                return;
            }
        };
        if let Some(msgid) = msgid
            && !conn.in_flight.lock().insert(msgid)
        {
            let refused = Err((
                "MsgidInFlight".into(),
                format!("msgid {msgid} is still in flight"),
            ));
            if conn.reply(msgid, refused, false).is_err() {
                return;
            }
            continue;
        }
        {
            let mut lead = conn.lead.lock();
            let now = std::time::Instant::now();
            let was_idle = lead.last_call.is_none_or(|t| now - t >= ACTIVE);
            lead.busy_since = Some(now);
            lead.last_call = Some(now);
            if was_idle && lead.asleep > 0 {
                conn.wake.notify_all(); // standbys watch again
            }
        }
        let mut held = HeldRefs::default();
        let caller = Caller::new(id, &conn.stream).reaching(&shared.objects);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(shared, &method, params, &mut held, &caller)
        }))
        .unwrap_or_else(|_| Err(("Panicked".into(), format!("{method} panicked"))));
        conn.held.lock().absorb(held);
        let still_reading = conn.lead.lock().reader == me;
        if let Some(msgid) = msgid {
            conn.in_flight.lock().remove(&msgid);
            // The reader holds its reply back while requests wait in its buffer; a thread
            // that was taken over from answers at once.
            // `try_lock`: if another thread took over the reading meanwhile, it may be
            // holding the buffer in a blocking read, waiting for the request this reply
            // lets the client send.
            let hold = still_reading && conn.buffer.try_lock().is_some_and(|b| !b.bytes.is_empty());
            if let Err(e) = conn.reply(msgid, result, hold) {
                log::debug!("msgpack reply: {e}");
            }
        }
        let mut lead = conn.lead.lock();
        if lead.reader == me {
            lead.busy_since = None;
            continue;
        }
        // Another thread reads now: watch it.
        lead.standbys += 1;
        drop(lead);
        if !standby(shared, conn, id, me) {
            return;
        }
    }
}

/// Runs one call (see `foreign`).
fn run(
    shared: &Shared,
    method: &str,
    params: Vec<ForeignValue>,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<ForeignValue, (String, String)> {
    super::foreign::call(shared, method, params, held, caller).map_err(|e| error_of(&e))
}
