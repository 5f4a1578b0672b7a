//! The worker's side: connect from what the supervisor put in the environment, register and
//! heartbeat, take tasks on threads and ack or fail them, keep long tasks' leases, and on a
//! stop request (the supervisor's message, SIGTERM, SIGINT, or [`StopHandle::stop`]) stop
//! taking, finish the tasks in hand and return.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::mailbox::Mailbox;
use super::registry::Registry;
use super::{WORKER_VAR, WorkerReport, WorkerState};
use crate::client::Client;
use crate::error::{Error, RemoteErrorKind, Result};
use crate::proxies::{Task, TaskQueue};

/// The environment variable a supervisor puts the heartbeat interval in (milliseconds).
pub(crate) const HEARTBEAT_VAR: &str = "MONOGUSA_HEARTBEAT_MS";

/// What a supervisor sends a worker's control mailbox. A struct, not an enum: its type tag
/// (`Control{stop:bool}`) describes it whole, so a worker in Python reads it as
/// `{"stop": True}` (see `values::shaped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Control {
    /// Stop taking work, finish what is in hand, exit.
    pub(crate) stop: bool,
}

impl Control {
    /// The stop request.
    pub(crate) const STOP: Control = Control { stop: true };
}

/// What a handler's error says: why the task failed, and whether a retry could help. Every
/// error that is `Display` is retried (after the queue's backoff, until its attempts are
/// spent); [`Permanent`] is not. An error type of your own may implement it too.
pub trait Failure {
    /// Why the task failed, as its dead letter will say.
    fn reason(&self) -> String;
    /// Whether to retry the task (the default), or send it to the dead letters at once.
    fn retry(&self) -> bool {
        true
    }
}

impl<E: fmt::Display> Failure for E {
    fn reason(&self) -> String {
        self.to_string()
    }
}

/// A handler with errors of several kinds returns them boxed: `Box::new(Permanent(..))` or
/// `Box::new(error)` for any `Display` error.
impl Failure for Box<dyn Failure + Send + Sync> {
    fn reason(&self) -> String {
        (**self).reason()
    }

    fn retry(&self) -> bool {
        (**self).retry()
    }
}

/// A handler's error that no retry would fix (bad input): the task goes to the dead letters at
/// once, whatever attempts it had left.
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// use monogusa::workers::{Permanent, Worker};
/// let worker = Worker::from_env()?;
/// let emails = worker.client().tasks::<String>("emails")?;
/// worker.run(&emails, 4, |task| {
///     if !task.payload().contains('@') {
///         return Err(Permanent(format!("{:?} is no address", task.payload())));
///     }
///     Ok(()) // sent
/// })?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permanent(pub String);

impl Failure for Permanent {
    fn reason(&self) -> String {
        self.0.clone()
    }

    fn retry(&self) -> bool {
        false
    }
}

/// The control mailbox of the worker `name`.
pub(crate) fn control_mailbox(name: &str) -> String {
    format!("monogusa.control:{name}")
}

/// How often a waiting worker thread looks at the stop flag (a signal handler can only set
/// a flag, so waits are sliced).
const POLL: Duration = Duration::from_millis(200);

/// A worker's stop request, shared by its threads, its signal handlers and its control
/// mailbox reader.
#[derive(Default)]
struct Stop {
    /// By a message or a [`StopHandle`].
    requested: AtomicBool,
    /// By SIGINT (a second one ends the process).
    interrupted: Arc<AtomicBool>,
    /// By SIGTERM.
    terminated: Arc<AtomicBool>,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
            || self.interrupted.load(Ordering::SeqCst)
            || self.terminated.load(Ordering::SeqCst)
    }

    fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock();
        self.wake.notify_all();
    }

    /// Sleeps up to `d`, waking early on a stop request made through [`Stop::request`].
    fn sleep(&self, d: Duration) {
        let mut guard = self.lock.lock();
        if !self.is_requested() {
            self.wake.wait_for(&mut guard, d);
        }
    }
}

/// Asks a [`Worker`] to stop (from another thread); cheap to clone.
#[derive(Clone)]
pub struct StopHandle(Arc<Stop>);

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StopHandle")
            .field(&self.is_stopped())
            .finish()
    }
}

impl StopHandle {
    /// Asks the worker to stop: it takes no more tasks, finishes those in hand, and
    /// [`Worker::run`] returns.
    pub fn stop(&self) {
        self.0.request();
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.is_requested()
    }
}

/// What a worker counts.
#[derive(Default)]
struct Counts {
    done: AtomicU64,
    failed: AtomicU64,
    in_hand: Mutex<Vec<u64>>,
}

