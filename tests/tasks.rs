//! Task queues through the public API over real sockets: leases, acks, retries with backoff,
//! dead letters, delays, dedup keys, and workers that die or stall (real child processes).
#![allow(missing_docs)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{KEY, ROLE_VAR, spawn_child, wait_until};
use monogusa::{
    Client, Manager, ManagerHandle, PushOptions, RemoteErrorKind, Retry, TaskQueueSettings,
};

const ADDRESS_VAR: &str = "MONOGUSA_TEST_ADDRESS";

fn start() -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// A manager whose time is `clock`'s.
fn start_on(clock: &monogusa::TestClock) -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .clock(clock)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn connect(manager: &ManagerHandle) -> Client {
    Client::connect(manager.address(), KEY).unwrap()
}

fn settings(lease: Duration, attempts: u32, backoff: Duration) -> TaskQueueSettings {
    TaskQueueSettings {
        lease_timeout: lease,
        max_attempts: attempts,
        backoff,
        max_backoff: backoff * 64,
        ..TaskQueueSettings::default()
    }
}

fn kind(error: &monogusa::Error) -> Option<RemoteErrorKind> {
    match error {
        monogusa::Error::Remote(e) => Some(e.kind()),
        _ => None,
    }
}

/// Worker processes for the tests below, re-run from this test binary.
#[test]
#[ignore = "runs only as a child process"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    let address = std::env::var(ADDRESS_VAR).unwrap();
    let client = Client::connect(address.as_str(), KEY).unwrap();
    let settings = TaskQueueSettings::default();
    let jobs = client.named("jobs").tasks::<u64>(settings).unwrap();
    match role.as_str() {
        "hold-ten" => {
            // Takes ten tasks and holds them until killed.
            let held = jobs.take_many(10, Duration::from_secs(10)).unwrap();
            assert_eq!(held.len(), 10);
            client.counter("held").unwrap().add(10).unwrap();
            loop {
                std::thread::park();
            }
        }
        "late-ack" => {
            // Takes one task, waits for the go-ahead (the test stops this process meanwhile),
            // then acks late and reports what it was told.
            let task = jobs.take(Duration::from_secs(10)).unwrap().unwrap();
            client.counter("took").unwrap().add(1).unwrap();
            let go = client.event("go").unwrap();
            while !go.is_set().unwrap() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let refused = task.ack().unwrap_err();
            if kind(&refused) == Some(RemoteErrorKind::LeaseExpired) {
                client.counter("late-ack-refused").unwrap().add(1).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_pushed_task_is_leased_acked_and_counted() {
    let manager = start();
    let client = connect(&manager);
    let emails = client.tasks::<String>("emails").unwrap();
    let id = emails.push(&"ada@example.com".to_string()).unwrap();
    let stats = emails.stats().unwrap();
    assert_eq!((stats.ready, stats.leased, stats.done), (1, 0, 0));

    let before = SystemTime::now();
    let task = emails.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(task.id(), id);
    assert_eq!(task.payload(), "ada@example.com");
    assert_eq!(task.attempt(), 1);
    assert!(task.enqueued_at() <= before);
    assert!(task.lease_deadline() > before + Duration::from_secs(20));
    assert_eq!(emails.stats().unwrap().leased, 1);
    task.ack().unwrap();

    let stats = emails.stats().unwrap();
    assert_eq!((stats.ready, stats.leased, stats.done), (0, 0, 1));
    assert!(emails.take(Duration::from_millis(50)).unwrap().is_none());
    assert_eq!(emails.settings().unwrap(), TaskQueueSettings::default());
}

#[test]
fn tasks_come_out_in_order_in_batches_and_batched_acks_count() {
    let manager = start();
    let client = connect(&manager);
    let jobs = client.tasks::<u32>("batch").unwrap();
    let values: Vec<u32> = (0..250).collect();
    let ids = jobs.push_many(&values).unwrap();
    assert_eq!(ids.len(), 250);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let mut seen = Vec::new();
    while seen.len() < 250 {
        let tasks = jobs.take_many(100, Duration::from_secs(1)).unwrap();
        assert!(!tasks.is_empty());
        seen.extend(tasks.iter().map(|t| *t.payload()));
        assert!(jobs.ack_many(tasks).unwrap().is_empty());
    }
    assert_eq!(seen, values);
    assert_eq!(jobs.stats().unwrap().done, 250);
}

#[test]
fn a_dropped_task_goes_back_at_once_with_its_attempt_counted() {
    let manager = start();
    let client = connect(&manager);
    let jobs = client.tasks::<u8>("dropped").unwrap();
    jobs.push(&7).unwrap();
    let task = jobs.take(Duration::from_secs(1)).unwrap().unwrap();
    drop(task); // a handler that panicked, say
    let again = jobs.take(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((*again.payload(), again.attempt()), (7, 2));
    again.release().unwrap();
    assert_eq!(jobs.stats().unwrap().ready, 1);
}

#[test]
fn a_poison_task_is_retried_with_growing_gaps_then_dead_and_can_be_requeued() {
    // On a test clock: each retry's time is checked exactly, and reached with no waiting.
    let clock = monogusa::TestClock::new();
    let manager = start_on(&clock);
    let client = connect(&manager);
    let backoff = Duration::from_secs(40);
    let jobs = client
        .named("poison")
        .tasks::<String>(settings(Duration::from_secs(3600), 4, backoff))
        .unwrap();
    jobs.push(&"bad".to_string()).unwrap();
    let mut outcomes = Vec::new();
    while let Some(task) = jobs.take(Duration::ZERO).unwrap() {
        let attempt = task.attempt();
        let failed = task.fail(format!("failure {attempt}")).unwrap();
        outcomes.push(failed);
        let Retry::At(at) = failed else { break };
        // Between half and all of the doubled delay: 20-40, 40-80, 80-160 s.
        let gap = at.duration_since(clock.now()).unwrap();
        let full = backoff * (1 << (attempt - 1));
        assert!(gap >= full / 2 && gap <= full, "gap {gap:?} of {full:?}");
        assert!(
            jobs.take(Duration::ZERO).unwrap().is_none(),
            "not before its time"
        );
        clock.advance(gap);
    }
    assert_eq!(outcomes.len(), 4);
    assert!(matches!(outcomes[0], Retry::At(_)));
    assert_eq!(outcomes[3], Retry::Dead);
    let dead = jobs.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, "bad");
    assert_eq!(dead[0].attempts, 4);
    assert_eq!(
        dead[0].reasons,
        ["failure 1", "failure 2", "failure 3", "failure 4"]
    );
    let stats = jobs.stats().unwrap();
    assert_eq!((stats.ready, stats.dead), (0, 1));

    assert!(jobs.requeue(dead[0].id).unwrap());
    assert!(!jobs.requeue(dead[0].id).unwrap(), "no longer dead");
    let back = jobs.take(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!(back.attempt(), 1, "a requeued task starts afresh");
    back.fail("again").unwrap();
    // Purge and requeue-all on an empty dead-letter queue.
    assert_eq!(jobs.purge_dead().unwrap(), 0);
    assert_eq!(jobs.requeue_all().unwrap(), 0);
}

#[test]
fn a_delayed_task_is_not_delivered_early() {
    let manager = start();
    let client = connect(&manager);
    let jobs = client.tasks::<u8>("later").unwrap();
    let pushed = Instant::now();
    let delay = Duration::from_millis(300);
    jobs.push_with(
        &1,
        &PushOptions {
            delay,
            ..PushOptions::default()
        },
    )
    .unwrap();
    assert_eq!(jobs.stats().unwrap().delayed, 1);
    // A take that waits longer than the delay gets it, not before its time.
    let task = jobs.take(Duration::from_secs(10)).unwrap().unwrap();
    assert!(
        pushed.elapsed() >= delay,
        "delivered after {:?}",
        pushed.elapsed()
    );
    task.ack().unwrap();
}

#[test]
fn a_dedup_key_returns_the_first_task_until_it_is_done() {
    let manager = start();
    let client = connect(&manager);
    let jobs = client.tasks::<u32>("dedup").unwrap();
    let keyed = PushOptions {
        dedup_key: Some("invoice-42".into()),
        ..PushOptions::default()
    };
    let first = jobs.push_with(&1, &keyed).unwrap();
    assert_eq!(jobs.push_with(&2, &keyed).unwrap(), first);
    assert_eq!(jobs.stats().unwrap().ready, 1);
    let task = jobs.take(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!(*task.payload(), 1);
    task.ack().unwrap();
    assert_ne!(jobs.push_with(&3, &keyed).unwrap(), first);
}

#[test]
fn an_extended_lease_outlives_the_timeout_and_an_expired_one_refuses_the_late_ack() {
    let clock = monogusa::TestClock::new();
    let manager = start_on(&clock);
    let client = connect(&manager);
    let lease = Duration::from_secs(300);
    let jobs = client
        .named("leases")
        .tasks::<u8>(settings(lease, 5, Duration::from_millis(10)))
        .unwrap();
    jobs.push(&1).unwrap();
    let mut task = jobs.take(Duration::from_secs(1)).unwrap().unwrap();
    // Extended from another handle (what a background extender does) and from the task.
    task.lease().extend(lease * 4).unwrap();
    clock.advance(lease * 2);
    assert_eq!(jobs.stats().unwrap().leased, 1, "the extended lease holds");
    task.extend(Duration::from_millis(1)).unwrap();
    clock.advance(Duration::from_millis(1));
    assert_eq!(jobs.stats().unwrap().ready, 1, "the short lease expired");
    let error = task.ack().unwrap_err();
    assert_eq!(kind(&error), Some(RemoteErrorKind::LeaseExpired), "{error}");
    let again = jobs.take(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!(again.attempt(), 2);
    again.ack().unwrap();
}

#[test]
fn a_blocked_take_blocks_only_its_caller_and_shutdown_wakes_it() {
    let manager = start();
    let client = connect(&manager);
    let jobs = client.tasks::<u8>("idle").unwrap();
    let before = manager.stats().calls;
    let waiter = {
        let jobs = jobs.clone();
        std::thread::spawn(move || jobs.take(Duration::from_secs(60)).map(|t| t.is_some()))
    };
    // The take reached the manager (nothing else calls meanwhile): it blocks there.
    wait_until(
        Duration::from_secs(10),
        "the take to reach the manager",
        || manager.stats().calls > before,
    );
    // Others are served meanwhile.
    let other = client.tasks::<u8>("busy").unwrap();
    other.push(&1).unwrap();
    other
        .take(Duration::from_secs(1))
        .unwrap()
        .unwrap()
        .ack()
        .unwrap();
    assert!(!waiter.is_finished(), "the take still waits");
    drop(manager);
    let error = waiter.join().unwrap().unwrap_err();
    assert!(
        kind(&error) == Some(RemoteErrorKind::ShuttingDown)
            || matches!(error, monogusa::Error::ConnectionLost(_)),
        "{error}"
    );
}

#[test]
fn bad_settings_and_wrong_kinds_are_clear_errors() {
    let manager = start();
    let client = connect(&manager);
    let error = client
        .named("zero")
        .tasks::<u8>(settings(Duration::ZERO, 1, Duration::ZERO))
        .unwrap_err();
    assert_eq!(kind(&error), Some(RemoteErrorKind::BadArguments), "{error}");
    client.counter("taken").unwrap();
    let error = client.tasks::<u8>("taken").unwrap_err();
    assert_eq!(kind(&error), Some(RemoteErrorKind::WrongService), "{error}");
    client.tasks::<u8>("typed").unwrap();
    let error = client.tasks::<String>("typed").unwrap_err();
    assert_eq!(kind(&error), Some(RemoteErrorKind::WrongService), "{error}");
}

#[test]
fn a_killed_worker_s_ten_leases_go_to_the_others_at_once() {
    let manager = start();
    let client = connect(&manager);
    let address = manager.address().to_string();
    let jobs = client
        .named("jobs")
        .tasks::<u64>(TaskQueueSettings::default()) // a 30 s lease
        .unwrap();
    let values: Vec<u64> = (0..10).collect();
    jobs.push_many(&values).unwrap();
    let mut worker = spawn_child("hold-ten", &[(ADDRESS_VAR, &address)]);
    let held = client.counter("held").unwrap();
    wait_until(Duration::from_secs(30), "the worker holds ten", || {
        held.get().unwrap() == 10
    });
    assert_eq!(jobs.stats().unwrap().leased, 10);
    let killed = Instant::now();
    worker.kill().unwrap();
    worker.wait().unwrap();
    let tasks = jobs.take_many(10, Duration::from_secs(20)).unwrap();
    let mut got: Vec<u64> = tasks.iter().map(|t| *t.payload()).collect();
    got.sort_unstable();
    assert_eq!(got, values);
    assert!(tasks.iter().all(|t| t.attempt() == 2));
    // Well before the 30 s lease would have ended.
    assert!(killed.elapsed() < Duration::from_secs(20));
    assert!(jobs.ack_many(tasks).unwrap().is_empty());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "freezes the worker with SIGSTOP, which Windows (and Wine) have no equivalent of"
)]
fn a_stopped_worker_s_lease_expires_runs_elsewhere_and_its_late_ack_is_refused() {
    let manager = start();
    let client = connect(&manager);
    let address = manager.address().to_string();
    // The child opens "jobs" with default settings; created here first with a short lease.
    let jobs = client
        .named("jobs")
        .tasks::<u64>(settings(
            Duration::from_millis(500),
            5,
            Duration::from_millis(10),
        ))
        .unwrap();
    jobs.push(&99).unwrap();
    let mut worker = spawn_child("late-ack", &[(ADDRESS_VAR, &address)]);
    let took = client.counter("took").unwrap();
    wait_until(Duration::from_secs(30), "the worker took the task", || {
        took.get().unwrap() == 1
    });
    let pid = worker.id().to_string();
    let signal = |name: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([name, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    let task = jobs.take(Duration::from_secs(20)).unwrap().unwrap();
    assert_eq!((*task.payload(), task.attempt()), (99, 2));
    task.ack().unwrap();
    client.event("go").unwrap().set().unwrap();
    signal("-CONT");
    assert!(worker.wait().unwrap().success());
    assert_eq!(
        client.counter("late-ack-refused").unwrap().get().unwrap(),
        1
    );
    assert_eq!(jobs.stats().unwrap().done, 1, "done once, not twice");
}

/// Several threads push, take, ack, fail, release and drop at random against one queue; the
/// counts add up after every step, and at the end every task was acked exactly once.
#[test]
fn random_work_from_several_threads_keeps_every_task_accounted_for() {
    let manager = start();
    let client = connect(&manager);
    let queue = client
        .named("random")
        .tasks::<u64>(settings(
            Duration::from_secs(30),
            1_000, // never dead: every task must end acked
            Duration::from_millis(1),
        ))
        .unwrap();
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 300;
    let acked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let queue = queue.clone();
            let acked = &acked;
            scope.spawn(move || {
                let mut seed = t * 7919 + 1;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let mut pushed = 0;
                loop {
                    if pushed < PER_THREAD && next() % 3 == 0 {
                        queue.push(&(t * PER_THREAD + pushed)).unwrap();
                        pushed += 1;
                        continue;
                    }
                    let tasks = queue
                        .take_many(1 + (next() % 4) as usize, Duration::from_millis(20))
                        .unwrap();
                    if tasks.is_empty() && pushed == PER_THREAD {
                        let stats = queue.stats().unwrap();
                        if stats.ready + stats.delayed + stats.leased == 0 {
                            return;
                        }
                        continue;
                    }
                    for task in tasks {
                        match next() % 5 {
                            0 => {
                                task.fail("random failure").unwrap();
                            }
                            1 => task.release().unwrap(),
                            2 => drop(task),
                            _ => {
                                let id = task.id();
                                task.ack().unwrap();
                                acked.lock().unwrap().push(id);
                            }
                        }
                    }
                    let stats = queue.stats().unwrap();
                    let open = stats.ready + stats.delayed + stats.leased + stats.dead;
                    assert!(stats.done + open <= THREADS * PER_THREAD, "{stats:?}");
                }
            });
        }
    });
    let acked = acked.into_inner().unwrap();
    let unique: std::collections::HashSet<_> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "a task was acked twice");
    assert_eq!(acked.len() as u64, THREADS * PER_THREAD);
    let stats = queue.stats().unwrap();
    assert_eq!(
        (
            stats.done,
            stats.ready,
            stats.delayed,
            stats.leased,
            stats.dead
        ),
        (THREADS * PER_THREAD, 0, 0, 0, 0)
    );
}

/// A task's status by id through its life, its result kept after the ack (a plain ack has
/// none), a dead task's reasons, an unknown id, and a result waited for while a worker runs.
#[test]
fn status_and_results_by_id() {
    use monogusa::{TaskResult, TaskStatus};
    let manager = start();
    let client = connect(&manager);
    let jobs = client
        .named("results")
        .tasks::<String>(settings(
            Duration::from_secs(30),
            1,
            Duration::from_millis(10),
        ))
        .unwrap();
    let a = jobs.push(&"a".to_string()).unwrap();
    let b = jobs.push(&"b".to_string()).unwrap();
    let c = jobs.push(&"c".to_string()).unwrap();
    assert_eq!(jobs.status(a).unwrap(), TaskStatus::Ready);
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(jobs.status(a).unwrap(), TaskStatus::Leased { attempt: 1 });
    assert_eq!(
        jobs.result::<u32>(a, Duration::ZERO).unwrap(),
        TaskResult::Pending
    );
    task.ack_with_result(&42u32).unwrap();
    assert_eq!(jobs.status(a).unwrap(), TaskStatus::Done);
    assert_eq!(
        jobs.result::<u32>(a, Duration::ZERO).unwrap(),
        TaskResult::Done(Some(42))
    );
    jobs.take(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .ack()
        .unwrap();
    assert_eq!(
        jobs.result::<u32>(b, Duration::ZERO).unwrap(),
        TaskResult::Done(None)
    );
    jobs.take(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .fail("no good")
        .unwrap();
    assert_eq!(jobs.status(c).unwrap(), TaskStatus::Dead);
    assert_eq!(
        jobs.result::<u32>(c, Duration::ZERO).unwrap(),
        TaskResult::Dead(vec!["no good".to_string()])
    );
    let never = monogusa::TaskId(999_999);
    assert_eq!(jobs.status(never).unwrap(), TaskStatus::Unknown);
    assert_eq!(
        jobs.result::<u32>(never, Duration::ZERO).unwrap(),
        TaskResult::Unknown
    );
    // A result waited for: it arrives when the worker acks.
    let d = jobs.push(&"d".to_string()).unwrap();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| jobs.result::<String>(d, Duration::from_secs(30)).unwrap());
        let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        let doubled = task.payload().repeat(2);
        task.ack_with_result(&doubled).unwrap();
        assert_eq!(
            waiting.join().unwrap(),
            TaskResult::Done(Some("dd".to_string()))
        );
    });
}

/// Results are kept for the result time-to-live, then the task is unknown and what its record
/// held goes back to the store's budget; with zero, nothing is kept.
#[test]
fn results_expire_after_their_time_to_live() {
    use monogusa::{TaskResult, TaskStatus};
    let clock = monogusa::TestClock::new();
    let manager = Manager::builder()
        .authkey(KEY)
        .result_ttl(Duration::from_secs(3600))
        .clock(&clock)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = connect(&manager);
    let jobs = client.tasks::<String>("short-lived").unwrap();
    let id = jobs.push(&"x".to_string()).unwrap();
    let before = manager.stats().store_bytes;
    let big = "r".repeat(100_000);
    jobs.take(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .ack_with_result(&big)
        .unwrap();
    assert!(manager.stats().store_bytes > before + 90_000);
    clock.advance(Duration::from_secs(3599));
    assert_eq!(jobs.status(id).unwrap(), TaskStatus::Done);
    clock.advance(Duration::from_secs(1));
    assert_eq!(jobs.status(id).unwrap(), TaskStatus::Unknown);
    assert_eq!(
        jobs.result::<String>(id, Duration::ZERO).unwrap(),
        TaskResult::Unknown
    );
    assert!(
        manager.stats().store_bytes < before + 1000,
        "{:?}",
        manager.stats()
    );

    let none = Manager::builder()
        .authkey(KEY)
        .result_ttl(Duration::ZERO)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let jobs = connect(&none).tasks::<String>("unkept").unwrap();
    let id = jobs.push(&"y".to_string()).unwrap();
    jobs.take(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .ack()
        .unwrap();
    assert_eq!(jobs.status(id).unwrap(), TaskStatus::Unknown);
}

/// What a `Worker::run` handler returns is the task's result.
#[test]
fn a_worker_handler_s_value_is_the_result() {
    use monogusa::TaskResult;
    let manager = start();
    let client = connect(&manager);
    let jobs = client.tasks::<String>("lengths").unwrap();
    let id = jobs.push(&"hello".to_string()).unwrap();
    let worker = monogusa::workers::Worker::builder(client.clone())
        .name("measurer")
        .handle_signals(false)
        .build()
        .unwrap();
    let stop = worker.stop_handle();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                jobs.result::<usize>(id, Duration::from_secs(30)).unwrap(),
                TaskResult::Done(Some(5))
            );
            stop.stop();
        });
        worker
            .run(&jobs, 1, |task| Ok::<_, String>(task.payload().len()))
            .unwrap();
    });
}

