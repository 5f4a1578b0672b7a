//! A model check of the task book: random sequences of push, take, ack, fail, extend,
//! release, expiry (a virtual clock), closed connections, requeue and purge, compared after
//! every step with a model that keeps each task's state in the plainest way.

use std::collections::BTreeMap;

use super::book::Book;
use crate::kinds::tasks::{Failed, Outcome, PushOptions, Settings, TaskStatus};
use crate::store::Bytes;

/// The randomized tests' generator, with bounds in u64.
struct Rng(crate::fuzz_tests::Rng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n.max(1) as usize) as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Ready,
    Delayed(u64),
    Leased {
        token: u64,
        until: u64,
        connection: u64,
    },
    Dead,
    /// Pushed after others, some not done (its slots are in `Model::inputs`).
    Waiting,
}

/// How one parent of a task pushed after others ended, as far as the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Done,
    Dead,
}

#[derive(Debug, Clone)]
struct Inputs {
    parents: Vec<(u64, Slot)>,
    run_anyway: bool,
}

#[derive(Debug, Clone)]
struct Modelled {
    state: Where,
    attempts: u32,
    max_attempts: u32,
    /// Its place in the ready line: when it last became ready (step, then order).
    ready_since: (u64, u64),
}

#[derive(Default)]
struct Model {
    tasks: BTreeMap<u64, Modelled>,
    /// Tasks done, by id: when, kept until the result time-to-live passes.
    finished: BTreeMap<u64, u64>,
    /// The inputs of each task pushed after others, while it is in the queue.
    inputs: BTreeMap<u64, Inputs>,
    done: u64,
    /// A counter that orders tasks becoming ready within one step.
    order: u64,
}

impl Model {
    fn make_ready(&mut self, id: u64, step: u64) {
        self.order += 1;
        let order = self.order;
        let task = self.tasks.get_mut(&id).unwrap();
        task.state = Where::Ready;
        task.ready_since = (step, order);
    }

    /// What falls due at `now`, in the order the book promotes: delayed by due time, then
    /// leases by end time (ties by id).
    fn promote(&mut self, now: u64, step: u64) {
        let mut delayed: Vec<(u64, u64)> = self
            .tasks
            .iter()
            .filter_map(|(&id, t)| match t.state {
                Where::Delayed(due) if due < now => Some((due, id)),
                _ => None,
            })
            .collect();
        delayed.sort();
        for (_, id) in delayed {
            self.make_ready(id, step);
        }
        let mut leases: Vec<(u64, u64)> = self
            .tasks
            .iter()
            .filter_map(|(&id, t)| match t.state {
                Where::Leased { until, .. } if until < now => Some((until, id)),
                _ => None,
            })
            .collect();
        leases.sort();
        for (_, id) in leases {
            self.lease_over(id, step);
        }
    }

    fn lease_over(&mut self, id: u64, step: u64) {
        let task = &self.tasks[&id];
        if task.attempts >= task.max_attempts {
            self.dies(id, step);
        } else {
            self.make_ready(id, step);
        }
    }

    /// The waiting tasks with a pending slot for `id`, by id.
    fn children_of(&self, id: u64) -> Vec<u64> {
        self.inputs
            .iter()
            .filter(|(child, inputs)| {
                self.tasks[child].state == Where::Waiting
                    && inputs.parents.contains(&(id, Slot::Pending))
            })
            .map(|(&child, _)| child)
            .collect()
    }

    /// Fills `child`'s pending slots for `parent` with `slot`; whether none is pending now.
    fn fill(&mut self, child: u64, parent: u64, slot: Slot) -> bool {
        let inputs = self.inputs.get_mut(&child).unwrap();
        for s in &mut inputs.parents {
            if *s == (parent, Slot::Pending) {
                s.1 = slot;
            }
        }
        !inputs.parents.iter().any(|s| s.1 == Slot::Pending)
    }

    /// Task `id` dies; each task waiting for it runs anyway (if it says so) or dies too,
    /// in turn (a worklist, in the book's order).
    fn dies(&mut self, id: u64, step: u64) {
        self.tasks.get_mut(&id).unwrap().state = Where::Dead;
        let mut gone = vec![id];
        while let Some(parent) = gone.pop() {
            for child in self.children_of(parent) {
                let last = self.fill(child, parent, Slot::Dead);
                if self.inputs[&child].run_anyway {
                    if last {
                        self.make_ready(child, step);
                    }
                } else {
                    self.tasks.get_mut(&child).unwrap().state = Where::Dead;
                    gone.push(child);
                }
            }
        }
    }

    /// Task `id` is done: what waited for it has its result; with nothing pending, ready.
    fn done_with(&mut self, id: u64, step: u64) {
        for child in self.children_of(id) {
            if self.fill(child, id, Slot::Done) {
                self.make_ready(child, step);
            }
        }
    }

