//! The Python listener: serves unmodified `multiprocessing.managers` clients (3.8+) the same
//! registered functions and built-in shared objects as the native listener.
//!
//! Python's connection model: after the mutual handshake, one request;
//! `accept_connection` turns the connection into a long-lived method-call loop, every other
//! server-level call (`create`, `incref`, `decref`, `dummy`, ...) gets one reply and the
//! connection closes. Objects live in a table of their own (ident → target, refcount, exposed
//! names): a registered function's result, kept as a Python value, or a built-in shared object
//! exposed with `python_expose`.
//!
//! Every read re-arms `TCP_QUICKACK` and writes go out whole with `TCP_NODELAY`: Python's
//! client writes `#WELCOME#` and its request back to back, and without a quick ACK, Nagle and
//! delayed ACKs stall each control call ~40 ms.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Shared;
use super::listener::Admitted;
use super::objects::HeldRefs;
use crate::error::RemoteError;
use crate::python::handshake::{self, FAILURE, MAX_HANDSHAKE_FRAME, WELCOME};
use crate::python::methods;
use crate::python::pickle::pickle;
use crate::python::shared::PythonShared;
use crate::python::unpickle::unpickle;
use crate::service::Caller;
use crate::transport::{Deadline, Stream};
use crate::values::value::ForeignValue;
use shared_calls::{Native, shared_method};
use sync_manager::{Made, Names};

mod shared_calls;
mod sync_manager;

/// The stack of a Python connection's thread, at least.
const PYTHON_STACK: usize = 8 << 20;

/// The most objects Python clients may hold at once.
const MAX_OBJECTS: usize = 100_000;

/// How deep a Python request may nest (Python's own limit is its recursion limit, ~1000).
const MAX_DEPTH: u32 = 128;

/// What an object ident stands for.
enum Target {
    /// A registered function's result.
    Value(ForeignValue),
    /// A built-in shared object (its id in the manager's table).
    Shared { id: u64, spec: PythonShared },
    /// `SyncManager.RLock()`, over the built-in lock `id`.
    RLock {
        id: u64,
        lock: sync_manager::Reentrant,
    },
    /// `SyncManager.Condition()`, over the built-in lock `id`.
    Condition {
        id: u64,
        condition: sync_manager::Condition,
    },
    /// What `iter(d)` or `reversed(l)` gave: a copy, handed out one at a time.
    Iterator(Mutex<std::collections::VecDeque<ForeignValue>>),
    /// An object the manager serves (a `#[service]`), by its id: its methods are called
    /// through their erased entries.
    Served(u64),
}

struct Entry {
    target: Arc<Target>,
    refs: u64,
    exposed: Vec<String>,
    /// The anonymous shared object to delete with the last reference.
    owned: Option<String>,
    /// What it holds in the listener (a result, an iterator's copy), charged to the store's
    /// budget until the last reference goes.
    charged: u64,
}

/// The Python listener's state in the manager.
pub(crate) struct PythonState {
    /// The raw authkey: Python's handshake MACs with MD5 and SHA-256 over it.
    key: Vec<u8>,
    exposed: HashMap<String, PythonShared>,
    /// Whether `SyncManager`'s typeids and `get_*(name)` are served.
    builtins: bool,
    /// The names of anonymous objects.
    names: Names,
    /// Anonymous objects a crashed run left in a data directory, deleted once.
    swept: std::sync::Once,
    table: Mutex<(u64, HashMap<String, Entry>)>,
}

impl PythonState {
    pub(crate) fn new(key: &[u8], exposed: HashMap<String, PythonShared>, builtins: bool) -> Self {
        PythonState {
            key: key.to_vec(),
            exposed,
            builtins,
            names: Names::new(),
            swept: std::sync::Once::new(),
            table: Mutex::new((0, HashMap::new())),
        }
    }

