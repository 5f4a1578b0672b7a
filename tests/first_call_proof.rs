//! The client's proof travelling with its first request: one round trip fewer per fresh
//! connection, and a wrong key still never runs anything.
#![allow(missing_docs)] // tests, not API

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::*;
use monogusa::{Address, Client, Error, Pending};

fn lazy(address: &Address, key: &str) -> Client {
    Client::builder(address, key)
        .prove_with_first_call(true)
        .connect()
        .unwrap()
}

fn count(manager: &monogusa::ManagerHandle, key: &str) -> i64 {
    Client::connect(manager.address(), KEY)
        .unwrap()
        .call("get", (key,))
        .unwrap()
}

#[test]
fn the_first_call_carries_the_proof_over_tcp_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    for address in [
        Address::tcp("127.0.0.1", 0),
        Address::unix(dir.path().join("m.sock")),
    ] {
        let manager = start_standard_at(&address);
        let client = lazy(manager.address(), KEY);
        assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
        assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 2);
        // Pipelined calls, notifications and typed errors on such clients too.
        let pending: Vec<Pending<i64>> = (0..10)
            .map(|_| lazy(manager.address(), KEY).send("inc", ("k",)).unwrap())
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        lazy(manager.address(), KEY).notify("inc", ("n",)).unwrap();
        wait_until(Duration::from_secs(10), "the notification ran", || {
            count(&manager, "n") == 1
        });
        let refused = lazy(manager.address(), KEY).call::<i64>("divide", (1i64, 0i64));
        assert!(matches!(refused, Err(Error::Remote(_))), "{refused:?}");
        assert_eq!(count(&manager, "k"), 12);
        let stats = manager.stats();
        assert_eq!(stats.auth_failures, 0);
    }
}

/// With a wrong key, the call that carries the proof fails with `Authentication` and never
/// runs: the manager checks the proof before it reads anything after it.
#[test]
fn a_wrong_key_never_runs_the_call_it_carries() {
    let manager = start_standard();
    // Twice: repeated wrong keys are answered ever more slowly.
    for _ in 0..2 {
        let client = lazy(manager.address(), "not-the-key");
        let refused = client.call::<i64>("inc", ("k",));
        assert!(
            matches!(refused, Err(Error::Authentication(_))),
            "{refused:?}"
        );
        // Every way of sending: a notification and a pipelined call are refused as well.
        let refused = lazy(manager.address(), "not-the-key").notify("inc", ("k",));
        assert!(
            matches!(refused, Err(Error::Authentication(_))),
            "{refused:?}"
        );
        let refused = lazy(manager.address(), "not-the-key").send::<i64>("inc", ("k",));
        assert!(
            matches!(refused, Err(Error::Authentication(_))),
            "{refused:?}"
        );
    }
    assert_eq!(count(&manager, "k"), 0, "no call with a wrong proof ran");
    assert_eq!(manager.stats().calls, 1, "only the checking call");
    // Counted just after the refusal is sent.
    wait_until(Duration::from_secs(10), "six failures counted", || {
        manager.stats().auth_failures == 6
    });
}

/// The same over a raw socket: a client that sends a wrong proof and, right behind it in
/// the same write, a request frame, gets REJECTED, and the request does not run.
#[test]
fn a_raw_wrong_proof_with_a_request_behind_it_is_rejected() {
    let manager = start_standard();
    let mut raw = TcpStream::connect(manager.address().to_string()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let banner = monogusa::protocol::banner();
    let mut hello = vec![banner.len() as u8];
    hello.extend_from_slice(banner.as_bytes());
    hello.extend_from_slice(&[7; 32]);
    raw.write_all(&hello).unwrap();
    let mut accept = [0u8; 33];
    raw.read_exact(&mut accept).unwrap();
    assert_eq!(accept[0], 0, "ACCEPT");
    let mut proof_and_request = vec![0xAB; 32];
    proof_and_request.extend_from_slice(&call_frame(1, "inc", &string_arg("k")));
    raw.write_all(&proof_and_request).unwrap();
    let mut verdict = Vec::new();
    let _ = raw.read_to_end(&mut verdict);
    assert_eq!(verdict, [0x03], "REJECTED, then the close");
    assert_eq!(count(&manager, "k"), 0);
}

/// Once a client's key was accepted, the connections it opens later (threads calling at
/// once) send their proof with their first call; a manager restarted with another key is
/// then still refused cleanly, with nothing run.
#[test]
fn later_connections_prove_with_their_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::unix(dir.path().join("m.sock"));
    let manager = start_standard_at(&address);
    let client = Client::builder(&address, KEY)
        .reconnect(50, Duration::from_millis(10))
        .connect()
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || {
                for _ in 0..50 {
                    client.call::<i64>("inc", ("k",)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&manager, "k"), 400);
    manager.shutdown();

    let other = standard_builder()
        .authkey("another-key")
        .bind(&address)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let refused = loop {
        match client.call::<i64>("inc", ("k",)) {
            Err(Error::ConnectionLost(_) | Error::Io(_)) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(refused, Err(Error::Authentication(_))),
        "{refused:?}"
    );
    let fresh: i64 = Client::connect(&address, "another-key")
        .unwrap()
        .call("get", ("k",))
        .unwrap();
    assert_eq!(fresh, 0, "nothing ran on the manager with the other key");
    drop(other);
}

/// A pipeline on a connection that proved itself with its first use keeps no handshake
/// timeout: its writer may wait on a busy manager far longer than the handshake may take.
#[test]
fn a_lazily_proven_pipeline_waits_on_a_busy_manager() {
    let dir = tempfile::tempdir().unwrap();
    let manager = start_standard_at(&Address::unix(dir.path().join("m.sock")));
    let client = Client::builder(manager.address(), KEY)
        .prove_with_first_call(true)
        .handshake_timeout(Duration::from_millis(200))
        .connect()
        .unwrap();
    // The manager sleeps on the first call and reads nothing meanwhile, so 4 MB of calls
    // behind it fill the socket and the writer waits (far) longer than 200 ms.
    let slow = client.send::<u64>("sleep_ms", (1000u64,)).unwrap();
    let text = "z".repeat(1000);
    let behind: Vec<Pending<String>> = (0..4000)
        .map(|_| client.send("echo", (&text,)).unwrap())
        .collect();
    assert_eq!(slow.wait().unwrap(), 1000);
    for p in behind {
        assert_eq!(p.wait().unwrap().len(), 1000);
    }
}
