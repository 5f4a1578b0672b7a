//! Workflows next to plain tasks in the same run: a chord of no-op tasks against the same
//! number of plain ones, and an ack with writes (`ack_with`: a counter add and a push) against
//! a plain ack, in memory and with a data directory.

use crate::*;

/// How many threads (each with its own connection) work the queue.
const WORKERS: usize = 4;

/// Chords and `ack_with`, each next to its plain counterpart.
pub(crate) fn workflows(plan: Plan) {
    let members: u64 = if plan.quick { 1_000 } else { 10_000 };
    for durable in [false, true] {
        let dir = durable.then(|| tempfile_dir("workflows"));
        let dir_arg = dir
            .as_ref()
            .map_or("-".to_string(), |d| d.display().to_string());
        let store = if durable { "data dir" } else { "memory" };
        let manager = Server::start_with("task-manager", &Transport::Tcp.bind("wf"), &[&dir_arg]);
        let plain = finish_rate(&manager.address, "plain", members, false);
        let chord = finish_rate(&manager.address, "chord", members, true);
        emit(row(
            &format!("{members} plain tasks, take + ack, {WORKERS} threads, {store}"),
            "tcp",
            "8 B",
            plain,
            "tasks/s",
            None,
        ));
        emit(row(
            &format!("a chord of {members} tasks and its callback, {WORKERS} threads, {store}"),
            "tcp",
            "8 B",
            chord,
            "tasks/s",
            Some((plain, "the same plain tasks")),
        ));
        let acks = ack_rate(&manager.address, plan, false);
        let with = ack_rate(&manager.address, plan, true);
        emit(row(
            &format!("take + ack, {WORKERS} threads, {store}"),
            "tcp",
            "8 B",
            acks,
            "acks/s",
            None,
        ));
        emit(row(
            &format!("take + ack_with (a counter add, a push), {WORKERS} threads, {store}"),
            "tcp",
            "8 B",
            with,
            "acks/s",
            Some((acks, "a plain ack")),
        ));
        drop(manager);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Tasks per second from the push of `n` tasks (as a chord with a callback, or plain) until
/// the last one is done, worked by [`WORKERS`] threads taking one task at a time.
pub(crate) fn finish_rate(address: &str, queue: &str, n: u64, chord: bool) -> f64 {
    let client = Client::connect(address, AUTHKEY).unwrap();
    let jobs = client.tasks::<u64>(queue).unwrap();
    let tasks: Vec<u64> = (0..n).collect();
    let started = Instant::now();
    let last = if chord {
        Some(jobs.push_group(&tasks, &u64::MAX).unwrap().id)
    } else {
        jobs.push_many(&tasks).unwrap();
        None
    };
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            let client = Client::connect(address, AUTHKEY).unwrap();
            let jobs = client.tasks::<u64>(queue).unwrap();
            scope.spawn(move || {
                while let Some(task) = jobs.take(Duration::from_millis(50)).unwrap() {
                    task.ack().unwrap();
                }
            });
        }
    });
    if let Some(callback) = last {
        assert_eq!(jobs.status(callback).unwrap(), monogusa::TaskStatus::Done);
    }
    assert!(jobs.join(Duration::ZERO).unwrap(), "every task is done");
    // The workers' last empty take (50 ms) is not work: leave it out.
    let elapsed = started.elapsed().as_secs_f64() - 0.05;
    (n + u64::from(chord)) as f64 / elapsed.max(1e-3)
}

/// Acks per second over the plan's span, [`WORKERS`] threads taking one task at a time and
/// acking it plainly or with a counter add and a push (`with`).
fn ack_rate(address: &str, plan: Plan, with: bool) -> f64 {
    let name = if with { "acks-with" } else { "acks" };
    let client = Client::connect(address, AUTHKEY).unwrap();
    let jobs = client.tasks::<u64>(name).unwrap();
    // Enough for the plain acks, which do not push (ack_with pushes one per ack).
    let backlog: Vec<u64> = (0..if plan.quick { 20_000 } else { 100_000 }).collect();
    for chunk in backlog.chunks(10_000) {
        jobs.push_many(chunk).unwrap();
    }
    let span = plan.span * 2;
    let started = Instant::now();
    let acked: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|_| {
                let client = Client::connect(address, AUTHKEY).unwrap();
                let jobs = client.tasks::<u64>(name).unwrap();
                let counter = client.counter("acks-with-count").unwrap();
                scope.spawn(move || {
                    let mut acked = 0;
                    while started.elapsed() < span {
                        let Some(task) = jobs.take(Duration::ZERO).unwrap() else {
                            break;
                        };
                        if with {
                            task.ack_with(|tx| {
                                tx.add(&counter, 1)?.push(&1)?;
                                Ok(())
                            })
                            .unwrap();
                        } else {
                            task.ack().unwrap();
                        }
                        acked += 1;
                    }
                    acked
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    acked as f64 / started.elapsed().as_secs_f64()
}

/// [`finish_rate`] of a chord of `n` tasks.
pub(crate) fn chord_rate(address: &str, queue: &str, n: u64) -> f64 {
    finish_rate(address, queue, n, true)
}
