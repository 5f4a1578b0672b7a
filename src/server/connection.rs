//! One client connection on the manager side: handshake, then requests handled in order on
//! this connection's own thread, replies batched into as few writes as possible.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::auth::{self, Refusal};
use crate::codec;
use crate::error::{Error, RemoteError, RemoteErrorKind};
use crate::frame::{self, FrameReader};
use crate::message::{NOTICE_ID, Op, RequestHeader, ResponseHeader, Status};
use crate::transport::{Deadline, Stream, is_timeout};

use super::keepalive::Activity;
use super::objects::{DESCRIBE_PAGE, HeldRefs};
use super::{Shared, context};

/// Replies are written once this many bytes are pending even if more requests are buffered,
/// so a long burst of calls does not grow the output buffer without bound.
const FLUSH_AT: usize = 256 << 10;

/// The output buffer's usual capacity, and the size above which it is given back once empty.
const OUT_BUFFER: usize = 4096;
const SHRINK_OUT_ABOVE: usize = 1 << 20;

/// A socket timeout is re-armed to a deadline only when it is this much too long.
const DEADLINE_SLACK: Duration = Duration::from_millis(100);

/// The shortest timeout given to a socket (zero would mean none).
const MIN_SOCKET_TIMEOUT: Duration = Duration::from_millis(1);

/// How long a closing connection keeps reading (and discarding) after its last reply, so the
/// peer receives that reply before the kernel resets the connection over unread input.
const LINGER: Duration = Duration::from_millis(100);

/// Serves one accepted connection until the peer leaves, breaks the protocol, or the manager
/// stops.
pub(crate) fn serve(shared: &Shared, stream: &Arc<Stream>, activity: &Activity, id: u64) {
    let _context = context::enter(id, Arc::clone(stream));
    codec::set_thread_max_depth(shared.limits.max_decode_depth);
    let peer = stream.peer_label();
    if let Err(refusal) = handshake(shared, stream, id) {
        match refusal {
            Refusal::WrongKey => {
                shared.stats.auth_failures.fetch_add(1, Relaxed);
                shared
                    .failure_log
                    .warn(format_args!("{peer}: authentication failed: wrong authkey"));
            }
            Refusal::Busy(reason) => {
                shared.stats.connections_refused.fetch_add(1, Relaxed);
                shared.failure_log.warn(format_args!(
                    "{peer}: refused after the handshake: {reason}"
                ));
            }
            other => {
                shared.stats.handshake_failures.fetch_add(1, Relaxed);
                shared
                    .failure_log
                    .warn(format_args!("{peer}: handshake failed: {other}"));
            }
        }
        linger(stream);
        return;
    }
    log::debug!("{peer}: authenticated");
    // Whatever ends the connection, even a panic, the references and locks it held go with it.
    let mut held = Holdings {
        shared,
        id,
        refs: HeldRefs::default(),
    };
    let outcome = requests(shared, stream, activity, &mut held.refs);
    drop(held);
    match outcome {
        Ok(()) => log::debug!("{peer}: disconnected"),
        Err(Closing::PeerGone(e)) => log::debug!("{peer}: connection ended: {e}"),
        Err(Closing::Truncated) => {
            shared.stats.protocol_errors.fetch_add(1, Relaxed);
            log::warn!("{peer}: connection closed in the middle of a frame");
        }
        Err(Closing::Stalled) => {
            shared.stats.protocol_errors.fetch_add(1, Relaxed);
            log::warn!("{peer}: stalled in the middle of a frame; closing");
        }
        Err(Closing::Violation(error)) => {
            shared.stats.protocol_errors.fetch_add(1, Relaxed);
            log::warn!("{peer}: closing connection: {error}");
            send_notice(stream, &error, shared.limits.max_frame_len);
            linger(stream);
        }
    }
}

/// What an authenticated connection holds in the manager, released when it ends however it
/// ends.
struct Holdings<'a> {
    shared: &'a Shared,
    id: u64,
    refs: HeldRefs,
}

impl Drop for Holdings<'_> {
    fn drop(&mut self) {
        self.shared.objects.release_all(&mut self.refs);
        self.shared
            .objects
            .connection_closed(self.id, &mut self.refs);
    }
}

