//! The counter example's workload.

use crate::*;

/// The counter example's workload: 5 processes x 1000 x (get + inc).
pub(crate) fn counter_workload(plan: Plan) {
    for transport in [Transport::Tcp, Transport::Unix] {
        let manager = Server::start("manager", &transport.bind("ctr"));
        let started = Instant::now();
        let children: Vec<Child> = (0..5)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args(["--role", "counter-client", &manager.address])
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let count: i64 = client.call("get", ("hikakin",)).unwrap();
        assert_eq!(count, 5000, "the counter example must count exactly");
        emit(row(
            "counter example (5 processes x 1000 x get+inc)",
            transport.name(),
            "-",
            elapsed,
            "s",
            None,
        ));
        let _ = plan;
    }
}

pub(crate) fn counter_client(address: &str) {
    let client = Client::connect(address, AUTHKEY).unwrap();
    for _ in 0..1000 {
        let _: i64 = client.call("get", ("hikakin",)).unwrap();
        let _: i64 = client.call("inc", ("hikakin",)).unwrap();
    }
}
