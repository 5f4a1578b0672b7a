//! Data directories through the public API: what a restarted manager gives back, a manager
//! SIGKILLed while worker processes push, take and ack, and storage faults (a locked, damaged,
//! unwritable or full data directory).
#![allow(missing_docs)]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{ChildManager, KEY, ROLE_VAR, spawn_child, wait_until};
use monogusa::{
    Client, Durability, Manager, ManagerBuilder, ManagerHandle, PushOptions, RemoteErrorKind,
    TaskQueueSettings,
};

const ADDRESS_VAR: &str = "MONOGUSA_TEST_ADDRESS";
const LOG_VAR: &str = "MONOGUSA_TEST_LOG";
const WORKER_VAR: &str = "MONOGUSA_TEST_WORKER";

fn builder(dir: &Path) -> ManagerBuilder {
    Manager::builder().authkey(KEY).data_dir(dir)
}

fn start(dir: &Path) -> ManagerHandle {
    builder(dir).build().unwrap().start().unwrap()
}

fn connect(manager: &ManagerHandle) -> Client {
    Client::connect(manager.address(), KEY).unwrap()
}

fn kind(error: &monogusa::Error) -> Option<RemoteErrorKind> {
    match error {
        monogusa::Error::Remote(e) => Some(e.kind()),
        _ => None,
    }
}

fn start_error(builder: ManagerBuilder) -> String {
    match builder.build().and_then(|m| m.start()) {
        Ok(_) => panic!("the manager started"),
        Err(e) => e.to_string(),
    }
}

/// Worker processes, re-run from this test binary.
#[test]
#[ignore = "runs only as a child process"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    let address = std::env::var(ADDRESS_VAR).unwrap();
    match role.as_str() {
        "churn" => churn(&address),
        other => panic!("unknown role {other}"),
    }
}

/// Pushes its share of tasks while taking and acking, logging every call that returned
/// `Ok` ("P id", "A id", "C"); stops at the first error (the manager was killed).
fn churn(address: &str) {
    let log_path = std::env::var(LOG_VAR).unwrap();
    let worker: u64 = std::env::var(WORKER_VAR).unwrap().parse().unwrap();
    let mut log = std::io::BufWriter::new(std::fs::File::create(log_path).unwrap());
    let run = |log: &mut std::io::BufWriter<std::fs::File>| -> monogusa::Result<()> {
        let client = Client::builder(address, KEY)
            .reconnect(0, Duration::ZERO)
            .connect()?;
        let jobs = client.tasks::<u64>("jobs")?;
        let acks = client.counter("acks")?;
        let handle = |task: monogusa::Task<u64>,
                      log: &mut std::io::BufWriter<std::fs::File>|
         -> monogusa::Result<()> {
            let id = task.id().0;
            task.ack()?;
            writeln!(log, "A {id}").unwrap();
            acks.add(1)?;
            writeln!(log, "C").unwrap();
            Ok(())
        };
        for i in 0..5_000u64 {
            let id = jobs.push(&(worker * 1_000_000 + i))?;
            writeln!(log, "P {}", id.0).unwrap();
            // Every other round: a backlog builds, so the kill finds tasks ready and leased.
            if i % 2 == 1
                && let Some(task) = jobs.take(Duration::ZERO)?
            {
                handle(task, log)?;
            }
        }
        while let Some(task) = jobs.take(Duration::from_millis(200))? {
            handle(task, log)?;
        }
        Ok(())
    };
    let _ = run(&mut log);
    log.flush().unwrap();
}

