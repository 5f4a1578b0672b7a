//! Unmodified Python `multiprocessing.managers` clients against a Rust manager's Python
//! listener, on every interpreter this machine has (python3, and each `pyenv` version from 3.8).
#![allow(missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{KEY, wait_until};
use monogusa::{Client, Dynamic, Manager, ManagerHandle, PythonShared};

/// One Python interpreter: how to run it.
#[derive(Debug, Clone)]
struct Python {
    label: String,
    program: String,
    version: Option<String>,
}

impl Python {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        if let Some(version) = &self.version {
            command.env("PYENV_VERSION", version);
        }
        command
    }
}

/// The interpreters found (printed once); fails the test if there is not even `python3`.
fn interpreters() -> &'static [Python] {
    static FOUND: OnceLock<Vec<Python>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut found = Vec::new();
        let works = |python: &Python| {
            python
                .command()
                .arg("-c")
                .arg("import sys; assert sys.version_info >= (3, 8)")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let system = Python {
            label: "python3".into(),
            program: "python3".into(),
            version: None,
        };
        assert!(
            works(&system),
            "these tests need python3 (3.8 or later) on PATH"
        );
        found.push(system);
        if let Ok(out) = Command::new("pyenv").args(["versions", "--bare"]).output() {
            for version in String::from_utf8_lossy(&out.stdout).lines() {
                let python = Python {
                    label: format!("pyenv {version}"),
                    program: "python".into(),
                    version: Some(version.trim().to_string()),
                };
                if works(&python) {
                    found.push(python);
                }
            }
        }
        let labels: Vec<&str> = found.iter().map(|p| p.label.as_str()).collect();
        println!("python interpreters: {}", labels.join(", "));
        found
    })
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// The tutorial's manager: get, put, inc, get_uname, plus functions that fail, and the
/// built-in shared objects exposed under Python names.
fn start(handshake_timeout: Duration) -> ManagerHandle {
    let store = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Dynamic,
    >::new()));
    let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
    Manager::builder()
        .authkey(KEY)
        .handshake_timeout(handshake_timeout)
        .python_listener("127.0.0.1:0")
        .register("get", move |key: String| {
            s1.lock().unwrap().get(&key).cloned()
        })
        .register("put", move |key: String, value: Dynamic| {
            s2.lock().unwrap().insert(key, value);
        })
        .register("inc", move |key: String| -> i64 {
            let mut store = s3.lock().unwrap();
            let n = store.get(&key).and_then(Dynamic::as_i64).unwrap_or(0) + 1;
            store.insert(key, Dynamic::Int(n));
            n
        })
        .register("get_uname", || ("linux".to_string(), "host".to_string()))
        .register("fail", |why: String| -> Result<(), String> {
            Err(format!("failed: {why}"))
        })
        .register("divide", |a: i64, b: i64| {
            a.checked_div(b)
                .ok_or_else(|| format!("cannot divide {a} by zero"))
        })
        .python_expose("get_queue", PythonShared::queue::<i64>("jobs"))
        .python_expose("get_dict", PythonShared::dict::<String, i64>("scores"))
        .python_expose("get_lock", PythonShared::lock("config"))
        .python_expose("get_event", PythonShared::event("go"))
        .python_expose("get_value", PythonShared::value::<String>("greeting"))
        .python_expose("get_counter", PythonShared::counter("hits"))
        .python_expose("get_list", PythonShared::list::<String>("log"))
        .serve("tally", common::TallyServer::new(common::Sum::default()))
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn port(manager: &ManagerHandle) -> String {
    let address = manager.python_addresses()[0].to_string();
    address.rsplit(':').next().unwrap().to_string()
}

