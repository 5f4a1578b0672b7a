//! Windows named pipes (`pipe:NAME`): the manager and its clients over real pipes, in real
//! processes. Built and run for `x86_64-pc-windows-gnu`; `.ci/run` runs them under Wine, so
//! what they exercise is our code on Wine's pipe implementation, not Microsoft's. On other
//! systems this file holds no tests.
#![cfg(windows)]
#![allow(missing_docs)] // tests, not API

mod common;

use std::io::Read;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use common::{
    KEY, ROLE_VAR, spawn_child, standard_builder, start_error_at, start_standard_at, wait_until,
};
use monogusa::{Address, Client, Error, ManagerHandle};

const ADDRESS_VAR: &str = "MONOGUSA_TEST_ADDRESS";

/// A pipe name no other test (or test run) uses.
fn unique_pipe() -> Address {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Address::pipe(format!("monogusa-test-{}-{n}", std::process::id()))
}

fn start_on_pipe() -> ManagerHandle {
    start_standard_at(&unique_pipe())
}

/// Entry point of the child processes these tests spawn.
#[test]
#[ignore = "run only as a child process by the other tests"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    let address = std::env::var(ADDRESS_VAR).unwrap();
    if role == "manager" {
        // Serves on the pipe until killed.
        let _manager = start_standard_at(&address.parse().unwrap());
        loop {
            thread::park();
        }
    }
    let client = Client::connect(address.as_str(), KEY).unwrap();
    match role.as_str() {
        // Takes the lock, says so, then calls on and on until killed.
        "lock_holder_calling" => {
            let lock = client.lock("l").unwrap();
            let _guard = lock.acquire().unwrap();
            client.event("held").unwrap().set().unwrap();
            loop {
                client.call::<i64>("inc", ("holder",)).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn sixty_four_threads_count_exactly_over_a_pipe() {
    let manager = start_on_pipe();
    assert!(manager.address().to_string().starts_with("pipe:"));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let address = manager.address().clone();
            thread::spawn(move || {
                let client = Client::connect(&address, KEY).unwrap();
                for _ in 0..1000 {
                    client.call::<i64>("inc", ("k",)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("get", ("k",)).unwrap(), 64_000);
}

#[test]
fn three_hundred_clients_connecting_at_once_are_all_served() {
    let manager = start_on_pipe();
    const CLIENTS: usize = 300;
    let all_connected = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let address = manager.address().clone();
            let all_connected = Arc::clone(&all_connected);
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let client = Client::connect(&address, KEY).unwrap();
                    client.call::<i64>("inc", ("k",)).unwrap();
                    // Every connection is open at once before any closes.
                    all_connected.wait();
                    client.call::<i64>("get", ("k",)).unwrap()
                })
                .unwrap()
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), CLIENTS as i64);
    }
}

#[test]
fn a_wrong_key_is_refused_over_a_pipe() {
    let manager = start_on_pipe();
    let err = Client::connect(manager.address(), "not-the-key").unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    // And the manager serves on.
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

#[test]
fn a_second_manager_on_the_same_pipe_gets_addr_in_use() {
    let manager = start_on_pipe();
    let err = start_error_at(manager.address());
    match &err {
        Error::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{err}"),
        other => panic!("expected AddrInUse, got {other}"),
    }
    assert!(
        err.to_string().contains(&manager.address().to_string()),
        "{err}"
    );
    // The first one is untouched.
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

#[test]
fn a_client_killed_mid_call_releases_its_lock() {
    let manager = start_on_pipe();
    let address = manager.address().to_string();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let lock = client.lock("l").unwrap();
    let mut holder = spawn_child("lock_holder_calling", &[(ADDRESS_VAR, &address)]);
    assert!(
        client
            .event("held")
            .unwrap()
            .wait_timeout(Duration::from_secs(60))
            .unwrap()
    );
    assert!(lock.try_acquire().unwrap().is_none(), "held by the child");
    // Killed in the middle of its stream of calls.
    wait_until(Duration::from_secs(30), "the holder is calling", || {
        client.call::<i64>("get", ("holder",)).unwrap() >= 100
    });
    holder.kill().unwrap();
    holder.wait().unwrap();
    let guard = lock.acquire_timeout(Duration::from_secs(30)).unwrap();
    assert!(guard.is_some(), "the killed holder's lock was not released");
}

#[test]
fn a_missing_pipe_is_a_clear_error() {
    let missing = unique_pipe();
    let err = Client::connect(&missing, KEY).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(r"\\.\pipe\monogusa-test-"), "{text}");
    assert!(text.contains("is the manager running"), "{text}");
}

#[test]
fn a_bad_name_given_to_address_pipe_is_refused_in_our_words() {
    for name in ["a/b", "", "x\0y"] {
        let address = Address::pipe(name);
        let err = start_error_at(&address);
        assert!(
            matches!(err, Error::InvalidAddress { .. }),
            "{name:?}: {err}"
        );
        let err = Client::connect(&address, KEY).unwrap_err();
        assert!(
            err.to_string().contains("a pipe name is 1 to 200"),
            "{name:?}: {err}"
        );
    }
}

/// A client that opens the pipe and says nothing is cut at the handshake timeout: reads on a
/// pipe time out like reads on a socket.
#[test]
fn a_silent_pipe_client_is_cut_at_the_handshake_timeout() {
    let address = unique_pipe();
    let manager = standard_builder()
        .bind(&address)
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let Address::Pipe(name) = manager.address().clone() else {
        panic!("not a pipe address: {}", manager.address());
    };
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let mut pipe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!(r"\\.\pipe\{name}"))
            .unwrap();
        let mut seen = Vec::new();
        let _ = pipe.read_to_end(&mut seen);
        let _ = done.send(seen.len());
    });
    // The manager's banner may come first; then the pipe must close.
    let read = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the silent client was never cut");
    assert!(read < 1024, "{read} bytes");
    wait_until(Duration::from_secs(10), "the refusal is counted", || {
        manager.stats().handshake_failures >= 1
    });
    // Others are served.
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