#[test]
fn a_restarted_manager_gives_back_every_kept_object() {
    let dir = tempfile::tempdir().unwrap();
    let settings = TaskQueueSettings {
        max_attempts: 1,
        ..TaskQueueSettings::default()
    };
    {
        let manager = start(dir.path());
        let client = connect(&manager);
        client.counter("hits").unwrap().add(41).unwrap();
        client.counter("hits").unwrap().add(1).unwrap();
        let dict = client.dict::<String, i64>("ages").unwrap();
        dict.insert(&"ada".into(), &36).unwrap();
        dict.insert(&"alan".into(), &41).unwrap();
        dict.remove(&"alan".into()).unwrap();
        dict.update_counter(&"visits".into(), 3).unwrap();
        let list = client.list::<String>("log").unwrap();
        for line in ["a", "b", "c"] {
            list.push(&line.to_string()).unwrap();
        }
        list.pop().unwrap();
        list.set(0, &"A".to_string()).unwrap();
        client
            .value::<(u8, String)>("config")
            .unwrap()
            .set(&(1, "x".into()))
            .unwrap();
        let queue = client.queue::<u32>("fifo", 0).unwrap();
        for n in 1..=3 {
            queue.put(&n).unwrap();
        }
        assert_eq!(queue.get().unwrap(), 1);
        queue.task_done().unwrap();
        client.lock("not-kept").unwrap();

        let tasks = client.named("jobs").tasks::<String>(settings).unwrap();
        tasks.push(&"done".to_string()).unwrap();
        tasks
            .take(Duration::from_secs(1))
            .unwrap()
            .unwrap()
            .ack()
            .unwrap();
        tasks.push(&"poison".to_string()).unwrap();
        let poison = tasks.take(Duration::from_secs(1)).unwrap().unwrap();
        poison.fail("it broke").unwrap();
        tasks.push(&"ready".to_string()).unwrap();
        tasks
            .push_with(
                &"later".to_string(),
                &PushOptions {
                    delay: Duration::from_secs(3600),
                    ..PushOptions::default()
                },
            )
            .unwrap();
        client.delete_shared("hits-old").unwrap();
    }
    let manager = start(dir.path());
    let client = connect(&manager);
    assert_eq!(client.counter("hits").unwrap().get().unwrap(), 42);
    let dict = client.dict::<String, i64>("ages").unwrap();
    assert_eq!(
        dict.items().unwrap(),
        vec![("ada".to_string(), 36), ("visits".to_string(), 3)]
    );
    let list = client.list::<String>("log").unwrap();
    assert_eq!(list.range(0, 10).unwrap(), ["A", "b"]);
    assert_eq!(
        client
            .value::<(u8, String)>("config")
            .unwrap()
            .get()
            .unwrap(),
        Some((1, "x".into()))
    );
    let queue = client.queue::<u32>("fifo", 0).unwrap();
    assert_eq!(queue.len().unwrap(), 2);
    assert_eq!(queue.get().unwrap(), 2);
    queue.task_done().unwrap();
    assert_eq!(queue.get().unwrap(), 3);
    queue.task_done().unwrap();
    assert!(
        queue.join_timeout(Duration::from_secs(1)).unwrap(),
        "unfinished count kept"
    );
    queue.put(&4).unwrap();

    let tasks = client.named("jobs").tasks::<String>(settings).unwrap();
    let stats = tasks.stats().unwrap();
    assert_eq!(
        (
            stats.ready,
            stats.delayed,
            stats.dead,
            stats.done,
            stats.leased
        ),
        (1, 1, 1, 1, 0)
    );
    assert_eq!(tasks.settings().unwrap(), settings, "settings kept");
    let dead = tasks.dead_letters().unwrap();
    assert_eq!(
        (dead[0].payload.as_str(), &dead[0].reasons[..]),
        ("poison", &["it broke".to_string()][..])
    );
    let ready = tasks.take(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!(ready.payload(), "ready");
    // Ids go on from where the last run stopped.
    let next = tasks.push(&"new".to_string()).unwrap();
    assert!(next.0 > ready.id().0 + 1);
    ready.ack().unwrap();
    // Locks are not kept.
    let objects = client.describe().unwrap().objects;
    assert!(
        !objects
            .iter()
            .any(|o| o.name.as_deref() == Some("not-kept"))
    );
}

#[test]
fn the_data_dir_and_file_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manager = start(&data);
    connect(&manager).counter("c").unwrap().add(1).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("monogusa.db")), 0o600);
}