/// Runs the manager's side of the handshake under one total deadline: a peer sending a byte
/// every few seconds is cut when the deadline passes, not at the next silence.
fn handshake(shared: &Shared, stream: &Stream, id: u64) -> Result<(), Refusal> {
    let io_error = |e| Refusal::Broken(Error::Io(e));
    let mut timed = Deadline::start(stream, shared.limits.handshake_timeout).map_err(io_error)?;
    let proven = auth::server_handshake(&mut timed, &shared.key, || shared.promote(id));
    if let Err(Refusal::WrongKey) = proven {
        // Repeated wrong keys from one address are answered ever more slowly, so guessing a
        // weak key over the network is slow too.
        let delay = shared.guesses.failed(stream.peer_ip());
        if !delay.is_zero() {
            std::thread::sleep(delay.min(shared.limits.handshake_timeout));
        }
        let _ = auth::reject(&mut timed);
    }
    proven?;
    // From here on, socket timeouts only bound a stall: an idle connection's read times out
    // too, and is simply resumed (see `requests`). No per-call cost.
    stream
        .set_timeouts(Some(shared.limits.stall_timeout))
        .map_err(io_error)
}

/// Why a connection's request loop ended other than by a clean close.
enum Closing {
    PeerGone(io::Error),
    Truncated,
    /// The peer began a frame and stopped sending it.
    Stalled,
    /// The peer broke the protocol; it is told why before the connection closes.
    Violation(RemoteError),
}

/// What handling one request asks of the loop.
enum Next {
    Continue,
    StopManager,
}

fn requests(
    shared: &Shared,
    stream: &Stream,
    activity: &Activity,
    held: &mut HeldRefs,
) -> Result<(), Closing> {
    let max = shared.limits.max_frame_len;
    let stall = shared.limits.stall_timeout;
    let mut reader = FrameReader::with_budget(max, Arc::clone(&shared.frame_budget));
    let mut replies = Replies {
        stream,
        activity,
        out: Vec::with_capacity(OUT_BUFFER),
        pace: Pace::default(),
        stall,
        write_timeout: stall,
    };
    // The frame in progress must be complete by this time: a total deadline, so a peer
    // dripping a byte at a time cannot hold its buffer for longer than `stall_timeout`.
    let mut frame_deadline: Option<Instant> = None;
    let mut read_timeout = stall;
    loop {
        // Handle every complete request already buffered before writing their replies: a
        // burst of pipelined calls then costs one write instead of one per reply.
        loop {
            let frame = match reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    replies.flush()?;
                    return Err(Closing::Violation(RemoteError::new(
                        RemoteErrorKind::FrameTooLarge,
                        e.to_string(),
                    )));
                }
            };
            frame_deadline = None;
            let next = match handle(shared, frame, &mut replies, held) {
                Ok(next) => next,
                Err(closing) => {
                    // The replies to the valid requests before the violation still go out.
                    if let Closing::Violation(_) = closing {
                        replies.flush()?;
                    }
                    return Err(closing);
                }
            };
            match next {
                Next::Continue => {}
                Next::StopManager => {
                    replies.flush()?;
                    shared.begin_shutdown();
                }
            }
            if replies.out.len() >= FLUSH_AT {
                replies.flush()?;
            }
        }
        replies.flush()?;
        replies.shrink();
        if shared.stopping.load(Relaxed) {
            return Ok(());
        }
        let wanted = if reader.has_partial_frame() {
            let deadline = *frame_deadline.get_or_insert_with(|| Instant::now() + stall);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Closing::Stalled);
            }
            // Re-armed only when it matters, so a frame arriving in a few reads costs no
            // extra syscalls.
            if left + DEADLINE_SLACK < read_timeout {
                left
            } else {
                read_timeout
            }
        } else {
            stall
        };
        if wanted != read_timeout {
            replies
                .stream
                .set_read_timeout(Some(wanted.max(MIN_SOCKET_TIMEOUT)))
                .map_err(Closing::PeerGone)?;
            read_timeout = wanted;
        }
        match reader.fill(&mut replies.stream) {
            Ok(0) if reader.has_partial_frame() => return Err(Closing::Truncated),
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                return Err(Closing::Violation(RemoteError::new(
                    RemoteErrorKind::LimitExceeded,
                    e.to_string(),
                )));
            }
            // Nothing arrived for a while: fine between requests, not in the middle of one.
            Err(e) if is_timeout(&e) => {
                if reader.has_partial_frame() {
                    return Err(Closing::Stalled);
                }
            }
            Err(e) => return Err(Closing::PeerGone(e)),
        }
    }
}