    /// Files a new object with one reference; an error past the table's limit (a client
    /// killed before its decrefs leaves its objects behind, as with Python's own server).
    /// Files a value or an iterator the listener itself holds, charged to the store's budget
    /// (a client that never releases its proxies runs into `LimitExceeded`, not the memory's
    /// end).
    fn insert(
        &self,
        shared: &Shared,
        target: Target,
        exposed: Vec<String>,
    ) -> Result<String, Reply> {
        let charged = match &target {
            Target::Value(value) => value.footprint(),
            Target::Iterator(items) => items.lock().iter().map(ForeignValue::footprint).sum(),
            _ => 0,
        };
        let budget = shared.objects.budget();
        budget
            .charge(charged)
            .map_err(|e| Reply::Traceback(format!("LimitExceeded: {e}")))?;
        self.insert_owned(target, exposed, None, charged)
            .inspect_err(|_| budget.refund(charged))
    }

    fn insert_owned(
        &self,
        target: Target,
        exposed: Vec<String>,
        owned: Option<String>,
        charged: u64,
    ) -> Result<String, Reply> {
        let mut table = self.table.lock();
        if table.1.len() >= MAX_OBJECTS {
            return Err(Reply::Traceback(format!(
                "LimitExceeded: the manager holds {MAX_OBJECTS} objects for Python clients"
            )));
        }
        table.0 += 1;
        let ident = format!("{:x}", table.0);
        table.1.insert(
            ident.clone(),
            Entry {
                target: Arc::new(target),
                refs: 1,
                exposed,
                owned,
                charged,
            },
        );
        Ok(ident)
    }
}

/// The door of Python's `multiprocessing.managers` clients, with what it keeps.
///
/// Python clients open a connection for every control call (`create`, `incref`, `decref`),
/// thousands a second: the host's reused threads spare a thread's creation and teardown (its
/// stack's mapping, the TLB shootdown of unmapping it) for each.
pub(crate) struct Door(PythonState);

impl Door {
    /// The door as `ManagerBuilder::python_listener` registers it.
    pub(crate) fn make(
        builder: &super::ManagerBuilder,
        key: &[u8],
    ) -> crate::error::Result<Arc<dyn super::listener::Listener>> {
        let state = PythonState::new(key, builder.python_exposed.clone(), builder.python_builtins);
        Ok(Arc::new(Door(state)))
    }
}

impl super::listener::Listener for Door {
    fn name(&self) -> &'static str {
        "python"
    }

    fn serve(&self, shared: &Arc<Shared>, connection: &Admitted) -> String {
        match serve(shared, &self.0, &connection.stream, connection.id) {
            Ok(()) => "the connection ended".into(),
            Err(e) => {
                log::debug!("python client {}: {e}", connection.stream.peer_label());
                format!("connection ended: {e}")
            }
        }
    }

    /// A frame where the client expects the challenge: Python raises an authentication
    /// error that shows it.
    fn busy(&self, why: &str) -> Vec<u8> {
        let text = format!("monogusa: busy: {why}");
        let mut frame = (text.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(text.as_bytes());
        frame
    }

    /// Nested values are converted and written recursively (up to `MAX_DEPTH` levels), in
    /// frames that are large in debug builds: room for them, in untouched virtual memory.
    fn stack_size(&self, limits: &super::Limits) -> usize {
        limits.thread_stack_size.max(PYTHON_STACK)
    }

    fn thread_name(&self) -> &'static str {
        "monogusa-python"
    }
}

fn quickack(stream: &Stream) {
    #[cfg(target_os = "linux")]
    if let Stream::Tcp(tcp) = stream {
        let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// Reads one frame (`!i` length, or -1 and `!Q`), refusing more than `max` bytes.
fn read_frame(stream: &Stream, max: usize) -> io::Result<Option<Vec<u8>>> {
    quickack(stream);
    read_frame_from(&mut &*stream, max)
}

/// [`read_frame`] from any reader (the handshake's, under one total deadline).
fn read_frame_from(reader: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(header);
    let len: u64 = if len == -1 {
        let mut long = [0u8; 8];
        reader.read_exact(&mut long)?;
        u64::from_be_bytes(long)
    } else if len < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a negative frame length {len}"),
        ));
    } else {
        len as u64
    };
    if len > max as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit of {max}"),
        ));
    }
    let mut payload = Vec::with_capacity((len as usize).min(64 * 1024));
    reader.take(len).read_to_end(&mut payload)?;
    if payload.len() as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the frame is truncated",
        ));
    }
    Ok(Some(payload))
}

