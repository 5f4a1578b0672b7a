//! Real client and manager processes: a client killed mid-call, the examples end to end, and
//! `serve_forever` stopped by a signal.
#![allow(missing_docs)] // tests, not API

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;
use monogusa::{Address, Client};

const ADDRESS_VAR: &str = "MONOGUSA_TEST_ADDRESS";
const ROUNDS_VAR: &str = "MONOGUSA_TEST_ROUNDS";
const NAME_VAR: &str = "MONOGUSA_TEST_NAME";

/// Entry point of the child processes these tests spawn (see `common::spawn_child`).
#[test]
#[ignore = "run only as a child process by the other tests"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    if role == "from-env" {
        // Started by ManagerHandle::command: the address and key come from the environment.
        let client = Client::from_env().unwrap();
        client.counter("children").unwrap().add(1).unwrap();
        return;
    }
    let address = std::env::var(ADDRESS_VAR).unwrap();
    match role.as_str() {
        "incrementer" => {
            // Increments its own key, then the shared key, ROUNDS times.
            let rounds: u64 = std::env::var(ROUNDS_VAR).unwrap().parse().unwrap();
            let name = std::env::var(NAME_VAR).unwrap();
            let client = Client::connect(address.as_str(), KEY).unwrap();
            for _ in 0..rounds {
                client.call::<i64>("inc", (&name,)).unwrap();
                client.call::<i64>("inc", ("shared",)).unwrap();
            }
        }
        "serve" => {
            standard_builder()
                .bind(address.as_str())
                .build()
                .unwrap()
                .serve_forever()
                .unwrap();
            println!("serve_forever returned");
        }
        "serve-ready" => {
            standard_builder()
                .bind(address.as_str())
                .build()
                .unwrap()
                .serve_forever_with(|addresses| println!("ready on {}", addresses[0]))
                .unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// A manager built without a key makes a random one; `command` hands it and the address to
/// children through their environment, and `Client::from_env` picks them up.
#[test]
fn a_keyless_manager_starts_children_with_command_and_from_env() {
    let manager = monogusa::Manager::builder()
        .build()
        .unwrap()
        .start()
        .unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            manager
                .command(std::env::current_exe().unwrap())
                .args(["--exact", "child_main", "--ignored", "--test-threads", "1"])
                .env(ROLE_VAR, "from-env")
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    // The parent knows the key only through the handle: a child environment reads it back.
    let key = {
        let command = manager.command("true");
        let (_, value) = command
            .get_envs()
            .find(|(k, _)| *k == monogusa::AUTHKEY_VAR)
            .unwrap();
        value.unwrap().to_str().unwrap().to_string()
    };
    assert_eq!(key.len(), 64, "32 random bytes as hex");
    assert!(Client::connect(manager.address(), "a guess").is_err());
    let client = Client::connect(manager.address(), &key).unwrap();
    assert_eq!(client.counter("children").unwrap().get().unwrap(), 3);
    // Without the environment, from_env says what is missing.
    let missing = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_main", "--ignored", "--test-threads", "1"])
        .env(ROLE_VAR, "from-env")
        .env_remove(monogusa::ADDRESS_VAR)
        .env_remove(monogusa::AUTHKEY_VAR)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    // libtest reports the child's panic on its stdout.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&missing.stdout),
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(said.contains("MONOGUSA_ADDRESS is not set"), "{said}");
}

#[test]
fn a_client_killed_mid_calls_leaves_the_others_and_the_state_intact() {
    let manager = start_standard();
    let address = manager.address().to_string();
    let observer = Client::connect(manager.address(), KEY).unwrap();

    let victim = spawn_child(
        "incrementer",
        &[
            (ADDRESS_VAR, &address),
            (ROUNDS_VAR, "100000000"),
            (NAME_VAR, "victim"),
        ],
    );
    let mut victim = victim;
    wait_until(Duration::from_secs(30), "the victim is calling", || {
        observer.call::<i64>("get", ("victim",)).unwrap() >= 200
    });
    let survivors: Vec<_> = (0..3)
        .map(|i| {
            let name = format!("survivor{i}");
            spawn_child(
                "incrementer",
                &[
                    (ADDRESS_VAR, &address),
                    (ROUNDS_VAR, "500"),
                    (NAME_VAR, &name),
                ],
            )
        })
        .collect();
    victim.kill().unwrap(); // SIGKILL, in the middle of its stream of calls
    victim.wait().unwrap();
    for mut s in survivors {
        assert!(s.wait().unwrap().success(), "a surviving client failed");
    }

    // Every call that ran was whole: the shared count is exactly the sum of the own counts.
    let victim_count: i64 = observer.call("get", ("victim",)).unwrap();
    let shared: i64 = observer.call("get", ("shared",)).unwrap();
    let mut expected = victim_count;
    for i in 0..3 {
        let own: i64 = observer.call("get", (format!("survivor{i}"),)).unwrap();
        assert_eq!(own, 500);
        expected += own;
    }
    // The victim may have died between its two increments: at most one shared inc short.
    assert!(
        shared == expected || shared == expected - 1,
        "shared {shared}, own counts sum to {expected}"
    );
    wait_until(
        Duration::from_secs(5),
        "the victim's connection is closed",
        || manager.stats().connections_open == 1,
    );
}

#[test]
fn counter_example_counts_to_5000_over_tcp() {
    let out = run_example("counter", &[]);
    assert!(out.contains("count = 5000 (expected 5000)"), "{out}");
}

#[test]
fn counter_example_counts_to_5000_over_unix() {
    let out = run_example("counter", &["--unix"]);
    assert!(out.contains("count = 5000 (expected 5000)"), "{out}");
    assert!(out.contains("unix:"), "{out}");
}

#[test]
fn objects_example_shares_and_frees_an_object_across_processes() {
    let out = run_example("objects", &[]);
    assert!(out.contains("total is 155 (expected 155)"), "{out}");
    assert!(out.contains("object alive: false"), "{out}");
    assert!(out.contains("objects left in the manager: 0"), "{out}");
}

#[test]
fn workers_example_does_every_task() {
    let out = run_example("workers", &[]);
    assert!(
        out.contains("10000 of 10000 tasks done at least once, 0 done twice, 0 wrong"),
        "{out}"
    );
    assert!(out.contains("every task done at least once"), "{out}");
}

#[test]
fn workers_example_loses_nothing_when_a_worker_is_killed() {
    let out = run_example("workers", &["--kill-one"]);
    assert!(out.contains("killed squarer-1"), "{out}");
    assert!(out.contains("squarer-1 was restarted"), "{out}");
    assert!(out.contains("squarer-1: exited 0 (1 restarts)"), "{out}");
    assert!(
        out.contains("10000 of 10000 tasks done at least once"),
        "{out}"
    );
    assert!(out.contains("every task done at least once"), "{out}");
}

#[test]
fn workers_example_stops_its_workers_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let mut coordinator = Command::new(example_binary("workers"))
        .args(["--tasks", "100000000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(coordinator.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("workers started"), "{first}");
    send_signal(coordinator.id(), "-TERM");
    let status = coordinator.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(
        rest.iter().any(|l| l.contains("workers stopped")),
        "{rest:?}"
    );
}

#[test]
fn kv_server_and_kv_client_as_separate_programs() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:{}", dir.path().join("kv.sock").display());
    let mut server = Command::new(example_binary("kv_server"))
        .args([address.as_str(), "--idle-exit", "60"])
        .env("MONOGUSA_AUTHKEY", "kv-test-key")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "kv_server is listening", || {
        Client::connect(address.as_str(), "kv-test-key").is_ok()
    });
    let client = |args: &[&str]| {
        let output = Command::new(example_binary("kv_client"))
            .args(args)
            .env("MONOGUSA_AUTHKEY", "kv-test-key")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let out = client(&[address.as_str()]);
    assert!(
        out.contains("get(\"greeting\") = Some(\"hello from kv_client\")"),
        "{out}"
    );
    assert!(out.contains("get(\"no such key\") = None"), "{out}");
    assert!(out.contains("manager host: "), "{out}");
    client(&[address.as_str(), "--shutdown"]);
    assert!(server.wait().unwrap().success());
    assert!(!dir.path().join("kv.sock").exists());
}

/// The tutorial's Python clients, unchanged, against the kv_server example's `--python`
/// listener, while a Rust client of the same server sees what they did.
#[test]
fn kv_server_serves_the_tutorial_python_clients() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port().to_string()
    };
    let python = format!("127.0.0.1:{port}");
    let native = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let mut server = Command::new(example_binary("kv_server"))
        .args([native.as_str(), "--python", &python, "--idle-exit", "60"])
        .env("MONOGUSA_AUTHKEY", "kv-test-key")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "kv_server is listening", || {
        Client::connect(native.as_str(), "kv-test-key").is_ok()
            && std::net::TcpStream::connect(python.as_str()).is_ok()
    });
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let run = |script: &str, extra: &[&str]| {
        let output = Command::new("python3")
            .arg(scripts.join(script))
            .args(["127.0.0.1", &port, "kv-test-key"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let out = run("kv_client.py", &[]);
    assert!(out.contains("a = 10"), "{out}");
    assert!(out.contains("missing = None"), "{out}");
    let out = run("counter_client.py", &["100"]);
    assert!(out.contains("count = 500"), "{out}");
    let client = Client::connect(native.as_str(), "kv-test-key").unwrap();
    let count: Option<monogusa::Dynamic> = client.call("get", ("hikakin",)).unwrap();
    assert_eq!(count, Some(monogusa::Dynamic::Int(500)));
    client.shutdown_server().unwrap();
    assert!(server.wait().unwrap().success());
}

/// A child process running `serve_forever` at `address`, once it accepts connections.
fn spawn_serving_child(address: &Address) -> std::process::Child {
    let child = spawn_child("serve", &[(ADDRESS_VAR, &address.to_string())]);
    wait_until(
        Duration::from_secs(30),
        "the manager process is listening",
        || Client::connect(address, KEY).is_ok(),
    );
    child
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn serve_forever_stops_on_sigterm_after_finishing_calls_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manager.sock");
    let address = Address::unix(&path);
    let mut child = spawn_serving_child(&address);
    let client = Client::connect(&address, KEY).unwrap();
    let in_flight = {
        let client = client.clone();
        thread::spawn(move || client.call::<u64>("sleep_ms", (400u64,)))
    };
    // Make sure the slow call is running before the signal (the manager counts a call when
    // it receives it, and no other call was made), and that a second connection's call is
    // served while it sleeps.
    wait_until(Duration::from_secs(10), "the slow call arrived", || {
        Client::connect(&address, KEY)
            .and_then(|c| c.manager_stats())
            .is_ok_and(|stats| stats.calls >= 1)
    });
    wait_until(Duration::from_secs(5), "a second call got through", || {
        Client::connect(&address, KEY)
            .and_then(|c| c.call::<i64>("inc", ("k",)))
            .is_ok()
    });
    send_signal(child.id(), "-TERM");
    assert_eq!(
        in_flight.join().unwrap().unwrap(),
        400,
        "the call in flight lost its reply"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn serve_forever_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::unix(dir.path().join("manager.sock"));
    let mut child = spawn_serving_child(&address);
    send_signal(child.id(), "-INT");
    assert!(child.wait().unwrap().success());
}

/// Two programs built separately, each defining its own `struct Task`, share a queue: what
/// must match is the shape, not the module path. A differently shaped `Task` is refused.
#[test]
fn separately_built_programs_share_a_queue_of_their_own_tasks() {
    let manager = start_standard();
    let address = manager.address().to_string();
    let run = |name: &str, args: &[&str]| {
        Command::new(example_binary(name))
            .arg(&address)
            .args(args)
            .env("MONOGUSA_AUTHKEY", KEY)
            .output()
            .unwrap()
    };
    let produced = run("task_producer", &["100"]);
    assert!(produced.status.success(), "{produced:?}");
    let consumed = run("task_consumer", &["100"]);
    assert!(consumed.status.success(), "{consumed:?}");
    assert!(
        String::from_utf8_lossy(&consumed.stdout).contains("sum of ids 5050"),
        "{consumed:?}"
    );
    let refused = run("task_consumer", &["1", "--other-shape"]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        text.contains("Task{id:u64,name:str}") && text.contains("urgent"),
        "{text}"
    );
}

#[test]
fn mailboxes_example_passes_messages_along_and_stops_together_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let mut main = Command::new(example_binary("mailboxes"))
        .args(["--images", "40"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(main.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("all 40 done");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("all 40 done")), "{seen:?}");
    send_signal(main.id(), "-TERM");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(main.wait().unwrap().success(), "{rest:?}");
    for worker in ["fetcher-1", "resizer-1", "archiver-1"] {
        assert!(
            rest.iter()
                .any(|l| l.contains(&format!("{worker}: stopping after 40 messages"))),
            "{rest:?}"
        );
        assert!(
            rest.iter()
                .any(|l| l == &format!("{worker}: exited 0 (0 restarts)")),
            "{rest:?}"
        );
    }
    assert!(
        rest.iter().any(|l| l == "main: everyone stopped"),
        "{rest:?}"
    );
}

/// A client started before its manager waits for it (within its connect timeout); the
/// manager says when it is ready, and a signal right after that is handled.
#[test]
fn a_client_waits_for_a_starting_manager_which_says_when_it_is_ready() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let address = Address::unix(dir.path().join("later.sock"));
    assert!(
        matches!(Client::connect(&address, KEY), Err(monogusa::Error::Io(_))),
        "nothing listens yet"
    );
    let early = {
        let address = address.clone();
        std::thread::spawn(move || {
            Client::builder(&address, KEY)
                .connect_timeout(Duration::from_secs(60))
                .connect()
                .map(|client| client.call::<String>("echo", ("waited",)).unwrap())
        })
    };
    let mut child = child_command("serve-ready")
        .env(ADDRESS_VAR, address.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    let ready = lines
        .find(|l| l.contains("ready on "))
        .expect("a ready line");
    // (After libtest's own "test child_main ... " on the same line.)
    assert!(ready.ends_with(&format!("ready on {address}")), "{ready}");
    assert_eq!(early.join().unwrap().unwrap(), "waited");
    send_signal(child.id(), "-INT");
    lines.for_each(drop); // read to the end: the child writes its test summary
    assert!(child.wait().unwrap().success());

    // With no manager at all, the refusal comes back once the connect timeout is over.
    let nobody = Address::unix(dir.path().join("never.sock"));
    let started = std::time::Instant::now();
    let refused = Client::builder(&nobody, KEY)
        .connect_timeout(Duration::from_millis(300))
        .connect();
    assert!(
        matches!(refused, Err(monogusa::Error::Io(_))),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}
