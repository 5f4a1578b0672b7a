//! The manager's side of `TaskQueue<T>`: durable-ready tasks with leases, retries with
//! backoff and dead letters (the client's side is in `proxies::tasks`). The state machine is
//! in `book`; this file gives it a clock, a lock, waiting, the store's budget and a journal.
//!
//! Kept as one entry per task (key: its id, big-endian; value: the task, encoded) and one
//! for the counters (the empty key): every change to a task rewrites its entry, in the same
//! journal batch as the change that caused it.

mod book;
mod transaction;

#[cfg(feature = "http")]
pub(crate) use crate::kinds::tasks::DURATION_BOUNDS_MS;
pub(crate) use crate::kinds::tasks::{
    ACKED, Counts, DeadLetter, Delivery, EXPIRED, Failed, Node, Parent, PushOptions, RunMetrics,
    SERVICE, Settings, TaskKindServer, UNKNOWN,
};

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::backend::Written;
use super::budget::{Budget, Charged};
use super::journal::Change;
use super::waiting::{deadline, shutting_down};
use super::{Bytes, Entries, Persist};
use crate::clock::{Clock, Wake};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::kinds::tasks::TaskKind;
use crate::kinds::tasks::{Outcome, TaskStatus};
use crate::service::{Caller, Hooks};
use crate::wire::codec;
use book::{Book, Finished, LeaseError, Task};

/// What a finished record's row begins with, in the row its task had: a task's encoding begins
/// with its payload's length, which is never `u64::MAX`.
const FINISHED: [u8; 8] = [0xff; 8];

/// The byte between a task's id and a slot's index in the key of one of its inputs (the
/// inputs of a task pushed after others: one row each, so a parent's ack writes one small
/// row per task waiting for it, however many parents that task has).
const INPUT_KEY: u8 = b'i';

/// The key of input `at` of task `id`.
fn input_key(id: u64, at: u32) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8] = INPUT_KEY;
    key[9..].copy_from_slice(&at.to_be_bytes());
    key
}

/// Acks lease `(id, token)` with `result`: [`ACKED`], [`EXPIRED`] or [`UNKNOWN`]. The
/// finished record (kept for the result time-to-live) is charged before the task leaves, so a
/// full store refuses the ack rather than keeping more than it may.
fn settle(
    inner: &mut Inner,
    id: u64,
    token: u64,
    result: Option<Bytes>,
    now: u64,
) -> Result<u8, RemoteError> {
    let Some(payload) = inner.book.task(id).map(|t| t.payload.0.len()) else {
        return Ok(UNKNOWN);
    };
    let kept = inner.book.result_ttl_ms > 0;
    let record = record_size(result.as_ref());
    if let Some(result) = &result {
        // A result is an item like any other: the per-item limit holds.
        inner.charged.budget().cost_of(result)?;
    }
    // Each task waiting for this one gets a copy of the result: there must be room for them
    // (charged with the book's other inputs once the ack is in).
    let copies =
        inner.book.dependants_of(id) as u64 * result.as_ref().map_or(0, |r| r.0.len() as u64);
    if copies > 0 {
        inner.charged.take_len(copies)?;
        inner.charged.give_len(copies);
    }
    if kept {
        inner.charged.take_len(record)?;
    }
    match inner.book.complete(id, token, result, now) {
        Ok(()) => {
            inner.charged.give_item(payload);
            Ok(ACKED)
        }
        Err(e) => {
            if kept {
                inner.charged.give_len(record);
            }
            Ok(match e {
                LeaseError::Expired => EXPIRED,
                LeaseError::Unknown => UNKNOWN,
            })
        }
    }
}

/// How task `id` ended, if it has: done (with its result), dead (with its reasons), or not
/// known.
fn outcome_of(book: &Book, id: u64) -> Option<Outcome> {
    match book.status(id) {
        TaskStatus::Done => Some(Outcome::Done(
            book.finished(id).and_then(|f| f.result.clone()),
        )),
        TaskStatus::Dead => Some(Outcome::Dead(
            book.task(id).map(|t| t.reasons.clone()).unwrap_or_default(),
        )),
        TaskStatus::Unknown => Some(Outcome::Unknown),
        _ => None,
    }
}

/// Forgets the finished records past the result time-to-live, refunding what they held
/// (their removal is written with the next change).
fn expire(inner: &mut Inner, now: u64) {
    for gone in inner.book.expire_finished(now) {
        inner.charged.give_len(finished_size(&gone));
    }
}