fn write_frame(stream: &Stream, payload: &[u8]) -> io::Result<()> {
    write_frame_to(&mut &*stream, payload)
}

/// [`write_frame`] to any writer.
fn write_frame_to(writer: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 12);
    match i32::try_from(payload.len()) {
        Ok(len) => frame.extend_from_slice(&len.to_be_bytes()),
        Err(_) => {
            frame.extend_from_slice(&(-1i32).to_be_bytes());
            frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    writer.write_all(&frame)
}

/// A reply: `('#RETURN', value)`, `('#ERROR', exception)`, `('#TRACEBACK', text)`, or
/// `('#PROXY', (exposed, token))` for a method whose result is an object of its own.
enum Reply {
    Return(ForeignValue),
    Error(ForeignValue),
    Traceback(String),
    Proxy {
        exposed: ForeignValue,
        typeid: String,
        ident: String,
    },
}

fn send(stream: &Stream, reply: Reply) -> io::Result<()> {
    let (kind, value) = match reply {
        Reply::Return(v) => ("#RETURN", v),
        Reply::Error(e) => ("#ERROR", e),
        Reply::Traceback(t) => ("#TRACEBACK", ForeignValue::Str(t)),
        // The client puts its own address into the token.
        Reply::Proxy {
            exposed,
            typeid,
            ident,
        } => (
            "#PROXY",
            ForeignValue::Tuple(vec![
                exposed,
                ForeignValue::Token {
                    typeid,
                    address: Box::new(ForeignValue::None),
                    id: ident,
                },
            ]),
        ),
    };
    let mut out = Vec::new();
    pickle(
        &ForeignValue::Tuple(vec![ForeignValue::Str(kind.into()), value]),
        &mut out,
    );
    write_frame(stream, &out)
}

/// The mutual handshake under one total deadline: we challenge, then answer.
fn authenticate(shared: &Shared, python: &PythonState, stream: &Stream) -> io::Result<bool> {
    // One deadline for the whole handshake, however its bytes drip in (a socket timeout
    // alone restarts with every byte).
    let mut timed = Deadline::start(stream, shared.limits.handshake_timeout)?;
    let mut random = [0u8; 40];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let challenge = handshake::challenge(&random);
    write_frame_to(&mut timed, &challenge)?;
    quickack(stream);
    let Some(response) = read_frame_from(&mut timed, MAX_HANDSHAKE_FRAME)? else {
        return Ok(false);
    };
    let message = &challenge[handshake::CHALLENGE.len()..];
    if !handshake::verify(&python.key, message, &response) {
        shared.wrong_key(stream);
        let _ = write_frame_to(&mut timed, FAILURE);
        shared.failure_log.warn(format_args!(
            "python client {} gave a wrong authkey",
            stream.peer_label()
        ));
        return Ok(false);
    }
    write_frame_to(&mut timed, WELCOME)?;
    quickack(stream);
    let Some(theirs) = read_frame_from(&mut timed, MAX_HANDSHAKE_FRAME)? else {
        return Ok(false);
    };
    let answer = handshake::answer(&python.key, &theirs)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?;
    write_frame_to(&mut timed, &answer)?;
    quickack(stream);
    let verdict = read_frame_from(&mut timed, MAX_HANDSHAKE_FRAME)?;
    stream.set_timeouts(None)?;
    Ok(verdict.as_deref() == Some(WELCOME))
}

/// A request: `(ident, method, args, kwds)`.
struct Request {
    ident: Option<String>,
    method: String,
    args: Vec<ForeignValue>,
    kwds: Vec<(ForeignValue, ForeignValue)>,
}

/// A request frame read as the listener reads it, for the fuzz target: `Ok` with the method
/// name, or why it was refused.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn parse_request_for_fuzzing(frame: &[u8]) -> Result<String, String> {
    parse_request(frame).map(|r| r.method)
}

