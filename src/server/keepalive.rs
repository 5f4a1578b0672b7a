//! The manager's half of the keepalive: while a call on a connection runs long, a heartbeat
//! goes to its client every interval (so the client can tell a slow call from a dead
//! manager), and the client's pings are watched for (so a client that died or became
//! unreachable without closing, behind a relay that stopped forwarding, say, is cut within
//! the timeout instead of holding its thread and what it waits for forever).
//!
//! One thread for the whole manager wakes every interval and looks only at connections in a
//! call; connection threads pay two plain stores per call (see [`Activity`]).

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use crate::transport::Stream;
use crate::wire::message::encode_heartbeat;

/// How often heartbeats go out, and how long a client in a long call may stay silent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeepaliveConfig {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// What the keepalive sees of one connection.
///
/// Heartbeats and replies must never interleave on the socket. The connection's thread
/// writes only between calls (`in_call` false); the keepalive writes only during a call, under
/// `writing`, after raising `armed`. The thread takes `writing` itself only while `armed` is
/// up, so an ordinary call pays no lock: with `in_call` cleared and `armed` read in that order
/// (both SeqCst), and `armed` raised and `in_call` read in that order by the keepalive, one of
/// them always sees the other (the Dekker pattern).
#[derive(Default)]
pub(crate) struct Activity {
    /// Calls begun on the connection. Written only by the connection's thread.
    calls: AtomicU64,
    /// True while a call runs.
    in_call: AtomicBool,
    /// Raised by the keepalive before it may write a heartbeat, lowered after.
    armed: AtomicBool,
    /// Held by whoever writes while `armed` is up.
    writing: Mutex<()>,
}

impl Activity {
    /// A call begins (called by the connection's thread only).
    #[inline]
    pub(crate) fn begin(&self) {
        self.calls
            .store(self.calls.load(Relaxed).wrapping_add(1), Relaxed);
        self.in_call.store(true, Relaxed);
    }

    /// The call ended. From here on the keepalive no longer writes (see the type's docs).
    #[inline]
    pub(crate) fn end(&self) {
        self.in_call.store(false, SeqCst);
    }

    /// Runs `write` (the connection's replies) so that no heartbeat interleaves with it.
    #[inline]
    pub(crate) fn exclusive<R>(&self, write: impl FnOnce() -> R) -> R {
        if self.armed.load(SeqCst) {
            let _writing = self.writing.lock();
            write()
        } else {
            write()
        }
    }

    /// Calls begun on the connection so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    /// Whether a call runs now.
    pub(crate) fn in_call(&self) -> bool {
        self.in_call.load(Relaxed)
    }
}

/// A connection the keepalive watches: its socket and activity.
pub(crate) struct Watched {
    pub(crate) id: u64,
    pub(crate) stream: Arc<Stream>,
    pub(crate) activity: Arc<Activity>,
}

/// What the keepalive remembers of a connection in a call.
struct Seen {
    calls: u64,
    /// Bytes queued unread on the socket: the client's pings pile up there during a call.
    queued: usize,
    heard: Instant,
}

/// Pings are counted by peeking at most this much queued input; a socket holding more is
/// busy with input, so alive.
const PEEK_LIMIT: usize = 64 << 10;

/// Runs until `stop` is dropped or signalled: every interval, `busy()` lists the connections
/// in a call; those in the same call as at the last look get a heartbeat, and those whose
/// client has sent nothing for the timeout are cut (`cut` is told their ids).
pub(crate) fn watch(
    config: KeepaliveConfig,
    stop: Receiver<()>,
    busy: impl Fn() -> Vec<Watched>,
    cut: impl Fn(u64),
) {
    let mut seen: HashMap<u64, Seen> = HashMap::new();
    let mut heartbeat = Vec::new();
    encode_heartbeat(&mut heartbeat);
    loop {
        match stop.recv_timeout(config.interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Instant::now();
        let watched = busy();
        let mut still = HashMap::with_capacity(watched.len());
        for w in watched {
            let calls = w.activity.calls.load(Relaxed);
            let queued = w.stream.queued_bytes(PEEK_LIMIT).unwrap_or(0);
            let entry = match seen.remove(&w.id) {
                // The same call as at the last look: it runs long.
                Some(mut s) if s.calls == calls => {
                    send_heartbeat(&w, &heartbeat);
                    if queued != s.queued || queued >= PEEK_LIMIT {
                        s.queued = queued;
                        s.heard = now;
                    } else if now.duration_since(s.heard) >= config.timeout {
                        log::warn!(
                            "connection {}: no ping from the client for {} ms during a call; \
                             closing it",
                            w.id,
                            config.timeout.as_millis()
                        );
                        let _ = w.stream.shutdown(Shutdown::Both);
                        cut(w.id);
                        continue;
                    }
                    s
                }
                _ => Seen {
                    calls,
                    queued,
                    heard: now,
                },
            };
            still.insert(w.id, entry);
        }
        seen = still;
    }
}

/// Writes a heartbeat without waiting: a client whose socket buffer is full is not reading
/// anyway. A heartbeat only partly written would corrupt the stream, so that connection is
/// closed.
fn send_heartbeat(w: &Watched, heartbeat: &[u8]) {
    let activity = &w.activity;
    activity.armed.store(true, SeqCst);
    {
        let Some(_writing) = activity.writing.try_lock() else {
            activity.armed.store(false, SeqCst);
            return; // the connection's thread is writing: the client hears from it anyway
        };
        if activity.in_call.load(SeqCst) {
            match w.stream.send_nonblocking(heartbeat) {
                Ok(n) if n == heartbeat.len() => {}
                Ok(0) => {}
                Ok(_) => {
                    let _ = w.stream.shutdown(Shutdown::Both);
                }
                Err(_) => {}
            }
        }
    }
    activity.armed.store(false, SeqCst);
}