/// What a finished record is charged to the store's budget.
fn finished_size(finished: &Finished) -> u64 {
    record_size(finished.result.as_ref())
}

/// What a finished record with `result` is charged: its bookkeeping and the result's bytes.
fn record_size(result: Option<&Bytes>) -> u64 {
    64 + result.map_or(0, |r| r.0.len() as u64)
}

/// The most tasks one `take` delivers, or one `push` adds.
pub(crate) const MAX_BATCH: usize = 10_000;

/// The most tasks one graph (`push_graph`: a chord, a chain, ...) adds: its tasks are checked
/// and pushed in one commit, so it is bounded like a batch, more loosely.
pub(crate) const MAX_GRAPH: usize = 100_000;

/// The most parents the tasks of one graph name in all.
const MAX_EDGES: usize = 4 * MAX_GRAPH;

/// Refuses a graph over [`MAX_GRAPH`] tasks or [`MAX_EDGES`] parents (on every backend that
/// pushes one in one step); its number of parents.
pub(crate) fn check_graph(nodes: &[Node]) -> Result<usize, RemoteError> {
    let edges: usize = nodes.iter().map(|n| n.after.len()).sum();
    if nodes.len() > MAX_GRAPH || edges > MAX_EDGES {
        return Err(RemoteError::new(
            RemoteErrorKind::LimitExceeded,
            format!("at most {MAX_GRAPH} tasks and {MAX_EDGES} parents in all per graph"),
        ));
    }
    Ok(edges)
}

/// A failure reason is cut to this many bytes: reasons are for people, and kept per attempt.
const MAX_REASON: usize = 4096;

/// How often a blocked `take` wakes to check that its caller is still there.
const CHECK_CALLER_EVERY: Duration = Duration::from_millis(100);

struct Inner {
    book: Book,
    /// What the payloads cost the store's budget.
    charged: Charged,
    /// What of `charged` is for the book's inputs (`Book::input_bytes` when last counted).
    inputs_charged: u64,
    closing: bool,
}

impl Inner {
    /// Checks there is room for `count` more tasks and charges their `payloads` together:
    /// all or none. What was charged (to refund if they are not pushed after all).
    fn charge_tasks<'a>(
        &mut self,
        payloads: impl Iterator<Item = &'a Bytes>,
        count: usize,
    ) -> Result<u64, RemoteError> {
        let budget = self.charged.budget();
        budget.check_len(self.book.len() + count, "task queue")?;
        let mut cost = 0;
        for payload in payloads {
            cost += budget.cost_of(payload)?;
        }
        self.charged.take_len(cost)?;
        Ok(cost)
    }

    /// Charges or refunds the change in what the inputs hold. Charged even past the budget:
    /// the change is made (a parent's death cannot be refused); what could be refused (a
    /// result's copies, a push's slots) was checked before.
    fn count_inputs(&mut self) {
        let now = self.book.input_bytes;
        if now == self.inputs_charged {
            return;
        }
        if now > self.inputs_charged {
            self.charged.force_len(now - self.inputs_charged);
        } else {
            self.charged.give_len(self.inputs_charged - now);
        }
        self.inputs_charged = now;
    }
}

/// The manager's side of one task queue.
pub(crate) struct SharedTasks {
    state: Mutex<Inner>,
    /// What blocked calls wait on (shared with a test clock, which wakes them when it moves).
    signals: Arc<Signals>,
    persist: Persist,
    /// The time, as the book counts it: Unix milliseconds of the manager's clock (tasks
    /// outlive the process, so wall time, not a monotonic one).
    clock: Clock,
}

/// What a queue's blocked calls wait on.
#[derive(Default)]
struct Signals {
    /// Signalled when a task may have become ready.
    available: Condvar,
    /// Signalled after every change, for `join` and results (which wait for tasks to end).
    settled: Condvar,
}

impl Wake for Signals {
    fn wake(&self) {
        self.available.notify_all();
        self.settled.notify_all();
    }
}

fn lease_error(error: LeaseError, id: u64) -> RemoteError {
    match error {
        LeaseError::Expired => RemoteError::new(
            RemoteErrorKind::LeaseExpired,
            format!(
                "task {id}'s lease is over (it expired or was returned): it may be running elsewhere"
            ),
        ),
        LeaseError::Unknown => RemoteError::new(
            RemoteErrorKind::LeaseExpired,
            format!("task {id} is not in the queue (acknowledged already, or purged)"),
        ),
    }
}

