//! Workflows through the public API over real sockets: chords (`push_group`), chains, graphs
//! of both nested, what a task's parents gave it (`Task::inputs`), a dead member's effect on
//! its callback, and graphs pushed whole or not at all.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::KEY;
use monogusa::{
    After, Client, Manager, ManagerHandle, PushOptions, RemoteErrorKind, TaskId, TaskQueue,
    TaskQueueSettings, TaskResult, TaskStatus,
};
use serde::{Deserialize, Serialize};

/// The tasks of these tests: one queue, one type, as a typed queue's workflows are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Job {
    /// Gives `n * n`.
    Square(u64),
    /// Gives the sum of its inputs' results.
    Sum,
    /// Gives its one input's result plus `n` (0 without one).
    Add(u64),
    /// Fails for good.
    Broken,
}

fn start() -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn queue(manager: &ManagerHandle, name: &str) -> TaskQueue<Job> {
    let client = Client::connect(manager.address(), KEY).unwrap();
    client
        .named(name)
        .tasks::<Job>(TaskQueueSettings {
            max_attempts: 1,
            ..TaskQueueSettings::default()
        })
        .unwrap()
}

fn kind(error: &monogusa::Error) -> Option<RemoteErrorKind> {
    match error {
        monogusa::Error::Remote(e) => Some(e.kind()),
        _ => None,
    }
}

/// Takes one task and runs it as a worker would; its id.
fn work_one(jobs: &TaskQueue<Job>) -> TaskId {
    let task = jobs.take(Duration::from_secs(5)).unwrap().expect("a task");
    let id = task.id();
    match task.payload().clone() {
        Job::Square(n) => task.ack_with_result(&(n * n)).unwrap(),
        Job::Sum => {
            let inputs = task.inputs::<u64>().unwrap();
            let sum = inputs
                .iter()
                .map(|r| match r {
                    TaskResult::Done(Some(v)) => *v,
                    _ => 0,
                })
                .sum::<u64>();
            task.ack_with_result(&sum).unwrap();
        }
        Job::Add(n) => {
            let before = match task.inputs::<u64>().unwrap().as_slice() {
                [] => 0,
                [TaskResult::Done(Some(v))] => *v,
                other => panic!("a chain step has one input: {other:?}"),
            };
            task.ack_with_result(&(before + n)).unwrap();
        }
        Job::Broken => task.fail_permanently("broken on purpose").unwrap(),
    }
    id
}

/// A chord: the callback waits until the last member is done, whatever order they finish in,
/// and gets every result in the members' order.
#[test]
fn a_chord_runs_its_callback_once_with_every_result_in_order() {
    let manager = start();
    let jobs = queue(&manager, "chord");
    let members: Vec<Job> = (1..=5).map(Job::Square).collect();
    let group = jobs.push_group(&members, &Job::Sum).unwrap();
    assert_eq!(group.members.len(), 5);
    assert_eq!(jobs.status(group.id).unwrap(), TaskStatus::Waiting);
    // Members finish in reverse order: the results still come in the members' order.
    let mut taken = jobs.take_many(5, Duration::from_secs(5)).unwrap();
    assert_eq!(taken.len(), 5, "the callback is not among the ready tasks");
    while let Some(task) = taken.pop() {
        assert_eq!(jobs.status(group.id).unwrap(), TaskStatus::Waiting);
        let Job::Square(n) = *task.payload() else {
            panic!("a member")
        };
        task.ack_with_result(&(n * n)).unwrap();
    }
    assert_eq!(jobs.status(group.id).unwrap(), TaskStatus::Ready);
    let callback = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(callback.id(), group.id);
    assert_eq!(
        callback.inputs::<u64>().unwrap(),
        [1, 4, 9, 16, 25].map(|v| TaskResult::Done(Some(v)))
    );
    callback.ack_with_result(&55u64).unwrap();
    assert_eq!(
        jobs.result::<u64>(group.id, Duration::from_secs(5))
            .unwrap(),
        TaskResult::Done(Some(55))
    );
    assert!(
        jobs.take(Duration::from_millis(50)).unwrap().is_none(),
        "it ran once"
    );
    // A task pushed without parents has no inputs.
    jobs.push(&Job::Square(3)).unwrap();
    let plain = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert!(plain.inputs::<u64>().unwrap().is_empty());
    plain.ack().unwrap();
}

