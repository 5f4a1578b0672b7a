//! The client's side of `TaskQueue<T>`: pushes, leases (`Task<T>`) with ack, fail, extend and
//! release, dead letters and stats, over an `ObjectHandle`.
//!
//! A lease is tied to the connection it was taken on: if that connection closes (the worker
//! died), the manager returns the task at once. So the tasks of one `take` keep that
//! connection out of the pool until the last of them is acked, failed or dropped, and their
//! acks travel over it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{millis, type_tag};
use crate::client::{Client, Connection};
use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
use crate::fxhash::FxHashMap;
pub use crate::kinds::tasks::TaskStatus;
use crate::kinds::tasks::{Effect, Outcome, TaskKindClient};
use crate::store::Bytes;
use crate::store::tasks::{
    ACKED, Counts, DeadLetter as WireDeadLetter, Delivery, Failed, MAX_BATCH, Node, Parent,
    PushOptions as WirePush, SERVICE, Settings, UNKNOWN,
};
use crate::stub::ObjectHandle;

/// A task's id in its queue: unique for the queue's life, across manager restarts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

/// A task queue's settings, fixed by whoever creates it (see [`Named::tasks`](super::Named::tasks)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskQueueSettings {
    /// How long a taken task is leased before it is delivered again unless acked, failed or
    /// extended (default 30 s, like SQS's visibility timeout).
    pub lease_timeout: Duration,
    /// Deliveries a task gets before it goes to the dead letters (default 5).
    pub max_attempts: u32,
    /// The delay before the first retry (default 1 s); each further retry doubles it, with
    /// jitter (between half and all of the doubled delay).
    pub backoff: Duration,
    /// The longest delay between retries (default 5 min).
    pub max_backoff: Duration,
    /// How long a done task's record and result are kept for [`TaskQueue::status`] and
    /// [`TaskQueue::result`] (`None`, the default: the manager's
    /// [`result_ttl`](crate::ManagerBuilder::result_ttl), a day unless set, or on Redis a day;
    /// zero: not kept). Not on SQS, which keeps no finished tasks.
    pub result_ttl: Option<Duration>,
}

impl Default for TaskQueueSettings {
    fn default() -> Self {
        Settings::default().into()
    }
}

impl From<Settings> for TaskQueueSettings {
    fn from(s: Settings) -> Self {
        TaskQueueSettings {
            lease_timeout: Duration::from_millis(s.lease_ms),
            max_attempts: s.max_attempts,
            backoff: Duration::from_millis(s.backoff_base_ms),
            max_backoff: Duration::from_millis(s.backoff_max_ms),
            result_ttl: s.result_ttl_ms.map(Duration::from_millis),
        }
    }
}

impl From<TaskQueueSettings> for Settings {
    fn from(s: TaskQueueSettings) -> Self {
        Settings {
            lease_ms: millis(s.lease_timeout),
            max_attempts: s.max_attempts,
            backoff_base_ms: millis(s.backoff),
            backoff_max_ms: millis(s.max_backoff),
            result_ttl_ms: s.result_ttl.map(millis),
        }
    }
}

/// How one push differs from the queue's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// Not delivered before this much time has passed.
    pub delay: Duration,
    /// Deliveries before the dead letters, instead of the queue's setting.
    pub max_attempts: Option<u32>,
    /// While a task pushed with this key is not done (acked or purged), pushing another with
    /// it adds nothing and returns the first one's id.
    pub dedup_key: Option<String>,
    /// For a task pushed after others ([`TaskQueue::push_after_with`], a group's callback):
    /// run it even if some of them die, their reasons among its [`Task::inputs`] (Sidekiq's
    /// batch `complete` rather than `success`). Without it, the task dies with its parent.
    pub run_if_parents_die: bool,
}

impl PushOptions {
    fn wire(&self) -> WirePush {
        WirePush {
            delay_ms: millis(self.delay),
            max_attempts: self.max_attempts,
            dedup: self.dedup_key.clone(),
            run_if_parents_die: self.run_if_parents_die,
        }
    }
}

/// A chord pushed with [`TaskQueue::push_group`]: its members and the callback that runs once
/// all of them are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The callback's id: the group is finished when it is ([`TaskQueue::result`] on it
    /// waits for the whole group).
    pub id: TaskId,
    /// The members' ids, in the order they were given (the order of the callback's inputs).
    pub members: Vec<TaskId>,
}

/// A task of a [`TaskGraph`], named before it is pushed: a parent for the tasks added after
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GraphTask(u32);

/// What a task of a [`TaskGraph`] runs after: another task of the graph, or a task already
/// pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum After {
    /// A task added to the same graph before this one.
    Graph(GraphTask),
    /// A task already in the queue (or done within the result time-to-live).
    Task(TaskId),
}

impl From<GraphTask> for After {
    fn from(task: GraphTask) -> Self {
        After::Graph(task)
    }
}

impl From<TaskId> for After {
    fn from(id: TaskId) -> Self {
        After::Task(id)
    }
}

/// Tasks and what each runs after, pushed in one commit by [`TaskGraph::push`]: any shape of
/// groups, chords, chains and their nesting (Celery's canvas), whole or not at all. Made by
/// [`TaskQueue::graph`].
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
/// use monogusa::{After, GraphTask};
/// let jobs = client.tasks::<String>("jobs")?;
/// let mut graph = jobs.graph();
/// // Two chords, and a task that runs on both of their results.
/// let a: Vec<After> = ["a1", "a2"].iter().map(|t| graph.add(&t.to_string()).into()).collect();
/// let sum_a = graph.add_after(&a, &"sum a".to_string());
/// let b: Vec<After> = ["b1", "b2"].iter().map(|t| graph.add(&t.to_string()).into()).collect();
/// let sum_b = graph.add_after(&b, &"sum b".to_string());
/// let total: GraphTask = graph.add_after(&[sum_a.into(), sum_b.into()], &"total".to_string());
/// let ids = graph.push()?;
/// println!("the total is {}", ids[total.index()]);
/// # Ok(()) }
/// ```
pub struct TaskGraph<'q, T> {
    queue: &'q TaskQueue<T>,
    nodes: Vec<Node>,
    /// The first payload that did not encode (reported by `push`).
    error: Option<Error>,
}