fn run(python: &Python, file: &str, args: &[&str]) -> Output {
    python
        .command()
        .arg(script(file))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs a script and returns its stdout, failing with its stderr if it failed.
fn run_ok(python: &Python, file: &str, args: &[&str]) -> String {
    let output = run(python, file, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {file} {args:?} failed:\n{stdout}\n{}",
        python.label,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn scenario(python: &Python, manager: &ManagerHandle, name: &str, extra: &[&str]) -> String {
    let port = port(manager);
    let mut args = vec![name, "127.0.0.1", port.as_str(), KEY];
    args.extend_from_slice(extra);
    run_ok(python, "scenarios.py", &args)
}

#[test]
fn the_tutorial_key_value_client_runs_unchanged() {
    let manager = start(Duration::from_secs(10));
    let port = port(&manager);
    for python in interpreters() {
        let out = run_ok(python, "kv_client.py", &["127.0.0.1", &port, KEY]);
        assert!(out.contains("a = 10"), "{}: {out}", python.label);
        assert!(out.contains("b = 'text'"), "{}: {out}", python.label);
        assert!(out.contains("missing = None"), "{}: {out}", python.label);
        assert!(
            out.contains("uname = ('linux', 'host')"),
            "{}: {out}",
            python.label
        );
    }
}

#[test]
fn five_python_processes_count_exactly() {
    let manager = start(Duration::from_secs(10));
    let port = port(&manager);
    let client = Client::connect(manager.address(), KEY).unwrap();
    for (i, python) in interpreters().iter().enumerate() {
        let out = run_ok(
            python,
            "counter_client.py",
            &["127.0.0.1", &port, KEY, "100"],
        );
        let expected = 500 * (i as i64 + 1);
        assert!(
            out.contains(&format!("count = {expected}")),
            "{}: {out}",
            python.label
        );
        // A Rust client sees the same count.
        let count: Option<Dynamic> = client.call("get", ("hikakin",)).unwrap();
        assert_eq!(count, Some(Dynamic::Int(expected)));
    }
}

#[test]
fn the_remote_queue_is_shared_with_rust_clients() {
    let manager = start(Duration::from_secs(10));
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.queue::<i64>("jobs", 0).unwrap();
    for python in interpreters() {
        jobs.put(&1).unwrap();
        let out = scenario(python, &manager, "remote_queue", &[]);
        assert!(out.contains("got 1"), "{}: {out}", python.label);
        assert!(out.contains("then 7 8"), "{}: {out}", python.label);
        assert!(out.contains("empty raised"), "{}: {out}", python.label);
        assert!(out.contains("peeked 9 1"), "{}: {out}", python.label);
        assert_eq!(jobs.get_timeout(Duration::from_secs(5)).unwrap(), Some(9));
    }
}

#[test]
fn a_dict_is_shared_between_python_and_rust() {
    let manager = start(Duration::from_secs(10));
    let client = Client::connect(manager.address(), KEY).unwrap();
    let scores = client.dict::<String, i64>("scores").unwrap();
    for python in interpreters() {
        scores.clear().unwrap();
        scores.insert(&"rust".to_string(), &7).unwrap();
        let out = scenario(python, &manager, "shared_dict", &[]);
        assert!(out.contains("from rust: 7"), "{}: {out}", python.label);
        assert!(
            out.contains("len: 4 keys: ['a', 'b', 'python', 'rust']"),
            "{}: {out}",
            python.label
        );
        assert!(
            out.contains("KeyError raised: 'missing'"),
            "{}: {out}",
            python.label
        );
        assert!(out.contains("get default: -1"), "{}: {out}", python.label);
        assert_eq!(scores.get(&"python".to_string()).unwrap(), Some(42));
    }
}

#[test]
fn a_lock_is_shared_between_python_and_rust() {
    let manager = start(Duration::from_secs(10));
    let client = Client::connect(manager.address(), KEY).unwrap();
    let lock = client.lock("config").unwrap();
    let go = client.event("go").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, python) in interpreters().iter().enumerate() {
        go.clear().unwrap();
        let marker = dir.path().join(format!("held-{i}"));
        let marker_arg = marker.display().to_string();
        let port = port(&manager);
        let mut child = python
            .command()
            .arg(script("scenarios.py"))
            .args(["shared_lock", "127.0.0.1", &port, KEY, &marker_arg])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(30), "python holds the lock", || {
            marker.exists()
        });
        assert!(
            lock.try_acquire().unwrap().is_none(),
            "{}: not exclusive",
            python.label
        );
        go.set().unwrap();
        let guard = lock.acquire_timeout(Duration::from_secs(20)).unwrap();
        assert!(guard.is_some(), "{}: python never released", python.label);
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn rust_errors_arrive_as_python_exceptions_and_values_cross() {
    let manager = start(Duration::from_secs(10));
    let client = Client::connect(manager.address(), KEY).unwrap();
    for python in interpreters() {
        client.list::<String>("log").unwrap().clear().unwrap();
        let out = scenario(python, &manager, "errors", &[]);
        assert_eq!(
            out.matches("RemoteError raised: True").count(),
            2,
            "{}: {out}",
            python.label
        );
        assert!(
            out.contains("type mismatch: True"),
            "{}: {out}",
            python.label
        );
        assert!(
            out.contains("value: hello hello"),
            "{}: {out}",
            python.label
        );
        assert!(out.contains("list: 3 x z"), "{}: {out}", python.label);
        assert!(
            out.contains("objects: True True"),
            "{}: {out}",
            python.label
        );
        assert!(out.contains("rebuilt: None"), "{}: {out}", python.label);
    }
    assert_eq!(
        client.value::<String>("greeting").unwrap().get().unwrap(),
        Some("hello".into())
    );
    let expected = 5 * interpreters().len() as i64;
    assert_eq!(client.counter("hits").unwrap().get().unwrap(), expected);
}

#[test]
fn hostile_python_input_is_refused_and_the_manager_serves_on() {
    let manager = start(Duration::from_secs(2));
    let python = &interpreters()[0];
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let out = scenario(python, &manager, "evil", &[&marker.display().to_string()]);
    assert!(out.contains("reply: #TRACEBACK True"), "{out}");
    assert!(!marker.exists(), "the pickle ran code");
    for which in [
        "truncated",
        "memo",
        "deep",
        "garbage",
        "memo_bomb",
        "empty_lists",
    ] {
        let out = scenario(python, &manager, "hostile", &[which]);
        assert!(out.contains("reply: #TRACEBACK"), "{which}: {out}");
    }
    for which in ["2gib", "huge"] {
        let out = scenario(python, &manager, "length", &[which]);
        assert!(out.contains("closed"), "{which}: {out}");
    }
    let out = scenario(python, &manager, "wrong_key", &[]);
    assert!(out.contains("AuthenticationError"), "{out}");
    // A client that connects and says nothing is cut at the handshake deadline.
    let address = manager.python_addresses()[0].to_string();
    let mut stalled = std::net::TcpStream::connect(address.as_str()).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    let started = std::time::Instant::now();
    let _ = std::io::Read::read_to_end(&mut stalled, &mut sink);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the stalled handshake was not cut"
    );
    // Through all of it, the manager serves Python and Rust clients.
    assert!(scenario(python, &manager, "dummy", &[]).contains("ok"));
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("after",)).unwrap(), 1);
}

