//! The msgpack-rpc listener against third-party clients: Python's `msgpack` package on a
//! plain socket, and Node's `msgpack5rpc`. Both are provisioned under `target/` when missing
//! (`common::prereq`), or the tests say what is missing and skip.
#![allow(missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{KEY, prereq};
use monogusa::{Client, Dynamic, Manager, ManagerHandle};

fn start() -> ManagerHandle {
    Manager::builder()
        .serve("tally", common::TallyServer::new(common::Sum::default()))
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

fn run(command: &mut Command, script: PathBuf, scenario: &str, port: &str) -> String {
    let program = PathBuf::from(command.get_program());
    let output = command
        .arg(script)
        .args([scenario, "127.0.0.1", port, KEY])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {scenario} failed:\n{stdout}\n{}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Python with `msgpack`, or `None` (the suite says it skips).
fn python_msgpack() -> Option<PathBuf> {
    prereq::python_with_msgpack()
}

fn python(python: &Path, scenario: &str, manager: &ManagerHandle) -> String {
    run(
        &mut Command::new(python),
        dir("msgpack").join("client.py"),
        scenario,
        &port(manager),
    )
}

#[test]
fn python_msgpack_calls_functions_and_shared_objects() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let out = python(&py, "calls", &manager);
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
fn every_kind_and_served_object_is_reachable_over_msgpack() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let out = python(&py, "kinds", &manager);
    for expected in [
        "described: True",
        "services: ['tally.add', 'tally.explode', 'tally.total']",
        "pushed: [True, True]",
        "taken: ['a@x', 'b@x'] [1, 1]",
        "extended: True",
        "acked: [0]",
        "failed: Dead",
        "extra argument: BadArguments",
        "stats: 1 1 0",
        "dead: ['bad address'] {'to': 'b@x'}",
        "requeued: 1 1",
        "semaphore: True 1",
        "barrier: UnknownObject",
        "barrier wait: 0",
        "event: True",
        "tally: 5 7 7",
        "peek: first 1",
        "mailbox: {'stop': True} None",
        "unknown method: UnknownMethod",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // A Rust client takes what msgpack pushed, as `Dynamic` values.
    let client = Client::connect(manager.address(), KEY).unwrap();
    let emails = client
        .named("emails")
        .type_tag("dynamic")
        .tasks::<Dynamic>(Default::default())
        .unwrap();
    let task = emails.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        task.payload(),
        &Dynamic::Map(vec![(
            Dynamic::Str("to".into()),
            Dynamic::Str("b@x".into())
        )])
    );
    task.ack().unwrap();
    let peeked = client
        .named("peeked")
        .type_tag("dynamic")
        .queue::<Dynamic>(0)
        .unwrap();
    assert_eq!(peeked.peek().unwrap(), Some(Dynamic::Str("first".into())));
    // A mailbox is the same by name from Rust and msgpack.
    let inbox = client.mailbox::<Dynamic>("resizer-2").unwrap();
    assert_eq!(
        inbox.recv_timeout(Duration::from_secs(5)).unwrap(),
        Some(Dynamic::Str("for rust".into()))
    );
}

#[test]
fn a_msgpack_worker_killed_mid_task_gives_its_lease_back_at_once() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let client = Client::connect(manager.address(), KEY).unwrap();
    // A lease far longer than the test: only the closed connection can give it back.
    let jobs = client
        .named("jobs")
        .type_tag("dynamic")
        .tasks::<Dynamic>(monogusa::TaskQueueSettings {
            lease_timeout: Duration::from_secs(3600),
            ..Default::default()
        })
        .unwrap();
    jobs.push(&Dynamic::Str("resize".into())).unwrap();
    let output = Command::new(&py)
        .arg(dir("msgpack").join("client.py"))
        .args(["take_and_die", "127.0.0.1", &port(&manager), KEY])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("holding resize"),
        "{output:?}"
    );
    let task = jobs.take(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(task.payload(), &Dynamic::Str("resize".into()));
    assert_eq!(task.attempt(), 2);
    task.ack().unwrap();
}