/// `push_after`: a task waits until every parent is done (diamond), a parent done already
/// counts, a dead parent kills its dependants and theirs (saying why), an unknown parent is
/// refused with nothing pushed, and `join` waits for the waiting ones.
#[test]
fn tasks_pushed_after_others_run_once_every_parent_is_done() {
    use monogusa::{TaskResult, TaskStatus};
    let manager = start();
    let client = connect(&manager);
    let jobs = client
        .named("deps")
        .tasks::<String>(settings(
            Duration::from_secs(30),
            1,
            Duration::from_millis(10),
        ))
        .unwrap();
    let a = jobs.push(&"a".to_string()).unwrap();
    let b = jobs.push(&"b".to_string()).unwrap();
    let c = jobs.push_after(&[a, b], &"c".to_string()).unwrap();
    assert_eq!(jobs.status(c).unwrap(), TaskStatus::Waiting);
    assert!(!jobs.join(Duration::from_millis(10)).unwrap());
    let take = |expected: &str| {
        let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(task.payload(), expected);
        task
    };
    take("a").ack().unwrap();
    assert_eq!(
        jobs.status(c).unwrap(),
        TaskStatus::Waiting,
        "b is not done"
    );
    take("b").ack().unwrap();
    assert_eq!(jobs.status(c).unwrap(), TaskStatus::Ready);
    take("c").ack().unwrap();
    // A parent done already counts as done.
    let d = jobs.push_after(&[a], &"d".to_string()).unwrap();
    assert_eq!(jobs.status(d).unwrap(), TaskStatus::Ready);
    take("d").ack().unwrap();
    // A dead parent: its dependants die, and theirs, each saying which parent died.
    let e = jobs.push(&"e".to_string()).unwrap();
    let f = jobs.push_after(&[e], &"f".to_string()).unwrap();
    let g = jobs.push_after(&[f, a], &"g".to_string()).unwrap();
    take("e").fail("broken").unwrap();
    assert_eq!(jobs.status(f).unwrap(), TaskStatus::Dead);
    assert_eq!(
        jobs.result::<String>(g, Duration::ZERO).unwrap(),
        TaskResult::Dead(vec![format!("task {}, which it runs after, died", f.0)])
    );
    // Pushed after a dead task: dead at once.
    let h = jobs.push_after(&[e], &"h".to_string()).unwrap();
    assert_eq!(jobs.status(h).unwrap(), TaskStatus::Dead);
    // An unknown parent: refused, nothing pushed.
    let before = jobs.stats().unwrap();
    let refused = jobs
        .push_after(&[monogusa::TaskId(987_654)], &"i".to_string())
        .unwrap_err();
    assert_eq!(kind(&refused), Some(RemoteErrorKind::BadArguments));
    assert!(
        refused.to_string().contains("task 987654 is not known"),
        "{refused}"
    );
    let after = jobs.stats().unwrap();
    assert_eq!((before.ready, before.delayed), (after.ready, after.delayed));
    assert!(jobs.join(Duration::from_secs(5)).unwrap(), "nothing waits");
}

/// A result over the store's per-item limit is refused, changes nothing, and the task goes
/// back to the queue at once (its attempt counted) instead of staying leased to nobody.
#[test]
fn an_oversize_result_is_refused_and_the_task_goes_back() {
    use monogusa::TaskStatus;
    let manager = Manager::builder()
        .authkey(KEY)
        .max_item_bytes(1000)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let jobs = connect(&manager).tasks::<String>("big-results").unwrap();
    let id = jobs.push(&"x".to_string()).unwrap();
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    let refused = task.ack_with_result(&"r".repeat(2000)).unwrap_err();
    assert_eq!(
        kind(&refused),
        Some(RemoteErrorKind::LimitExceeded),
        "{refused}"
    );
    assert_eq!(jobs.status(id).unwrap(), TaskStatus::Ready);
    let again = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!((again.id(), again.attempt()), (id, 2));
    again.ack_with_result(&"small".to_string()).unwrap();
}