fn parse_request(frame: &[u8]) -> Result<Request, String> {
    let value = unpickle(frame, MAX_DEPTH).map_err(|e| e.to_string())?;
    let ForeignValue::Tuple(parts) = value else {
        return Err("a request must be a tuple (ident, method, args, kwds)".into());
    };
    let mut parts = parts.into_iter();
    let (ident, method, args, kwds) = (parts.next(), parts.next(), parts.next(), parts.next());
    let ident = match ident {
        Some(ForeignValue::None) => None,
        Some(ForeignValue::Str(s)) => Some(s),
        _ => return Err("a request's ident must be None or a str".into()),
    };
    let Some(ForeignValue::Str(method)) = method else {
        return Err("a request's method must be a str".into());
    };
    let args = match args {
        Some(ForeignValue::Tuple(a) | ForeignValue::List(a)) => a,
        _ => return Err("a request's args must be a tuple".into()),
    };
    let kwds = match kwds {
        Some(ForeignValue::Dict(k)) => k,
        None => Vec::new(),
        _ => return Err("a request's kwds must be a dict".into()),
    };
    Ok(Request {
        ident,
        method,
        args,
        kwds,
    })
}

fn serve(shared: &Arc<Shared>, python: &PythonState, stream: &Stream, id: u64) -> io::Result<()> {
    if !authenticate(shared, python, stream)? {
        return Ok(());
    }
    let promoted = shared.promote(id);
    let max = shared.limits.max_frame_len as usize;
    let Some(frame) = read_frame(stream, max)? else {
        return Ok(());
    };
    if let Err(why) = promoted {
        // The client already sent its request: it hears why, as the reply.
        return send(stream, Reply::Traceback(format!("monogusa: busy: {why}")));
    }
    let request = match parse_request(&frame) {
        Ok(r) => r,
        Err(why) => return send(stream, Reply::Traceback(format!("refused request: {why}"))),
    };
    if request.ident.is_some() {
        return send(
            stream,
            Reply::Traceback("a method call before accept_connection".into()),
        );
    }
    if request.method != "accept_connection" {
        let stopping = request.method == "shutdown" && shared.allow_remote_shutdown;
        let reply = server_call(shared, python, stream, request);
        let sent = send(stream, reply);
        // Only once the reply is out: shutting down closes this connection too.
        if stopping {
            shared.begin_shutdown();
        }
        return sent;
    }
    send(stream, Reply::Return(ForeignValue::None))?;
    // The long-lived method-call loop of one client thread.
    let mut held = HeldRefs::default();
    let result = (|| -> io::Result<()> {
        while let Some(frame) = read_frame(stream, max)? {
            let reply = match parse_request(&frame) {
                Ok(request) => {
                    let caller = Caller::new(id, stream).reaching(&shared.objects);
                    method_call(shared, python, request, &mut held, &caller)
                }
                Err(why) => Reply::Traceback(format!("refused request: {why}")),
            };
            send(stream, reply)?;
        }
        Ok(())
    })();
    // Locks it held are released, as for a native connection.
    shared.objects.connection_closed(id, &mut held);
    result
}

fn str_arg(args: &[ForeignValue], at: usize, what: &str) -> Result<String, Reply> {
    match args.get(at) {
        Some(ForeignValue::Str(s)) => Ok(s.clone()),
        _ => Err(Reply::Traceback(format!("{what} needs a str argument"))),
    }
}

