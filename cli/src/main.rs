//! `monogusa`: a manager with no user code, its status, supervised workers and their logs.
//!
//! ```text
//! monogusa serve --bind 127.0.0.1:4343 --authkey-file key
//! monogusa stat --connect 127.0.0.1:4343 --authkey-file key
//! monogusa run --connect 127.0.0.1:4343 --workers 4 -- ./my-worker
//! monogusa logs --connect 127.0.0.1:4343 --follow --worker my-worker-2
//! ```
//!
//! The key comes from `--authkey-file` or `MONOGUSA_AUTHKEY`, never the command line. Exit
//! codes: 0 success, 1 a runtime failure, 2 a usage error.

mod args;
mod bridge;
mod key;
mod procfile;
mod tasks;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, Parser};
use monogusa::workers::{LogLine, Program, Supervisor, SupervisorSettings};
use monogusa::{Client, Manager};

use args::{Cli, Command, Connect};

/// Why a command failed, which decides its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The command line was wrong (exit code 2).
    Usage(String),
    /// Something failed while running (exit code 1).
    Runtime(String),
    /// Standard output was closed (`monogusa stat | head`): the reader has what it wanted,
    /// so the command ends quietly (exit code 0).
    OutputClosed,
}

/// `writeln!` into a `String` (which cannot fail).
macro_rules! say {
    ($text:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($text, $($arg)*);
    }};
}