impl<T> fmt::Debug for TaskGraph<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGraph")
            .field("tasks", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl GraphTask {
    /// Its place among the graph's tasks: the index of its id in what [`TaskGraph::push`]
    /// returns.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl<T: Serialize + DeserializeOwned> TaskGraph<'_, T> {
    /// Adds a task that runs as soon as it is pushed.
    pub fn add(&mut self, task: &T) -> GraphTask {
        self.add_with(&[], task, &PushOptions::default())
    }

    /// Adds a task that runs once every one of `after` is done; its inputs are their results,
    /// in this order.
    pub fn add_after(&mut self, after: &[After], task: &T) -> GraphTask {
        self.add_with(after, task, &PushOptions::default())
    }

    /// [`TaskGraph::add_after`] with options (a dedup key, its own attempts,
    /// [`PushOptions::run_if_parents_die`]).
    pub fn add_with(&mut self, after: &[After], task: &T, options: &PushOptions) -> GraphTask {
        let at = GraphTask(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        let payload = match Bytes::encode(task) {
            Ok(payload) => payload,
            Err(e) => {
                self.error.get_or_insert(e);
                Bytes(Vec::new())
            }
        };
        self.nodes.push(Node {
            payload,
            options: options.wire(),
            after: after
                .iter()
                .map(|a| match *a {
                    After::Graph(GraphTask(n)) => Parent::Node(n),
                    After::Task(TaskId(id)) => Parent::Task(id),
                })
                .collect(),
        });
        at
    }

    /// How many tasks it holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Pushes every task in one commit (at most 100,000, naming 400,000 parents in all); their
    /// ids, in the order they were added. An unknown parent or a full store pushes nothing.
    /// On the manager and Redis.
    pub fn push(self) -> Result<Vec<TaskId>> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let ids = self.queue.backend.push_graph(self.nodes)?;
        Ok(ids.into_iter().map(TaskId).collect())
    }
}

/// How a task ended, asked by its id ([`TaskQueue::result`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskResult<R> {
    /// Done, with its result if its handler gave one.
    Done(Option<R>),
    /// Dead, with the reasons of its failures, oldest first.
    Dead(Vec<String>),
    /// Not finished within the wait.
    Pending,
    /// Not known: never pushed, purged, or done longer ago than the result time-to-live.
    Unknown,
}

/// Counts of a queue's tasks by state, from [`TaskQueue::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TaskStats {
    /// Waiting to be taken.
    pub ready: u64,
    /// Waiting for their delay or a retry's backoff.
    pub delayed: u64,
    /// Taken and not yet acked or failed.
    pub leased: u64,
    /// In the dead letters.
    pub dead: u64,
    /// Acked since the queue was created.
    pub done: u64,
    /// How long the oldest ready task has waited since it was pushed.
    pub oldest_ready: Duration,
}

/// A task that used its last attempt, from [`TaskQueue::dead_letters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<T> {
    /// Its id (requeue it with [`TaskQueue::requeue`]).
    pub id: TaskId,
    /// How many times it was delivered.
    pub attempts: u32,
    /// When it was pushed.
    pub enqueued_at: SystemTime,
    /// Why each delivery failed, oldest first.
    pub reasons: Vec<String>,
    /// The task itself.
    pub payload: T,
}

/// What became of a failed task, from [`Task::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// It is delivered again, not before this time.
    At(SystemTime),
    /// It used its last attempt and is in the dead letters.
    Dead,
}

/// An outcome on the wire, its result decoded.
fn result_of<R: DeserializeOwned>(outcome: Outcome) -> Result<TaskResult<R>> {
    Ok(match outcome {
        Outcome::Done(None) => TaskResult::Done(None),
        Outcome::Done(Some(bytes)) => TaskResult::Done(Some(bytes.decode()?)),
        Outcome::Dead(reasons) => TaskResult::Dead(reasons),
        Outcome::Pending => TaskResult::Pending,
        Outcome::Unknown => TaskResult::Unknown,
    })
}

/// The one id of a push of one task.
fn first(ids: Vec<TaskId>) -> Result<TaskId> {
    ids.first()
        .copied()
        .ok_or_else(|| Error::Protocol("a push returned no id".into()))
}

fn time_of(unix_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(unix_ms)
}

/// What a backend without results says (SQS keeps no finished tasks).
fn no_results() -> Error {
    Error::Remote(RemoteError::new(
        RemoteErrorKind::Misuse,
        "this backend keeps no finished tasks: status by id, results and workflows need a \
         manager or Redis; nothing was applied",
    ))
}