/// msgpack connections are reported to `on_connection` as native ones are.
#[test]
fn msgpack_connections_are_reported_to_on_connection() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&events);
    let manager = Manager::builder()
        .authkey(KEY)
        .msgpack_listener("127.0.0.1:0")
        .register("echo", |s: String| s)
        .on_connection(move |event| seen.lock().unwrap().push(event.clone()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let out = python(&py, "echo", &manager);
    assert!(out.contains("echo: over tcp"), "{out}");
    common::wait_until(
        Duration::from_secs(10),
        "the connection's end reported",
        || {
            let events = events.lock().unwrap();
            matches!(
                events.as_slice(),
                [
                    monogusa::ConnectionEvent::Connected { .. },
                    monogusa::ConnectionEvent::Closed { .. }
                ]
            )
        },
    );
}

/// At the cap of connections, a msgpack client gets an error reply saying so (msgid 0,
/// `Busy`), not a silent close.
#[test]
fn a_full_msgpack_door_answers_busy() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = Manager::builder()
        .authkey(KEY)
        .msgpack_listener("127.0.0.1:0")
        .max_connections(2)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let out = python(&py, "busy", &manager);
    assert!(out.contains("refused: 1 0 Busy"), "{out}");
}

#[test]
fn five_python_processes_count_exactly_over_msgpack() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let out = python(&py, "counter", &manager);
    assert!(out.contains("count: 5000"), "{out}");
}

#[test]
fn hostile_msgpack_input_is_refused_and_the_manager_serves_on() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let out = python(&py, "unauthenticated", &manager);
    assert!(out.contains("refused: NotAuthenticated"), "{out}");
    assert!(out.contains("closed"), "{out}");
    let out = python(&py, "wrong_proof", &manager);
    assert!(out.contains("refused: AuthenticationFailed"), "{out}");
    let out = python(&py, "reused_msgid", &manager);
    assert!(out.contains("reused: MsgidInFlight"), "{out}");
    let out = python(&py, "hostile", &manager);
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
    let Some(py) = python_msgpack() else {
        return;
    };
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
    let output = Command::new(&py)
        .arg(dir("msgpack").join("client.py"))
        .args(["unix", &path.display().to_string(), "0", KEY])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("echo: over unix"));
    let output = Command::new(&py)
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

/// Node's msgpack5rpc (from `tests/node`'s lock file).
#[test]
fn node_msgpack5rpc_calls_and_counts() {
    let Some(modules) = prereq::node_modules() else {
        return;
    };
    let node = || {
        let mut command = Command::new("node");
        command.env("NODE_PATH", &modules);
        command
    };
    let manager = start();
    let port = port(&manager);
    let out = run(&mut node(), dir("node").join("client.js"), "calls", &port);
    assert!(out.contains("echo: hello"), "{out}");
    assert!(out.contains("add: 5"), "{out}");
    assert!(out.contains("pipelined ok: true"), "{out}");
    assert!(out.contains("error: UnknownFunction"), "{out}");
    let out = run(&mut node(), dir("node").join("client.js"), "counter", &port);
    assert!(out.contains("count: 5000"), "{out}");
}

/// The suite on a machine as fresh as the README promises: a `python3` without `msgpack`
/// (here, one that loads no site packages) and no `node_modules`, nor `npm` on the PATH. It
/// passes: Python's `msgpack` is provisioned in a virtual environment of its own (where
/// PyPI is reachable; else it says it skips, as it does for Node), and nothing fails.
#[test]
fn the_suite_provisions_or_skips_on_a_fresh_machine() {
    if std::env::var_os(prereq::ENV_DIR_VAR).is_some() {
        return; // the suite's own child run
    }
    let scratch = tempfile::tempdir().unwrap();
    let bare = scratch.path().join("python3");
    std::fs::write(&bare, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bare, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(
        !Command::new(&bare)
            .args(["-c", "import msgpack"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success(),
        "the bare python3 cannot import msgpack"
    );
    // A PATH with python3 and the shell's tools, but neither node nor npm.
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // The interpreter itself, not a shim (pyenv's need more of the PATH).
    let real_python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let real_python = String::from_utf8_lossy(&real_python.stdout)
        .trim()
        .to_string();
    std::os::unix::fs::symlink(real_python, bin.join("python3")).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let env_dir = scratch.path().join("env");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--skip",
            "the_suite_provisions_or_skips",
            "--test-threads",
            "2",
        ])
        .env(prereq::ENV_DIR_VAR, &env_dir)
        .env("MONOGUSA_TEST_PYTHON", &bare)
        .env("PATH", &bin)
        .env_remove("CI")
        .env_remove("NODE_PATH")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("SKIPPED in msgpack: needs node and npm"),
        "one visible line for Node: {stderr}"
    );
    assert_eq!(
        stderr.matches("SKIPPED in msgpack: needs node").count(),
        1,
        "{stderr}"
    );
    let provisioned = env_dir.join("python-msgpack/bin/python").exists();
    // CI reaches PyPI: there the Python half must have been provisioned and run.
    assert!(
        provisioned || std::env::var_os("CI").is_none(),
        "msgpack was not provisioned: {stderr}"
    );
    assert!(
        provisioned || stderr.contains("SKIPPED in msgpack: needs Python's msgpack"),
        "{stderr}"
    );
    eprintln!("{stderr}");
}