impl From<monogusa::Error> for Failure {
    fn from(e: monogusa::Error) -> Self {
        Failure::Runtime(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors exit 2, --help and --version 0
    install_logger();
    let result = match cli.command {
        Command::Serve(serve) => self::serve(serve),
        Command::Stat(stat) => self::stat(&stat),
        Command::Run(run) => self::run(run),
        Command::Logs(logs) => self::logs(&logs),
        Command::Tasks(command) => tasks::run(&command),
        Command::Bridge(options) => {
            bridge::run(&options.tasks, options.concurrency, &options.command)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "monogusa",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {message}\n\nFor more information, try '--help'."
            );
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            let _ = writeln!(std::io::stderr(), "monogusa: {message}");
            ExitCode::from(1)
        }
        Err(Failure::OutputClosed) => ExitCode::SUCCESS,
    }
}

/// Logs to standard error with timestamps; `RUST_LOG` filters (default info; the older
/// `MONOGUSA_LOG=warn` still works).
fn install_logger() {
    let default = std::env::var("MONOGUSA_LOG").unwrap_or_else(|_| "info".into());
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

/// `unix:PATH` for `--unix PATH` (also when PATH already says `unix:`).
fn unix_address(path: &str) -> String {
    format!("unix:{}", path.strip_prefix("unix:").unwrap_or(path))
}

/// `pipe:NAME` for `--pipe NAME` (also when NAME already says `pipe:`).
fn pipe_address(name: &str) -> String {
    format!("pipe:{}", name.strip_prefix("pipe:").unwrap_or(name))
}

/// The address and key a connecting command names.
fn target(connect: &Connect) -> Result<(String, Vec<u8>), Failure> {
    let address = match (&connect.connect, &connect.unix, &connect.pipe) {
        (_, Some(path), _) => unix_address(path),
        (_, None, Some(name)) => pipe_address(name),
        (Some(address), None, None) => address.clone(),
        (None, None, None) => {
            return Err(Failure::Usage(
                "no manager address: use --connect ADDR, --unix PATH, --pipe NAME or \
                 MONOGUSA_ADDRESS"
                    .into(),
            ));
        }
    };
    Ok((address, key::load(&connect.key)?))
}

fn connect(connect: &Connect) -> Result<(String, Client), Failure> {
    let (address, key) = target(connect)?;
    let mut builder = Client::builder(address.as_str(), &key);
    if connect.wait > 0.0 {
        builder = builder.connect_timeout(seconds("--wait", connect.wait)?);
    }
    let client = builder
        .connect()
        .map_err(|e| connect_failed(&address, &e))?;
    Ok((address, client))
}

/// A failed connect in words: the library's own (which names the address and says what to
/// check), without the "I/O error" label.
fn connect_failed(address: &str, e: &monogusa::Error) -> Failure {
    match e {
        monogusa::Error::Io(io) => Failure::Runtime(io.to_string()),
        other => Failure::Runtime(format!("could not connect to {address}: {other}")),
    }
}

fn serve(options: args::Serve) -> Result<ExitCode, Failure> {
    let key = key::load(&options.key)?;
    let mut addresses: Vec<String> = options.bind.clone();
    addresses.extend(options.unix.iter().map(|p| unix_address(p)));
    addresses.extend(options.pipe.iter().map(|n| pipe_address(n)));
    let (first, more) = addresses.split_first().expect("clap requires an address");
    let mut builder = Manager::builder().authkey(&key).bind(first.as_str());
    for address in more {
        builder = builder.also_bind(address.as_str());
    }
    if let Some(n) = options.max_connections {
        builder = builder.max_connections(n);
    }
    if let Some(n) = options.max_store_bytes {
        builder = builder.max_store_bytes(n);
    }
    if let Some(n) = options.max_item_bytes {
        builder = builder.max_item_bytes(n);
    }
    if let Some(n) = options.max_shared_objects {
        builder = builder.max_shared_objects(n);
    }
    builder = builder.forget_workers_after(seconds(
        "--forget-workers-after",
        options.forget_workers_after,
    )?);
    for address in &options.python {
        builder = builder.python_listener(address.as_str());
    }
    if !options.python.is_empty() {
        // What a SyncManager client creates, and named objects by get_dict(name) & co.
        builder = builder.python_builtins();
    }
    for address in &options.msgpack {
        builder = builder.msgpack_listener(address.as_str());
    }
    for address in &options.http {
        builder = builder.http(address.as_str());
    }
    match &options.http_token_file {
        Some(path) => builder = builder.http_token(token_file(path)?),
        // Without a data directory the token would be random for this run, and the log shows
        // only its first characters: the operator would have no way in.
        None if !options.http.is_empty() && options.data_dir.is_none() => {
            return Err(Failure::Usage(
                "--http needs --http-token-file FILE, or --data-dir DIR (where the manager keeps \
                 its dashboard token, in DIR/dashboard-token)"
                    .into(),
            ));
        }
        None => {}
    }
    if let Some(dir) = &options.data_dir {
        builder = builder.data_dir(dir);
        if let Some(ms) = options.commit_every {
            builder = builder.durability(monogusa::Durability::Every(Duration::from_millis(
                ms.max(1),
            )));
        }
    }
    // The manager logs each address once it is bound; one it cannot bind is an error.
    builder.build()?.serve_forever()?;
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn stat(options: &args::Stat) -> Result<ExitCode, Failure> {
    let (address, client) = connect(&options.connect)?;
    let mut text = String::new();
    let stats = client.manager_stats()?;
    let description = client.describe()?;
    say!(text, "manager {address}");
    say!(
        text,
        "connections: {} open (this one included), {} accepted, {} refused",
        stats.connections_open,
        stats.connections_accepted,
        stats.connections_refused
    );
    say!(text, "calls served: {}", stats.calls);
    say!(
        text,
        "failures: {} wrong keys, {} failed handshakes, {} protocol errors",
        stats.auth_failures,
        stats.handshake_failures,
        stats.protocol_errors
    );
    say!(
        text,
        "functions: {}",
        if description.functions.is_empty() {
            "-".into()
        } else {
            description.functions.join(", ")
        }
    );
    let (shown, hidden): (Vec<_>, Vec<_>) = description
        .objects
        .iter()
        .partition(|o| options.all || !o.is_internal());
    let total = description.objects_total as usize;
    if hidden.is_empty() {
        say!(text, "objects: {total}");
    } else {
        say!(
            text,
            "objects: {} (and {} of the manager's own: --all lists them)",
            total.saturating_sub(hidden.len()),
            hidden.len()
        );
    }
    let unlisted = total.saturating_sub(description.objects.len());
    for object in shown {
        let name = object.name.as_deref().unwrap_or("(created by a client)");
        let methods: Vec<&str> = object.methods.iter().map(|m| m.name.as_str()).collect();
        say!(
            text,
            "  #{} {name}: {} [{}], {} references",
            object.id,
            object.service,
            methods.join(", "),
            object.references
        );
    }
    if unlisted > 0 {
        say!(
            text,
            "  … and {unlisted} more (Client::describe_objects pages through them)"
        );
    }
    let workers = client.workers()?;
    let gone = client.workers_gone()?;
    say!(text, "workers: {}", workers.len());
    if !workers.is_empty() {
        let width = workers
            .iter()
            .map(|w| w.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        say!(
            text,
            "  {:<width$}  {:>7}  {:<18}  {:>8}  {:>9}  {:>8}  {:>6}",
            "NAME",
            "PID",
            "STATE",
            "RESTARTS",
            "HEARTBEAT",
            "DONE",
            "FAILED"
        );
        for w in &workers {
            let pid = w.pid.map_or("-".into(), |p| p.to_string());
            let age = w
                .heartbeat_age
                .map_or("-".into(), |a| format!("{:.1}s ago", a.as_secs_f64()));
            say!(
                text,
                "  {:<width$}  {:>7}  {:<18}  {:>8}  {:>9}  {:>8}  {:>6}",
                w.name,
                pid,
                w.state.to_string(),
                w.restarts,
                age,
                w.done,
                w.failed
            );
        }
    }
    if !gone.is_empty() {
        let shown = if options.all { gone.len() } else { 5 };
        let names: Vec<String> = gone
            .iter()
            .take(shown)
            .map(|w| format!("{} ({})", w.name, w.state))
            .collect();
        let more = gone.len().saturating_sub(shown);
        say!(
            text,
            "recently gone: {}{}",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more (--all)")
            } else {
                String::new()
            }
        );
    }
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(output_failed)?;
    Ok(ExitCode::SUCCESS)
}

fn run(options: args::Run) -> Result<ExitCode, Failure> {
    // Reachable first (waiting `--wait` for it), with a clear error if not.
    drop(connect(&options.connect)?);
    let (address, key) = target(&options.connect)?;
    let mut settings = SupervisorSettings::default();
    settings.drain_timeout = seconds("--drain-timeout", options.drain_timeout)?;
    settings.first_backoff = seconds("--backoff", options.backoff)?;
    settings.max_crashes = options.max_crashes;
    let mut supervisor = Supervisor::connect(address.as_str(), &key)?;
    supervisor.settings(settings);
    match &options.procfile {
        Some(path) => {
            if !options.command.is_empty() {
                return Err(Failure::Usage(
                    "give a Procfile or a command, not both".into(),
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", path.display())))?;
            let entries = procfile::parse(&text)?;
            for (entry, count) in procfile::counts(&entries, options.formation.as_deref())? {
                supervisor.spawn(&entry.name, count, procfile::program(&entry.command));
            }
        }
        None => {
            let Some((program, args)) = options.command.split_first() else {
                return Err(Failure::Usage(
                    "no command to run: monogusa run [OPTIONS] -- COMMAND [ARGS]... (or -f Procfile)"
                        .into(),
                ));
            };
            let name = options.name.clone().unwrap_or_else(|| {
                std::path::Path::new(program)
                    .file_stem()
                    .map_or("worker".into(), |s| s.to_string_lossy().into_owned())
            });
            let program = match &options.tasks {
                // Each process is a bridge that feeds the command its tasks.
                Some(queue) => Program::current_exe()?
                    .args(["bridge", "--tasks", queue])
                    .args(["--concurrency", &options.concurrency.to_string(), "--"])
                    .arg(program)
                    .args(args),
                None => Program::new(program).args(args),
            };
            supervisor.spawn(&name, options.workers, program);
        }
    }
    let outcome = supervisor
        .run()
        .map_err(|e| Failure::Runtime(format!("could not supervise at {address}: {e}")))?;
    for process in &outcome.processes {
        log::info!(
            "{}: {} ({} restarts)",
            process.name,
            process.ended,
            process.restarts
        );
    }
    if outcome.dropped_lines > 0 {
        log::warn!(
            "{} output lines did not reach the manager",
            outcome.dropped_lines
        );
    }
    Ok(if outcome.all_drained() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The dashboard token from `path`: refused if empty or readable by others.
fn token_file(path: &std::path::Path) -> Result<String, Failure> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Failure::Runtime(format!(
                "the token file {} is readable by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Failure::Runtime(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_string())
}

fn seconds(flag: &str, value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Failure::Usage(format!("{flag} needs a number of seconds, not {value}")))
}

fn logs(options: &args::Logs) -> Result<ExitCode, Failure> {
    let (_, client) = connect(&options.connect)?;
    let logs = client.logs()?;
    let worker = options.worker.as_deref();
    let page = logs.tail(options.lines.max(1), worker)?;
    let width = page.lines.iter().map(|l| l.source.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for line in &page.lines {
        print_line(&mut out, line, width)?;
    }
    for (source, dropped) in &page.dropped {
        log::warn!("{dropped} lines of {source} did not reach the manager");
    }
    if options.follow {
        out.flush().map_err(output_failed)?;
        drop(out);
        for line in logs.follow(page.next, worker) {
            let mut out = std::io::stdout().lock();
            print_line(&mut out, &line?, width)?;
            out.flush().map_err(output_failed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn output_failed(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Failure::OutputClosed;
    }
    Failure::Runtime(format!("writing to standard output: {e}"))
}

fn print_line(out: &mut impl Write, line: &LogLine, width: usize) -> Result<(), Failure> {
    writeln!(
        out,
        "{} {:<width$} | {}",
        clock(line.time),
        line.source,
        line.text
    )
    .map_err(output_failed)
}

/// `HH:MM:SS` in UTC.
fn clock(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
