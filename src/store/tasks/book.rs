//! The task queue's state machine, sans IO and sans clock: every operation takes `now` (Unix
//! milliseconds), so the model test drives it with a virtual clock.
//!
//! A task is in exactly one state:
//!
//! ```text
//!   push ──► Ready ◄──────── due ──────── Delayed ◄── push with a delay
//!             │  ▲                          ▲
//!        take │  │ lease expired,           │ fail, attempts left
//!             ▼  │ released, worker gone    │ (backoff)
//!            Leased ─────────────────────────┘
//!             │   └── fail / expiry with no attempts left ──► Dead ── requeue ──► Ready
//!             └── ack ──► done (`done` counts it; a `Finished` record, with its result,
//!                          is kept for the result time-to-live, then forgotten)
//!
//!   push_after ──► Waiting ── its last parent done ──► Ready
//!                     └────── a parent dead ─────────► Dead (and its own waiting ones),
//!                                                      or, if it runs anyway, one fewer
//! ```
//!
//! A task pushed after others keeps its **inputs**: its parents in the order they were named,
//! each with how it ended (`Pending` until then). A parent's ack fills its slot with the
//! result in the same change that may make the task ready, so a chord's callback sees every
//! result, once.
//!
//! Invariants, kept by every method:
//! - `ready` holds exactly the ids of the Ready tasks, each once, oldest first;
//! - `delayed` holds exactly `(due, id)` of the Delayed tasks, `leases` exactly `(until, id)`
//!   of the Leased ones, `dead` exactly the ids of the Dead ones;
//! - `dedup` maps each key to the one task (in any state) that carries it;
//! - a task's `attempts` counts its deliveries: incremented by `take`, so a lease that ends
//!   any way but `ack` has used one attempt.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::fxhash::FxHashMap;
use crate::kinds::tasks::{
    Counts, DeadLetter, Delivery, Failed, GroupView, Outcome, PushOptions, RunMetrics, Settings,
    TaskStatus, TaskView,
};
use crate::store::Bytes;

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum State {
    Ready,
    /// Not delivered before `due`.
    Delayed {
        due: u64,
    },
    /// Held by a worker until `until`; `token` names this lease (another lease of the same
    /// task has another), `connection` the manager connection it was taken on.
    Leased {
        token: u64,
        until: u64,
        connection: u64,
    },
    Dead,
    /// Pushed after other tasks (`push_after`): ready once every one of them is done, dead if
    /// one of them dies (unless it runs anyway). What it waits for is kept beside it
    /// (`inputs`).
    Waiting,
}

/// One task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Task {
    pub(crate) payload: Bytes,
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    /// When it was pushed (Unix ms).
    pub(crate) enqueued: u64,
    pub(crate) state: State,
    /// Why each failed delivery failed, oldest first.
    pub(crate) reasons: Vec<String>,
    pub(crate) dedup: Option<String>,
    /// When its current lease began (Unix ms), for the duration metrics; not kept on disk.
    #[serde(skip, default)]
    pub(crate) leased_at: u64,
}

/// A task done, kept with its result until the queue's result time-to-live passes, so that
/// its status and result can be asked for by id. Kept on disk under its own key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Finished {
    /// When it was acked (Unix ms).
    pub(crate) at: u64,
    /// What its handler returned, encoded (none for `()` or a plain ack).
    pub(crate) result: Option<Bytes>,
}

/// What a task pushed after others was given: its parents in the order they were named, each
/// with how it ended (`Pending` until it has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inputs {
    pub(crate) parents: Vec<(u64, Outcome)>,
    /// How many are still `Pending`.
    left: usize,
    /// Whether the task runs even if some parents die.
    pub(crate) run_if_parents_die: bool,
}

/// What one input is counted in the book's `input_bytes`: its bookkeeping and what it holds.
fn input_size(outcome: &Outcome) -> u64 {
    32 + match outcome {
        Outcome::Done(Some(result)) => result.0.len() as u64,
        Outcome::Dead(reasons) => reasons.iter().map(|r| r.len() as u64).sum(),
        _ => 0,
    }
}

/// Why a lease operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseError {
    /// The lease is over: expired, released, or the task was acked or failed through it.
    Expired,
    /// No such task (acked, purged, or never pushed).
    Unknown,
}

