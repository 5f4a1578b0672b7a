//! Tasks through supervised workers, next to bare take + ack loops.

use crate::*;

/// Tasks through supervised workers (`Supervisor` + `Worker::run`, 1, 2 and 4 processes of
/// one thread) against bare take + ack loops in as many processes, in the same run: the
/// framework's overhead (heartbeats, stop checks, lease keeping, panics caught). Workers are
/// started and idle first; the clock runs from the first push of `tasks` to the last ack.
pub(crate) fn supervised_workers(plan: Plan) {
    let tasks: u64 = if plan.quick { 5_000 } else { 100_000 };
    for processes in [1usize, 2, 4] {
        let manager = Server::start_with("task-manager", &Transport::Tcp.bind("sw"), &["-"]);
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        // A warm-up round first (connection threads, allocations), then the measured one.
        let drain = |queue: &monogusa::TaskQueue<u64>| {
            let mut rate = 0.0;
            for (round, count) in [(1, tasks / 10), (2, tasks)] {
                let batch: Vec<u64> = (0..count.min(1000)).collect();
                let count = batch.len() as u64 * (count / batch.len() as u64);
                let before = queue.stats().unwrap().done;
                let started = Instant::now();
                for _ in 0..count / batch.len() as u64 {
                    queue.push_many(&batch).unwrap();
                }
                while queue.stats().unwrap().done < before + count {
                    std::thread::sleep(Duration::from_millis(2));
                }
                if round == 2 {
                    rate = count as f64 / started.elapsed().as_secs_f64();
                }
            }
            rate
        };

        let bare_queue = client.tasks::<u64>("bare").unwrap();
        let bare: Vec<Child> = (0..processes)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args(["--role", "bare-drainer", &manager.address])
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        while client.manager_stats().unwrap().connections_open < processes as u64 + 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let bare_rate = drain(&bare_queue);
        for mut child in bare {
            let _ = child.kill();
            let _ = child.wait();
        }

        let supervised_queue = client.tasks::<u64>("supervised").unwrap();
        let mut supervisor =
            monogusa::workers::Supervisor::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let mut settings = monogusa::workers::SupervisorSettings::default();
        settings.print_output = false;
        settings.handle_signals = false;
        supervisor.settings(settings).spawn(
            "drainer",
            processes,
            monogusa::workers::Program::current_exe()
                .unwrap()
                .args(["--role", "supervised-drainer"]),
        );
        let stop = supervisor.stop_handle();
        let supervising = std::thread::spawn(move || supervisor.run().unwrap());
        let running = || {
            client
                .workers()
                .unwrap()
                .iter()
                .filter(|w| w.heartbeat_age.is_some())
                .count()
        };
        while running() < processes {
            std::thread::sleep(Duration::from_millis(5));
        }
        let supervised_rate = drain(&supervised_queue);
        stop.stop();
        supervising.join().unwrap();
        emit(row(
            &format!("tasks through supervised workers, {processes} processes"),
            "tcp",
            "8 B",
            supervised_rate,
            "tasks/s",
            Some((bare_rate, "bare take + ack loops, as many processes")),
        ));
        drop(manager);
    }
}

/// Takes and acks tasks of the queue "bare" until killed.
pub(crate) fn bare_drainer_role(address: &str) {
    let client = Client::connect(address, AUTHKEY).unwrap();
    let queue = client.tasks::<u64>("bare").unwrap();
    loop {
        if let Some(task) = queue.take(Duration::from_millis(200)).unwrap() {
            task.ack().unwrap();
        }
    }
}

/// A supervised worker doing nothing per task, on one thread, until stopped.
pub(crate) fn supervised_drainer_role() {
    let worker = monogusa::workers::Worker::from_env().unwrap();
    let queue = worker.client().tasks::<u64>("supervised").unwrap();
    worker
        .run(&queue, 1, |_| Ok::<(), std::convert::Infallible>(()))
        .unwrap();
}