/// Replies waiting to be written, and the socket they go to.
struct Replies<'s> {
    stream: &'s Stream,
    /// What the keepalive watches; its lock is held while writing.
    activity: &'s Activity,
    out: Vec<u8>,
    pace: Pace,
    /// How long the peer may take to read what we write.
    stall: Duration,
    /// The write timeout the socket has now.
    write_timeout: Duration,
}

impl Replies<'_> {
    /// Writes the pending replies. The peer has `stall` in all to take them: a peer reading
    /// a byte at a time cannot keep this thread writing for longer.
    fn flush(&mut self) -> Result<(), Closing> {
        if self.out.is_empty() {
            return Ok(());
        }
        let activity = self.activity;
        let result = activity.exclusive(|| self.write_out());
        self.out.clear();
        result.map_err(Closing::PeerGone)
    }

    fn write_out(&mut self) -> io::Result<()> {
        // The common case: one write takes everything, and no clock is read.
        let mut written = match self.stream.write(&self.out) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        if written == self.out.len() {
            return Ok(());
        }
        let deadline = Instant::now() + self.stall;
        while written < self.out.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer stopped reading its replies",
                ));
            }
            if left + DEADLINE_SLACK < self.write_timeout {
                self.stream
                    .set_write_timeout(Some(left.max(MIN_SOCKET_TIMEOUT)))?;
                self.write_timeout = left;
            }
            match self.stream.write(&self.out[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.write_timeout != self.stall {
            self.stream.set_write_timeout(Some(self.stall))?;
            self.write_timeout = self.stall;
        }
        Ok(())
    }

    /// Gives back the memory of a large reply once it is written: an idle connection that
    /// once read a 48 MiB value should not keep 48 MiB.
    fn shrink(&mut self) {
        if self.out.capacity() > SHRINK_OUT_ABOVE {
            self.out = Vec::with_capacity(OUT_BUFFER);
        }
    }

    /// Runs one call. Replies already produced are written first unless the call is known
    /// to be quick: a reply never waits behind a later, slow call (a blocking one, say),
    /// while a burst of quick calls still leaves in one write.
    fn run(&mut self, target: Target, run: impl FnOnce(&mut Vec<u8>)) -> Result<(), Closing> {
        if !self.out.is_empty() && !self.pace.is_quick(target) {
            self.flush()?;
        }
        self.activity.begin();
        if self.pace.should_time(target) {
            let started = Instant::now();
            run(&mut self.out);
            self.pace.record(target, started.elapsed());
        } else {
            run(&mut self.out);
        }
        self.activity.end();
        Ok(())
    }
}

/// What a call runs: a registered function (by its handler's address) or an object (by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Function(usize),
    Object(u64),
}

/// Which targets ran quickly the last time this connection called them: a small
/// direct-mapped table, so the check costs no hashing and no allocation. A target pushed out
/// by another simply counts as unknown again (one extra write, then it is relearned).
///
/// Reading the clock twice per call was 7% of a pipelined call, so a target known to be quick
/// is timed only on one call in [`Pace::SAMPLE`]; unknown and slow targets are always timed.
struct Pace {
    slots: [Slot; Pace::SLOTS],
}

#[derive(Clone, Copy, Default)]
struct Slot {
    target: Option<Target>,
    quick: bool,
    /// Calls of a quick target left until the next timed one.
    untimed: u8,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            slots: [Slot::default(); Pace::SLOTS],
        }
    }
}

impl Pace {
    /// A call under this is "quick": holding earlier replies back for it costs less than a
    /// write.
    const QUICK: Duration = Duration::from_micros(20);
    const SLOTS: usize = 64;
    const SAMPLE: u8 = 16;

