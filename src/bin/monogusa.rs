//! `monogusa`: a manager with no user code, serving the built-in shared objects, and a tool
//! to look at a running manager.
//!
//! ```text
//! monogusa serve --bind 127.0.0.1:4343 --authkey-file key
//! monogusa serve --unix /run/app/manager.sock            # key from MONOGUSA_AUTHKEY
//! monogusa stat --connect 127.0.0.1:4343 --authkey-file key
//! ```
//!
//! The key comes from `--authkey-file` or the `MONOGUSA_AUTHKEY` environment variable, never
//! from the command line, where other users could read it. Log lines go to standard error;
//! `MONOGUSA_LOG` sets the level (error, warn, info, debug; default info).

use std::path::PathBuf;
use std::process::ExitCode;

use monogusa::{Client, Manager};

const USAGE: &str = "usage:
  monogusa serve (--bind HOST:PORT | --unix PATH)... [--authkey-file FILE] [--max-connections N]
                 [--max-store-bytes N] [--max-item-bytes N] [--max-shared-objects N]
                 [--data-dir DIR [--commit-every MS]] [--python HOST:PORT | --python unix:PATH]...
                 [--msgpack HOST:PORT | --msgpack unix:PATH]...
  monogusa stat (--connect HOST:PORT | --unix PATH) [--authkey-file FILE]
the authkey comes from --authkey-file or MONOGUSA_AUTHKEY";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => parse(&args[1..]).and_then(serve),
        Some("stat") => parse(&args[1..]).and_then(stat),
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            say(format_args!("monogusa: {message}"));
            ExitCode::from(2)
        }
    }
}

struct Options {
    /// The first address; `serve` also listens on the others.
    address: String,
    more_addresses: Vec<String>,
    key: Vec<u8>,
    /// Numeric limits given on the command line, by flag.
    limits: Vec<(&'static str, u64)>,
    /// Where `serve` also listens for Python's `multiprocessing.managers` clients.
    python: Vec<String>,
    /// Where `serve` also listens for msgpack-rpc clients.
    msgpack: Vec<String>,
    /// Where `serve` keeps task queues and shared objects across restarts.
    data_dir: Option<PathBuf>,
    /// Commit at least this often instead of before each mutation returns.
    commit_every_ms: Option<u64>,
}

/// The numeric limits `serve` takes.
const LIMIT_FLAGS: [&str; 4] = [
    "--max-connections",
    "--max-store-bytes",
    "--max-item-bytes",
    "--max-shared-objects",
];

fn parse(args: &[String]) -> Result<Options, String> {
    let mut addresses: Vec<String> = Vec::new();
    let mut key_file: Option<PathBuf> = None;
    let mut limits = Vec::new();
    let mut data_dir = None;
    let mut python = Vec::new();
    let mut msgpack = Vec::new();
    let mut commit_every_ms = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--bind" | "--connect" => addresses.push(value()?),
            "--unix" => addresses.push(format!("unix:{}", value()?)),
            "--authkey-file" => key_file = Some(value()?.into()),
            "--python" => python.push(value()?),
            "--msgpack" => msgpack.push(value()?),
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--commit-every" => {
                commit_every_ms =
                    Some(value()?.parse().map_err(|_| {
                        "--commit-every needs a number of milliseconds".to_string()
                    })?);
            }
            flag if LIMIT_FLAGS.contains(&flag) => {
                let flag = LIMIT_FLAGS.iter().find(|f| **f == flag).expect("listed");
                let number = value()?
                    .parse()
                    .map_err(|_| format!("{flag} needs a number"))?;
                limits.push((*flag, number));
            }
            "--authkey" => {
                return Err(
                    "the authkey is never taken from the command line (other users can read it): \
                     use --authkey-file or MONOGUSA_AUTHKEY"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if addresses.is_empty() {
        return Err(format!("an address is required\n{USAGE}"));
    }
    let address = addresses.remove(0);
    let key = match key_file {
        Some(path) => {
            warn_if_readable_by_others(&path);
            let key =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            // A trailing newline from `echo secret > key` is not part of the key.
            let end = key
                .iter()
                .rposition(|b| !b"\r\n".contains(b))
                .map_or(0, |i| i + 1);
            key[..end].to_vec()
        }
        None => std::env::var("MONOGUSA_AUTHKEY")
            .map(String::into_bytes)
            .map_err(|_| format!("no authkey: use --authkey-file or MONOGUSA_AUTHKEY\n{USAGE}"))?,
    };
    if commit_every_ms.is_some() && data_dir.is_none() {
        return Err("--commit-every needs --data-dir".into());
    }
    Ok(Options {
        address,
        more_addresses: addresses,
        key,
        limits,
        data_dir,
        commit_every_ms,
        python,
        msgpack,
    })
}

/// A key file others can read is a key others can have.
fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                say(format_args!(
                    "monogusa: warning: the key file {} can be read by other users (mode {:o}); \
                     chmod 600 it",
                    path.display(),
                    mode & 0o777
                ));
            }
        }
    }
}