/// What [`Worker::run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// Tasks acked.
    pub done: u64,
    /// Tasks failed (the handler's `Err` or panic), to be retried or dead-lettered.
    pub failed: u64,
}

/// Configures a [`Worker`]; from [`Worker::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct WorkerBuilder {
    client: Client,
    name: Option<String>,
    heartbeat: Duration,
    handle_signals: bool,
}

impl WorkerBuilder {
    /// The worker's name (default: the supervisor's `MONOGUSA_WORKER`, else `host-pid`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How often to heartbeat (default 1 s; the supervisor's `MONOGUSA_HEARTBEAT_MS` when
    /// set). A worker silent for three intervals is shown as lost.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval.max(Duration::from_millis(10));
        self
    }

    /// Whether SIGINT and SIGTERM ask the worker to stop (default true; a second SIGINT ends
    /// the process at once with exit code 1).
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.handle_signals = handle;
        self
    }

    /// Registers the worker at the manager and starts its heartbeat.
    pub fn build(self) -> Result<Worker> {
        let name = self
            .name
            .or_else(|| std::env::var(WORKER_VAR).ok())
            .unwrap_or_else(|| format!("{}-{}", super::host_name(), std::process::id()));
        let stop = Arc::new(Stop::default());
        if self.handle_signals {
            register_signals(&stop)?;
        }
        let registry = Registry::open(&self.client)?;
        let lost_after = self.heartbeat * 3 + Duration::from_secs(1);
        registry.report(&WorkerReport {
            name: name.clone(),
            heartbeat: true,
            pid: Some(std::process::id()),
            host: Some(super::host_name()),
            state: Some(WorkerState::Running),
            lost_after_ms: Some(lost_after.as_millis() as u64),
            ..WorkerReport::default()
        })?;
        let counts = Arc::new(Counts::default());
        let closed = Arc::new(AtomicBool::new(false));
        let background = {
            let client = self.client.clone();
            let name = name.clone();
            let stop = Arc::clone(&stop);
            let counts = Arc::clone(&counts);
            let closed = Arc::clone(&closed);
            let interval = self.heartbeat;
            std::thread::Builder::new()
                .name(format!("monogusa-worker-{name}"))
                .spawn(move || {
                    background(&client, &name, &registry, &stop, &counts, &closed, interval)
                })?
        };
        Ok(Worker {
            client: self.client,
            name,
            stop,
            counts,
            closed,
            background: Some(background),
        })
    }
}

/// SIGTERM asks to stop; so does SIGINT, and a second SIGINT ends the process at once (exit
/// code 1). Only a second SIGINT: a Ctrl-C in a terminal reaches a supervised worker both
/// directly and as its supervisor's SIGTERM, and that must not kill it mid-task.
fn register_signals(stop: &Stop) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    // Registered first, so it sees the flag before this signal sets it.
    signal_hook::flag::register_conditional_shutdown(SIGINT, 1, Arc::clone(&stop.interrupted))?;
    signal_hook::flag::register(SIGINT, Arc::clone(&stop.interrupted))?;
    signal_hook::flag::register(SIGTERM, Arc::clone(&stop.terminated))?;
    Ok(())
}

/// The worker's background thread: heartbeats, and reads the control mailbox.
fn background(
    client: &Client,
    name: &str,
    registry: &Registry,
    stop: &Stop,
    counts: &Counts,
    closed: &AtomicBool,
    interval: Duration,
) {
    let control = Mailbox::<Control>::open(client, &control_mailbox(name), 16);
    let mut next_beat = Instant::now();
    let mut reported_stopping = false;
    while !closed.load(Ordering::SeqCst) {
        if Instant::now() >= next_beat || (stop.is_requested() && !reported_stopping) {
            let stopping = stop.is_requested();
            let report = WorkerReport {
                name: name.to_string(),
                heartbeat: true,
                done: Some(counts.done.load(Ordering::SeqCst)),
                failed: Some(counts.failed.load(Ordering::SeqCst)),
                in_hand: Some(
                    counts
                        .in_hand
                        .lock()
                        .iter()
                        .map(|id| id.to_string())
                        .collect(),
                ),
                state: (stopping && !reported_stopping).then_some(WorkerState::Stopping),
                ..WorkerReport::default()
            };
            if registry.report(&report).is_ok() && stopping {
                reported_stopping = true;
            }
            next_beat = Instant::now() + interval;
        }
        let wait = next_beat
            .saturating_duration_since(Instant::now())
            .min(POLL);
        let message = match &control {
            Ok(control) if !stop.is_requested() => control.recv_timeout(wait),
            _ => {
                std::thread::sleep(wait);
                Ok(None)
            }
        };
        match message {
            Ok(Some(Control { stop: true })) => stop.request(),
            Ok(Some(Control { stop: false })) => {}
            Ok(None) => {}
            // The manager is slow or gone: the heartbeat above keeps trying.
            Err(_) => std::thread::sleep(wait),
        }
    }
}