#[test]
fn python_clients_connect_over_a_unix_socket_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.sock");
    let manager = Manager::builder()
        .authkey(KEY)
        .python_listener(format!("unix:{}", path.display()).as_str())
        .register("inc", |_key: String| 1i64)
        .build()
        .unwrap()
        .start()
        .unwrap();
    for python in interpreters() {
        let out = run_ok(
            python,
            "scenarios.py",
            &["dummy", &path.display().to_string(), "0", KEY],
        );
        assert!(out.contains("ok"), "{}: {out}", python.label);
    }
    drop(manager);
}

#[test]
fn a_python_client_can_shut_the_manager_down() {
    let manager = start(Duration::from_secs(10));
    let python = &interpreters()[0];
    let out = scenario(python, &manager, "shutdown", &[]);
    assert!(out.contains("shutdown sent"), "{out}");
    wait_until(Duration::from_secs(10), "the manager stops", || {
        Client::connect(manager.address(), KEY).is_err()
    });
}

/// That the script printed `ok CHECK`.
fn assert_checked(out: &str, check: &str, label: &str) {
    assert!(
        out.lines().any(|l| l == format!("ok {check}")),
        "{label}: no `ok {check}` in:\n{out}"
    );
}

/// A manager serving what `SyncManager` clients create, and named objects.
fn builtins_manager() -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .python_listener("127.0.0.1:0")
        .python_builtins()
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// The checks `sync_manager.py SCENARIO` printed ("ok NAME" each), or a failure with its
/// output.
fn sync_manager_checks(python: &Python, manager: &ManagerHandle, which: &str) -> String {
    let port = port(manager);
    run_ok(python, "sync_manager.py", &[which, "127.0.0.1", &port, KEY])
}

/// Every typeid of `SyncManager` (Pool aside) from an unmodified `SyncManager.connect()`
/// client, on every interpreter: the objects behave as Python's own, proxies cross to a child
/// process, and each object is freed with its last proxy.
#[test]
fn an_unmodified_sync_manager_client_gets_every_typeid() {
    let manager = builtins_manager();
    let before = manager.stats().shared_objects;
    for python in interpreters() {
        let out = sync_manager_checks(python, &manager, "typeids");
        for check in [
            "dict",
            "dict.iter",
            "dict.KeyError",
            "dict.setdefault",
            "list.sort",
            "list.reverse",
            "list.index",
            "list.pop",
            "list.add",
            "list.reversed",
            "list.IndexError",
            "proxies in a child process",
            "Queue",
            "Queue.Empty",
            "Queue.Full",
            "JoinableQueue",
            "Lock",
            "RLock",
            "RLock.unacquired",
            "Semaphore",
            "BoundedSemaphore",
            "Condition",
            "Condition.wait_for",
            "Condition.timeout",
            "Event.set",
            "Barrier",
            "Value",
            "Value.set",
            "Array",
            "Array.zeros",
            "Array of a huge length refused",
            "Namespace",
            "Namespace.AttributeError",
            "Pool refused",
        ] {
            assert_checked(&out, check, &python.label);
        }
        // Every proxy is gone with the client: so is every object it made.
        wait_until(
            Duration::from_secs(10),
            "anonymous objects to be freed",
            || manager.stats().shared_objects == before,
        );
    }
}