fn bad_entry() -> RemoteError {
    super::bad_entry(SERVICE)
}

fn check_settings(settings: &Settings) -> Result<(), RemoteError> {
    let bad = |why: &str| Err(RemoteError::new(RemoteErrorKind::BadArguments, why));
    if settings.lease_ms == 0 {
        return bad("a task queue's lease timeout must be positive");
    }
    if settings.max_attempts == 0 {
        return bad("a task queue needs at least 1 attempt per task");
    }
    if settings.backoff_max_ms < settings.backoff_base_ms {
        return bad("a task queue's longest backoff is shorter than its first");
    }
    Ok(())
}

impl SharedTasks {
    /// A queue with `settings`, holding what was stored (`entries`) if restored.
    pub(crate) fn new(
        settings: Settings,
        budget: Arc<Budget>,
        persist: Persist,
        entries: Entries,
    ) -> Result<Self, RemoteError> {
        check_settings(&settings)?;
        let clock = budget.limits.clock.clone();
        let mut seed = [0u8; 4];
        let _ = getrandom::fill(&mut seed);
        let result_ttl_ms = settings
            .result_ttl_ms
            .unwrap_or(budget.limits.result_ttl.as_millis() as u64);
        let mut inner = Inner {
            book: Book::new(settings, u64::from(u32::from_le_bytes(seed))),
            charged: Charged::new(budget),
            inputs_charged: 0,
            closing: false,
        };
        inner.book.result_ttl_ms = result_ttl_ms;
        inner.book.exact_time = clock.is_test();
        for (key, value) in entries {
            if key.is_empty() {
                let (next_id, done): (u64, u64) =
                    codec::decode_exact(&value).map_err(|_| bad_entry())?;
                inner.book.next_id = inner.book.next_id.max(next_id);
                inner.book.done = done;
                continue;
            }
            if key.len() == 13 && key[8] == INPUT_KEY {
                let id = u64::from_be_bytes(key[..8].try_into().map_err(|_| bad_entry())?);
                let at = u32::from_be_bytes(key[9..].try_into().map_err(|_| bad_entry())?);
                // A slot past any graph's parents is damage: refused, not allocated for.
                if at as usize >= MAX_EDGES {
                    return Err(bad_entry());
                }
                let (parent, run_anyway, outcome): (u64, bool, Outcome) =
                    codec::decode_exact(&value).map_err(|_| bad_entry())?;
                inner
                    .book
                    .restore_input(id, at, parent, run_anyway, outcome);
                continue;
            }
            let id = u64::from_be_bytes(key.as_slice().try_into().map_err(|_| bad_entry())?);
            if let Some(record) = value.strip_prefix(FINISHED.as_slice()) {
                let finished: Finished = codec::decode_exact(record).map_err(|_| bad_entry())?;
                inner.charged.take_len(finished_size(&finished))?;
                inner.book.restore_finished(id, finished);
                continue;
            }
            let task: Task = codec::decode_exact(&value).map_err(|_| bad_entry())?;
            inner.charged.take(&task.payload)?;
            inner.book.restore(id, task);
        }
        inner.book.restored();
        inner.count_inputs();
        // What restoring changed (leases back to ready) is written with the next change.
        let signals = Arc::new(Signals::default());
        let waker: Arc<dyn Wake> = signals.clone();
        clock.on_advance(Arc::downgrade(&waker));
        Ok(SharedTasks {
            state: Mutex::new(inner),
            signals,
            persist,
            clock,
        })
    }