/// The queue's tasks.
#[derive(Debug)]
pub(crate) struct Book {
    pub(crate) settings: Settings,
    /// By id (ids are the manager's own, sequential: the fast hasher is safe).
    tasks: FxHashMap<u64, Task>,
    ready: VecDeque<u64>,
    delayed: BTreeSet<(u64, u64)>,
    leases: BTreeSet<(u64, u64)>,
    dead: BTreeSet<u64>,
    dedup: HashMap<String, u64>,
    pub(crate) next_id: u64,
    pub(crate) done: u64,
    /// The next lease token: a random high half per run, so a lease from before a restart
    /// never matches one after it.
    next_token: u64,
    /// A small generator for the backoff's jitter.
    jitter: u64,
    /// Tasks changed since the last `take_touched` (to be written), and whether the
    /// counters (`next_id`, `done`) changed.
    touched: Vec<u64>,
    meta_touched: bool,
    /// What the queue did since the manager started.
    pub(crate) run: RunMetrics,
    /// The inputs of the tasks pushed after others, by task, kept while the task is (ordered,
    /// so the dashboard pages through them without sorting them all under the lock).
    inputs: BTreeMap<u64, Inputs>,
    /// For each task not finished yet, the `(task, slot)` inputs waiting for it.
    dependants: FxHashMap<u64, Vec<(u64, u32)>>,
    /// How many slots `inputs` holds together (kept, not summed per push).
    input_pairs: usize,
    /// What `inputs` holds, by [`input_size`] (charged to the store's budget by the caller).
    pub(crate) input_bytes: u64,
    /// How many tasks are `Waiting`.
    waiting: usize,
    /// Input slots changed since the last `take_touched_inputs` (to be written).
    touched_inputs: Vec<(u64, u32)>,
    /// Tasks done, by id, kept for `result_ttl_ms` after their ack (0: none kept).
    finished: FxHashMap<u64, Finished>,
    /// `(at, id)` of `finished`, oldest first (acks come in time order).
    finished_order: VecDeque<(u64, u64)>,
    pub(crate) result_ttl_ms: u64,
    /// Whether `now` is exact (a test clock's): then what is due at `now` is due; the
    /// system's milliseconds are rounded down, so its `now` may still have a fraction to go.
    pub(crate) exact_time: bool,
    /// Finished records and dead letters forgotten (expired or purged), for
    /// `finished_so_far`.
    forgotten: u64,
    /// Finished records changed since the last `take_touched` (added or expired).
    touched_finished: Vec<u64>,
}

impl Book {
    /// An empty book; `seed` makes lease tokens and jitter differ between runs.
    pub(crate) fn new(settings: Settings, seed: u64) -> Book {
        Book {
            settings,
            tasks: FxHashMap::default(),
            ready: VecDeque::new(),
            delayed: BTreeSet::new(),
            leases: BTreeSet::new(),
            dead: BTreeSet::new(),
            dedup: HashMap::new(),
            next_id: 1,
            done: 0,
            next_token: seed << 32 | 1,
            jitter: seed | 1,
            touched: Vec::new(),
            meta_touched: false,
            run: RunMetrics::default(),
            inputs: BTreeMap::new(),
            dependants: FxHashMap::default(),
            input_pairs: 0,
            input_bytes: 0,
            waiting: 0,
            touched_inputs: Vec::new(),
            finished: FxHashMap::default(),
            finished_order: VecDeque::new(),
            result_ttl_ms: 0,
            exact_time: false,
            forgotten: 0,
            touched_finished: Vec::new(),
        }
    }

    /// Puts back a stored task (at start). A lease held when the manager stopped comes back
    /// ready: its delivery was counted when it was taken.
    pub(crate) fn restore(&mut self, id: u64, mut task: Task) {
        if matches!(task.state, State::Leased { .. }) {
            task.state = State::Ready;
        }
        self.next_id = self.next_id.max(id + 1);
        self.place(id, task);
    }

