//! Many calls in flight on one connection: `Client::send` queues a request and returns a
//! [`Pending`] reply to wait on later.
//!
//! Writing: a writer thread per pipeline connection takes everything queued since its last
//! write and sends it with one `write`, so a burst of sends from one or many threads leaves in
//! a few syscalls, yet every request leaves promptly (none waits for a later `wait`).
//!
//! Reading: no reader thread. A waiting caller that gets the `reader` lock (`try_lock`: the
//! lock *is* the lead) reads the next reply frame itself, then lets go. A reply for the leader
//! is decoded in place, with no copy and no thread hand-off; a reply for another caller is
//! copied into `ready` and *that* caller alone is woken. One frame per turn means a caller
//! never waits for a later call's reply. A caller that waits in send order, the common case,
//! takes no lock but `reader`.
//!
//! Wake-ups are targeted: a sleeping caller is listed in `sleepers` under its request id and
//! parks its thread; a stored reply unparks its owner only, and a leader leaving with its own
//! reply hands the lead to one sleeper. (A condvar's `notify_all` woke every sleeper for every
//! reply: with 8 threads sharing a pipeline, 20 futex calls per call, measured with
//! `strace -c` on `examples/instructions pipelined-threads`.)
//!
//! Invariants: `ready_count` equals `state.ready.len()` and `sleeping` equals
//! `state.sleepers.len()` (both changed only under `state`); a reply id is in at most one of
//! `ready` and `abandoned`; once `failure` is set it stays, and every unanswered call of this
//! connection fails with it. Lost wake-ups: a leader lets go of `reader`, then looks for
//! sleepers under `state`; a sleeper lists itself under `state`, then tries `reader` once more
//! before parking, so either the leader sees it or it gets the lead. `park` keeps an unpark
//! that came first, and sleepers also wake in bounded slices as a second guard.

use std::io::{self, Write};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

// std's locks, not parking_lot's as elsewhere: the hand-offs between senders, the writer and
// the leading reader are hot and contended, and std's futex mutex measured clearly faster here
// (pinned harness, 256 in flight: 0.20 against 0.15 of a raw echo for 16 B, 1.39 against 0.76
// for 4 KiB). Poisoning is recovered at each lock.
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, RemoteError, Result};
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::transport::{Stream, is_timeout};
use crate::wire::frame::FrameReader;
use crate::wire::message::{NOTICE_ID, Op, ResponseHeader, encode_request, is_heartbeat};

use super::Keepalive;
use super::connection::{
    Connection, Health, MIN_TIMEOUT, Trailing, decode_body, decode_reply, silent_manager,
};

/// How errors name a pipelined call (the function's name is not kept, to spare an
/// allocation per call).
const PIPELINED: &str = "a pipelined call";

/// The largest batch its own thread writes. A larger one goes to the writer thread, so its
/// caller can go on to read replies: the manager stops reading requests while its replies
/// go unread, and a caller stuck writing a batch the manager no longer reads never would.
const DIRECT_WRITE_MAX: usize = 64 << 10;

/// Sends block while this much is queued and unwritten: the manager is not keeping up.
const MAX_QUEUED: usize = 8 << 20;

/// Why a pipeline connection stopped: each unanswered call gets an error made from it.
#[derive(Debug, Clone)]
enum Failure {
    Lost(io::ErrorKind, String),
    Notice(RemoteError),
    Protocol(String),
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::Lost(kind, message) => {
                Error::ConnectionLost(io::Error::new(*kind, message.clone()))
            }
            Failure::Notice(notice) => Error::Remote(notice.clone()),
            Failure::Protocol(message) => Error::Protocol(message.clone()),
        }
    }

    fn from_error(error: &Error) -> Failure {
        match error {
            Error::ConnectionLost(e) | Error::Io(e) => Failure::Lost(e.kind(), e.to_string()),
            Error::Remote(notice) => Failure::Notice(notice.clone()),
            other => Failure::Protocol(other.to_string()),
        }
    }
}

