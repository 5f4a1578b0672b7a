//! Connection threads kept for reuse (each door has its own, made by `server::admission`): a
//! thread whose connection ended waits a while for the next one instead of exiting, so a new
//! connection usually costs a channel send rather than a thread spawn (about 10 µs measured
//! here; the harness's "connect + handshake + call + close" row shows what it buys).
//!
//! Invariants: `idle` lists each waiting thread once, with the only sender of its channel;
//! a thread leaves the list either by being popped (and is then sent exactly one job) or by
//! removing itself under the lock when its wait times out. So a popped sender's `send` never
//! fails for want of a receiver, and no job is ever sent to a thread that left.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Work for a connection thread.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The connection threads of one manager.
pub(crate) struct Threads {
    idle: Mutex<Vec<(u64, SyncSender<Job>)>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// How long an idle thread waits for a connection before it exits.
    keep_idle: Duration,
    /// At most this many threads wait idle; a thread finishing beyond it exits.
    max_idle: usize,
    stack_size: usize,
    /// The threads' name.
    name: &'static str,
}

impl Threads {
    pub(crate) fn new(
        keep_idle: Duration,
        max_idle: usize,
        stack_size: usize,
        name: &'static str,
    ) -> Arc<Threads> {
        Arc::new(Threads {
            idle: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            keep_idle,
            max_idle,
            stack_size,
            name,
        })
    }

    /// Runs `job` on an idle thread, or on a new one if none waits.
    pub(crate) fn run(self: &Arc<Self>, job: Job) -> std::io::Result<()> {
        let waiting = self.idle.lock().pop();
        if let Some((_, thread)) = waiting {
            // Cannot fail: a listed thread waits on its receiver until it is popped or
            // removes itself, and it was popped by us.
            if let Err(refused) = thread.send(job) {
                return self.spawn(refused.0);
            }
            return Ok(());
        }
        self.spawn(job)
    }

    fn spawn(self: &Arc<Self>, job: Job) -> std::io::Result<()> {
        let threads = Arc::clone(self);
        thread::Builder::new()
            .name(self.name.into())
            .stack_size(self.stack_size)
            .spawn(move || threads.work(job))
            .map(drop)
    }

    /// A thread's life: its first job, then the next ones handed to it while it waits.
    fn work(&self, mut job: Job) {
        loop {
            job();
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (sender, receiver) = mpsc::sync_channel(1);
            {
                let mut idle = self.idle.lock();
                if idle.len() >= self.max_idle || self.closed.load(Ordering::Acquire) {
                    return;
                }
                idle.push((id, sender));
            }
            job = match receiver.recv_timeout(self.keep_idle) {
                Ok(next) => next,
                Err(RecvTimeoutError::Disconnected) => return, // closed
                Err(RecvTimeoutError::Timeout) => {
                    let mut idle = self.idle.lock();
                    match idle.iter().position(|(listed, _)| *listed == id) {
                        Some(at) => {
                            idle.swap_remove(at);
                            return;
                        }
                        // Popped just now: its job is on the way.
                        None => {
                            drop(idle);
                            match receiver.recv() {
                                Ok(next) => next,
                                Err(_) => return,
                            }
                        }
                    }
                }
            };
        }
    }

    /// No more reuse: idle threads exit, and busy ones exit when their job ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().clear(); // their receivers see the channel closed
    }

    /// How many threads wait idle now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

/// Of `candidates` (id, peer address), the oldest (lowest id) from the address holding most
/// of them, the newcomer from `source` counted: a flood from one host displaces its own.
pub(crate) fn most_crowded_oldest<T: Copy + Ord>(
    candidates: &[(T, Option<std::net::IpAddr>)],
    source: Option<std::net::IpAddr>,
) -> Option<T> {
    let mut per_source: HashMap<Option<std::net::IpAddr>, usize> = HashMap::new();
    for (_, ip) in candidates {
        *per_source.entry(*ip).or_default() += 1;
    }
    *per_source.entry(source).or_default() += 1;
    candidates
        .iter()
        .max_by_key(|(id, ip)| (per_source[ip], std::cmp::Reverse(*id)))
        .map(|(id, _)| *id)
}

/// A job's end, for whoever must wait for it (the manager's shutdown waits for every
/// connection's). Signalled when its [`Finishing`] guard drops, so a panic signals too.
#[derive(Default)]
pub(crate) struct Done {
    finished: Mutex<bool>,
    signal: Condvar,
}

impl Done {
    /// Waits until the job has ended.
    pub(crate) fn wait(&self) {
        let mut finished = self.finished.lock();
        while !*finished {
            self.signal.wait(&mut finished);
        }
    }
}

/// Signals its [`Done`] when dropped.
pub(crate) struct Finishing(pub(crate) Arc<Done>);

impl Drop for Finishing {
    fn drop(&mut self) {
        *self.0.finished.lock() = true;
        self.0.signal.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn thread_id_of(threads: &Arc<Threads>) -> thread::ThreadId {
        let (tx, rx) = channel();
        threads
            .run(Box::new(move || tx.send(thread::current().id()).unwrap()))
            .unwrap();
        rx.recv().unwrap()
    }

    fn wait_idle(threads: &Threads, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while threads.idle_count() != n {
            assert!(std::time::Instant::now() < deadline, "never {n} idle");
            thread::yield_now();
        }
    }

    #[test]
    fn a_finished_thread_takes_the_next_job() {
        let threads = Threads::new(Duration::from_secs(60), 4, 256 << 10, "test");
        let first = thread_id_of(&threads);
        wait_idle(&threads, 1);
        assert_eq!(thread_id_of(&threads), first);
        threads.close();
        assert_eq!(threads.idle_count(), 0);
    }

    #[test]
    fn idle_threads_leave_after_their_wait_and_busy_ones_beyond_the_limit() {
        let threads = Threads::new(Duration::from_millis(20), 1, 256 << 10, "test");
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let dones: Vec<Arc<Done>> = (0..3)
            .map(|_| {
                let done = Arc::new(Done::default());
                let finishing = Finishing(Arc::clone(&done));
                let gate = Arc::clone(&gate);
                threads
                    .run(Box::new(move || {
                        let _finishing = finishing;
                        gate.lock().recv().unwrap();
                    }))
                    .unwrap();
                done
            })
            .collect();
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        for done in &dones {
            done.wait();
        }
        // Three threads finished; one stays (the limit), then leaves after 20 ms.
        wait_idle(&threads, 1);
        wait_idle(&threads, 0);
        // Work still runs on a fresh thread.
        thread_id_of(&threads);
    }

    #[test]
    fn a_panicking_job_still_signals_done() {
        let threads = Threads::new(Duration::from_secs(60), 4, 256 << 10, "test");
        let done = Arc::new(Done::default());
        let finishing = Finishing(Arc::clone(&done));
        threads
            .run(Box::new(move || {
                let _finishing = finishing;
                panic!("a job fails");
            }))
            .unwrap();
        done.wait();
        // The pool still serves.
        thread_id_of(&threads);
    }
}
