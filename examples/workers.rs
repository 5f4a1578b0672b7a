//! A main process and four supervised worker processes on a task queue: the main process
//! pushes tasks, the workers (this program re-run with `--worker`) square each number into a
//! shared dict and ack it; the main process waits until every task is done, then stops the
//! workers and checks each task was done at least once.
//!
//! ```text
//! cargo run --release --example workers                    # 10,000 tasks, 4 workers
//! cargo run --release --example workers -- --tasks 100000
//! cargo run --release --example workers -- --kill-one      # SIGKILL a worker mid-run
//! ```
//!
//! The supervisor gives each worker its name (`squarer-1` …), the manager's address and key
//! in its environment, prints its output prefixed with its name, and restarts it if it dies:
//! with `--kill-one`, `squarer-1` is SIGKILLed mid-task, restarted, and nothing is lost (its
//! leases go back to the queue the moment its connection closes). Delivery is at least once:
//! a task whose worker was killed after storing its result and before the ack is done again,
//! and counted (`insert_if_absent` makes storing a result idempotent).
//!
//! SIGINT or SIGTERM drains the workers (each finishes the task in hand) and exits with 130.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use monogusa::workers::{Program, Supervisor, Worker};
use monogusa::{Manager, TaskQueueSettings};

const WORKERS: usize = 4;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut tasks = 10_000;
    let mut kill_one = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--worker" => return report(worker()),
            "--tasks" => match rest.next().and_then(|n| n.parse().ok()) {
                Some(n) => tasks = n,
                None => return report(Err("--tasks needs a number".into())),
            },
            "--kill-one" => kill_one = true,
            _ => return report(Err("usage: workers [--tasks N] [--kill-one]".into())),
        }
    }
    match main_process(tasks, kill_one) {
        Ok(code) => code,
        Err(e) => report(Err(e)),
    }
}

fn report(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workers: {e}");
            ExitCode::FAILURE
        }
    }
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

fn main_process(tasks: u64, kill_one: bool) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // No key given: the manager makes a random one, and the supervisor hands it on.
    let manager = Manager::builder().build()?.start()?;
    let client = manager.client()?;
    let queue = client.named("squares").tasks::<u64>(settings())?;
    let results = client.dict::<u64, u64>("results")?;

    let mut supervisor = Supervisor::new(&manager);
    supervisor.spawn("squarer", WORKERS, Program::current_exe()?.arg("--worker"));
    let stop = supervisor.stop_handle();
    // Until SIGINT or SIGTERM, or `stop`: then every worker drains.
    let supervising = std::thread::spawn(move || supervisor.run());
    let running = || -> monogusa::Result<usize> {
        Ok(client
            .workers()?
            .iter()
            .filter(|w| w.state == monogusa::workers::WorkerState::Running)
            .count())
    };
    while running()? < WORKERS && !supervising.is_finished() {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("main: {WORKERS} workers started; queueing {tasks} tasks");

    let started = Instant::now();
    let mut queued = 0;
    let mut killed = None;
    let mut restarted = false;
    loop {
        if supervising.is_finished() {
            // A signal stopped the supervisor: its workers drained.
            let outcome = supervising.join().expect("the supervisor panicked")?;
            print!("{outcome}");
            println!("main: interrupted; workers stopped");
            return Ok(ExitCode::from(130));
        }
        if queued < tasks {
            let batch: Vec<u64> = (queued..(queued + 1000).min(tasks)).collect();
            queue.push_many(&batch)?;
            queued += batch.len() as u64;
            continue;
        }
        let stats = queue.stats()?;
        if kill_one && killed.is_none() && stats.done >= tasks / 4 {
            let victim = client
                .workers()?
                .into_iter()
                .find(|w| w.name == "squarer-1");
            if let Some(pid) = victim.and_then(|w| w.pid) {
                std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()?;
                killed = Some(pid);
                println!(
                    "main: killed squarer-1 (pid {pid}) after {} tasks were done",
                    stats.done
                );
            }
        }
        if let Some(old) = killed
            && !restarted
            && client
                .workers()?
                .iter()
                .any(|w| w.name == "squarer-1" && w.restarts == 1 && w.pid != Some(old))
        {
            restarted = true;
            println!("main: squarer-1 was restarted");
        }
        if stats.done >= tasks && (killed.is_none() || restarted) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    stop.stop();
    let outcome = supervising.join().expect("the supervisor panicked")?;
    print!("{outcome}");

    let done = results.len()?;
    let duplicates = client.counter("duplicates")?.get()?;
    let wrong = results
        .items()?
        .into_iter()
        .filter(|&(task, result)| result != work(task))
        .count();
    println!(
        "main: {done} of {tasks} tasks done at least once, {duplicates} done twice, {wrong} wrong, in {:.3} s ({:.0} tasks/s)",
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64()
    );
    if !outcome.all_drained() || done != tasks || wrong != 0 {
        println!("main: FAILED");
        return Ok(ExitCode::FAILURE);
    }
    println!("main: every task done at least once");
    Ok(ExitCode::SUCCESS)
}

fn worker() -> Result<(), Box<dyn std::error::Error>> {
    // Address, key and name from the supervisor; SIGTERM or the stop message end `run`.
    let worker = Worker::from_env()?;
    let queue = worker.client().named("squares").tasks::<u64>(settings())?;
    let results = worker.client().dict::<u64, u64>("results")?;
    let duplicates = worker.client().counter("duplicates")?;
    let report = worker.run(&queue, 2, |task| {
        let n = *task.payload();
        // Idempotent: a task delivered twice stores its result once.
        if !results.insert_if_absent(&n, &work(n))? {
            duplicates.add(1)?;
        }
        Ok::<(), monogusa::Error>(())
    })?;
    println!("{}: {} tasks done", worker.name(), report.done);
    Ok(())
}