/// `join` for a backend that cannot wait on its own: its counts every 50 ms.
#[cfg(any(feature = "redis", feature = "sqs"))]
pub(crate) fn join_by_polling(
    stats: impl Fn() -> Result<Counts>,
    timeout: Duration,
) -> Result<bool> {
    let until = std::time::Instant::now() + timeout;
    loop {
        let counts = stats()?;
        if counts.ready + counts.delayed + counts.leased == 0 {
            return Ok(true);
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// What a backend does with the leases of one take: the seam a task queue's backends (the
/// manager, Redis) implement, in encoded payloads and wire types, whatever `T` is.
pub(crate) trait LeaseOps: Send + Sync {
    /// Acks `(id, token)` leases; one status per lease (`ACKED` or not).
    fn ack(&self, leases: &[(u64, u64)]) -> Result<Vec<u8>>;
    /// Fails a lease: retried (when `retry` and attempts are left) or dead.
    fn fail(&self, id: u64, token: u64, reason: String, retry: bool) -> Result<Failed>;
    /// Acks a lease with its result (kept by the manager for the result time-to-live). A
    /// backend that keeps no results acks it and says the result was not kept.
    fn complete(&self, id: u64, token: u64, result: Bytes) -> Result<u8> {
        let _ = result;
        match self.ack(&[(id, token)])?.first() {
            Some(&ACKED) => Err(no_results()),
            other => Ok(other.copied().unwrap_or(UNKNOWN)),
        }
    }
    /// Acks a lease with its result and writes, in one commit (the manager and Redis).
    fn ack_with(&self, id: u64, token: u64, result: Bytes, writes: Vec<Write>) -> Result<u8> {
        let _ = (id, token, result, writes);
        Err(Error::Remote(RemoteError::new(
            RemoteErrorKind::Misuse,
            "an ack with writes (ack_with) needs a manager or Redis: this backend cannot commit them \
             together; nothing was applied",
        )))
    }
    /// Returns when the lease now ends (Unix ms).
    fn extend(&self, id: u64, token: u64, extra_ms: u64) -> Result<u64>;
    fn release(&self, id: u64, token: u64) -> Result<()>;
}

/// A task queue's backend: the manager's `TaskQueue` object, or another store.
pub(crate) trait TaskBackend: Send + Sync {
    /// Pushes encoded tasks (at most `MAX_BATCH`); their ids in order.
    fn push(&self, tasks: Vec<(Bytes, WirePush)>) -> Result<Vec<u64>>;
    /// Pushes a graph of encoded tasks in one commit; their ids in order.
    fn push_graph(&self, nodes: Vec<Node>) -> Result<Vec<u64>> {
        let _ = nodes;
        Err(no_results())
    }
    /// What task `id`'s parents ended with, in order.
    fn inputs(&self, id: u64) -> Result<Vec<(u64, Outcome)>> {
        let _ = id;
        Err(no_results())
    }
    /// Leases up to `n` tasks, waiting up to `timeout` for the first; the leases' operations.
    fn take(&self, n: u32, timeout: Duration) -> Result<(Vec<Delivery>, Arc<dyn LeaseOps>)>;
    fn stats(&self) -> Result<Counts>;
    /// Waits up to `timeout` until nothing is ready, delayed or leased; whether it drained.
    fn join(&self, timeout: Duration) -> Result<bool>;
    /// Where task `id` is.
    fn status(&self, id: u64) -> Result<TaskStatus> {
        let _ = id;
        Err(no_results())
    }
    /// How task `id` ended, waiting up to `timeout`.
    fn outcome(&self, id: u64, timeout: Duration) -> Result<Outcome> {
        let _ = (id, timeout);
        Err(no_results())
    }
    /// The outcomes of those of `ids` that have finished, waiting up to `timeout` for one.
    fn outcomes(&self, ids: Vec<u64>, timeout: Duration) -> Result<Vec<(u64, Outcome)>> {
        let _ = (ids, timeout);
        Err(no_results())
    }
    fn settings(&self) -> Result<Settings>;
    /// Dead letters after id `after`, at most `limit`, by id.
    fn dead(&self, after: u64, limit: u32) -> Result<Vec<WireDeadLetter>>;
    /// Requeues one dead letter (`Some(id)`) or all; how many.
    fn requeue(&self, id: Option<u64>) -> Result<u64>;
    fn purge_dead(&self) -> Result<u64>;
}

/// The manager's task queue, over its object handle.
struct ManagerTasks {
    handle: ObjectHandle,
}

impl TaskBackend for ManagerTasks {
    fn push_graph(&self, nodes: Vec<Node>) -> Result<Vec<u64>> {
        let pushed = self.stub().push_graph(nodes)?;
        Ok(pushed.into_iter().map(|(id, _)| id).collect())
    }

    fn inputs(&self, id: u64) -> Result<Vec<(u64, Outcome)>> {
        self.stub().inputs(id)
    }

    fn push(&self, tasks: Vec<(Bytes, WirePush)>) -> Result<Vec<u64>> {
        let pushed = self.stub().push(tasks)?;
        Ok(pushed.into_iter().map(|(id, _)| id).collect())
    }

    fn take(&self, n: u32, timeout: Duration) -> Result<(Vec<Delivery>, Arc<dyn LeaseOps>)> {
        let mut connection = None;
        let delivered: Result<Vec<Delivery>> =
            self.handle
                .call_on(&mut connection, "take", &(n, Some(millis(timeout))), None);
        let link = Arc::new(LeaseLink {
            handle: self.handle.clone(),
            connection: Mutex::new(connection),
        });
        Ok((delivered?, link))
    }

    fn stats(&self) -> Result<Counts> {
        self.stub().stats()
    }

    fn join(&self, timeout: Duration) -> Result<bool> {
        self.stub().join(Some(millis(timeout)))
    }

    fn status(&self, id: u64) -> Result<TaskStatus> {
        self.stub().status(id)
    }

    fn outcome(&self, id: u64, timeout: Duration) -> Result<Outcome> {
        self.stub().outcome(id, Some(millis(timeout)))
    }

    fn outcomes(&self, ids: Vec<u64>, timeout: Duration) -> Result<Vec<(u64, Outcome)>> {
        self.stub().outcomes(ids, Some(millis(timeout)))
    }

    fn settings(&self) -> Result<Settings> {
        self.stub().settings()
    }

    fn dead(&self, after: u64, limit: u32) -> Result<Vec<WireDeadLetter>> {
        self.stub().dead(after, limit)
    }

    fn requeue(&self, id: Option<u64>) -> Result<u64> {
        self.stub().requeue(id)
    }

    fn purge_dead(&self) -> Result<u64> {
        self.stub().purge_dead()
    }
}

impl ManagerTasks {
    /// The declaration's typed stub over this queue.
    fn stub(&self) -> TaskKindClient<&ObjectHandle> {
        TaskKindClient::from_handle(&self.handle)
    }
}

/// The connection a batch of leases was taken on, out of the pool until the last of its
/// tasks is done with it.
struct LeaseLink {
    handle: ObjectHandle,
    connection: Mutex<Option<Connection>>,
}

impl LeaseLink {
    fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R> {
        let mut connection = self.connection.lock();
        // A lost connection was replaced by none: the manager already returned its leases,
        // and the call (over a new connection) is told so.
        self.handle.call_on(&mut connection, method, args, None)
    }
}

/// The declaration's stub calls over the lease's own connection.
impl crate::stub::Calls for LeaseLink {
    fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R> {
        LeaseLink::call(self, method, args)
    }

    fn send<R: DeserializeOwned, A: Serialize>(&self, _: &str, _: &A) -> Result<crate::Pending<R>> {
        Err(Error::Config(
            "a lease's calls are not pipelined: they go over the connection that took it".into(),
        ))
    }
}

impl LeaseOps for LeaseLink {
    fn ack(&self, leases: &[(u64, u64)]) -> Result<Vec<u8>> {
        // By name, as declared: the stub would take an owned `Vec` of what is already a
        // slice that encodes the same (one copy per ack saved).
        self.call("ack", &(leases,))
    }

    fn ack_with(&self, id: u64, token: u64, result: Bytes, writes: Vec<Write>) -> Result<u8> {
        let effects = writes
            .into_iter()
            .map(Write::effect)
            .collect::<Result<Vec<Effect>>>()?;
        TaskKindClient::from_handle(self).ack_with(id, token, result, effects)
    }

    fn complete(&self, id: u64, token: u64, result: Bytes) -> Result<u8> {
        let statuses = TaskKindClient::from_handle(self).complete(vec![(id, token, result)])?;
        Ok(statuses.first().copied().unwrap_or(UNKNOWN))
    }

    fn fail(&self, id: u64, token: u64, reason: String, retry: bool) -> Result<Failed> {
        let stub = TaskKindClient::from_handle(self);
        if retry {
            stub.fail(id, token, reason)
        } else {
            stub.fail_permanently(id, token, reason)
                .map(|()| Failed::Dead)
        }
    }

    fn extend(&self, id: u64, token: u64, extra_ms: u64) -> Result<u64> {
        TaskKindClient::from_handle(self).extend(id, token, extra_ms)
    }

    fn release(&self, id: u64, token: u64) -> Result<()> {
        TaskKindClient::from_handle(self).release(id, token)
    }
}

impl Drop for LeaseLink {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.get_mut().take() {
            self.handle.client().give_back(connection);
        }
    }
}

/// Leases (id, token) taken together.
type LeaseGroup = (Arc<dyn LeaseOps>, Vec<(u64, u64)>);

/// A leased task, from [`TaskQueue::take`]: run it, then [`Task::ack`] or [`Task::fail`].
///
/// Delivery is **at least once**: a task whose lease expires (its worker stalled past the
/// queue's lease timeout without [`Task::extend`]) or whose worker's connection closed is
/// delivered again, possibly while the first worker still runs it; that worker's late `ack`
/// then fails with [`RemoteErrorKind::LeaseExpired`]. Make handlers idempotent, for example
/// by recording each task's id with its effect in one transaction, or by keying the effect on
/// the id.
///
/// A `Task` dropped without `ack` or `fail` goes back to the queue at once (its attempt
/// counts): a panicking handler loses nothing.
#[must_use = "a task dropped without ack goes back to the queue"]
pub struct Task<T> {
    id: u64,
    token: u64,
    attempt: u32,
    enqueued: u64,
    lease_until: u64,
    payload: T,
    link: Arc<dyn LeaseOps>,
    /// Its queue, to read its inputs.
    backend: Arc<dyn TaskBackend>,
    finished: bool,
}

impl<T: fmt::Debug> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

fn lease_over(id: u64) -> Error {
    Error::Remote(RemoteError::new(
        RemoteErrorKind::LeaseExpired,
        format!(
            "task {id}'s lease is over (it expired or was returned): it may be running elsewhere"
        ),
    ))
}

impl<T> Task<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        TaskId(self.id)
    }

    /// Which delivery this is: 1 the first time, 2 after one failed or expired lease, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the task was pushed.
    pub fn enqueued_at(&self) -> SystemTime {
        time_of(self.enqueued)
    }

    /// When the lease ends unless extended.
    pub fn lease_deadline(&self) -> SystemTime {
        time_of(self.lease_until)
    }

    /// The task's payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// What the tasks it ran after ended with, in the order they were named: for a group's
    /// callback its members' results (a chord), for a chain's step the step before's. Each is
    /// `Done` with its result, or `Dead` with its reasons (when the task runs even if its
    /// parents die). Empty for a task pushed without parents. On the manager and Redis.
    pub fn inputs<R: DeserializeOwned>(&self) -> Result<Vec<TaskResult<R>>> {
        self.backend
            .inputs(self.id)?
            .into_iter()
            .map(|(_, outcome)| result_of(outcome))
            .collect()
    }

    /// The task is done: it leaves the queue for good. Fails with `LeaseExpired` if the
    /// lease was over (the task may have run elsewhere too).
    pub fn ack(mut self) -> Result<()> {
        self.finished = true;
        let statuses = self.link.ack(&[(self.id, self.token)])?;
        match statuses.first() {
            Some(&ACKED) => Ok(()),
            _ => Err(lease_over(self.id)),
        }
    }

    /// The task is done, with `result`: it leaves the queue, and the manager keeps the result
    /// for the result time-to-live ([`TaskQueue::result`] reads it by the task's id). Fails
    /// with `LeaseExpired` if the lease was over; on SQS, which keeps no results, the task is
    /// acked and the error (`Misuse`) says its result was not kept.
    pub fn ack_with_result<R: Serialize>(self, result: &R) -> Result<()> {
        self.ack_with_encoded(Bytes::encode(result)?)
    }

    /// [`Task::ack_with_result`] of a result already encoded.
    pub(crate) fn ack_with_encoded(mut self, result: Bytes) -> Result<()> {
        self.finished = true;
        let status = match self.link.complete(self.id, self.token, result) {
            Ok(status) => status,
            // A result over the store's limits changed nothing: the task goes back (dropped
            // unfinished), rather than stay leased to nobody until its lease ends.
            Err(Error::Remote(e)) if e.kind() == RemoteErrorKind::LimitExceeded => {
                self.finished = false;
                return Err(Error::Remote(e));
            }
            Err(e) => return Err(e),
        };
        match status {
            ACKED => Ok(()),
            _ => Err(lease_over(self.id)),
        }
    }

    /// The task is done, and `build`'s writes are made in the same commit as its ack: adds
    /// to counters, a dict's keys, values, new tasks on this queue, its result. All of it is
    /// applied, or none of it: a lease that was over fails with `LeaseExpired` and writes
    /// nothing (the task may have run elsewhere; its effects are not doubled), and so does an
    /// object that is not the manager's counter, dict or value, a full store or an overflow
    /// (the task then goes back to the queue, its attempt counted). On the manager and Redis.
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
    /// let orders = client.tasks::<u64>("orders")?;
    /// let shipped = client.counter("shipped")?;
    /// let status = client.dict::<u64, String>("order-status")?;
    /// if let Some(task) = orders.take(std::time::Duration::from_secs(5))? {
    ///     let order = *task.payload();
    ///     task.ack_with(|tx| {
    ///         tx.add(&shipped, 1)?;
    ///         tx.insert(&status, &order, &"shipped".to_string())?;
    ///         tx.push(&(order + 1_000_000))?; // its invoice, as one more task
    ///         Ok(())
    ///     })?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn ack_with(mut self, build: impl FnOnce(&mut Transaction<T>) -> Result<()>) -> Result<()> {
        let mut tx = Transaction {
            writes: Vec::new(),
            result: Bytes(Vec::new()),
            _task: PhantomData,
        };
        build(&mut tx)?;
        self.finished = true;
        match self
            .link
            .ack_with(self.id, self.token, tx.result, tx.writes)
        {
            Ok(ACKED) => Ok(()),
            Ok(_) => Err(lease_over(self.id)),
            // Refused with nothing applied: the task goes back (dropped unfinished) rather
            // than stay leased to nobody until its lease ends. (A storage error says the ack
            // was applied in memory: the task is gone, there is nothing to give back.)
            Err(Error::Remote(e)) if e.kind() != RemoteErrorKind::Storage => {
                self.finished = false;
                Err(Error::Remote(e))
            }
            Err(e) => Err(e),
        }
    }

    /// The task failed for `reason`: delivered again after the queue's backoff, or moved to
    /// the dead letters (with every reason) if that was its last attempt.
    pub fn fail(mut self, reason: impl fmt::Display) -> Result<Retry> {
        self.finished = true;
        let failed = self
            .link
            .fail(self.id, self.token, reason.to_string(), true)?;
        Ok(match failed {
            Failed::RetryAt(at) => Retry::At(time_of(at)),
            Failed::Dead => Retry::Dead,
        })
    }

    /// The task failed for `reason` and no retry would fix it (bad input): it goes to the
    /// dead letters at once, with its reasons, whatever attempts it had left.
    pub fn fail_permanently(mut self, reason: impl fmt::Display) -> Result<()> {
        self.finished = true;
        self.link
            .fail(self.id, self.token, reason.to_string(), false)
            .map(drop)
    }

    /// Keeps the lease for `extra` from now (for long work: call it well before the lease
    /// ends). Fails with `LeaseExpired` if the lease is over already.
    pub fn extend(&mut self, extra: Duration) -> Result<()> {
        self.lease_until = self.link.extend(self.id, self.token, millis(extra))?;
        Ok(())
    }

    /// Gives the task back to the queue now, unfinished (the attempt counts): what dropping
    /// it does, with errors reported.
    pub fn release(mut self) -> Result<()> {
        self.finished = true;
        self.link.release(self.id, self.token)
    }

    /// A handle that can ack, fail or extend this task from another thread (for a
    /// background lease extender); the task itself still owns the lease.
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            token: self.token,
            link: Arc::clone(&self.link),
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = self.link.release(self.id, self.token)
        {
            log::debug!("returning an unfinished task: {e}");
        }
    }
}

