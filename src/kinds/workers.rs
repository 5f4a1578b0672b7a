//! The worker registry: who works for a manager, in what state, with what in hand. Workers
//! and supervisors report; `monogusa stat`, the dashboard and `Client::workers` read.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::RemoteError;

/// The wire name of the kind.
pub(crate) const SERVICE: &str = WorkersKindClient::SERVICE;

/// The name the manager keeps its registry under (one per manager).
pub(crate) const REGISTRY_NAME: &str = "monogusa.workers";

/// The registry's type tag: the version of the records it holds.
pub(crate) const REGISTRY_TAG: &str = "monogusa workers v1";

/// The methods of the worker registry.
#[crate::service(crate = "crate", name = "monogusa.Workers")]
pub(crate) trait WorkersKind {
    /// Merges a worker's report into its entry.
    fn report(&self, report: WorkerReport) -> Result<(), RemoteError>;
    /// Every worker known, by name.
    fn list(&self) -> Vec<WorkerStatus>;
    /// Forgets worker `name`; says whether it was known.
    fn forget(&self, name: String) -> bool;
    /// Workers recently gone (ended or lost long enough to leave the list), most recent first.
    fn gone(&self) -> Vec<WorkerStatus>;
}

/// What a worker's registry entry says it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WorkerState {
    /// Running: heartbeating (a [`Worker`](crate::workers::Worker)), or alive as its supervisor sees it (any other
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
#[serde(default)] // a report from Python or msgpack-rpc names only what it says
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