struct State {
    next_id: u64,
    /// Frames queued and not yet taken by the writer.
    queued: Vec<u8>,
    /// The writer has been signalled and has not yet taken the queue.
    writer_signalled: bool,
    /// Replies read for callers that have not collected them: payload by request id.
    ready: FxHashMap<u64, Vec<u8>>,
    /// Calls nobody will wait for (timed out, or their `Pending` dropped): replies discarded.
    abandoned: FxHashSet<u64>,
    failure: Option<Failure>,
    /// The client is gone: the writer exits once the queue is written.
    closed: bool,
    /// Senders waiting on `space`: notified only when someone waits (a notify is a syscall
    /// even with nobody to wake).
    blocked_senders: usize,
    /// Callers parked waiting for their reply, by request id.
    sleepers: FxHashMap<u64, thread::Thread>,
}

struct Reader {
    stream: Stream,
    frames: FrameReader,
    socket_timeout: Option<Duration>,
    /// Since when nothing has arrived while someone waited (read from the clock only once a
    /// read times out).
    silent_since: Option<Instant>,
}

/// One pipelined connection, shared by the client, its writer thread and pending replies.
pub(crate) struct Pipe {
    state: Mutex<State>,
    /// Wakes the writer.
    work: Condvar,
    /// Wakes senders blocked on a full queue.
    space: Condvar,
    reader: Mutex<Reader>,
    /// The writing half: held by the writer thread while it takes the queue and writes it,
    /// and by a batch writing itself (only when the queue is empty and nobody writes), so
    /// frames leave in the order they were queued.
    writer: Mutex<Stream>,
    max_frame_len: u32,
    /// How deeply nested a reply may be.
    max_depth: u32,
    keepalive: Option<Keepalive>,
    /// Mirrors `state.failure.is_some()`, readable without the lock.
    failed: AtomicBool,
    /// Mirrors `state.ready.len()`, so a caller in send order skips the state lock.
    ready_count: AtomicUsize,
    /// Mirrors `state.sleepers.len()`, so a leader with nobody asleep skips the state lock.
    sleeping: AtomicUsize,
    /// Where `Pending::on_reply` callbacks go: one thread per pipeline, started on first use,
    /// runs them in the order they were given.
    callbacks: Mutex<Option<std::sync::mpsc::Sender<Callback>>>,
}

/// A reply callback, with its wait.
type Callback = Box<dyn FnOnce() + Send>;

