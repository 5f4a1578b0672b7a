//! `TaskQueue<T>`: tasks with leases, retries with backoff and dead letters, and the wire
//! types its methods take and give (the manager's side is `store::tasks`, its state machine
//! `store::tasks::book`).

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use serde::{Deserialize, Serialize};

use super::Bytes;
use crate::error::RemoteError;
use crate::service::Caller;

/// The wire name of the kind.
pub(crate) const SERVICE: &str = TaskKindClient::SERVICE;

/// A lease's status on the wire, per task of an `ack`: acknowledged.
pub(crate) const ACKED: u8 = 0;
/// The lease was over (see [`RemoteErrorKind::LeaseExpired`](crate::RemoteErrorKind)).
pub(crate) const EXPIRED: u8 = 1;
/// No such task.
pub(crate) const UNKNOWN: u8 = 2;

/// The methods of a task queue. A lease is named by the task's id and the token its delivery
/// carried; a lease taken on a connection goes back when that connection closes. (The most
/// called come first: a call finds its method by name, in this order.)
#[crate::service(crate = "crate", name = "monogusa.TaskQueue", hooks)]
pub(crate) trait TaskKind {
    /// Adds tasks: for each, its id and whether it is new (`false`: its dedup key named a
    /// task already there).
    fn push(&self, tasks: Vec<(Bytes, PushOptions)>) -> Result<Vec<(u64, bool)>, RemoteError>;
    /// Leases up to `n` ready tasks to the caller, waiting up to `timeout_ms` for the first.
    fn take(
        &self,
        n: u32,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Vec<Delivery>, RemoteError>;
    /// Acknowledges leases `(id, token)`: per lease, [`ACKED`], [`EXPIRED`] or [`UNKNOWN`].
    fn ack(&self, leases: Vec<(u64, u64)>) -> Result<Vec<u8>, RemoteError>;
    /// Adds tasks that run once every one of `parents` is done (they wait until then; if a
    /// parent dies, they die too, saying so): for each, its id and whether it is new. A parent
    /// done already counts as done; an unknown one is an error, and nothing is pushed.
    fn push_after(
        &self,
        parents: Vec<u64>,
        tasks: Vec<(Bytes, PushOptions)>,
    ) -> Result<Vec<(u64, bool)>, RemoteError>;
    /// Adds a graph of tasks in one commit: each node runs once every one of its parents
    /// (tasks already known, or nodes before it in this call) is done. All of it is pushed,
    /// or none of it: an unknown parent, a parent named by a later node, or a full store is
    /// an error and nothing is pushed. For each node, its id and whether it is new.
    fn push_graph(&self, nodes: Vec<Node>) -> Result<Vec<(u64, bool)>, RemoteError>;
    /// What task `id`'s parents ended with, in the order they were named when it was
    /// pushed (`Pending` for one not finished yet): the results a chord's callback or a
    /// chain's next step runs on. Empty for a task pushed without parents.
    fn inputs(&self, id: u64) -> Result<Vec<(u64, Outcome)>, RemoteError>;
    /// Acknowledges lease `(id, token)` with `result` (empty: none) together with `effects`
    /// (writes to the manager's counters, dicts and values, pushes to this queue), in one
    /// commit: [`ACKED`] with all of it applied, or [`EXPIRED`] or [`UNKNOWN`] or an error
    /// (an unknown object, a full store, an overflow) with none of it.
    fn ack_with(
        &self,
        id: u64,
        token: u64,
        result: Bytes,
        effects: Vec<Effect>,
        caller: &Caller<'_>,
    ) -> Result<u8, RemoteError>;
    /// Fails a lease with `reason`: retried after a backoff, or dead when out of attempts.
    fn fail(&self, id: u64, token: u64, reason: String) -> Result<Failed, RemoteError>;
    /// Fails a lease with `reason` for good: to the dead letters at once, whatever attempts
    /// are left (bad input that no retry would fix).
    fn fail_permanently(&self, id: u64, token: u64, reason: String) -> Result<(), RemoteError>;
    /// Keeps a lease `extra_ms` longer from now; returns its new end (Unix ms).
    fn extend(&self, id: u64, token: u64, extra_ms: u64) -> Result<u64, RemoteError>;
    /// Gives a lease back at once (the attempt counts).
    fn release(&self, id: u64, token: u64) -> Result<(), RemoteError>;
    /// Waits up to `timeout_ms` (forever if `None`) until no task is ready, delayed or
    /// leased: true if the queue drained, false if the time ran out.
    fn join(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError>;
    /// Where task `id` is: ready, delayed, leased (with its attempt), dead, done (within the
    /// result time-to-live), or unknown.
    fn status(&self, id: u64) -> TaskStatus;
    /// Acknowledges leases with their results (`(id, token, result)`): per lease, [`ACKED`],
    /// [`EXPIRED`] or [`UNKNOWN`]. The results are kept for the result time-to-live.
    fn complete(&self, leases: Vec<(u64, u64, Bytes)>) -> Result<Vec<u8>, RemoteError>;
    /// Task `id`'s outcome, waiting up to `timeout_ms` (forever if `None`) for it to finish.
    fn outcome(
        &self,
        id: u64,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Outcome, RemoteError>;
    /// The outcomes of those of `ids` that have finished (done, dead, or not known), waiting
    /// up to `timeout_ms` (forever if `None`) until one has: empty if none did in time.
    fn outcomes(
        &self,
        ids: Vec<u64>,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Vec<(u64, Outcome)>, RemoteError>;
    /// Counts by state.
    fn stats(&self) -> Counts;
    /// Up to `limit` of the tasks pushed after others (a group's callback, a chain's step)
    /// with ids after `after`, each with how far its parents are.
    fn groups(&self, after: u64, limit: u32) -> Vec<GroupView>;
    /// What is known of task `id`: where it is, when it was pushed, its deliveries and why
    /// each failed, its lease, its parents, its result's size once done.
    fn task(&self, id: u64) -> TaskView;
    /// Up to `limit` dead letters with ids after `after`.
    fn dead(&self, after: u64, limit: u32) -> Vec<DeadLetter>;
    /// Moves dead letter `id` (all of them if `None`) back to ready; how many moved.
    fn requeue(&self, id: Option<u64>) -> Result<u64, RemoteError>;
    /// Deletes every dead letter; how many there were.
    fn purge_dead(&self) -> Result<u64, RemoteError>;
    /// The queue's settings.
    fn settings(&self) -> Settings;
    /// What the queue did since the manager started.
    fn metrics(&self) -> RunMetrics;
}

/// Where a task is, asked by its id ([`TaskQueue::status`](crate::TaskQueue::status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskStatus {
    /// Waiting to be taken.
    Ready,
    /// Waiting for its delay or its retry's backoff.
    Delayed,
    /// Held by a worker, on this delivery (1 first).
    Leased {
        /// Which delivery this is.
        attempt: u32,
    },
    /// Pushed after other tasks ([`TaskQueue::push_after`](crate::TaskQueue::push_after)),
    /// some of which are not done yet.
    Waiting,
    /// Done (acked), within the result time-to-live.
    Done,
    /// In the dead letters.
    Dead,
    /// Never pushed, purged, or done longer ago than the result time-to-live.
    Unknown,
}

/// In words, as the dashboard and the CLI show it: `ready`, `delayed`, `leased (attempt 2)`,
/// `waiting`, `done`, `dead`, `unknown`.
impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskStatus::Ready => f.write_str("ready"),
            TaskStatus::Delayed => f.write_str("delayed"),
            TaskStatus::Leased { attempt } => write!(f, "leased (attempt {attempt})"),
            TaskStatus::Waiting => f.write_str("waiting"),
            TaskStatus::Done => f.write_str("done"),
            TaskStatus::Dead => f.write_str("dead"),
            TaskStatus::Unknown => f.write_str("unknown"),
        }
    }
}

