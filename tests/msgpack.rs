//! The msgpack-rpc listener against third-party clients: Python's `msgpack` package on a
//! plain socket, and Node's `msgpack5rpc` (installed by `.ci/run` into `tests/node`).
#![allow(missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::KEY;
use monogusa::{Client, Dynamic, Manager, ManagerHandle};

fn start() -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .handshake_timeout(Duration::from_secs(5))
        .msgpack_listener("127.0.0.1:0")
        .register("echo", |s: String| s)
        .register("add", |a: i64, b: i64| a + b)
        .register("length", |b: serde_bytes::ByteBuf| b.len())
        .register("point", |p: common::Point| p.x + p.y)
        .register("sleep_ms", |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        })
        .register("fail", |why: String| -> Result<(), String> { Err(why) })
        .register("boom", || -> u8 { panic!("boom") })
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn port(manager: &ManagerHandle) -> String {
    let address = manager.msgpack_addresses()[0].to_string();
    address.rsplit(':').next().unwrap().to_string()
}

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

fn run(program: &str, script: PathBuf, scenario: &str, port: &str) -> String {
    let output = Command::new(program)
        .arg(script)
        .args([scenario, "127.0.0.1", port, KEY])
        .env("NODE_PATH", dir("node").join("node_modules"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn python(scenario: &str, manager: &ManagerHandle) -> String {
    run(
        "python3",
        dir("msgpack").join("client.py"),
        scenario,
        &port(manager),
    )
}

#[test]
fn python_msgpack_calls_functions_and_shared_objects() {
    let manager = start();
    let out = python("calls", &manager);
    for expected in [
        "echo: hello",
        "add: 5",
        "point: 3",
        "bytes: 300",
        "pipelined ok: True",
        "out of order: True",
        "notified: 5",
        "queue: {'task': [1, 2]}",
        "dict: 7 [['k', 7]]",
        "error: UnknownFunction",
        "error: BadArguments",
        "error: Handler",
        "error: Panicked",
        "describe: True",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // A Rust client sees the same objects.
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.counter("notified").unwrap().get().unwrap(), 5);
    let dict = client
        .named("d")
        .type_tag("dynamic, dynamic")
        .dict::<Dynamic, Dynamic>()
        .unwrap();
    assert_eq!(
        dict.get(&Dynamic::Str("k".into())).unwrap(),
        Some(Dynamic::Int(7))
    );
}

#[test]
fn five_python_processes_count_exactly_over_msgpack() {
    let manager = start();
    let out = python("counter", &manager);
    assert!(out.contains("count: 5000"), "{out}");
}

#[test]
fn hostile_msgpack_input_is_refused_and_the_manager_serves_on() {
    let manager = start();
    let out = python("unauthenticated", &manager);
    assert!(out.contains("refused: NotAuthenticated"), "{out}");
    assert!(out.contains("closed"), "{out}");
    let out = python("wrong_proof", &manager);
    assert!(out.contains("refused: AuthenticationFailed"), "{out}");
    let out = python("reused_msgid", &manager);
    assert!(out.contains("reused: MsgidInFlight"), "{out}");
    let out = python("hostile", &manager);
    for expected in [
        "garbage closed",
        "bin32 closed",
        "deep closed",
        "after: alive",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("add", (1i64, 1i64)).unwrap(), 2);
}

#[test]
fn msgpack_over_a_unix_socket_and_a_stalled_message_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rpc.sock");
    let manager = Manager::builder()
        .authkey(KEY)
        .stall_timeout(Duration::from_millis(300))
        .msgpack_listener(format!("unix:{}", path.display()).as_str())
        .register("echo", |s: String| s)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let output = Command::new("python3")
        .arg(dir("msgpack").join("client.py"))
        .args(["unix", &path.display().to_string(), "0", KEY])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("echo: over unix"));
    let output = Command::new("python3")
        .arg(dir("msgpack").join("client.py"))
        .args(["stall", &path.display().to_string(), "0", KEY])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("cut"),
        "{output:?}"
    );
    drop(manager);
}

/// Node's msgpack5rpc, when `.ci/run` installed it (it does, on every CI machine).
#[test]
fn node_msgpack5rpc_calls_and_counts() {
    if !dir("node")
        .join("node_modules")
        .join("msgpack5rpc")
        .exists()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install msgpack5rpc into tests/node"
        );
        println!("skipped: run `npm install --prefix tests/node msgpack5rpc` for this test");
        return;
    }
    let manager = start();
    let port = port(&manager);
    let out = run("node", dir("node").join("client.js"), "calls", &port);
    assert!(out.contains("echo: hello"), "{out}");
    assert!(out.contains("add: 5"), "{out}");
    assert!(out.contains("pipelined ok: true"), "{out}");
    assert!(out.contains("error: UnknownFunction"), "{out}");
    let out = run("node", dir("node").join("client.js"), "counter", &port);
    assert!(out.contains("count: 5000"), "{out}");
}
