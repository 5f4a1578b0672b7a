//! Who gets in, at every door: the one table of open connections (native, Python,
//! msgpack-rpc, HTTP alike), its caps, the displacement of handshakes, promotion to
//! authenticated, BUSY, the connection events, the thread a connection runs on and the catch of
//! its panic, and the closing of all at shutdown. A listener only speaks its protocol over an
//! [`Admitted`] connection and calls [`Shared::promote`] when the peer has proved itself.
//!
//! Invariants (under the table's mutex): `counts[door].authenticated` is the number of that
//! door's entries in phase `Authenticated`, `counts[door].handshaking` of those in phase
//! `Handshaking`; an entry leaves `open` only through [`Shared::exit`] (run by its thread's
//! guard, however the thread ends) or [`Shared::close_connections`].

use std::collections::HashMap;
use std::net::Shutdown;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use super::keepalive::{self, Activity};
use super::listener::{self, Admitted, Caps, Listener};
use super::threads::{self, Done, Finishing, Threads};
use super::{ConnectionEvent, Limits, Shared};
use crate::transport::Stream;

/// A door as the host keeps it: its listener, its caps, its threads.
pub(crate) struct Door {
    pub(crate) listener: Arc<dyn Listener>,
    caps: Caps,
    /// Connection threads kept for reuse (with the door's stack size).
    threads: Arc<Threads>,
}

impl Door {
    pub(crate) fn new(listener: Arc<dyn Listener>, limits: &Limits) -> Door {
        let threads = Threads::new(
            super::IDLE_THREAD_WAIT,
            super::MAX_IDLE_THREADS,
            listener.stack_size(limits),
            listener.thread_name(),
        );
        Door {
            caps: listener.caps(limits),
            listener,
            threads,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshaking,
    /// Displaced by a newer handshake; its thread is ending.
    Displaced,
    Authenticated,
}

struct Entry {
    /// Which door (an index into `Shared::doors`).
    door: usize,
    /// The connection's one socket, shared with its thread (no duplicate descriptor).
    stream: Arc<Stream>,
    /// What the keepalive watches.
    activity: Arc<Activity>,
    /// Signalled when the connection's thread is done with it.
    done: Arc<Done>,
    phase: Phase,
    /// When it was accepted (for the dashboard).
    since: SystemTime,
    /// The peer's label, kept from `Connected` for `Closed` when someone observes.
    peer: Option<String>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    authenticated: usize,
    handshaking: usize,
}

/// Every door's open connections.
#[derive(Default)]
pub(crate) struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
    /// Per door, by its index.
    counts: Vec<Counts>,
}

impl Table {
    pub(crate) fn new(doors: usize) -> Table {
        Table {
            counts: vec![Counts::default(); doors],
            ..Table::default()
        }
    }
}

/// One open connection, as the dashboard lists it.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) struct ConnectionInfo {
    pub(crate) door: &'static str,
    pub(crate) peer: String,
    pub(crate) since: SystemTime,
    pub(crate) calls: u64,
    pub(crate) authenticated: bool,
}

/// Removes a connection's entry when its thread ends, however it ends (a panic included), so
/// no slot can leak.
struct ExitGuard<'a> {
    shared: &'a Shared,
    id: u64,
    reason: String,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        self.shared.exit(self.id, std::mem::take(&mut self.reason));
    }
}

impl Shared {
    /// Admits a connection accepted at door `door` and serves it on a thread of the door's,
    /// or refuses it in the door's words when its authenticated connections are at their cap.
    /// At the handshake cap, the oldest handshake from the address holding most gives way: a
    /// flood from one host displaces its own.
    pub(crate) fn admit(self: &Arc<Self>, door: usize, stream: Stream) {
        self.stats.connections_accepted.fetch_add(1, Relaxed);
        let listener = &self.doors[door].listener;
        let caps = self.doors[door].caps;
        let mut table = self.connections.lock();
        if table.counts[door].authenticated >= caps.connections {
            drop(table);
            let why = format!(
                "the manager's limit of {} connections is reached",
                caps.connections
            );
            return listener::refuse(self, &**listener, stream, &why);
        }
        if table.counts[door].handshaking >= caps.handshakes {
            // Peer addresses are read only here, when full: admission itself costs no syscall.
            let candidates: Vec<(u64, Option<std::net::IpAddr>)> = table
                .open
                .iter()
                .filter(|(_, e)| e.door == door && e.phase == Phase::Handshaking)
                .map(|(&id, e)| (id, e.stream.peer_ip()))
                .collect();
            if let Some(oldest) = threads::most_crowded_oldest(&candidates, stream.peer_ip()) {
                let entry = table.open.get_mut(&oldest).expect("listed above");
                entry.phase = Phase::Displaced;
                let _ = entry.stream.shutdown(Shutdown::Both);
                table.counts[door].handshaking -= 1;
                self.stats.handshakes_displaced.fetch_add(1, Relaxed);
            }
        }
        // Ids start at 1: 0 means "no connection" to a `Caller`.
        table.next_id += 1;
        let id = table.next_id;
        let admitted = Admitted {
            id,
            stream: Arc::new(stream),
            activity: Arc::new(Activity::default()),
        };
        let (stream, activity) = (Arc::clone(&admitted.stream), Arc::clone(&admitted.activity));
        let done = Arc::new(Done::default());
        let finishing = Finishing(Arc::clone(&done));
        let shared = Arc::clone(self);
        // The lock is held until the entry is in the table, so the thread's own removal (its
        // guard) can never run before the insertion.
        let started = self.doors[door].threads.run(Box::new(move || {
            let _finishing = finishing; // dropped last: the entry is gone by then
            let mut exit = ExitGuard {
                shared: &shared,
                id,
                reason: "the connection ended".into(),
            };
            let listener = &shared.doors[door].listener;
            match panic::catch_unwind(AssertUnwindSafe(|| listener.serve(&shared, &admitted))) {
                Ok(reason) => exit.reason = reason,
                Err(_) => {
                    shared.failure_log.warn(format_args!(
                        "a {} connection panicked; serving on",
                        listener.name()
                    ));
                    exit.reason = "its thread panicked".into();
                }
            }
        }));
        match started {
            Ok(()) => {
                table.open.insert(
                    id,
                    Entry {
                        door,
                        stream,
                        activity,
                        done,
                        phase: Phase::Handshaking,
                        since: SystemTime::now(),
                        peer: None,
                    },
                );
                table.counts[door].handshaking += 1;
            }
            Err(e) => self.failure_log.warn(format_args!(
                "cannot start a thread for a {} client: {e}",
                listener.name()
            )),
        }
    }