/// Named objects from a plain `BaseManager` subclass (`register("get_dict")` and so on), the
/// same objects a Rust client opens with `Dynamic` elements.
#[test]
fn named_objects_are_reached_with_get_dict_and_friends() {
    let manager = builtins_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let scores = client.dict::<Dynamic, Dynamic>("scores").unwrap();
    scores
        .insert(&Dynamic::Str("rust".into()), &Dynamic::Int(7))
        .unwrap();
    let log = client.list::<Dynamic>("log").unwrap();
    log.push(&Dynamic::Str("from rust".into())).unwrap();
    let jobs = client.queue::<Dynamic>("jobs", 0).unwrap();
    jobs.put(&Dynamic::List(vec![
        Dynamic::Int(1),
        Dynamic::Str("x".into()),
    ]))
    .unwrap();
    client.counter("hits").unwrap().add(10).unwrap();
    let typed = client.dict::<String, i64>("typed").unwrap();
    let python = &interpreters()[0];
    let out = sync_manager_checks(python, &manager, "named");
    assert_eq!(typed.get(&"python".to_string()).unwrap(), Some(5));
    for check in [
        "get_dict",
        "get_list",
        "get_queue",
        "get_queue.peek",
        "get_counter",
        "get_value",
        "get_lock",
        "get_event",
        "get_dict of a Rust type",
        "get_dict of a Rust type refuses a misfit",
    ] {
        assert_checked(&out, check, &python.label);
    }
    assert_eq!(
        scores.get(&Dynamic::Str("python".into())).unwrap(),
        Some(Dynamic::Int(42))
    );
    assert_eq!(log.len().unwrap(), 2);
    assert_eq!(
        jobs.get_timeout(Duration::from_secs(5)).unwrap(),
        Some(Dynamic::Map(vec![(
            Dynamic::Str("from".into()),
            Dynamic::Str("python".into())
        )]))
    );
    assert_eq!(client.counter("hits").unwrap().get().unwrap(), 15);
    assert_eq!(
        client.value::<Dynamic>("greeting").unwrap().get().unwrap(),
        Some(Dynamic::Str("hello from python".into()))
    );
    assert!(client.event("go").unwrap().is_set().unwrap());
}