#[test]
fn a_deleted_object_stays_deleted_and_relaxed_durability_keeps_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    {
        let manager = builder(dir.path())
            .durability(Durability::Every(Duration::from_secs(60)))
            .build()
            .unwrap()
            .start()
            .unwrap();
        let client = connect(&manager);
        client.counter("gone").unwrap().add(5).unwrap();
        assert!(client.delete_shared("gone").unwrap());
        client.counter("gone").unwrap().add(2).unwrap();
        client.counter("kept").unwrap().add(9).unwrap();
    } // a clean stop commits what the interval had not
    let manager = start(dir.path());
    let client = connect(&manager);
    assert_eq!(client.counter("gone").unwrap().get().unwrap(), 2);
    assert_eq!(client.counter("kept").unwrap().get().unwrap(), 9);
}

#[test]
fn a_second_manager_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());
    connect(&first).counter("c").unwrap().add(1).unwrap();
    let error = start_error(builder(dir.path()));
    assert!(error.contains("in use by another manager"), "{error}");
    assert!(error.contains("monogusa.db"), "{error}");
    // The first serves on, untouched.
    assert_eq!(connect(&first).counter("c").unwrap().get().unwrap(), 1);
    drop(first);
    // Once it stopped, the directory is free.
    let again = start(dir.path());
    assert_eq!(connect(&again).counter("c").unwrap().get().unwrap(), 1);
}

#[test]
fn a_damaged_or_foreign_data_file_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let manager = start(dir.path());
        let client = connect(&manager);
        let tasks = client.tasks::<Vec<u8>>("big").unwrap();
        let payloads: Vec<Vec<u8>> = (0..200).map(|i| vec![i as u8; 4000]).collect();
        tasks.push_many(&payloads).unwrap();
    }
    let file = dir.path().join("monogusa.db");
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(len > 100_000, "the file holds the tasks ({len} bytes)");
    let truncated = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    truncated.set_len(len / 3).unwrap();
    drop(truncated);
    let error = start_error(builder(dir.path()));
    assert!(error.contains("damaged"), "{error}");
    assert!(error.contains(&file.display().to_string()), "{error}");

    std::fs::write(&file, b"these are not the bytes of a database ".repeat(300)).unwrap();
    let error = start_error(builder(dir.path()));
    assert!(
        error.contains("damaged or not a monogusa data file"),
        "{error}"
    );
}