/// How a task ended, or that it has not yet (the wire form of
/// [`TaskQueue::result`](crate::TaskQueue::result)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// Done, with its result if its handler gave one.
    Done(Option<Bytes>),
    /// Dead, with the reasons of its failures.
    Dead(Vec<String>),
    /// Not finished within the wait.
    Pending,
    /// Not known (see [`TaskStatus::Unknown`]).
    Unknown,
}

/// A queue's settings, fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
// Fields a foreign client leaves out take their defaults (bincode reads every field).
#[serde(default)]
pub(crate) struct Settings {
    /// How long a lease lasts unless extended.
    pub(crate) lease_ms: u64,
    /// Deliveries a task gets before it goes to the dead letters (unless pushed with its own).
    pub(crate) max_attempts: u32,
    /// The first retry's delay; each further one doubles, up to `backoff_max_ms`.
    pub(crate) backoff_base_ms: u64,
    pub(crate) backoff_max_ms: u64,
    /// How long a done task's record and result are kept (`None`: the manager's
    /// `result_ttl`).
    pub(crate) result_ttl_ms: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease_ms: 30_000,
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            result_ttl_ms: None,
        }
    }
}

impl Settings {
    /// A queue's settings from its creation arguments, as written by this version or by one
    /// before per-queue result times (a data directory made by it keeps working).
    pub(crate) fn from_args(args: &[u8]) -> Result<Settings, RemoteError> {
        /// The settings' first form.
        #[derive(Deserialize)]
        struct Before {
            lease_ms: u64,
            max_attempts: u32,
            backoff_base_ms: u64,
            backoff_max_ms: u64,
        }
        match crate::service::decode_args::<(Settings,)>(args, "TaskQueue", "new") {
            Ok((settings,)) => Ok(settings),
            Err(e) => match crate::wire::codec::decode_exact::<(Before,)>(args) {
                Ok((b,)) => Ok(Settings {
                    lease_ms: b.lease_ms,
                    max_attempts: b.max_attempts,
                    backoff_base_ms: b.backoff_base_ms,
                    backoff_max_ms: b.backoff_max_ms,
                    result_ttl_ms: None,
                }),
                Err(_) => Err(e),
            },
        }
    }
}