/// A member that dies takes its callback with it, saying which; a callback pushed to run
/// anyway runs, the dead member's reasons in its place among the inputs.
#[test]
fn a_dead_member_kills_its_callback_unless_it_runs_anyway() {
    let manager = start();
    let jobs = queue(&manager, "dead-member");
    let members = [Job::Square(2), Job::Broken, Job::Square(3)];
    let strict = jobs.push_group(&members, &Job::Sum).unwrap();
    for _ in 0..3 {
        work_one(&jobs);
    }
    let broken = strict.members[1];
    assert_eq!(
        jobs.result::<u64>(strict.id, Duration::ZERO).unwrap(),
        TaskResult::Dead(vec![format!(
            "task {}, which it runs after, died",
            broken.0
        )])
    );
    let lenient = jobs
        .push_group_with(
            &members,
            &Job::Sum,
            &PushOptions {
                run_if_parents_die: true,
                ..PushOptions::default()
            },
        )
        .unwrap();
    for _ in 0..3 {
        work_one(&jobs);
    }
    let callback = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(callback.id(), lenient.id);
    assert_eq!(
        callback.inputs::<u64>().unwrap(),
        vec![
            TaskResult::Done(Some(4)),
            TaskResult::Dead(vec!["broken on purpose".to_string()]),
            TaskResult::Done(Some(9)),
        ]
    );
    callback.ack().unwrap();
    // Pushed after a member dead already: dead at once, or ready with its reasons.
    let late = jobs
        .push_after(&[broken, strict.members[0]], &Job::Sum)
        .unwrap();
    assert_eq!(jobs.status(late).unwrap(), TaskStatus::Dead);
}

/// A chain: each step runs after the one before, on its result; a step that dies takes the
/// rest with it.
#[test]
fn a_chain_passes_each_result_to_the_next_step() {
    let manager = start();
    let jobs = queue(&manager, "chain");
    let ids = jobs
        .push_chain(&[Job::Add(1), Job::Add(10), Job::Add(100)])
        .unwrap();
    assert_eq!(
        ids.iter()
            .map(|&id| jobs.status(id).unwrap())
            .collect::<Vec<_>>(),
        [TaskStatus::Ready, TaskStatus::Waiting, TaskStatus::Waiting]
    );
    for &id in &ids {
        assert_eq!(work_one(&jobs), id, "steps run in order");
    }
    assert_eq!(
        jobs.result::<u64>(ids[2], Duration::ZERO).unwrap(),
        TaskResult::Done(Some(111))
    );
    let broken = jobs
        .push_chain(&[Job::Broken, Job::Add(1), Job::Add(2)])
        .unwrap();
    work_one(&jobs);
    for &id in &broken[1..] {
        assert_eq!(jobs.status(id).unwrap(), TaskStatus::Dead);
    }
    assert!(jobs.join(Duration::from_secs(5)).unwrap());
}

/// Groups nested in one graph, pushed in one commit: two chords and a task that runs on both
/// callbacks' results, after a task pushed before the graph.
#[test]
fn nested_groups_in_one_graph() {
    let manager = start();
    let jobs = queue(&manager, "nested");
    let earlier = jobs.push(&Job::Square(10)).unwrap();
    let mut graph = jobs.graph();
    let a: Vec<After> = [1, 2].map(|n| graph.add(&Job::Square(n)).into()).to_vec();
    let sum_a = graph.add_after(&a, &Job::Sum);
    let b: Vec<After> = [3, 4].map(|n| graph.add(&Job::Square(n)).into()).to_vec();
    let sum_b = graph.add_after(&b, &Job::Sum);
    let total = graph.add_after(&[sum_a.into(), sum_b.into(), earlier.into()], &Job::Sum);
    assert_eq!(graph.len(), 7);
    let ids = graph.push().unwrap();
    assert_eq!(ids.len(), 7);
    let total = ids[total.index()];
    while jobs.status(total).unwrap() != TaskStatus::Done {
        work_one(&jobs);
    }
    // (1 + 4) + (9 + 16) + 100
    assert_eq!(
        jobs.result::<u64>(total, Duration::ZERO).unwrap(),
        TaskResult::Done(Some(130))
    );
    assert_eq!(
        jobs.result::<u64>(ids[sum_b.index()], Duration::ZERO)
            .unwrap(),
        TaskResult::Done(Some(25))
    );
}