#[test]
fn an_unusable_data_dir_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let error = start_error(builder(&file.join("data")));
    assert!(error.contains("cannot create data directory"), "{error}");
    assert!(error.contains("a-file"), "{error}");
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !status.status.success() {
            return Err(String::from_utf8_lossy(&status.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_push_with_a_typed_error_and_loses_nothing_acked() {
    let dir = tempfile::tempdir().unwrap();
    let disk = match Tmpfs::mount(dir.path(), "2m") {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: this test mounts a small tmpfs, which needs root ({why})");
            return;
        }
    };
    let data = dir.path().join("data");
    {
        let manager = start(&data);
        let client = connect(&manager);
        let tasks = client.tasks::<u32>("jobs").unwrap();
        let values: Vec<u32> = (0..20).collect();
        tasks.push_many(&values).unwrap();
        let taken = tasks.take_many(10, Duration::from_secs(1)).unwrap();
        assert!(tasks.ack_many(taken).unwrap().is_empty());
        client.counter("acked").unwrap().add(10).unwrap();

        let big = client.tasks::<Vec<u8>>("filler").unwrap();
        let payload = vec![7u8; 64 * 1024];
        let mut refused = None;
        for _ in 0..200 {
            if let Err(e) = big.push(&payload) {
                refused = Some(e);
                break;
            }
        }
        let refused = refused.expect("a 2 MiB disk fills up");
        assert_eq!(kind(&refused), Some(RemoteErrorKind::Storage), "{refused}");
        assert!(refused.to_string().contains("monogusa.db"), "{refused}");
        // It says what the caller can rely on: not "not applied", but unknown.
        assert!(
            refused.to_string().contains("outcome is unknown"),
            "{refused}"
        );
        // A take that cannot be written fails, and leaves its tasks ready (it once left them
        // leased to a caller that never got them).
        let failed = tasks.take_many(5, Duration::from_millis(100)).unwrap_err();
        assert_eq!(kind(&failed), Some(RemoteErrorKind::Storage), "{failed}");
        let stats = tasks.stats().unwrap();
        assert_eq!((stats.ready, stats.leased), (10, 0), "{stats:?}");
        // The manager serves what it can: reads.
        assert_eq!(tasks.stats().unwrap().done, 10);
        assert_eq!(client.counter("acked").unwrap().get().unwrap(), 10);
    }
    disk.resize("64m");
    let manager = start(&data);
    let client = connect(&manager);
    let tasks = client.tasks::<u32>("jobs").unwrap();
    let stats = tasks.stats().unwrap();
    assert_eq!((stats.done, stats.ready), (10, 10), "{stats:?}");
    let rest = tasks.take_many(20, Duration::from_secs(1)).unwrap();
    let mut values: Vec<u32> = rest.iter().map(|t| *t.payload()).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (10..20).collect::<Vec<_>>(),
        "no acked task comes back"
    );
    assert_eq!(client.counter("acked").unwrap().get().unwrap(), 10);
    drop(rest);
    drop(manager);
}

#[test]
fn a_manager_sigkilled_mid_run_loses_no_pushed_task_and_resurrects_no_acked_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let mut manager = ChildManager::start(&["--data-dir", &data_arg]);
    let address = manager.address.to_string();
    let logs: Vec<std::path::PathBuf> = (0..4)
        .map(|w| dir.path().join(format!("w{w}.log")))
        .collect();
    let mut workers: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(w, log)| {
            spawn_child(
                "churn",
                &[
                    (ADDRESS_VAR, &address),
                    (LOG_VAR, &log.display().to_string()),
                    (WORKER_VAR, &w.to_string()),
                ],
            )
        })
        .collect();
    let client = Client::builder(&manager.address, KEY)
        .reconnect(0, Duration::ZERO)
        .connect()
        .unwrap();
    let acks = client.counter("acks").unwrap();
    wait_until(
        Duration::from_secs(120),
        "the workers are well under way",
        || acks.get().unwrap() >= 2_000,
    );
    manager.child.kill().unwrap();
    manager.child.wait().unwrap();
    for worker in &mut workers {
        worker.wait().unwrap();
    }

    let (mut pushed, mut acked, mut counted) = (HashSet::new(), HashSet::new(), 0u64);
    for log in &logs {
        for line in std::fs::read_to_string(log).unwrap().lines() {
            match line.split_once(' ') {
                Some(("P", id)) => assert!(pushed.insert(id.parse::<u64>().unwrap())),
                Some(("A", id)) => assert!(acked.insert(id.parse::<u64>().unwrap())),
                _ if line == "C" => counted += 1,
                _ => panic!("bad log line {line:?}"),
            }
        }
    }
    assert!(
        acked.len() >= 2_000 && pushed.len() < 20_000,
        "killed mid-run"
    );

    let restarted = ChildManager::start(&["--data-dir", &data_arg]);
    let client = Client::connect(&restarted.address, KEY).unwrap();
    let jobs = client.tasks::<u64>("jobs").unwrap();
    let stats = jobs.stats().unwrap();
    assert_eq!(stats.leased, 0, "leases held at the crash came back");
    // An ack in flight at the kill may have been applied without its reply: at most one
    // per worker.
    let done_unseen = stats.done - acked.len() as u64;
    assert!(
        done_unseen <= 4,
        "{} done, {} acks seen",
        stats.done,
        acked.len()
    );
    let mut remaining = HashSet::new();
    let mut redelivered = 0;
    loop {
        let tasks = jobs.take_many(1000, Duration::from_millis(200)).unwrap();
        if tasks.is_empty() {
            break;
        }
        for task in &tasks {
            assert!(remaining.insert(task.id().0));
            redelivered += u64::from(task.attempt() > 1);
        }
        assert!(jobs.ack_many(tasks).unwrap().is_empty());
    }
    let resurrected: Vec<_> = remaining.intersection(&acked).collect();
    assert!(
        resurrected.is_empty(),
        "acked tasks came back: {resurrected:?}"
    );
    let lost: Vec<_> = pushed
        .iter()
        .filter(|id| !acked.contains(id) && !remaining.contains(id))
        .collect();
    assert!(
        lost.len() as u64 <= done_unseen,
        "{} pushed tasks are neither acked nor in the queue",
        lost.len()
    );
    // Every add that returned Ok is kept; one in flight per worker may have landed too.
    let total = client.counter("acks").unwrap().get().unwrap() as u64;
    assert!(
        (counted..=counted + 4).contains(&total),
        "counter {total}, adds seen {counted}"
    );
    println!(
        "pushed {}, acked {}, left {}, redelivered {redelivered}, acks counted {total}",
        pushed.len(),
        acked.len(),
        remaining.len()
    );
}

