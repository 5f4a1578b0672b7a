//! Time through the public API with a clock the test moves (`TestClock`): delays, retries'
//! backoff, lease expiries and results' time-to-live fall due when the clock passes them,
//! with no real waiting, on a manager in memory and with a data directory.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::KEY;
use monogusa::{
    Client, Manager, ManagerHandle, PushOptions, RemoteErrorKind, Retry, TaskQueueSettings,
    TaskResult, TaskStatus, TestClock,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A manager on `clock`, in memory and with a data directory (kept alive with it).
fn managers(clock: &TestClock) -> Vec<(ManagerHandle, Option<tempfile::TempDir>)> {
    let memory = Manager::builder()
        .authkey(KEY)
        .clock(clock)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let durable = Manager::builder()
        .authkey(KEY)
        .clock(clock)
        .data_dir(dir.path())
        .build()
        .unwrap()
        .start()
        .unwrap();
    vec![(memory, None), (durable, Some(dir))]
}

fn kind(error: &monogusa::Error) -> Option<RemoteErrorKind> {
    error.remote_kind()
}

/// A delay of a day, a retry's backoff of an hour, a lease of an hour and a result kept for
/// a day: each falls due exactly when the test moves the clock past it.
#[test]
fn what_falls_due_falls_due_when_the_test_clock_passes_it() {
    let clock = TestClock::new();
    for (manager, _dir) in managers(&clock) {
        let client = Client::connect(manager.address(), KEY).unwrap();
        let jobs = client
            .named("timed")
            .tasks::<String>(TaskQueueSettings {
                lease_timeout: HOUR,
                max_attempts: 3,
                backoff: HOUR,
                max_backoff: HOUR,
                result_ttl: Some(24 * HOUR),
            })
            .unwrap();
        // A delay.
        let later = jobs
            .push_with(
                &"tomorrow".to_string(),
                &PushOptions {
                    delay: 24 * HOUR,
                    ..PushOptions::default()
                },
            )
            .unwrap();
        assert!(jobs.take(Duration::ZERO).unwrap().is_none());
        clock.advance(24 * HOUR - Duration::from_secs(1));
        assert!(
            jobs.take(Duration::ZERO).unwrap().is_none(),
            "a second early"
        );
        clock.advance(Duration::from_secs(2));
        let task = jobs.take(Duration::ZERO).unwrap().expect("due");
        assert_eq!(task.id(), later);
        // A retry's backoff (between half and all of an hour).
        let Retry::At(at) = task.fail("not yet").unwrap() else {
            panic!("retried")
        };
        assert!(at > clock.now() && at <= clock.now() + HOUR);
        assert!(jobs.take(Duration::ZERO).unwrap().is_none(), "backing off");
        clock.advance(HOUR + Duration::from_secs(1));
        let task = jobs.take(Duration::ZERO).unwrap().expect("retried");
        assert_eq!(task.attempt(), 2);
        assert_eq!(task.lease_deadline(), clock.now() + HOUR);
        // A lease that runs out: the task is back, and the late ack refused.
        clock.advance(HOUR + Duration::from_secs(1));
        assert_eq!(jobs.status(later).unwrap(), TaskStatus::Ready);
        assert_eq!(
            kind(&task.ack().unwrap_err()),
            Some(RemoteErrorKind::LeaseExpired)
        );
        // A result kept for a day, then forgotten.
        let task = jobs.take(Duration::ZERO).unwrap().expect("again");
        task.ack_with_result(&3u8).unwrap();
        clock.advance(24 * HOUR - Duration::from_secs(1));
        assert_eq!(
            jobs.result::<u8>(later, Duration::ZERO).unwrap(),
            TaskResult::Done(Some(3))
        );
        clock.advance(Duration::from_secs(2));
        assert_eq!(jobs.status(later).unwrap(), TaskStatus::Unknown);
    }
}

/// A take waiting for a delayed task gets it when the test moves the clock (a blocked one is
/// woken by the move).
#[test]
fn a_blocked_take_gets_a_delayed_task_when_the_clock_moves() {
    let clock = TestClock::new();
    let manager = Manager::builder()
        .authkey(KEY)
        .clock(&clock)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.tasks::<u32>("blocked").unwrap();
    jobs.push_with(
        &7,
        &PushOptions {
            delay: HOUR,
            ..PushOptions::default()
        },
    )
    .unwrap();
    let taker = {
        let jobs = jobs.clone();
        std::thread::spawn(move || jobs.take(Duration::from_secs(60)).unwrap())
    };
    // Blocked or not yet: either way it sees the task once the clock has moved.
    clock.advance(HOUR + Duration::from_millis(1));
    let task = taker.join().unwrap().expect("the delayed task");
    assert_eq!(*task.payload(), 7);
    task.ack().unwrap();
}
