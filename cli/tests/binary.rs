//! The `monogusa` binary: a manager with no user code, served and queried by `stat`; workers
//! run and supervised by `run`, their output read back by `logs`; the command line itself
//! (help, version, usage errors and their exit codes, completions).
#![allow(missing_docs)] // tests, not API

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monogusa::Client;

const BIN: &str = env!("CARGO_BIN_EXE_monogusa");
const KEY: &str = "cli-test-key-long-enough";

/// Waits until `condition` holds, failing the test after `limit`.
fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `monogusa serve` on a free loopback port, with the key in its environment.
struct Served {
    child: Child,
    address: String,
}

impl Served {
    fn start() -> Served {
        Served::start_with(&[])
    }

    /// `serve` with `extra` flags.
    fn start_with(extra: &[&str]) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["serve", "--bind", &address])
            .args(extra)
            .env("MONOGUSA_AUTHKEY", KEY)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(30), "the manager serves", || {
            Client::connect(address.as_str(), KEY).is_ok()
        });
        Served { child, address }
    }

    fn client(&self) -> Client {
        Client::connect(self.address.as_str(), KEY).unwrap()
    }

    /// The binary with `args`, connected to this manager through the environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("MONOGUSA_ADDRESS", &self.address)
            .env("MONOGUSA_AUTHKEY", KEY)
            .env("RUST_LOG", "warn");
        command
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sigterm(child: &Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Reads `lines` until one satisfies `wanted`; returns the lines read.
fn read_until(lines: &mut impl Iterator<Item = String>, wanted: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    for line in lines.by_ref() {
        seen.push_str(&line);
        seen.push('\n');
        if wanted(&line) {
            return seen;
        }
    }
    panic!("output ended before the line wanted; it was:\n{seen}");
}

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

#[test]
fn every_subcommand_has_help_and_the_version_is_printed() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["stat", "--help"],
        &["run", "--help"],
        &["logs", "--help"],
        &["completions", "--help"],
        &["help", "run"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Usage: monogusa"), "{args:?}: {text}");
    }
    let serve = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let serve = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--bind",
        "--unix",
        "--authkey-file",
        "--python",
        "--msgpack",
        "--data-dir",
        "--commit-every",
        "--http",
        "--http-token-file",
        "--max-connections",
        "MONOGUSA_AUTHKEY",
        "RUST_LOG",
        "Exit codes",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}: {serve}");
    }
    let run = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let run = String::from_utf8_lossy(&run.stdout);
    for flag in [
        "--connect",
        "MONOGUSA_ADDRESS",
        "--workers",
        "--procfile",
        "--formation",
        "--drain-timeout",
        "--max-crashes",
    ] {
        assert!(run.contains(flag), "run --help lacks {flag}: {run}");
    }
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("monogusa {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_with_a_message_and_runtime_failures_exit_1() {
    let wrong = Command::new(BIN)
        .args(["serve", "--bnid", "x"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    let text = String::from_utf8_lossy(&wrong.stderr);
    assert!(text.contains("unexpected argument '--bnid'"), "{text}");
    assert!(text.contains("--bind"), "suggests the flag meant: {text}");

    let both = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--unix", "/tmp/x.sock"])
        .env("MONOGUSA_AUTHKEY", KEY)
        .output()
        .unwrap();
    assert_eq!(
        both.status.code(),
        Some(2),
        "one kind of address flag, not the last wins"
    );
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));

    let key = Command::new(BIN)
        .args(["stat", "--connect", "127.0.0.1:1", "--authkey", "secret"])
        .output()
        .unwrap();
    assert_eq!(key.status.code(), Some(2));
    let text = String::from_utf8_lossy(&key.stderr);
    assert!(
        text.contains("--authkey-file") && text.contains("MONOGUSA_AUTHKEY"),
        "{text}"
    );

    let refused = Command::new(BIN)
        .args(["stat", "--connect", "127.0.0.1:1"])
        .env("MONOGUSA_AUTHKEY", KEY)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("connecting to 127.0.0.1:1: connection refused: nothing listens there"),
        "{text}"
    );
    // Connection errors say what happened in words, naming the address.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody.sock");
    for (address, expected) in [
        (
            "nosuchhost.invalid:4343".to_string(),
            "cannot resolve host nosuchhost.invalid".to_string(),
        ),
        (
            format!("unix:{}", missing.display()),
            format!(
                "no socket at {}: is the manager running?",
                missing.display()
            ),
        ),
    ] {
        let failed = Command::new(BIN)
            .args(["stat", "--connect", &address])
            .env("MONOGUSA_AUTHKEY", KEY)
            .output()
            .unwrap();
        assert_eq!(failed.status.code(), Some(1));
        let text = String::from_utf8_lossy(&failed.stderr);
        assert!(text.contains(&expected), "{address}: {text}");
        assert!(!text.contains("uncategorized"), "{text}");
    }

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let bind = Command::new(BIN)
        .args(["serve", "--bind", &busy])
        .env("MONOGUSA_AUTHKEY", KEY)
        .output()
        .unwrap();
    assert_eq!(bind.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bind.stderr);
    assert!(text.contains(&busy), "the error names the address: {text}");
    assert!(
        !text.contains("manager listening on"),
        "no announcement before the bind: {text}"
    );
}