impl Pipe {
    /// Takes over an authenticated connection and starts its writer thread.
    pub(crate) fn start(connection: Connection, max_frame_len: u32) -> Result<Arc<Pipe>> {
        let max_depth = connection.max_depth();
        let keepalive = connection.keepalive();
        let (stream, frames) = connection.into_parts()?;
        let writer_stream = stream.try_clone()?;
        let pipe = Arc::new(Pipe {
            state: Mutex::new(State {
                next_id: 1,
                queued: Vec::with_capacity(4096),
                writer_signalled: false,
                ready: FxHashMap::default(),
                abandoned: FxHashSet::default(),
                failure: None,
                closed: false,
                blocked_senders: 0,
                sleepers: FxHashMap::default(),
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            reader: Mutex::new(Reader {
                stream,
                frames,
                socket_timeout: None,
                silent_since: None,
            }),
            writer: Mutex::new(writer_stream),
            max_frame_len,
            max_depth,
            keepalive,
            failed: AtomicBool::new(false),
            ready_count: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            callbacks: Mutex::new(None),
        });
        let for_writer = Arc::clone(&pipe);
        thread::Builder::new()
            .name("monogusa-pipeline-writer".into())
            .spawn(move || for_writer.write_loop())?;
        Ok(pipe)
    }

    /// Runs `callback` on the pipeline's callback thread (started on first use), after those
    /// given before it.
    fn run_later(&self, callback: Callback) {
        let mut callbacks = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        if callbacks.is_none() {
            let (sender, receiver) = std::sync::mpsc::channel::<Callback>();
            let started = thread::Builder::new()
                .name("monogusa-reply-callbacks".into())
                .spawn(move || {
                    for callback in receiver {
                        // A callback that panics is reported and the next ones still run.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(callback)).is_err()
                        {
                            log::warn!("a reply callback panicked");
                        }
                    }
                });
            if started.is_err() {
                drop(callbacks);
                callback(); // no thread to be had: run it here rather than lose it
                return;
            }
            *callbacks = Some(sender);
        }
        if let Err(refused) = callbacks.as_ref().expect("set above").send(callback) {
            drop(callbacks);
            (refused.0)();
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the connection failed; the client then starts a new one for new sends.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The client is gone: let the writer finish what is queued and exit.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        self.work.notify_one();
    }

    /// Queues a request; returns its id.
    pub(crate) fn send<A: Serialize>(&self, op: Op<'_>, args: &A) -> Result<u64> {
        let mut state = self.room_to_queue(self.state())?;
        let id = state.next_id;
        encode_request(&mut state.queued, id, op, args, self.max_frame_len)?;
        state.next_id += 1;
        if !state.writer_signalled {
            state.writer_signalled = true;
            self.work.notify_one();
        }
        Ok(id)
    }

    /// Waits (backpressure) while the queue is full; the failure if the connection failed.
    fn room_to_queue<'s>(
        &'s self,
        mut state: MutexGuard<'s, State>,
    ) -> Result<MutexGuard<'s, State>> {
        while state.queued.len() >= MAX_QUEUED && state.failure.is_none() {
            state.blocked_senders += 1;
            state = self.space.wait(state).unwrap_or_else(|e| e.into_inner());
            state.blocked_senders -= 1;
        }
        match &state.failure {
            Some(failure) => Err(failure.to_error()),
            None => Ok(state),
        }
    }

    /// Reserves `n` request ids for a batch, with one lock.
    pub(crate) fn reserve_ids(&self, n: u64) -> Result<u64> {
        let mut state = self.state();
        if let Some(failure) = &state.failure {
            return Err(failure.to_error());
        }
        let first = state.next_id;
        state.next_id += n;
        Ok(first)
    }

    /// The frame size limit the manager holds requests to.
    pub(crate) fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Sends a batch's frames (encoded with reserved ids). A small batch (up to
    /// [`DIRECT_WRITE_MAX`]), with nothing queued before it and the writer idle, is written by
    /// the calling thread itself in one `write`; otherwise it joins the queue. `frames` is
    /// left empty.
    pub(crate) fn send_frames(&self, frames: &mut Vec<u8>) -> Result<()> {
        let state = self.state();
        if let Some(failure) = &state.failure {
            return Err(failure.to_error());
        }
        if state.queued.is_empty()
            && frames.len() <= DIRECT_WRITE_MAX
            && let Ok(mut stream) = self.writer.try_lock()
        {
            drop(state);
            let written = stream.write_all(frames);
            drop(stream);
            frames.clear();
            if let Err(e) = written {
                let failure = Failure::Lost(e.kind(), format!("writing requests: {e}"));
                let error = failure.to_error();
                self.fail(failure);
                return Err(error);
            }
            return Ok(());
        }
        let mut state = self.room_to_queue(state)?;
        state.queued.append(frames);
        if !state.writer_signalled {
            state.writer_signalled = true;
            self.work.notify_one();
        }
        Ok(())
    }

    fn write_loop(self: Arc<Self>) {
        let mut batch = Vec::with_capacity(4096);
        loop {
            let mut state = self.state();
            while state.queued.is_empty() && !state.closed && state.failure.is_none() {
                state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.failure.is_some() || (state.closed && state.queued.is_empty()) {
                return;
            }
            // The stream must be ours before we take the queue, so no batch writes ahead of
            // what we take. Lock order: `writer`, then `state`; under `state` only `try_lock`
            // (here and in a batch), so nobody ever waits on `state` while we are stuck in a
            // write. A batch writing right now makes us wait for it, outside `state`.
            let mut stream = match self.writer.try_lock() {
                Ok(stream) => stream,
                Err(_) => {
                    drop(state);
                    let stream = self.writer.lock().unwrap_or_else(|e| e.into_inner());
                    state = self.state();
                    stream
                }
            };
            // Take the whole queue: everything sent since the last write leaves together.
            std::mem::swap(&mut batch, &mut state.queued);
            state.writer_signalled = false;
            if state.blocked_senders > 0 {
                self.space.notify_all();
            }
            drop(state);
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = stream.write_all(&batch) {
                drop(stream);
                self.fail(Failure::Lost(e.kind(), format!("writing requests: {e}")));
                return;
            }
            drop(stream);
            batch.clear();
        }
    }

    fn fail(&self, failure: Failure) {
        let mut state = self.state();
        if state.failure.is_none() {
            state.failure = Some(failure);
            self.failed.store(true, Ordering::Release);
        }
        for sleeper in state.sleepers.values() {
            sleeper.unpark();
        }
        self.work.notify_all();
        self.space.notify_all();
    }

    /// Gives up on a call: its reply, if it comes, is discarded.
    fn abandon(&self, id: u64) {
        let mut state = self.state();
        if state.ready.remove(&id).is_some() {
            self.ready_count.fetch_sub(1, Ordering::SeqCst);
        } else {
            state.abandoned.insert(id);
        }
    }

    /// Our reply, if a leader stored it. Inlined: in send order nothing is ever stored, and
    /// this is one atomic load per wait.
    #[inline(always)]
    fn take_ready(&self, id: u64) -> Option<Vec<u8>> {
        if self.ready_count.load(Ordering::SeqCst) == 0 {
            return None;
        }
        self.take_stored(id)
    }

    fn take_stored(&self, id: u64) -> Option<Vec<u8>> {
        let payload = self.state().ready.remove(&id)?;
        self.ready_count.fetch_sub(1, Ordering::SeqCst);
        Some(payload)
    }

    /// Keeps a reply read for another caller until it comes for it (or drops it if that
    /// caller gave up). Called while still leading, so whoever leads next sees it.
    fn store_ready(&self, reply_id: u64, payload: Vec<u8>) {
        let mut state = self.state();
        if state.abandoned.is_empty() || !state.abandoned.remove(&reply_id) {
            state.ready.insert(reply_id, payload);
            self.ready_count.fetch_add(1, Ordering::SeqCst);
            if let Some(owner) = state.sleepers.get(&reply_id) {
                owner.unpark();
            }
        }
    }

    /// Called by a leader that let go of `reader` for good (its own reply came, or it gave
    /// up): one sleeper still without its reply is woken to take the lead.
    #[inline]
    fn hand_off_lead(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) != 0 {
            self.wake_next_leader();
        }
    }

    #[cold]
    fn wake_next_leader(&self) {
        let state = self.state();
        if let Some(next) = state
            .sleepers
            .iter()
            .find(|(id, _)| !state.ready.contains_key(id))
            .map(|(_, thread)| thread)
        {
            next.unpark();
        }
    }

    /// Waits for the reply to `id` until `deadline`.
    fn wait<R: DeserializeOwned>(
        &self,
        id: u64,
        function: &str,
        deadline: Option<Instant>,
    ) -> Result<R> {
        /// A sleeping follower rechecks at least this often (a guard against a lost wake-up).
        const NAP: Duration = Duration::from_millis(10);
        loop {
            if let Some(payload) = self.take_ready(id) {
                return self.decode(&payload, id, function);
            }
            if self.failed.load(Ordering::SeqCst)
                && let Some(failure) = &self.state().failure
            {
                return Err(failure.to_error());
            }
            let remaining = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.abandon(id);
                        return Err(Error::Timeout(crate::error::Phase::Call));
                    }
                    Some(left)
                }
                None => None,
            };
            if let Ok(mut reader) = self.reader.try_lock() {
                // The previous leader may have stored our reply just before letting go.
                let led = match self.take_ready(id) {
                    Some(payload) => Led::Mine(self.decode(&payload, id, function)),
                    None => self.lead(&mut reader, id, function, remaining),
                };
                drop(reader);
                match led {
                    Led::Mine(result) => {
                        self.hand_off_lead();
                        return result;
                    }
                    // Still ours to lead: read on (the owner of what was stored is woken).
                    Led::Stored => {}
                    Led::TimedOut => {
                        self.hand_off_lead();
                        self.abandon(id);
                        return Err(Error::Timeout(crate::error::Phase::Call));
                    }
                    Led::Failed(failure) => self.fail(failure),
                }
                continue;
            }
            // Another caller is reading: sleep until it stores our reply or hands us the lead.
            {
                let mut state = self.state();
                if state.ready.contains_key(&id) || state.failure.is_some() {
                    continue;
                }
                state.sleepers.insert(id, thread::current());
                self.sleeping.fetch_add(1, Ordering::SeqCst);
            }
            fence(Ordering::SeqCst);
            let lead_is_free = self.reader.try_lock().map(drop).is_ok();
            if !lead_is_free {
                thread::park_timeout(remaining.map_or(NAP, |left| left.min(NAP)));
            }
            let mut state = self.state();
            state.sleepers.remove(&id);
            self.sleeping.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// As the leader (holding `reader`), reads one reply frame.
    fn lead<R: DeserializeOwned>(
        &self,
        reader: &mut Reader,
        id: u64,
        function: &str,
        timeout: Option<Duration>,
    ) -> Led<R> {
        let timeout = timeout.map(|t| t.max(MIN_TIMEOUT));
        let deadline = timeout.map(|t| Instant::now() + t);
        // Woken at least every keepalive interval, to ping and to notice a silent manager.
        let tick = match (timeout, self.keepalive) {
            (Some(t), Some(k)) => Some(t.min(k.interval)),
            (t, None) => t,
            (None, Some(k)) => Some(k.interval),
        };
        loop {
            match reader.frames.next_frame() {
                Ok(Some(payload)) if is_heartbeat(payload) => {
                    // The manager says a call runs long; answer that we still wait.
                    reader.silent_since = None;
                    if let Err(e) = self.send(Op::Ping, &()) {
                        return Led::Failed(Failure::from_error(&e));
                    }
                    continue;
                }
                Ok(Some(payload)) => {
                    // The header is decoded once: for our reply (or a notice) the body is
                    // decoded right here, in place.
                    let (header, used) = match ResponseHeader::decode(payload) {
                        Ok(decoded) => decoded,
                        Err(e) => {
                            return Led::Failed(Failure::Protocol(format!(
                                "unreadable reply: {e}"
                            )));
                        }
                    };
                    if header.id == id || header.id == NOTICE_ID {
                        return match decode_body(
                            &header,
                            &payload[used..],
                            function,
                            self.max_depth,
                            Trailing::Refused,
                        ) {
                            (Err(e), Health::Broken) => Led::Failed(Failure::from_error(&e)),
                            (result, _) => Led::Mine(result),
                        };
                    }
                    self.store_ready(header.id, payload.to_vec());
                    return Led::Stored;
                }
                Ok(None) => {}
                Err(e) => return Led::Failed(Failure::from_error(&e)),
            }
            if reader.socket_timeout != tick {
                if let Err(e) = reader.stream.set_read_timeout(tick) {
                    return Led::Failed(Failure::Lost(e.kind(), e.to_string()));
                }
                reader.socket_timeout = tick;
            }
            match reader.frames.fill(&mut reader.stream) {
                Ok(0) => {
                    return Led::Failed(Failure::Lost(
                        io::ErrorKind::UnexpectedEof,
                        "the manager closed the connection".into(),
                    ));
                }
                Ok(_) => reader.silent_since = None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    if deadline
                        .is_some_and(|d| d.saturating_duration_since(Instant::now()) < MIN_TIMEOUT)
                    {
                        return Led::TimedOut;
                    }
                    let Some(keepalive) = self.keepalive else {
                        continue;
                    };
                    let waited = tick.unwrap_or(keepalive.interval);
                    let since = *reader
                        .silent_since
                        .get_or_insert_with(|| Instant::now() - waited);
                    if since.elapsed() >= keepalive.timeout {
                        return Led::Failed(Failure::from_error(&silent_manager(
                            keepalive.timeout,
                        )));
                    }
                    // Still waiting: a ping through the writer tells the manager we are here.
                    if let Err(e) = self.send(Op::Ping, &()) {
                        return Led::Failed(Failure::from_error(&e));
                    }
                }
                Err(e) => return Led::Failed(Failure::Lost(e.kind(), e.to_string())),
            }
        }
    }

    fn decode<R: DeserializeOwned>(&self, payload: &[u8], id: u64, function: &str) -> Result<R> {
        let (result, health) =
            decode_reply(payload, id, function, self.max_depth, Trailing::Refused);
        if health == Health::Broken
            && let Err(e) = &result
        {
            self.fail(Failure::from_error(e));
        }
        result
    }
}