/// A worker process's connection to its manager, registered by name, heartbeating, and
/// stopping on request.
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// let worker = monogusa::workers::Worker::from_env()?;
/// let thumbnails = worker.client().tasks::<String>("thumbnails")?;
/// let report = worker.run(&thumbnails, 4, |task| {
///     println!("{} (attempt {})", task.payload(), task.attempt());
///     Ok::<(), std::io::Error>(())
/// })?;
/// println!("{} done, {} failed", report.done, report.failed);
/// # Ok(()) }
/// ```
pub struct Worker {
    client: Client,
    name: String,
    stop: Arc<Stop>,
    counts: Arc<Counts>,
    closed: Arc<AtomicBool>,
    background: Option<JoinHandle<()>>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("stopped", &self.stop.is_requested())
            .finish_non_exhaustive()
    }
}

/// Whether an error may pass (the manager restarting, a connection cut): a worker waits and
/// tries again instead of ending.
fn is_transient(e: &Error) -> bool {
    match e {
        Error::Io(_) | Error::ConnectionLost(_) | Error::Timeout(_) | Error::Refused(_) => true,
        Error::Remote(r) => matches!(
            r.kind(),
            RemoteErrorKind::ShuttingDown | RemoteErrorKind::StaleObject | RemoteErrorKind::Storage
        ),
        _ => false,
    }
}