    /// Connection `id` proved itself (the key, or a whole request head): it becomes
    /// authenticated if its door has room, and its observer hears `Connected`. `Err` says why
    /// not, for the door to tell its peer in its own words.
    pub(crate) fn promote(&self, id: u64) -> Result<(), String> {
        let mut table = self.connections.lock();
        let Some(entry) = table.open.get(&id) else {
            return Err("the manager is shutting down".into());
        };
        if entry.phase != Phase::Handshaking {
            return Err("displaced by newer connections".into());
        }
        let door = entry.door;
        let cap = self.doors[door].caps.connections;
        if table.counts[door].authenticated >= cap {
            return Err(format!(
                "the manager's limit of {cap} connections is reached"
            ));
        }
        let counts = &mut table.counts[door];
        counts.handshaking -= 1;
        counts.authenticated += 1;
        let entry = table.open.get_mut(&id).expect("found above");
        entry.phase = Phase::Authenticated;
        // Without an observer, nothing: Python opens a connection per control call, and the
        // peer's label is a system call and an allocation.
        if self.on_connection.is_some() && self.doors[door].listener.reports_events() {
            let peer = entry.stream.peer_label();
            entry.peer = Some(peer.clone());
            drop(table);
            self.report(&ConnectionEvent::Connected { id, peer });
        }
        Ok(())
    }

    /// A connection's thread is ending: its entry goes, and its observer hears why.
    fn exit(&self, id: u64, reason: String) {
        let mut table = self.connections.lock();
        let Some(entry) = table.open.remove(&id) else {
            return;
        };
        match entry.phase {
            Phase::Handshaking => table.counts[entry.door].handshaking -= 1,
            Phase::Authenticated => table.counts[entry.door].authenticated -= 1,
            Phase::Displaced => {}
        }
        drop(table);
        if let Some(peer) = entry.peer {
            self.report(&ConnectionEvent::Closed { id, peer, reason });
        }
    }

    /// Closes every open connection (each door says how: the native one for reading only, so
    /// calls in flight still reply) and waits for their threads.
    pub(crate) fn close_connections(&self) {
        let open: Vec<Entry> = {
            let mut table = self.connections.lock();
            table.counts.iter_mut().for_each(|c| *c = Counts::default());
            table.open.drain().map(|(_, entry)| entry).collect()
        };
        for entry in &open {
            let how = self.doors[entry.door].listener.closing();
            let _ = entry.stream.shutdown(how);
        }
        for entry in open {
            entry.done.wait();
        }
        for door in &self.doors {
            door.threads.close();
        }
    }

    /// Authenticated connections in a call now, for the keepalive.
    pub(crate) fn busy_connections(&self) -> Vec<keepalive::Watched> {
        self.connections
            .lock()
            .open
            .iter()
            .filter(|(_, e)| e.phase == Phase::Authenticated && e.activity.in_call())
            .map(|(&id, e)| keepalive::Watched {
                id,
                stream: Arc::clone(&e.stream),
                activity: Arc::clone(&e.activity),
            })
            .collect()
    }

    /// The open connections at every door: door, peer, since, calls served.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn connection_list(&self) -> Vec<ConnectionInfo> {
        let table = self.connections.lock();
        table
            .open
            .values()
            .map(|entry| ConnectionInfo {
                door: self.doors[entry.door].listener.name(),
                peer: entry.stream.peer_label(),
                since: entry.since,
                calls: entry.activity.calls(),
                authenticated: entry.phase != Phase::Handshaking,
            })
            .collect()
    }

    /// Authenticated connections and handshakes in progress, at every door.
    pub(crate) fn open_counts(&self) -> (usize, usize) {
        let table = self.connections.lock();
        table
            .counts
            .iter()
            .fold((0, 0), |(a, h), c| (a + c.authenticated, h + c.handshaking))
    }

    /// Connection threads waiting, idle, at every door.
    pub(crate) fn idle_threads(&self) -> usize {
        self.doors.iter().map(|d| d.threads.idle_count()).sum()
    }
}