/// A graph is pushed whole or not at all: an unknown parent, or a parent named after the task
/// that runs after it, pushes nothing.
#[test]
fn a_graph_with_a_bad_parent_pushes_nothing() {
    let manager = start();
    let jobs = queue(&manager, "refused");
    let mut graph = jobs.graph();
    let a = graph.add(&Job::Square(1));
    graph.add_after(&[a.into(), TaskId(424_242).into()], &Job::Sum);
    let refused = graph.push().unwrap_err();
    assert_eq!(kind(&refused), Some(RemoteErrorKind::BadArguments));
    assert!(
        refused.to_string().contains("task 424242 is not known"),
        "{refused}"
    );
    let stats = jobs.stats().unwrap();
    assert_eq!((stats.ready, stats.delayed), (0, 0), "nothing was pushed");
    // A parent that is not before its task (a cycle, or a typo) is refused too.
    let mut graph = jobs.graph();
    let first = graph.add(&Job::Square(1));
    let second = graph.add(&Job::Square(2));
    let mut backwards = jobs.graph();
    backwards.add_after(&[second.into()], &Job::Sum);
    backwards.add(&Job::Square(2));
    let refused = backwards.push().unwrap_err();
    assert_eq!(kind(&refused), Some(RemoteErrorKind::BadArguments));
    assert_eq!(jobs.stats().unwrap().ready, 0);
    let _ = first;
    assert_eq!(graph.push().unwrap().len(), 2);
}