/// Python connections are reported to `on_connection` as native ones are: connected once
/// authenticated, closed when they end.
#[test]
fn python_connections_are_reported_to_on_connection() {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&events);
    let manager = Manager::builder()
        .authkey(KEY)
        .python_listener("127.0.0.1:0")
        .on_connection(move |event| seen.lock().unwrap().push(event.clone()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let out = scenario(&interpreters()[0], &manager, "dummy", &[]);
    assert!(out.contains("ok"), "{out}");
    wait_until(
        Duration::from_secs(10),
        "the connection's end reported",
        || {
            let events = events.lock().unwrap();
            let connected = events
                .iter()
                .filter(|e| matches!(e, monogusa::ConnectionEvent::Connected { .. }))
                .count();
            let closed = events
                .iter()
                .filter(|e| matches!(e, monogusa::ConnectionEvent::Closed { .. }))
                .count();
            connected >= 1 && closed == connected
        },
    );
}

/// At the cap of connections, a Python client is told the manager is busy (in the frame where
/// it expects its challenge, which Python's error shows), not dropped without a word.
#[test]
fn a_full_python_door_answers_busy() {
    let manager = Manager::builder()
        .authkey(KEY)
        .python_listener("127.0.0.1:0")
        .max_connections(2)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let out = scenario(&interpreters()[0], &manager, "busy", &["2"]);
    assert!(out.contains("refused: True"), "{out}");
}

/// A `#[service]` object the manager serves is a Python proxy whose methods are the
/// service's: a typeid that names it.
#[test]
fn served_service_objects_are_python_proxies() {
    let manager = start(Duration::from_secs(5));
    let client = Client::connect(manager.address(), KEY).unwrap();
    let tally = common::TallyClient::open(&client, "tally").unwrap();
    for python in interpreters() {
        let before = tally.total().unwrap();
        let out = scenario(python, &manager, "service", &[]);
        let expected = format!("tally: {} {} {}", before + 5, before + 7, before + 7);
        assert!(out.contains(&expected), "{}: {out}", python.label);
        assert!(
            out.contains("bad argument: True"),
            "{}: {out}",
            python.label
        );
        // A panicking method is the caller's error; the proxy's connection serves on.
        let after = format!("panicked: True after: {}", before + 7);
        assert!(out.contains(&after), "{}: {out}", python.label);
    }
}

/// A durable task queue from a plain `BaseManager` subclass (`get_tasks(name)`): leases,
/// acks, retries, the same queue a Rust worker takes from; a Python worker SIGKILLed
/// mid-task gives its lease back at once (its connection closed), so the task runs again.
#[test]
fn python_clients_take_tasks_with_leases() {
    let manager = builtins_manager();
    for python in interpreters() {
        let out = sync_manager_checks(python, &manager, "tasks");
        for check in [
            "push",
            "take",
            "ack twice refused",
            "fail retries",
            "stats",
            "take times out",
            "dead letters",
            "requeue",
            "mailbox",
        ] {
            assert_checked(&out, check, &python.label);
        }
    }
    let client = Client::connect(manager.address(), KEY).unwrap();
    // Mailboxes by name, from Python and Rust alike.
    let inbox = client.mailbox::<Dynamic>("rust").unwrap();
    assert_eq!(
        inbox.recv_timeout(Duration::from_secs(5)).unwrap(),
        Some(Dynamic::Str("from python".into()))
    );
    // A lease far longer than the test: only the closed connection can give it back.
    let jobs = client
        .named("jobs")
        .tasks::<Dynamic>(monogusa::TaskQueueSettings {
            lease_timeout: Duration::from_secs(3600),
            ..Default::default()
        })
        .unwrap();
    jobs.push(&Dynamic::Str("resize".into())).unwrap();
    let python = &interpreters()[0];
    let output = run(
        python,
        "sync_manager.py",
        &["take_and_die", "127.0.0.1", &port(&manager), KEY],
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("holding resize"),
        "{output:?}"
    );
    let task = jobs.take(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(task.payload(), &Dynamic::Str("resize".into()));
    assert_eq!(task.attempt(), 2);
    task.ack().unwrap();
}

/// Result proxies are charged to the store's budget: a client holding ever more proxies of a
/// 1 MiB value (the audit's 2,687 aborted the manager) is refused with `LimitExceeded` once
/// the budget is spent, and what its proxies held comes back when they are released.
#[test]
fn result_proxies_are_charged_to_the_store_budget() {
    let manager = Manager::builder()
        .authkey(KEY)
        .python_listener("127.0.0.1:0")
        .max_store_bytes(16 << 20)
        .register("big", || "x".repeat(1 << 20))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let python = &interpreters()[0];
    let out = scenario(python, &manager, "hoard", &[]);
    assert!(out.contains("refused after"), "{out}");
    assert!(out.contains("True"), "the error says LimitExceeded: {out}");
    let refused_after: usize = out
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((8..=16).contains(&refused_after), "{out}");
    // The client released its proxies on exit: the budget is whole again.
    wait_until(
        Duration::from_secs(10),
        "the proxies' bytes to come back",
        || manager.stats().store_bytes < 1 << 20,
    );
}

/// The Python door's handshake has one total deadline (a socket timeout restarts with every
/// byte: the audit held 3,000 dripping sockets), and its connections are capped, silent ones
/// included; refusals go through the rate-limited log. A real client is served throughout.
#[test]
fn python_handshakes_have_a_total_deadline_and_connections_a_cap() {
    use std::io::Read;
    let manager = Manager::builder()
        .authkey(KEY)
        .python_listener("127.0.0.1:0")
        .handshake_timeout(Duration::from_secs(1))
        .max_connections(4)
        .max_handshakes(4)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let address = manager.python_addresses()[0].to_string();
    // A response frame of 255 bytes announced, then dripped: cut at the deadline (about 5
    // drips), not after the whole frame (259 drips, 52 s, with a timeout per read).
    let mut dripping = std::net::TcpStream::connect(address.as_str()).unwrap();
    let mut frame = vec![0, 0, 0, 255];
    frame.resize(259, b'x');
    let sent = common::drip_until_closed(&mut dripping, &frame);
    assert!(sent < 25, "the dripping handshake went on for {sent} bytes");
    // An honest client from 127.0.0.1, slow to answer its challenge, then a flood of silent
    // connections from 127.0.0.2: at the cap, the flood displaces its own oldest, never the
    // honest one.
    let from = |ip: [u8; 4]| {
        let target: std::net::SocketAddr = address.parse().unwrap();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from((ip, 0)).into())
            .unwrap();
        socket.connect(&target.into()).unwrap();
        std::net::TcpStream::from(socket)
    };
    let read_challenge = |s: &mut std::net::TcpStream| {
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let mut payload = vec![0u8; i32::from_be_bytes(header) as usize];
        s.read_exact(&mut payload).unwrap();
    };
    let mut honest = from([127, 0, 0, 1]);
    read_challenge(&mut honest);
    let mut flood: Vec<std::net::TcpStream> = Vec::new();
    for _ in 0..10 {
        let mut s = from([127, 0, 0, 2]);
        read_challenge(&mut s);
        flood.push(s);
    }
    honest
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        !matches!(honest.read(&mut byte), Ok(0)),
        "the honest handshake was displaced"
    );
    flood[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(
        matches!(flood[0].read(&mut byte), Ok(0) | Err(_)),
        "the flood's oldest gave way"
    );
    assert!(
        manager.stats().handshakes_displaced >= 7,
        "{:?}",
        manager.stats()
    );
    drop(flood);
    drop(honest);
    // A real client is served.
    let python = &interpreters()[0];
    wait_until(
        Duration::from_secs(20),
        "a python client to be served",
        || {
            run(
                python,
                "scenarios.py",
                &["dummy", "127.0.0.1", &port(&manager), KEY],
            )
            .status
            .success()
        },
    );
}

/// The Python door shares the wrong-key slowdown: after six wrong keys at the native door, a
/// Python client's wrong key is answered 400 ms later (it was answered at once: 4,029
/// guesses a second).
#[test]
fn a_wrong_key_at_the_python_door_is_slowed_like_the_native_one() {
    let manager = start(Duration::from_secs(10));
    for _ in 0..6 {
        assert!(Client::connect(manager.address(), "not the key").is_err());
    }
    let out = scenario(&interpreters()[0], &manager, "wrong_key", &[]);
    assert!(out.contains("AuthenticationError"), "{out}");
    let ms: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("answered in ms "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(ms >= 300, "answered in {ms} ms: {out}");
}

/// `python/monogusa.py` (the standard library only) run as its user would: `Client.from_env`,
/// a task queue's whole surface, mailboxes and shared objects, a clear error when the manager
/// is not there; on every interpreter.
#[test]
fn the_python_module_pushes_takes_and_sends() {
    let manager = builtins_manager();
    for python in interpreters() {
        let out = run_module(python, &manager, &["api"]);
        for check in [
            "push",
            "take",
            "ack twice refused",
            "fail retries",
            "stats",
            "settings",
            "dead letters",
            "take times out",
            "fail permanently",
            "join times out",
            "join drained",
            "push_after waits",
            "push_after released",
            "push_group waits",
            "push_group calls back with every result",
            "push_chain passes results on",
            "inputs of a callback that runs anyway",
            "status ready",
            "result",
            "unknown result",
            "mailbox",
            "counter",
            "unreachable",
        ] {
            assert_checked(&out, check, &python.label);
        }
    }
}

/// Runs `worker.py ARGS` with the environment a supervisor gives (`MONOGUSA_PYTHON_ADDRESS`,
/// `MONOGUSA_AUTHKEY`); its stdout, failing with its stderr if it failed.
fn run_module(python: &Python, manager: &ManagerHandle, args: &[&str]) -> String {
    let output = module_command(python, manager, args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} worker.py {args:?} failed:\n{stdout}\n{}",
        python.label,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn module_command(python: &Python, manager: &ManagerHandle, args: &[&str]) -> Command {
    let mut command = python.command();
    command
        .arg(script("worker.py"))
        .args(args)
        .env(
            monogusa::PYTHON_ADDRESS_VAR,
            manager.python_addresses()[0].to_string(),
        )
        .env(monogusa::AUTHKEY_VAR, KEY)
        .stdin(Stdio::null());
    command
}

/// A Python `Worker` on two threads: acks what its handler returns, fails what raises (the
/// traceback is the dead letter's reason), keeps a task that outlives its lease leased (it
/// runs once), and on SIGTERM stops taking, finishes and returns.
#[test]
fn a_python_worker_acks_fails_extends_and_stops_on_sigterm() {
    let manager = builtins_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client
        .named("py-jobs")
        .tasks::<Dynamic>(monogusa::TaskQueueSettings {
            lease_timeout: Duration::from_millis(600),
            max_attempts: 1,
            ..Default::default()
        })
        .unwrap();
    let job = |n: i64, sleep: f64, fail: bool| {
        let s = |t: &str| Dynamic::Str(t.into());
        Dynamic::Map(vec![
            (s("n"), Dynamic::Int(n)),
            (s("sleep"), Dynamic::Float(sleep)),
            (s("fail"), Dynamic::Bool(fail)),
        ])
    };
    let first = jobs.push(&job(1, 0.0, false)).unwrap();
    jobs.push(&job(2, 2.0, false)).unwrap(); // more than three leases long
    jobs.push(&job(3, 0.0, true)).unwrap();
    let python = &interpreters()[0];
    let mut worker = module_command(python, &manager, &["work", "py-jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "two done and one dead", || {
        let stats = jobs.stats().unwrap();
        stats.done == 2 && stats.dead == 1
    });
    // What the Python handler returned is the task's result.
    assert_eq!(
        jobs.result::<Dynamic>(first, Duration::ZERO).unwrap(),
        monogusa::TaskResult::Done(Some(Dynamic::Int(10)))
    );
    let dead = jobs.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reasons[0].contains("ValueError: bad payload 3"),
        "{:?}",
        dead[0].reasons
    );
    let done = client.dict::<Dynamic, Dynamic>("py-done").unwrap();
    assert_eq!(
        done.get(&Dynamic::Str("1".into())).unwrap(),
        Some(Dynamic::Int(1))
    );
    assert_eq!(
        done.get(&Dynamic::Str("2".into())).unwrap(),
        Some(Dynamic::Int(1)),
        "the long task ran once: its lease was extended"
    );
    // SIGTERM, as a supervisor's stop: it returns with what it did.
    std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let status = worker.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(worker.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{status:?}: {out}");
    assert!(out.contains("stopped done=2 failed=1"), "{out}");
}

/// A Python worker SIGKILLed mid-task loses nothing: its connection closes, its lease goes
/// back at once (the lease is far longer than the test), and another Python worker does the
/// task, once, as its second attempt.
#[test]
fn a_python_worker_killed_mid_task_hands_its_task_to_another() {
    let manager = builtins_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client
        .named("py-kill")
        .tasks::<Dynamic>(monogusa::TaskQueueSettings {
            lease_timeout: Duration::from_secs(3600),
            ..Default::default()
        })
        .unwrap();
    let s = |t: &str| Dynamic::Str(t.into());
    jobs.push(&Dynamic::Map(vec![
        (s("n"), Dynamic::Int(7)),
        (s("sleep"), Dynamic::Float(0.5)),
    ]))
    .unwrap();
    let python = &interpreters()[0];
    // The first worker sleeps far longer in its task (a slow handler), then is killed.
    let done = client.dict::<Dynamic, Dynamic>("py-done").unwrap();
    let mut first = module_command(python, &manager, &["work", "py-kill", "1"])
        .env("PY_SLOW_FIRST", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("start 7") {
        line.clear();
        assert_ne!(
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap(),
            0,
            "the first worker ended before taking the task"
        );
    }
    first.kill().unwrap(); // SIGKILL, mid-task
    first.wait().unwrap();
    let mut second = module_command(python, &manager, &["work", "py-kill", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the task done by the second",
        || jobs.stats().unwrap().done == 1,
    );
    assert_eq!(
        done.get(&Dynamic::Str("7".into())).unwrap(),
        Some(Dynamic::Int(1))
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let stats = jobs.stats().unwrap();
    assert_eq!((stats.done, stats.ready, stats.leased), (1, 0, 0));
}

/// Under a supervisor (what `monogusa run` is), a Python worker finds the manager's Python
/// door by itself (`MONOGUSA_PYTHON_ADDRESS`, from the manager's `monogusa.doors`), works,
/// and drains on the supervisor's stop.
#[test]
fn a_supervised_python_worker_finds_its_door_and_drains_on_stop() {
    use monogusa::workers::{Program, Supervisor, SupervisorSettings};
    let manager = builtins_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client
        .named("py-supervised")
        .tasks::<Dynamic>(Default::default())
        .unwrap();
    let s = |t: &str| Dynamic::Str(t.into());
    for n in 100..105 {
        jobs.push(&Dynamic::Map(vec![(s("n"), Dynamic::Int(n))]))
            .unwrap();
    }
    let python = &interpreters()[0];
    let mut settings = SupervisorSettings::default();
    settings.handle_signals = false;
    settings.print_output = false;
    let mut supervisor = Supervisor::new(&manager);
    supervisor.settings(settings).spawn(
        "py",
        1,
        Program::new(&python.program).args([
            script("worker.py").to_str().unwrap(),
            "work",
            "py-supervised",
            "2",
        ]),
    );
    let stop = supervisor.stop_handle();
    let running = std::thread::spawn(move || supervisor.run().unwrap());
    wait_until(Duration::from_secs(30), "the five tasks done", || {
        jobs.stats().unwrap().done == 5
    });
    // It heartbeats into the registry as a Rust worker does: its pid, host and counts.
    wait_until(
        Duration::from_secs(30),
        "the worker's heartbeat with its counts",
        || {
            client.workers().unwrap().iter().any(|w| {
                w.name == "py-1"
                    && w.done == 5
                    && w.pid.is_some()
                    && w.host.is_some()
                    && w.heartbeat_age.is_some()
                    && w.state == monogusa::workers::WorkerState::Running
            })
        },
    );
    stop.stop();
    let outcome = running.join().unwrap();
    assert_eq!(outcome.processes.len(), 1);
    let entry = client.workers().unwrap();
    let entry = entry.iter().find(|w| w.name == "py-1");
    assert!(
        entry.is_none_or(|w| matches!(
            w.state,
            monogusa::workers::WorkerState::Stopped | monogusa::workers::WorkerState::Exited { .. }
        )),
        "{entry:?}"
    );
    assert_eq!(
        outcome.processes[0].restarts, 0,
        "{:?}",
        outcome.processes[0]
    );
    let done = client.dict::<Dynamic, Dynamic>("py-done").unwrap();
    for n in 100..105 {
        assert_eq!(
            done.get(&Dynamic::Str(n.to_string())).unwrap(),
            Some(Dynamic::Int(1))
        );
    }
}

/// The seed program `examples/python/multipro.py`: different workers that message each other
/// by name and type, then identical workers on one queue, all through the Python door.
#[test]
fn the_multipro_example_messages_by_name_and_shares_a_queue() {
    let manager = builtins_manager();
    let python = &interpreters()[0];
    let out = example_command(python, &manager, &["20"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "main got: hello, main, from greeter",
        "main got: total 55",
        "greeter exited 0",
        "tally exited 0",
        "main: all tasks done",
        "main: 20 done, 0 left",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert_eq!(text.matches("stopped after").count(), 3, "{text}");
}

/// SIGTERM to the example's main process ends everything cleanly: the workers finish the task
/// in hand and exit, nothing stays leased, what was not taken stays queued.
#[test]
fn the_multipro_example_ends_cleanly_on_sigterm() {
    let manager = builtins_manager();
    let python = &interpreters()[0];
    let mut child = example_command(python, &manager, &["3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let queue = client
        .tasks::<Dynamic>(&format!("resize-{}", child.id()))
        .unwrap();
    wait_until(Duration::from_secs(60), "some tasks done", || {
        queue.stats().unwrap().done >= 5
    });
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
    assert!(status.success(), "{status:?}\n{text}");
    assert!(
        text.contains("main: signal 15, stopping the workers"),
        "{text}"
    );
    assert_eq!(text.matches("stopped after").count(), 3, "{text}");
    let stats = queue.stats().unwrap();
    assert_eq!(stats.leased, 0, "{stats:?}");
    assert!(stats.ready > 0 && stats.done >= 5, "{stats:?}");
}

fn example_command(python: &Python, manager: &ManagerHandle, args: &[&str]) -> Command {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python/multipro.py");
    let mut command = python.command();
    command
        .arg(path)
        .args(args)
        .env(
            monogusa::PYTHON_ADDRESS_VAR,
            manager.python_addresses()[0].to_string(),
        )
        .env(monogusa::AUTHKEY_VAR, KEY)
        .stdin(Stdio::null());
    command
}

/// A task queue and a queue a Rust client made with typed elements, reached from Python by
/// name: the struct is a dict both ways, a missing `Option` is `None`, a value that does not
/// fit or an unknown field is refused naming the field, and an enum (which the type's tag does
/// not describe) is refused saying so.
#[test]
fn python_reaches_typed_rust_queues_with_structs_as_dicts() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Email {
        to: String,
        retries: u32,
        cc: Option<String>,
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    enum Job {
        Resize(u32),
        Stop,
    }
    let manager = builtins_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let emails = client.tasks::<Email>("typed-emails").unwrap();
    emails
        .push(&Email {
            to: "ada@x".into(),
            retries: 3,
            cc: None,
        })
        .unwrap();
    let points = client.queue::<(i32, i64)>("typed-points", 0).unwrap();
    points.put(&(1, -2)).unwrap();
    client.tasks::<Job>("typed-jobs").unwrap();
    let out = sync_manager_checks(&interpreters()[0], &manager, "typed");
    for check in [
        "typed take",
        "typed misfit refused",
        "typed unknown field refused",
        "typed queue",
        "enum refused",
    ] {
        assert_checked(&out, check, "python3");
    }
    let task = emails.take(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        task.payload(),
        &Email {
            to: "bob@x".into(),
            retries: 1,
            cc: None
        }
    );
    task.ack().unwrap();
    assert_eq!(
        points.get_timeout(Duration::from_secs(5)).unwrap(),
        Some((3, 4))
    );
}

/// A supervised Python worker (`MONOGUSA_WORKER` names it) stops on the supervisor's stop
/// message alone, no signal: it reads its control mailbox as a Rust worker does.
#[test]
fn a_python_worker_stops_on_its_control_message() {
    // The supervisor's message, as its shape says it is.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Control {
        stop: bool,
    }
    let manager = builtins_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    // As a supervisor does before it starts a worker.
    let control = client
        .mailbox::<Control>("monogusa.control:py-ctl")
        .unwrap();
    for python in interpreters() {
        let mut worker = module_command(python, &manager, &["work", "py-ctl-jobs", "1"])
            .env("MONOGUSA_WORKER", "py-ctl")
            .env("MONOGUSA_HEARTBEAT_MS", "100")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(30), "the worker heartbeating", || {
            client.workers().unwrap().iter().any(|w| {
                w.name == "py-ctl"
                    && w.pid == Some(worker.id())
                    && w.state == monogusa::workers::WorkerState::Running
            })
        });
        control.send(&Control { stop: true }).unwrap();
        let status = worker.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(worker.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(status.success(), "{}: {status:?}: {out}", python.label);
        assert!(
            out.contains("stopped done=0 failed=0"),
            "{}: {out}",
            python.label
        );
    }
}

/// A Python handler that raises `monogusa.Permanent` sends its task to the dead letters at
/// once, on the first of its five attempts, with the exception's words as the reason.
#[test]
fn a_python_handler_fails_a_task_permanently() {
    let manager = builtins_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.tasks::<Dynamic>("py-perm").unwrap();
    let s = |t: &str| Dynamic::Str(t.into());
    jobs.push(&Dynamic::Map(vec![
        (s("n"), Dynamic::Int(4)),
        (s("perm"), Dynamic::Bool(true)),
    ]))
    .unwrap();
    let mut worker = module_command(&interpreters()[0], &manager, &["work", "py-perm", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the task dead", || {
        jobs.stats().unwrap().dead == 1
    });
    let dead = jobs.dead_letters().unwrap();
    assert_eq!(
        (dead[0].attempts, dead[0].reasons.clone()),
        (1, vec!["hopeless payload 4".to_string()])
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
}
