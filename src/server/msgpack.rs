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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hmac::{Hmac, KeyInit, Mac};
use parking_lot::{Condvar, Mutex};
use sha2::Sha256;

use super::Shared;
use super::objects::HeldRefs;
use crate::error::{RemoteError, RemoteErrorKind};
use crate::msgpack::codec::{self, ReadError};
use crate::python::Dynamic;
use crate::python::value::PyValue;
use crate::service::Caller;
use crate::store::Bytes;
use crate::transport::Stream;

/// What the proof MACs before the nonce.
pub(crate) const PROOF_LABEL: &[u8] = b"monogusa msgpack proof";

/// Calls one connection may have running at once; the next request waits for a free slot.
const MAX_IN_FLIGHT: usize = 64;

/// msgpack connection ids start here, apart from native and Python ones.
const FIRST_CONNECTION: u64 = 3 << 61;

/// The tag shared objects opened from msgpack carry: elements are `Dynamic` values, which
/// Rust clients open with `client.named(n).type_tag("dynamic")`.
pub(crate) const DYNAMIC_TAG: &str = "dynamic";

/// The msgpack listener's state in the manager.
pub(crate) struct MsgpackState {
    key: Vec<u8>,
    next_connection: AtomicU64,
    open: Mutex<std::collections::HashMap<u64, Stream>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl MsgpackState {
    pub(crate) fn new(key: &[u8]) -> Self {
        MsgpackState {
            key: key.to_vec(),
            next_connection: AtomicU64::new(FIRST_CONNECTION),
            open: Mutex::new(std::collections::HashMap::new()),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Closes every msgpack connection and waits for their threads.
    pub(crate) fn close_all(&self) {
        for stream in self.open.lock().values() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        let threads = std::mem::take(&mut *self.threads.lock());
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Starts serving one accepted msgpack connection on its own thread.
pub(crate) fn admit(shared: &Arc<Shared>, stream: Stream) {
    let Some(state) = &shared.msgpack else {
        return;
    };
    if state.open.lock().len() >= shared.limits.max_connections {
        log::warn!("refusing a msgpack client: the connection limit is reached");
        return;
    }
    let id = state.next_connection.fetch_add(1, Relaxed);
    if let Ok(clone) = stream.try_clone() {
        state.open.lock().insert(id, clone);
    }
    let for_thread = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("monogusa-msgpack".into())
        .stack_size(shared.limits.thread_stack_size.max(8 << 20))
        .spawn(move || {
            let peer = stream.peer_label();
            if let Err(e) = serve(&for_thread, Arc::new(stream), id) {
                log::debug!("msgpack client {peer}: {e}");
            }
            if let Some(state) = &for_thread.msgpack {
                state.open.lock().remove(&id);
            }
        });
    match spawned {
        Ok(thread) => {
            let mut threads = state.threads.lock();
            threads.retain(|t| !t.is_finished());
            threads.push(thread);
        }
        Err(e) => log::error!("cannot start a thread for a msgpack client: {e}"),
    }
}

/// One message read from the stream, whole.
fn next_message(
    stream: &Stream,
    buffer: &mut Vec<u8>,
    shared: &Shared,
    authenticated: bool,
) -> io::Result<Option<PyValue>> {
    let max = shared.limits.max_frame_len as usize;
    let depth = shared.limits.max_decode_depth as usize;
    loop {
        if !buffer.is_empty() {
            match codec::read(buffer, depth, max) {
                Ok((value, used)) => {
                    buffer.drain(..used);
                    return Ok(Some(value));
                }
                Err(ReadError::Incomplete) if buffer.len() < max => {}
                Err(ReadError::Incomplete) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a message over the limit of {max} bytes"),
                    ));
                }
                Err(ReadError::Invalid(why)) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                }
            }
        }
        // A message begun must be finished in time; between messages, waiting is fine.
        if authenticated {
            let limit = (!buffer.is_empty()).then_some(shared.limits.stall_timeout);
            stream.set_read_timeout(limit)?;
        }
        let mut chunk = [0u8; 16 * 1024];
        let mut reader = stream;
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// A parsed message.
enum Message {
    Request {
        msgid: u64,
        method: String,
        params: Vec<PyValue>,
    },
    Notify {
        method: String,
        params: Vec<PyValue>,
    },
}

fn parse(value: PyValue) -> Result<Message, String> {
    let PyValue::List(parts) = value else {
        return Err("a message must be an array".into());
    };
    let mut parts = parts.into_iter();
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(PyValue::Int(0)), Some(PyValue::Int(msgid)), Some(PyValue::Str(method)), params, None)
            if msgid >= 0 =>
        {
            Ok(Message::Request {
                msgid: msgid as u64,
                method,
                params: params_of(params)?,
            })
        }
        (Some(PyValue::Int(2)), Some(PyValue::Str(method)), params, None, None) => {
            Ok(Message::Notify {
                method,
                params: params_of(params)?,
            })
        }
        _ => Err("not a msgpack-rpc request [0, msgid, method, params] or notification [2, method, params]".into()),
    }
}

fn params_of(params: Option<PyValue>) -> Result<Vec<PyValue>, String> {
    match params {
        Some(PyValue::List(p)) => Ok(p),
        // Some clients send nil for no parameters.
        None | Some(PyValue::None) => Ok(Vec::new()),
        Some(_) => Err("params must be an array".into()),
    }
}

/// Writes `[1, msgid, error, result]`.
fn respond(
    stream: &Stream,
    msgid: u64,
    result: Result<PyValue, (String, String)>,
) -> io::Result<()> {
    let (error, value) = match result {
        Ok(value) => (PyValue::None, value),
        Err((kind, message)) => (
            PyValue::List(vec![PyValue::Str(kind), PyValue::Str(message)]),
            PyValue::None,
        ),
    };
    let mut out = Vec::new();
    codec::write(
        &PyValue::List(vec![
            PyValue::Int(1),
            PyValue::Int(msgid as i64),
            error,
            value,
        ]),
        &mut out,
    );
    let mut writer = stream;
    writer.write_all(&out)
}

fn error_of(e: &RemoteError) -> (String, String) {
    (format!("{:?}", e.kind()), e.message().to_string())
}

fn serve(shared: &Arc<Shared>, stream: Arc<Stream>, id: u64) -> io::Result<()> {
    let state = shared
        .msgpack
        .as_ref()
        .expect("admitted by the msgpack listener");
    let mut buffer = Vec::new();
    // Authentication first, under the handshake deadline.
    stream.set_timeouts(Some(shared.limits.handshake_timeout))?;
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let mut challenged = false;
    loop {
        let Some(message) = next_message(&stream, &mut buffer, shared, false)? else {
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
                respond(&stream, msgid, Ok(PyValue::Bytes(nonce.to_vec())))?;
            }
            ("monogusa.prove", true) => {
                let proof = match params.first() {
                    Some(PyValue::Bytes(b)) => b.clone(),
                    _ => Vec::new(),
                };
                let mut mac = Hmac::<Sha256>::new_from_slice(&state.key).expect("any key");
                mac.update(PROOF_LABEL);
                mac.update(&nonce);
                // `verify_slice` compares in constant time.
                if mac.verify_slice(&proof).is_err() {
                    shared.failure_log.warn(format_args!(
                        "msgpack client {} gave a wrong proof of the authkey",
                        stream.peer_label()
                    ));
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
                respond(&stream, msgid, Ok(PyValue::Bool(true)))?;
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
    let calls = Arc::new(Calls {
        state: Mutex::new(CallsState::default()),
        work: Condvar::new(),
        done: Condvar::new(),
        write: Mutex::new(()),
        in_flight: Mutex::new(HashSet::new()),
    });
    let mut workers = Vec::new();
    let result = loop {
        let message = match next_message(&stream, &mut buffer, shared, true) {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let (msgid, method, params) = match parse(message) {
            Ok(Message::Request {
                msgid,
                method,
                params,
            }) => (Some(msgid), method, params),
            Ok(Message::Notify { method, params }) => (None, method, params),
            Err(why) => {
                log::debug!("msgpack client {}: {why}", stream.peer_label());
                break Ok(());
            }
        };
        if let Some(msgid) = msgid
            && !calls.in_flight.lock().insert(msgid)
        {
            let _guard = calls.write.lock();
            respond(
                &stream,
                msgid,
                Err((
                    "MsgidInFlight".into(),
                    format!("msgid {msgid} is still in flight"),
                )),
            )?;
            continue;
        }
        let mut state = calls.state.lock();
        while state.running + state.jobs.len() >= MAX_IN_FLIGHT {
            calls.done.wait(&mut state);
        }
        state.jobs.push_back((msgid, method, params));
        let spawn = state.idle == 0 && state.workers < MAX_IN_FLIGHT;
        if spawn {
            state.workers += 1;
        }
        drop(state);
        calls.work.notify_one();
        if spawn {
            let (shared, stream, calls) =
                (Arc::clone(shared), Arc::clone(&stream), Arc::clone(&calls));
            let spawned = std::thread::Builder::new()
                .name("monogusa-msgpack-call".into())
                .stack_size(shared.limits.thread_stack_size.max(2 << 20))
                .spawn(move || call_worker(&shared, &stream, &calls, id));
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(e) => break Err(e),
            }
        }
    };
    calls.state.lock().closing = true;
    calls.work.notify_all();
    for worker in workers {
        let _ = worker.join();
    }
    result
}

/// A call waiting for a worker: its msgid (none for a notification), method and params.
type Job = (Option<u64>, String, Vec<PyValue>);

#[derive(Default)]
struct CallsState {
    jobs: std::collections::VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    workers: usize,
    /// Jobs being run.
    running: usize,
    closing: bool,
}

/// One connection's calls: a queue its worker threads take from (threads are started as
/// calls need them, up to `MAX_IN_FLIGHT`, and kept for the connection's life).
struct Calls {
    state: Mutex<CallsState>,
    work: Condvar,
    done: Condvar,
    /// Replies are written whole, one at a time.
    write: Mutex<()>,
    in_flight: Mutex<HashSet<u64>>,
}

fn call_worker(shared: &Shared, stream: &Stream, calls: &Calls, id: u64) {
    loop {
        let (msgid, method, params) = {
            let mut state = calls.state.lock();
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    state.running += 1;
                    break job;
                }
                if state.closing {
                    return;
                }
                state.idle += 1;
                calls.work.wait(&mut state);
                state.idle -= 1;
            }
        };
        let mut held = HeldRefs::default();
        let caller = Caller::new(id, stream);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(shared, &method, params, &mut held, &caller)
        }))
        .unwrap_or_else(|_| Err(("Panicked".into(), format!("{method} panicked"))));
        shared.objects.connection_closed(id, &mut held);
        if let Some(msgid) = msgid {
            let _guard = calls.write.lock();
            calls.in_flight.lock().remove(&msgid);
            if let Err(e) = respond(stream, msgid, result) {
                log::debug!("msgpack reply: {e}");
            }
        }
        calls.state.lock().running -= 1;
        calls.done.notify_one();
    }
}