    /// Up to `limit` of the tasks with inputs, by id after `after`, with their progress.
    pub(crate) fn groups(&self, after: u64, limit: usize) -> Vec<GroupView> {
        self.inputs
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(&id, inputs)| {
                let parents = &inputs.parents;
                let count =
                    |f: fn(&Outcome) -> bool| parents.iter().filter(|(_, o)| f(o)).count() as u32;
                GroupView {
                    id,
                    status: self.status(id),
                    size: parents.len() as u32,
                    done: count(|o| matches!(o, Outcome::Done(_))),
                    dead: count(|o| matches!(o, Outcome::Dead(_))),
                }
            })
            .collect()
    }

    /// What the book keeps of task `id`.
    pub(crate) fn view(&self, id: u64) -> TaskView {
        let task = self.tasks.get(&id);
        let finished = self.finished.get(&id);
        TaskView {
            id,
            status: self.status(id),
            enqueued: task.map(|t| t.enqueued),
            attempts: task.map_or(0, |t| t.attempts),
            max_attempts: task.map_or(0, |t| t.max_attempts),
            reasons: task.map(|t| t.reasons.clone()).unwrap_or_default(),
            lease_until: task.and_then(|t| match t.state {
                State::Leased { until, .. } => Some(until),
                _ => None,
            }),
            parents: self
                .inputs
                .get(&id)
                .map(|i| {
                    i.parents
                        .iter()
                        .map(|(p, o)| {
                            let status = match o {
                                Outcome::Done(_) => TaskStatus::Done,
                                Outcome::Dead(_) => TaskStatus::Dead,
                                _ => TaskStatus::Waiting,
                            };
                            (*p, status)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            finished: finished.map(|f| f.at),
            result_bytes: finished.and_then(|f| f.result.as_ref().map(|r| r.0.len() as u64)),
            payload_bytes: task.map(|t| t.payload.0.len() as u64),
        }
    }

    /// The tasks changed since the last call (each once), and whether the counters did.
    pub(crate) fn take_touched(&mut self) -> (Vec<u64>, bool) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        (touched, std::mem::take(&mut self.meta_touched))
    }

    /// Forgets what changed since the last record (in memory nothing is written).
    pub(crate) fn forget_touched(&mut self) {
        self.touched.clear();
        self.meta_touched = false;
        self.touched_finished.clear();
        self.touched_inputs.clear();
    }

    /// The finished records changed since the last call (each once).
    pub(crate) fn take_touched_finished(&mut self) -> Vec<u64> {
        let mut touched = std::mem::take(&mut self.touched_finished);
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// A finished record read back from disk (one already past its time goes at the next
    /// expiry).
    pub(crate) fn restore_finished(&mut self, id: u64, finished: Finished) {
        self.next_id = self.next_id.max(id + 1);
        self.finished_order.push_back((finished.at, id));
        self.finished.insert(id, finished);
    }

    /// Sorts the restored records by time (they are read back by id), and links each waiting
    /// task's pending inputs to their parents again.
    pub(crate) fn restored(&mut self) {
        self.finished_order.make_contiguous().sort_unstable();
        let mut orphans = Vec::new();
        for (&child, inputs) in &mut self.inputs {
            if !self.tasks.contains_key(&child) {
                orphans.push(child);
                continue;
            }
            inputs.left = inputs
                .parents
                .iter()
                .filter(|(_, o)| *o == Outcome::Pending)
                .count();
            self.input_pairs += inputs.parents.len();
            self.input_bytes += inputs
                .parents
                .iter()
                .map(|(_, o)| input_size(o))
                .sum::<u64>();
            if self.tasks[&child].state == State::Waiting {
                for (at, (parent, outcome)) in inputs.parents.iter().enumerate() {
                    if *outcome == Outcome::Pending {
                        self.dependants
                            .entry(*parent)
                            .or_default()
                            .push((child, at as u32));
                    }
                }
            }
        }
        // Inputs whose task is gone (none are written so): their rows go with the next change.
        for child in orphans {
            self.forget_inputs(child);
        }
    }

    /// The finished record of task `id`, if it is kept.
    pub(crate) fn finished(&self, id: u64) -> Option<&Finished> {
        self.finished.get(&id)
    }

    /// Forgets the finished records older than the time-to-live; the removed ones (to refund
    /// what they held).
    pub(crate) fn expire_finished(&mut self, now: u64) -> Vec<Finished> {
        let mut gone = Vec::new();
        while let Some(&(at, id)) = self.finished_order.front() {
            if at.saturating_add(self.result_ttl_ms) > now {
                break;
            }
            self.finished_order.pop_front();
            if let Some(finished) = self.finished.remove(&id) {
                self.forgotten += 1;
                gone.push(finished);
                self.touched_finished.push(id);
            }
        }
        gone
    }

    /// Where task `id` is, as a client asks by id.
    pub(crate) fn status(&self, id: u64) -> TaskStatus {
        match self.tasks.get(&id).map(|t| (t.state, t.attempts)) {
            Some((State::Ready, _)) => TaskStatus::Ready,
            Some((State::Delayed { .. }, _)) => TaskStatus::Delayed,
            Some((State::Leased { .. }, attempt)) => TaskStatus::Leased { attempt },
            Some((State::Dead, _)) => TaskStatus::Dead,
            Some((State::Waiting, _)) => TaskStatus::Waiting,
            None if self.finished.contains_key(&id) => TaskStatus::Done,
            None => TaskStatus::Unknown,
        }
    }

    /// A count that grows whenever a task finishes (done or dead) or a record is forgotten:
    /// a waiter for outcomes looks again only when it moved.
    pub(crate) fn finished_so_far(&self) -> u64 {
        self.done + self.run.dead + self.forgotten
    }

    /// How many tasks the book holds, in any state.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Task `id`, if it is in the book.
    pub(crate) fn task(&self, id: u64) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// Files `task` under `id` in the index its state calls for.
    fn place(&mut self, id: u64, task: Task) {
        match task.state {
            State::Ready => self.ready.push_back(id),
            State::Delayed { due } => {
                self.delayed.insert((due, id));
            }
            State::Leased { until, .. } => {
                self.leases.insert((until, id));
            }
            State::Dead => {
                self.dead.insert(id);
            }
            State::Waiting => self.waiting += 1,
        }
        if let Some(key) = &task.dedup {
            self.dedup.insert(key.clone(), id);
        }
        self.tasks.insert(id, task);
        self.touched.push(id);
    }

    /// Takes task `id` out of the index of its state (it stays in `tasks`).
    fn unplace(&mut self, id: u64) {
        let task = &self.tasks[&id];
        match task.state {
            State::Ready => {
                if let Some(at) = self.ready.iter().position(|&r| r == id) {
                    self.ready.remove(at);
                }
            }
            State::Delayed { due } => {
                self.delayed.remove(&(due, id));
            }
            State::Leased { until, .. } => {
                self.leases.remove(&(until, id));
            }
            State::Dead => {
                self.dead.remove(&id);
            }
            State::Waiting => self.waiting -= 1,
        }
        self.touched.push(id);
    }

    /// Moves task `id` to `state`.
    fn set_state(&mut self, id: u64, state: State) {
        self.unplace(id);
        let mut task = self.tasks.remove(&id).expect("unplaced a task in the book");
        if let Some(key) = &task.dedup {
            self.dedup.remove(key);
        }
        task.state = state;
        self.place(id, task);
    }

    /// Adds a task; returns its id and whether it was new (false: a task with the same
    /// dedup key is not done yet, and its id is returned).
    pub(crate) fn push(&mut self, payload: Bytes, options: PushOptions, now: u64) -> (u64, bool) {
        if let Some(key) = &options.dedup
            && let Some(&id) = self.dedup.get(key)
        {
            return (id, false);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.meta_touched = true;
        let state = match options.delay_ms {
            0 => State::Ready,
            delay => State::Delayed {
                due: now.saturating_add(delay),
            },
        };
        let task = Task {
            payload,
            attempts: 0,
            max_attempts: options
                .max_attempts
                .unwrap_or(self.settings.max_attempts)
                .max(1),
            enqueued: now,
            state,
            reasons: Vec::new(),
            dedup: options.dedup,
            leased_at: 0,
        };
        self.place(id, task);
        (id, true)
    }

    /// Adds a task to run once every one of `parents` is done; its id and whether it was new.
    /// A parent done already (and still remembered) counts as done; a dead one makes the task
    /// dead at once (unless it runs anyway); one that is not known is an error (nothing is
    /// pushed).
    pub(crate) fn push_after(
        &mut self,
        parents: &[u64],
        payload: Bytes,
        options: PushOptions,
        now: u64,
    ) -> Result<(u64, bool), u64> {
        if let Some(key) = &options.dedup
            && let Some(&id) = self.dedup.get(key)
        {
            return Ok((id, false));
        }
        let run_anyway = options.run_if_parents_die;
        let mut slots = Vec::with_capacity(parents.len());
        let mut dead = None;
        for &parent in parents {
            let outcome = match self.status(parent) {
                TaskStatus::Done => {
                    Outcome::Done(self.finished(parent).and_then(|f| f.result.clone()))
                }
                TaskStatus::Unknown => return Err(parent),
                TaskStatus::Dead => {
                    dead = dead.or(Some(parent));
                    Outcome::Dead(self.tasks[&parent].reasons.clone())
                }
                _ => Outcome::Pending,
            };
            slots.push((parent, outcome));
        }
        let (id, new) = self.push(payload, options, now);
        if parents.is_empty() {
            return Ok((id, new));
        }
        let left = slots.iter().filter(|(_, o)| *o == Outcome::Pending).count();
        for (at, (_, outcome)) in slots.iter().enumerate() {
            self.input_bytes += input_size(outcome);
            self.touched_inputs.push((id, at as u32));
        }
        self.input_pairs += slots.len();
        let dies = dead.filter(|_| !run_anyway);
        if dies.is_none() && left > 0 {
            for (at, (parent, outcome)) in slots.iter().enumerate() {
                if *outcome == Outcome::Pending {
                    self.dependants
                        .entry(*parent)
                        .or_default()
                        .push((id, at as u32));
                }
            }
        }
        self.inputs.insert(
            id,
            Inputs {
                parents: slots,
                left,
                run_if_parents_die: run_anyway,
            },
        );
        if let Some(parent) = dies {
            self.dies_with(id, parent);
        } else if left > 0 {
            self.set_state(id, State::Waiting);
        }
        Ok((id, new))
    }

    /// Fills input `at` of `child` with `outcome`; whether that was its last pending one.
    fn fill(&mut self, child: u64, at: u32, outcome: Outcome) -> bool {
        let Some(inputs) = self.inputs.get_mut(&child) else {
            return false;
        };
        let Some(slot) = inputs.parents.get_mut(at as usize) else {
            return false;
        };
        if slot.1 != Outcome::Pending {
            return false;
        }
        self.input_bytes += input_size(&outcome);
        slot.1 = outcome;
        inputs.left -= 1;
        self.touched_inputs.push((child, at));
        inputs.left == 0
    }

    /// A waiting task whose inputs are all in becomes ready.
    fn wake(&mut self, child: u64) {
        if self
            .tasks
            .get(&child)
            .is_some_and(|t| t.state == State::Waiting)
        {
            self.set_state(child, State::Ready);
        }
    }

    /// Task `id` is done with `result`: each input waiting for it is filled with the result,
    /// and the tasks with no input left pending become ready.
    fn released_by(&mut self, id: u64, result: &Option<Bytes>) {
        if self.dependants.is_empty() {
            return; // no task waits: the common case costs one branch
        }
        for (child, at) in self.dependants.remove(&id).unwrap_or_default() {
            if self.fill(child, at, Outcome::Done(result.clone())) {
                self.wake(child);
            }
        }
    }

    /// Waiting task `child` dies because its parent `parent` did: it stops waiting for the
    /// others, says why, and is dead.
    fn dies_with(&mut self, child: u64, parent: u64) {
        if let Some(inputs) = self.inputs.get(&child) {
            for (other, outcome) in &inputs.parents {
                if *outcome == Outcome::Pending
                    && let Some(waiting) = self.dependants.get_mut(other)
                {
                    waiting.retain(|&(c, _)| c != child);
                }
            }
        }
        let task = self
            .tasks
            .get_mut(&child)
            .expect("a task with inputs is in the book");
        task.reasons
            .push(format!("task {parent}, which it runs after, died"));
        self.run.dead += 1;
        self.set_state(child, State::Dead);
    }

    /// Task `id` died: each task waiting for it that runs anyway gets its reasons as an input;
    /// every other one (and those waiting for it, in turn) dies too, saying why, instead of
    /// waiting forever.
    fn died(&mut self, id: u64) {
        let mut gone = vec![id];
        while let Some(parent) = gone.pop() {
            let Some(children) = self.dependants.remove(&parent) else {
                continue;
            };
            let reasons = self
                .tasks
                .get(&parent)
                .map(|t| t.reasons.clone())
                .unwrap_or_default();
            for (child, at) in children {
                let run_anyway = self
                    .inputs
                    .get(&child)
                    .is_some_and(|i| i.run_if_parents_die);
                let waiting = self
                    .tasks
                    .get(&child)
                    .is_some_and(|t| t.state == State::Waiting);
                let last = self.fill(child, at, Outcome::Dead(reasons.clone()));
                if run_anyway {
                    if last {
                        self.wake(child);
                    }
                } else if waiting {
                    self.dies_with(child, parent);
                    gone.push(child);
                }
            }
        }
    }

    /// Forgets task `id`'s inputs (it left the book): their rows are deleted.
    fn forget_inputs(&mut self, id: u64) {
        if self.inputs.is_empty() {
            return;
        }
        let Some(inputs) = self.inputs.remove(&id) else {
            return;
        };
        self.input_pairs -= inputs.parents.len();
        for (at, (parent, outcome)) in inputs.parents.iter().enumerate() {
            self.input_bytes -= input_size(outcome);
            self.touched_inputs.push((id, at as u32));
            if *outcome == Outcome::Pending
                && let Some(waiting) = self.dependants.get_mut(parent)
            {
                waiting.retain(|&(c, _)| c != id);
            }
        }
    }

    /// How many input slots the tasks pushed after others hold: bounded like a container's
    /// items.
    pub(crate) fn input_entries(&self) -> usize {
        self.input_pairs
    }

    /// How many tasks a task's ack would give its result to (to charge the copies first).
    pub(crate) fn dependants_of(&self, id: u64) -> usize {
        if self.dependants.is_empty() {
            return 0;
        }
        self.dependants.get(&id).map_or(0, Vec::len)
    }

    /// Task `id`'s inputs, if it was pushed after others.
    pub(crate) fn inputs(&self, id: u64) -> Option<&Inputs> {
        self.inputs.get(&id)
    }

    /// The input slots changed since the last call (each once).
    pub(crate) fn take_touched_inputs(&mut self) -> Vec<(u64, u32)> {
        if self.touched_inputs.is_empty() {
            return Vec::new();
        }
        let mut touched = std::mem::take(&mut self.touched_inputs);
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// One input slot read back from disk (linked to its parent by `restored`).
    pub(crate) fn restore_input(
        &mut self,
        child: u64,
        at: u32,
        parent: u64,
        run_anyway: bool,
        outcome: Outcome,
    ) {
        let inputs = self.inputs.entry(child).or_insert_with(|| Inputs {
            parents: Vec::new(),
            left: 0,
            run_if_parents_die: run_anyway,
        });
        let at = at as usize;
        if inputs.parents.len() <= at {
            inputs.parents.resize(at + 1, (0, Outcome::Pending));
        }
        inputs.parents[at] = (parent, outcome);
    }

    /// Moves what is due to ready: delayed tasks whose time passed, and expired leases (to
    /// the dead letters if that was their last attempt). Strictly past on the system's clock:
    /// `now` is whole milliseconds rounded down, so a task due at `now` may still have a
    /// fraction to wait (a test clock's `now` is exact: see `exact_time`).
    pub(crate) fn promote(&mut self, now: u64) {
        // A test clock's milliseconds are exact: what is due at `now` is due.
        let exact = self.exact_time;
        let not_yet = |t: u64| t > now || (t == now && !exact);
        while let Some(&(due, id)) = self.delayed.first() {
            if not_yet(due) {
                break;
            }
            self.set_state(id, State::Ready);
        }
        while let Some(&(until, id)) = self.leases.first() {
            if not_yet(until) {
                break;
            }
            self.lease_over(id, "its lease expired".into());
        }
    }

    /// A lease ended without ack or fail: the task goes back, or to the dead letters if it
    /// has used its last attempt.
    fn lease_over(&mut self, id: u64, why: String) {
        let task = self
            .tasks
            .get_mut(&id)
            .expect("leased tasks are in the book");
        task.reasons.push(why);
        self.run.failed += 1;
        if task.attempts >= task.max_attempts {
            self.run.dead += 1;
            self.set_state(id, State::Dead);
            self.died(id);
        } else {
            self.set_state(id, State::Ready);
        }
    }

    /// When the next delayed task or lease falls due, if any.
    pub(crate) fn next_due(&self) -> Option<u64> {
        let delayed = self.delayed.first().map(|&(due, _)| due);
        let lease = self.leases.first().map(|&(until, _)| until);
        match (delayed, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a task is ready now (after `promote`).
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Leases up to `n` ready tasks to `connection`, oldest first.
    pub(crate) fn take(&mut self, n: usize, connection: u64, now: u64) -> Vec<Delivery> {
        self.promote(now);
        let mut delivered = Vec::with_capacity(n.min(self.ready.len()));
        while delivered.len() < n {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let token = self.next_token;
            self.next_token = self.next_token.wrapping_add(1);
            let until = now.saturating_add(self.settings.lease_ms);
            let task = self
                .tasks
                .get_mut(&id)
                .expect("ready tasks are in the book");
            task.attempts += 1;
            task.leased_at = now;
            task.state = State::Leased {
                token,
                until,
                connection,
            };
            self.leases.insert((until, id));
            self.touched.push(id);
            delivered.push(Delivery {
                id,
                token,
                attempt: task.attempts,
                enqueued: task.enqueued,
                lease_until: until,
                payload: task.payload.clone(),
            });
        }
        delivered
    }

    /// Takes back deliveries their taker never received (the take could not be written):
    /// those still under the same lease are ready again, their attempt not counted.
    pub(crate) fn untake(&mut self, delivered: &[Delivery]) {
        for d in delivered {
            let Some(task) = self.tasks.get_mut(&d.id) else {
                continue;
            };
            if !matches!(task.state, State::Leased { token, .. } if token == d.token) {
                continue;
            }
            task.attempts = task.attempts.saturating_sub(1);
            self.set_state(d.id, State::Ready);
            self.touched.push(d.id);
        }
    }

    /// Checks that `token` is the current lease of task `id`.
    pub(crate) fn check_lease(&mut self, id: u64, token: u64, now: u64) -> Result<(), LeaseError> {
        self.promote(now);
        match self.tasks.get(&id) {
            None => Err(LeaseError::Unknown),
            Some(Task {
                state: State::Leased { token: current, .. },
                ..
            }) if *current == token => Ok(()),
            Some(_) => Err(LeaseError::Expired),
        }
    }

    /// The task is done: forgotten, and counted.
    #[cfg(test)]
    pub(crate) fn ack(&mut self, id: u64, token: u64, now: u64) -> Result<(), LeaseError> {
        self.complete(id, token, None, now)
    }

    /// The task is done with `result`: it leaves the queue, and is remembered (with the
    /// result) for the time-to-live.
    pub(crate) fn complete(
        &mut self,
        id: u64,
        token: u64,
        result: Option<Bytes>,
        now: u64,
    ) -> Result<(), LeaseError> {
        self.check_lease(id, token, now)?;
        self.unplace(id);
        let task = self.tasks.remove(&id).expect("checked");
        self.run.record(now.saturating_sub(task.leased_at));
        if let Some(key) = &task.dedup {
            self.dedup.remove(key);
        }
        self.done += 1;
        self.meta_touched = true;
        self.released_by(id, &result);
        self.forget_inputs(id);
        if self.result_ttl_ms > 0 {
            self.finished.insert(id, Finished { at: now, result });
            self.finished_order.push_back((now, id));
            self.touched_finished.push(id);
        }
        Ok(())
    }

    /// The delivery failed: retried after a backoff, or dead if it was the last attempt.
    pub(crate) fn fail(
        &mut self,
        id: u64,
        token: u64,
        reason: String,
        retry: bool,
        now: u64,
    ) -> Result<Failed, LeaseError> {
        self.check_lease(id, token, now)?;
        let task = self.tasks.get_mut(&id).expect("checked");
        task.reasons.push(reason);
        self.run.record(now.saturating_sub(task.leased_at));
        self.run.failed += 1;
        // A failure not worth retrying (bad input) goes to the dead letters at once.
        if !retry || task.attempts >= task.max_attempts {
            self.run.dead += 1;
            self.set_state(id, State::Dead);
            self.died(id);
            return Ok(Failed::Dead);
        }
        let attempts = task.attempts;
        let due = now.saturating_add(self.backoff(attempts));
        self.set_state(id, State::Delayed { due });
        Ok(Failed::RetryAt(due))
    }

    /// The delay before delivery `attempts + 1`: the base doubled for each earlier failure,
    /// capped, and then "equal jitter" (between half and all of it), so retries of many tasks
    /// that failed together spread out, and each gap is at least as long as the one before.
    fn backoff(&mut self, attempts: u32) -> u64 {
        let Settings {
            backoff_base_ms: base,
            backoff_max_ms: max,
            ..
        } = self.settings;
        let doubled = base.saturating_mul(1u64 << attempts.saturating_sub(1).min(40));
        let delay = doubled.min(max);
        // xorshift64: enough to spread retries, no need for a cryptographic generator.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let half = delay / 2;
        half + self.jitter % (delay - half + 1)
    }

    /// Keeps the lease `extra` longer from now; returns its new end.
    pub(crate) fn extend(
        &mut self,
        id: u64,
        token: u64,
        extra: u64,
        now: u64,
    ) -> Result<u64, LeaseError> {
        self.check_lease(id, token, now)?;
        let State::Leased { connection, .. } = self.tasks[&id].state else {
            unreachable!("checked")
        };
        let until = now.saturating_add(extra);
        self.set_state(
            id,
            State::Leased {
                token,
                until,
                connection,
            },
        );
        Ok(until)
    }

    /// Gives the task back at once (its worker dropped it): the attempt counts.
    pub(crate) fn release(&mut self, id: u64, token: u64, now: u64) -> Result<(), LeaseError> {
        self.check_lease(id, token, now)?;
        self.lease_over(id, "its worker gave it back without ack or fail".into());
        Ok(())
    }

    /// Every lease taken on `connection` goes back: its worker is gone. Returns how many.
    pub(crate) fn connection_closed(&mut self, connection: u64) -> usize {
        let theirs: Vec<u64> = self
            .leases
            .iter()
            .map(|&(_, id)| id)
            .filter(|id| {
                matches!(self.tasks[id].state, State::Leased { connection: c, .. } if c == connection)
            })
            .collect();
        for &id in &theirs {
            self.lease_over(id, "its worker's connection closed".into());
        }
        theirs.len()
    }

    /// The dead letters, oldest id first, at most `limit` after id `after`.
    pub(crate) fn dead(&self, after: u64, limit: usize) -> Vec<DeadLetter> {
        self.dead
            .range(after.saturating_add(1)..)
            .take(limit)
            .copied()
            .map(|id| {
                let t = &self.tasks[&id];
                DeadLetter {
                    id,
                    attempts: t.attempts,
                    enqueued: t.enqueued,
                    reasons: t.reasons.clone(),
                    payload: t.payload.clone(),
                }
            })
            .collect()
    }

    /// Brings dead letters back as fresh tasks (attempts and reasons reset): `id`, or every
    /// one if `None`. Returns how many.
    pub(crate) fn requeue(&mut self, id: Option<u64>) -> u64 {
        let ids: Vec<u64> = match id {
            Some(id) if self.tasks.get(&id).is_some_and(|t| t.state == State::Dead) => vec![id],
            Some(_) => Vec::new(),
            None => self.dead.iter().copied().collect(),
        };
        for &id in &ids {
            let task = self.tasks.get_mut(&id).expect("listed");
            task.attempts = 0;
            task.reasons.clear();
            self.set_state(id, State::Ready);
        }
        ids.len() as u64
    }

    /// Forgets every dead letter. Returns how many.
    pub(crate) fn purge_dead(&mut self) -> u64 {
        let ids = std::mem::take(&mut self.dead);
        for &id in &ids {
            let task = self.tasks.remove(&id).expect("listed");
            if let Some(key) = &task.dedup {
                self.dedup.remove(key);
            }
            self.touched.push(id);
            self.forget_inputs(id);
            self.forgotten += 1;
        }
        ids.len() as u64
    }

    /// Counts by state (after `promote`).
    pub(crate) fn counts(&self, now: u64) -> Counts {
        let dead = self.dead.len() as u64;
        Counts {
            ready: self.ready.len() as u64,
            // Waiting for other tasks is waiting too (and keeps `join` waiting).
            delayed: (self.delayed.len() + self.waiting) as u64,
            leased: self.leases.len() as u64,
            dead,
            done: self.done,
            oldest_ready_ms: self
                .ready
                .iter()
                .map(|id| now.saturating_sub(self.tasks[id].enqueued))
                .max()
                .unwrap_or(0),
        }
    }
}
