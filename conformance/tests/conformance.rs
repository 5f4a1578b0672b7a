//! One conformance suite, run unchanged against every backend `monogusa::connect` opens: a
//! manager in memory, a manager with a data directory, Redis (a `redis-server` of the test's
//! own), and, for task queues, SQS (moto's server, the local stand-in, not AWS). The same
//! behaviours, the same assertions; what SQS cannot do (dedup keys, a count of acked tasks)
//! is checked to be refused or skipped for it by name, and what differs by design (a dead
//! holder's lock, a dead worker's leases) is tested per backend at the end.

#[path = "../../tests/common/mod.rs"]
mod common;
mod servers;

use std::time::Duration;

use common::{KEY, wait_until};
use monogusa::{
    Manager, ManagerHandle, PushOptions, RemoteErrorKind, Retry, Store, TaskQueueSettings,
};
use servers::{MotoServer, RedisServer};

/// What keeps a backend alive for a test.
enum Fixture {
    /// The manager, and its data directory (kept until the test ends).
    Manager(ManagerHandle, #[allow(dead_code)] Option<tempfile::TempDir>),
    Redis(RedisServer),
    Sqs(MotoServer),
}

impl Fixture {
    fn store(&self) -> Store {
        match self {
            Fixture::Manager(manager, _) => {
                Store::from(monogusa::Client::connect(manager.address(), KEY).unwrap())
            }
            Fixture::Redis(redis) => monogusa::connect(&redis.url()).unwrap(),
            Fixture::Sqs(moto) => moto.store(),
        }
    }