/// Runs one call: `monogusa.describe`, `<kind>.<method>` on a shared object, or a registered
/// function.
fn run(
    shared: &Shared,
    method: &str,
    params: Vec<PyValue>,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<PyValue, (String, String)> {
    if method == "monogusa.describe" {
        return Ok(describe(shared));
    }
    if let Some((kind, name)) = method.split_once('.')
        && let Some(service) = kind_service(kind)
    {
        return builtin(shared, service, kind, name, params, held, caller)
            .map_err(|e| error_of(&e));
    }
    let mut result = None;
    shared
        .registry
        .call_erased(
            method,
            &mut <dyn erased_serde::Deserializer>::erase(PyValue::List(params)),
            &mut |value| {
                let py = erased_serde::serialize(value, crate::python::bridge::ToPy)
                    .map_err(|e| RemoteError::new(RemoteErrorKind::BadReply, e.to_string()))?;
                result = Some(py);
                Ok(())
            },
        )
        .map_err(|e| error_of(&e))?;
    Ok(result.unwrap_or(PyValue::None))
}

/// The built-in kinds reachable as `<kind>.<method>`, and their methods.
const KINDS: &[(&str, &[&str])] = &[
    ("counter", &["get", "add", "set"]),
    ("queue", &["put", "get", "len"]),
    (
        "dict",
        &[
            "insert", "get", "remove", "contains", "len", "keys", "items",
        ],
    ),
    ("list", &["push", "pop", "get", "len", "range"]),
    ("value", &["get", "set"]),
];

fn kind_service(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "counter" => crate::store::counter::SERVICE,
        "queue" => crate::store::queue::SERVICE,
        "dict" => crate::store::dict::SERVICE,
        "list" => crate::store::list::SERVICE,
        "value" => crate::store::value::SERVICE,
        _ => return None,
    })
}