/// The writes of an ack, made in its commit ([`Task::ack_with`]).
pub struct Transaction<T> {
    writes: Vec<Write>,
    result: Bytes,
    _task: PhantomData<fn(T)>,
}

/// One write of a [`Transaction`], on the object it names (each backend maps it to its own
/// objects: ids on the manager, keys on Redis).
pub(crate) enum Write {
    Add(super::Target, i64),
    Insert(super::Target, Bytes, Bytes),
    Remove(super::Target, Bytes),
    Set(super::Target, Bytes),
    Push(Bytes, WirePush),
}

impl Write {
    /// The manager's form: objects by their ids there.
    fn effect(self) -> Result<Effect> {
        Ok(match self {
            Write::Add(t, delta) => Effect::Add {
                counter: object_id(&t)?,
                delta,
            },
            Write::Insert(t, key, value) => Effect::Insert {
                dict: object_id(&t)?,
                key,
                value,
            },
            Write::Remove(t, key) => Effect::Remove {
                dict: object_id(&t)?,
                key,
            },
            Write::Set(t, new) => Effect::Set {
                value: object_id(&t)?,
                new,
            },
            Write::Push(payload, options) => Effect::Push { payload, options },
        })
    }
}

impl<T> fmt::Debug for Transaction<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

/// The manager's id of a proxy's object, or why an ack on the manager cannot write it.
fn object_id(target: &super::Target) -> Result<u64> {
    match target {
        super::Target::Manager(handle) => Ok(handle.id()),
        #[cfg(feature = "redis")]
        super::Target::Redis(_) => Err(Error::Remote(RemoteError::new(
            RemoteErrorKind::BadArguments,
            "an ack on the manager writes the manager's objects, not Redis's: nothing was applied",
        ))),
    }
}