/// Before authentication a message is at most a few KiB: the audit's 64 MiB first message
/// (a str32 header, then its bytes, in 16 KiB writes) is cut within the first 4 KiB, where
/// it used to be buffered whole and re-parsed after every read; the manager serves on.
#[test]
fn a_huge_message_before_authentication_is_cut_at_once() {
    use std::io::{Read, Write};
    let manager = start();
    let address = manager.msgpack_addresses()[0].to_string();
    let mut stream = std::net::TcpStream::connect(address.as_str()).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut header = vec![0xdbu8];
    header.extend_from_slice(&(64u32 << 20).to_be_bytes());
    stream.write_all(&header).unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = header.len();
    while sent < 64 << 20 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    // (What the two sockets' buffers hold is written before the reset arrives.)
    assert!(
        sent < 32 << 20,
        "the manager read {sent} bytes before authentication"
    );
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    // Everyone else is served.
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("add", (2i64, 3i64)).unwrap(), 5);
}

/// Authentication has one total deadline, however the bytes drip in (the audit held every
/// slot with 1,024 dripping sockets): a request whose 3,000-byte method name arrives a byte
/// every 200 ms is cut at the 1 s deadline, not after its last byte.
#[test]
fn a_dripping_authentication_is_cut_at_its_deadline() {
    let manager = Manager::builder()
        .authkey(KEY)
        .handshake_timeout(Duration::from_secs(1))
        .msgpack_listener("127.0.0.1:0")
        .build()
        .unwrap()
        .start()
        .unwrap();
    let address = manager.msgpack_addresses()[0].to_string();
    let mut stream = std::net::TcpStream::connect(address.as_str()).unwrap();
    // [0, 1, "mmm…", []] with a str16 of 3000 bytes.
    let mut message = vec![0x94, 0x00, 0x01, 0xda, 0x0b, 0xb8];
    message.resize(message.len() + 3000, b'm');
    message.push(0x90);
    let sent = common::drip_until_closed(&mut stream, &message);
    assert!(
        sent < 25,
        "the dripping authentication went on for {sent} bytes"
    );
}

/// Wrong keys are slowed down across doors: after six at the native door, a wrong proof at
/// the msgpack-rpc door from the same address waits for its answer (400 ms by then), where
/// it used to be answered at once (2,855 guesses a second).
#[test]
fn a_wrong_key_at_one_door_slows_the_others() {
    use std::io::{Read, Write};
    let manager = start();
    for _ in 0..6 {
        assert!(Client::connect(manager.address(), "not the key").is_err());
    }
    let address = manager.msgpack_addresses()[0].to_string();
    let mut stream = std::net::TcpStream::connect(address.as_str()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // [0, 1, "monogusa.challenge", []]
    let mut challenge = vec![0x94, 0x00, 0x01, 0xb2];
    challenge.extend_from_slice(b"monogusa.challenge");
    challenge.push(0x90);
    stream.write_all(&challenge).unwrap();
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).unwrap();
    assert!(n > 32, "the challenge's reply");
    // [0, 2, "monogusa.prove", [bin8 of 32 zeros]]: a wrong proof.
    let mut prove = vec![0x94, 0x00, 0x02, 0xae];
    prove.extend_from_slice(b"monogusa.prove");
    prove.extend_from_slice(&[0x91, 0xc4, 32]);
    prove.extend_from_slice(&[0u8; 32]);
    let sent = std::time::Instant::now();
    stream.write_all(&prove).unwrap();
    let _ = stream.read(&mut reply);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "a wrong proof after six wrong keys was answered in {waited:?}"
    );
}