fn serve(options: Options) -> Result<(), String> {
    install_logger();
    let mut builder = Manager::builder()
        .authkey(&options.key)
        .bind(options.address.as_str());
    for more in &options.more_addresses {
        builder = builder.also_bind(more.as_str());
    }
    for &(flag, n) in &options.limits {
        let size = usize::try_from(n).unwrap_or(usize::MAX);
        builder = match flag {
            "--max-connections" => builder.max_connections(size),
            "--max-store-bytes" => builder.max_store_bytes(n),
            "--max-item-bytes" => builder.max_item_bytes(size),
            _ => builder.max_shared_objects(size),
        };
    }
    for python in &options.python {
        builder = builder.python_listener(python.as_str());
    }
    for msgpack in &options.msgpack {
        builder = builder.msgpack_listener(msgpack.as_str());
    }
    if let Some(dir) = &options.data_dir {
        builder = builder.data_dir(dir);
        if let Some(ms) = options.commit_every_ms {
            builder = builder.durability(monogusa::Durability::Every(
                std::time::Duration::from_millis(ms.max(1)),
            ));
        }
    }
    let manager = builder.build().map_err(|e| e.to_string())?;
    // The manager logs the address it listens on once it is bound (an address it cannot bind
    // is an error instead).
    manager.serve_forever().map_err(|e| e.to_string())?;
    say(format_args!("monogusa: stopped"));
    Ok(())
}

fn stat(options: Options) -> Result<(), String> {
    let client =
        Client::connect(options.address.as_str(), &options.key).map_err(|e| e.to_string())?;
    let stats = client.manager_stats().map_err(|e| e.to_string())?;
    let description = client.describe().map_err(|e| e.to_string())?;
    println!("manager {}", options.address);
    println!(
        "connections: {} open (this one included), {} accepted, {} refused",
        stats.connections_open, stats.connections_accepted, stats.connections_refused
    );
    println!("calls served: {}", stats.calls);
    println!(
        "failures: {} wrong keys, {} failed handshakes, {} protocol errors",
        stats.auth_failures, stats.handshake_failures, stats.protocol_errors
    );
    println!(
        "functions: {}",
        if description.functions.is_empty() {
            "-".into()
        } else {
            description.functions.join(", ")
        }
    );
    println!("objects: {}", description.objects.len());
    for object in &description.objects {
        let name = object.name.as_deref().unwrap_or("(created by a client)");
        let methods: Vec<&str> = object.methods.iter().map(|m| m.name.as_str()).collect();
        println!(
            "  #{} {name}: {} [{}], {} references",
            object.id,
            object.service,
            methods.join(", "),
            object.references
        );
    }
    Ok(())
}

/// Writes a line to standard error, ignoring failure: `eprintln!` panics when stderr is a
/// closed pipe, and a log line must never take the manager down.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A minimal logger to standard error, so the binary needs no logging dependency.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            say(format_args!("[{}] {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

fn install_logger() {
    let level = match std::env::var("MONOGUSA_LOG").as_deref() {
        Ok("error") => log::LevelFilter::Error,
        Ok("warn") => log::LevelFilter::Warn,
        Ok("debug") => log::LevelFilter::Debug,
        _ => log::LevelFilter::Info,
    };
    if log::set_logger(&StderrLogger).is_ok() {
        log::set_max_level(level);
    }
}