/// The upper bounds (ms) of the task duration histogram's buckets.
pub(crate) const DURATION_BOUNDS_MS: [u64; 10] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 30_000];

/// What a queue did since the manager started (kept in memory only): for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunMetrics {
    /// Failed deliveries (the handler's error, or a lease that ran out).
    pub(crate) failed: u64,
    /// Tasks moved to the dead letters.
    pub(crate) dead: u64,
    /// Acked or failed deliveries by how long their lease had run, one count per bound of
    /// [`DURATION_BOUNDS_MS`] and one past the last (not cumulative).
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum_ms: u64,
}

impl RunMetrics {
    /// Counts a delivery that ran `ms`.
    pub(crate) fn record(&mut self, ms: u64) {
        if self.buckets.len() != DURATION_BOUNDS_MS.len() + 1 {
            self.buckets = vec![0; DURATION_BOUNDS_MS.len() + 1];
        }
        let at = DURATION_BOUNDS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(DURATION_BOUNDS_MS.len());
        self.buckets[at] += 1;
        self.sum_ms += ms;
    }
}

/// How a push may differ from the queue's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Fields a foreign client leaves out take their defaults (bincode reads every field).
#[serde(default)]
pub(crate) struct PushOptions {
    pub(crate) delay_ms: u64,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) dedup: Option<String>,
    /// For a task pushed after others: run it even if some of them die (their reasons are
    /// among its inputs), instead of letting it die with them.
    pub(crate) run_if_parents_die: bool,
}

/// A write an ack makes in its own commit ([`TaskKind::ack_with`]); objects by their ids in
/// the manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Effect {
    /// Adds `delta` to a counter.
    Add { counter: u64, delta: i64 },
    /// Sets a dict's key.
    Insert { dict: u64, key: Bytes, value: Bytes },
    /// Removes a dict's key.
    Remove { dict: u64, key: Bytes },
    /// Sets a value.
    Set { value: u64, new: Bytes },
    /// Pushes a task to the queue acked.
    Push {
        payload: Bytes,
        options: PushOptions,
    },
}