    fn slot(target: Target) -> usize {
        let key = match target {
            Target::Function(address) => (address as u64) >> 4,
            Target::Object(id) => id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32,
        };
        key as usize % Self::SLOTS
    }

    fn is_quick(&self, target: Target) -> bool {
        let slot = &self.slots[Self::slot(target)];
        slot.target == Some(target) && slot.quick
    }

    /// Whether to time this call of `target` (counting down the untimed quick calls).
    fn should_time(&mut self, target: Target) -> bool {
        let slot = &mut self.slots[Self::slot(target)];
        if slot.target != Some(target) || !slot.quick || slot.untimed == 0 {
            return true;
        }
        slot.untimed -= 1;
        false
    }

    fn record(&mut self, target: Target, took: Duration) {
        let quick = took < Self::QUICK;
        self.slots[Self::slot(target)] = Slot {
            target: Some(target),
            quick,
            untimed: if quick { Self::SAMPLE - 1 } else { 0 },
        };
    }
}

/// Handles one request frame, appending its response frame to `out`. An `Err` means the
/// envelope itself is unreadable: the connection cannot continue.
fn handle(
    shared: &Shared,
    frame: &[u8],
    replies: &mut Replies<'_>,
    held: &mut HeldRefs,
) -> Result<Next, Closing> {
    let (header, used) = RequestHeader::decode(frame).map_err(|e| {
        Closing::Violation(RemoteError::new(
            RemoteErrorKind::MalformedRequest,
            format!("cannot decode the request envelope: {e}"),
        ))
    })?;
    if header.id == NOTICE_ID {
        return Err(Closing::Violation(RemoteError::new(
            RemoteErrorKind::MalformedRequest,
            "request id 0 is reserved",
        )));
    }
    let args = &frame[used..];
    let reply = Reply {
        id: header.id,
        max: shared.limits.max_frame_len,
    };
    let objects = &shared.objects;
    match header.op {
        Op::Call(name) => {
            shared.stats.calls.fetch_add(1, Relaxed);
            match shared.registry.get(name) {
                Some(function) => {
                    let target =
                        Target::Function(std::ptr::from_ref(function) as *const () as usize);
                    replies.run(target, |out| {
                        reply.with(out, name, |out| {
                            function(args, out).map_err(|e| name_the_function(e, name))
                        })
                    })?;
                }
                None => reply.with(&mut replies.out, name, |_| {
                    Err(unknown_function(shared, name))
                }),
            }
        }
        Op::Method { object, method } => {
            shared.stats.calls.fetch_add(1, Relaxed);
            replies.run(Target::Object(object), |out| {
                reply.with(out, method, |out| {
                    objects.call(object, method, args, out, held)
                })
            })?;
        }
        Op::Open { name, service } => {
            let out = &mut replies.out;
            reply.with(out, "open", |out| {
                codec::encode_result(&objects.open(name, service)?, out)
            });
        }
        Op::Create { type_id, service } => {
            let out = &mut replies.out;
            reply.with(out, type_id, |out| {
                codec::encode_result(&objects.create(type_id, service, args, held)?, out)
            });
        }
        Op::Retain { object, service } => {
            reply.with(&mut replies.out, "retain", |_| {
                objects.retain(object, service, held)
            });
        }
        Op::Release { object } => {
            objects.release(object, held);
            reply.with(&mut replies.out, "release", |_| Ok(()));
        }
        Op::OpenShared {
            kind,
            name,
            type_tag,
        } => {
            let out = &mut replies.out;
            reply.with(out, "open", |out| {
                codec::encode_result(&objects.open_shared(kind, name, type_tag, args)?, out)
            });
        }
        // A sign of life from a client waiting for a call; the keepalive saw it queued.
        Op::Ping => {}
        Op::Stats => {
            let out = &mut replies.out;
            let stats = shared.stats();
            reply.with(out, "stats", |out| codec::encode_result(&stats, out));
        }
        Op::Describe => {
            let out = &mut replies.out;
            reply.with(out, "describe", |out| {
                // Objects after an id, at most a page: no arguments means the first page.
                let (after, limit): (u64, u64) = if args.is_empty() {
                    (0, DESCRIBE_PAGE as u64)
                } else {
                    codec::decode_arguments(args, &"describe")?
                };
                let functions = shared
                    .registry
                    .names()
                    .into_iter()
                    .map(String::from)
                    .collect();
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                codec::encode_result(&objects.describe(functions, after, limit), out)
            });
        }
        Op::DeleteShared { name } => {
            let out = &mut replies.out;
            reply.with(out, "delete", |out| {
                codec::encode_result(&objects.delete_shared(name), out)
            });
        }
        Op::Shutdown if shared.allow_remote_shutdown => {
            reply.with(&mut replies.out, "shutdown", |_| Ok(()));
            log::info!("shutdown requested by a client");
            return Ok(Next::StopManager);
        }
        Op::Shutdown => {
            let error = RemoteError::new(
                RemoteErrorKind::NotPermitted,
                "this manager does not accept remote shutdown",
            );
            write_error(&mut replies.out, header.id, &error, reply.max);
        }
    }
    Ok(Next::Continue)
}