    fn state(&self) -> MutexGuard<'_, Inner> {
        self.state.lock()
    }

    /// The time on the manager's clock (Unix ms).
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Records every task the book changed since the last record, as it is now.
    fn keep(&self, inner: &mut Inner) -> Written<'_> {
        self.keep_with(inner, Vec::new())
    }

    /// [`SharedTasks::keep`], with other objects' changes in the same record (a
    /// transaction's).
    fn keep_with(&self, inner: &mut Inner, others: Vec<Change>) -> Written<'_> {
        inner.count_inputs();
        if !self.persist.is_kept() {
            // In memory nothing reads what was touched: do not let it pile up.
            inner.book.forget_touched();
            return Written::nothing();
        }
        let (touched, meta) = inner.book.take_touched();
        let finished = inner.book.take_touched_finished();
        let inputs = inner.book.take_touched_inputs();
        let book = &inner.book;
        self.persist.record(|object| {
            let mut changes = others;
            changes.reserve(touched.len() + 1);
            // A task done takes its own row over as its finished record: an ack writes one
            // row, as it did before results were kept.
            let record = |id: u64, changes: &mut Vec<Change>| {
                let key = id.to_be_bytes();
                changes.push(match (book.task(id), book.finished(id)) {
                    (Some(task), _) => {
                        let mut value = Vec::new();
                        codec::encode_into(task, &mut value).expect("a task encodes");
                        Change::put(object, key, value)
                    }
                    (None, Some(finished)) => {
                        let mut value = FINISHED.to_vec();
                        codec::encode_into(finished, &mut value).expect("a record encodes");
                        Change::put(object, key, value)
                    }
                    (None, None) => Change::delete(object, key),
                });
            };
            for &id in &touched {
                record(id, &mut changes);
            }
            for id in finished {
                if touched.binary_search(&id).is_err() {
                    record(id, &mut changes);
                }
            }
            // A task's inputs, each in a row beside its own.
            for (id, at) in inputs {
                let key = input_key(id, at);
                let slot = book.inputs(id).and_then(|i| {
                    i.parents
                        .get(at as usize)
                        .map(|s| (s, i.run_if_parents_die))
                });
                changes.push(match slot {
                    Some(((parent, outcome), run_anyway)) => {
                        let mut value = Vec::new();
                        codec::encode_into(&(parent, run_anyway, outcome), &mut value)
                            .expect("an input encodes");
                        Change::put(object, key, value)
                    }
                    None => Change::delete(object, key),
                });
            }
            if meta {
                let mut value = Vec::new();
                codec::encode_into(&(book.next_id, book.done), &mut value)
                    .expect("two integers encode");
                changes.push(Change::put(object, [], value));
            }
            changes
        })
    }

    /// Runs `change` on the book, records what it touched, and waits (outside the lock)
    /// until that is durable; then gives its result.
    fn mutate<R>(
        &self,
        change: impl FnOnce(&mut Inner, u64) -> Result<R, RemoteError>,
    ) -> Result<R, RemoteError> {
        let mut inner = self.state();
        let now = self.now();
        expire(&mut inner, now);
        let result = change(&mut inner, now);
        let written = self.keep(&mut inner);
        drop(inner);
        self.signals.settled.notify_all(); // a join may be over (no waiter: one atomic load)
        written.wait()?;
        result
    }
}

impl SharedTasks {
    /// Waits up to `timeout_ms` (forever if `None`) until `ready` gives something, looking
    /// after every change and at least every [`CHECK_CALLER_EVERY`] (leases that run out and
    /// delayed tasks that come due change nothing by a call); `None` if the time ran out.
    fn wait_for<R>(
        &self,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
        mut ready: impl FnMut(&mut Inner, u64) -> Option<R>,
    ) -> Result<Option<R>, RemoteError> {
        let give_up = deadline(timeout_ms);
        let mut inner = self.state();
        loop {
            if inner.closing {
                return Err(shutting_down("task queue"));
            }
            let now = self.now();
            inner.book.promote(now);
            expire(&mut inner, now);
            if let Some(found) = ready(&mut inner, now) {
                return Ok(Some(found));
            }
            if caller.is_gone() {
                return Err(caller_gone());
            }
            let mut slice = CHECK_CALLER_EVERY;
            if let Some(give_up) = give_up {
                let left = give_up.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                slice = slice.min(left);
            }
            self.signals.settled.wait_for(&mut inner, slice);
        }
    }

    /// A failed lease: retried (if `retry` and attempts are left) or dead.
    fn failed(
        &self,
        id: u64,
        token: u64,
        mut reason: String,
        retry: bool,
    ) -> Result<Failed, RemoteError> {
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        self.mutate(|inner, now| {
            let failed = inner
                .book
                .fail(id, token, reason, retry, now)
                .map_err(|e| lease_error(e, id))?;
            self.signals.available.notify_all(); // a blocked take recomputes its wake-up
            Ok(failed)
        })
    }
}

