//! The benchmark harness: every figure next to a raw-socket baseline measured in the same run.
//!
//! ```text
//! cargo run --release --features redis --example bench  # the full table (a few minutes)
//! cargo run --release --example bench -- --quick    # seconds; what CI runs
//! cargo run --release --example bench -- --json     # machine-readable rows
//! cargo run --release --example bench -- --no-python
//! cargo run --release --example bench -- --only calls  # the sections whose name holds "calls"
//! cargo run --release --example bench -- --only peers  # Celery's chord, RQ's depends_on
//! ```
//!
//! The whole suite runs twice: pinned to one CPU (`taskset -c 0`, all processes: these VMs
//! alternate between fast and slow phases, and pinning makes runs comparable) and unpinned.
//! Servers and clients are separate processes (this program re-run in a role). Payloads: a
//! 16-byte `String` and a 4 KiB `serde_bytes::ByteBuf`, echoed back; the raw baselines echo
//! length-prefixed messages of the same size with the same batching as the manager.
//! When `python3` exists, the same sequential call and the counter workload also run against
//! Python's `multiprocessing.managers` for a side-by-side speed-up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use monogusa::{Client, Manager, Pending};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

mod calls;
mod counter;
mod memory;
mod msgpack;
mod output;
mod peers;
mod python;
mod redis;
mod servers;
mod store;
mod suite;
mod support;
mod tasks;
mod workers;
mod workflows;

use calls::*;
use counter::*;
use memory::*;
use msgpack::*;
use output::*;
use peers::*;
use python::*;
use redis::*;
use servers::*;
use store::*;
use suite::*;
use support::*;
use tasks::*;
use workers::*;
use workflows::*;

/// One measured figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    measurement: String,
    transport: String,
    size: String,
    value: f64,
    unit: String,
    /// The figure divided by its baseline (what `baseline` says), if it has one.
    ratio: Option<f64>,
    baseline: String,
}

#[derive(Clone, Copy)]
struct Plan {
    quick: bool,
    /// How long each throughput figure is measured.
    span: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        Plan {
            quick,
            span: if quick {
                Duration::from_millis(60)
            } else {
                Duration::from_millis(700)
            },
        }
    }
}

const AUTHKEY: &str = "bench";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--role") {
        let role = args[at + 1].as_str();
        let rest = &args[at + 2..];
        run_role(role, rest);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().any(|a| a == "--json");
    let python = !args.iter().any(|a| a == "--no-python");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map_or(String::new(), |at| args[at + 1].clone());

    let pinned = if has_taskset() {
        Some(run_suite(true, quick, &only))
    } else {
        eprintln!("bench: taskset not found; pinned figures skipped");
        None
    };
    let unpinned = run_suite(false, quick, &only);
    let python_rows = if python && has_python() {
        python_comparison(quick, pinned.as_ref().unwrap_or(&unpinned))
    } else {
        Vec::new()
    };

    if json {
        let out = serde_json::json!({
            "date": today(),
            "machine": machine(),
            "quick": quick,
            "pinned": pinned,
            "unpinned": unpinned,
            "python": python_rows,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        print_table(pinned.as_deref(), &unpinned, &python_rows, quick);
    }
}

// ---- Orchestration -------------------------------------------------------------------------

/// Runs every measurement in a child process (pinned to CPU 0, or not) and collects its rows.
fn run_suite(pinned: bool, quick: bool, only: &str) -> Vec<Row> {
    let exe = std::env::current_exe().unwrap();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    command.args([
        "--role",
        "suite",
        if quick { "quick" } else { "full" },
        only,
    ]);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("running the suite");
    assert!(output.status.success(), "the benchmark suite failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn run_role(role: &str, args: &[String]) {
    match role {
        "suite" => suite(
            Plan::new(args[0] == "quick"),
            args.get(1).map_or("", String::as_str),
        ),
        "raw-server" => raw_server(&args[0]),
        "manager" => manager_role(&args[0]),
        "caller" => caller_role(&args[0], &args[1], args[2].parse().unwrap()),
        "counter-client" => counter_client(&args[0]),
        // Only the task-queue figures, as rows (for a quick look while working on them).
        "tasks" => {
            task_queues(Plan::new(false));
            supervised_workers(Plan::new(false));
        }
        "workers" => supervised_workers(Plan::new(false)),
        "redis" => redis_backend(Plan::new(false)),
        "store-worker" => store_worker_role(&args[0], &args[1], &args[2]),
        "bare-drainer" => bare_drainer_role(&args[0]),
        "supervised-drainer" => supervised_drainer_role(),
        "msgpack" => msgpack_calls(Plan::new(false)),
        "python-manager" => python_manager_role(&args[0]),
        "msgpack-manager" => msgpack_manager_role(&args[0]),
        "task-manager" => task_manager_role(&args[0], &args[1]),
        "task-worker" => task_worker_role(&args[0], &args[1], &args[2]),
        other => panic!("unknown role {other}"),
    }
}

fn has_taskset() -> bool {
    Command::new("taskset")
        .args(["-c", "0", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn has_python() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