/// A call longer than the client's keepalive timeout succeeds: the manager's heartbeats
/// reach the client through the pipe while the call runs, and the client's pings are seen.
#[test]
fn heartbeats_keep_a_long_call_alive_over_a_pipe() {
    let manager = standard_builder()
        .bind(unique_pipe())
        .keepalive(Duration::from_millis(100), Duration::from_secs(3))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::builder(manager.address(), KEY)
        .keepalive(Duration::from_millis(100), Duration::from_millis(800))
        .connect()
        .unwrap();
    assert_eq!(client.call::<u64>("sleep_ms", (2000u64,)).unwrap(), 2000);
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

/// Shutting the manager down ends its pipe connections (a shutdown from another thread
/// wakes a read that is waiting), and the client hears of it.
#[test]
fn shutdown_closes_pipe_connections() {
    let manager = start_on_pipe();
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        manager.shutdown();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("shutdown hung on an idle pipe connection");
    let err = client.call::<i64>("inc", ("k",)).unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost(_) | Error::Io(_)),
        "{err}"
    );
}

/// `pipe_group` adds a group to the pipe's security descriptor; one that does not exist is
/// refused at start with its name in the error.
#[test]
fn a_pipe_group_is_admitted_and_an_unknown_one_is_a_clear_error() {
    let err = standard_builder()
        .bind(unique_pipe())
        .pipe_group("no-such-group-for-monogusa")
        .build()
        .unwrap()
        .start()
        .unwrap_err();
    assert!(
        err.to_string().contains("no-such-group-for-monogusa"),
        "{err}"
    );
    // BUILTIN\Users, by its well-known SID.
    let manager = standard_builder()
        .bind(unique_pipe())
        .pipe_group("S-1-5-32-545")
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

/// A manager killed with clients connected: their next call fails with a typed error (not a
/// hang), and the name is free at once for a new manager, which they reach again.
#[test]
fn a_killed_manager_fails_calls_cleanly_and_frees_its_name() {
    let address = unique_pipe();
    let text = address.to_string();
    let start_child = || spawn_child("manager", &[(ADDRESS_VAR, &text)]);
    let mut manager = start_child();
    let connect = || {
        let mut client = None;
        wait_until(Duration::from_secs(60), "the child manager serves", || {
            client = Client::connect(&address, KEY).ok();
            client.is_some()
        });
        client.unwrap()
    };
    let client = connect();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    manager.kill().unwrap();
    manager.wait().unwrap();
    let err = client.call::<i64>("inc", ("k",)).unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost(_) | Error::Io(_)),
        "{err}"
    );
    let mut again = start_child();
    let client = connect();
    // A new manager, a new count.
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    again.kill().unwrap();
    again.wait().unwrap();
}
