//! One client connection on the manager side: the handshake, then the request loop on the
//! connection's own thread (reading frames under their deadlines, handing each to
//! `dispatch`, flushing replies through `replies`), and the orderly or abrupt end.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::error::{Error, RemoteError, RemoteErrorKind};
use crate::service::Caller;
use crate::transport::{Deadline, Stream, is_timeout};
use crate::wire::auth::{self, Refusal};
use crate::wire::codec;
use crate::wire::frame::FrameReader;
use crate::wire::message::NOTICE_ID;

use super::Shared;
use super::closing::Closing;
use super::dispatch::{self, Next, write_error};
use super::keepalive::Activity;
use super::listener::Admitted;
use super::objects::HeldRefs;
use super::replies::{DEADLINE_SLACK, FLUSH_AT, MIN_SOCKET_TIMEOUT, OUT_BUFFER, Replies};

/// How long a closing connection keeps reading (and discarding) after its last reply, so the
/// peer receives that reply before the kernel resets the connection over unread input.
const LINGER: Duration = Duration::from_millis(100);

/// Serves one admitted connection until the peer leaves, breaks the protocol, or the manager
/// stops; says why it ended.
pub(crate) fn serve(shared: &Shared, connection: &Admitted) -> String {
    let (stream, activity, id) = (&connection.stream, &*connection.activity, connection.id);
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
        return "its handshake failed".into();
    }
    log::debug!("{peer}: authenticated");
    // Whatever ends the connection, even a panic, the references and locks it held go with it.
    let mut held = Holdings {
        shared,
        id,
        refs: HeldRefs::default(),
    };
    let outcome = requests(
        shared,
        stream,
        activity,
        &mut held.refs,
        &Caller::new(id, stream).reaching(&shared.objects),
    );
    drop(held);
    match outcome {
        Ok(()) => {
            log::debug!("{peer}: disconnected");
            "closed by the client".to_string()
        }
        Err(Closing::PeerGone(e)) => {
            log::debug!("{peer}: connection ended: {e}");
            format!("connection ended: {e}")
        }
        Err(Closing::Truncated) => {
            shared.stats.protocol_errors.fetch_add(1, Relaxed);
            log::warn!("{peer}: connection closed in the middle of a frame");
            "closed in the middle of a frame".to_string()
        }
        Err(Closing::Stalled) => {
            shared.stats.protocol_errors.fetch_add(1, Relaxed);
            log::warn!("{peer}: stalled in the middle of a frame; closing");
            "stalled in the middle of a frame".to_string()
        }
        Err(Closing::Violation(error)) => {
            shared.stats.protocol_errors.fetch_add(1, Relaxed);
            log::warn!("{peer}: closing connection: {error}");
            send_notice(stream, &error, shared.limits.max_frame_len);
            linger(stream);
            error.to_string()
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
        shared.wrong_key(stream);
        let _ = auth::reject(&mut timed);
    }
    proven?;
    // From here on, socket timeouts only bound a stall: an idle connection's read times out
    // too, and is simply resumed (see `requests`). No per-call cost.
    stream
        .set_timeouts(Some(shared.limits.stall_timeout))
        .map_err(io_error)
}

fn requests(
    shared: &Shared,
    stream: &Stream,
    activity: &Activity,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<(), Closing> {
    let max = shared.limits.max_frame_len;
    let stall = shared.limits.stall_timeout;
    let mut reader = FrameReader::with_budget(max, Arc::clone(&shared.frame_budget));
    let mut replies = Replies::new(stream, activity, stall, OUT_BUFFER);
    // The frame in progress must be complete by this time: a total deadline, so a peer
    // dripping a byte at a time cannot hold its buffer for longer than `stall_timeout`.
    let mut frame_deadline: Option<Instant> = None;
    let mut read_timeout = stall;
    // The function this connection called last (see `dispatch::handle`).
    let mut last_function = None;
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
            let next = match dispatch::handle(
                shared,
                frame,
                &mut replies,
                held,
                caller,
                &mut last_function,
            ) {
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