impl<T: Serialize> Transaction<T> {
    /// Adds `delta` to `counter` (an error at the ack if it overflows).
    pub fn add(&mut self, counter: &super::Counter, delta: i64) -> Result<&mut Self> {
        self.writes.push(Write::Add(counter.handle.clone(), delta));
        Ok(self)
    }

    /// Sets `key` to `value` in `dict`.
    pub fn insert<K: Serialize, V: Serialize>(
        &mut self,
        dict: &super::Dict<K, V>,
        key: &K,
        value: &V,
    ) -> Result<&mut Self> {
        self.writes.push(Write::Insert(
            dict.handle.clone(),
            Bytes::encode(key)?,
            Bytes::encode(value)?,
        ));
        Ok(self)
    }

    /// Removes `key` from `dict`.
    pub fn remove<K: Serialize, V>(
        &mut self,
        dict: &super::Dict<K, V>,
        key: &K,
    ) -> Result<&mut Self> {
        self.writes
            .push(Write::Remove(dict.handle.clone(), Bytes::encode(key)?));
        Ok(self)
    }

    /// Sets `value` to `new`.
    pub fn set<V: Serialize>(&mut self, value: &super::Value<V>, new: &V) -> Result<&mut Self> {
        self.writes
            .push(Write::Set(value.handle.clone(), Bytes::encode(new)?));
        Ok(self)
    }