    /// SQS has no dedup keys and keeps no count of acked tasks.
    fn is_sqs(&self) -> bool {
        matches!(self, Fixture::Sqs(_))
    }
}

/// Every backend of task queues: those of shared objects, and SQS.
fn task_backends() -> Vec<(&'static str, Fixture)> {
    let mut all = backends();
    if let Some(moto) = MotoServer::start() {
        all.push(("sqs (moto)", Fixture::Sqs(moto)));
    }
    all
}

/// Every backend of shared objects, by name.
fn backends() -> Vec<(&'static str, Fixture)> {
    let memory = Manager::builder()
        .authkey(KEY)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let durable = Manager::builder()
        .authkey(KEY)
        .data_dir(dir.path())
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut all = vec![
        ("manager in memory", Fixture::Manager(memory, None)),
        (
            "manager with a data dir",
            Fixture::Manager(durable, Some(dir)),
        ),
    ];
    if let Some(redis) = RedisServer::start(&[]) {
        all.push(("redis", Fixture::Redis(redis)));
    }
    all
}

fn kind(e: &monogusa::Error) -> Option<RemoteErrorKind> {
    e.remote_kind()
}

fn quick(lease: Duration, attempts: u32) -> TaskQueueSettings {
    TaskQueueSettings {
        lease_timeout: lease,
        max_attempts: attempts,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        ..TaskQueueSettings::default()
    }
}

#[test]
fn counters_count_exactly_under_concurrency() {
    for (backend, fixture) in backends() {
        let store = fixture.store();
        let counter = store.counter("hits").unwrap();
        assert_eq!(counter.get().unwrap(), 0, "{backend}");
        assert_eq!(counter.add(5).unwrap(), 5, "{backend}");
        assert_eq!(counter.set(10).unwrap(), 5, "{backend}");
        std::thread::scope(|s| {
            for _ in 0..4 {
                let counter = fixture.store().counter("hits").unwrap();
                s.spawn(move || {
                    for _ in 0..100 {
                        counter.add(1).unwrap();
                    }
                });
            }
        });
        assert_eq!(counter.get().unwrap(), 410, "{backend}");
        counter.set(i64::MAX).unwrap();
        let overflow = counter.add(1).unwrap_err();
        assert_eq!(
            kind(&overflow),
            Some(RemoteErrorKind::Misuse),
            "{backend}: {overflow}"
        );
        assert_eq!(counter.get().unwrap(), i64::MAX, "{backend}: unchanged");
        // Pipelined calls: a manager's objects take them; Redis's refuse, clearly.
        match fixture {
            Fixture::Redis(_) => {
                let refused = counter.send().add(0).unwrap_err();
                assert!(refused.to_string().contains("pipelined"), "{refused}");
            }
            _ => assert_eq!(counter.send().add(0).unwrap().wait().unwrap(), i64::MAX),
        }
    }
}

#[test]
fn dicts_behave_alike_and_refuse_other_types() {
    for (backend, fixture) in backends() {
        let store = fixture.store();
        let dict = store.dict::<String, i64>("scores").unwrap();
        assert_eq!(dict.insert(&"ada".into(), &1).unwrap(), None, "{backend}");
        assert_eq!(
            dict.insert(&"ada".into(), &2).unwrap(),
            Some(1),
            "{backend}"
        );
        assert_eq!(dict.get(&"ada".into()).unwrap(), Some(2), "{backend}");
        assert!(dict.contains(&"ada".into()).unwrap(), "{backend}");
        assert!(
            dict.insert_if_absent(&"alan".into(), &7).unwrap(),
            "{backend}"
        );
        assert!(
            !dict.insert_if_absent(&"alan".into(), &8).unwrap(),
            "{backend}"
        );
        assert_eq!(
            dict.update_counter(&"alan".into(), 3).unwrap(),
            10,
            "{backend}"
        );
        assert_eq!(
            dict.update_counter(&"grace".into(), -1).unwrap(),
            -1,
            "{backend}"
        );
        assert_eq!(dict.len().unwrap(), 3, "{backend}");
        let mut keys = dict.keys().unwrap();
        keys.sort();
        assert_eq!(keys, ["ada", "alan", "grace"], "{backend}");
        let mut items = dict.items().unwrap();
        items.sort();
        assert_eq!(items[1], ("alan".to_string(), 10), "{backend}");
        assert_eq!(dict.remove(&"ada".into()).unwrap(), Some(2), "{backend}");
        assert_eq!(dict.remove(&"ada".into()).unwrap(), None, "{backend}");
        // Concurrent update_counter calls are exact.
        std::thread::scope(|s| {
            for _ in 0..4 {
                let dict = fixture.store().dict::<String, i64>("scores").unwrap();
                s.spawn(move || {
                    for _ in 0..50 {
                        dict.update_counter(&"shared".into(), 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(dict.get(&"shared".into()).unwrap(), Some(200), "{backend}");
        dict.clear().unwrap();
        assert!(dict.is_empty().unwrap(), "{backend}");
        let wrong = store.dict::<String, String>("scores").unwrap_err();
        assert_eq!(
            kind(&wrong),
            Some(RemoteErrorKind::WrongService),
            "{backend}: {wrong}"
        );
        let other_kind = store.counter("scores").unwrap_err();
        assert_eq!(
            kind(&other_kind),
            Some(RemoteErrorKind::WrongService),
            "{backend}"
        );
    }
}

#[test]
fn values_set_swap_and_compare_and_swap() {
    for (backend, fixture) in backends() {
        let store = fixture.store();
        let value = store.value::<Vec<u32>>("config").unwrap();
        assert_eq!(value.get().unwrap(), None, "{backend}");
        assert!(
            !value.compare_and_swap(Some(&vec![1]), &vec![2]).unwrap(),
            "{backend}"
        );
        assert!(value.compare_and_swap(None, &vec![1]).unwrap(), "{backend}");
        assert!(
            !value.compare_and_swap(None, &vec![9]).unwrap(),
            "{backend}"
        );
        assert!(
            value.compare_and_swap(Some(&vec![1]), &vec![2, 3]).unwrap(),
            "{backend}"
        );
        assert_eq!(value.swap(&vec![4]).unwrap(), Some(vec![2, 3]), "{backend}");
        value.set(&vec![5]).unwrap();
        assert_eq!(value.get().unwrap(), Some(vec![5]), "{backend}");
    }
}

#[test]
fn locks_exclude_and_free_on_release() {
    for (backend, fixture) in backends() {
        let store = fixture.store();
        let lock = store.lock("deploy").unwrap();
        let other = fixture.store().lock("deploy").unwrap();
        let guard = lock.acquire().unwrap();
        assert!(lock.is_locked().unwrap(), "{backend}");
        assert!(other.try_acquire().unwrap().is_none(), "{backend}");
        assert!(
            other
                .acquire_timeout(Duration::from_millis(50))
                .unwrap()
                .is_none(),
            "{backend}"
        );
        guard.release().unwrap();
        assert!(!lock.is_locked().unwrap(), "{backend}");
        let second = other.try_acquire().unwrap().expect("free again");
        drop(second); // dropping releases too
        assert!(lock.try_acquire().unwrap().is_some(), "{backend}");
    }
}

#[test]
fn task_queues_deliver_ack_retry_and_dead_letter_alike() {
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store
            .tasks_with::<String>("jobs", quick(Duration::from_secs(30), 2))
            .unwrap();
        assert_eq!(jobs.settings().unwrap().max_attempts, 2, "{backend}");
        let ids = jobs
            .push_many(&["a".to_string(), "b".to_string(), "c".to_string()])
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(jobs.stats().unwrap().ready, 3, "{backend}");

        // FIFO, attempts from 1, ack removes.
        let a = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(
            (a.payload().as_str(), a.attempt(), a.id()),
            ("a", 1, ids[0]),
            "{backend}"
        );
        let stats = jobs.stats().unwrap();
        assert_eq!((stats.ready, stats.leased), (2, 1), "{backend}");
        a.ack().unwrap();

        // A failure is retried after the backoff, on its second attempt; then it is dead.
        let b = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(b.payload(), "b", "{backend}");
        assert!(
            matches!(b.fail("first").unwrap(), Retry::At(_)),
            "{backend}"
        );
        let c = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(c.payload(), "c", "{backend}");
        c.ack().unwrap();
        let b = jobs.take(Duration::from_secs(5)).unwrap().expect("b again");
        assert_eq!((b.payload().as_str(), b.attempt()), ("b", 2), "{backend}");
        assert_eq!(b.fail("second").unwrap(), Retry::Dead, "{backend}");
        let dead = jobs.dead_letters().unwrap();
        assert_eq!(dead.len(), 1, "{backend}");
        assert_eq!(dead[0].payload, "b", "{backend}");
        assert_eq!(dead[0].attempts, 2, "{backend}");
        assert_eq!(dead[0].reasons, ["first", "second"], "{backend}");
        let stats = jobs.stats().unwrap();
        assert_eq!(
            (stats.ready, stats.leased, stats.dead),
            (0, 0, 1),
            "{backend}"
        );
        if !fixture.is_sqs() {
            assert_eq!(stats.done, 2, "{backend}");
        }

        // Requeued, it starts over.
        assert!(jobs.requeue(dead[0].id).unwrap(), "{backend}");
        let b = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!((b.payload().as_str(), b.attempt()), ("b", 1), "{backend}");
        assert!(
            matches!(b.fail("again").unwrap(), Retry::At(_)),
            "{backend}"
        );
        let b = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        b.fail("and again").unwrap();
        assert_eq!(jobs.purge_dead().unwrap(), 1, "{backend}");
        assert_eq!(jobs.stats().unwrap().dead, 0, "{backend}");

        // An empty queue's take waits out its timeout and gives nothing.
        assert!(
            jobs.take(Duration::from_millis(50)).unwrap().is_none(),
            "{backend}"
        );
        eprintln!("task queues conform on {backend}");
    }
}

/// A failure no retry would fix goes to the dead letters at once, on its first attempt of
/// five, with its reason, on every backend.
#[test]
fn a_permanent_failure_is_dead_at_once() {
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store
            .tasks_with::<String>("bad-input", quick(Duration::from_secs(30), 5))
            .unwrap();
        jobs.push(&"not an email".to_string()).unwrap();
        let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(task.attempt(), 1, "{backend}");
        task.fail_permanently("no @ in it").unwrap();
        let dead = jobs.dead_letters().unwrap();
        assert_eq!(dead.len(), 1, "{backend}");
        assert_eq!(
            (dead[0].payload.as_str(), dead[0].attempts),
            ("not an email", 1),
            "{backend}"
        );
        assert_eq!(dead[0].reasons, ["no @ in it"], "{backend}");
        let stats = jobs.stats().unwrap();
        assert_eq!(
            (stats.ready, stats.delayed, stats.leased),
            (0, 0, 0),
            "{backend}"
        );
        assert!(
            jobs.take(Duration::from_millis(50)).unwrap().is_none(),
            "{backend}"
        );
        eprintln!("permanent failures conform on {backend}");
    }
}

/// `join` waits until nothing is ready, delayed or leased: it times out while tasks are left,
/// and a join blocked in another thread returns once the last task is acked.
#[test]
fn join_waits_until_the_queue_drains() {
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store
            .tasks_with::<String>("drain", quick(Duration::from_secs(30), 5))
            .unwrap();
        assert!(
            jobs.join(Duration::from_millis(10)).unwrap(),
            "{backend}: empty"
        );
        jobs.push_many(&["a".to_string(), "b".to_string()]).unwrap();
        assert!(!jobs.join(Duration::from_millis(100)).unwrap(), "{backend}");
        std::thread::scope(|s| {
            let waiting = s.spawn(|| jobs.join(Duration::from_secs(30)).unwrap());
            for _ in 0..2 {
                jobs.take(Duration::from_secs(5))
                    .unwrap()
                    .unwrap()
                    .ack()
                    .unwrap();
            }
            assert!(waiting.join().unwrap(), "{backend}: drained");
        });
        eprintln!("join conforms on {backend}");
    }
}

/// Status and results by id: kept by the manager and by Redis (for the result time-to-live);
/// SQS keeps no finished tasks and says so (`ack_with_result` still acks the task there).
#[test]
fn results_and_status_by_id_alike_and_refused_clearly_on_sqs() {
    use monogusa::{TaskResult, TaskStatus};
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store
            .tasks_with::<String>("results", quick(Duration::from_secs(30), 1))
            .unwrap();
        let id = jobs.push(&"x".to_string()).unwrap();
        if fixture.is_sqs() {
            let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
            let error = task.ack_with_result(&7u32).unwrap_err();
            assert_eq!(kind(&error), Some(RemoteErrorKind::Misuse), "{backend}");
            assert!(error.to_string().contains("keeps no finished tasks"));
            assert_eq!(
                kind(&jobs.status(id).unwrap_err()),
                Some(RemoteErrorKind::Misuse)
            );
            // Acked all the same: nothing is left to take.
            assert!(jobs.take(Duration::from_millis(50)).unwrap().is_none());
            // Nor does it keep what a task waits for.
            let after = jobs.push_after(&[id], &"y".to_string()).unwrap_err();
            assert_eq!(kind(&after), Some(RemoteErrorKind::Misuse), "{backend}");
            eprintln!("results refused on {backend}");
            continue;
        }
        assert_eq!(jobs.status(id).unwrap(), TaskStatus::Ready, "{backend}");
        let later = jobs
            .push_with(
                &"later".to_string(),
                &PushOptions {
                    delay: Duration::from_secs(60),
                    ..PushOptions::default()
                },
            )
            .unwrap();
        assert_eq!(
            jobs.status(later).unwrap(),
            TaskStatus::Delayed,
            "{backend}"
        );
        let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(
            jobs.status(id).unwrap(),
            TaskStatus::Leased { attempt: 1 },
            "{backend}"
        );
        task.ack_with_result(&7u32).unwrap();
        assert_eq!(jobs.status(id).unwrap(), TaskStatus::Done, "{backend}");
        assert_eq!(
            jobs.result::<u32>(id, Duration::ZERO).unwrap(),
            TaskResult::Done(Some(7)),
            "{backend}"
        );
        let plain = jobs.push(&"plain".to_string()).unwrap();
        jobs.take(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .ack()
            .unwrap();
        assert_eq!(
            jobs.result::<u32>(plain, Duration::ZERO).unwrap(),
            TaskResult::Done(None)
        );
        let dead = jobs.push(&"dead".to_string()).unwrap();
        jobs.take(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .fail("broken")
            .unwrap();
        assert_eq!(jobs.status(dead).unwrap(), TaskStatus::Dead, "{backend}");
        assert_eq!(
            jobs.result::<u32>(dead, Duration::ZERO).unwrap(),
            TaskResult::Dead(vec!["broken".to_string()]),
            "{backend}"
        );
        assert_eq!(
            jobs.status(monogusa::TaskId(99_999)).unwrap(),
            TaskStatus::Unknown
        );
        // A result waited for arrives when the task is acked.
        let waited = jobs.push(&"waited".to_string()).unwrap();
        let worker = {
            let jobs = jobs.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
                task.ack_with_result(&8u32).unwrap();
            })
        };
        assert_eq!(
            jobs.result::<u32>(waited, Duration::from_secs(10)).unwrap(),
            TaskResult::Done(Some(8)),
            "{backend}"
        );
        worker.join().unwrap();
        eprintln!("results conform on {backend}");
    }
}

/// Workflows alike on the manager and Redis: a chord's callback runs once with every result
/// in order, a chain passes results on, a dead member kills its callback (or not, when it
/// runs anyway), a graph with an unknown parent pushes nothing; SQS refuses them.
#[test]
fn workflows_behave_alike_and_are_refused_on_sqs() {
    use monogusa::{PushOptions, TaskResult, TaskStatus};
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store
            .tasks_with::<i64>("flows", quick(Duration::from_secs(30), 1))
            .unwrap();
        if fixture.is_sqs() {
            let refused = jobs.push_group(&[1, 2], &0).unwrap_err();
            assert_eq!(kind(&refused), Some(RemoteErrorKind::Misuse), "{backend}");
            assert_eq!(jobs.stats().unwrap().ready, 0, "nothing was pushed");
            eprintln!("workflows refused on {backend}");
            continue;
        }
        // A task gives its inputs' sum plus its payload times ten; a negative one fails for
        // good.
        let run = |jobs: &monogusa::TaskQueue<i64>| {
            let task = jobs.take(Duration::from_secs(5)).unwrap().expect("a task");
            let (n, id) = (*task.payload(), task.id());
            if n < 0 {
                task.fail_permanently("negative").unwrap();
                return id;
            }
            let before: i64 = task
                .inputs::<i64>()
                .unwrap()
                .iter()
                .map(|r| match r {
                    TaskResult::Done(Some(v)) => *v,
                    _ => 0,
                })
                .sum();
            task.ack_with_result(&(before + n * 10)).unwrap();
            id
        };
        let group = jobs.push_group(&[1, 2, 3], &0).unwrap();
        assert_eq!(
            jobs.status(group.id).unwrap(),
            TaskStatus::Waiting,
            "{backend}"
        );
        let mut taken = jobs.take_many(3, Duration::from_secs(5)).unwrap();
        assert_eq!(taken.len(), 3, "{backend}: the callback waits");
        // In reverse: the inputs still come in the members' order.
        while let Some(task) = taken.pop() {
            let n = *task.payload();
            task.ack_with_result(&(n * 10)).unwrap();
        }
        let callback = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(callback.id(), group.id, "{backend}");
        assert_eq!(
            callback.inputs::<i64>().unwrap(),
            [10, 20, 30].map(|v| TaskResult::Done(Some(v))),
            "{backend}"
        );
        callback.ack_with_result(&60i64).unwrap();
        assert_eq!(
            jobs.result::<i64>(group.id, Duration::ZERO).unwrap(),
            TaskResult::Done(Some(60))
        );
        // A chain: 1 -> +20 -> +300.
        let chain = jobs.push_chain(&[1, 2, 30]).unwrap();
        for &id in &chain {
            assert_eq!(run(&jobs), id, "{backend}: in order");
        }
        assert_eq!(
            jobs.result::<i64>(chain[2], Duration::ZERO).unwrap(),
            TaskResult::Done(Some(10 + 20 + 300)),
            "{backend}"
        );
        // A dead member: the callback dies with it, or runs with its reasons.
        let strict = jobs.push_group(&[4, -1], &0).unwrap();
        run(&jobs);
        run(&jobs);
        assert_eq!(
            jobs.result::<i64>(strict.id, Duration::ZERO).unwrap(),
            TaskResult::Dead(vec![format!(
                "task {}, which it runs after, died",
                strict.members[1].0
            )]),
            "{backend}"
        );
        let lenient = jobs
            .push_group_with(
                &[5, -2],
                &0,
                &PushOptions {
                    run_if_parents_die: true,
                    ..PushOptions::default()
                },
            )
            .unwrap();
        run(&jobs);
        run(&jobs);
        let callback = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(callback.id(), lenient.id);
        assert_eq!(
            callback.inputs::<i64>().unwrap(),
            vec![
                TaskResult::Done(Some(50)),
                TaskResult::Dead(vec!["negative".to_string()])
            ],
            "{backend}"
        );
        callback.ack().unwrap();
        // Pushed after a task done already, or dead already.
        let after_done = jobs.push_after(&[group.id], &7).unwrap();
        assert_eq!(jobs.status(after_done).unwrap(), TaskStatus::Ready);
        run(&jobs);
        assert_eq!(
            jobs.result::<i64>(after_done, Duration::ZERO).unwrap(),
            TaskResult::Done(Some(60 + 70)),
            "{backend}"
        );
        let after_dead = jobs.push_after(&[strict.members[1]], &8).unwrap();
        assert_eq!(
            jobs.status(after_dead).unwrap(),
            TaskStatus::Dead,
            "{backend}"
        );
        // An unknown parent: nothing pushed.
        let before = jobs.stats().unwrap();
        let refused = jobs
            .push_after(&[monogusa::TaskId(999_999)], &9)
            .unwrap_err();
        assert_eq!(
            kind(&refused),
            Some(RemoteErrorKind::BadArguments),
            "{backend}"
        );
        let now = jobs.stats().unwrap();
        assert_eq!((before.ready, before.delayed), (now.ready, now.delayed));
        assert!(jobs.join(Duration::from_secs(5)).unwrap(), "{backend}");
        eprintln!("workflows conform on {backend}");
    }
}

/// `ack_with`: the ack and its writes (a counter's add, a dict's key, a value, a push, the
/// result) all or none, alike on the manager and Redis: a late ack writes nothing, and an
/// overflow undoes the writes before it. SQS refuses it, applying nothing.
#[test]
fn acks_with_writes_behave_alike_and_are_refused_on_sqs() {
    use monogusa::{TaskResult, TaskStatus};
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store
            .tasks_with::<u32>("acks-with", quick(Duration::from_millis(400), 5))
            .unwrap();
        if fixture.is_sqs() {
            jobs.push(&1).unwrap();
            let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
            let refused = task
                .ack_with(|tx| {
                    tx.push(&2)?;
                    Ok(())
                })
                .unwrap_err();
            assert_eq!(kind(&refused), Some(RemoteErrorKind::Misuse), "{backend}");
            eprintln!("ack_with refused on {backend}");
            continue;
        }
        let counter = store.counter("tx-counter").unwrap();
        let full = store.counter("tx-full").unwrap();
        full.set(i64::MAX).unwrap();
        let dict = store.dict::<String, u32>("tx-dict").unwrap();
        let value = store.value::<String>("tx-value").unwrap();
        let id = jobs.push(&1).unwrap();
        let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        task.ack_with(|tx| {
            tx.add(&counter, 5)?
                .insert(&dict, &"one".to_string(), &1)?
                .set(&value, &"set".to_string())?
                .push(&2)?
                .result(&10u32)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(counter.get().unwrap(), 5, "{backend}");
        assert_eq!(dict.get(&"one".to_string()).unwrap(), Some(1), "{backend}");
        assert_eq!(value.get().unwrap(), Some("set".to_string()), "{backend}");
        assert_eq!(
            jobs.result::<u32>(id, Duration::ZERO).unwrap(),
            TaskResult::Done(Some(10)),
            "{backend}"
        );
        // An overflow undoes the writes before it; the task goes back.
        let pushed = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(*pushed.payload(), 2, "{backend}: the pushed task");
        let pushed_id = pushed.id();
        let refused = pushed
            .ack_with(|tx| {
                tx.add(&counter, 1)?
                    .insert(&dict, &"two".to_string(), &2)?
                    .push(&3)?
                    .add(&full, 1)?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(
            kind(&refused),
            Some(RemoteErrorKind::Misuse),
            "{backend}: {refused}"
        );
        assert_eq!(counter.get().unwrap(), 5, "{backend}");
        assert_eq!(full.get().unwrap(), i64::MAX, "{backend}");
        assert_eq!(dict.get(&"two".to_string()).unwrap(), None, "{backend}");
        assert_eq!(
            jobs.status(pushed_id).unwrap(),
            TaskStatus::Ready,
            "{backend}"
        );
        assert_eq!(jobs.stats().unwrap().ready, 1, "{backend}: nothing pushed");
        // A late ack (its lease ran out) writes nothing.
        let stale = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let late = stale
            .ack_with(|tx| {
                tx.add(&counter, 100)?.push(&4)?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(
            kind(&late),
            Some(RemoteErrorKind::LeaseExpired),
            "{backend}"
        );
        assert_eq!(counter.get().unwrap(), 5, "{backend}");
        let stats = jobs.stats().unwrap();
        assert_eq!(stats.ready + stats.leased, 1, "{backend}: nothing pushed");
        eprintln!("ack_with conforms on {backend}");
    }
}

#[test]
fn delays_dedup_keys_and_batches() {
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store
            .tasks_with::<u64>("batch", quick(Duration::from_secs(30), 3))
            .unwrap();
        let later = PushOptions {
            delay: Duration::from_millis(300),
            ..PushOptions::default()
        };
        let delayed = jobs.push_with(&99, &later).unwrap();
        let once = PushOptions {
            dedup_key: Some("only-once".into()),
            ..PushOptions::default()
        };
        let first = if fixture.is_sqs() {
            // SQS standard queues have no dedup keys: refused, never half-done.
            let refused = jobs.push_with(&1, &once).unwrap_err();
            assert_eq!(
                kind(&refused),
                Some(RemoteErrorKind::BadArguments),
                "{refused}"
            );
            jobs.push(&1).unwrap()
        } else {
            let first = jobs.push_with(&1, &once).unwrap();
            assert_eq!(
                jobs.push_with(&2, &once).unwrap(),
                first,
                "{backend}: deduplicated"
            );
            first
        };
        let stats = jobs.stats().unwrap();
        assert_eq!((stats.ready, stats.delayed), (1, 1), "{backend}");
        let ids = jobs.push_many(&(10..20).collect::<Vec<u64>>()).unwrap();
        assert_eq!(ids.len(), 10, "{backend}");
        let tasks = jobs.take_many(100, Duration::from_secs(5)).unwrap();
        let payloads: Vec<u64> = tasks.iter().map(|t| *t.payload()).collect();
        assert_eq!(
            payloads,
            [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
            "{backend}"
        );
        assert!(jobs.ack_many(tasks).unwrap().is_empty(), "{backend}");
        // Done: the dedup key is free again.
        if fixture.is_sqs() {
            jobs.push(&3).unwrap();
        } else {
            assert_ne!(jobs.push_with(&3, &once).unwrap(), first, "{backend}");
        }
        let three = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(*three.payload(), 3, "{backend}");
        three.ack().unwrap();
        // The delayed one comes when due, not before.
        let due = jobs
            .take(Duration::from_secs(10))
            .unwrap()
            .expect("the delayed task");
        assert_eq!((due.id(), *due.payload()), (delayed, 99), "{backend}");
        assert!(
            std::time::SystemTime::now() >= due.enqueued_at() + Duration::from_millis(300),
            "{backend}: not before its delay"
        );
        due.ack().unwrap();
        if !fixture.is_sqs() {
            assert_eq!(jobs.stats().unwrap().done, 13, "{backend}");
        }
    }
}

#[test]
fn an_expired_lease_is_delivered_again_and_its_late_ack_refused() {
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        // Wide margins: a durable store's extend waits on an fsync, which can take a
        // good part of a second on a loaded machine.
        let lease = Duration::from_millis(1000);
        let extension = Duration::from_millis(2000);
        let jobs = store
            .tasks_with::<String>("short", quick(lease, 5))
            .unwrap();
        jobs.push(&"slow".into()).unwrap();
        let first = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        let taken = std::time::Instant::now();
        // Extended, it outlives one lease timeout.
        let mut kept = first;
        std::thread::sleep(lease / 3);
        kept.extend(extension).unwrap();
        let extended = std::time::Instant::now();
        // Past the first lease's end (it began before `taken`).
        std::thread::sleep((lease + lease / 4).saturating_sub(taken.elapsed()));
        let leased = jobs.stats().unwrap().leased;
        // Only a check made inside the extension proves anything; a stalled machine
        // that got here later is not a failure of the store.
        if extended.elapsed() < extension {
            assert_eq!(leased, 1, "{backend}: still leased");
        }
        // Not extended again: another worker gets it, on its second attempt.
        let other = fixture
            .store()
            .tasks_with::<String>("short", quick(lease, 5))
            .unwrap();
        let again = other
            .take(Duration::from_secs(10))
            .unwrap()
            .expect("redelivered");
        assert_eq!(
            (again.payload().as_str(), again.attempt()),
            ("slow", 2),
            "{backend}"
        );
        let late = kept.ack().unwrap_err();
        assert_eq!(
            kind(&late),
            Some(RemoteErrorKind::LeaseExpired),
            "{backend}: {late}"
        );
        again.ack().unwrap();
        let stats = jobs.stats().unwrap();
        assert_eq!(stats.leased, 0, "{backend}");
        if !fixture.is_sqs() {
            assert_eq!(stats.done, 1, "{backend}");
        }
    }
}

#[test]
fn a_dropped_task_goes_back_and_a_queue_of_other_types_is_refused() {
    for (backend, fixture) in task_backends() {
        let store = fixture.store();
        let jobs = store.tasks::<u32>("drops").unwrap();
        jobs.push(&7).unwrap();
        drop(jobs.take(Duration::from_secs(5)).unwrap().unwrap());
        let back = jobs
            .take(Duration::from_secs(5))
            .unwrap()
            .expect("given back");
        assert_eq!((*back.payload(), back.attempt()), (7, 2), "{backend}");
        back.ack().unwrap();
        let wrong = store.tasks::<String>("drops").unwrap_err();
        assert_eq!(
            kind(&wrong),
            Some(RemoteErrorKind::WrongService),
            "{backend}: {wrong}"
        );
    }
}

// ---- Redis only: what differs by design, and Redis going away ------------------------------

#[test]
#[ignore = "runs only as a child process"]
fn child_main() {
    let role = std::env::var(common::ROLE_VAR).expect("child_main runs only as a child");
    let store = monogusa::connect(&std::env::var("TEST_REDIS").unwrap()).unwrap();
    match role.as_str() {
        // Takes the lock (a 600 ms lease, renewed) and holds it until killed.
        "lock-holder" => {
            let lock = store
                .lock_with_lease("held", Some(Duration::from_millis(600)))
                .unwrap();
            let _guard = lock.acquire().unwrap();
            println!("held");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Takes 5 tasks and holds them until killed.
        "lease-holder" => {
            let jobs = store
                .tasks_with::<u64>("abandoned", quick(Duration::from_millis(800), 5))
                .unwrap();
            let tasks = jobs.take_many(5, Duration::from_secs(10)).unwrap();
            assert_eq!(tasks.len(), 5);
            println!("holding");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts this test binary in `role` against `redis`, and waits for its first line.
fn child(role: &str, redis: &RedisServer, ready: &str) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = common::child_command(role)
        .env("TEST_REDIS", redis.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let line = BufReader::new(out)
        .lines()
        .map(Result::unwrap)
        .find(|l| l.contains(ready));
    assert!(line.is_some(), "{role} did not start");
    child
}

#[test]
fn a_redis_lock_of_a_killed_holder_frees_after_its_lease_and_not_before() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let lock = monogusa::connect(&redis.url())
        .unwrap()
        .lock_with_lease("held", Some(Duration::from_millis(600)))
        .unwrap();
    let mut holder = child("lock-holder", &redis, "held");
    // Renewed while its holder lives: still held after two leases.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(lock.try_acquire().unwrap().is_none(), "held while renewed");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let killed = std::time::Instant::now();
    // Not before its lease runs out: the manager would free it now, Redis cannot know.
    assert!(
        lock.try_acquire().unwrap().is_none(),
        "freed before its lease"
    );
    let mut guard = None;
    wait_until(Duration::from_secs(30), "the lease to run out", || {
        guard = lock.try_acquire().unwrap();
        guard.is_some()
    });
    assert!(killed.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_killed_workers_redis_leases_are_handed_out_after_the_lease() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let jobs = monogusa::connect(&redis.url())
        .unwrap()
        .tasks_with::<u64>("abandoned", quick(Duration::from_millis(800), 5))
        .unwrap();
    jobs.push_many(&(0..5).collect::<Vec<u64>>()).unwrap();
    let mut holder = child("lease-holder", &redis, "holding");
    holder.kill().unwrap();
    holder.wait().unwrap();
    // Still leased right after the kill (Redis cannot see the holder die)...
    let stats = jobs.stats().unwrap();
    assert_eq!((stats.ready, stats.leased), (0, 5));
    // ... and handed out once the lease has run out, on their second attempt.
    let mut got = Vec::new();
    wait_until(Duration::from_secs(30), "the leases to expire", || {
        got.extend(jobs.take_many(5, Duration::from_millis(100)).unwrap());
        got.len() == 5
    });
    assert!(got.iter().all(|t| t.attempt() == 2));
    let mut payloads: Vec<u64> = got.iter().map(|t| *t.payload()).collect();
    payloads.sort();
    assert_eq!(payloads, [0, 1, 2, 3, 4]);
    assert!(jobs.ack_many(got).unwrap().is_empty());
}

#[test]
fn a_poison_task_on_redis_reaches_the_dead_letters() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let jobs = monogusa::connect(&redis.url())
        .unwrap()
        .tasks_with::<String>("poison", quick(Duration::from_secs(30), 3))
        .unwrap();
    jobs.push(&"poison".into()).unwrap();
    for attempt in 1..=3 {
        let task = jobs
            .take(Duration::from_secs(5))
            .unwrap()
            .expect("delivered");
        assert_eq!(task.attempt(), attempt);
        task.fail(format!("crash {attempt}")).unwrap();
    }
    let dead = jobs.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reasons, ["crash 1", "crash 2", "crash 3"]);
    assert!(jobs.take(Duration::from_millis(100)).unwrap().is_none());
}

#[test]
fn redis_gone_or_refusing_gives_clear_errors_within_the_timeout() {
    // Nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = monogusa::connect(&format!("redis://127.0.0.1:{port}/0")).unwrap_err();
    assert!(matches!(refused, monogusa::Error::Io(_)), "{refused:?}");
    assert!(refused.to_string().contains(&port.to_string()), "{refused}");

    let Some(mut redis) = RedisServer::start(&["--requirepass", "right-password"]) else {
        return;
    };
    let wrong = monogusa::connect(&format!(
        "redis://:wrong-password@127.0.0.1:{}/0",
        redis.port
    ))
    .unwrap_err();
    assert!(
        matches!(wrong, monogusa::Error::Authentication(_)),
        "{wrong:?}"
    );
    assert!(
        !wrong.to_string().contains("wrong-password"),
        "no secret shown: {wrong}"
    );

    let store = monogusa::connect(&format!(
        "redis://:right-password@127.0.0.1:{}/0",
        redis.port
    ))
    .unwrap();
    let counter = store.counter("n").unwrap();
    counter.add(1).unwrap();
    redis.kill();
    let gone = counter.add(1).unwrap_err();
    assert!(
        matches!(
            gone,
            monogusa::Error::Io(_)
                | monogusa::Error::ConnectionLost(_)
                | monogusa::Error::Timeout(_)
        ),
        "{gone:?}"
    );
    redis.restart();
    // The next call reconnects (the data was not persisted: a fresh server).
    wait_until(Duration::from_secs(30), "reconnected", || {
        counter.add(1).is_ok()
    });
}

#[test]
fn nothing_acked_or_pushed_is_lost_when_redis_restarts_with_appendfsync_always() {
    let Some(mut redis) = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"])
    else {
        return;
    };
    let store = monogusa::connect(&redis.url()).unwrap();
    let jobs = store
        .tasks_with::<u64>("durable", quick(Duration::from_secs(1), 5))
        .unwrap();
    let pushed = jobs.push_many(&(0..200).collect::<Vec<u64>>()).unwrap();
    assert_eq!(pushed.len(), 200);
    let mut acked = std::collections::BTreeSet::new();
    for task in jobs.take_many(50, Duration::from_secs(5)).unwrap() {
        acked.insert(*task.payload());
        task.ack().unwrap();
    }
    // Leased, not acked, at the crash.
    let in_hand = jobs.take_many(10, Duration::from_secs(5)).unwrap();
    assert_eq!(in_hand.len(), 10);
    std::mem::forget(in_hand);
    redis.restart(); // SIGKILL, then start on the same directory
    let mut seen = std::collections::BTreeSet::new();
    wait_until(Duration::from_secs(60), "every unacked task again", || {
        if let Ok(tasks) = jobs.take_many(100, Duration::from_millis(200)) {
            for task in tasks {
                seen.insert(*task.payload());
                task.ack().unwrap();
            }
        }
        seen.len() == 150
    });
    assert!(seen.is_disjoint(&acked), "an acked task came back");
    let stats = jobs.stats().unwrap();
    assert_eq!((stats.ready, stats.leased, stats.done), (0, 0, 200));
}

/// A chord on Redis across crashes: redis-server (appendfsync always) is SIGKILLed and
/// restarted at random points while workers run a 2,000-task chord; the callback is never
/// delivered before every result is in, gets them all in order, and is done once.
#[test]
fn a_redis_chord_survives_sigkills_and_calls_back_exactly_once() {
    use monogusa::{TaskResult, TaskStatus};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    const MEMBERS: u64 = 2_000;
    const CALLBACK: u64 = u64::MAX;
    let Some(mut redis) = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"])
    else {
        return;
    };
    let url = redis.url();
    let open = |url: &str| -> monogusa::Result<monogusa::TaskQueue<u64>> {
        monogusa::connect(url)?.tasks_with::<u64>("chord", quick(Duration::from_millis(300), 1000))
    };
    let jobs = open(&url).unwrap();
    let members: Vec<u64> = (0..MEMBERS).collect();
    let group = jobs.push_group(&members, &CALLBACK).unwrap();
    let acks = Arc::new(AtomicU64::new(0));
    let mut kills = 0;
    let expected: u64 = (0..MEMBERS).map(|i| 2 * i).sum();
    loop {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let jobs = open(&url).unwrap();
                let acks = Arc::clone(&acks);
                std::thread::spawn(move || -> monogusa::Result<()> {
                    loop {
                        for task in jobs.take_many(10, Duration::from_millis(100))? {
                            if *task.payload() != CALLBACK {
                                let result = task.payload() * 2;
                                task.ack_with_result(&result)?;
                                acks.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            let inputs = task.inputs::<u64>()?;
                            assert_eq!(inputs.len() as u64, MEMBERS, "never early");
                            for (i, input) in inputs.iter().enumerate() {
                                assert_eq!(*input, TaskResult::Done(Some(2 * i as u64)));
                            }
                            task.ack_with_result(&expected)?;
                        }
                    }
                })
            })
            .collect();
        let from = acks.load(Ordering::Relaxed);
        let watcher = open(&url).unwrap();
        let status = || watcher.status(group.id).ok();
        wait_until(Duration::from_secs(120), "progress or the callback", || {
            acks.load(Ordering::Relaxed) >= from + 250 || status() != Some(TaskStatus::Waiting)
        });
        if status() != Some(TaskStatus::Waiting) {
            if kills >= 10 {
                // Enough kills: the callback is left to finish.
                wait_until(Duration::from_secs(60), "the callback is done", || {
                    status() == Some(TaskStatus::Done)
                });
                drop(workers); // left blocked in their takes; they end with the test
                break;
            }
            // The callback's turn: a kill lands while it is ready or leased, or after.
            std::thread::sleep(Duration::from_millis(kills as u64 * 20));
        }
        redis.restart(); // SIGKILL, then start on the same directory
        kills += 1;
        for worker in workers {
            assert!(
                worker.join().unwrap().is_err(),
                "a worker stops at the kill"
            );
        }
        wait_until(Duration::from_secs(60), "redis has loaded its file", || {
            open(&url).and_then(|jobs| jobs.stats()).is_ok()
        });
    }
    let jobs = open(&url).unwrap(); // the first one's connection died with the first kill
    assert_eq!(
        jobs.result::<u64>(group.id, Duration::ZERO).unwrap(),
        TaskResult::Done(Some(expected))
    );
    let stats = jobs.stats().unwrap();
    assert_eq!(
        stats.done,
        MEMBERS + 1,
        "every member and the callback done once"
    );
    assert_eq!(stats.ready + stats.delayed + stats.dead, 0);
    eprintln!(
        "{kills} kills of redis-server; {} member acks seen",
        acks.load(Ordering::Relaxed)
    );
}

// ---- SQS only: its limits ---------------------------------------------------------------------

#[test]
fn sqs_limits_are_checked_with_clear_errors_and_other_kinds_refused() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let store = moto.store();
    let jobs = store.tasks::<Vec<u8>>("limits").unwrap();
    // Over the queue's message size (its MaximumMessageSize, 1 MiB at most; base64 adds a
    // third).
    let big = jobs.push(&vec![7u8; 900 * 1024]).unwrap_err();
    assert_eq!(kind(&big), Some(RemoteErrorKind::LimitExceeded), "{big}");
    assert!(big.to_string().contains("message limit"), "{big}");
    // Delays over 15 minutes.
    let far = PushOptions {
        delay: Duration::from_secs(16 * 60),
        ..PushOptions::default()
    };
    let late = jobs.push_with(&vec![1], &far).unwrap_err();
    assert_eq!(kind(&late), Some(RemoteErrorKind::BadArguments), "{late}");
    assert!(late.to_string().contains("15-minute"), "{late}");
    // Leases over 12 hours, and backoffs over 15 minutes.
    let settings = TaskQueueSettings {
        lease_timeout: Duration::from_secs(13 * 3600),
        ..TaskQueueSettings::default()
    };
    let long = store.tasks_with::<u8>("long", settings).unwrap_err();
    assert!(long.to_string().contains("12-hour"), "{long}");
    // Nothing was half-done: the queue is empty.
    assert_eq!(jobs.stats().unwrap().ready, 0);
    // SQS holds task queues only.
    let counter = store.counter("n").unwrap_err();
    assert!(
        counter.to_string().contains("task queues only"),
        "{counter}"
    );
    // Nothing listens: an I/O error naming the endpoint.
    drop(moto);
    let gone = jobs.push(&vec![1]).unwrap_err();
    assert!(matches!(gone, monogusa::Error::Io(_)), "{gone:?}");
}

#[test]
fn urls_name_the_backend_and_bad_ones_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sock");
    let manager = Manager::builder()
        .authkey(KEY)
        .bind(monogusa::Address::unix(&path))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut secrets = monogusa::Secrets::default();
    secrets.authkey = Some(KEY.as_bytes().to_vec());
    for url in [
        format!("unix:{}", path.display()),
        format!("monogusa+unix://{}", path.display()),
    ] {
        let store = monogusa::connect_with(&url, &secrets).unwrap();
        assert!(store.client().is_some(), "{url}");
        store.counter("via-url").unwrap().add(1).unwrap();
    }
    assert_eq!(
        manager
            .client()
            .unwrap()
            .counter("via-url")
            .unwrap()
            .get()
            .unwrap(),
        2
    );
    let wrong_key = monogusa::Secrets::default();
    let mut wrong = wrong_key.clone();
    wrong.authkey = Some(b"not the key".to_vec());
    let refused = monogusa::connect_with(&format!("unix:{}", path.display()), &wrong).unwrap_err();
    assert!(
        matches!(refused, monogusa::Error::Authentication(_)),
        "{refused:?}"
    );
    let unknown = monogusa::connect("ftp://example.com").unwrap_err();
    assert!(
        unknown.to_string().contains("no backend for ftp://"),
        "{unknown}"
    );
    let not_a_url = monogusa::connect("127.0.0.1:4343").unwrap_err();
    assert!(not_a_url.to_string().contains("not a URL"), "{not_a_url}");
}
