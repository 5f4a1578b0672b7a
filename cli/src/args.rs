//! The command line, declared with clap: every subcommand, flag, default and environment
//! variable, and the help text users read.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
The authkey comes from --authkey-file or the MONOGUSA_AUTHKEY environment variable, never from
the command line, where other users could read it.

Logging: RUST_LOG sets the filter (default: info), for example RUST_LOG=debug.

Exit codes: 0 success, 1 a runtime failure (cannot bind, cannot connect, a worker that did not
drain), 2 a usage error.";

/// Python's multiprocessing.managers, done right: a manager with no user code, its status,
/// supervised workers and their logs.
#[derive(Debug, Parser)]
#[command(name = "monogusa", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the built-in shared objects and task queues (until SIGINT or SIGTERM).
    #[command(after_help = AFTER_HELP)]
    Serve(Serve),
    /// Show a running manager: connections, calls, objects, workers.
    #[command(after_help = AFTER_HELP)]
    Stat(Stat),
    /// Run and supervise worker processes (restarted when they crash, drained on SIGTERM).
    #[command(after_help = RUN_HELP)]
    Run(Run),
    /// Print the workers' output kept by a manager.
    #[command(after_help = AFTER_HELP)]
    Logs(Logs),
    /// Look at a task queue's tasks by id: where one is, what it returned.
    #[command(subcommand)]
    Tasks(Tasks),
    /// What `run --tasks` supervises: feeds a program tasks as JSON lines (not for direct use).
    #[command(hide = true)]
    Bridge(Bridge),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

const RUN_HELP: &str = "\
Examples:
  monogusa run --connect 127.0.0.1:4343 --workers 4 -- ./my-worker --verbose
  monogusa run --connect 127.0.0.1:4343 -f Procfile --formation resizer=4,mailer=1

Each worker gets MONOGUSA_ADDRESS, MONOGUSA_AUTHKEY and MONOGUSA_WORKER (its name, as
`resizer-2`) in its environment. Its output is printed here, prefixed with its name, and kept
by the manager for `monogusa logs`. SIGINT or SIGTERM stops every worker (it finishes its tasks
first, for up to --drain-timeout); a second SIGINT kills them at once.

The authkey comes from --authkey-file or MONOGUSA_AUTHKEY. Exit codes: 0 every worker drained,
1 some did not (or a runtime failure), 2 a usage error.";

/// Where a command connects, and the key.
#[derive(Debug, Args)]
pub struct Connect {
    /// The manager's address: HOST:PORT (an IPv6 host in brackets), unix:PATH or pipe:NAME.
    #[arg(
        long,
        value_name = "ADDR",
        env = "MONOGUSA_ADDRESS",
        conflicts_with_all = ["unix", "pipe"]
    )]
    pub connect: Option<String>,
    /// The manager's Unix socket (the same as --connect unix:PATH).
    #[arg(long, value_name = "PATH", conflicts_with = "pipe")]
    pub unix: Option<String>,
    /// The manager's Windows named pipe (the same as --connect pipe:NAME).
    #[arg(long, value_name = "NAME")]
    pub pipe: Option<String>,
    /// Wait up to SECS for a manager that is still starting (nothing listens yet), as in a
    /// script that has just started `monogusa serve &`.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub wait: f64,
    #[command(flatten)]
    pub key: Key,
}

/// The authkey's source.
#[derive(Debug, Args)]
pub struct Key {
    /// A file holding the authkey (a trailing newline is not part of it); default: the
    /// MONOGUSA_AUTHKEY environment variable.
    #[arg(long, value_name = "FILE")]
    pub authkey_file: Option<PathBuf>,
    /// Refused: see --authkey-file.
    #[arg(long, hide = true, value_name = "KEY")]
    pub authkey: Option<String>,
}

