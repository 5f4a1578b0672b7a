//! The main-process-and-workers pattern: a coordinator puts tasks on a shared queue, worker
//! processes take them and put results in a shared dict, and the coordinator waits with
//! `join`, then checks every task was done exactly once.
//!
//! ```text
//! cargo run --release --example workers              # 10,000 tasks, 4 workers
//! cargo run --release --example workers -- --tasks 100000
//! ```
//!
//! SIGINT or SIGTERM to the coordinator stops the workers cleanly (through a shared event)
//! and exits with status 130. Workers are this program re-run with `--worker ADDRESS`; the
//! authkey reaches them through the environment.

use std::io::Write;
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use monogusa::{Client, Manager};

const AUTHKEY_VAR: &str = "MONOGUSA_AUTHKEY";
const WORKERS: usize = 4;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, address] if flag == "--worker" => worker(address).map(|()| ExitCode::SUCCESS),
        [] => coordinator(10_000),
        [flag, n] if flag == "--tasks" => match n.parse() {
            Ok(n) => coordinator(n),
            Err(_) => Err("--tasks needs a number".into()),
        },
        _ => Err("usage: workers [--tasks N]".into()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("workers: {e}");
        ExitCode::FAILURE
    })
}

/// The result of one task: here, a square.
fn work(task: u64) -> u64 {
    task * task
}

fn coordinator(tasks: u64) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let authkey = "workers-example";
    // A manager with no functions of its own: the built-in shared objects are enough.
    let manager = Manager::builder().authkey(authkey).build()?.start()?;
    let client = Client::connect(manager.address(), authkey)?;
    let queue = client.queue::<Option<u64>>("tasks", 0)?;
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
            for task in queued..(queued + 256).min(tasks) {
                queue.put(&Some(task))?;
            }
            queued = (queued + 256).min(tasks);
        } else if queue.join_timeout(Duration::from_millis(100))? {
            break;
        }
    }
    let elapsed = started.elapsed();
    for _ in 0..WORKERS {
        queue.put(&None)?; // one "no more work" marker per worker
    }
    let mut failed = 0;
    for mut worker in workers {
        if !worker.wait()?.success() {
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
        "coordinator: {done} of {tasks} tasks done, {dupes} done twice, {wrong} wrong, in {:.3} s ({:.0} tasks/s)",
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64()
    );
    drop(client);
    manager.shutdown();
    if failed > 0 || done != tasks || dupes != 0 || wrong != 0 {
        println!("coordinator: FAILED");
        return Ok(ExitCode::FAILURE);
    }
    println!("coordinator: every task done exactly once");
    Ok(ExitCode::SUCCESS)
}

fn worker(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let authkey = std::env::var(AUTHKEY_VAR).map_err(|_| format!("{AUTHKEY_VAR} is not set"))?;
    let client = Client::connect(address, authkey)?;
    let queue = client.queue::<Option<u64>>("tasks", 0)?;
    let results = client.dict::<u64, u64>("results")?;
    let duplicates = client.counter("duplicates")?;
    let stop = client.event("stop")?;
    let mut since_check = 0;
    loop {
        match queue.get_timeout(Duration::from_millis(100))? {
            Some(Some(task)) => {
                if !results.insert_if_absent(&task, &work(task))? {
                    duplicates.add(1)?;
                }
                queue.task_done()?;
            }
            Some(None) => {
                queue.task_done()?;
                return Ok(());
            }
            // Nothing for a while: time to check whether the coordinator wants us gone.
            None if stop.is_set()? => return Ok(()),
            None => {}
        }
        // Busy workers never time out: look at the stop event every so often too.
        since_check += 1;
        if since_check == 64 {
            since_check = 0;
            if stop.is_set()? {
                return Ok(());
            }
        }
    }
}