#[test]
fn completions_are_printed_for_bash() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("_monogusa()"), "{script}");
    assert!(script.contains("--drain-timeout"), "{script}");
}

#[test]
fn unix_takes_a_path_with_or_without_its_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("m.sock");
    let mut server = Command::new(BIN)
        .args(["serve", "--unix"])
        .arg(format!("unix:{}", socket.display()))
        .env("MONOGUSA_AUTHKEY", KEY)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the socket", || socket.exists());
    let stat = Command::new(BIN)
        .args(["stat", "--unix"])
        .arg(&socket)
        .env("MONOGUSA_AUTHKEY", KEY)
        .output()
        .unwrap();
    assert!(
        stat.status.success(),
        "{}",
        String::from_utf8_lossy(&stat.stderr)
    );
    sigterm(&server);
    assert!(server.wait().unwrap().success());
}

/// Workers that are plain shell programs: a Procfile run, its output prefixed, kept by the
/// manager, listed by `stat`, followed by `logs --follow`, drained by SIGTERM.
#[test]
fn run_supervises_a_procfile_and_logs_and_stat_show_its_workers() {
    let manager = Served::start();
    let dir = tempfile::tempdir().unwrap();
    let procfile = dir.path().join("Procfile");
    std::fs::write(
        &procfile,
        "# two kinds of worker\n\
         greeter: trap 'echo bye; exit 0' TERM; echo \"hello from $MONOGUSA_WORKER\"; while true; do sleep 0.05; done\n\
         ticker: trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.05; done\n",
    )
    .unwrap();
    let mut run = manager
        .command(&["run", "-f"])
        .arg(&procfile)
        .args(["--formation", "greeter=2,ticker=1", "--drain-timeout", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(run.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    let mut seen = String::new();
    for greeter in ["greeter-1", "greeter-2"] {
        if !seen.contains(&format!("{greeter} | hello from {greeter}")) {
            seen += &read_until(&mut out, |l| {
                l.ends_with(&format!("{greeter} | hello from {greeter}"))
            });
        }
    }
    read_until(&mut out, |l| l.contains("ticker-1  | tick 3"));

    // `logs` of one worker: its lines only.
    let logs = manager
        .command(&["logs", "--worker", "greeter-2"])
        .output()
        .unwrap();
    assert!(logs.status.success());
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("greeter-2 | hello from greeter-2"), "{text}");
    assert!(!text.contains("greeter-1"), "{text}");

    // `logs --follow` prints lines that arrive after it started.
    let ticks_now = manager
        .client()
        .logs()
        .unwrap()
        .tail(1, Some("ticker-1"))
        .unwrap()
        .lines[0]
        .text
        .clone();
    let now: u64 = ticks_now.trim_start_matches("tick ").parse().unwrap();
    let mut follow = manager
        .command(&["logs", "-f", "--worker", "ticker-1", "--lines", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut followed = BufReader::new(follow.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    read_until(&mut followed, |l| {
        l.rsplit_once("tick ")
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .is_some_and(|n| n > now + 3)
    });
    follow.kill().unwrap();
    follow.wait().unwrap();

    // `stat` lists the workers, and hides the manager's own objects unless asked.
    let stat = manager.command(&["stat"]).output().unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    assert!(text.contains("workers: 3"), "{text}");
    assert!(
        text.contains("of the manager's own: --all lists them"),
        "{text}"
    );
    assert!(!text.contains("monogusa.workers"), "{text}");
    let all = manager.command(&["stat", "--all"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&all.stdout).contains("monogusa.workers"),
        "{}",
        String::from_utf8_lossy(&all.stdout)
    );
    for name in ["greeter-1", "greeter-2", "ticker-1"] {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(row.contains("running"), "{row}");
    }

    sigterm(&run);
    let rest: Vec<String> = out.collect();
    assert!(run.wait().unwrap().success(), "every worker drained");
    assert!(rest.iter().any(|l| l.ends_with("| bye")), "{rest:?}");
    let stat = manager.command(&["stat"]).output().unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    assert_eq!(text.matches("stopped").count(), 3, "{text}");
}

#[test]
fn run_kills_a_worker_that_does_not_drain_and_exits_1() {
    let manager = Served::start();
    let mut run = manager
        .command(&[
            "run",
            "--workers",
            "1",
            "--name",
            "stubborn",
            "--drain-timeout",
            "0.3",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "trap '' TERM; echo started; while true; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(run.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    read_until(&mut out, |l| l.ends_with("stubborn-1 | started"));
    sigterm(&run);
    assert_eq!(run.wait().unwrap().code(), Some(1));
}

/// Whether process `pid` is gone (or a zombie, dead but not yet reaped by its new parent).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A Procfile of lines of every form, run and stopped: each line's processes (written to a
/// file as they start) are all gone once `run` returns, and it returns within the drain
/// timeout plus a little, however the line was written.
fn procfile_run(
    lines: &str,
    expected_pids: usize,
    drain: &str,
) -> (std::process::ExitStatus, String, Duration) {
    let manager = Served::start();
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // `spin`: records its pid, then becomes a long sleep (the same pid, through exec).
    let spin = dir.path().join("spin");
    std::fs::write(&spin, "#!/bin/sh\necho $$ >> \"$PIDS\"\nexec sleep 300\n").unwrap();
    // `drainer`: records its pid, works until SIGTERM, then finishes and exits 0.
    let drainer = dir.path().join("drainer");
    std::fs::write(
        &drainer,
        "#!/bin/sh\ntrap 'echo drained; exit 0' TERM\necho $$ >> \"$PIDS\"\n\
         while true; do sleep 0.05; done\n",
    )
    .unwrap();
    for script in [&spin, &drainer] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let procfile = dir.path().join("Procfile");
    let lines = lines.replace("DIR", dir.path().to_str().unwrap());
    std::fs::write(&procfile, &lines).unwrap();
    let mut run = manager
        .command(&["run", "-f"])
        .arg(&procfile)
        .args(["--drain-timeout", drain])
        .env("PIDS", &pids)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |path: &std::path::Path| -> Vec<u32> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    wait_until(
        Duration::from_secs(30),
        "every line's processes start",
        || read(&pids).len() >= expected_pids,
    );
    let stopped_at = Instant::now();
    sigterm(&run);
    let mut log = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut log).unwrap();
    let status = run.wait().unwrap();
    let took = stopped_at.elapsed();
    eprintln!("run stopped in {took:?} (drain timeout {drain} s)");
    let started = read(&pids);
    wait_until(
        Duration::from_secs(10),
        "no process of any line is left",
        || started.iter().all(|&pid| gone(pid)),
    );
    (status, log, took)
}

#[test]
fn run_stops_every_process_of_compound_exec_env_and_forking_lines() {
    let (status, log, _) = procfile_run(
        "compound: echo start; DIR/spin\n\
         looping: while true; do DIR/spin; done\n\
         exec: exec DIR/spin\n\
         env: FOO=1 DIR/drainer\n\
         forks: DIR/spin & DIR/spin & wait\n\
         orphan: sh -c 'DIR/spin &'; DIR/spin\n",
        8,
        "10",
    );
    assert!(status.success(), "every line stopped as asked: {log}");
    // The env-prefixed line runs its program directly: its clean drain is its own exit.
    assert!(log.contains("env-1: exited 0"), "{log}");
    assert!(log.contains("compound-1: stopped by SIGTERM"), "{log}");
}

#[test]
fn run_kills_lines_that_ignore_sigterm_with_everything_they_started() {
    let (status, log, _) = procfile_run(
        "stubborn: trap '' TERM; DIR/spin\n\
         forks: trap '' TERM; DIR/spin & DIR/spin & wait\n",
        3,
        "0.5",
    );
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("stubborn-1: killed before it drained"),
        "{log}"
    );
}

/// `serve --python` with no code: what a `SyncManager` client creates, and named objects.
#[test]
fn serve_python_gives_a_sync_manager_client_its_objects() {
    let port = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (native, python) = (port(0), port(1));
    let mut server = Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{native}")])
        .args(["--python", &format!("127.0.0.1:{python}")])
        .env("MONOGUSA_AUTHKEY", KEY)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{native}");
    wait_until(Duration::from_secs(30), "the manager serves", || {
        Client::connect(address.as_str(), KEY).is_ok()
    });
    let script = format!(
        "from multiprocessing.managers import SyncManager, BaseManager\n\
         m = SyncManager(address=('127.0.0.1', {python}), authkey=b'{KEY}')\n\
         m.connect()\n\
         d = m.dict(a=1); l = m.list([1, 2]); q = m.Queue(); q.put('x')\n\
         lock = m.Lock(); v = m.Value('i', 3); e = m.Event(); e.set()\n\
         with lock:\n    print('sync', d['a'], len(l), q.get(), v.value, e.is_set())\n\
         class Named(BaseManager): pass\n\
         Named.register('get_counter')\n\
         n = Named(address=('127.0.0.1', {python}), authkey=b'{KEY}'); n.connect()\n\
         print('named', n.get_counter('hits').add(2))\n"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("sync 1 2 x 3 True"), "{stdout}");
    assert!(stdout.contains("named 2"), "{stdout}");
    let client = Client::connect(address.as_str(), KEY).unwrap();
    assert_eq!(client.counter("hits").unwrap().get().unwrap(), 2);
    sigterm(&server);
    assert!(server.wait().unwrap().success());
}

/// `monogusa stat | head -1`: the closed pipe ends the command quietly.
#[test]
fn a_closed_stdout_ends_stat_quietly() {
    let manager = Served::start();
    let mut stat = manager
        .command(&["stat"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(stat.stdout.take()); // closed before it writes (it connects first)
    let output = stat.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Workers that stopped, or whose supervisor was killed, leave `stat` after
/// `--forget-workers-after` and are listed as recently gone.
#[test]
fn gone_workers_leave_stat_for_the_recently_gone_list() {
    let manager = Served::start_with(&["--forget-workers-after", "0.5"]);
    let client = manager.client();
    let names = |list: Vec<monogusa::workers::WorkerStatus>| -> Vec<String> {
        list.into_iter().map(|w| w.name).collect()
    };
    // One run stopped cleanly: stopped, then gone.
    let mut run = manager
        .command(&["run", "--workers", "1", "--name", "tidy", "--"])
        .args(["sh", "-c", "echo up; exec sleep 300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "tidy-1 runs", || {
        names(client.workers().unwrap()).contains(&"tidy-1".to_string())
    });
    sigterm(&run);
    run.wait().unwrap();
    wait_until(Duration::from_secs(30), "tidy-1 to be gone", || {
        names(client.workers_gone().unwrap()).contains(&"tidy-1".to_string())
    });
    assert!(!names(client.workers().unwrap()).contains(&"tidy-1".to_string()));
    // Another whose supervisor is killed: lost once it stops vouching for it, then gone.
    let mut orphaned = manager
        .command(&["run", "--workers", "1", "--name", "orphan", "--"])
        .args(["sh", "-c", "exec sleep 300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "orphan-1 runs", || {
        names(client.workers().unwrap()).contains(&"orphan-1".to_string())
    });
    let orphan_pid = client
        .workers()
        .unwrap()
        .into_iter()
        .find(|w| w.name == "orphan-1")
        .and_then(|w| w.pid)
        .unwrap();
    orphaned.kill().unwrap();
    orphaned.wait().unwrap();
    // What the killed supervisor left running, ended by the test.
    let _ = Command::new("kill")
        .args(["-KILL", &orphan_pid.to_string()])
        .status();
    wait_until(Duration::from_secs(30), "orphan-1 to be gone", || {
        names(client.workers_gone().unwrap()).contains(&"orphan-1".to_string())
    });
    let stat = manager.command(&["stat"]).output().unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    assert!(text.contains("workers: 0"), "{text}");
    assert!(
        text.contains("recently gone: orphan-1 (lost), tidy-1 (stopped)"),
        "{text}"
    );
}

/// The manager's own objects have a quota of their own: with the user's quota full, `stat`
/// (which opens the worker registry) still works and counts every object.
#[test]
fn stat_works_when_the_users_object_quota_is_full() {
    let manager = Served::start_with(&["--max-shared-objects", "5"]);
    let client = manager.client();
    for i in 0..5 {
        client.counter(&format!("c{i}")).unwrap();
    }
    assert!(
        client.counter("one-too-many").is_err(),
        "the user's quota is full"
    );
    let stat = manager.command(&["stat"]).output().unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    assert!(
        stat.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&stat.stderr)
    );
    assert!(text.contains("objects: 5"), "{text}");
    assert!(text.contains("workers: 0"), "{text}");
}

/// `serve --http` needs a token the operator can read: from a file only they can read, or
/// kept in the data directory; an empty or world-readable token file is refused.
#[test]
fn the_dashboard_token_file_must_be_private_and_given() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(extra)
            .env("MONOGUSA_AUTHKEY", KEY)
            .output()
            .unwrap()
    };
    let none = serve(&[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--http-token-file"));
    let token = dir.path().join("token");
    for (contents, mode, expected) in [
        ("0123456789abcdef0123\n", 0o644, "readable by others"),
        ("\n", 0o600, "is empty"),
    ] {
        std::fs::write(&token, contents).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let refused = serve(&["--http-token-file", token.to_str().unwrap()]);
        assert_eq!(refused.status.code(), Some(1));
        let text = String::from_utf8_lossy(&refused.stderr);
        assert!(text.contains(expected), "{text}");
    }
}

/// A shell script that reads lines is a worker: `run --tasks` feeds it one JSON line per task
/// and reads its answers (several at once with --concurrency); a failure it reports is the
/// task's, with its words, and with `"retry": false` the task is dead at once (on its first of
/// five attempts); what it prints to stderr is its log.
#[test]
fn run_tasks_feeds_a_shell_script_json_lines() {
    use monogusa::{Dynamic, TaskQueueSettings};
    let manager = Served::start();
    let client = manager.client();
    let jobs = client
        .named("lines")
        .tasks::<Dynamic>(TaskQueueSettings {
            max_attempts: 5,
            ..Default::default()
        })
        .unwrap();
    let s = |t: &str| Dynamic::Str(t.into());
    for word in ["alpha", "beta", "gamma"] {
        jobs.push(&Dynamic::Map(vec![(s("word"), s(word))]))
            .unwrap();
    }
    jobs.push(&Dynamic::Map(vec![(s("word"), s("fail-me"))]))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("worker.sh");
    std::fs::write(
        &script,
        r#"while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/^{"attempt":[0-9]*,"id":\([0-9]*\),.*/\1/p')
  case "$line" in
    *fail-me*) printf '{"id":%s,"ok":false,"error":"it said no","retry":false}\n' "$id" ;;
    *) echo "did $line" >&2; printf '{"id":%s,"ok":true}\n' "$id" ;;
  esac
done
"#,
    )
    .unwrap();
    let mut run = manager
        .command(&[
            "run",
            "--name",
            "liner",
            "--tasks",
            "lines",
            "--concurrency",
            "2",
        ])
        .args(["--", "sh"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "three done, one dead", || {
        let stats = jobs.stats().unwrap();
        stats.done == 3 && stats.dead == 1
    });
    let dead = jobs.dead_letters().unwrap();
    assert_eq!(dead[0].reasons, ["it said no"]);
    assert_eq!(dead[0].attempts, 1, "no retry asked, none made");
    wait_until(Duration::from_secs(10), "its stderr in the log", || {
        let lines = client
            .logs()
            .unwrap()
            .tail(10, Some("liner-1"))
            .unwrap()
            .lines;
        lines.iter().filter(|l| l.text.starts_with("did {")).count() == 3
    });
    sigterm(&run);
    assert!(run.wait().unwrap().success(), "it drained");
}

/// Any language, here Python's standard library: a program that dies holding a task fails it
/// ("the program exited") and is started again after the backoff; the task runs again and is
/// done. Rust pushes a struct, which the program reads as a JSON object.
#[test]
fn run_tasks_restarts_a_program_that_dies_and_its_task_runs_again() {
    use monogusa::{Dynamic, TaskQueueSettings};
    #[derive(serde::Serialize)]
    struct Resize {
        path: String,
        width: u32,
    }
    let manager = Served::start();
    let client = manager.client();
    let jobs = client
        .named("resize")
        .tasks::<Dynamic>(TaskQueueSettings {
            backoff: Duration::from_millis(50),
            ..Default::default()
        })
        .unwrap();
    let payload = Dynamic::encode(&Resize {
        path: "cat.png".into(),
        width: 64,
    })
    .unwrap();
    jobs.push(&payload).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("worker.py");
    std::fs::write(
        &script,
        r#"import json, os, sys
for line in sys.stdin:
    task = json.loads(line)
    if task["attempt"] == 1:
        os._exit(3)  # dies holding its first task
    print("resized", task["payload"]["path"], "to", task["payload"]["width"], file=sys.stderr)
    print(json.dumps({"id": task["id"], "ok": True}), flush=True)
"#,
    )
    .unwrap();
    let mut run = manager
        .command(&[
            "run",
            "--name",
            "resizer",
            "--tasks",
            "resize",
            "--backoff",
            "0.05",
        ])
        .args(["--", "python3"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the task done", || {
        jobs.stats().unwrap().done == 1
    });
    wait_until(Duration::from_secs(10), "its log line", || {
        let lines = client
            .logs()
            .unwrap()
            .tail(20, Some("resizer-1"))
            .unwrap()
            .lines;
        lines.iter().any(|l| l.text == "resized cat.png to 64")
    });
    let worker = client
        .workers()
        .unwrap()
        .into_iter()
        .find(|w| w.name == "resizer-1")
        .unwrap();
    assert_eq!(worker.restarts, 1, "{worker:?}");
    sigterm(&run);
    assert!(run.wait().unwrap().success(), "it drained");
}