/// The PyPI msgpack-rpc client as it is (`msgpack-rpc-python` 0.4.1: tornado 4 and the old
/// `msgpack-python`, which sends bytes as str): it authenticates (its str proof is taken as
/// the bytes it is), pushes, takes and acks tasks; skipping authentication or a wrong proof
/// gets an error reply it reads (it used to time out, the connection closed on a str that was
/// not UTF-8).
#[test]
fn the_pypi_msgpack_rpc_client_authenticates_and_takes_tasks() {
    let Some(py) = prereq::python_with_msgpackrpc() else {
        return;
    };
    let manager = start();
    let out = run(
        &mut Command::new(py),
        dir("msgpack").join("pypi_client.py"),
        "tasks",
        &port(&manager),
    );
    for expected in [
        "unauthenticated: NotAuthenticated",
        "proved: True",
        "pushed: 2",
        "taken: ['a@x', 'b@x']",
        "acked: [0, 0]",
        "done: 2",
        "wrong proof: AuthenticationFailed",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// A third language: Go's standard `net/rpc` over the msgpack-rpc spec codec of
/// hashicorp/go-msgpack authenticates, pushes, takes and acks tasks. Its codec reads an error
/// only as a string, so it sees that a call without authentication failed, not why.
#[test]
fn a_go_msgpack_rpc_client_authenticates_and_takes_tasks() {
    let Some(go) = prereq::go_msgpack_client() else {
        return;
    };
    let manager = start();
    let output = Command::new(go)
        .arg(manager.msgpack_addresses()[0].to_string())
        .arg(KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    for expected in [
        "unauthenticated error: ",
        "proved: true",
        "pushed: 2",
        "taken: a@x attempt 1",
        "taken: b@x attempt 1",
        "acked: 2",
        "done: 2",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(!out.contains("unauthenticated error: <nil>"), "{out}");
}

/// A task queue a Rust client made with typed elements, over msgpack-rpc: the struct is a map
/// both ways, and a payload that does not fit is an error naming the field.
#[test]
fn msgpack_reaches_a_typed_rust_task_queue_with_structs_as_maps() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Email {
        to: String,
        retries: u32,
        cc: Option<String>,
    }
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let emails = client.tasks::<Email>("typed-emails").unwrap();
    emails
        .push(&Email {
            to: "ada@x".into(),
            retries: 3,
            cc: Some("c@x".into()),
        })
        .unwrap();
    let out = python(&py, "typed", &manager);
    assert!(
        out.contains("typed take: {'to': 'ada@x', 'retries': 3, 'cc': 'c@x'}"),
        "{out}"
    );
    assert!(out.contains("misfit: BadArguments True"), "{out}");
    let task = emails.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(task.payload().to, "bob@x");
    assert_eq!(task.payload().cc, None);
    task.ack().unwrap();
}

/// A worker in any language registers and heartbeats over msgpack-rpc (`workers.report`, the
/// registry's declared method, no name needed) and shows as a Rust worker does.
#[test]
fn a_msgpack_worker_reports_itself_into_the_registry() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let out = python(&py, "worker", &manager);
    assert!(out.contains("listed: ['mp-worker']"), "{out}");
    let client = Client::connect(manager.address(), KEY).unwrap();
    let worker = client
        .workers()
        .unwrap()
        .into_iter()
        .find(|w| w.name == "mp-worker")
        .unwrap();
    assert_eq!(
        (worker.pid, worker.host.as_deref(), worker.done),
        (Some(4242), Some("elsewhere"), 3)
    );
    assert_eq!(worker.state, monogusa::workers::WorkerState::Running);
    assert!(worker.heartbeat_age.is_some());
}

/// Status and results by id over msgpack-rpc, from the declarations: `tasks.status`,
/// `tasks.complete` (an ack with a result), `tasks.outcome`, a chord by `tasks.push_graph`
/// and its callback's `tasks.inputs`; Rust reads the result too.
#[test]
fn msgpack_workers_keep_results_by_id() {
    let Some(py) = python_msgpack() else {
        return;
    };
    let manager = start();
    let out = python(&py, "results", &manager);
    for expected in [
        "status: Ready",
        "leased: {'Leased': {'attempt': 1}}",
        "completed: [0]",
        "outcome: {'Done': {'tripled': 9}}",
        "graph: [True, True, True] Waiting",
        "inputs: [{'Done': 20}, {'Done': 30}]",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.tasks::<Dynamic>("mp-results").unwrap();
    let id = monogusa::TaskId(1);
    assert_eq!(
        jobs.result::<Dynamic>(id, Duration::ZERO).unwrap(),
        monogusa::TaskResult::Done(Some(Dynamic::Map(vec![(
            Dynamic::Str("tripled".into()),
            Dynamic::Int(9)
        )])))
    );
}
