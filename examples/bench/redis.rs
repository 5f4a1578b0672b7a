//! The same work on a manager and on Redis, next to redis-benchmark.

use crate::*;

/// The same work on a manager and on Redis through `monogusa::connect`, 4 processes each:
/// `Counter.add(1)`, and push + take + ack; next to `redis-benchmark`'s own INCR and PING at
/// the same concurrency (4 clients, no pipelining): the engine's limit on this machine.
pub(crate) fn redis_backend(plan: Plan) {
    if !cfg!(feature = "redis") {
        eprintln!("bench: built without the redis feature; no Redis rows (add --features redis)");
        return;
    }
    let Some((mut redis, port, dir)) = start_redis() else {
        eprintln!("bench: redis-server is not installed; no Redis rows");
        return;
    };
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let requests = if plan.quick { 50_000 } else { 200_000 };
    let benchmark = |test: &str, clients: &str, pipeline: &str| -> f64 {
        let out = Command::new("redis-benchmark")
            .args([
                "-p",
                &port.to_string(),
                "-c",
                clients,
                "-P",
                pipeline,
                "-n",
                &requests.to_string(),
            ])
            .args(["-t", test, "--csv"])
            .output()
            .unwrap();
        // "test","rps",...: the second field of the last line.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or(f64::NAN)
    };
    let incr = benchmark("incr", "4", "1");
    let ping = benchmark("ping_mbulk", "4", "1");
    let incr_pipelined = benchmark("incr", "1", "64");
    emit(row(
        "redis-benchmark INCR, 4 clients",
        "tcp",
        "-",
        incr,
        "ops/s",
        None,
    ));
    emit(row(
        "redis-benchmark PING, 4 clients",
        "tcp",
        "-",
        ping,
        "ops/s",
        None,
    ));

    emit(row(
        "redis-benchmark INCR, 1 client, pipeline 64",
        "tcp",
        "-",
        incr_pipelined,
        "ops/s",
        None,
    ));

    let manager = Server::start_with("task-manager", &Transport::Tcp.bind("rb"), &["-"]);
    let manager_url = format!("monogusa://{}", manager.address);
    {
        // The same pipelined INCRs on a shared Counter: 64 sent, then their replies.
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let counter = client.counter("bench-pipelined").unwrap();
        let mut pending = Vec::with_capacity(64);
        let ours = rate(plan.span, 64, || {
            for _ in 0..64 {
                pending.push(counter.send().add(1).unwrap());
            }
            for p in pending.drain(..) {
                p.wait().unwrap();
            }
        });
        emit(row(
            "Counter.add(1), 1 client, 64 in flight, manager",
            "tcp",
            "8 B",
            ours,
            "calls/s",
            Some((
                incr_pipelined,
                "redis-benchmark INCR, 1 client, pipeline 64",
            )),
        ));
    }
    let seconds = (plan.span.as_secs_f64().max(0.05) * 2.0).to_string();
    let mut on_manager = std::collections::HashMap::new();
    for (backend, url) in [("manager", &manager_url), ("redis", &redis_url)] {
        for work in ["counter", "tasks"] {
            let total = run_together(4, |_| {
                vec![
                    "store-worker".to_string(),
                    url.clone(),
                    work.to_string(),
                    seconds.clone(),
                ]
            });
            let (what, unit) = match work {
                "counter" => ("Counter.add(1), 4 processes", "calls/s"),
                _ => ("tasks, push + take + ack, 4 worker processes", "tasks/s"),
            };
            let base = match (backend, work) {
                ("manager", _) => {
                    on_manager.insert(work, total);
                    None
                }
                ("redis", "counter") => Some((incr, "redis-benchmark INCR, 4 clients")),
                _ => on_manager
                    .get(work)
                    .map(|&m| (m, "the same on the manager")),
            };
            emit(row(
                &format!("{what}, {backend}"),
                "tcp",
                "8 B",
                total,
                unit,
                base,
            ));
        }
    }
    drop(manager);
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// One process of the backend figures: `counter` adds 1, `tasks` pushes, takes and acks, for
/// `seconds`, through `monogusa::connect(url)`; prints operations per second.
pub(crate) fn store_worker_role(url: &str, work: &str, seconds: &str) {
    let store = monogusa::connect(url).unwrap();
    let counter = store.counter("bench-counter").unwrap();
    let queue = store.tasks::<u64>("bench-tasks").unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let span = Duration::from_secs_f64(seconds.parse().unwrap());
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < span {
        if work == "counter" {
            counter.add(1).unwrap();
            done += 1;
        } else {
            queue.push(&1).unwrap();
            if let Some(task) = queue.take(Duration::ZERO).unwrap() {
                task.ack().unwrap();
                done += 1;
            }
        }
    }
    println!("{}", done as f64 / started.elapsed().as_secs_f64());
}