/// A server-level call (`ident` None): one reply, then the connection closes.
fn server_call(
    shared: &Arc<Shared>,
    python: &PythonState,
    stream: &Stream,
    request: Request,
) -> Reply {
    let args = request.args;
    let result = (|| -> Result<Reply, Reply> {
        Ok(match request.method.as_str() {
            "dummy" => Reply::Return(ForeignValue::None),
            "create" => create(shared, python, stream, args, request.kwds)?,
            "incref" => {
                let ident = str_arg(&args, 0, "incref")?;
                let mut table = python.table.lock();
                match table.1.get_mut(&ident) {
                    Some(entry) => entry.refs += 1,
                    None => return Err(Reply::Traceback(format!("KeyError: {ident:?}"))),
                }
                Reply::Return(ForeignValue::None)
            }
            "decref" => {
                let ident = str_arg(&args, 0, "decref")?;
                let removed = {
                    let mut table = python.table.lock();
                    let Some(entry) = table.1.get_mut(&ident) else {
                        return Err(Reply::Traceback(format!("KeyError: {ident:?}")));
                    };
                    entry.refs -= 1;
                    if entry.refs == 0 {
                        table.1.remove(&ident)
                    } else {
                        None
                    }
                };
                // Outside the lock: what it held goes back to the budget, and an anonymous
                // object goes with its last reference.
                if let Some(entry) = &removed {
                    shared.objects.budget().refund(entry.charged);
                }
                if let Some(name) = removed.and_then(|entry| entry.owned)
                    && let Err(e) = shared.objects.delete_shared(&name)
                {
                    log::warn!("could not delete {name}: {e}");
                }
                Reply::Return(ForeignValue::None)
            }
            "get_methods" => {
                let ident = match args.first() {
                    Some(ForeignValue::Token { id, .. }) => id.clone(),
                    _ => return Err(Reply::Traceback("get_methods needs a Token".into())),
                };
                let table = python.table.lock();
                let entry = table
                    .1
                    .get(&ident)
                    .ok_or_else(|| Reply::Traceback(format!("KeyError: {ident:?}")))?;
                Reply::Return(names(&entry.exposed))
            }
            "debug_info" => {
                let table = python.table.lock();
                let lines: Vec<String> = table
                    .1
                    .iter()
                    .map(|(ident, e)| format!("  {ident}:       refcount={}", e.refs))
                    .collect();
                Reply::Return(ForeignValue::Str(lines.join("\n")))
            }
            "number_of_objects" => {
                Reply::Return(ForeignValue::Int(python.table.lock().1.len() as i64))
            }
            "shutdown" if shared.allow_remote_shutdown => {
                // `serve` begins the shutdown once this reply is sent.
                log::info!(
                    "shutdown requested by python client {}",
                    stream.peer_label()
                );
                Reply::Return(ForeignValue::None)
            }
            "shutdown" => {
                Reply::Traceback("NotPermitted: this manager does not allow remote shutdown".into())
            }
            other => Reply::Traceback(format!(
                "ValueError: {other:?} is not a server call (dummy, create, incref, decref, \
                 accept_connection, get_methods, debug_info, number_of_objects, shutdown)"
            )),
        })
    })();
    result.unwrap_or_else(|reply| reply)
}

fn names(exposed: &[String]) -> ForeignValue {
    ForeignValue::Tuple(
        exposed
            .iter()
            .map(|n| ForeignValue::Str(n.clone()))
            .collect(),
    )
}

