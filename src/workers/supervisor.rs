//! The supervisor: starts worker processes by name with the manager's address and key in
//! their environment, gathers their output, restarts those that exit unexpectedly (with
//! exponential backoff, giving up on one that crashes too often), and on a stop request sends
//! every worker the stop message, waits for them to drain, and kills what is left.
//!
//! One thread watches every process (`try_wait` every 20 ms): no thread per child to
//! coordinate, and a state machine per slot that is easy to read:
//! `waiting to start → running → (exited) → waiting to start (backoff) | gave up | ended`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::mailbox::{Group, Mailbox};
use super::output::{Printer, Shipper, Sink, pump};
use super::process_group::{self, ProcessGroup};
use super::registry::Registry;
use super::worker::{Control, HEARTBEAT_VAR, control_mailbox};
use super::{LogStream, WORKER_VAR, WorkerReport, WorkerState};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::transport::{Address, ToAddress};
use crate::wire::protocol::{ADDRESS_VAR, AUTHKEY_VAR, MSGPACK_ADDRESS_VAR, PYTHON_ADDRESS_VAR};

/// A program to start as a worker: path, arguments, environment, directory. Kept (unlike a
/// `Command`) so it can be started again.
#[derive(Debug, Clone)]
pub struct Program {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
}

impl Program {
    /// The program at `path` (or found on `PATH`).
    pub fn new(path: impl AsRef<OsStr>) -> Program {
        Program {
            program: path.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
        }
    }

    /// This program again (to re-run it in a worker role, told apart by an argument).
    pub fn current_exe() -> Result<Program> {
        Ok(Program::new(std::env::current_exe()?))
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args(mut self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs the program in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }
}

/// How a supervisor restarts and stops workers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupervisorSettings {
    /// How long a stopping worker may take to finish its tasks before it is killed (30 s).
    pub drain_timeout: Duration,
    /// The first wait before restarting a process that exited unexpectedly (1 s); it doubles
    /// with each quick crash, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait before a restart (30 s).
    pub max_backoff: Duration,
    /// A process that ran this long before exiting starts again from `first_backoff` (30 s).
    pub reset_after: Duration,
    /// Give up on a process that exits unexpectedly more than this many times (5) ...
    pub max_crashes: u32,
    /// ... within this window (60 s).
    pub crash_window: Duration,
    /// How often workers heartbeat (1 s), passed to them in `MONOGUSA_HEARTBEAT_MS`.
    pub heartbeat: Duration,
    /// Print every worker's output, prefixed with its name, to standard output (true).
    pub print_output: bool,
    /// Send every worker's output to the manager's log buffer (true).
    pub ship_output: bool,
    /// Stop on SIGINT and SIGTERM, and kill at once on a second SIGINT (true).
    pub handle_signals: bool,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            drain_timeout: Duration::from_secs(30),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            reset_after: Duration::from_secs(30),
            max_crashes: 5,
            crash_window: Duration::from_secs(60),
            heartbeat: Duration::from_secs(1),
            print_output: true,
            ship_output: true,
            handle_signals: true,
        }
    }
}

/// How a supervised process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// It exited with this code after the stop message (0: drained cleanly).
    Exited(i32),
    /// The SIGTERM of the stop ended it, as it ends most programs not built on
    /// [`Worker`](super::Worker) (a shell running a compound Procfile line, say): a clean stop.
    Terminated,
    /// A signal ended it (not the supervisor's kill, nor the stop's SIGTERM).
    Signalled(i32),
    /// It was still running at the drain timeout (or a second SIGINT) and was killed.
    Killed,
    /// It exited unexpectedly too often; the supervisor stopped restarting it.
    GaveUp {
        /// How many times it had exited in the window.
        crashes: u32,
        /// How the last one ended.
        last: String,
    },
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exited {code}"),
            Ended::Terminated => f.write_str("stopped by SIGTERM"),
            Ended::Signalled(signal) => write!(f, "killed by signal {signal}"),
            Ended::Killed => f.write_str("killed before it drained"),
            Ended::GaveUp { crashes, last } => {
                write!(f, "gave up after {crashes} crashes (last: {last})")
            }
        }
    }
}

/// One process of a [`Supervisor::run`]'s outcome.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProcessOutcome {
    /// Its name (`resizer-2`).
    pub name: String,
    /// How often it was restarted.
    pub restarts: u32,
    /// How it ended.
    pub ended: Ended,
}

