//! The write path of a durable store: changes recorded in memory order, committed in groups
//! by one thread, and a ticket per recorded change that its caller waits on.
//!
//! Group commit: an object records its change while it still holds its own lock (so changes
//! to one object reach the disk in the order they were made in memory), then waits outside
//! that lock. The committer takes everything recorded so far, writes it in one transaction
//! (one fsync) and wakes every waiter: N concurrent mutations cost one commit, not N.
//!
//! Invariants, kept under `state`'s lock:
//! - every ticket `<= committed` is on disk;
//! - a ticket in a `failures` range was in a batch whose commit failed, and its changes are
//!   back at the front of `pending` (retried with the next batch), so a later success
//!   covers it and it leaves the range;
//! - `pending` holds every recorded change not yet on disk, in recording order.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{RemoteError, RemoteErrorKind};

/// One change to what the store holds. Objects are numbered by the store (`object`), their
/// contents are key-value entries whose meaning each kind defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A new object; its entries follow as `Put`s.
    Create {
        object: u64,
        name: String,
        kind: String,
        tag: String,
        args: Vec<u8>,
    },
    /// The object and all its entries are gone.
    Drop { object: u64 },
    /// Sets one entry.
    Put {
        object: u64,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Removes one entry (absent is fine).
    Delete { object: u64, key: Vec<u8> },
    /// Removes every entry of the object.
    Clear { object: u64 },
}

/// Where committed changes go: a database file (`sqlite`), or a test's stand-in.
pub(crate) trait Sink: Send {
    /// Writes `batch` atomically and durably: all of it is on disk when this returns `Ok`,
    /// none of it when it returns `Err`.
    fn write(&mut self, batch: &[Change]) -> Result<(), String>;
}

/// When a recorded change counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A mutation returns once it is on disk (the default). Concurrent mutations share one
    /// commit.
    Full,
    /// A mutation returns at once; what was recorded is committed at least this often. A
    /// crash loses at most the last interval's changes (a clean shutdown loses nothing).
    Every(Duration),
}

/// A recorded change's place in the commit order.
pub(crate) type Ticket = u64;

struct State {
    pending: Vec<Change>,
    /// The last ticket handed out.
    recorded: Ticket,
    /// Every ticket up to here is on disk.
    committed: Ticket,
    /// Ticket ranges `(after, upto]` whose commit failed, with why; dropped once `committed`
    /// passes them (a retry succeeded).
    failures: Vec<(Ticket, Ticket, Arc<str>)>,
    closing: bool,
    /// The committer sleeps on `work` (so a record must wake it; while it writes, it will
    /// look again before sleeping).
    committer_idle: bool,
    /// The last ticket of the batch being written, if one is: waiters up to it wait on
    /// `done[in_flight_parity]`, later ones on the other, so a commit wakes only its own.
    writing: Option<Ticket>,
    /// Which of `done` the batch being written (or the next one) answers on.
    parity: usize,
}

/// The journal shared by a store's objects.
pub(crate) struct Journal {
    state: Mutex<State>,
    /// Wakes the committer: something was recorded, or the store closes.
    work: Condvar,
    /// Wakes waiters: a commit ended, well or not. Two, by batch (see `State::parity`).
    done: [Condvar; 2],
    durability: Durability,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// What the store writes to, for error messages.
    place: String,
}

/// How long the committer waits before retrying a failed commit when nothing new arrives.
const RETRY_AFTER: Duration = Duration::from_millis(250);

impl Journal {
    /// Starts the committer thread writing to `sink`.
    pub(crate) fn start(
        sink: Box<dyn Sink>,
        durability: Durability,
        place: String,
    ) -> std::io::Result<Arc<Journal>> {
        let journal = Arc::new(Journal {
            state: Mutex::new(State {
                pending: Vec::new(),
                recorded: 0,
                committed: 0,
                failures: Vec::new(),
                closing: false,
                committer_idle: false,
                writing: None,
                parity: 0,
            }),
            work: Condvar::new(),
            done: [Condvar::new(), Condvar::new()],
            durability,
            committer: Mutex::new(None),
            place,
        });
        let thread = {
            let journal = Arc::clone(&journal);
            std::thread::Builder::new()
                .name("monogusa-commit".into())
                .spawn(move || journal.commit_loop(sink))?
        };
        *journal.committer.lock() = Some(thread);
        Ok(journal)
    }