    /// Pushes a new task to the acked task's queue.
    pub fn push(&mut self, task: &T) -> Result<&mut Self> {
        self.push_with(task, &PushOptions::default())
    }

    /// Pushes a new task to the acked task's queue, with options.
    pub fn push_with(&mut self, task: &T, options: &PushOptions) -> Result<&mut Self> {
        self.writes
            .push(Write::Push(Bytes::encode(task)?, options.wire()));
        Ok(self)
    }

    /// Keeps `result` as the task's result ([`TaskQueue::result`]).
    pub fn result<R: Serialize>(&mut self, result: &R) -> Result<&mut Self> {
        self.result = Bytes::encode(result)?;
        Ok(self)
    }
}

/// Another handle on a task's lease, from [`Task::lease`]: to extend it from another thread
/// while the task runs.
#[derive(Clone)]
pub struct Lease {
    id: u64,
    token: u64,
    link: Arc<dyn LeaseOps>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("task", &self.id).finish()
    }
}

impl Lease {
    /// Keeps the lease for `extra` from now; returns when it now ends.
    pub fn extend(&self, extra: Duration) -> Result<SystemTime> {
        let until = self.link.extend(self.id, self.token, millis(extra))?;
        Ok(time_of(until))
    }
}

/// A durable task queue in the manager, opened by name with [`Client::tasks`]: pushed tasks
/// are leased to workers with [`TaskQueue::take`] and leave only when acked; failed ones are
/// retried with backoff and, out of attempts, kept as dead letters. With a manager
/// [`data_dir`](crate::ManagerBuilder::data_dir), it survives manager restarts.
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
/// let emails = client.tasks::<String>("emails")?;
/// emails.push(&"ada@example.com".to_string())?;
///
/// // In a worker:
/// while let Some(task) = emails.take(std::time::Duration::from_secs(5))? {
///     match send(task.payload()) {
///         Ok(()) => task.ack()?,
///         Err(e) => {
///             task.fail(e)?;
///         }
///     }
/// }
/// # Ok(()) }
/// # fn send(_: &str) -> Result<(), String> { Ok(()) }
/// ```
pub struct TaskQueue<T> {
    backend: Arc<dyn TaskBackend>,
    /// What it is, for `Debug`.
    what: String,
    /// The callbacks waiting for results ([`TaskQueue::on_result`]), shared by clones.
    watches: Arc<Watches>,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for TaskQueue<T> {
    fn clone(&self) -> Self {
        TaskQueue {
            backend: Arc::clone(&self.backend),
            what: self.what.clone(),
            watches: Arc::clone(&self.watches),
            _item: PhantomData,
        }
    }
}

/// A callback waiting for a task's outcome.
type Watch = Box<dyn FnOnce(Result<Outcome>) + Send>;

/// The callbacks of a queue's [`TaskQueue::on_result`], and whether its watcher thread runs
/// (one per queue while there is something to watch; it ends when there is not).
#[derive(Default)]
struct Watches {
    state: Mutex<(FxHashMap<u64, Vec<Watch>>, bool)>,
}

/// How long the watcher waits per call: a result registered meanwhile is looked for at the
/// next one.
const WATCH_SLICE: Duration = Duration::from_millis(200);

impl Watches {
    /// Adds `watch` for task `id`, starting the watcher if it is not running.
    fn add(self: &Arc<Self>, backend: &Arc<dyn TaskBackend>, id: u64, watch: Watch) -> Result<()> {
        let mut state = self.state.lock();
        state.0.entry(id).or_default().push(watch);
        if state.1 {
            return Ok(());
        }
        let (watches, backend) = (Arc::clone(self), Arc::clone(backend));
        std::thread::Builder::new()
            .name("monogusa-results".into())
            .spawn(move || watches.run(&*backend))
            .map_err(Error::Io)?;
        state.1 = true;
        Ok(())
    }