/// What a [`Supervisor::run`] ended with: every process and how it ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome {
    /// The processes, in the order they were spawned.
    pub processes: Vec<ProcessOutcome>,
    /// Output lines dropped on their way to the manager (it was slow or gone).
    pub dropped_lines: u64,
}

impl Outcome {
    /// Whether every process stopped as asked: exited 0 after the stop, or ended on its
    /// SIGTERM ([`Ended::Terminated`]).
    pub fn all_drained(&self) -> bool {
        self.processes
            .iter()
            .all(|p| matches!(p.ended, Ended::Exited(0) | Ended::Terminated))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.processes {
            writeln!(f, "{}: {} ({} restarts)", p.name, p.ended, p.restarts)?;
        }
        Ok(())
    }
}

/// Asks a running [`Supervisor`] to stop or kill; cheap to clone.
#[derive(Debug, Clone)]
pub struct SupervisorStop(Arc<AtomicUsize>);

impl SupervisorStop {
    /// Stop: every worker gets the stop message and the drain timeout to finish.
    pub fn stop(&self) {
        let _ = self
            .0
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Kill every worker now.
    pub fn kill(&self) {
        self.0.store(2, Ordering::SeqCst);
    }
}

/// One supervised process's place.
struct Slot {
    name: String,
    index: usize,
    program: Program,
    child: Option<Running>,
    restarts: u32,
    /// Whether a process was ever started here (the next start is a restart).
    started_once: bool,
    /// When it exited unexpectedly, within the crash window.
    crashes: VecDeque<Instant>,
    backoff: Duration,
    start_at: Option<Instant>,
    ended: Option<Ended>,
    killed: bool,
}

struct Running {
    child: Child,
    /// The group the child leads: what stops and kills are sent to.
    group: ProcessGroup,
    started: Instant,
    pumps: Vec<JoinHandle<()>>,
    /// How the child (the group's leader) ended, once reaped; the slot stays running while
    /// others of its group live on during a stop.
    status: Option<ExitStatus>,
}

/// Starts, watches, restarts and stops worker processes. See the [module](super) example.
pub struct Supervisor {
    address: Address,
    key: Vec<u8>,
    client: Option<Client>,
    slots: Vec<Slot>,
    settings: SupervisorSettings,
    stop: Arc<AtomicUsize>,
    /// Output readers of processes that ended, finished at the end of `run`.
    pumps: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("address", &self.address)
            .field("processes", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// A description of how a process ended, for logs and reports.
fn describe(status: ExitStatus) -> String {
    match (status.code(), signal_of(status)) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => "unknown".into(),
    }
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
fn signal_of(_: ExitStatus) -> Option<i32> {
    None
}

/// Whether a status is death by SIGTERM.
fn terminated(status: ExitStatus) -> bool {
    #[cfg(unix)]
    const SIGTERM: i32 = 15;
    #[cfg(not(unix))]
    const SIGTERM: i32 = -1;
    status.code().is_none() && signal_of(status) == Some(SIGTERM)
}

impl Supervisor {
    /// A supervisor of workers for the manager `manager` (in this process).
    pub fn new(manager: &crate::ManagerHandle) -> Supervisor {
        Supervisor::with_address(manager.address().clone(), manager.raw_key().to_vec())
    }

    /// A supervisor of workers for the manager at `address` with `authkey` (elsewhere).
    pub fn connect(address: impl ToAddress, authkey: impl AsRef<[u8]>) -> Result<Supervisor> {
        Ok(Supervisor::with_address(
            address.to_address()?,
            authkey.as_ref().to_vec(),
        ))
    }

    fn with_address(address: Address, key: Vec<u8>) -> Supervisor {
        Supervisor {
            address,
            key,
            client: None,
            slots: Vec::new(),
            settings: SupervisorSettings::default(),
            stop: Arc::new(AtomicUsize::new(0)),
            pumps: Vec::new(),
        }
    }

    /// Replaces the settings (drain timeout, backoff, crash limit, output).
    pub fn settings(&mut self, settings: SupervisorSettings) -> &mut Self {
        self.settings = settings;
        self
    }

    /// Sets how long stopping workers may take before they are killed.
    pub fn drain_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.settings.drain_timeout = timeout;
        self
    }

    /// Adds `count` processes of `program` named `name-1` … `name-count`.
    pub fn spawn(&mut self, name: &str, count: usize, program: Program) -> &mut Self {
        for n in 1..=count {
            let index = self.slots.len();
            self.slots.push(Slot {
                name: format!("{name}-{n}"),
                index,
                program: program.clone(),
                child: None,
                restarts: 0,
                started_once: false,
                crashes: VecDeque::new(),
                backoff: self.settings.first_backoff,
                start_at: Some(Instant::now()),
                ended: None,
                killed: false,
            });
        }
        self
    }

    /// A handle to stop (or kill) the supervisor's workers from another thread.
    pub fn stop_handle(&self) -> SupervisorStop {
        SupervisorStop(Arc::clone(&self.stop))
    }

    /// Starts the processes and supervises them until a stop (SIGINT, SIGTERM, or
    /// [`SupervisorStop::stop`]) has drained them, or every one was given up on. Returns
    /// how each ended.
    pub fn run(&mut self) -> Result<Outcome> {
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let c = Client::connect(self.address.clone(), &self.key)?;
                self.client = Some(c.clone());
                c
            }
        };
        let _signals = if self.settings.handle_signals {
            Some(watch_signals(&self.stop)?)
        } else {
            None
        };
        let registry = Registry::open(&client)?;
        let group = Group::<Control>::open(
            &client,
            &format!("monogusa.supervisor:{}", std::process::id()),
        )?;
        for slot in &self.slots {
            group.join(&control_mailbox(&slot.name))?;
        }
        let width = self.slots.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let printer = self
            .settings
            .print_output
            .then(|| Arc::new(Printer::new(width)));
        let shipper = self
            .settings
            .ship_output
            .then(|| Arc::new(Shipper::start(client.clone())));
        let mut stop_deadline: Option<Instant> = None;
        let mut vouched = Instant::now();
        loop {
            let now = Instant::now();
            if now.duration_since(vouched) >= self.settings.heartbeat {
                // Said for every running process, so that one which never heartbeats itself
                // shows as lost (not running forever) if this supervisor is killed.
                vouched = now;
                for slot in self.slots.iter().filter(|s| s.child.is_some()) {
                    let vouch = WorkerReport {
                        name: slot.name.clone(),
                        supervised: true,
                        ..WorkerReport::default()
                    };
                    if let Err(e) = registry.report(&vouch) {
                        log::debug!("could not report {}: {e}", slot.name);
                    }
                }
            }
            let request = self.stop.load(Ordering::SeqCst);
            if request >= 1 && stop_deadline.is_none() {
                stop_deadline = Some(now + self.settings.drain_timeout);
                self.begin_stop(&group, &registry);
            }
            let kill = request >= 2 || stop_deadline.is_some_and(|d| now >= d);
            for i in 0..self.slots.len() {
                self.watch(
                    i,
                    &client,
                    &registry,
                    printer.as_ref(),
                    shipper.as_ref(),
                    stop_deadline.is_some(),
                    kill,
                );
            }
            let all_ended = self
                .slots
                .iter()
                .all(|s| s.child.is_none() && (s.ended.is_some() || stop_deadline.is_some()));
            if all_ended {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for slot in &self.slots {
            let _ = group.leave(&control_mailbox(&slot.name));
        }
        self.finish_pumps(Duration::from_millis(500));
        let dropped_lines = shipper.as_ref().map_or(0, |s| {
            s.finish(Duration::from_secs(2));
            s.dropped()
        });
        Ok(Outcome {
            processes: self
                .slots
                .iter()
                .map(|s| ProcessOutcome {
                    name: s.name.clone(),
                    restarts: s.restarts,
                    ended: s.ended.clone().unwrap_or(Ended::Killed),
                })
                .collect(),
            dropped_lines,
        })
    }

    /// Waits up to `limit` for the output of ended processes to be read to its end; a reader
    /// still blocked then (a process that left its group holds the pipe) is left behind.
    fn finish_pumps(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.pumps.iter().any(|p| !p.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for pump in self.pumps.drain(..) {
            if pump.is_finished() {
                let _ = pump.join();
            } else {
                log::debug!("an ended process's output is still open (a process left its group)");
            }
        }
    }

    /// Sends every running worker the stop message (and SIGTERM).
    fn begin_stop(&mut self, group: &Group<Control>, registry: &Registry) {
        log::info!("stopping {} workers", self.slots.len());
        if let Err(e) = group.broadcast(&Control::STOP) {
            log::warn!("could not send the stop message: {e}");
        }
        for slot in &mut self.slots {
            slot.start_at = None;
            if let Some(running) = &slot.child {
                // The whole group: a shell's command and a program's children stop too.
                running.group.terminate();
                report(registry, &slot.name, WorkerState::Stopping, None, None);
            }
        }
    }

    /// One look at slot `i`: reap it, restart it, kill it.
    #[allow(clippy::too_many_arguments)]
    fn watch(
        &mut self,
        i: usize,
        client: &Client,
        registry: &Registry,
        printer: Option<&Arc<Printer>>,
        shipper: Option<&Arc<Shipper>>,
        stopping: bool,
        kill: bool,
    ) {
        let settings = self.settings.clone();
        let Supervisor {
            slots,
            pumps,
            address,
            key,
            ..
        } = self;
        let slot = &mut slots[i];
        if let Some(running) = &mut slot.child {
            if kill && !slot.killed {
                slot.killed = true;
                log::warn!("killing {} (pid {})", slot.name, running.child.id());
                running.group.kill();
                let _ = running.child.kill();
            }
            if running.status.is_none() {
                match running.child.try_wait() {
                    Ok(Some(status)) => running.status = Some(status),
                    Ok(None) => return,
                    Err(e) => {
                        log::warn!("could not wait for {}: {e}", slot.name);
                        return;
                    }
                }
            }
            if running.group.alive() {
                if stopping && !slot.killed {
                    // Its group drains too (until the drain timeout kills it).
                    return;
                }
                // What an exited worker left behind, or what the kill has not ended yet.
                running.group.kill();
            }
            let running = slot.child.take().expect("checked above");
            let status = running.status.expect("reaped above");
            // The pipes close when the last process holding them ends; one that left the
            // group (setsid) may hold them longer, so the reading threads are not waited for
            // here, but at the end of `run`, briefly.
            pumps.extend(running.pumps);
            let how = describe(status);
            if stopping {
                slot.ended = Some(if slot.killed {
                    Ended::Killed
                } else if let Some(code) = status.code() {
                    Ended::Exited(code)
                } else if terminated(status) {
                    Ended::Terminated
                } else {
                    Ended::Signalled(signal_of(status).unwrap_or(0))
                });
                let state = if status.success() || terminated(status) {
                    WorkerState::Stopped
                } else {
                    WorkerState::Exited {
                        code: status.code(),
                        signal: signal_of(status),
                    }
                };
                report(registry, &slot.name, state, None, None);
                log::info!("{} ended: {how}", slot.name);
                return;
            }
            let now = Instant::now();
            if now.duration_since(running.started) >= settings.reset_after {
                slot.backoff = settings.first_backoff;
            }
            slot.crashes.push_back(now);
            while slot
                .crashes
                .front()
                .is_some_and(|t| now.duration_since(*t) > settings.crash_window)
            {
                slot.crashes.pop_front();
            }
            if slot.crashes.len() as u32 > settings.max_crashes {
                log::error!(
                    "{} exited unexpectedly ({how}) {} times within {:?}: giving up on it",
                    slot.name,
                    slot.crashes.len(),
                    settings.crash_window
                );
                slot.ended = Some(Ended::GaveUp {
                    crashes: slot.crashes.len() as u32,
                    last: how,
                });
                report(registry, &slot.name, WorkerState::GaveUp, None, None);
                return;
            }
            log::warn!(
                "{} exited unexpectedly ({how}); restarting in {:?}",
                slot.name,
                slot.backoff
            );
            slot.start_at = Some(now + slot.backoff);
            slot.backoff = (slot.backoff * 2).min(settings.max_backoff);
            report(registry, &slot.name, WorkerState::Restarting, None, None);
            return;
        }
        if stopping || slot.ended.is_some() {
            return;
        }
        if slot.start_at.is_some_and(|at| Instant::now() >= at) {
            slot.start_at = None;
            let started = start(slot, address, key, &settings, client, printer, shipper);
            match started {
                Ok(running) => {
                    if slot.started_once {
                        slot.restarts += 1;
                    }
                    slot.started_once = true;
                    report(
                        registry,
                        &slot.name,
                        WorkerState::Running,
                        Some(running.child.id()),
                        Some(slot.restarts),
                    );
                    slot.child = Some(running);
                }
                Err(e) => {
                    // Counts as a crash: retried with backoff, given up on eventually.
                    log::error!("could not start {}: {e}", slot.name);
                    let now = Instant::now();
                    slot.crashes.push_back(now);
                    if slot.crashes.len() as u32 > settings.max_crashes {
                        slot.ended = Some(Ended::GaveUp {
                            crashes: slot.crashes.len() as u32,
                            last: e.to_string(),
                        });
                        report(registry, &slot.name, WorkerState::GaveUp, None, None);
                    } else {
                        slot.start_at = Some(now + slot.backoff);
                        slot.backoff = (slot.backoff * 2).min(settings.max_backoff);
                    }
                }
            }
        }
    }
}

/// Starts the slot's process with its name, the manager's address and key in its
/// environment, and its output pumped to the printer and the shipper.
fn start(
    slot: &Slot,
    address: &Address,
    key: &[u8],
    settings: &SupervisorSettings,
    client: &Client,
    printer: Option<&Arc<Printer>>,
    shipper: Option<&Arc<Shipper>>,
) -> Result<Running> {
    // A stop message left from an earlier process of this name must not stop this one.
    if let Ok(control) = Mailbox::<Control>::open(client, &control_mailbox(&slot.name), 16) {
        while let Ok(Some(_)) = control.try_recv() {}
    }
    let mut command = slot.program.command();
    process_group::isolate(&mut command);
    command
        .env(ADDRESS_VAR, address.to_string())
        .env(WORKER_VAR, &slot.name)
        .env(HEARTBEAT_VAR, settings.heartbeat.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        command.env(AUTHKEY_VAR, OsStr::from_bytes(key));
    }
    #[cfg(not(unix))]
    command.env(AUTHKEY_VAR, String::from_utf8_lossy(key).as_ref());
    // Programs in other languages find the door they speak.
    if let Ok(doors) = client.doors() {
        for (door, var) in [
            ("python", PYTHON_ADDRESS_VAR),
            ("msgpack-rpc", MSGPACK_ADDRESS_VAR),
        ] {
            if let Some((_, address)) = doors.iter().find(|(name, _)| name == door) {
                command.env(var, address);
            }
        }
    }
    let mut child = command.spawn().map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("starting {:?}: {e}", slot.program.program),
        ))
    })?;
    let mut pumps = Vec::new();
    let sink = || Sink {
        name: slot.name.clone(),
        index: slot.index,
        printer: printer.cloned(),
        shipper: shipper.cloned(),
    };
    if let Some(stdout) = child.stdout.take() {
        let sink = sink();
        pumps.push(spawn_pump(&slot.name, move || {
            pump(stdout, LogStream::Stdout, &sink)
        })?);
    }
    if let Some(stderr) = child.stderr.take() {
        let sink = sink();
        pumps.push(spawn_pump(&slot.name, move || {
            pump(stderr, LogStream::Stderr, &sink)
        })?);
    }
    log::info!("started {} (pid {})", slot.name, child.id());
    Ok(Running {
        group: ProcessGroup::of(&child),
        child,
        started: Instant::now(),
        pumps,
        status: None,
    })
}