impl Effect {
    /// The object it writes, if not the queue.
    pub(crate) fn object(&self) -> Option<u64> {
        match *self {
            Effect::Add { counter: id, .. }
            | Effect::Insert { dict: id, .. }
            | Effect::Remove { dict: id, .. }
            | Effect::Set { value: id, .. } => Some(id),
            Effect::Push { .. } => None,
        }
    }
}

/// A task of a [`TaskKind::push_graph`]: its payload, its options and what it runs after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Node {
    pub(crate) payload: Bytes,
    #[serde(default)]
    pub(crate) options: PushOptions,
    /// What it runs after, in the order its inputs are given.
    #[serde(default)]
    pub(crate) after: Vec<Parent>,
}

/// A parent in a [`Node`]'s list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Parent {
    /// A task already in the queue (or done within the result time-to-live).
    Task(u64),
    /// The node at this index of the same call (before this one).
    Node(u32),
}

/// A delivered task, as the worker gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub(crate) id: u64,
    pub(crate) token: u64,
    pub(crate) attempt: u32,
    pub(crate) enqueued: u64,
    pub(crate) lease_until: u64,
    pub(crate) payload: Bytes,
}

/// A task pushed after others, as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupView {
    pub(crate) id: u64,
    pub(crate) status: TaskStatus,
    /// How many parents it has, and how many of them are done and dead.
    pub(crate) size: u32,
    pub(crate) done: u32,
    pub(crate) dead: u32,
}

/// One task's story, as far as the queue keeps it ([`TaskKind::task`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskView {
    pub(crate) id: u64,
    pub(crate) status: TaskStatus,
    /// When it was pushed (Unix ms), while it is in the queue.
    pub(crate) enqueued: Option<u64>,
    /// Deliveries so far, and how many it may have.
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    /// Why each failed delivery failed, oldest first (an expired lease says so).
    pub(crate) reasons: Vec<String>,
    /// When its current lease ends (Unix ms), if it is leased.
    pub(crate) lease_until: Option<u64>,
    /// Its parents, in order, each `Pending`, `Done` or `Dead` (without their results).
    pub(crate) parents: Vec<(u64, TaskStatus)>,
    /// When it was acked (Unix ms), and its result's size, once done.
    pub(crate) finished: Option<u64>,
    pub(crate) result_bytes: Option<u64>,
    pub(crate) payload_bytes: Option<u64>,
}

/// A dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeadLetter {
    pub(crate) id: u64,
    pub(crate) attempts: u32,
    pub(crate) enqueued: u64,
    pub(crate) reasons: Vec<String>,
    pub(crate) payload: Bytes,
}

/// Counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub(crate) ready: u64,
    pub(crate) delayed: u64,
    pub(crate) leased: u64,
    pub(crate) dead: u64,
    pub(crate) done: u64,
    /// How long the oldest ready task has waited since it was pushed, in ms (0 if none).
    pub(crate) oldest_ready_ms: u64,
}

/// What happened to a failed task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failed {
    /// Delivered again, not before this time.
    RetryAt(u64),
    /// Out of attempts: moved to the dead letters.
    Dead,
}

#[cfg(test)]
mod tests {
    use super::Settings;

    /// A queue made before per-queue result times (its creation arguments have four fields)
    /// opens with the manager's default; one made now keeps its own.
    #[test]
    fn settings_read_both_forms_of_creation_arguments() {
        let mut before = Vec::new();
        crate::wire::codec::encode_into(&((1u64, 2u32, 3u64, 4u64),), &mut before).unwrap();
        let read = Settings::from_args(&before).unwrap();
        assert_eq!(
            (
                read.lease_ms,
                read.max_attempts,
                read.backoff_base_ms,
                read.backoff_max_ms
            ),
            (1, 2, 3, 4)
        );
        assert_eq!(read.result_ttl_ms, None);
        let now = Settings {
            result_ttl_ms: Some(5),
            ..Settings::default()
        };
        let mut args = Vec::new();
        crate::wire::codec::encode_into(&(now,), &mut args).unwrap();
        assert_eq!(Settings::from_args(&args).unwrap(), now);
        assert!(Settings::from_args(&[1, 2, 3]).is_err());
    }
}
