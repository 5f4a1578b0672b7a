//! Task queues in memory and with a data directory, next to this machine's own fsync.

use crate::*;

/// Task queues: push + take + ack with 4 worker processes, in memory and with a data
/// directory (group commit), one at a time and in batches of 100; and one durable push's
/// latency next to this machine's own write + fsync.
pub(crate) fn task_queues(plan: Plan) {
    let seconds = plan.span.as_secs_f64().max(0.05) * 2.0;
    let mut in_memory = std::collections::HashMap::new();
    for durable in [false, true] {
        let dir = durable.then(|| tempfile_dir("tasks"));
        let dir_arg = dir
            .as_ref()
            .map_or("-".to_string(), |d| d.display().to_string());
        for mode in ["single", "threads", "batched"] {
            let manager =
                Server::start_with("task-manager", &Transport::Tcp.bind("tq"), &[&dir_arg]);
            let total = run_together(4, |_| {
                vec![
                    "task-worker".to_string(),
                    manager.address.clone(),
                    mode.to_string(),
                    seconds.to_string(),
                ]
            });
            let what = match mode {
                "single" => "tasks, push + take + ack, 4 worker processes",
                "threads" => "tasks, push + take + ack, 4 worker processes x 8 threads",
                _ => "tasks, push_many + take_many + ack_many (100), 4 worker processes",
            };
            let store = if durable { "data dir" } else { "memory" };
            let base = if durable {
                in_memory.get(mode).map(|&b| (b, "the same in memory"))
            } else {
                in_memory.insert(mode, total);
                None
            };
            emit(row(
                &format!("{what}, {store}"),
                "tcp",
                "8 B",
                total,
                "tasks/s",
                base,
            ));
            drop(manager);
        }
        if let Some(dir) = &dir {
            let fsync = fsync_latency(dir, plan);
            let manager =
                Server::start_with("task-manager", &Transport::Tcp.bind("tq"), &[&dir_arg]);
            let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
            let queue = client.tasks::<u64>("latency").unwrap();
            let pushes = rate(plan.span, 1, || {
                queue.push(&1).unwrap();
            });
            let latency = 1e6 / pushes;
            emit(row(
                "write 4 KiB + fsync, same disk",
                "-",
                "4 KiB",
                fsync,
                "µs",
                None,
            ));
            emit(row(
                "one durable push, latency",
                "tcp",
                "8 B",
                latency,
                "µs",
                Some((fsync, "write 4 KiB + fsync")),
            ));
            drop(manager);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Mean microseconds to write 4 KiB at the end of a file and fsync it, in `dir`.
pub(crate) fn fsync_latency(dir: &std::path::Path, plan: Plan) -> f64 {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = [7u8; 4096];
    let per_second = rate(plan.span, 1, || {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
    });
    drop(file);
    let _ = std::fs::remove_file(path);
    1e6 / per_second
}

/// One worker of the task-queue figures: pushes, takes and acks for `seconds`; prints tasks
/// acked per second.
pub(crate) fn task_worker_role(address: &str, mode: &str, seconds: &str) {
    let client = Client::connect(address, AUTHKEY).unwrap();
    let queue = client.tasks::<u64>("bench").unwrap();
    let threads = if mode == "threads" { 8 } else { 1 };
    // Each thread's first call opens its connection before the clock starts.
    for _ in 0..threads {
        let _ = queue.stats().unwrap();
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let span = Duration::from_secs_f64(seconds.parse().unwrap());
    let started = Instant::now();
    let work = |queue: monogusa::TaskQueue<u64>| {
        let batch: Vec<u64> = (0..100).collect();
        let mut acked = 0usize;
        while started.elapsed() < span {
            if mode == "batched" {
                queue.push_many(&batch).unwrap();
                let tasks = queue.take_many(100, Duration::ZERO).unwrap();
                acked += tasks.len();
                queue.ack_many(tasks).unwrap();
            } else {
                queue.push(&1).unwrap();
                if let Some(task) = queue.take(Duration::ZERO).unwrap() {
                    task.ack().unwrap();
                    acked += 1;
                }
            }
        }
        acked
    };
    let acked: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let queue = queue.clone();
                scope.spawn(move || work(queue))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!("{}", acked as f64 / started.elapsed().as_secs_f64());
}
