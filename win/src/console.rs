//! Ctrl-C, Ctrl-Break, console close, logoff and shutdown, delivered to every live
//! [`ConsoleWatch`] — what SIGINT and SIGTERM are on Unix.
//!
//! Windows calls the handler on a thread of its own. For Ctrl-C and Ctrl-Break the process
//! lives on; for close, logoff and shutdown Windows ends it when the handler returns, so the
//! handler waits (up to the few seconds Windows allows) until every watch is dropped, which
//! is when the manager has finished shutting down.

use std::fmt;
use std::io;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    GenerateConsoleCtrlEvent, SetConsoleCtrlHandler,
};

/// How long the handler holds the process open after a close event (Windows kills it after
/// about 5 s anyway).
const CLOSE_GRACE: Duration = Duration::from_millis(4500);

/// A console control event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Ctrl-C.
    CtrlC,
    /// Ctrl-Break.
    CtrlBreak,
    /// The console window is closing.
    Close,
    /// The user logs off.
    Logoff,
    /// The system shuts down.
    Shutdown,
}

impl fmt::Display for ConsoleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConsoleEvent::CtrlC => "Ctrl-C",
            ConsoleEvent::CtrlBreak => "Ctrl-Break",
            ConsoleEvent::Close => "console close",
            ConsoleEvent::Logoff => "logoff",
            ConsoleEvent::Shutdown => "system shutdown",
        })
    }
}

/// What a watch receives: an event, or `None` when closed.
type Message = Option<ConsoleEvent>;

#[derive(Default)]
struct Watchers {
    next_id: u64,
    live: Vec<(u64, Sender<Message>)>,
}

struct Registry {
    watchers: Mutex<Watchers>,
    /// Notified whenever a watch is dropped.
    dropped: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        watchers: Mutex::new(Watchers::default()),
        dropped: Condvar::new(),
    })
}

fn lock(registry: &Registry) -> MutexGuard<'_, Watchers> {
    registry.watchers.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the handler once per process.
fn install() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        // SAFETY: registers a handler that is an `extern "system"` fn valid for the whole
        // life of the process.
        if unsafe { SetConsoleCtrlHandler(Some(on_console_event), 1) } == 0 {
            Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(())
        }
    });
    (*result).map_err(io::Error::from_raw_os_error)
}

/// Runs on a thread Windows creates. Returns whether the event was handled (1): with no
/// watch alive it is not, and Windows applies its default (ending the process).
unsafe extern "system" fn on_console_event(kind: u32) -> i32 {
    let event = match kind {
        CTRL_C_EVENT => ConsoleEvent::CtrlC,
        CTRL_BREAK_EVENT => ConsoleEvent::CtrlBreak,
        CTRL_CLOSE_EVENT => ConsoleEvent::Close,
        CTRL_LOGOFF_EVENT => ConsoleEvent::Logoff,
        CTRL_SHUTDOWN_EVENT => ConsoleEvent::Shutdown,
        _ => return 0,
    };
    let registry = registry();
    let mut watchers = lock(registry);
    if watchers.live.is_empty() {
        return 0;
    }
    for (_, sender) in &watchers.live {
        let _ = sender.send(Some(event));
    }
    if matches!(event, ConsoleEvent::CtrlC | ConsoleEvent::CtrlBreak) {
        return 1;
    }
    // The process ends when we return: give the watchers their shutdown.
    let until = Instant::now() + CLOSE_GRACE;
    while !watchers.live.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        watchers = registry
            .dropped
            .wait_timeout(watchers, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    1
}

/// Receives console control events while it lives.
#[derive(Debug)]
pub struct ConsoleWatch {
    id: u64,
    receiver: Receiver<Message>,
    closer: Sender<Message>,
}

/// Ends a [`ConsoleWatch::recv`] waiting on another thread.
#[derive(Debug, Clone)]
pub struct ConsoleWatchCloser(Sender<Message>);

impl ConsoleWatchCloser {
    /// Makes the watch's `recv` return `None`.
    pub fn close(&self) {
        let _ = self.0.send(None);
    }
}

impl ConsoleWatch {
    /// Starts receiving events (installing the process's handler the first time).
    pub fn start() -> io::Result<ConsoleWatch> {
        install()?;
        let (sender, receiver) = channel();
        let mut watchers = lock(registry());
        let id = watchers.next_id;
        watchers.next_id += 1;
        watchers.live.push((id, sender.clone()));
        Ok(ConsoleWatch {
            id,
            receiver,
            closer: sender,
        })
    }

    /// Waits for the next event; `None` once closed.
    pub fn recv(&self) -> Option<ConsoleEvent> {
        self.receiver.recv().ok().flatten()
    }

    /// A handle that ends `recv` from another thread.
    pub fn closer(&self) -> ConsoleWatchCloser {
        ConsoleWatchCloser(self.closer.clone())
    }
}

impl Drop for ConsoleWatch {
    fn drop(&mut self) {
        let registry = registry();
        lock(registry).live.retain(|(id, _)| *id != self.id);
        registry.dropped.notify_all();
    }
}

/// Sends Ctrl-Break to the console process group `group` (a process started with
/// `CREATE_NEW_PROCESS_GROUP` leads a group whose id is its pid; 0 is every process on this
/// console, this one included): the Windows way to ask another process to stop.
pub fn send_ctrl_break(group: u32) -> io::Result<()> {
    // SAFETY: plain values; Windows checks the group.
    if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