fn spawn_pump(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    Ok(std::thread::Builder::new()
        .name(format!("monogusa-output-{name}"))
        .stack_size(256 * 1024)
        .spawn(f)?)
}

/// Sets a worker's state in the registry (errors are logged: the manager may be gone).
fn report(
    registry: &Registry,
    name: &str,
    state: WorkerState,
    pid: Option<u32>,
    restarts: Option<u32>,
) {
    let result = registry.report(&WorkerReport {
        name: name.to_string(),
        state: Some(state),
        pid,
        restarts,
        host: pid.map(|_| super::host_name()),
        supervised: true,
        ..WorkerReport::default()
    });
    if let Err(e) = result {
        log::debug!("could not report {name}'s state: {e}");
    }
}

/// Stop signals (SIGINT and SIGTERM; Ctrl-C, Ctrl-Break and console close on Windows),
/// turned into stop requests while a supervisor runs: the first stops, a second kills.
fn watch_signals(stop: &Arc<AtomicUsize>) -> Result<crate::stop_signals::StopSignals> {
    let stop = Arc::clone(stop);
    let watch =
        crate::stop_signals::StopSignals::watch("monogusa-supervisor-signals", move |signal| {
            let was = stop.fetch_add(1, Ordering::SeqCst);
            if was == 0 {
                log::info!("{signal}: stopping workers (again to kill them)");
            } else {
                log::warn!("{signal} again: killing workers");
            }
        })?;
    Ok(watch)
}
