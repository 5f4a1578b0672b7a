//! The well-known Python manager example, done right: a manager serves a `Counter` object
//! with `get(key)` and `inc(key)`; five client processes each call `get` then `inc` 1000
//! times on the key "hikakin"; the final count is exactly 5000, because `inc` takes
//! `&mut self`, so the manager runs those calls one at a time.
//!
//! ```text
//! cargo run --release --example counter            # over TCP
//! cargo run --release --example counter -- --unix  # over a Unix-domain socket
//! cargo run --release --example counter -- --pipe counter  # over a Windows named pipe
//! ```
//!
//! The client processes are this same program re-run with `--client ADDRESS`; the authkey
//! reaches them through the environment, never the command line.

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::time::Instant;

use monogusa::{Client, Manager};

/// Counts per key; the trait is the whole remote interface.
#[monogusa::service]
pub trait Counter {
    /// The current count of `key`.
    fn get(&self, key: String) -> i64;
    /// Adds one to `key` and returns the new count.
    fn inc(&mut self, key: String) -> i64;
}

#[derive(Default)]
struct Counts(HashMap<String, i64>);

impl Counter for Counts {
    fn get(&self, key: String) -> i64 {
        self.0.get(&key).copied().unwrap_or(0)
    }

    fn inc(&mut self, key: String) -> i64 {
        let count = self.0.entry(key).or_insert(0);
        *count += 1;
        *count
    }
}

const AUTHKEY_VAR: &str = "MONOGUSA_AUTHKEY";
const CLIENTS: usize = 5;
const ROUNDS: usize = 1000;
const KEY: &str = "hikakin";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, address] if flag == "--client" => run_client(address),
        [] => run_manager(Transport::Tcp),
        [flag] if flag == "--unix" => run_manager(Transport::Unix),
        [flag, name] if flag == "--pipe" => run_manager(Transport::Pipe(name.clone())),
        _ => {
            eprintln!("usage: counter [--unix | --pipe NAME]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("counter: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the manager listens.
enum Transport {
    Tcp,
    Unix,
    /// A Windows named pipe, by name.
    Pipe(String),
}

fn run_manager(transport: Transport) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let authkey = "password";
    // Keep the socket's directory alive until the manager is gone.
    let socket_dir = std::env::temp_dir().join(format!("monogusa-counter-{}", std::process::id()));
    let bind = match transport {
        Transport::Tcp => "127.0.0.1:0".to_string(),
        Transport::Unix => {
            std::fs::create_dir_all(&socket_dir)?;
            format!("unix:{}", socket_dir.join("manager.sock").display())
        }
        Transport::Pipe(name) => format!("pipe:{name}"),
    };

    let manager = Manager::builder()
        .authkey(authkey)
        .bind(bind)
        .serve("counter", CounterServer::new(Counts::default()))
        .build()?
        .start()?;
    let address = manager.address().to_string();
    println!("manager listening on {address}");

    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let children = (0..CLIENTS)
        .map(|_| {
            Command::new(&exe)
                .args(["--client", &address])
                .env(AUTHKEY_VAR, authkey)
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut failed = 0;
    for mut child in children {
        if !child.wait()?.success() {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();

    let client = Client::connect(manager.address(), authkey)?;
    let count = CounterClient::open(&client, "counter")?.get(KEY.into())?;
    let expected = (CLIENTS * ROUNDS) as i64;
    println!(
        "{CLIENTS} processes x {ROUNDS} x (get + inc) on {KEY:?}: count = {count} (expected {expected}) in {:.3} s, {:.0} calls/s",
        elapsed.as_secs_f64(),
        (2 * CLIENTS * ROUNDS) as f64 / elapsed.as_secs_f64()
    );
    drop(client);
    manager.shutdown();
    let _ = std::fs::remove_dir(&socket_dir);
    if failed > 0 || count != expected {
        eprintln!("counter: FAILED ({failed} client processes failed)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_client(address: &str) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let authkey = std::env::var(AUTHKEY_VAR).map_err(|_| format!("{AUTHKEY_VAR} is not set"))?;
    let client = Client::connect(address, authkey)?;
    let counter = CounterClient::open(&client, "counter")?;
    for _ in 0..ROUNDS {
        let _current = counter.get(KEY.into())?;
        counter.inc(KEY.into())?;
    }
    Ok(ExitCode::SUCCESS)
}
