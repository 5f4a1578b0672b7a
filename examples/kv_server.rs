//! The separate-programs form of Python's manager example: a key-value manager you start on
//! its own, and `kv_client` (another program) talks to it.
//!
//! ```text
//! cargo run --example kv_server                      # listens on 127.0.0.1:4343
//! cargo run --example kv_client                      # in another terminal
//! cargo run --example kv_server -- unix:/tmp/kv.sock # or any address
//! ```
//!
//! The authkey comes from `MONOGUSA_AUTHKEY`, or the file named by `--authkey-file` or
//! `MONOGUSA_AUTHKEY_FILE`. With none of those, the server makes a random key and writes it to
//! a file only you can read (`$TMPDIR/monogusa-kv.key`), where `kv_client` finds it.
//!
//! `--python ADDRESS` also serves unmodified Python clients (the tutorial's key-value store and
//! its five-process counter run against it as they are, see `tests/python/`): it keeps any
//! plain value (`put('a', 10)`, then `get('a').conjugate()` is 10), and `inc(key)` adds one.
//!
//! It serves until SIGINT/SIGTERM, a client's `kv_client --shutdown`, or `--idle-exit SECS`
//! (default 30) seconds without a call, so it also ends by itself when run unattended.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monogusa::{Client, Dynamic, Manager};

const DEFAULT_ADDRESS: &str = "127.0.0.1:4343";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut address = DEFAULT_ADDRESS.to_string();
    let mut key_file: Option<PathBuf> = std::env::var_os("MONOGUSA_AUTHKEY_FILE").map(Into::into);
    let mut idle_exit = Duration::from_secs(30);
    let mut python: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--authkey-file" => key_file = Some(args.next().ok_or("--authkey-file needs a path")?.into()),
            "--python" => python = Some(args.next().ok_or("--python needs an address")?),
            "--idle-exit" => {
                idle_exit = Duration::from_secs(args.next().ok_or("--idle-exit needs seconds")?.parse()?)
            }
            other if !other.starts_with('-') => address = other.to_string(),
            other => return Err(format!("unknown option {other}; usage: kv_server [ADDRESS] [--authkey-file PATH] [--idle-exit SECS]").into()),
        }
    }
    let authkey = load_or_make_key(key_file)?;

    // Any plain value: a Python client may put 10, 'x' or [1, 2] alike.
    let store = Arc::new(Mutex::new(HashMap::<String, Dynamic>::new()));
    let last_call = Arc::new(AtomicU64::new(now_secs()));
    let (for_get, for_put, for_inc) = (Arc::clone(&store), Arc::clone(&store), Arc::clone(&store));
    let (touch_get, touch_put, touch_inc, touch_uname) = (
        Arc::clone(&last_call),
        Arc::clone(&last_call),
        Arc::clone(&last_call),
        Arc::clone(&last_call),
    );
    let mut builder = Manager::builder()
        .authkey(&authkey)
        .bind(address.as_str())
        .register("get", move |key: String| {
            touch_get.store(now_secs(), Ordering::Relaxed);
            for_get.lock().unwrap().get(&key).cloned()
        })
        .register("put", move |key: String, value: Dynamic| {
            touch_put.store(now_secs(), Ordering::Relaxed);
            for_put.lock().unwrap().insert(key, value);
        })
        .register("inc", move |key: String| -> Result<i64, String> {
            touch_inc.store(now_secs(), Ordering::Relaxed);
            let mut store = for_inc.lock().unwrap();
            let slot = store.entry(key.clone()).or_insert(Dynamic::Int(0));
            let n = slot
                .as_i64()
                .ok_or(format!("{key:?} does not hold an int"))?
                + 1;
            *slot = Dynamic::Int(n);
            Ok(n)
        })
        .register("get_uname", move || {
            touch_uname.store(now_secs(), Ordering::Relaxed);
            uname()
        });
    if let Some(python) = &python {
        builder = builder.python_listener(python.as_str());
    }
    let manager = builder.build()?;

    // Ends an unattended server: after `idle_exit` without a call, ask ourselves to stop.
    let watchdog_key = authkey.clone();
    let watchdog_address = address.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if now_secs().saturating_sub(last_call.load(Ordering::Relaxed)) >= idle_exit.as_secs() {
                println!("kv_server: idle for {} s, stopping", idle_exit.as_secs());
                if let Ok(client) = Client::connect(watchdog_address.as_str(), &watchdog_key) {
                    let _ = client.shutdown_server();
                }
                return;
            }
        }
    });

    println!("kv_server listening on {address}");
    if let Some(python) = &python {
        println!("kv_server listening for python clients on {python}");
    }
    manager.serve_forever()?;
    println!("kv_server stopped");
    Ok(())
}

/// Like Python's `os.uname()`: (sysname, nodename, release, machine) of the manager's host.
fn uname() -> (String, String, String, String) {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    (
        std::env::consts::OS.to_string(),
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH.to_string(),
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The key from the environment or a file, or a fresh random one saved where kv_client looks.
fn load_or_make_key(key_file: Option<PathBuf>) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    if let Ok(key) = std::env::var("MONOGUSA_AUTHKEY") {
        return Ok(key.into_bytes());
    }
    if let Some(path) = key_file {
        return Ok(
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        );
    }
    let path = std::env::temp_dir().join("monogusa-kv.key");
    if let Ok(key) = std::fs::read(&path) {
        println!("kv_server: using the key in {}", path.display());
        return Ok(key);
    }
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| format!("no OS randomness: {e}"))?;
    let key: String = random.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, key.as_bytes())?;
    println!("kv_server: wrote a new random key to {}", path.display());
    Ok(key.into_bytes())
}

fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(data)
}