#[derive(Debug, Args)]
pub struct Serve {
    /// Listen on HOST:PORT (or unix:PATH, or pipe:NAME); repeat for more addresses.
    #[arg(
        long,
        value_name = "ADDR",
        required_unless_present_any = ["unix", "pipe"],
        conflicts_with_all = ["unix", "pipe"]
    )]
    pub bind: Vec<String>,
    /// Listen on the Unix socket PATH; repeat for more.
    #[arg(long, value_name = "PATH")]
    pub unix: Vec<String>,
    /// Listen on the Windows named pipe NAME (\\.\pipe\NAME); repeat for more.
    #[arg(long, value_name = "NAME")]
    pub pipe: Vec<String>,
    #[command(flatten)]
    pub key: Key,
    /// Also listen for unmodified Python multiprocessing.managers clients (HOST:PORT or
    /// unix:PATH): SyncManager's dict(), list(), Queue(), Lock(), Value()..., and named
    /// objects through get_dict(name), get_queue(name), get_counter(name)...
    #[arg(long, value_name = "ADDR")]
    pub python: Vec<String>,
    /// Also listen for msgpack-rpc clients (HOST:PORT or unix:PATH).
    #[arg(long, value_name = "ADDR")]
    pub msgpack: Vec<String>,
    /// Also serve the dashboard page and Prometheus /metrics over HTTP (loopback advised),
    /// with --http-token-file or --data-dir.
    #[arg(long, value_name = "ADDR")]
    pub http: Vec<String>,
    /// The dashboard's token (16 characters or more), from a file only you can read; with
    /// --data-dir and without it, the manager keeps a random one in DIR/dashboard-token.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token_file: Option<PathBuf>,
    /// Keep task queues and shared objects in DIR across restarts.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: commit at least every MS milliseconds instead of before each change
    /// returns (faster; a crash may lose the last MS).
    #[arg(long, value_name = "MS", requires = "data_dir")]
    pub commit_every: Option<u64>,
    /// The most connections at once.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// The most bytes the shared objects may hold in all.
    #[arg(long, value_name = "N")]
    pub max_store_bytes: Option<u64>,
    /// The largest item a shared object takes.
    #[arg(long, value_name = "N")]
    pub max_item_bytes: Option<usize>,
    /// The most shared objects.
    #[arg(long, value_name = "N")]
    pub max_shared_objects: Option<usize>,
    /// How long a worker that ended or was lost stays in `stat` and the dashboard before
    /// it moves to their short "recently gone" list.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub forget_workers_after: f64,
}

#[derive(Debug, Args)]
pub struct Stat {
    #[command(flatten)]
    pub connect: Connect,
    /// Also list the manager's own objects (mailboxes, supervisor groups, the worker
    /// registry, the log buffer, objects Python clients made), and every gone worker.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum Tasks {
    /// Where task ID of QUEUE is: ready, delayed, leased (with its attempt), waiting (for
    /// the tasks it runs after), done, dead or unknown.
    #[command(after_help = TASKS_HELP)]
    Status(TaskArgs),
    /// What task ID of QUEUE returned (JSON when it is a plain value), or why it died;
    /// waits up to --wait SECS for it to finish. Exit code 1 if it is dead, unknown or not
    /// finished in time.
    #[command(after_help = TASKS_HELP)]
    Result(TaskArgs),
}

const TASKS_HELP: &str = "\
Examples:
  monogusa tasks status --connect 127.0.0.1:4343 emails 42
  monogusa tasks result --connect 127.0.0.1:4343 emails 42 --wait 30

The authkey comes from --authkey-file or MONOGUSA_AUTHKEY.";

/// A task of a queue, by id.
#[derive(Debug, Args)]
pub struct TaskArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// The task queue's name.
    pub queue: String,
    /// The task's id (what its push returned).
    pub id: u64,
    /// With `result`: wait up to SECS for the task to finish.
    #[arg(long = "for", value_name = "SECS", default_value_t = 0.0)]
    pub wait_for: f64,
}

#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub connect: Connect,
    /// How many processes of the command to run.
    #[arg(
        long,
        short = 'w',
        value_name = "N",
        default_value_t = 1,
        conflicts_with = "procfile"
    )]
    pub workers: usize,
    /// The workers' name (they are NAME-1 ... NAME-N); default: the command's file name.
    #[arg(long, value_name = "NAME", conflicts_with = "procfile")]
    pub name: Option<String>,
    /// Run the processes of a Procfile (lines of `name: command`).
    #[arg(long = "procfile", short = 'f', value_name = "FILE")]
    pub procfile: Option<PathBuf>,
    /// With -f: how many of each (`resizer=4,mailer=1`; default 1 of each).
    #[arg(long, value_name = "NAME=N,...", requires = "procfile")]
    pub formation: Option<String>,
    /// How long stopping workers may take to finish their tasks before they are killed.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Give up on a process that crashes more than N times in a minute.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_crashes: u32,
    /// The first wait before a restart, in seconds (it doubles up to 30 s).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub backoff: f64,
    /// Feed the command tasks from QUEUE, one JSON line per task on its stdin
    /// (`{"id", "payload", "attempt"}`), and read one JSON line back per task on its stdout
    /// (`{"id", "ok": true}` or `{"id", "ok": false, "error": "..."}`).
    #[arg(long, value_name = "QUEUE", conflicts_with = "procfile")]
    pub tasks: Option<String>,
    /// With --tasks: how many tasks each process holds at once.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "tasks")]
    pub concurrency: usize,
    /// The command and its arguments (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Bridge {
    /// The task queue.
    #[arg(long, value_name = "QUEUE")]
    pub tasks: String,
    /// How many tasks the program holds at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub concurrency: usize,
    /// The program and its arguments (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Logs {
    #[command(flatten)]
    pub connect: Connect,
    /// Keep printing new lines as they arrive (-F too).
    #[arg(long, short = 'f', short_alias = 'F')]
    pub follow: bool,
    /// Only this worker's lines.
    #[arg(long, value_name = "NAME")]
    pub worker: Option<String>,
    /// How many of the last lines to print first.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 100)]
    pub lines: u32,
}