    /// The watcher: asks for the outcomes of every watched task until none is left.
    fn run(&self, backend: &dyn TaskBackend) {
        loop {
            let ids: Vec<u64> = {
                let mut state = self.state.lock();
                if state.0.is_empty() {
                    state.1 = false;
                    return;
                }
                state.0.keys().copied().take(MAX_BATCH).collect()
            };
            match backend.outcomes(ids, WATCH_SLICE) {
                Ok(found) => {
                    for (id, outcome) in found {
                        let watches = self.state.lock().0.remove(&id).unwrap_or_default();
                        for watch in watches {
                            watch(Ok(outcome.clone()));
                        }
                    }
                }
                // The manager is restarting, or the network hiccupped: try again.
                Err(Error::Io(_) | Error::ConnectionLost(_) | Error::Timeout(_)) => {
                    std::thread::sleep(WATCH_SLICE);
                }
                // Said no for good (a backend without results): every callback hears it.
                Err(e) => {
                    let all = std::mem::take(&mut self.state.lock().0);
                    let why = e.to_string();
                    for watch in all.into_values().flatten() {
                        watch(Err(Error::Remote(RemoteError::new(
                            RemoteErrorKind::Misuse,
                            why.clone(),
                        ))));
                    }
                }
            }
        }
    }
}

impl<T> fmt::Debug for TaskQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskQueue")
            .field("queue", &self.what)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> TaskQueue<T> {
    pub(crate) fn open(
        client: &Client,
        name: &str,
        settings: TaskQueueSettings,
        tag: Option<&str>,
    ) -> Result<Self> {
        let tag = tag.map_or_else(type_tag::<T>, str::to_string);
        let settings: Settings = settings.into();
        let handle = ObjectHandle::open_shared(client, SERVICE, name, &tag, &(settings,))?;
        Ok(TaskQueue::with_backend(
            Arc::new(ManagerTasks { handle }),
            format!("{name} at {}", client.address()),
        ))
    }

    /// A queue over another backend (Redis, say).
    pub(crate) fn with_backend(backend: Arc<dyn TaskBackend>, what: String) -> Self {
        TaskQueue {
            backend,
            what,
            watches: Arc::default(),
            _item: PhantomData,
        }
    }

    /// Adds a task; returns its id.
    pub fn push(&self, task: &T) -> Result<TaskId> {
        self.push_with(task, &PushOptions::default())
    }

    /// Adds a task with options (a delay, its own attempts, a dedup key); returns its id, or
    /// the id of the not-yet-done task that has the same dedup key.
    pub fn push_with(&self, task: &T, options: &PushOptions) -> Result<TaskId> {
        let wire = options.wire();
        let ids = self.backend.push(vec![(Bytes::encode(task)?, wire)])?;
        ids.first()
            .map(|&id| TaskId(id))
            .ok_or_else(|| Error::Protocol("a push returned no id".into()))
    }

    /// Adds a task that runs once every one of `parents` is done (RQ's `depends_on`): until
    /// then its status is `Waiting` (counted with the delayed tasks, so `join` waits for it).
    /// Its [`Task::inputs`] are the parents' results, in this order. If a parent dies, the
    /// task dies too, its reason naming the parent, instead of waiting forever (or runs
    /// anyway: [`PushOptions::run_if_parents_die`]). A parent done already counts as done;
    /// one the manager does not know (never pushed, purged, or done longer ago than the result
    /// time-to-live) is a `BadArguments` error, and nothing is pushed. A parent's ack and the
    /// task's release are one commit: exact, across a crash too. On the manager and Redis.
    pub fn push_after(&self, parents: &[TaskId], task: &T) -> Result<TaskId> {
        self.push_after_with(parents, task, &PushOptions::default())
    }

    /// [`TaskQueue::push_after`] with options.
    pub fn push_after_with(
        &self,
        parents: &[TaskId],
        task: &T,
        options: &PushOptions,
    ) -> Result<TaskId> {
        let after: Vec<After> = parents.iter().map(|&p| After::Task(p)).collect();
        let mut graph = self.graph();
        graph.add_with(&after, task, options);
        first(graph.push()?)
    }

    /// A graph of tasks to push in one commit ([`TaskGraph`]).
    pub fn graph(&self) -> TaskGraph<'_, T> {
        TaskGraph {
            queue: self,
            nodes: Vec::new(),
            error: None,
        }
    }