/// `create(typeid, *args)`: a registered function's result, or an exposed shared object.
fn create(
    shared: &Arc<Shared>,
    python: &PythonState,
    _stream: &Stream,
    mut args: Vec<ForeignValue>,
    kwds: Vec<(ForeignValue, ForeignValue)>,
) -> Result<Reply, Reply> {
    if args.is_empty() {
        return Err(Reply::Traceback("create needs a typeid".into()));
    }
    let typeid = str_arg(&args, 0, "create")?;
    args.remove(0);
    if let Some(spec) = python.exposed.get(&typeid) {
        let id = shared
            .objects
            .open_shared(spec.service(), &spec.name, &spec.tag, &spec.args)
            .map_err(|e| Reply::Traceback(format!("cannot open {:?}: {e}", spec.name)))?;
        let exposed = exposed_names(shared, id, spec, spec.exposed());
        let reply_names = names(&exposed);
        let ident = python.insert_owned(
            Target::Shared {
                id,
                spec: spec.clone(),
            },
            exposed,
            None,
            0,
        )?;
        return Ok(Reply::Return(ForeignValue::Tuple(vec![
            ForeignValue::Str(ident),
            reply_names,
        ])));
    }
    if shared.registry.get(&typeid).is_none()
        && let Some(id) = shared.objects.find_served(&typeid)
    {
        // A typeid that names a served object: a proxy whose methods are the service's.
        let exposed: Vec<String> = shared
            .objects
            .descriptor_of(id)
            .map(|d| d.methods.iter().map(|m| m.name.to_string()).collect())
            .unwrap_or_default();
        let reply_names = names(&exposed);
        let ident = python.insert_owned(Target::Served(id), exposed, None, 0)?;
        return Ok(Reply::Return(ForeignValue::Tuple(vec![
            ForeignValue::Str(ident),
            reply_names,
        ])));
    }
    if python.builtins
        && shared.registry.get(&typeid).is_none()
        && let Some(creation) = sync_manager::creation(&python.names, &typeid, &args, &kwds)
    {
        let creation = creation.map_err(Reply::Error)?;
        return create_builtin(shared, python, creation, args, kwds);
    }
    if !kwds.is_empty() {
        return Err(Reply::Traceback(format!(
            "TypeError: {typeid}() takes positional arguments only (Rust functions have no keywords)"
        )));
    }
    let mut result = None;
    let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shared.registry.call_erased(
            &typeid,
            &mut <dyn erased_serde::Deserializer>::erase(ForeignValue::Tuple(args)),
            &mut |value| {
                let py = erased_serde::serialize(value, crate::values::bridge::ToForeign).map_err(
                    |e| RemoteError::new(crate::RemoteErrorKind::BadReply, e.to_string()),
                )?;
                result = Some(py);
                Ok(())
            },
        )
    }));
    match call {
        Err(_) => Err(Reply::Traceback(format!("{typeid} panicked"))),
        Ok(Err(e)) => Err(Reply::Traceback(e.to_string())),
        Ok(Ok(())) => {
            let value = result.unwrap_or(ForeignValue::None);
            let exposed: Vec<String> = methods::exposed(&value)
                .iter()
                .map(|s| s.to_string())
                .collect();
            let reply_names = names(&exposed);
            let ident = python.insert(shared, Target::Value(value), exposed)?;
            Ok(Reply::Return(ForeignValue::Tuple(vec![
                ForeignValue::Str(ident),
                reply_names,
            ])))
        }
    }
}

/// Python's proxy names for shared object `id`, then the methods its kind declares that
/// Python's proxies lack (`q.peek()`), which are called through the declaration (dicts keep
/// Python's names only: their keys and values may be of different types).
fn exposed_names(shared: &Shared, id: u64, spec: &PythonShared, hand: &[&str]) -> Vec<String> {
    let mut exposed: Vec<String> = hand.iter().map(|s| s.to_string()).collect();
    let dict = matches!(
        spec.kind,
        crate::python::shared::Kind::Dict | crate::python::shared::Kind::Namespace
    );
    if !dict && let Some(descriptor) = shared.objects.descriptor_of(id) {
        for method in descriptor.methods {
            if !exposed.iter().any(|e| e == method.name) {
                exposed.push(method.name.to_string());
            }
        }
    }
    exposed
}