    fn ready_line(&self) -> Vec<u64> {
        let mut ready: Vec<(u64, u64, u64)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.state == Where::Ready)
            .map(|(&id, t)| (t.ready_since.0, t.ready_since.1, id))
            .collect();
        ready.sort();
        ready.into_iter().map(|(_, _, id)| id).collect()
    }

    fn leases(&self) -> Vec<(u64, u64)> {
        self.tasks
            .iter()
            .filter_map(|(&id, t)| match t.state {
                Where::Leased { token, .. } => Some((id, token)),
                _ => None,
            })
            .collect()
    }

    fn check(&self, book: &Book, now: u64, context: &str) {
        let counts = book.counts(now);
        let count =
            |f: fn(&Where) -> bool| self.tasks.values().filter(|t| f(&t.state)).count() as u64;
        assert_eq!(
            counts.ready,
            count(|w| *w == Where::Ready),
            "ready, {context}"
        );
        assert_eq!(
            counts.delayed,
            count(|w| matches!(w, Where::Delayed(_) | Where::Waiting)),
            "delayed, {context}"
        );
        assert_eq!(
            counts.leased,
            count(|w| matches!(w, Where::Leased { .. })),
            "leased, {context}"
        );
        assert_eq!(counts.dead, count(|w| *w == Where::Dead), "dead, {context}");
        assert_eq!(counts.done, self.done, "done, {context}");
        assert_eq!(book.len(), self.tasks.len(), "tasks, {context}");
        // Status by id agrees with the model, finished tasks included.
        for (id, task) in &self.tasks {
            let status = book.status(*id);
            let expected = match task.state {
                Where::Ready => TaskStatus::Ready,
                Where::Delayed(_) => TaskStatus::Delayed,
                Where::Leased { .. } => TaskStatus::Leased {
                    attempt: task.attempts,
                },
                Where::Dead => TaskStatus::Dead,
                Where::Waiting => TaskStatus::Waiting,
            };
            match (self.inputs.get(id), book.inputs(*id)) {
                (None, None) => {}
                (Some(model), Some(real)) => {
                    let real: Vec<(u64, Slot)> = real
                        .parents
                        .iter()
                        .map(|(p, o)| {
                            let slot = match o {
                                Outcome::Pending => Slot::Pending,
                                Outcome::Done(_) => Slot::Done,
                                Outcome::Dead(_) => Slot::Dead,
                                Outcome::Unknown => panic!("an unknown input, {context}"),
                            };
                            (*p, slot)
                        })
                        .collect();
                    assert_eq!(real, model.parents, "inputs of {id}, {context}");
                }
                (model, real) => {
                    panic!("inputs of {id}: model {model:?}, book {real:?}, {context}")
                }
            }
            assert_eq!(status, expected, "status of {id}, {context}");
        }
        assert_eq!(
            book.input_entries(),
            self.inputs.values().map(|i| i.parents.len()).sum::<usize>(),
            "input slots, {context}"
        );
        for id in self.finished.keys() {
            assert_eq!(
                book.status(*id),
                TaskStatus::Done,
                "status of {id}, {context}"
            );
            assert!(book.finished(*id).is_some(), "record of {id}, {context}");
        }
        for (id, task) in &self.tasks {
            let real = book
                .task(*id)
                .unwrap_or_else(|| panic!("task {id} missing, {context}"));
            assert_eq!(real.attempts, task.attempts, "attempts of {id}, {context}");
            let same = match (task.state, real.state) {
                (Where::Ready, super::book::State::Ready)
                | (Where::Dead, super::book::State::Dead)
                | (Where::Waiting, super::book::State::Waiting) => true,
                (Where::Delayed(a), super::book::State::Delayed { due }) => a == due,
                (
                    Where::Leased {
                        token,
                        until,
                        connection,
                    },
                    super::book::State::Leased {
                        token: t,
                        until: u,
                        connection: c,
                    },
                ) => token == t && until == u && connection == c,
                _ => false,
            };
            assert!(
                same,
                "task {id}: model {:?}, book {:?}, {context}",
                task.state, real.state
            );
        }
    }
}

/// How long the model's finished tasks are kept (in its virtual milliseconds).
const RESULT_TTL: u64 = 200;

