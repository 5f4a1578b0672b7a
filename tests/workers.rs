//! Supervised worker processes, for real: workers SIGKILLed mid-task and restarted, crash
//! loops backed off and given up on, SIGTERM draining busy workers, a worker that ignores
//! stop killed after the drain timeout, mailboxes between processes, and every worker's
//! output in one place. The processes are this test binary re-run in a role.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use common::{KEY, ROLE_VAR, wait_until};
use monogusa::workers::{Ended, Program, Supervisor, SupervisorSettings, Worker, WorkerState};
use monogusa::{Client, Manager, ManagerHandle, TaskQueueSettings};

const WORK_MS_VAR: &str = "TEST_WORK_MS";
const COUNT_VAR: &str = "TEST_COUNT";
const FILE_VAR: &str = "TEST_FILE";
const DRAIN_MS_VAR: &str = "TEST_DRAIN_MS";
const CHILD_ROLE_VAR: &str = "TEST_CHILD_ROLE";
const PEERS_VAR: &str = "TEST_PEERS";

const LIMIT: Duration = Duration::from_secs(60);

fn manager() -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .bind("127.0.0.1:0")
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn client(manager: &ManagerHandle) -> Client {
    Client::connect(manager.address(), KEY).unwrap()
}

/// This test binary in `role`, as a supervisor's program.
fn program(role: &str) -> Program {
    Program::current_exe()
        .unwrap()
        .args([
            "--exact",
            "child_main",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
            "--quiet",
        ])
        .env(ROLE_VAR, role)
}

/// Short settings for tests: quick restarts, a short drain, no printing.
fn quick() -> SupervisorSettings {
    let mut s = SupervisorSettings::default();
    s.first_backoff = Duration::from_millis(50);
    s.max_backoff = Duration::from_millis(400);
    s.drain_timeout = Duration::from_secs(20);
    s.heartbeat = Duration::from_millis(100);
    s.print_output = std::env::var_os("TEST_PRINT").is_some();
    s.handle_signals = false;
    s
}

