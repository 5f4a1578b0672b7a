//! Long-lived worker processes: the worker's side ([`Worker`]: take tasks on threads, ack or
//! retry, heartbeat, stop on request and drain), named [`Mailbox`]es and [`Group`]s between
//! processes, the [`Supervisor`] that starts, restarts and stops workers and gathers their
//! output, and what the manager keeps about them ([`WorkerStatus`], the log buffer).
//!
//! ```no_run
//! use monogusa::workers::{Program, Supervisor, Worker};
//!
//! fn main() -> monogusa::Result<()> {
//!     if std::env::args().nth(1).as_deref() == Some("worker") {
//!         // Started by the supervisor: address, key and name come from the environment.
//!         let worker = Worker::from_env()?;
//!         let jobs = worker.client().tasks::<String>("jobs")?;
//!         worker.run(&jobs, 2, |task| {
//!             println!("resizing {}", task.payload());
//!             Ok::<(), String>(())
//!         })?;
//!         return Ok(());
//!     }
//!     let manager = monogusa::Manager::builder().bind("127.0.0.1:0").build()?.start()?;
//!     let mut supervisor = Supervisor::new(&manager);
//!     supervisor.spawn("resizer", 4, Program::current_exe()?.arg("worker"));
//!     // Until SIGINT or SIGTERM: then every worker drains, and the outcome says how each ended.
//!     let outcome = supervisor.run()?;
//!     println!("{outcome}");
//!     Ok(())
//! }
//! ```

mod forward;
mod mailbox;
mod output;
mod process_group;
mod registry;
mod supervisor;
mod worker;

pub use forward::{Forwarding, LogForwarder};
pub use mailbox::{Broadcast, Group, Mailbox};
#[cfg(feature = "http")]
pub(crate) use output::clock;
pub use registry::Logs;
pub use supervisor::{
    Ended, Outcome, ProcessOutcome, Program, Supervisor, SupervisorSettings, SupervisorStop,
};
pub use worker::{RunReport, StopHandle, Worker, WorkerBuilder};

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The environment variable a supervisor puts a worker's name in (`resizer-2`).
pub const WORKER_VAR: &str = "MONOGUSA_WORKER";

/// What a worker's registry entry says it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WorkerState {
    /// Running: heartbeating (a [`Worker`]), or alive as its supervisor sees it (any other
    /// program).
    Running,
    /// Told to stop: finishing the tasks in hand.
    Stopping,
    /// Meant to be alive, but its heartbeats stopped (hung, or its machine is gone). Its
    /// leases return to the queue when they expire or its connection closes.
    Lost,
    /// Ended unexpectedly; its supervisor starts it again after a backoff.
    Restarting,
    /// Crashed too often; its supervisor gave up on it.
    GaveUp,
    /// Ended: its exit code, or the signal that ended it.
    Exited {
        /// The exit code, if it exited.
        code: Option<i32>,
        /// The signal that ended it, if one did.
        signal: Option<i32>,
    },
    /// Stopped on request, having finished its tasks.
    Stopped,
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerState::Running => f.write_str("running"),
            WorkerState::Stopping => f.write_str("stopping"),
            WorkerState::Lost => f.write_str("lost"),
            WorkerState::Restarting => f.write_str("restarting"),
            WorkerState::GaveUp => f.write_str("gave up"),
            WorkerState::Exited {
                code: Some(code), ..
            } => write!(f, "exited {code}"),
            WorkerState::Exited {
                signal: Some(signal),
                ..
            } => write!(f, "killed by signal {signal}"),
            WorkerState::Exited { .. } => f.write_str("exited"),
            WorkerState::Stopped => f.write_str("stopped"),
        }
    }
}

/// One worker as the manager knows it ([`Client::workers`](crate::Client::workers)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// Its name (`resizer-2`).
    pub name: String,
    /// Its process id.
    pub pid: Option<u32>,
    /// The host it runs on.
    pub host: Option<String>,
    /// What it is doing.
    pub state: WorkerState,
    /// How often its supervisor restarted it.
    pub restarts: u32,
    /// When its current process first heartbeat.
    pub started: Option<SystemTime>,
    /// How long ago its last heartbeat arrived (on the manager's clock).
    pub heartbeat_age: Option<Duration>,
    /// Tasks it acked.
    pub done: u64,
    /// Tasks it failed (handler errors and panics).
    pub failed: u64,
    /// The ids of the tasks in hand.
    pub in_hand: Vec<String>,
}

/// A change to a worker's registry entry: what is `Some` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WorkerReport {
    pub(crate) name: String,
    /// From the worker itself: stamps its heartbeat.
    pub(crate) heartbeat: bool,
    pub(crate) pid: Option<u32>,
    pub(crate) host: Option<String>,
    pub(crate) state: Option<WorkerState>,
    pub(crate) restarts: Option<u32>,
    pub(crate) done: Option<u64>,
    pub(crate) failed: Option<u64>,
    pub(crate) in_hand: Option<Vec<String>>,
    /// Shown as lost after this long without a heartbeat.
    pub(crate) lost_after_ms: Option<u64>,
    /// From its supervisor, which is alive and sees the process running: a program that
    /// never heartbeats is lost when these stop (its supervisor was killed).
    pub(crate) supervised: bool,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A `log` record ([`LogForwarder`]).
    Log,
}

/// A line on its way to the manager's log buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShippedLine {
    pub(crate) source: String,
    pub(crate) stream: LogStream,
    pub(crate) time: SystemTime,
    pub(crate) text: String,
}

/// A line of a worker's output as the manager keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogLine {
    /// Its number: lines are numbered in the order they reached the manager, from 1.
    pub seq: u64,
    /// The worker it came from.
    pub source: String,
    /// Which of its outputs.
    pub stream: LogStream,
    /// When the supervisor (or forwarder) read it.
    pub time: SystemTime,
    /// The line, without its line ending (cut at 4 KiB, ending in `…` when cut).
    pub text: String,
}

/// Lines read from the manager's log buffer ([`Logs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogPage {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
    /// The number to read after next time.
    pub next: u64,
    /// Per worker, how many lines its shipper dropped because the manager was slow or gone.
    pub dropped: Vec<(String, u64)>,
}

/// The host name, for registry entries (empty if it cannot be read).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_default()
}
