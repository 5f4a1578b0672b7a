//! The main-process-and-workers pattern on a durable task queue: a coordinator pushes tasks,
//! worker processes lease them, put results in a shared dict and ack each one; the
//! coordinator waits until every task is done, then checks each was done at least once.
//!
//! ```text
//! cargo run --release --example workers                    # 10,000 tasks, 4 workers
//! cargo run --release --example workers -- --tasks 100000
//! cargo run --release --example workers -- --kill-one      # SIGKILL a worker mid-run
//! ```
//!
//! Delivery is at least once: a worker killed after storing a result and before its ack has
//! its task delivered again, and the coordinator counts such duplicates (the dict's
//! `insert_if_absent` makes storing a result idempotent). Nothing is lost: the killed
//! worker's leases go back to the queue the moment its connection closes.
//!
//! SIGINT or SIGTERM to the coordinator stops the workers cleanly (through a shared event)
//! and exits with status 130. Workers are this program re-run with `--worker ADDRESS`; the
//! authkey reaches them through the environment.

use std::io::Write;
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use monogusa::{Client, Manager, TaskQueueSettings};

const AUTHKEY_VAR: &str = "MONOGUSA_AUTHKEY";
const WORKERS: usize = 4;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut tasks = 10_000;
    let mut kill_one = false;
    let mut rest = args.iter();
    let parsed: Result<(), String> = (|| {
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--worker" => {
                    let address = rest.next().ok_or("--worker needs an address")?;
                    return worker(address).map_err(|e| e.to_string());
                }
                "--tasks" => {
                    tasks = rest
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--tasks needs a number")?;
                }
                "--kill-one" => kill_one = true,
                _ => return Err("usage: workers [--tasks N] [--kill-one]".into()),
            }
        }
        Err(String::new())
    })();
    match parsed {
        Ok(()) => return ExitCode::SUCCESS, // a worker that finished
        Err(e) if !e.is_empty() => {
            eprintln!("workers: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => {}
    }
    coordinator(tasks, kill_one).unwrap_or_else(|e| {
        eprintln!("workers: {e}");
        ExitCode::FAILURE
    })
}

/// The result of one task: here, a square.
fn work(task: u64) -> u64 {
    task * task
}

/// The queue's settings: a short lease, so a stalled worker's tasks move on soon.
fn settings() -> TaskQueueSettings {
    TaskQueueSettings {
        lease_timeout: Duration::from_secs(10),
        ..TaskQueueSettings::default()
    }
}

fn coordinator(tasks: u64, kill_one: bool) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let authkey = "workers-example";
    // A manager with no functions of its own: the built-in shared objects are enough.
    let manager = Manager::builder().authkey(authkey).build()?.start()?;
    let client = Client::connect(manager.address(), authkey)?;
    let queue = client.named("squares").tasks::<u64>(settings())?;
    let results = client.dict::<u64, u64>("results")?;
    let duplicates = client.counter("duplicates")?;
    let stop = client.event("stop")?;

    let exe = std::env::current_exe()?;
    let address = manager.address().to_string();
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|_| {
            Command::new(&exe)
                .args(["--worker", &address])
                .env(AUTHKEY_VAR, authkey)
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    println!("coordinator: {WORKERS} workers started; queueing {tasks} tasks");
    std::io::stdout().flush()?;

    // Queue the tasks (the workers start on them at once), then wait for all to be done,
    // looking up now and then for a signal.
    let started = Instant::now();
    let mut queued = 0;
    let mut killed = false;
    loop {
        if interrupted.load(Ordering::Relaxed) {
            println!("coordinator: interrupted; stopping the workers");
            stop.set()?;
            for worker in &mut workers {
                worker.wait()?;
            }
            println!("coordinator: workers stopped");
            return Ok(ExitCode::from(130));
        }
        if queued < tasks {
            let batch: Vec<u64> = (queued..(queued + 1000).min(tasks)).collect();
            queue.push_many(&batch)?;
            queued += batch.len() as u64;
            continue;
        }
        let stats = queue.stats()?;
        if kill_one && !killed && stats.done >= tasks / 4 {
            workers[0].kill()?; // SIGKILL, mid-task
            workers[0].wait()?;
            killed = true;
            println!(
                "coordinator: killed a worker after {} tasks were done",
                stats.done
            );
        }
        if stats.done >= tasks {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    stop.set()?;
    let mut failed = 0;
    for (i, mut worker) in workers.into_iter().enumerate() {
        let killed_one = killed && i == 0;
        if !worker.wait()?.success() && !killed_one {
            failed += 1;
        }
    }

    let done = results.len()?;
    let dupes = duplicates.get()?;
    let wrong = results
        .items()?
        .into_iter()
        .filter(|&(task, result)| result != work(task))
        .count();
    println!(
        "coordinator: {done} of {tasks} tasks done at least once, {dupes} done twice, {wrong} wrong, in {:.3} s ({:.0} tasks/s)",
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64()
    );
    drop(client);
    manager.shutdown();
    if failed > 0 || done != tasks || wrong != 0 {
        println!("coordinator: FAILED");
        return Ok(ExitCode::FAILURE);
    }
    println!("coordinator: every task done at least once");
    Ok(ExitCode::SUCCESS)
}

fn worker(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let authkey = std::env::var(AUTHKEY_VAR).map_err(|_| format!("{AUTHKEY_VAR} is not set"))?;
    let client = Client::connect(address, authkey)?;
    let queue = client.named("squares").tasks::<u64>(settings())?;
    let results = client.dict::<u64, u64>("results")?;
    let duplicates = client.counter("duplicates")?;
    let stop = client.event("stop")?;
    loop {
        let tasks = queue.take_many(32, Duration::from_millis(100))?;
        if tasks.is_empty() {
            // Nothing for a while: time to check whether the coordinator wants us gone.
            if stop.is_set()? {
                return Ok(());
            }
            continue;
        }
        for task in &tasks {
            let n = *task.payload();
            // Idempotent: a task delivered twice stores its result once.
            if !results.insert_if_absent(&n, &work(n))? {
                duplicates.add(1)?;
            }
        }
        // Acked together, after their results are stored: a worker killed before this line
        // has its tasks delivered again, never lost.
        queue.ack_many(tasks)?;
    }
}