/// `get_queue(name)` and the like open `Dynamic` elements; when `name` exists with a Rust
/// type's elements instead (`client.tasks::<Email>("emails")`), its elements are converted by
/// that type's shape (a struct is a dict), or the error says why they cannot be.
fn typed(shared: &Shared, spec: PythonShared) -> Result<PythonShared, Reply> {
    let dynamic = crate::proxies::DYNAMIC_TAG;
    let dynamic_dict = spec
        .tag
        .split_once(", ")
        .is_some_and(|(k, v)| k == dynamic && v == dynamic);
    if spec.tag != dynamic && !dynamic_dict {
        return Ok(spec);
    }
    match shared
        .objects
        .other_tag(&spec.name, spec.service(), &spec.tag)
    {
        Some(tag) => {
            let name = spec.name.clone();
            spec.shaped(&tag).map_err(|why| {
                Reply::Traceback(format!(
                    "TypeError: {name:?} holds elements of {tag}, which Python cannot take: {why}"
                ))
            })
        }
        _ => Ok(spec),
    }
}

/// Makes what [`sync_manager::creation`] describes: opens the built-in object, fills in the
/// contents given, and files it with its proxy's method names.
fn create_builtin(
    shared: &Arc<Shared>,
    python: &PythonState,
    creation: sync_manager::Creation,
    args: Vec<ForeignValue>,
    kwds: Vec<(ForeignValue, ForeignValue)>,
) -> Result<Reply, Reply> {
    python.swept.call_once(|| {
        for name in shared
            .objects
            .shared_names_with(sync_manager::ANONYMOUS_PREFIX)
        {
            let _ = shared.objects.delete_shared(&name);
        }
    });
    let open = |spec: &PythonShared| {
        shared
            .objects
            .open_shared(spec.service(), &spec.name, &spec.tag, &spec.args)
            .map_err(|e| Reply::Traceback(format!("cannot open {:?}: {e}", spec.name)))
    };
    let mut exposed: Vec<String> = creation.exposed.iter().map(|s| s.to_string()).collect();
    let (target, owned) = match creation.made {
        Made::Shared { spec, owned } => {
            let spec = typed(shared, spec)?;
            let id = open(&spec)?;
            exposed = exposed_names(shared, id, &spec, &creation.exposed);
            let owned = owned.then(|| spec.name.clone());
            if owned.is_some() {
                let mut held = HeldRefs::default();
                let caller = Caller::detached();
                let mut native = Native {
                    shared,
                    id,
                    held: &mut held,
                    caller: &caller,
                };
                if let Err(e) = sync_manager::fill(&mut native, &spec, args, kwds) {
                    let _ = shared.objects.delete_shared(&spec.name);
                    return Err(Reply::Error(e));
                }
            }
            (Target::Shared { id, spec }, owned)
        }
        Made::RLock(lock) => {
            let id = open(&lock.spec)?;
            let owned = Some(lock.spec.name.clone());
            (Target::RLock { id, lock }, owned)
        }
        Made::Condition(condition) => {
            let id = open(&condition.lock.spec)?;
            let owned = Some(condition.lock.spec.name.clone());
            (Target::Condition { id, condition }, owned)
        }
    };
    let reply_names = names(&exposed);
    let ident = match python.insert_owned(target, exposed, owned.clone(), 0) {
        Ok(ident) => ident,
        Err(reply) => {
            if let Some(name) = owned {
                let _ = shared.objects.delete_shared(&name);
            }
            return Err(reply);
        }
    };
    Ok(Reply::Return(ForeignValue::Tuple(vec![
        ForeignValue::Str(ident),
        reply_names,
    ])))
}

