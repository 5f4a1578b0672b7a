//! The seam every door of the manager plugs into. A [`Listener`] speaks one wire format on
//! the sockets bound for it; the host owns what is the same for every door: accepting, the
//! spare descriptor that lets a peer be told BUSY when the process is out of descriptors,
//! admission (`server::admission`: one connection table, caps, the displacement of the oldest
//! handshake from the most crowded source, BUSY in the door's words, connection events, the
//! thread a connection runs on, the catch of its panic), the rate-limited log of refusals, the
//! shared wrong-key slowdown (`Shared::wrong_key`) and shutdown.
//!
//! A new door is one implementation of this trait and one builder method that registers it
//! with `ManagerBuilder::listen` (the `cfg` of its feature appears there only).

use std::io::Write;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use super::keepalive::Activity;
use super::{Limits, Shared};
use crate::transport::{Address, Stream};

/// How many connections a door holds at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Connections past their handshake (the peer proved the key, or sent a whole request
    /// head); the next one is refused with the door's BUSY words.
    pub(crate) connections: usize,
    /// Connections still in their handshake; the next one displaces the oldest of them from
    /// the address holding most.
    pub(crate) handshakes: usize,
}

impl Caps {
    /// The manager's limits, as the native door has always had them.
    pub(crate) fn of(limits: &Limits) -> Caps {
        Caps {
            connections: limits.max_connections,
            handshakes: limits.max_handshakes,
        }
    }
}

/// One admitted connection, as its listener serves it.
pub(crate) struct Admitted {
    /// Unique for the manager's run, across doors (a `Caller`'s connection id; 0 is none).
    pub(crate) id: u64,
    pub(crate) stream: Arc<Stream>,
    /// What the keepalive watches (the native door marks its calls in it).
    pub(crate) activity: Arc<Activity>,
}

/// One door of the manager.
pub(crate) trait Listener: Send + Sync + 'static {
    /// Whom it serves, as the log and [`ManagerHandle`](super::ManagerHandle) name it:
    /// `"native"`, `"python"`, `"msgpack-rpc"`, `"http"`.
    fn name(&self) -> &'static str;

    /// Serves one admitted connection on the thread the host gave it, until it ends; says
    /// why it ended (what its observer hears). Calls [`Shared::promote`] once the peer has
    /// proved itself, and stops if that refuses. A panic is the host's to catch.
    fn serve(&self, shared: &Arc<Shared>, connection: &Admitted) -> String;

    /// The words that tell a peer of this door there is no room: written once, briefly, before
    /// the connection closes (a silent close would leave it guessing).
    fn busy(&self, why: &str) -> Vec<u8>;

    /// How many connections it holds at most: by default the manager's limits.
    fn caps(&self, limits: &Limits) -> Caps {
        Caps::of(limits)
    }

    /// The stack of its connection threads.
    fn stack_size(&self, limits: &Limits) -> usize {
        limits.thread_stack_size
    }

    /// The name of its connection threads.
    fn thread_name(&self) -> &'static str {
        "monogusa-conn"
    }

    /// How shutdown closes its connections: both ways by default, so they end at once.
    fn closing(&self) -> Shutdown {
        Shutdown::Both
    }

    /// Whether its authenticated connections are reported to `on_connection` (those of doors
    /// that prove the key).
    fn reports_events(&self) -> bool {
        true
    }

    /// A secret the operator needs to use the door (the dashboard's token), if any.
    fn token(&self) -> Option<&str> {
        None
    }

    /// Says where it listens.
    fn announce(&self, shared: &Shared, address: &Address) {
        let _ = shared;
        log::info!("manager listening for {} clients on {address}", self.name());
    }
}

/// Tells `stream`'s peer `why` there is no room, in `door`'s words, and lets it go: counted,
/// and said once through the rate-limited failure log (a flood of refusals cannot flood it).
/// The words are written by the refuser thread, so the acceptor never waits on a peer that
/// does not read; past the refuser's queue, a refused peer is closed without a word.
pub(crate) fn refuse(shared: &Shared, door: &dyn Listener, stream: Stream, why: &str) {
    let words = counted(shared, door, &stream, why);
    let _ = shared.refusals.try_send((stream, words));
}

/// [`refuse`] on the calling thread, when the refused connection's descriptor must be closed
/// before going on (the acceptor, out of descriptors, gave up its spare for it).
pub(crate) fn refuse_at_once(shared: &Shared, door: &dyn Listener, stream: Stream, why: &str) {
    let words = counted(shared, door, &stream, why);
    tell(stream, &words);
}

/// Counts and logs a refusal; the door's words for it.
fn counted(shared: &Shared, door: &dyn Listener, stream: &Stream, why: &str) -> Vec<u8> {
    shared
        .stats
        .connections_refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared.failure_log.warn(format_args!(
        "refusing {} client {}: {why}",
        door.name(),
        stream.peer_label()
    ));
    door.busy(why)
}

/// Writes a refused peer its words (briefly), closes our side and reads what the peer already
/// sent, so the words arrive before a reset would.
fn tell(mut stream: Stream, words: &[u8]) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(words);
    let _ = stream.shutdown(Shutdown::Write);
    super::drain_briefly(&mut stream);
}

/// How many refused peers may wait for their words at once.
const REFUSALS_QUEUED: usize = 64;

/// Starts the refuser thread, which tells each refused peer its words; it ends when the
/// sender is dropped.
pub(crate) fn refuser() -> std::io::Result<std::sync::mpsc::SyncSender<(Stream, Vec<u8>)>> {
    let (sender, refused) = std::sync::mpsc::sync_channel::<(Stream, Vec<u8>)>(REFUSALS_QUEUED);
    std::thread::Builder::new()
        .name("monogusa-refuse".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            for (stream, words) in refused {
                tell(stream, &words);
            }
        })?;
    Ok(sender)
}