/// A done task's status and result survive a restart of a manager with a data directory.
#[test]
fn results_survive_a_restart() {
    use monogusa::{TaskResult, TaskStatus};
    let dir = tempfile::tempdir().unwrap();
    let (done, plain) = {
        let manager = start(dir.path());
        let jobs = connect(&manager).tasks::<String>("kept-results").unwrap();
        let done = jobs.push(&"a".to_string()).unwrap();
        let plain = jobs.push(&"b".to_string()).unwrap();
        let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        task.ack_with_result(&vec![1u8, 2, 3]).unwrap();
        jobs.take(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .ack()
            .unwrap();
        manager.shutdown();
        (done, plain)
    };
    let manager = start(dir.path());
    let jobs = connect(&manager).tasks::<String>("kept-results").unwrap();
    assert_eq!(jobs.status(done).unwrap(), TaskStatus::Done);
    assert_eq!(
        jobs.result::<Vec<u8>>(done, Duration::ZERO).unwrap(),
        TaskResult::Done(Some(vec![1, 2, 3]))
    );
    assert_eq!(
        jobs.result::<Vec<u8>>(plain, Duration::ZERO).unwrap(),
        TaskResult::Done(None)
    );
    // New tasks get new ids.
    assert!(jobs.push(&"c".to_string()).unwrap().0 > plain.0);
}

/// What a task pushed after others waits for, and the results it was given, survive
/// restarts: one parent done before the first, the other after it.
#[test]
fn waiting_tasks_and_their_inputs_survive_a_restart() {
    use monogusa::{TaskResult, TaskStatus};
    let dir = tempfile::tempdir().unwrap();
    let (first, second, child) = {
        let manager = start(dir.path());
        let jobs = connect(&manager).tasks::<String>("deps").unwrap();
        let first = jobs.push(&"first".to_string()).unwrap();
        let second = jobs.push(&"second".to_string()).unwrap();
        let child = jobs
            .push_after(&[second, first], &"child".to_string())
            .unwrap();
        let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(task.id(), first);
        task.ack_with_result(&"one".to_string()).unwrap();
        manager.shutdown();
        (first, second, child)
    };
    let manager = start(dir.path());
    let jobs = connect(&manager).tasks::<String>("deps").unwrap();
    assert_eq!(jobs.status(child).unwrap(), TaskStatus::Waiting);
    assert_eq!(jobs.status(first).unwrap(), TaskStatus::Done);
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(task.id(), second);
    task.ack_with_result(&"two".to_string()).unwrap();
    assert_eq!(jobs.status(child).unwrap(), TaskStatus::Ready);
    drop(manager);
    let manager = start(dir.path());
    let jobs = connect(&manager).tasks::<String>("deps").unwrap();
    let task = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(task.id(), child);
    assert_eq!(
        task.inputs::<String>().unwrap(),
        ["two", "one"].map(|r| TaskResult::Done(Some(r.to_string())))
    );
    task.ack().unwrap();
    assert!(jobs.join(Duration::from_secs(5)).unwrap());
}