fn jobs_settings(lease: Duration) -> TaskQueueSettings {
    TaskQueueSettings {
        lease_timeout: lease,
        max_attempts: 10,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..TaskQueueSettings::default()
    }
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "runs only as a child process"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    match role.as_str() {
        // Works "jobs": sleeps TEST_WORK_MS per task, then counts it in the dict "done".
        "worker" => {
            let worker = Worker::from_env().unwrap();
            let jobs = worker
                .client()
                .named("jobs")
                .tasks::<u64>(jobs_settings(Duration::from_secs(2)))
                .unwrap();
            let done = worker.client().dict::<u64, u64>("done").unwrap();
            let work = Duration::from_millis(env_u64(WORK_MS_VAR));
            worker
                .run(&jobs, 1, |task| {
                    std::thread::sleep(work);
                    done.update_counter(task.payload(), 1).map(|_| ())
                })
                .unwrap();
        }
        // Exits at once, every time, noting when it started in TEST_FILE.
        "crasher" => {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(std::env::var(FILE_VAR).unwrap())
                .unwrap();
            let ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            writeln!(file, "{ms}").unwrap();
            std::process::exit(3);
        }
        // Takes one task and holds it, ignoring the stop message and SIGTERM.
        "stubborn" => {
            let ignored = Arc::new(std::sync::atomic::AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGTERM, ignored).unwrap();
            let client = Client::from_env().unwrap();
            let jobs = client
                .named("jobs")
                .tasks::<u64>(jobs_settings(Duration::from_secs(30)))
                .unwrap();
            let _task = jobs.take(Duration::from_secs(30)).unwrap().unwrap();
            println!("holding a task");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Prints TEST_COUNT numbered lines on stdout and stderr, then waits for stop.
        "chatty" => {
            let worker = Worker::from_env().unwrap();
            let name = worker.name().to_string();
            for i in 0..env_u64(COUNT_VAR) {
                if i % 2 == 0 {
                    println!("{name} line {i} {}", "x".repeat(40));
                } else {
                    eprintln!("{name} line {i} {}", "x".repeat(40));
                }
            }
            println!("{name} printed everything");
            while !worker.is_stopping() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Prints TEST_COUNT megabytes as fast as it can, then waits for stop.
        "flood" => {
            let worker = Worker::from_env().unwrap();
            let line = "y".repeat(1023);
            let mut out = std::io::stdout().lock();
            for _ in 0..env_u64(COUNT_VAR) * 1024 {
                writeln!(out, "{line}").unwrap();
            }
            writeln!(out, "flood done").unwrap();
            out.flush().unwrap();
            drop(out);
            while !worker.is_stopping() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // A supervisor process of TEST_COUNT workers in TEST_CHILD_ROLE, stopped by SIGTERM;
        // prints the outcome, exits 0 if every worker drained.
        "supervisor" => {
            let mut settings = quick();
            settings.handle_signals = true;
            settings.print_output = true;
            settings.drain_timeout = Duration::from_millis(env_u64(DRAIN_MS_VAR).max(1));
            let mut supervisor =
                Supervisor::connect(std::env::var("TEST_MANAGER").unwrap(), KEY).unwrap();
            supervisor.settings(settings).spawn(
                &std::env::var(CHILD_ROLE_VAR).unwrap(),
                env_u64(COUNT_VAR) as usize,
                program(&std::env::var(CHILD_ROLE_VAR).unwrap())
                    .env(
                        COUNT_VAR,
                        std::env::var("TEST_CHILD_COUNT").unwrap_or_default(),
                    )
                    .env(WORK_MS_VAR, std::env::var(WORK_MS_VAR).unwrap_or_default()),
            );
            let outcome = supervisor.run().unwrap();
            eprintln!("outcome:\n{outcome}");
            std::process::exit(if outcome.all_drained() { 0 } else { 1 });
        }
        // Sends 100 numbered messages to each peer, then receives 100 from each and checks
        // that every sender's arrive in order; marks itself done in the dict "mailbox-ok".
        "peer" => {
            let client = Client::from_env().unwrap();
            let me = std::env::var("MONOGUSA_WORKER").unwrap();
            let peers: Vec<String> = std::env::var(PEERS_VAR)
                .unwrap()
                .split(',')
                .filter(|p| *p != me)
                .map(str::to_string)
                .collect();
            let ready = client.barrier("peers-ready", 3).unwrap();
            let inbox = client.mailbox::<(String, u64)>(&me).unwrap();
            ready.wait().unwrap();
            for seq in 0..100 {
                for peer in &peers {
                    client
                        .mailbox::<(String, u64)>(peer)
                        .unwrap()
                        .send(&(me.clone(), seq))
                        .unwrap();
                }
            }
            let mut next: BTreeMap<String, u64> = BTreeMap::new();
            for _ in 0..100 * peers.len() {
                let (from, seq) = inbox.recv().unwrap();
                let expected = next.entry(from.clone()).or_insert(0);
                assert_eq!(seq, *expected, "{me}: out of order from {from}");
                *expected += 1;
            }
            client
                .dict::<String, bool>("mailbox-ok")
                .unwrap()
                .insert(&me, &true)
                .unwrap();
        }
        // Forwards 50 `log` records, then (once told on stdin, the manager gone by then)
        // 5000 more, and says how many were dropped.
        "forwarder" => {
            let client = Client::from_env().unwrap();
            let forwarding = monogusa::workers::LogForwarder::new(&client, "fwd")
                .install()
                .unwrap();
            for i in 0..50 {
                log::info!("record {i}");
            }
            log::debug!("below the level: not forwarded");
            forwarding.flush(Duration::from_secs(30));
            println!("shipped {}", forwarding.dropped());
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            for i in 0..5000 {
                log::warn!("unheard {i}");
            }
            forwarding.flush(Duration::from_secs(2));
            println!("dropped {}", forwarding.dropped());
        }
        // Ignores SIGTERM and its stop message: only a kill ends it.
        "deaf" => {
            let ignored = Arc::new(std::sync::atomic::AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGTERM, ignored).unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// This test binary as a supervisor process (the "supervisor" role) of `count` workers in
/// `child_role`, for the manager at `manager`; callers add the rest of its environment.
fn supervisor_process(manager: &str, child_role: &str, count: usize) -> Command {
    let mut command = common::child_command("supervisor");
    command
        .env("TEST_MANAGER", manager)
        .env(CHILD_ROLE_VAR, child_role)
        .env(COUNT_VAR, count.to_string());
    command
}

/// Runs `supervisor` on a thread; returns its stop handle and the thread.
fn run_in_thread(
    mut supervisor: Supervisor,
) -> (
    monogusa::workers::SupervisorStop,
    std::thread::JoinHandle<monogusa::workers::Outcome>,
) {
    let stop = supervisor.stop_handle();
    let thread = std::thread::spawn(move || supervisor.run().unwrap());
    (stop, thread)
}

fn worker_status(client: &Client, name: &str) -> Option<monogusa::workers::WorkerStatus> {
    client
        .workers()
        .unwrap()
        .into_iter()
        .find(|w| w.name == name)
}

#[test]
fn a_worker_sigkilled_mid_task_is_restarted_and_its_task_done() {
    let manager = manager();
    let client = client(&manager);
    let jobs = client
        .named("jobs")
        .tasks::<u64>(jobs_settings(Duration::from_secs(2)))
        .unwrap();
    let done = client.dict::<u64, u64>("done").unwrap();
    let ids: Vec<u64> = (0..20).collect();
    jobs.push_many(&ids).unwrap();
    let mut supervisor = Supervisor::new(&manager);
    supervisor
        .settings(quick())
        .spawn("worker", 2, program("worker").env(WORK_MS_VAR, "150"));
    let (stop, thread) = run_in_thread(supervisor);

    // Kill worker-1 while it holds a task.
    let mut victim = None;
    wait_until(LIMIT, "worker-1 holding a task", || {
        victim = worker_status(&client, "worker-1").filter(|w| !w.in_hand.is_empty());
        victim.is_some()
    });
    let victim = victim.unwrap();
    Command::new("kill")
        .args(["-KILL", &victim.pid.unwrap().to_string()])
        .status()
        .unwrap();

    wait_until(LIMIT, "every task done", || {
        jobs.stats().unwrap().done == 20
    });
    assert_eq!(done.len().unwrap(), 20, "every task ran");
    wait_until(LIMIT, "worker-1 restarted and running", || {
        worker_status(&client, "worker-1").is_some_and(|w| {
            w.restarts == 1 && w.state == WorkerState::Running && w.pid != victim.pid
        })
    });
    stop.stop();
    let outcome = thread.join().unwrap();
    assert!(outcome.all_drained(), "{outcome}");
    let restarts: Vec<u32> = outcome.processes.iter().map(|p| p.restarts).collect();
    assert_eq!(restarts, [1, 0]);
    let stats = jobs.stats().unwrap();
    assert_eq!((stats.ready, stats.leased, stats.dead), (0, 0, 0));
    for w in client.workers().unwrap() {
        assert_eq!(w.state, WorkerState::Stopped, "{w:?}");
    }
}

#[test]
fn a_crash_loop_is_backed_off_then_given_up_on() {
    let manager = manager();
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let mut settings = quick();
    settings.first_backoff = Duration::from_millis(100);
    settings.max_backoff = Duration::from_millis(400);
    settings.max_crashes = 4;
    let mut supervisor = Supervisor::new(&manager);
    supervisor
        .settings(settings)
        .spawn("crasher", 1, program("crasher").env(FILE_VAR, &starts));
    // Nothing stops it: it returns by itself once it gave up.
    let outcome = supervisor.run().unwrap();
    let process = &outcome.processes[0];
    assert_eq!(process.restarts, 4);
    match &process.ended {
        Ended::GaveUp { crashes, last } => {
            assert_eq!(*crashes, 5);
            assert_eq!(last, "exit code 3");
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    let times: Vec<u128> = std::fs::read_to_string(&starts)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(times.len(), 5, "the first start and 4 restarts");
    // Each wait at least the backoff: 100, 200, 400, 400 ms.
    for (gap, backoff) in times
        .windows(2)
        .map(|w| w[1] - w[0])
        .zip([100, 200, 400, 400])
    {
        assert!(
            gap >= backoff,
            "restarted after {gap} ms, backoff {backoff} ms"
        );
    }
    let client = client(&manager);
    assert_eq!(
        worker_status(&client, "crasher-1").unwrap().state,
        WorkerState::GaveUp
    );
}

#[test]
fn sigterm_to_the_supervisor_drains_busy_workers() {
    let manager = manager();
    let client = client(&manager);
    let jobs = client
        .named("jobs")
        .tasks::<u64>(jobs_settings(Duration::from_secs(2)))
        .unwrap();
    let ids: Vec<u64> = (0..8).collect();
    jobs.push_many(&ids).unwrap();
    let mut supervisor = supervisor_process(&manager.address().to_string(), "worker", 4)
        .env(WORK_MS_VAR, "2000")
        .env(DRAIN_MS_VAR, "20000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(LIMIT, "4 tasks in hand", || {
        jobs.stats().unwrap().leased == 4
    });
    Command::new("kill")
        .args(["-TERM", &supervisor.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    supervisor
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = supervisor.wait().unwrap();
    assert!(status.success(), "supervisor: {status}\n{stderr}");
    let stats = jobs.stats().unwrap();
    assert_eq!(stats.leased, 0, "no task left leased");
    assert_eq!(stats.done, 4, "every task in hand finished and acked");
    assert_eq!(stats.ready, 4, "the rest still waiting");
    assert_eq!(client.dict::<u64, u64>("done").unwrap().len().unwrap(), 4);
}

#[test]
fn a_worker_ignoring_stop_is_killed_after_the_drain_timeout_and_its_task_redelivered() {
    let manager = manager();
    let client = client(&manager);
    let jobs = client
        .named("jobs")
        .tasks::<u64>(jobs_settings(Duration::from_secs(30)))
        .unwrap();
    jobs.push(&7).unwrap();
    let mut settings = quick();
    settings.drain_timeout = Duration::from_millis(300);
    let mut supervisor = Supervisor::new(&manager);
    supervisor
        .settings(settings)
        .spawn("stubborn", 1, program("stubborn"));
    let (stop, thread) = run_in_thread(supervisor);
    wait_until(LIMIT, "the task taken", || {
        jobs.stats().unwrap().leased == 1
    });
    stop.stop();
    let outcome = thread.join().unwrap();
    assert_eq!(outcome.processes[0].ended, Ended::Killed);
    assert!(!outcome.all_drained());
    // Its connection closed with it: the task is back, on its second attempt.
    let task = jobs
        .take(Duration::from_secs(10))
        .unwrap()
        .expect("redelivered");
    assert_eq!((*task.payload(), task.attempt()), (7, 2));
    task.ack().unwrap();
}

#[test]
fn mailboxes_carry_messages_between_three_processes_in_order() {
    let manager = manager();
    let client = client(&manager);
    let names = ["a", "b", "c"];
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            manager
                .command(std::env::current_exe().unwrap())
                .args(["--exact", "child_main", "--ignored", "--test-threads", "1"])
                .env(ROLE_VAR, "peer")
                .env("MONOGUSA_WORKER", name)
                .env(PEERS_VAR, names.join(","))
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let ok = client.dict::<String, bool>("mailbox-ok").unwrap();
    assert_eq!(ok.len().unwrap(), 3);
}

#[test]
fn a_full_mailbox_refuses_and_a_broadcast_reaches_every_member() {
    let manager = manager();
    let client = client(&manager);
    let tiny = client.mailbox_with_capacity::<String>("tiny", 2).unwrap();
    tiny.send(&"one".into()).unwrap();
    tiny.send(&"two".into()).unwrap();
    let err = tiny.send(&"three".into()).unwrap_err();
    assert!(err.is_full(), "{err}");
    assert!(err.to_string().contains("\"tiny\" is full"), "{err}");
    assert_eq!(tiny.recv().unwrap(), "one");
    tiny.send(&"three".into()).unwrap();

    let group = client.group::<String>("everyone").unwrap();
    for name in ["m1", "m2", "m3", "tiny"] {
        assert!(group.join(name).unwrap());
    }
    assert!(!group.join("m1").unwrap(), "joined once");
    let sent = group.broadcast(&"hello".into()).unwrap();
    assert_eq!(sent.delivered, ["m1", "m2", "m3"]);
    assert_eq!(sent.failed.len(), 1);
    assert_eq!(sent.failed[0].0, "tiny");
    for name in ["m1", "m2", "m3"] {
        let inbox = client.mailbox::<String>(name).unwrap();
        assert_eq!(
            inbox
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .as_deref(),
            Some("hello")
        );
        assert_eq!(inbox.try_recv().unwrap(), None);
    }
    assert!(group.leave("tiny").unwrap());
    assert_eq!(group.members().unwrap(), ["m1", "m2", "m3"]);

    // A closed mailbox: the receiver drains it, then its iterator ends.
    let inbox = client.mailbox::<u32>("closing").unwrap();
    for n in 0..3 {
        inbox.send(&n).unwrap();
    }
    assert!(inbox.close().unwrap());
    assert!(inbox.send(&9).unwrap_err().is_closed());
    let got: Vec<u32> = inbox.iter().map(Result::unwrap).collect();
    assert_eq!(got, [0, 1, 2]);
}

#[test]
fn every_workers_output_arrives_prefixed_whole_and_in_the_manager() {
    let manager = manager();
    let client = client(&manager);
    let mut supervisor = supervisor_process(&manager.address().to_string(), "chatty", 3)
        .env("TEST_CHILD_COUNT", "300")
        .env(DRAIN_MS_VAR, "20000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(supervisor.stdout.take().unwrap());
    let logs = client.logs().unwrap();
    // A follower from the start sees every line as it arrives.
    let follower = {
        let logs = logs.clone();
        std::thread::spawn(move || {
            let mut seen = HashSet::new();
            for line in logs.follow(0, None) {
                let line = line.unwrap();
                if line.text.contains(" line ") {
                    seen.insert(line.text);
                }
                if seen.len() == 900 {
                    break;
                }
            }
            seen.len()
        })
    };
    // Read until all 900 lines came (stdout and stderr are read apart: no order between them).
    let mut counted = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        let Some((prefix, text)) = line.split_once(" | ") else {
            continue;
        };
        let name = prefix.split_whitespace().nth(1).unwrap();
        if text.contains(" line ") {
            // Whole: exactly what the worker printed, after its own name's prefix.
            let (from, rest) = text.split_once(" line ").unwrap();
            assert_eq!(from, name, "{line}");
            let (_, tail) = rest.split_once(' ').unwrap();
            assert_eq!(tail, "x".repeat(40), "{line}");
            counted += 1;
            if counted == 900 {
                break;
            }
        }
    }
    assert_eq!(counted, 900, "every line printed once");
    assert_eq!(follower.join().unwrap(), 900, "every line followed");
    let page = logs.tail(1000, Some("chatty-2")).unwrap();
    let chatty2 = page
        .lines
        .iter()
        .filter(|l| l.text.starts_with("chatty-2 line "))
        .count();
    assert_eq!(chatty2, 300);
    assert!(page.lines.iter().all(|l| l.source == "chatty-2"));
    Command::new("kill")
        .args(["-TERM", &supervisor.id().to_string()])
        .status()
        .unwrap();
    assert!(supervisor.wait().unwrap().success());
}

/// The peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_worker_flooding_its_output_blocks_nothing_and_grows_no_memory_without_bound() {
    let manager = common::ChildManager::start(&[]);
    let client = Client::connect(manager.address.clone(), KEY).unwrap();
    let mut supervisor = supervisor_process(&manager.address.to_string(), "flood", 1)
        .env("TEST_CHILD_COUNT", "100") // megabytes
        .env(DRAIN_MS_VAR, "20000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let supervisor_pid = supervisor.id();
    let stdout = BufReader::new(supervisor.stdout.take().unwrap());
    let bytes = AtomicU64::new(0);
    let mut rss = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        bytes.fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
        if line.ends_with("| flood done") {
            rss = peak_rss_kib(supervisor_pid);
            break;
        }
    }
    assert!(
        bytes.load(Ordering::Relaxed) > 100 << 20,
        "all 100 MB came through"
    );
    // Bounded: the shipper holds at most 1 MiB and each reader one 64 KiB line.
    assert!(rss < 64 * 1024, "the supervisor peaked at {rss} KiB");
    let page = client.logs().unwrap().tail(5000, Some("flood-1")).unwrap();
    assert!(
        page.lines.len() <= 1000,
        "the manager keeps 1000 lines per worker"
    );
    let manager_rss = manager.rss_kib();
    assert!(
        manager_rss < 64 * 1024,
        "the manager holds {manager_rss} KiB"
    );
    Command::new("kill")
        .args(["-TERM", &supervisor_pid.to_string()])
        .status()
        .unwrap();
    assert!(supervisor.wait().unwrap().success());
}

#[test]
fn a_worker_acks_retries_and_keeps_long_leases() {
    let manager = manager();
    let client = client(&manager);
    let jobs = client
        .named("run-jobs")
        .tasks::<String>(TaskQueueSettings {
            lease_timeout: Duration::from_millis(300),
            max_attempts: 2,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            ..TaskQueueSettings::default()
        })
        .unwrap();
    for job in ["ok", "slow", "err", "panic"] {
        jobs.push(&job.to_string()).unwrap();
    }
    let worker = Worker::builder(client.clone())
        .name("in-process")
        .heartbeat(Duration::from_millis(50))
        .handle_signals(false)
        .build()
        .unwrap();
    let runs = std::sync::Mutex::new(BTreeMap::<String, u32>::new());
    let stop = worker.stop_handle();
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            wait_until(LIMIT, "every task settled", || {
                let stats = jobs.stats().unwrap();
                stats.done == 2 && stats.dead == 2
            });
            stop.stop();
        });
        worker
            .run(&jobs, 2, |task| {
                *runs
                    .lock()
                    .unwrap()
                    .entry(task.payload().clone())
                    .or_default() += 1;
                match task.payload().as_str() {
                    // Three lease timeouts long: kept by the background extension.
                    "slow" => std::thread::sleep(Duration::from_millis(900)),
                    "err" => return Err("it failed"),
                    "panic" => panic!("it panicked"),
                    _ => {}
                }
                Ok(())
            })
            .unwrap()
    });
    assert_eq!((report.done, report.failed), (2, 4));
    let runs = runs.into_inner().unwrap();
    assert_eq!(
        runs["slow"], 1,
        "the slow task's lease was kept: it ran once"
    );
    assert_eq!((runs["err"], runs["panic"]), (2, 2));
    let dead = jobs.dead_letters().unwrap();
    assert!(
        dead.iter()
            .any(|d| d.reasons.iter().any(|r| r.contains("it panicked")))
    );
    let status = worker_status(&client, "in-process").unwrap();
    assert_eq!((status.done, status.failed), (2, 4));
}

#[test]
fn a_worker_whose_heartbeats_stop_is_shown_as_lost_and_stops_on_sigterm() {
    let manager = manager();
    let client = client(&manager);
    let mut child = manager
        .command(std::env::current_exe().unwrap())
        .args(["--exact", "child_main", "--ignored", "--test-threads", "1"])
        .env(ROLE_VAR, "chatty")
        .env(COUNT_VAR, "0")
        .env("MONOGUSA_WORKER", "falls-silent")
        .env("MONOGUSA_HEARTBEAT_MS", "50")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let state = || worker_status(&client, "falls-silent").map(|w| w.state);
    wait_until(LIMIT, "heartbeats", || {
        state() == Some(WorkerState::Running)
    });
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    wait_until(LIMIT, "shown as lost", || {
        state() == Some(WorkerState::Lost)
    });
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    wait_until(LIMIT, "heartbeating again", || {
        state() == Some(WorkerState::Running)
    });
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(child.wait().unwrap().success(), "SIGTERM stops it cleanly");
    assert_eq!(state(), Some(WorkerState::Stopped));
}

#[test]
fn log_records_are_forwarded_and_dropped_when_the_manager_is_gone_without_blocking() {
    let manager = common::ChildManager::start(&[]);
    let client = Client::connect(manager.address.clone(), KEY).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_main",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE_VAR, "forwarder")
        .env("MONOGUSA_ADDRESS", manager.address.to_string())
        .env("MONOGUSA_AUTHKEY", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    let shipped = lines.find(|l| l.contains("shipped ")).unwrap();
    assert!(shipped.ends_with("shipped 0"), "{shipped}");
    let page = client.logs().unwrap().tail(1000, Some("fwd")).unwrap();
    let texts: Vec<&str> = page.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts.len(), 50, "{texts:?}");
    assert!(texts[7].ends_with("record 7"), "{texts:?}");
    assert!(texts[7].starts_with("INFO "), "{texts:?}");
    assert!(
        page.lines
            .iter()
            .all(|l| l.stream == monogusa::workers::LogStream::Log)
    );

    drop(client);
    drop(manager); // killed: the next records have nowhere to go
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let dropped = lines.find(|l| l.contains("dropped ")).unwrap();
    let count: u64 = dropped.rsplit(' ').next().unwrap().parse().unwrap();
    // Each failed batch is counted (the rest still waits, within its bound, when the child
    // stops flushing after 2 s).
    assert!(count > 0 && count <= 5000, "{dropped}");
    lines.for_each(drop);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_second_sigint_to_the_supervisor_kills_its_workers_at_once() {
    let manager = manager();
    let client = client(&manager);
    let mut supervisor = supervisor_process(&manager.address().to_string(), "deaf", 2)
        .env(DRAIN_MS_VAR, "600000") // ten minutes: only the second SIGINT ends this test
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = |name: &str| worker_status(&client, name).map(|w| w.state);
    wait_until(LIMIT, "both running", || {
        state("deaf-1") == Some(WorkerState::Running)
            && state("deaf-2") == Some(WorkerState::Running)
    });
    let interrupt = || {
        Command::new("kill")
            .args(["-INT", &supervisor.id().to_string()])
            .status()
            .unwrap()
    };
    interrupt();
    wait_until(LIMIT, "stopping", || {
        state("deaf-2") == Some(WorkerState::Stopping)
    });
    interrupt();
    let mut stderr = String::new();
    supervisor
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(supervisor.wait().unwrap().code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("deaf-1: killed before it drained"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deaf-2: killed before it drained"),
        "{stderr}"
    );
}

/// The manager dies under a running `Worker::run` (SIGKILL) and comes back on the same
/// address and data directory: the worker waits it out and carries on, and every task is
/// done, none left ready or leased. A task in hand when the manager died may run twice (its
/// ack was lost with the manager): at least once, never lost.
#[test]
fn a_worker_rides_out_its_manager_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let start = || {
        let child = Command::new(common::monogusa_binary())
            .args(["serve", "--bind", &bind, "--data-dir"])
            .arg(&data)
            .env("MONOGUSA_AUTHKEY", KEY)
            .env("MONOGUSA_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(LIMIT, "the manager serves", || {
            Client::connect(bind.as_str(), KEY).is_ok()
        });
        child
    };
    let mut manager = start();
    let client = Client::builder(bind.as_str(), KEY)
        .reconnect(200, Duration::from_millis(10))
        .connect()
        .unwrap();
    let jobs = client
        .named("survivors")
        .tasks::<u32>(jobs_settings(Duration::from_secs(2)))
        .unwrap();
    for n in 0..40 {
        jobs.push(&n).unwrap();
    }
    let worker = Worker::builder(client.clone())
        .name("survivor")
        .heartbeat(Duration::from_millis(50))
        .handle_signals(false)
        .build()
        .unwrap();
    let seen = std::sync::Mutex::new(Vec::<u32>::new());
    let stop = worker.stop_handle();
    std::thread::scope(|s| {
        s.spawn(|| {
            wait_until(LIMIT, "ten tasks done", || seen.lock().unwrap().len() >= 10);
            manager.kill().unwrap();
            manager.wait().unwrap();
            manager = start();
            wait_until(LIMIT, "every task done after the restart", || {
                let all: HashSet<u32> = seen.lock().unwrap().iter().copied().collect();
                let stats = Client::connect(bind.as_str(), KEY)
                    .and_then(|c| {
                        c.named("survivors")
                            .tasks::<u32>(jobs_settings(Duration::from_secs(2)))
                    })
                    .and_then(|q| q.stats());
                all.len() == 40 && stats.is_ok_and(|s| s.ready == 0 && s.leased == 0 && s.dead == 0)
            });
            stop.stop();
        });
        worker
            .run(&jobs, 2, |task| {
                seen.lock().unwrap().push(*task.payload());
                std::thread::sleep(Duration::from_millis(20));
                Ok::<(), String>(())
            })
            .unwrap();
    });
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.len() <= 40 + 2 + 2,
        "beyond the two in hand (and two whose acks were in flight), none ran twice: {} runs",
        seen.len()
    );
    manager.kill().unwrap();
    manager.wait().unwrap();
}

/// A handler's `Permanent` error sends its task to the dead letters at once, on the first of
/// its five attempts; any other error is retried.
#[test]
fn a_permanent_error_is_dead_at_once_and_others_are_retried() {
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client
        .named("perm")
        .tasks::<String>(TaskQueueSettings {
            max_attempts: 5,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            ..Default::default()
        })
        .unwrap();
    jobs.push(&"hopeless".to_string()).unwrap();
    jobs.push(&"flaky".to_string()).unwrap();
    let worker = Worker::builder(client.clone())
        .name("perm-worker")
        .handle_signals(false)
        .build()
        .unwrap();
    let stop = worker.stop_handle();
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            wait_until(LIMIT, "one dead, one done", || {
                let stats = jobs.stats().unwrap();
                stats.done == 1 && stats.dead == 1
            });
            stop.stop();
        });
        worker
            .run(
                &jobs,
                1,
                |task| -> Result<(), Box<dyn monogusa::workers::Failure + Send + Sync>> {
                    match (task.payload().as_str(), task.attempt()) {
                        ("hopeless", _) => {
                            Err(Box::new(monogusa::workers::Permanent("no use".into())))
                        }
                        ("flaky", 1) => Err(Box::new("try again".to_string())),
                        _ => Ok(()),
                    }
                },
            )
            .unwrap()
    });
    assert_eq!((report.done, report.failed), (1, 2));
    let dead = jobs.dead_letters().unwrap();
    assert_eq!(
        (
            dead[0].payload.as_str(),
            dead[0].attempts,
            dead[0].reasons.clone()
        ),
        ("hopeless", 1, vec!["no use".to_string()])
    );
}