fn describe(shared: &Shared) -> PyValue {
    let functions = shared
        .registry
        .names()
        .into_iter()
        .map(|n| PyValue::Str(n.into()))
        .collect();
    let objects = KINDS
        .iter()
        .map(|(kind, methods)| {
            (
                PyValue::Str((*kind).into()),
                PyValue::List(
                    methods
                        .iter()
                        .map(|m| PyValue::Str(format!("{kind}.{m}")))
                        .collect(),
                ),
            )
        })
        .collect();
    PyValue::Dict(vec![
        (PyValue::Str("functions".into()), PyValue::List(functions)),
        (PyValue::Str("objects".into()), PyValue::Dict(objects)),
    ])
}

fn bad(message: impl Into<String>) -> RemoteError {
    RemoteError::new(RemoteErrorKind::BadArguments, message)
}

/// An element as stored: a `Dynamic`, encoded.
fn element(value: PyValue) -> Result<Bytes, RemoteError> {
    let dynamic: Dynamic = serde::Deserialize::deserialize(value)
        .map_err(|e| bad(format!("not a plain value: {e}")))?;
    Bytes::encode(&dynamic).map_err(|e| bad(e.to_string()))
}

fn from_element(bytes: &Bytes) -> Result<PyValue, RemoteError> {
    let dynamic: Dynamic = bytes.decode().map_err(|e| {
        RemoteError::new(
            RemoteErrorKind::BadReply,
            format!("a stored value does not decode: {e}"),
        )
    })?;
    serde::Serialize::serialize(&dynamic, crate::python::bridge::ToPy)
        .map_err(|e| RemoteError::new(RemoteErrorKind::BadReply, e.to_string()))
}