    /// Records `changes` (in order, after everything recorded before); returns the ticket to
    /// wait on. Call it while holding the lock that ordered the changes in memory.
    pub(crate) fn record(&self, changes: impl IntoIterator<Item = Change>) -> Ticket {
        let mut state = self.state.lock();
        let before = state.pending.len();
        state.pending.extend(changes);
        if state.pending.len() == before {
            return state.recorded.min(state.committed);
        }
        state.recorded += 1;
        let ticket = state.recorded;
        let wake = state.committer_idle && self.durability == Durability::Full;
        drop(state);
        if wake {
            self.work.notify_one();
        }
        ticket
    }

    /// Waits until `ticket` is on disk (in [`Durability::Every`] mode, returns at once). An
    /// error if its commit failed: the change is not known to be durable.
    pub(crate) fn wait(&self, ticket: Ticket) -> Result<(), RemoteError> {
        if self.durability != Durability::Full {
            return Ok(());
        }
        let mut state = self.state.lock();
        loop {
            if state.committed >= ticket {
                return Ok(());
            }
            if let Some((_, _, why)) = state
                .failures
                .iter()
                .find(|(after, upto, _)| *after < ticket && ticket <= *upto)
            {
                return Err(RemoteError::new(
                    RemoteErrorKind::Storage,
                    format!(
                        "the change could not be written to {}: {why}; it is applied in memory \
                         and written once the disk allows (lost if the manager stops first): its \
                         outcome is unknown, so retry only what is safe to repeat (a push with \
                         a dedup key)",
                        self.place
                    ),
                ));
            }
            if state.closing && state.pending.is_empty() {
                return Ok(());
            }
            // In the batch being written, or in the next one.
            let parity = match state.writing {
                Some(upto) if ticket > upto => state.parity ^ 1,
                _ => state.parity,
            };
            self.done[parity].wait(&mut state);
        }
    }

