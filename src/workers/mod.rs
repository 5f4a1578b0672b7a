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
pub use worker::{Failure, Permanent, RunReport, StopHandle, Worker, WorkerBuilder};

pub(crate) use crate::kinds::logs::ShippedLine;
pub use crate::kinds::logs::{LogLine, LogPage, LogStream};
pub(crate) use crate::kinds::workers::WorkerReport;
pub use crate::kinds::workers::{WorkerState, WorkerStatus};

/// The environment variable a supervisor puts a worker's name in (`resizer-2`).
pub const WORKER_VAR: &str = "MONOGUSA_WORKER";

/// The host name, for registry entries (empty if it cannot be read).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_default()
}