impl TaskKind for SharedTasks {
    fn push(&self, tasks: Vec<(Bytes, PushOptions)>) -> Result<Vec<(u64, bool)>, RemoteError> {
        if tasks.len() > MAX_BATCH {
            return Err(RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                format!("at most {MAX_BATCH} tasks per push"),
            ));
        }
        self.mutate(|inner, now| {
            let mut ids = Vec::with_capacity(tasks.len());
            for (payload, options) in tasks {
                // Refused whole at the limit: the tasks before it are pushed, this one is not.
                inner
                    .charged
                    .budget()
                    .check_len(inner.book.len() + 1, "task queue")?;
                inner.charged.take(&payload)?;
                let len = payload.0.len();
                let (id, new) = inner.book.push(payload, options, now);
                if !new {
                    inner.charged.give_item(len);
                }
                ids.push((id, new));
            }
            self.signals.available.notify_all();
            Ok(ids)
        })
    }

    fn push_after(
        &self,
        parents: Vec<u64>,
        tasks: Vec<(Bytes, PushOptions)>,
    ) -> Result<Vec<(u64, bool)>, RemoteError> {
        if parents.len() > MAX_BATCH {
            return Err(RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                format!("at most {MAX_BATCH} parents per push"),
            ));
        }
        let after: Vec<Parent> = parents.into_iter().map(Parent::Task).collect();
        self.push_graph(
            tasks
                .into_iter()
                .map(|(payload, options)| Node {
                    payload,
                    options,
                    after: after.clone(),
                })
                .collect(),
        )
    }

    fn push_graph(&self, nodes: Vec<Node>) -> Result<Vec<(u64, bool)>, RemoteError> {
        let bad = |why: String| Err(RemoteError::new(RemoteErrorKind::BadArguments, why));
        let edges = check_graph(&nodes)?;
        for (at, node) in nodes.iter().enumerate() {
            if let Some(Parent::Node(later)) = node
                .after
                .iter()
                .find(|p| matches!(p, Parent::Node(n) if *n as usize >= at))
            {
                return bad(format!(
                    "task {at} of the graph runs after task {later}, which is not before it: \
                     nothing was pushed"
                ));
            }
        }
        self.mutate(|inner, now| {
            // Everything checked before anything is pushed: a graph is pushed whole or not
            // at all (a chord's members never run without their callback).
            if let Some(unknown) = nodes.iter().flat_map(|n| &n.after).find_map(|p| match p {
                Parent::Task(id) if inner.book.status(*id) == TaskStatus::Unknown => Some(*id),
                _ => None,
            }) {
                return bad(format!(
                    "task {unknown} is not known (never pushed, purged, or done longer ago \
                     than the result time-to-live): nothing was pushed"
                ));
            }
            inner.charged.budget().check_len(
                inner.book.input_entries() + edges,
                "task queue's list of dependencies",
            )?;
            let cost = inner.charge_tasks(nodes.iter().map(|n| &n.payload), nodes.len())?;
            // Room for the inputs' own bookkeeping, which `count_inputs` charges once they
            // are in.
            let slots = 32 * edges as u64;
            if let Err(e) = inner.charged.take_len(slots) {
                inner.charged.give_len(cost);
                return Err(e);
            }
            inner.charged.give_len(slots);
            let mut ids: Vec<(u64, bool)> = Vec::with_capacity(nodes.len());
            let mut parents = Vec::new();
            for node in nodes {
                let len = node.payload.0.len();
                let pushed = if node.after.is_empty() {
                    inner.book.push(node.payload, node.options, now)
                } else {
                    parents.clear();
                    parents.extend(node.after.iter().map(|p| match *p {
                        Parent::Task(id) => id,
                        Parent::Node(at) => ids[at as usize].0,
                    }));
                    inner
                        .book
                        .push_after(&parents, node.payload, node.options, now)
                        .expect("parents checked above")
                };
                if !pushed.1 {
                    inner.charged.give_item(len);
                }
                ids.push(pushed);
            }
            self.signals.available.notify_all();
            Ok(ids)
        })
    }

    fn inputs(&self, id: u64) -> Result<Vec<(u64, Outcome)>, RemoteError> {
        let inner = self.state();
        match inner.book.inputs(id) {
            Some(inputs) => Ok(inputs.parents.clone()),
            None if inner.book.task(id).is_some() => Ok(Vec::new()),
            None => Err(RemoteError::new(
                RemoteErrorKind::BadArguments,
                format!("task {id} is not in the queue (done, purged, or never pushed)"),
            )),
        }
    }

    fn take(
        &self,
        n: u32,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Vec<Delivery>, RemoteError> {
        let n = (n as usize).clamp(1, MAX_BATCH);
        let give_up = deadline(timeout_ms);
        let mut inner = self.state();
        let mut waited = false;
        loop {
            if inner.closing {
                return Err(shutting_down("task queue"));
            }
            let now = self.now();
            inner.book.promote(now);
            if inner.book.has_ready() {
                if waited && caller.is_gone() {
                    self.signals.available.notify_one();
                    return Err(caller_gone());
                }
                let delivered = inner.book.take(n, caller.connection(), now);
                let written = self.keep(&mut inner);
                drop(inner);
                if let Err(e) = written.wait() {
                    // Not delivered after all: the tasks go back, so the error is true (their
                    // lease and its undoing reach the disk together, once it allows).
                    let mut inner = self.state();
                    inner.book.untake(&delivered);
                    drop(self.keep(&mut inner));
                    drop(inner);
                    self.signals.available.notify_all();
                    return Err(e);
                }
                return Ok(delivered);
            }
            if waited && caller.is_gone() {
                return Err(caller_gone());
            }
            let mut slice = CHECK_CALLER_EVERY;
            if let Some(give_up) = give_up {
                let left = give_up.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    drop(inner);
                    return Ok(Vec::new());
                }
                slice = slice.min(left);
            }
            if let Some(due) = inner.book.next_due() {
                slice = slice.min(Duration::from_millis(due.saturating_sub(now) + 1));
            }
            self.signals.available.wait_for(&mut inner, slice);
            waited = true;
        }
    }

    fn join(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError> {
        let drained = self.wait_for(timeout_ms, caller, |inner, now| {
            let counts = inner.book.counts(now);
            (counts.ready + counts.delayed + counts.leased == 0).then_some(())
        })?;
        Ok(drained.is_some())
    }

    fn status(&self, id: u64) -> TaskStatus {
        let mut inner = self.state();
        let now = self.now();
        inner.book.promote(now);
        expire(&mut inner, now);
        inner.book.status(id)
    }

    fn complete(&self, leases: Vec<(u64, u64, Bytes)>) -> Result<Vec<u8>, RemoteError> {
        self.mutate(|inner, now| {
            leases
                .into_iter()
                .map(|(id, token, result)| {
                    settle(
                        inner,
                        id,
                        token,
                        (!result.0.is_empty()).then_some(result),
                        now,
                    )
                })
                .collect()
        })
    }

    fn outcome(
        &self,
        id: u64,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Outcome, RemoteError> {
        let outcome = self.wait_for(timeout_ms, caller, |inner, _| outcome_of(&inner.book, id))?;
        Ok(outcome.unwrap_or(Outcome::Pending))
    }

    fn outcomes(
        &self,
        ids: Vec<u64>,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Vec<(u64, Outcome)>, RemoteError> {
        if ids.len() > MAX_BATCH {
            return Err(RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                format!("at most {MAX_BATCH} tasks per wait"),
            ));
        }
        // Looked at again only when a task finished since (not on every change).
        let mut seen = None;
        let found = self.wait_for(timeout_ms, caller, |inner, _| {
            let finished = inner.book.finished_so_far();
            if seen == Some(finished) {
                return None;
            }
            seen = Some(finished);
            let outcomes: Vec<(u64, Outcome)> = ids
                .iter()
                .filter_map(|&id| outcome_of(&inner.book, id).map(|o| (id, o)))
                .collect();
            (!outcomes.is_empty()).then_some(outcomes)
        })?;
        Ok(found.unwrap_or_default())
    }

    fn ack(&self, leases: Vec<(u64, u64)>) -> Result<Vec<u8>, RemoteError> {
        self.mutate(|inner, now| {
            leases
                .into_iter()
                .map(|(id, token)| settle(inner, id, token, None, now))
                .collect()
        })
    }

    fn ack_with(
        &self,
        id: u64,
        token: u64,
        result: Bytes,
        effects: Vec<crate::kinds::tasks::Effect>,
        caller: &Caller<'_>,
    ) -> Result<u8, RemoteError> {
        self.ack_with_effects(id, token, result, effects, caller)
    }

    fn fail(&self, id: u64, token: u64, reason: String) -> Result<Failed, RemoteError> {
        self.failed(id, token, reason, true)
    }

    fn fail_permanently(&self, id: u64, token: u64, reason: String) -> Result<(), RemoteError> {
        self.failed(id, token, reason, false).map(drop)
    }

    fn extend(&self, id: u64, token: u64, extra_ms: u64) -> Result<u64, RemoteError> {
        self.mutate(|inner, now| {
            inner
                .book
                .extend(id, token, extra_ms, now)
                .map_err(|e| lease_error(e, id))
        })
    }

    fn release(&self, id: u64, token: u64) -> Result<(), RemoteError> {
        self.mutate(|inner, now| {
            inner
                .book
                .release(id, token, now)
                .map_err(|e| lease_error(e, id))?;
            self.signals.available.notify_one();
            Ok(())
        })
    }

    fn stats(&self) -> Counts {
        let mut inner = self.state();
        let now = self.now();
        inner.book.promote(now);
        inner.book.counts(now)
    }

    fn dead(&self, after: u64, limit: u32) -> Vec<DeadLetter> {
        let mut inner = self.state();
        inner.book.promote(self.now());
        let limit = (limit as usize).min(MAX_BATCH);
        inner.book.dead(after, limit)
    }

    fn requeue(&self, id: Option<u64>) -> Result<u64, RemoteError> {
        self.mutate(|inner, _| {
            let n = inner.book.requeue(id);
            self.signals.available.notify_all();
            Ok(n)
        })
    }

    fn purge_dead(&self) -> Result<u64, RemoteError> {
        self.mutate(|inner, _| {
            let dead = inner.book.dead(0, usize::MAX);
            for letter in &dead {
                inner.charged.give(&letter.payload);
            }
            Ok(inner.book.purge_dead())
        })
    }

    fn settings(&self) -> Settings {
        self.state().book.settings
    }

    fn groups(&self, after: u64, limit: u32) -> Vec<crate::kinds::tasks::GroupView> {
        let mut inner = self.state();
        inner.book.promote(self.now());
        inner.book.groups(after, (limit as usize).min(MAX_BATCH))
    }

    fn task(&self, id: u64) -> crate::kinds::tasks::TaskView {
        let mut inner = self.state();
        let now = self.now();
        inner.book.promote(now);
        expire(&mut inner, now);
        inner.book.view(id)
    }

    fn metrics(&self) -> RunMetrics {
        self.state().book.run.clone()
    }
}

impl Hooks for SharedTasks {
    fn shutdown(&self) {
        self.state().closing = true;
        self.signals.available.notify_all();
    }

    fn tracks_connections(&self) -> bool {
        true
    }

    /// A connection closed: the leases taken on it go back at once (its worker is gone).
    fn connection_closed(&self, connection: u64) {
        let mut inner = self.state();
        if inner.book.connection_closed(connection) == 0 {
            return;
        }
        let written = self.keep(&mut inner);
        drop(inner);
        self.signals.available.notify_all();
        if let Err(e) = written.wait() {
            log::warn!("returning a closed connection's leases: {e}");
        }
    }
}

fn caller_gone() -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Misuse,
        "the caller hung up while waiting on the task queue",
    )
}