    /// Commits what is pending and stops the committer. Idempotent.
    pub(crate) fn close(&self) {
        self.state.lock().closing = true;
        self.work.notify_all();
        let thread = self.committer.lock().take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn commit_loop(&self, mut sink: Box<dyn Sink>) {
        let mut retrying = false;
        loop {
            let (batch, upto) = {
                let mut state = self.state.lock();
                while !state.closing {
                    let due = self.durability == Durability::Full && !retrying;
                    if due && !state.pending.is_empty() {
                        break;
                    }
                    let pause = match self.durability {
                        _ if retrying => RETRY_AFTER,
                        Durability::Every(every) => every,
                        Durability::Full => Duration::from_secs(3600),
                    };
                    state.committer_idle = true;
                    let timed_out = self.work.wait_for(&mut state, pause).timed_out();
                    state.committer_idle = false;
                    // A retry goes with the next change, or after its pause.
                    let now = timed_out || self.durability == Durability::Full;
                    if now && !state.pending.is_empty() {
                        break;
                    }
                }
                if state.pending.is_empty() {
                    if state.closing {
                        drop(state);
                        self.wake_all_waiters();
                        return;
                    }
                    continue;
                }
                state.writing = Some(state.recorded);
                (std::mem::take(&mut state.pending), state.recorded)
            };
            let result = sink.write(&batch);
            let mut state = self.state.lock();
            let after = state.committed;
            match result {
                Ok(()) => {
                    state.committed = upto;
                    state
                        .failures
                        .retain(|(_, failed_upto, _)| *failed_upto > upto);
                    retrying = false;
                }
                Err(why) => {
                    log::error!("cannot write to {}: {why}", self.place);
                    state.failures.push((after, upto, why.into()));
                    // Back in front of whatever was recorded meanwhile: order is kept.
                    let newer = std::mem::replace(&mut state.pending, batch);
                    state.pending.extend(newer);
                    retrying = true;
                    if state.closing {
                        log::error!(
                            "{} changes were never written to {} before shutdown",
                            state.pending.len(),
                            self.place
                        );
                        state.pending.clear();
                        drop(state);
                        self.wake_all_waiters();
                        return;
                    }
                }
            }
            // This batch's waiters wake; the next batch answers on the other condvar.
            let parity = state.parity;
            state.parity ^= 1;
            state.writing = None;
            drop(state);
            self.done[parity].notify_all();
        }
    }

    fn wake_all_waiters(&self) {
        for done in &self.done {
            done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A sink that keeps what it was given and fails while told to.
    struct Memory {
        written: Arc<Mutex<Vec<Change>>>,
        batches: Arc<Mutex<usize>>,
        failing: Arc<AtomicBool>,
    }

    impl Sink for Memory {
        fn write(&mut self, batch: &[Change]) -> Result<(), String> {
            if self.failing.load(Ordering::SeqCst) {
                return Err("no space left on device".into());
            }
            self.written.lock().extend_from_slice(batch);
            *self.batches.lock() += 1;
            Ok(())
        }
    }

    fn put(n: u16) -> Change {
        Change::Put {
            object: 1,
            key: n.to_be_bytes().to_vec(),
            value: vec![],
        }
    }

    fn journal(failing: bool) -> (Arc<Journal>, Memory) {
        let sink = Memory {
            written: Arc::default(),
            batches: Arc::default(),
            failing: Arc::new(AtomicBool::new(failing)),
        };
        let seen = Memory {
            written: Arc::clone(&sink.written),
            batches: Arc::clone(&sink.batches),
            failing: Arc::clone(&sink.failing),
        };
        let journal = Journal::start(Box::new(sink), Durability::Full, "test".into()).unwrap();
        (journal, seen)
    }

    #[test]
    fn a_waited_ticket_is_written_in_order_and_concurrent_ones_share_commits() {
        let (journal, seen) = journal(false);
        let threads: Vec<_> = (0..8u16)
            .map(|t| {
                let journal = Arc::clone(&journal);
                std::thread::spawn(move || {
                    for i in 0..50u16 {
                        let ticket = journal.record([put(t * 50 + i)]);
                        journal.wait(ticket).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        journal.close();
        let written = seen.written.lock();
        assert_eq!(written.len(), 400);
        // Each thread's own changes are in its order.
        for t in 0..8u16 {
            let mine: Vec<u16> = written
                .iter()
                .filter_map(|c| match c {
                    Change::Put { key, .. } => Some(u16::from_be_bytes([key[0], key[1]])),
                    _ => None,
                })
                .filter(|n| n / 50 == t)
                .collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        }
        assert!(*seen.batches.lock() <= 400);
    }

    #[test]
    fn a_failed_commit_is_an_error_for_its_waiters_and_is_retried() {
        let (journal, seen) = journal(true);
        let ticket = journal.record([put(1)]);
        let err = journal.wait(ticket).unwrap_err();
        assert_eq!(err.kind(), RemoteErrorKind::Storage);
        assert!(err.message().contains("no space left"), "{err}");
        // The disk has room again: the next commit carries the failed change too.
        seen.failing.store(false, Ordering::SeqCst);
        let ticket = journal.record([put(2)]);
        journal.wait(ticket).unwrap();
        assert_eq!(*seen.written.lock(), vec![put(1), put(2)]);
        journal.close();
    }

    #[test]
    fn close_commits_what_is_pending() {
        let sink = Memory {
            written: Arc::default(),
            batches: Arc::default(),
            failing: Arc::new(AtomicBool::new(false)),
        };
        let written = Arc::clone(&sink.written);
        let journal = Journal::start(
            Box::new(sink),
            Durability::Every(Duration::from_secs(60)),
            "test".into(),
        )
        .unwrap();
        let ticket = journal.record([put(7)]);
        journal.wait(ticket).unwrap(); // relaxed: returns at once
        assert!(written.lock().is_empty());
        journal.close();
        assert_eq!(*written.lock(), vec![put(7)]);
    }
}
