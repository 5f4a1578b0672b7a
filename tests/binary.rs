//! The `monogusa` binary: a manager with no user code, served and queried by `stat`.
#![allow(missing_docs)] // tests, not API

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::wait_until;
use monogusa::Client;

const BIN: &str = env!("CARGO_BIN_EXE_monogusa");

#[test]
fn serve_then_stat_then_stop_by_signal() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("m.sock");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "from-a-file\n").unwrap();
    let mut server = Command::new(BIN)
        .args(["serve", "--unix"])
        .arg(&socket)
        .arg("--authkey-file")
        .arg(&key_file)
        .env("MONOGUSA_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("unix:{}", socket.display());
    // The trailing newline of the key file is not part of the key.
    wait_until(Duration::from_secs(30), "the binary serves", || {
        Client::connect(address.as_str(), "from-a-file").is_ok()
    });
    let client = Client::connect(address.as_str(), "from-a-file").unwrap();
    client.counter("visits").unwrap().add(3).unwrap();
    client
        .queue::<String>("jobs", 10)
        .unwrap()
        .put(&"x".into())
        .unwrap();

    // The probes of the wait above may still be closing: wait until ours is the only one.
    wait_until(
        Duration::from_secs(10),
        "the probe connections closed",
        || client.manager_stats().unwrap().connections_open == 1,
    );
    let stat = Command::new(BIN)
        .args(["stat", "--unix"])
        .arg(&socket)
        .env("MONOGUSA_AUTHKEY", "from-a-file")
        .output()
        .unwrap();
    assert!(
        stat.status.success(),
        "{}",
        String::from_utf8_lossy(&stat.stderr)
    );
    let text = String::from_utf8_lossy(&stat.stdout);
    assert!(text.contains("visits: monogusa.Counter"), "{text}");
    assert!(text.contains("jobs: monogusa.Queue"), "{text}");
    assert!(text.contains("calls served: 2"), "{text}");
    assert!(text.contains("2 open"), "{text}");

    let wrong = Command::new(BIN)
        .args(["stat", "--unix"])
        .arg(&socket)
        .env("MONOGUSA_AUTHKEY", "wrong")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("authentication failed"));

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.wait().unwrap().success());
    assert!(!socket.exists(), "the socket file is removed on shutdown");
}

#[test]
fn the_key_is_never_taken_from_the_command_line() {
    let out = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--authkey", "secret"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("never taken from the command line"));
    let out = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("MONOGUSA_AUTHKEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no authkey"));
}