/// What a leader's turn brought.
enum Led<R> {
    /// Our own reply.
    Mine(Result<R>),
    /// Another caller's reply, now kept in `ready`.
    Stored,
    TimedOut,
    Failed(Failure),
}

/// The reply to a call sent with [`Client::send`](crate::Client::send), to wait for later.
///
/// `W` is the reply as the wire carries it, `R` what the wait gives (the same but for the
/// built-in shared objects' pipelined calls, whose values travel encoded and are decoded
/// after the wait); name `R` only.
///
/// Dropping it without waiting abandons the reply (the call still runs).
#[must_use = "a pending reply does nothing unless waited on; the call runs regardless"]
pub struct Pending<R, W = R> {
    pipe: Arc<Pipe>,
    id: u64,
    waited: bool,
    /// Turns the wire's reply into the result.
    finish: fn(W) -> Result<R>,
    _reply: PhantomData<fn() -> (R, W)>,
}

impl<R, W: DeserializeOwned> Pending<R, W> {
    /// A pending reply whose wire form `W` becomes `R` through `finish`.
    pub(crate) fn finished_by(pipe: Arc<Pipe>, id: u64, finish: fn(W) -> Result<R>) -> Self {
        Pending {
            pipe,
            id,
            waited: false,
            finish,
            _reply: PhantomData,
        }
    }