    /// Pushes `members` and `callback` in one commit: the callback runs once every member is
    /// done, its [`Task::inputs`] their results in this order (a chord: Celery's `chord`,
    /// Sidekiq's batch callback). Exactly once: the last member's ack and the callback's
    /// release are one commit, so it never runs early, twice or never, across a crash too.
    /// If a member dies the callback dies with it, unless pushed with
    /// [`PushOptions::run_if_parents_die`] ([`TaskQueue::push_group_with`]). At most 99,999
    /// members (a graph's limit). On the manager and Redis.
    pub fn push_group<'a>(
        &self,
        members: impl IntoIterator<Item = &'a T>,
        callback: &T,
    ) -> Result<Group>
    where
        T: 'a,
    {
        self.push_group_with(members, callback, &PushOptions::default())
    }

    /// [`TaskQueue::push_group`] with the callback's options.
    pub fn push_group_with<'a>(
        &self,
        members: impl IntoIterator<Item = &'a T>,
        callback: &T,
        options: &PushOptions,
    ) -> Result<Group>
    where
        T: 'a,
    {
        let mut graph = self.graph();
        let after: Vec<After> = members.into_iter().map(|m| graph.add(m).into()).collect();
        graph.add_with(&after, callback, options);
        let mut ids = graph.push()?;
        let id = ids
            .pop()
            .ok_or_else(|| Error::Protocol("a push returned no id".into()))?;
        Ok(Group { id, members: ids })
    }

    /// Pushes `steps` in one commit, each to run once the one before is done, with its
    /// result as the step's only [`Task::inputs`] (Celery's `chain`). A step that dies takes
    /// the rest with it. Their ids in order; the last one's result is the chain's.
    pub fn push_chain<'a>(&self, steps: impl IntoIterator<Item = &'a T>) -> Result<Vec<TaskId>>
    where
        T: 'a,
    {
        let mut graph = self.graph();
        let mut before: Option<GraphTask> = None;
        for step in steps {
            let after: Vec<After> = before.into_iter().map(After::Graph).collect();
            before = Some(graph.add_after(&after, step));
        }
        graph.push()
    }

    /// Adds many tasks in few round trips; returns their ids in order. If it fails part way
    /// (a store limit), the tasks before the failing batch are pushed.
    pub fn push_many<'a>(&self, tasks: impl IntoIterator<Item = &'a T>) -> Result<Vec<TaskId>>
    where
        T: 'a,
    {
        let mut ids = Vec::new();
        let mut batch = Vec::new();
        let mut flush = |batch: &mut Vec<(Bytes, WirePush)>| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let pushed = self.backend.push(std::mem::take(batch))?;
            ids.extend(pushed.into_iter().map(TaskId));
            Ok(())
        };
        for task in tasks {
            batch.push((Bytes::encode(task)?, WirePush::default()));
            if batch.len() == MAX_BATCH {
                flush(&mut batch)?;
            }
        }
        flush(&mut batch)?;
        Ok(ids)
    }

    /// Leases the oldest ready task, waiting up to `timeout` for one; `None` if none came.
    pub fn take(&self, timeout: Duration) -> Result<Option<Task<T>>> {
        Ok(self.take_many(1, timeout)?.pop())
    }

    /// Leases up to `n` ready tasks (at least one, unless `timeout` passes first).
    pub fn take_many(&self, n: usize, timeout: Duration) -> Result<Vec<Task<T>>> {
        let n = u32::try_from(n.clamp(1, MAX_BATCH)).expect("bounded");
        let (delivered, link) = self.backend.take(n, timeout)?;
        let mut tasks = Vec::new();
        for delivery in delivered {
            match delivery.payload.decode::<T>() {
                Ok(payload) => tasks.push(Task {
                    id: delivery.id,
                    token: delivery.token,
                    attempt: delivery.attempt,
                    enqueued: delivery.enqueued,
                    lease_until: delivery.lease_until,
                    payload,
                    link: Arc::clone(&link),
                    backend: Arc::clone(&self.backend),
                    finished: false,
                }),
                Err(e) => {
                    // Not ours to run: it goes on to its retries and dead letters, where
                    // someone can look at it.
                    log::warn!("task {} does not decode: {e}", delivery.id);
                    let _ = link.fail(
                        delivery.id,
                        delivery.token,
                        format!("its payload does not decode: {e}"),
                        true, // another worker, built with the right type, may decode it
                    );
                }
            }
        }
        Ok(tasks)
    }

    /// Acks many tasks in one round trip per connection they were taken on. Returns the ids
    /// of those whose lease was over (they may have run elsewhere too); the rest are done.
    pub fn ack_many(&self, tasks: impl IntoIterator<Item = Task<T>>) -> Result<Vec<TaskId>> {
        let mut groups: Vec<LeaseGroup> = Vec::new();
        for mut task in tasks {
            task.finished = true;
            let lease = (task.id, task.token);
            match groups
                .iter_mut()
                .find(|(link, _)| Arc::ptr_eq(link, &task.link))
            {
                Some((_, leases)) => leases.push(lease),
                None => groups.push((Arc::clone(&task.link), vec![lease])),
            }
        }
        let mut refused = Vec::new();
        for (link, leases) in groups {
            for chunk in leases.chunks(MAX_BATCH) {
                let statuses = link.ack(chunk)?;
                for (&(id, _), status) in chunk.iter().zip(statuses) {
                    if status != ACKED {
                        refused.push(TaskId(id));
                    }
                }
            }
        }
        Ok(refused)
    }

    /// Waits up to `timeout` until the queue has drained: no task ready, delayed or leased
    /// (done and dead ones do not count). True if it did, false if the time ran out. On Redis
    /// and SQS it looks every 50 ms (on SQS, at counts SQS calls approximate).
    pub fn join(&self, timeout: Duration) -> Result<bool> {
        self.backend.join(timeout)
    }

    /// Where task `id` is: ready, delayed, leased (with its attempt), done (for the result
    /// time-to-live, a day by default), dead, or unknown. On the manager and Redis.
    pub fn status(&self, id: TaskId) -> Result<TaskStatus> {
        self.backend.status(id.0)
    }

    /// Task `id`'s result, waiting up to `timeout` for it to finish: `Done` with what its
    /// handler returned (`Task::ack_with_result`, or `Worker::run`'s handler's value; `None`
    /// after a plain ack), `Dead` with its failures' reasons, `Pending` if the time ran out,
    /// `Unknown` if the manager does not know the task (or its result expired). On the
    /// manager and Redis (which is asked every 50 ms).
    pub fn result<R: DeserializeOwned>(
        &self,
        id: TaskId,
        timeout: Duration,
    ) -> Result<TaskResult<R>> {
        result_of(self.backend.outcome(id.0, timeout)?)
    }

    /// Calls `callback` with task `id`'s result once it has finished (done or dead), or at
    /// once if it has, or is not known; and returns at once. One thread per queue watches
    /// every such task in a few calls a second, however many there are; callbacks run on it
    /// one at a time, so a callback should be quick (hand long work to a thread or a
    /// channel). A manager that restarts meanwhile is waited for. On the manager and
    /// Redis (on SQS the callback gets a `Misuse` error).
    ///
    /// ```no_run
    /// # fn main() -> monogusa::Result<()> {
    /// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
    /// let jobs = client.tasks::<String>("thumbnails")?;
    /// let id = jobs.push(&"cat.jpg".to_string())?;
    /// jobs.on_result::<String>(id, |result| println!("thumbnail: {result:?}"))?;
    /// # Ok(()) }
    /// ```
    pub fn on_result<R: DeserializeOwned + 'static>(
        &self,
        id: TaskId,
        callback: impl FnOnce(Result<TaskResult<R>>) + Send + 'static,
    ) -> Result<()> {
        let watch: Watch = Box::new(move |outcome: Result<Outcome>| {
            callback(outcome.and_then(result_of::<R>));
        });
        self.watches.add(&self.backend, id.0, watch)
    }

    /// Counts of the queue's tasks by state.
    pub fn stats(&self) -> Result<TaskStats> {
        let counts = self.backend.stats()?;
        Ok(TaskStats {
            ready: counts.ready,
            delayed: counts.delayed,
            leased: counts.leased,
            dead: counts.dead,
            done: counts.done,
            oldest_ready: Duration::from_millis(counts.oldest_ready_ms),
        })
    }

    /// The queue's settings (those it was created with).
    pub fn settings(&self) -> Result<TaskQueueSettings> {
        let settings = self.backend.settings()?;
        Ok(settings.into())
    }

    /// The dead letters, oldest first, with why each delivery failed.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter<T>>> {
        let mut letters = Vec::new();
        let mut after = 0;
        loop {
            let page = self.backend.dead(after, 1000)?;
            let full = page.len() == 1000;
            for letter in page {
                after = letter.id;
                letters.push(DeadLetter {
                    id: TaskId(letter.id),
                    attempts: letter.attempts,
                    enqueued_at: time_of(letter.enqueued),
                    reasons: letter.reasons,
                    payload: letter.payload.decode()?,
                });
            }
            if !full {
                return Ok(letters);
            }
        }
    }

    /// Brings dead letter `id` back as a fresh task (attempts reset); false if it is not a
    /// dead letter.
    pub fn requeue(&self, id: TaskId) -> Result<bool> {
        let n = self.backend.requeue(Some(id.0))?;
        Ok(n == 1)
    }

    /// Brings every dead letter back; returns how many.
    pub fn requeue_all(&self) -> Result<u64> {
        self.backend.requeue(None)
    }

    /// Forgets every dead letter; returns how many.
    pub fn purge_dead(&self) -> Result<u64> {
        self.backend.purge_dead()
    }
}