/// `iter(d)` on a dict proxy and `reversed(l)` on a list proxy: a new `Iterator` object over
/// a copy, as `SyncManager`'s `method_to_typeid` makes it.
fn iterator(
    shared: &Shared,
    python: &PythonState,
    items: Result<ForeignValue, ForeignValue>,
    reverse: bool,
) -> Reply {
    let mut items: std::collections::VecDeque<ForeignValue> = match items {
        Ok(ForeignValue::List(items)) => items.into(),
        Ok(ForeignValue::Dict(pairs)) => pairs.into_iter().map(|(k, _)| k).collect(),
        Ok(_) => return Reply::Error(methods::exception("TypeError", "not iterable")),
        Err(e) => return Reply::Error(e),
    };
    if reverse {
        items.make_contiguous().reverse();
    }
    let exposed: Vec<String> = sync_manager::ITERATOR
        .iter()
        .map(|s| s.to_string())
        .collect();
    let reply_names = names(&exposed);
    match python.insert(shared, Target::Iterator(Mutex::new(items)), exposed) {
        Ok(ident) => Reply::Proxy {
            exposed: reply_names,
            typeid: "Iterator".into(),
            ident,
        },
        Err(reply) => reply,
    }
}

/// One call on a proxy's connection.
fn method_call(
    shared: &Shared,
    python: &PythonState,
    request: Request,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Reply {
    let Some(ident) = request.ident else {
        return Reply::Traceback(format!(
            "{:?} is not a method call (no ident)",
            request.method
        ));
    };
    let (target, allowed) = {
        let table = python.table.lock();
        match table.1.get(&ident) {
            Some(entry) => (
                Arc::clone(&entry.target),
                entry.exposed.contains(&request.method),
            ),
            None => return Reply::Traceback(format!("KeyError: {ident:?}")),
        }
    };
    let fallback = matches!(
        request.method.as_str(),
        "__str__" | "__repr__" | "#GETVALUE"
    );
    if !allowed && !fallback {
        return Reply::Traceback(format!(
            "AttributeError: method {:?} is not exposed by object {ident}",
            request.method
        ));
    }
    fn native<'a, 'c>(
        shared: &'a Shared,
        id: u64,
        held: &'a mut HeldRefs,
        caller: &'a Caller<'c>,
    ) -> Native<'a, 'c> {
        Native {
            shared,
            id,
            held,
            caller,
        }
    }
    let outcome = match &*target {
        Target::Value(value) => methods::call(value, &request.method, &request.args),
        Target::Shared { id, spec }
            if matches!(request.method.as_str(), "__iter__" | "__reversed__") =>
        {
            let mut call = native(shared, *id, held, caller);
            let items = shared_method(&mut call, spec, "#GETVALUE", Vec::new(), &[]);
            return iterator(shared, python, items, request.method == "__reversed__");
        }
        Target::RLock { id, lock } => lock.method(
            &mut native(shared, *id, held, caller),
            &request.method,
            &request.args,
            &request.kwds,
        ),
        Target::Condition { id, condition } => condition.method(
            &mut native(shared, *id, held, caller),
            &request.method,
            &request.args,
            &request.kwds,
        ),
        Target::Iterator(items) => match request.method.as_str() {
            "__next__" => items
                .lock()
                .pop_front()
                .ok_or_else(|| ForeignValue::Exception("StopIteration".into(), vec![])),
            "close" => {
                items.lock().clear();
                Ok(ForeignValue::None)
            }
            other => Err(methods::exception(
                "NotImplementedError",
                format!("iterator.{other}() is not served"),
            )),
        },
        Target::Served(id) => {
            if !request.kwds.is_empty() {
                return Reply::Traceback(format!(
                    "TypeError: {}() takes positional arguments only",
                    request.method
                ));
            }
            super::foreign::call_object(
                shared,
                *id,
                &request.method,
                ForeignValue::Tuple(request.args),
                held,
                caller,
            )
            .map_err(|e| methods::exception("RuntimeError", e.to_string()))
        }
        Target::Shared { id, spec } => {
            let mut call = Native {
                shared,
                id: *id,
                held,
                caller,
            };
            shared_method(
                &mut call,
                spec,
                &request.method,
                request.args,
                &request.kwds,
            )
        }
    };
    match outcome {
        Ok(value) => Reply::Return(value),
        Err(exception) => Reply::Error(exception),
    }
}