fn optional(bytes: Option<Bytes>) -> Result<PyValue, RemoteError> {
    bytes.map_or(Ok(PyValue::None), |b| from_element(&b))
}

fn int_arg(params: &mut std::vec::IntoIter<PyValue>, what: &str) -> Result<i64, RemoteError> {
    match params.next() {
        Some(PyValue::Int(n)) => Ok(n),
        _ => Err(bad(format!("{what} must be an integer"))),
    }
}

fn builtin(
    shared: &Shared,
    service: &'static str,
    kind: &str,
    method: &str,
    params: Vec<PyValue>,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<PyValue, RemoteError> {
    let mut params = params.into_iter();
    let name = match params.next() {
        Some(PyValue::Str(name)) => name,
        _ => {
            return Err(bad(format!(
                "{kind}.{method} takes the object's name first"
            )));
        }
    };
    let (tag, args): (String, Vec<u8>) = match kind {
        "counter" => ("i64".into(), Vec::new()),
        "queue" => (DYNAMIC_TAG.into(), 0u64.to_le_bytes().to_vec()),
        "dict" => (format!("{DYNAMIC_TAG}, {DYNAMIC_TAG}"), Vec::new()),
        _ => (DYNAMIC_TAG.into(), Vec::new()),
    };
    let id = shared.objects.open_shared(service, &name, &tag, &args)?;
    let mut call = |native: &str, encoded: Vec<u8>| -> Result<Vec<u8>, RemoteError> {
        let mut out = Vec::new();
        shared
            .objects
            .call(id, native, &encoded, &mut out, held, caller)?;
        Ok(out)
    };
    let enc = |args: &dyn erased_serde::Serialize| -> Vec<u8> {
        let mut out = Vec::new();
        crate::codec::encode_into(&args, &mut out).expect("arguments encode");
        out
    };
    macro_rules! decode {
        ($bytes:expr, $ty:ty) => {
            crate::codec::decode_exact::<$ty>(&$bytes)
                .map_err(|e| RemoteError::new(RemoteErrorKind::BadReply, e.to_string()))?
        };
    }
    Ok(match (kind, method) {
        ("counter", "get") => PyValue::Int(decode!(call("get", Vec::new())?, i64)),
        ("counter", "add" | "set") => {
            let n = int_arg(&mut params, "the amount")?;
            PyValue::Int(decode!(call(method, enc(&(n,)))?, i64))
        }
        ("queue", "put") => {
            let item = element(params.next().unwrap_or(PyValue::None))?;
            let _: bool = decode!(call("put", enc(&(item, None::<u64>)))?, bool);
            PyValue::None
        }
        ("queue", "get") => {
            let timeout = match params.next() {
                Some(PyValue::Int(ms)) if ms >= 0 => Some(ms as u64),
                _ => None,
            };
            optional(decode!(call("get", enc(&(timeout,)))?, Option<Bytes>))?
        }
        ("queue" | "dict" | "list", "len") => {
            PyValue::Int(decode!(call("len", Vec::new())?, u64) as i64)
        }
        ("dict", "insert") => {
            let key = element(params.next().unwrap_or(PyValue::None))?;
            let value = element(params.next().unwrap_or(PyValue::None))?;
            optional(decode!(call("insert", enc(&(key, value)))?, Option<Bytes>))?
        }
        ("dict", "get" | "remove") => {
            let key = element(params.next().unwrap_or(PyValue::None))?;
            optional(decode!(call(method, enc(&(key,)))?, Option<Bytes>))?
        }
        ("dict", "contains") => {
            let key = element(params.next().unwrap_or(PyValue::None))?;
            PyValue::Bool(decode!(call("contains", enc(&(key,)))?, bool))
        }
        ("dict", "keys") => PyValue::List(
            decode!(call("keys", Vec::new())?, Vec<Bytes>)
                .iter()
                .map(from_element)
                .collect::<Result<_, _>>()?,
        ),
        ("dict", "items") => PyValue::List(
            decode!(call("items", Vec::new())?, Vec<(Bytes, Bytes)>)
                .iter()
                .map(|(k, v)| Ok(PyValue::List(vec![from_element(k)?, from_element(v)?])))
                .collect::<Result<_, RemoteError>>()?,
        ),
        ("list", "push") => {
            let item = element(params.next().unwrap_or(PyValue::None))?;
            PyValue::Int(decode!(call("push", enc(&(item,)))?, u64) as i64)
        }
        ("list", "pop") => optional(decode!(call("pop", Vec::new())?, Option<Bytes>))?,
        ("list", "get") => {
            let at = int_arg(&mut params, "the index")?;
            optional(decode!(
                call("get", enc(&(at.max(0) as u64,)))?,
                Option<Bytes>
            ))?
        }
        ("list", "range") => {
            let start = int_arg(&mut params, "the start")?.max(0) as u64;
            let end = int_arg(&mut params, "the end")?.max(0) as u64;
            PyValue::List(
                decode!(call("range", enc(&(start, end)))?, Vec<Bytes>)
                    .iter()
                    .map(from_element)
                    .collect::<Result<_, _>>()?,
            )
        }
        ("value", "get") => optional(decode!(call("get", Vec::new())?, Option<Bytes>))?,
        ("value", "set") => {
            let item = element(params.next().unwrap_or(PyValue::None))?;
            optional(decode!(call("swap", enc(&(item,)))?, Option<Bytes>))?
        }
        _ => {
            return Err(RemoteError::new(
                RemoteErrorKind::UnknownMethod,
                format!("{kind} has no method {method} (see monogusa.describe)"),
            ));
        }
    })
}