/// The chord's exactness across crashes: a manager with a data directory is killed with
/// SIGKILL at random points (at least 20 times) while workers run a 10,000-task chord and its
/// callback; after each restart the work goes on. The callback is never delivered before
/// every member's result is in, it gets every result in order, and it is done once.
#[test]
fn a_chord_survives_sigkills_of_its_manager_and_calls_back_exactly_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    const MEMBERS: u64 = 10_000;
    const CALLBACK: u64 = u64::MAX;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let start = || common::ChildManager::start(&["--data-dir", &data]);
    let open = |address: &monogusa::Address| -> monogusa::Result<TaskQueue<u64>> {
        Client::builder(address, KEY)
            .reconnect(0, Duration::ZERO)
            .connect()?
            .tasks::<u64>("chord")
    };
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut random = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };

    // The push itself is one commit: killed right after it starts, the chord is there whole
    // or not at all.
    let members: Vec<u64> = (0..MEMBERS).collect();
    let mut manager = start();
    let pusher = {
        let jobs = open(&manager.address).unwrap();
        let members = members.clone();
        std::thread::spawn(move || jobs.push_group(&members, &CALLBACK).ok())
    };
    std::thread::sleep(Duration::from_millis(random(30)));
    manager.child.kill().unwrap();
    manager.child.wait().unwrap();
    let pushed_before_kill = pusher.join().unwrap();
    manager = start();
    let jobs = open(&manager.address).unwrap();
    let stats = jobs.stats().unwrap();
    let group = match stats.ready + stats.delayed {
        0 => {
            assert!(
                pushed_before_kill.is_none(),
                "a push that said yes was lost"
            );
            jobs.push_group(&members, &CALLBACK).unwrap()
        }
        n => {
            assert_eq!(n, MEMBERS + 1, "the chord was pushed whole");
            let ids: Vec<TaskId> = (1..=MEMBERS).map(TaskId).collect();
            if let Some(group) = &pushed_before_kill {
                assert_eq!(group.members, ids);
            }
            monogusa::Group {
                id: TaskId(MEMBERS + 1),
                members: ids,
            }
        }
    };
    assert_eq!(jobs.status(group.id).unwrap(), TaskStatus::Waiting);
    drop(jobs);

    let acks = Arc::new(AtomicU64::new(0));
    let callback_done = Arc::new(AtomicU64::new(0));
    let mut kills = 0;
    loop {
        // Workers run until the manager is killed under them (their next call fails).
        let workers: Vec<_> = (0..6)
            .map(|_| {
                let jobs = open(&manager.address).unwrap();
                let (acks, callback_done) = (Arc::clone(&acks), Arc::clone(&callback_done));
                std::thread::spawn(move || -> monogusa::Result<()> {
                    loop {
                        for task in jobs.take_many(20, Duration::from_millis(100))? {
                            if *task.payload() != CALLBACK {
                                let result = task.payload() * 2;
                                task.ack_with_result(&result)?;
                                acks.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            // Never early: every member's result is in, in order.
                            let inputs = task.inputs::<u64>()?;
                            assert_eq!(inputs.len() as u64, MEMBERS);
                            for (i, input) in inputs.iter().enumerate() {
                                assert_eq!(*input, TaskResult::Done(Some(2 * i as u64)));
                            }
                            let sum: u64 = (0..MEMBERS).map(|i| 2 * i).sum();
                            // A pause while holding it: room for a kill mid-lease.
                            std::thread::sleep(Duration::from_millis(20));
                            task.ack_with_result(&sum)?;
                            callback_done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let finished = |jobs: &TaskQueue<u64>| jobs.status(group.id).ok() == Some(TaskStatus::Done);
        let watcher = open(&manager.address).unwrap();
        let from = acks.load(Ordering::Relaxed);
        let step = 100 + random(400);
        common::wait_until(Duration::from_secs(120), "progress or the end", || {
            acks.load(Ordering::Relaxed) >= from + step
                || watcher.status(group.id).ok() != Some(TaskStatus::Waiting)
        });
        // Near the end, a kill lands while the callback is ready or leased, some of the time.
        std::thread::sleep(Duration::from_millis(random(25)));
        let done = finished(&watcher);
        if !done || kills < 20 {
            manager.child.kill().unwrap();
            manager.child.wait().unwrap();
            kills += 1;
        }
        for worker in workers {
            if !done || kills < 20 {
                assert!(
                    worker.join().unwrap().is_err(),
                    "a worker stops at the kill"
                );
            } else {
                drop(worker); // left blocked in its take; ends with the manager
            }
        }
        if done && kills >= 20 {
            break;
        }
        drop(watcher);
        manager = start();
    }
    let jobs = open(&manager.address).unwrap();
    let sum: u64 = (0..MEMBERS).map(|i| 2 * i).sum();
    assert_eq!(
        jobs.result::<u64>(group.id, Duration::ZERO).unwrap(),
        TaskResult::Done(Some(sum))
    );
    let stats = jobs.stats().unwrap();
    assert_eq!(
        stats.done,
        MEMBERS + 1,
        "every member and the callback done once"
    );
    assert_eq!(stats.ready + stats.delayed + stats.leased + stats.dead, 0);
    // An ack whose reply the kill cut is done but not counted: never more than once.
    assert!(callback_done.load(Ordering::Relaxed) <= 1);
    println!(
        "{kills} kills; {} member acks seen of {MEMBERS}",
        acks.load(Ordering::Relaxed)
    );
    manager.child.kill().unwrap();
    manager.child.wait().unwrap();
}

/// `ack_with`: the ack, a counter's add, a dict's key, a value, a new task and the result,
/// all in one call; a late ack (its lease over) writes none of it.
#[test]
fn an_ack_with_writes_applies_all_of_them_or_none() {
    let manager = start();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client
        .named("tx")
        .tasks::<Job>(TaskQueueSettings {
            lease_timeout: Duration::from_millis(300),
            ..TaskQueueSettings::default()
        })
        .unwrap();
    let counter = client.counter("tx-count").unwrap();
    let dict = client.dict::<String, u64>("tx-dict").unwrap();
    let value = client.value::<String>("tx-value").unwrap();
    let first = jobs.push(&Job::Square(3)).unwrap();
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    task.ack_with(|tx| {
        tx.add(&counter, 5)?
            .insert(&dict, &"nine".to_string(), &9)?
            .set(&value, &"set".to_string())?
            .push(&Job::Sum)?
            .result(&9u64)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(counter.get().unwrap(), 5);
    assert_eq!(dict.get(&"nine".to_string()).unwrap(), Some(9));
    assert_eq!(value.get().unwrap(), Some("set".to_string()));
    assert_eq!(
        jobs.result::<u64>(first, Duration::ZERO).unwrap(),
        TaskResult::Done(Some(9))
    );
    let pushed = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(*pushed.payload(), Job::Sum);

    // A late ack: the lease ran out and the task is back in the queue. Nothing is written.
    let stale = pushed;
    common::wait_until(Duration::from_secs(10), "the lease runs out", || {
        jobs.status(stale.id()).unwrap() == TaskStatus::Ready
    });
    let refused = stale
        .ack_with(|tx| {
            tx.add(&counter, 100)?
                .insert(&dict, &"late".to_string(), &1)?
                .push(&Job::Square(1))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(
        kind(&refused),
        Some(RemoteErrorKind::LeaseExpired),
        "{refused}"
    );
    assert_eq!(counter.get().unwrap(), 5);
    assert_eq!(dict.get(&"late".to_string()).unwrap(), None);
    let stats = jobs.stats().unwrap();
    assert_eq!((stats.ready, stats.leased), (1, 0), "no task was pushed");
}

/// A write that cannot be made (an overflow, a full store) undoes the writes before it; the
/// ack is not applied and the task goes back to the queue.
#[test]
fn an_ack_with_a_write_that_fails_undoes_the_others() {
    let manager = Manager::builder()
        .authkey(KEY)
        .max_item_bytes(1000)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.tasks::<Job>("tx-undo").unwrap();
    let counter = client.counter("tx-a").unwrap();
    let full = client.counter("tx-full").unwrap();
    full.set(i64::MAX).unwrap();
    let dict = client.dict::<String, String>("tx-d").unwrap();
    dict.insert(&"kept".to_string(), &"before".to_string())
        .unwrap();
    let value = client.value::<String>("tx-v").unwrap();
    value.set(&"before".to_string()).unwrap();
    let id = jobs.push(&Job::Square(2)).unwrap();

    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    let refused = task
        .ack_with(|tx| {
            tx.add(&counter, 1)?
                .insert(&dict, &"kept".to_string(), &"after".to_string())?
                .remove(&dict, &"kept".to_string())?
                .set(&value, &"after".to_string())?
                .push(&Job::Sum)?
                .add(&full, 1)?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(kind(&refused), Some(RemoteErrorKind::Misuse), "{refused}");
    assert!(refused.to_string().contains("overflows"), "{refused}");
    let unchanged = || {
        assert_eq!(counter.get().unwrap(), 0);
        assert_eq!(full.get().unwrap(), i64::MAX);
        assert_eq!(
            dict.get(&"kept".to_string()).unwrap(),
            Some("before".to_string())
        );
        assert_eq!(value.get().unwrap(), Some("before".to_string()));
        assert_eq!(
            jobs.status(id).unwrap(),
            TaskStatus::Ready,
            "back in the queue"
        );
        assert_eq!(jobs.stats().unwrap().ready, 1, "nothing was pushed");
    };
    unchanged();

    // Over the store's limit per item: refused, the same way.
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    let refused = task
        .ack_with(|tx| {
            tx.add(&counter, 1)?.set(&value, &"x".repeat(2000))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(
        kind(&refused),
        Some(RemoteErrorKind::LimitExceeded),
        "{refused}"
    );
    unchanged();

    // A counter of another manager: not this one's object, refused before anything.
    let other = start();
    let elsewhere = Client::connect(other.address(), KEY)
        .unwrap()
        .counter("tx-a")
        .unwrap();
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    let refused = task
        .ack_with(|tx| {
            tx.add(&counter, 1)?.add(&elsewhere, 1)?;
            Ok(())
        })
        .unwrap_err();
    assert!(kind(&refused).is_some(), "a remote error: {refused}");
    assert_eq!(elsewhere.get().unwrap(), 0);
    unchanged();
}

/// `ack_with` is one commit across SIGKILLs of a manager with a data directory: after every
/// restart the counter and the dict each workers' acks write agree with the queue's count of
/// done tasks, whatever the kill interrupted.
#[test]
fn acks_with_writes_stay_whole_across_sigkills() {
    const TASKS: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let start = || common::ChildManager::start(&["--data-dir", &data]);
    let open = |address: &monogusa::Address| -> monogusa::Result<Client> {
        Client::builder(address, KEY)
            .reconnect(0, Duration::ZERO)
            .connect()
    };
    let mut manager = start();
    let client = open(&manager.address).unwrap();
    let tasks: Vec<u64> = (0..TASKS).collect();
    client
        .tasks::<u64>("tx-kill")
        .unwrap()
        .push_many(&tasks)
        .unwrap();
    drop(client);
    for round in 0.. {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let client = open(&manager.address).unwrap();
                std::thread::spawn(move || -> monogusa::Result<()> {
                    let jobs = client.tasks::<u64>("tx-kill")?;
                    let done = client.counter("tx-kill-done")?;
                    let seen = client.dict::<u64, u64>("tx-kill-seen")?;
                    loop {
                        for task in jobs.take_many(10, Duration::from_millis(100))? {
                            let n = *task.payload();
                            task.ack_with(|tx| {
                                tx.add(&done, 1)?.insert(&seen, &n, &(n * 2))?;
                                Ok(())
                            })?;
                        }
                    }
                })
            })
            .collect();
        let watcher = open(&manager.address).unwrap();
        let jobs = watcher.tasks::<u64>("tx-kill").unwrap();
        let from = jobs.stats().unwrap().done;
        common::wait_until(Duration::from_secs(120), "progress", || {
            jobs.stats()
                .is_ok_and(|s| s.done >= (from + 300).min(TASKS))
        });
        let finished = jobs.stats().unwrap().done == TASKS;
        manager.child.kill().unwrap();
        manager.child.wait().unwrap();
        for worker in workers {
            assert!(worker.join().unwrap().is_err());
        }
        manager = start();
        let client = open(&manager.address).unwrap();
        let done = client
            .tasks::<u64>("tx-kill")
            .unwrap()
            .stats()
            .unwrap()
            .done;
        let counted = client.counter("tx-kill-done").unwrap().get().unwrap();
        let seen = client
            .dict::<u64, u64>("tx-kill-seen")
            .unwrap()
            .len()
            .unwrap();
        assert_eq!(
            (counted as u64, seen),
            (done, done),
            "round {round}: the writes and the acks agree"
        );
        if finished && round >= 4 {
            break;
        }
    }
    manager.child.kill().unwrap();
    manager.child.wait().unwrap();
}

/// `monogusa tasks status|result QUEUE ID` on a typed queue: where a task is, a plain result
/// as JSON, a Rust result named as such, a dead task's reasons (exit code 1), an unknown queue.
#[test]
fn the_cli_shows_a_task_status_and_result() {
    let manager = start();
    let jobs = queue(&manager, "cli-jobs");
    let plain = jobs.push(&Job::Square(1)).unwrap();
    let typed = jobs.push(&Job::Square(2)).unwrap();
    let broken = jobs.push(&Job::Broken).unwrap();
    let waiting = jobs.push_after(&[plain], &Job::Sum).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::monogusa_binary())
            .arg("tasks")
            .args(args)
            .args(["--connect", &manager.address().to_string()])
            .env("MONOGUSA_AUTHKEY", KEY)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let status = |id: TaskId| cli(&["status", "cli-jobs", &id.0.to_string()]);
    assert_eq!(
        status(waiting),
        (Some(0), "waiting (for the tasks it runs after)\n".into())
    );
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(status(plain), (Some(0), "leased (attempt 1)\n".into()));
    let value = monogusa::Dynamic::Map(vec![(
        monogusa::Dynamic::Str("squared".into()),
        monogusa::Dynamic::Int(1),
    )]);
    task.ack_with_result(&value).unwrap();
    assert_eq!(status(plain), (Some(0), "done\n".into()));
    assert_eq!(
        cli(&["result", "cli-jobs", &plain.0.to_string()]),
        (Some(0), "{\"squared\":1}\n".into())
    );
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(task.id(), typed);
    task.ack_with_result(&4u64).unwrap();
    let (code, text) = cli(&["result", "cli-jobs", &typed.0.to_string()]);
    assert_eq!(code, Some(0));
    assert!(text.contains("a Rust value"), "{text}");
    work_one(&jobs);
    let (code, text) = cli(&["result", "cli-jobs", &broken.0.to_string(), "--for", "1"]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("dead after 1 failures") && text.contains("broken on purpose"),
        "{text}"
    );
    let (code, text) = cli(&["result", "cli-jobs", &waiting.0.to_string()]);
    assert_eq!((code, text.as_str()), (Some(1), "not finished (ready)\n"));
    let (code, text) = cli(&["status", "no-such-queue", "1"]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("no task queue named \"no-such-queue\""),
        "{text}"
    );
}

/// `on_result`: callbacks with each task's outcome as it finishes (done already, done later,
/// dead, not known), from one watcher, without waiting in the caller.
#[test]
fn on_result_calls_back_as_tasks_finish() {
    let manager = start();
    let jobs = queue(&manager, "watched");
    let early = jobs.push(&Job::Square(2)).unwrap();
    work_one(&jobs);
    let later = jobs.push(&Job::Square(3)).unwrap();
    let broken = jobs.push(&Job::Broken).unwrap();
    let (sender, results) = std::sync::mpsc::channel();
    for id in [early, later, broken, TaskId(999_999)] {
        let sender = sender.clone();
        jobs.on_result::<u64>(id, move |result| {
            sender.send((id, result.unwrap())).unwrap()
        })
        .unwrap();
    }
    let first = results.recv_timeout(Duration::from_secs(10)).unwrap();
    let second = results.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut got = vec![first, second];
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(
        got,
        vec![
            (early, TaskResult::Done(Some(4))),
            (TaskId(999_999), TaskResult::Unknown)
        ]
    );
    assert!(results.try_recv().is_err(), "the others are not finished");
    work_one(&jobs);
    work_one(&jobs);
    let mut got: Vec<_> = (0..2)
        .map(|_| results.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(
        got,
        vec![
            (later, TaskResult::Done(Some(9))),
            (
                broken,
                TaskResult::Dead(vec!["broken on purpose".to_string()])
            )
        ]
    );
}

/// A queue's own result time-to-live: its done tasks are forgotten after it, while another
/// queue keeps the manager's default.
#[test]
fn a_queue_keeps_results_for_its_own_time() {
    let manager = start();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let brief = client
        .named("brief")
        .tasks::<Job>(TaskQueueSettings {
            result_ttl: Some(Duration::from_millis(200)),
            ..TaskQueueSettings::default()
        })
        .unwrap();
    assert_eq!(
        brief.settings().unwrap().result_ttl,
        Some(Duration::from_millis(200))
    );
    let kept = queue(&manager, "kept");
    let short = brief.push(&Job::Square(2)).unwrap();
    let long = kept.push(&Job::Square(3)).unwrap();
    work_one(&brief);
    work_one(&kept);
    assert_eq!(brief.status(short).unwrap(), TaskStatus::Done);
    common::wait_until(Duration::from_secs(10), "the brief result expires", || {
        brief.status(short).unwrap() == TaskStatus::Unknown
    });
    assert_eq!(
        brief.result::<u64>(short, Duration::ZERO).unwrap(),
        TaskResult::Unknown
    );
    assert_eq!(
        kept.result::<u64>(long, Duration::ZERO).unwrap(),
        TaskResult::Done(Some(9))
    );
}

/// A result copied to the tasks waiting for it is charged to the store: when the copies do
/// not fit, the ack is refused and changes nothing (the parent goes back, its dependants
/// still wait).
#[test]
fn a_result_whose_copies_do_not_fit_is_refused_whole() {
    let manager = Manager::builder()
        .authkey(KEY)
        .max_store_bytes(20_000)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let jobs = Client::connect(manager.address(), KEY)
        .unwrap()
        .tasks::<Job>("copies")
        .unwrap();
    let parent = jobs.push(&Job::Square(1)).unwrap();
    let children: Vec<TaskId> = (0..8)
        .map(|_| jobs.push_after(&[parent], &Job::Sum).unwrap())
        .collect();
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    // 8 copies of 3,000 bytes: over the store's 20,000.
    let refused = task.ack_with_result(&vec![7u8; 3_000]).unwrap_err();
    assert_eq!(
        kind(&refused),
        Some(RemoteErrorKind::LimitExceeded),
        "{refused}"
    );
    assert_eq!(
        jobs.status(parent).unwrap(),
        TaskStatus::Ready,
        "back in the queue"
    );
    for child in &children {
        assert_eq!(jobs.status(*child).unwrap(), TaskStatus::Waiting);
    }
    // A small result fits: the children are released with it.
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    task.ack_with_result(&1u64).unwrap();
    for child in &children {
        assert_eq!(jobs.status(*child).unwrap(), TaskStatus::Ready);
    }
}