/// Where a reply goes: its request id and the frame limit.
struct Reply {
    id: u64,
    max: u32,
}

impl Reply {
    /// Appends the reply frame for a request: `run` encodes the result after a provisional
    /// `Ok` header; if it fails or panics, that partial reply is replaced by an error reply.
    fn with(
        &self,
        out: &mut Vec<u8>,
        what: &str,
        run: impl FnOnce(&mut Vec<u8>) -> Result<(), RemoteError>,
    ) {
        let start = frame::begin(out);
        encode_header(out, self.id, Status::Ok);
        let result = panic::catch_unwind(AssertUnwindSafe(|| run(out)))
            .unwrap_or_else(|payload| Err(panicked(what, payload)))
            .and_then(|()| {
                frame::end(out, start, self.max).map_err(|e| {
                    RemoteError::new(
                        RemoteErrorKind::BadReply,
                        format!("the result of `{what}`: {e}"),
                    )
                })
            });
        if let Err(error) = result {
            out.truncate(start);
            write_error(out, self.id, &error, self.max);
        }
    }
}

fn encode_header(out: &mut Vec<u8>, id: u64, status: Status) {
    ResponseHeader { id, status }.encode(out);
}

/// Appends a complete error response frame.
fn write_error(out: &mut Vec<u8>, id: u64, error: &RemoteError, max: u32) {
    let start = frame::begin(out);
    encode_header(out, id, Status::Err);
    codec::encode_into(error, out).expect("a RemoteError always encodes");
    if frame::end(out, start, max).is_err() {
        // Only a huge message can overflow; send a short one rather than nothing.
        let short = RemoteError::new(error.kind(), "(message too long for the frame limit)");
        write_error(out, id, &short, max);
    }
}

fn panicked(name: &str, payload: Box<dyn std::any::Any + Send>) -> RemoteError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into());
    RemoteError::new(
        RemoteErrorKind::Panicked,
        format!("`{name}` panicked: {what}"),
    )
}

/// Argument errors of a function name it (the erased handler does not know its own name).
#[cold]
fn name_the_function(error: RemoteError, name: &str) -> RemoteError {
    match error.message().strip_prefix(super::registry::FUNCTION) {
        Some(rest) if error.kind() == RemoteErrorKind::BadArguments => {
            RemoteError::new(error.kind(), format!("`{name}`{rest}"))
        }
        _ => error,
    }
}

fn unknown_function(shared: &Shared, name: &str) -> RemoteError {
    const SHOWN: usize = 16;
    let names = shared.registry.names();
    let mut listed = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        listed.push_str(", ...");
    }
    RemoteError::new(
        RemoteErrorKind::UnknownFunction,
        format!("no function named `{name}` (registered: {listed})"),
    )
}

/// Tells the peer why the connection is being closed, as a response with the notice id.
fn send_notice(mut stream: &Stream, error: &RemoteError, max: u32) {
    let mut out = Vec::new();
    write_error(&mut out, NOTICE_ID, error, max);
    let _ = stream.write_all(&out);
}

/// Half-closes, then discards input briefly so the last bytes written reach the peer instead
/// of being destroyed by a reset.
fn linger(mut stream: &Stream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut sink = [0u8; 4096];
    let mut budget = 1 << 20;
    while budget > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget -= n.min(budget),
        }
    }
}