#[cfg(test)]
mod model_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLimits;

    fn restore(entries: Entries) -> Result<SharedTasks, RemoteError> {
        let budget = Budget::new(StoreLimits::default());
        SharedTasks::new(Settings::default(), budget, Persist::default(), entries)
    }

    /// A damaged input row (a slot index no graph has) is refused at start, not allocated
    /// for; a good one is read back.
    #[test]
    fn a_damaged_input_row_is_refused() {
        let mut value = Vec::new();
        codec::encode_into(&(1u64, false, Outcome::Pending), &mut value).unwrap();
        let task = Task {
            payload: Bytes(vec![1]),
            attempts: 0,
            max_attempts: 5,
            enqueued: 0,
            state: book::State::Waiting,
            reasons: Vec::new(),
            dedup: None,
            leased_at: 0,
        };
        let mut row = Vec::new();
        codec::encode_into(&task, &mut row).unwrap();
        let good = vec![
            (2u64.to_be_bytes().to_vec(), row.clone()),
            (input_key(2, 0).to_vec(), value.clone()),
        ];
        assert!(restore(good).is_ok());
        let damaged = vec![
            (2u64.to_be_bytes().to_vec(), row),
            (input_key(2, u32::MAX).to_vec(), value),
        ];
        let error = restore(damaged).err().expect("refused");
        assert!(error.to_string().contains("does not decode"), "{error}");
    }
}