impl Worker {
    /// Connects with the address, key and name a supervisor (or
    /// [`ManagerHandle::command`](crate::ManagerHandle::command)) put in the environment,
    /// registers, and starts heartbeating. SIGINT and SIGTERM ask it to stop.
    pub fn from_env() -> Result<Worker> {
        let mut builder = Worker::builder(Client::from_env()?);
        if let Some(ms) = std::env::var(HEARTBEAT_VAR)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            builder = builder.heartbeat(Duration::from_millis(ms));
        }
        builder.build()
    }

    /// Configures a worker over `client`.
    pub fn builder(client: Client) -> WorkerBuilder {
        WorkerBuilder {
            client,
            name: None,
            heartbeat: Duration::from_secs(1),
            handle_signals: true,
        }
    }

    /// The client, to open task queues, mailboxes and shared objects.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The worker's name (`resizer-2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle to ask the worker to stop from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.stop))
    }

    /// Whether a stop was asked for (by the supervisor, a signal or a [`StopHandle`]).
    pub fn is_stopping(&self) -> bool {
        self.stop.is_requested()
    }

    /// This worker's mailbox (named as the worker), for messages from other processes.
    pub fn mailbox<M: Serialize + DeserializeOwned>(&self) -> Result<Mailbox<M>> {
        self.client.mailbox(&self.name)
    }

    /// The messages of this worker's mailbox as they arrive, until a stop is asked for.
    pub fn messages<'a, M: Serialize + DeserializeOwned + 'a>(
        &'a self,
    ) -> Result<impl Iterator<Item = Result<M>> + 'a> {
        let mailbox = self.mailbox::<M>()?;
        let mut failed = false;
        Ok(std::iter::from_fn(move || {
            while !failed && !self.stop.is_requested() {
                match mailbox.recv_timeout(POLL) {
                    Ok(Some(message)) => return Some(Ok(message)),
                    Ok(None) => {}
                    Err(e) if e.is_closed() => return None,
                    Err(e) if is_transient(&e) => self.stop.sleep(POLL),
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                }
            }
            None
        }))
    }

    /// Works `tasks` on `threads` threads until a stop is asked for: each thread takes a
    /// task, runs `handler` on it, and acks it on `Ok`, fails it (retried after the queue's
    /// backoff, or dead-lettered) on `Err` or a panic. The leases of tasks in hand are
    /// extended in the background, so a task may run longer than the lease timeout. On a
    /// stop, no thread takes another task; those in hand are finished and acked, then it
    /// returns.
    ///
    /// What the handler returns (any serde value; `()` for none) is kept by the manager as
    /// the task's result, read by [`TaskQueue::result`](crate::TaskQueue::result).
    ///
    /// Transient errors (the manager restarting, a connection cut) are waited out; another
    /// error (a wrong key, a queue of other types) ends the run with it, after the tasks in
    /// hand are finished.
    pub fn run<T, R, E, F>(
        &self,
        tasks: &TaskQueue<T>,
        threads: usize,
        handler: F,
    ) -> Result<RunReport>
    where
        T: Serialize + DeserializeOwned + Send,
        E: Failure,
        R: Serialize,
        F: Fn(&Task<T>) -> Result<R, E> + Sync,
    {
        let lease_timeout = tasks.settings()?.lease_timeout;
        let leases = Mutex::new(Vec::<(u64, crate::proxies::Lease)>::new());
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let running = AtomicU64::new(threads.max(1) as u64);
        let before = RunReport {
            done: self.counts.done.load(Ordering::SeqCst),
            failed: self.counts.failed.load(Ordering::SeqCst),
        };
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                scope.spawn(|| {
                    self.take_and_run(tasks, &handler, &leases, &failure);
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
            // The lease keeper: extends every lease in hand at a third of the lease timeout.
            scope.spawn(|| {
                let every = (lease_timeout / 3).max(Duration::from_millis(10));
                let mut next = Instant::now() + every;
                while running.load(Ordering::SeqCst) > 0 {
                    std::thread::sleep(Duration::from_millis(20).min(every));
                    if Instant::now() < next {
                        continue;
                    }
                    next = Instant::now() + every;
                    let in_hand: Vec<crate::proxies::Lease> =
                        leases.lock().iter().map(|(_, l)| l.clone()).collect();
                    for lease in in_hand {
                        if let Err(e) = lease.extend(lease_timeout) {
                            log::warn!("could not extend a lease: {e}");
                        }
                    }
                }
            });
        });
        if let Some(e) = failure.into_inner() {
            return Err(e);
        }
        Ok(RunReport {
            done: self.counts.done.load(Ordering::SeqCst) - before.done,
            failed: self.counts.failed.load(Ordering::SeqCst) - before.failed,
        })
    }

    /// One worker thread: take, run, ack or fail, until a stop (or a lasting error).
    fn take_and_run<T, R, E, F>(
        &self,
        tasks: &TaskQueue<T>,
        handler: &F,
        leases: &Mutex<Vec<(u64, crate::proxies::Lease)>>,
        failure: &Mutex<Option<Error>>,
    ) where
        T: Serialize + DeserializeOwned,
        E: Failure,
        R: Serialize,
        F: Fn(&Task<T>) -> Result<R, E>,
    {
        let mut backoff = Duration::from_millis(50);
        while !self.stop.is_requested() && failure.lock().is_none() {
            let task = match tasks.take(POLL) {
                Ok(Some(task)) => {
                    backoff = Duration::from_millis(50);
                    task
                }
                Ok(None) => continue,
                Err(e) if is_transient(&e) => {
                    log::warn!("worker {}: taking a task failed, retrying: {e}", self.name);
                    self.stop.sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(e) => {
                    *failure.lock() = Some(e);
                    return;
                }
            };
            let id = task.id().0;
            leases.lock().push((id, task.lease()));
            self.counts.in_hand.lock().push(id);
            let outcome = match catch_unwind(AssertUnwindSafe(|| handler(&task))) {
                // A result that encodes to nothing (`()`) is a plain ack.
                Ok(Ok(result)) => Ok(crate::store::Bytes::encode(&result)
                    .ok()
                    .filter(|bytes| !bytes.0.is_empty())),
                Ok(Err(e)) => Err((e.reason(), e.retry())),
                Err(panic) => Err((
                    format!("the handler panicked: {}", panic_text(&*panic)),
                    true,
                )),
            };
            leases.lock().retain(|(held, _)| *held != id);
            self.counts.in_hand.lock().retain(|held| *held != id);
            let settled = match outcome {
                Ok(None) => task.ack().map(|()| {
                    self.counts.done.fetch_add(1, Ordering::SeqCst);
                }),
                Ok(Some(result)) => task.ack_with_encoded(result).map(|()| {
                    self.counts.done.fetch_add(1, Ordering::SeqCst);
                }),
                Err((reason, true)) => task.fail(reason).map(|_| {
                    self.counts.failed.fetch_add(1, Ordering::SeqCst);
                }),
                Err((reason, false)) => task.fail_permanently(reason).map(|()| {
                    self.counts.failed.fetch_add(1, Ordering::SeqCst);
                }),
            };
            if let Err(e) = settled {
                // The lease ended (or the manager went): the task is delivered again.
                log::warn!("worker {}: task {id} not settled: {e}", self.name);
            }
        }
    }
}

/// A panic's message, if it has one.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(thread) = self.background.take() {
            let _ = thread.join();
        }
        if let Ok(registry) = Registry::open(&self.client) {
            let _ = registry.report(&WorkerReport {
                name: self.name.clone(),
                heartbeat: true,
                state: Some(WorkerState::Stopped),
                done: Some(self.counts.done.load(Ordering::SeqCst)),
                failed: Some(self.counts.failed.load(Ordering::SeqCst)),
                in_hand: Some(Vec::new()),
                ..WorkerReport::default()
            });
        }
    }
}
