//! Resident memory per idle connection.

use crate::*;

/// Resident memory the manager gains per idle, authenticated connection.
pub(crate) fn idle_memory(plan: Plan) {
    let n = if plan.quick { 50 } else { 1000 };
    let manager = Server::start("manager", &Transport::Tcp.bind("mem"));
    let warm = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
    let _: String = warm.call("echo", (small_arg(),)).unwrap();
    let before = rss_kib(manager.pid);
    let clients: Vec<Client> = (0..n)
        .map(|_| Client::connect(manager.address.as_str(), AUTHKEY).unwrap())
        .collect();
    // One call each, so every connection thread has read a request and answered it.
    for c in &clients {
        let _: String = c.call("echo", (small_arg(),)).unwrap();
    }
    let after = rss_kib(manager.pid);
    emit(row(
        &format!("memory per idle connection ({n} connections)"),
        "tcp",
        "-",
        (after - before) as f64 / n as f64,
        "KiB",
        None,
    ));
}

pub(crate) fn rss_kib(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