fn run(seed: u64, steps: u64) {
    let settings = Settings {
        lease_ms: 50,
        max_attempts: 3,
        backoff_base_ms: 10,
        backoff_max_ms: 40,
        result_ttl_ms: None,
    };
    let mut rng = Rng(crate::fuzz_tests::Rng(seed | 1));
    let mut book = Book::new(settings, 7);
    book.result_ttl_ms = RESULT_TTL;
    let mut model = Model::default();
    let mut now = 1_000u64;
    let mut stale: Vec<(u64, u64)> = Vec::new(); // leases that ended: acks must be refused
    for step in 0..steps {
        let op = rng.below(100);
        let context = format!("seed {seed}, step {step}, op {op}");
        match op {
            0..=5 if !model.tasks.is_empty() || !model.finished.is_empty() => {
                // After one or two known tasks (done ones included).
                let known: Vec<u64> = model
                    .tasks
                    .keys()
                    .chain(model.finished.keys())
                    .copied()
                    .collect();
                let parents: Vec<u64> = (0..1 + rng.below(2))
                    .map(|_| known[rng.below(known.len() as u64) as usize])
                    .collect();
                let run_anyway = rng.below(3) == 0;
                let (id, new) = book
                    .push_after(
                        &parents,
                        Bytes(vec![step as u8]),
                        PushOptions {
                            run_if_parents_die: run_anyway,
                            ..PushOptions::default()
                        },
                        now,
                    )
                    .unwrap();
                assert!(new);
                model.tasks.insert(
                    id,
                    Modelled {
                        state: Where::Ready,
                        attempts: 0,
                        max_attempts: 3,
                        ready_since: (0, 0),
                    },
                );
                let slots: Vec<(u64, Slot)> = parents
                    .iter()
                    .map(|p| match model.tasks.get(p) {
                        None => (*p, Slot::Done),
                        Some(t) if t.state == Where::Dead => (*p, Slot::Dead),
                        Some(_) => (*p, Slot::Pending),
                    })
                    .collect();
                let dead = slots.iter().any(|s| s.1 == Slot::Dead);
                let pending = slots.iter().any(|s| s.1 == Slot::Pending);
                model.inputs.insert(
                    id,
                    Inputs {
                        parents: slots,
                        run_anyway,
                    },
                );
                if dead && !run_anyway {
                    model.tasks.get_mut(&id).unwrap().state = Where::Dead;
                } else if !pending {
                    model.make_ready(id, step);
                } else {
                    model.tasks.get_mut(&id).unwrap().state = Where::Waiting;
                }
            }
            0..=24 => {
                let delay = if rng.below(4) == 0 { rng.below(30) } else { 0 };
                let max = if rng.below(5) == 0 { Some(1) } else { None };
                let (id, new) = book.push(
                    Bytes(vec![step as u8]),
                    PushOptions {
                        delay_ms: delay,
                        max_attempts: max,
                        dedup: None,
                        run_if_parents_die: false,
                    },
                    now,
                );
                assert!(new);
                model.tasks.insert(
                    id,
                    Modelled {
                        state: Where::Ready,
                        attempts: 0,
                        max_attempts: max.unwrap_or(3),
                        ready_since: (0, 0),
                    },
                );
                if delay == 0 {
                    model.make_ready(id, step);
                } else {
                    model.tasks.get_mut(&id).unwrap().state = Where::Delayed(now + delay);
                }
            }
            25..=44 => {
                let n = 1 + rng.below(3) as usize;
                let connection = 1 + rng.below(3);
                model.promote(now, step);
                let expected: Vec<u64> = model.ready_line().into_iter().take(n).collect();
                let delivered = book.take(n, connection, now);
                let got: Vec<u64> = delivered.iter().map(|d| d.id).collect();
                assert_eq!(got, expected, "take, {context}");
                for d in delivered {
                    let task = model.tasks.get_mut(&d.id).unwrap();
                    task.attempts += 1;
                    assert_eq!(d.attempt, task.attempts, "{context}");
                    task.state = Where::Leased {
                        token: d.token,
                        until: now + settings.lease_ms,
                        connection,
                    };
                }
            }
            45..=74 => {
                model.promote(now, step);
                let leases = model.leases();
                if let Some(&(id, token)) = leases.get(rng.below(leases.len() as u64 + 1) as usize)
                {
                    match rng.below(5) {
                        0 | 1 => {
                            book.ack(id, token, now).unwrap();
                            model.tasks.remove(&id);
                            model.inputs.remove(&id);
                            model.finished.insert(id, now);
                            model.done += 1;
                            model.done_with(id, step);
                        }
                        2 => {
                            let attempts = model.tasks[&id].attempts;
                            match book.fail(id, token, "boom".into(), true, now).unwrap() {
                                Failed::Dead => {
                                    assert!(attempts >= model.tasks[&id].max_attempts, "{context}");
                                    model.dies(id, step);
                                }
                                Failed::RetryAt(due) => {
                                    let full = (10u64 << (attempts - 1)).min(40);
                                    let gap = due - now;
                                    assert!(
                                        gap >= full / 2 && gap <= full,
                                        "gap {gap} of {full}, {context}"
                                    );
                                    model.tasks.get_mut(&id).unwrap().state = Where::Delayed(due);
                                }
                            }
                        }
                        3 => {
                            // Failed for good: dead at once, whatever attempts are left.
                            let failed = book.fail(id, token, "bad input".into(), false, now);
                            assert_eq!(failed.unwrap(), Failed::Dead, "{context}");
                            model.dies(id, step);
                        }
                        _ => {
                            book.release(id, token, now).unwrap();
                            model.lease_over(id, step);
                        }
                    }
                    stale.push((id, token));
                } else if let Some(&(id, token)) = stale.last() {
                    // A late ack of a lease that is over is refused, and changes nothing.
                    assert!(book.ack(id, token, now).is_err(), "late ack, {context}");
                }
            }
            75..=79 => {
                model.promote(now, step);
                let leases = model.leases();
                if let Some(&(id, token)) = leases.first() {
                    let until = book.extend(id, token, 80, now).unwrap();
                    assert_eq!(until, now + 80);
                    if let Where::Leased { until: u, .. } =
                        &mut model.tasks.get_mut(&id).unwrap().state
                    {
                        *u = until;
                    }
                }
            }
            80..=91 => now += rng.below(40),
            92..=95 => {
                let connection = 1 + rng.below(3);
                model.promote(now, step);
                book.promote(now);
                let theirs: Vec<u64> = model
                    .tasks
                    .iter()
                    .filter(|(_, t)| matches!(t.state, Where::Leased { connection: c, .. } if c == connection))
                    .map(|(&id, _)| id)
                    .collect();
                // The book returns them in lease order (end time, then id).
                let mut ordered: Vec<(u64, u64)> = theirs
                    .iter()
                    .map(|id| match model.tasks[id].state {
                        Where::Leased { until, .. } => (until, *id),
                        _ => unreachable!(),
                    })
                    .collect();
                ordered.sort();
                assert_eq!(
                    book.connection_closed(connection),
                    theirs.len(),
                    "{context}"
                );
                for (_, id) in ordered {
                    model.lease_over(id, step);
                }
            }
            96..=97 => {
                let n = book.requeue(None);
                let dead: Vec<u64> = model
                    .tasks
                    .iter()
                    .filter(|(_, t)| t.state == Where::Dead)
                    .map(|(&id, _)| id)
                    .collect();
                assert_eq!(n, dead.len() as u64, "{context}");
                for id in dead {
                    model.tasks.get_mut(&id).unwrap().attempts = 0;
                    model.make_ready(id, step);
                }
            }
            _ => {
                let n = book.purge_dead();
                let before = model.tasks.len();
                model.tasks.retain(|_, t| t.state != Where::Dead);
                let tasks = &model.tasks;
                model.inputs.retain(|id, _| tasks.contains_key(id));
                assert_eq!(n as usize, before - model.tasks.len(), "{context}");
            }
        }
        model.promote(now, step);
        book.promote(now);
        let expired = book.expire_finished(now).len();
        let before = model.finished.len();
        model.finished.retain(|_, at| *at + RESULT_TTL > now);
        assert_eq!(expired, before - model.finished.len(), "expired, {context}");
        model.check(&book, now, &context);
    }
}