    /// Waits for the reply, however long it takes.
    pub fn wait(mut self) -> Result<R> {
        self.waited = true;
        let wire = self.pipe.wait(self.id, PIPELINED, None)?;
        (self.finish)(wire)
    }

    /// Waits for the reply at most `timeout`; then gives up with [`Error::Timeout`] (the call
    /// may still complete in the manager; its late reply is discarded). Other calls in flight
    /// are not affected.
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<R> {
        self.waited = true;
        let wire = self
            .pipe
            .wait(self.id, PIPELINED, Some(Instant::now() + timeout))?;
        (self.finish)(wire)
    }

    /// Calls `callback` with the reply when it arrives (the "async call with a callback" of
    /// msgpack-rpc clients), and returns at once.
    ///
    /// Where and how it runs: on one thread per pipelined connection, which runs the
    /// callbacks in the order they were given, one at a time. So a callback should be quick:
    /// a slow one delays the next. It may call the client (its own calls go over other
    /// connections), send more pipelined calls, and give more callbacks, but must not
    /// `wait` on a reply whose callback comes after its own (that reply's turn has not come).
    /// A callback that panics is logged, and the next ones still run.
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
    /// let (done, replies) = std::sync::mpsc::channel();
    /// for n in 0..100i64 {
    ///     let done = done.clone();
    ///     client
    ///         .send::<i64>("add", ("total", n))?
    ///         .on_reply(move |total| done.send(total).unwrap());
    /// }
    /// let last = replies.iter().take(100).last();
    /// # Ok(()) }
    /// ```
    pub fn on_reply(self, callback: impl FnOnce(Result<R>) + Send + 'static)
    where
        R: Send + 'static,
        W: 'static,
    {
        let pipe = Arc::clone(&self.pipe);
        pipe.run_later(Box::new(move || callback(self.wait())));
    }
}

impl<R, W> Drop for Pending<R, W> {
    fn drop(&mut self) {
        if !self.waited {
            self.pipe.abandon(self.id);
        }
    }
}

impl<R, W> std::fmt::Debug for Pending<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