#[test]
fn the_book_matches_the_model() {
    for seed in 1..=200 {
        run(seed, 400);
    }
}

#[test]
fn dedup_keys_hold_until_the_task_is_done() {
    let mut book = Book::new(Settings::default(), 1);
    let with_key = || PushOptions {
        dedup: Some("invoice-7".into()),
        ..PushOptions::default()
    };
    let (first, new) = book.push(Bytes(vec![1]), with_key(), 0);
    assert!(new);
    let (again, new) = book.push(Bytes(vec![2]), with_key(), 0);
    assert_eq!((again, new), (first, false));
    let lease = book.take(1, 1, 0).remove(0);
    let (again, new) = book.push(Bytes(vec![3]), with_key(), 0);
    assert_eq!(
        (again, new),
        (first, false),
        "a leased task still holds its key"
    );
    book.ack(lease.id, lease.token, 0).unwrap();
    let (after, new) = book.push(Bytes(vec![4]), with_key(), 0);
    assert!(new && after != first, "once done, the key is free");
}

#[test]
fn a_lease_that_expires_on_its_last_attempt_goes_to_the_dead_letters() {
    let settings = Settings {
        lease_ms: 10,
        max_attempts: 2,
        ..Settings::default()
    };
    let mut book = Book::new(settings, 1);
    book.push(Bytes(vec![1]), PushOptions::default(), 0);
    let first = book.take(1, 1, 0).remove(0);
    book.promote(11);
    assert_eq!(book.counts(11).ready, 1);
    assert!(
        book.ack(first.id, first.token, 11).is_err(),
        "the expired lease is over"
    );
    let second = book.take(1, 1, 11).remove(0);
    assert_eq!(second.attempt, 2);
    book.promote(22);
    let dead = book.dead(0, 10);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].reasons,
        vec!["its lease expired", "its lease expired"]
    );
}
