//! Windows named pipes (`\\.\pipe\NAME`) with what sockets have: read and write timeouts, a
//! shutdown any thread may call, and a look at queued input that never blocks.
//!
//! Every handle is opened for overlapped I/O. A read or write starts the operation, waits on
//! its event for at most the timeout, and cancels it when the time is up; it always waits
//! for the operation to finish before returning, so the buffer and the `OVERLAPPED` it
//! lent to Windows are never used after the call (the invariant that keeps this sound).
//!
//! The listener keeps two instances waiting for clients, and replaces the one a client took
//! before handing it out: a burst of clients finds a free instance, or waits for one with
//! `WaitNamedPipe` instead of failing with "all pipe instances are busy".

use std::io;
use std::net::Shutdown;
use std::os::windows::io::OwnedHandle;
use std::ptr::{null, null_mut};
use std::sync::Mutex;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_IO_PENDING, ERROR_NO_DATA,
    ERROR_OPERATION_ABORTED, ERROR_PIPE_BUSY, ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED,
    ERROR_SEM_TIMEOUT, GENERIC_READ, GENERIC_WRITE, GetLastError, HANDLE, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, OPEN_EXISTING,
    PIPE_ACCESS_DUPLEX, ReadFile, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT, WriteFile,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, GetNamedPipeClientProcessId,
    PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES,
    PIPE_WAIT, PeekNamedPipe, WaitNamedPipeW,
};
use windows_sys::Win32::System::Threading::{
    SetEvent, WaitForMultipleObjects, WaitForSingleObject,
};

use crate::handle::{Event, owned, raw, wait_millis, wide};
use crate::security::Security;

/// The prefix every local pipe name has.
pub const PREFIX: &str = r"\\.\pipe\";

/// The kernel's buffer for each direction of a pipe instance.
const BUFFER_SIZE: u32 = 64 << 10;

/// "No timeout", stored in an `AtomicU64` of milliseconds.
const NO_TIMEOUT: u64 = u64::MAX;

/// The full `\\.\pipe\NAME` path of a pipe name (given with or without the prefix).
pub fn full_path(name: &str) -> String {
    if name.starts_with(PREFIX) {
        name.to_string()
    } else {
        format!("{PREFIX}{name}")
    }
}

/// One overlapped operation's `OVERLAPPED` (boxed, so its address stays put while Windows
/// holds it) and the event it signals.
struct Slot {
    overlapped: Box<OVERLAPPED>,
    event: Event,
}

// SAFETY: the `OVERLAPPED` holds only an event handle and counters; it is used by one thread
// at a time (each slot sits behind a mutex, or is owned by the listener's single waiter).
unsafe impl Send for Slot {}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("event", &self.event).finish()
    }
}

impl Slot {
    fn new() -> io::Result<Slot> {
        Ok(Slot {
            overlapped: Box::default(),
            event: Event::new()?,
        })
    }

    /// A fresh `OVERLAPPED` for the next operation, pointing at this slot's event.
    fn prepare(&mut self) -> *mut OVERLAPPED {
        *self.overlapped = OVERLAPPED {
            hEvent: self.event.raw(),
            ..OVERLAPPED::default()
        };
        &mut *self.overlapped
    }

    /// The address Windows knows this slot's operations by, for `CancelIoEx`.
    fn key(&self) -> usize {
        &*self.overlapped as *const OVERLAPPED as usize
    }
}

/// How an overlapped operation ended.
enum Outcome {
    /// It completed, moving this many bytes.
    Done(u32),
    /// The timeout passed and it was cancelled after moving this many bytes.
    TimedOut(u32),
    /// Somebody cancelled it (a shutdown) after it moved this many bytes.
    Cancelled(u32),
}

/// Runs one overlapped operation on `handle` through `slot`: `start` issues it, `started`
/// runs once it is pending and may ask for it to be cancelled at once; then this waits up to
/// `timeout`. It never returns while the operation is still pending.
///
/// `start` must issue exactly one overlapped call on `handle` with the `OVERLAPPED` it is
/// given, on buffers that outlive this call.
fn run(
    handle: HANDLE,
    slot: &mut Slot,
    timeout: Option<Duration>,
    started: impl FnOnce() -> bool,
    start: impl FnOnce(*mut OVERLAPPED) -> i32,
) -> io::Result<Outcome> {
    let overlapped = slot.prepare();
    // The bytes moved, and the error the operation ended with, if any: a cancelled
    // operation may have moved some before it stopped.
    let finish = |wait: bool| -> (u32, Option<io::Error>) {
        let mut moved = 0u32;
        // SAFETY: `overlapped` is the live slot this operation was issued with.
        let ok = unsafe { GetOverlappedResult(handle, overlapped, &mut moved, wait.into()) };
        (moved, (ok == 0).then(io::Error::last_os_error))
    };
    if start(overlapped) != 0 {
        return match finish(false) {
            (moved, None) => Ok(Outcome::Done(moved)),
            (_, Some(e)) => Err(e),
        };
    }
    // SAFETY: reads the calling thread's last error; no arguments.
    let error = unsafe { GetLastError() };
    if error != ERROR_IO_PENDING {
        return Err(io::Error::from_raw_os_error(error as i32));
    }
    let cancel = || {
        // SAFETY: cancels only the operation issued with `overlapped`, if still pending.
        unsafe { CancelIoEx(handle, overlapped) };
    };
    if started() {
        cancel();
    }
    // SAFETY: waits on the slot's own event, a valid handle.
    let waited = unsafe { WaitForSingleObject(slot.event.raw(), wait_millis(timeout)) };
    let timed_out = waited == WAIT_TIMEOUT;
    if waited != WAIT_OBJECT_0 {
        // Timed out, or the wait itself failed: either way the operation must end before
        // its buffer is given back.
        cancel();
    }
    match finish(true) {
        (moved, None) => Ok(Outcome::Done(moved)),
        (moved, Some(e)) if os_error(&e) == Some(ERROR_OPERATION_ABORTED) => Ok(if timed_out {
            Outcome::TimedOut(moved)
        } else {
            Outcome::Cancelled(moved)
        }),
        (_, Some(e)) => Err(e),
    }
}

fn os_error(error: &io::Error) -> Option<u32> {
    error.raw_os_error().map(|code| code as u32)
}

/// Whether an error means the other end has closed the pipe.
fn is_closed(error: &io::Error) -> bool {
    matches!(
        os_error(error),
        Some(ERROR_BROKEN_PIPE | ERROR_PIPE_NOT_CONNECTED | ERROR_NO_DATA)
    )
}

fn load_timeout(value: &AtomicU64) -> Option<Duration> {
    match value.load(SeqCst) {
        NO_TIMEOUT => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

fn store_timeout(value: &AtomicU64, timeout: Option<Duration>) -> io::Result<()> {
    let ms = match timeout {
        None => NO_TIMEOUT,
        Some(t) if t.is_zero() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero timeout is not allowed",
            ));
        }
        Some(t) => (t.as_nanos().div_ceil(1_000_000) as u64).min(NO_TIMEOUT - 1),
    };
    value.store(ms, SeqCst);
    Ok(())
}

/// One end of a connected named pipe, readable and writable through `&self` by several
/// threads at once (one reader and one writer at a time each).
#[derive(Debug)]
pub struct PipeStream {
    handle: OwnedHandle,
    server: bool,
    reader: Mutex<Slot>,
    /// The reader slot's `OVERLAPPED` address: a shutdown cancels reads by it.
    read_key: usize,
    writer: Mutex<Slot>,
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    read_shut: AtomicBool,
    write_shut: AtomicBool,
}

/// What is waiting in a pipe, seen without reading or waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// This many bytes can be read now (0: none yet).
    Bytes(usize),
    /// The other end has closed; nothing more will come.
    Closed,
}

impl PipeStream {
    fn new(handle: OwnedHandle, server: bool) -> io::Result<PipeStream> {
        let reader = Slot::new()?;
        let read_key = reader.key();
        Ok(PipeStream {
            handle,
            server,
            reader: Mutex::new(reader),
            read_key,
            writer: Mutex::new(Slot::new()?),
            read_timeout: AtomicU64::new(NO_TIMEOUT),
            write_timeout: AtomicU64::new(NO_TIMEOUT),
            read_shut: AtomicBool::new(false),
            write_shut: AtomicBool::new(false),
        })
    }

    /// Connects to the pipe `name` (`NAME` or `\\.\pipe\NAME`). While every instance is busy
    /// it waits for a free one, for at most `timeout` (`None`: without limit).
    pub fn connect(name: &str, timeout: Option<Duration>) -> io::Result<PipeStream> {
        let path = full_path(name);
        let wide_path = wide(&path)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // SAFETY: `wide_path` is a NUL-terminated UTF-16 string that outlives the call;
            // no security attributes, no template.
            let handle = unsafe {
                CreateFileW(
                    wide_path.as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    0,
                    null(),
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                    null_mut(),
                )
            };
            let error = match owned(handle) {
                Ok(handle) => return PipeStream::new(handle, false),
                Err(e) => e,
            };
            match os_error(&error) {
                Some(ERROR_FILE_NOT_FOUND) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no pipe named {path} (is the manager running?)"),
                    ));
                }
                Some(ERROR_PIPE_BUSY) => {}
                _ => return Err(error),
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "every instance of the pipe {path} stayed busy for {} ms",
                        timeout.unwrap_or_default().as_millis()
                    ),
                ));
            }
            // Wait in steps of at most a second, so a listener that went away is noticed.
            let step = left.map_or(Duration::from_secs(1), |l| l.min(Duration::from_secs(1)));
            // SAFETY: `wide_path` is NUL-terminated and outlives the call.
            if unsafe { WaitNamedPipeW(wide_path.as_ptr(), wait_millis(Some(step))) } == 0 {
                let error = io::Error::last_os_error();
                match os_error(&error) {
                    Some(ERROR_SEM_TIMEOUT) => {}
                    Some(ERROR_FILE_NOT_FOUND) => continue, // reported by the next try
                    _ => return Err(error),
                }
            }
        }
    }

    /// Whether this is the manager's end.
    pub fn is_server(&self) -> bool {
        self.server
    }

    /// The process id of the client at the other end, on the manager's end.
    pub fn client_process_id(&self) -> Option<u32> {
        if !self.server {
            return None;
        }
        let mut pid = 0;
        // SAFETY: a valid pipe handle and a place for the id.
        let ok = unsafe { GetNamedPipeClientProcessId(raw(&self.handle), &mut pid) };
        (ok != 0).then_some(pid)
    }

    /// Sets the limit for each read; `None` waits without limit. A zero duration is refused,
    /// as std's sockets refuse it.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        store_timeout(&self.read_timeout, timeout)
    }

    /// Sets the limit for each write; `None` waits without limit.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        store_timeout(&self.write_timeout, timeout)
    }

    /// Reads what is there, waiting for at least a byte up to the read timeout (then an
    /// error of kind `TimedOut`). `Ok(0)` at the end: the other end closed, or this end was
    /// shut for reading.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.read_shut.load(SeqCst) {
            return Ok(0);
        }
        let handle = raw(&self.handle);
        let len = buf.len().min(u32::MAX as usize) as u32;
        let mut slot = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = run(
            handle,
            &mut slot,
            load_timeout(&self.read_timeout),
            || self.read_shut.load(SeqCst),
            |overlapped| {
                // SAFETY: `buf` is valid for `len` bytes and outlives `run`, which waits for
                // the read to finish.
                unsafe { ReadFile(handle, buf.as_mut_ptr(), len, null_mut(), overlapped) }
            },
        );
        match outcome {
            Ok(Outcome::Done(n) | Outcome::Cancelled(n)) => Ok(n as usize),
            Ok(Outcome::TimedOut(0)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "reading the pipe timed out",
            )),
            Ok(Outcome::TimedOut(n)) => Ok(n as usize),
            Err(e) if is_closed(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes what the pipe takes before the write timeout (then an error of kind
    /// `TimedOut` if it took nothing).
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_within(buf, load_timeout(&self.write_timeout))
    }

    /// Writes what fits without waiting; `Ok(0)` when nothing fits now.
    pub fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        match self.write_within(buf, Some(Duration::ZERO)) {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(0),
            other => other,
        }
    }

    fn write_within(&self, buf: &[u8], timeout: Option<Duration>) -> io::Result<usize> {
        if self.write_shut.load(SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the pipe was shut for writing",
            ));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let handle = raw(&self.handle);
        let len = buf.len().min(u32::MAX as usize) as u32;
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = run(
            handle,
            &mut slot,
            timeout,
            || false,
            |overlapped| {
                // SAFETY: `buf` is valid for `len` bytes and outlives `run`, which waits for
                // the write to finish.
                unsafe { WriteFile(handle, buf.as_ptr(), len, null_mut(), overlapped) }
            },
        );
        match outcome {
            Ok(Outcome::Done(n)) => Ok(n as usize),
            Ok(Outcome::TimedOut(0)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "writing the pipe timed out",
            )),
            Ok(Outcome::TimedOut(n) | Outcome::Cancelled(n)) if n > 0 => Ok(n as usize),
            Ok(Outcome::TimedOut(_) | Outcome::Cancelled(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the pipe was shut",
            )),
            Err(e) if is_closed(&e) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the other end closed the pipe",
            )),
            Err(e) => Err(e),
        }
    }

    /// What is waiting to be read, without reading it or waiting.
    pub fn queued(&self) -> io::Result<Queued> {
        let mut available = 0u32;
        // SAFETY: a valid pipe handle; no buffer, only the count is asked for.
        let ok = unsafe {
            PeekNamedPipe(
                raw(&self.handle),
                null_mut(),
                0,
                null_mut(),
                &mut available,
                null_mut(),
            )
        };
        if ok != 0 {
            return Ok(Queued::Bytes(available as usize));
        }
        let error = io::Error::last_os_error();
        if is_closed(&error) {
            Ok(Queued::Closed)
        } else {
            Err(error)
        }
    }

    /// Shuts this end like a socket: `Read` ends reads here (a read waiting now returns
    /// `Ok(0)`), `Write` refuses further writes (what was written stays readable by the
    /// other end), `Both` also cancels what is in flight and, on the manager's end,
    /// disconnects the client at once.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let handle = raw(&self.handle);
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.write_shut.store(true, SeqCst);
        }
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            // Raised before cancelling: a read that starts after the cancel sees it (see
            // `run`'s `started`).
            self.read_shut.store(true, SeqCst);
            // SAFETY: cancels only the read issued with the reader slot's `OVERLAPPED`, if
            // one is pending; the address is used as a key, not read.
            unsafe { CancelIoEx(handle, self.read_key as *const OVERLAPPED) };
        }
        if how == Shutdown::Both {
            // SAFETY: cancels whatever is pending on our own handle.
            unsafe { CancelIoEx(handle, null()) };
            if self.server {
                // SAFETY: our own server-end handle.
                unsafe { DisconnectNamedPipe(handle) };
            }
        }
        Ok(())
    }
}

/// Who may open a pipe the manager listens on: always the user it runs as, and, if named,
/// the members of one group (a name like `Users` or `DOMAIN\group`, or a SID `S-1-…`).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// A group whose members may connect too.
    pub group: Option<String>,
}

/// A manager's listening pipe.
#[derive(Debug)]
pub struct PipeListener {
    path: String,
    wide_path: Vec<u16>,
    security: Security,
    waiting: Mutex<[Waiting; 2]>,
}

/// One instance of the pipe, waiting for a client.
#[derive(Debug)]
struct Waiting {
    handle: Option<OwnedHandle>,
    slot: Slot,
    /// A client connected before `ConnectNamedPipe` was called: no operation is pending,
    /// and the `OVERLAPPED` holds no result (Wine leaves it marked pending).
    early: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.early {
            return; // nothing pending
        }
        if let Some(handle) = &self.handle {
            let handle = raw(handle);
            let mut moved = 0;
            // SAFETY: cancels this instance's pending connect, then waits for it to end so
            // the `OVERLAPPED` is no longer Windows' when the slot is freed.
            unsafe {
                CancelIoEx(handle, &*self.slot.overlapped);
                GetOverlappedResult(handle, &*self.slot.overlapped, &mut moved, 1);
            }
        }
    }
}

impl PipeListener {
    /// Creates the pipe `name` (`NAME` or `\\.\pipe\NAME`) for the current user (and
    /// `access.group`). Refused with `AddrInUse` if the name is taken, by another manager
    /// or by any other process: the first instance is created with
    /// `FILE_FLAG_FIRST_PIPE_INSTANCE`, so nobody can squat the name and have our clients
    /// connect to them.
    pub fn bind(name: &str, access: &Access) -> io::Result<PipeListener> {
        let path = full_path(name);
        if path.len() > 256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the pipe name {path} is longer than Windows' 256 characters"),
            ));
        }
        let wide_path = wide(&path)?;
        let security = Security::for_current_user(access.group.as_deref())?;
        let in_use = || {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "the pipe {path} already exists: another manager, or another process, \
                     holds its name"
                ),
            )
        };
        // Asked first, without connecting: Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE, and
        // this catches a live owner there too. The flag below closes the race on Windows.
        // SAFETY: `wide_path` is NUL-terminated and outlives the call.
        if unsafe { WaitNamedPipeW(wide_path.as_ptr(), 1) } != 0
            || os_error(&io::Error::last_os_error()) != Some(ERROR_FILE_NOT_FOUND)
        {
            return Err(in_use());
        }
        let first = create_instance(&wide_path, &security, true).map_err(|e| {
            if os_error(&e) == Some(ERROR_ACCESS_DENIED) {
                in_use()
            } else {
                e
            }
        })?;
        let first = Waiting::start(first)?;
        let second = Waiting::start(create_instance(&wide_path, &security, false)?)?;
        Ok(PipeListener {
            path,
            wide_path,
            security,
            waiting: Mutex::new([first, second]),
        })
    }

    /// The pipe's full path, `\\.\pipe\NAME`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits for the next client. The instance it took is replaced before this returns, so
    /// two always wait.
    pub fn accept(&self) -> io::Result<PipeStream> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let events = [waiting[0].slot.event.raw(), waiting[1].slot.event.raw()];
            // SAFETY: two valid event handles, in an array that outlives the call.
            let woke = unsafe { WaitForMultipleObjects(2, events.as_ptr(), 0, u32::MAX) };
            let index = woke.wrapping_sub(WAIT_OBJECT_0) as usize;
            if index > 1 {
                return Err(io::Error::last_os_error());
            }
            let connected = waiting[index].connected();
            let fresh = Waiting::start(create_instance(&self.wide_path, &self.security, false)?)?;
            let mut taken = std::mem::replace(&mut waiting[index], fresh);
            match connected {
                Ok(()) => {
                    let handle = taken
                        .handle
                        .take()
                        .expect("a waiting instance has a handle");
                    return PipeStream::new(handle, true);
                }
                // A client that came and went before we looked: its instance is dropped,
                // and the fresh one waits in its place.
                Err(e) if is_closed(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Waiting {
    /// Starts waiting for a client on `handle`.
    fn start(handle: OwnedHandle) -> io::Result<Waiting> {
        let mut waiting = Waiting {
            handle: Some(handle),
            slot: Slot::new()?,
            early: false,
        };
        let raw_handle = raw(waiting.handle.as_ref().expect("just set"));
        let overlapped = waiting.slot.prepare();
        // SAFETY: the slot's `OVERLAPPED` is boxed and lives in `waiting`, whose `Drop`
        // cancels and waits for the connect before freeing it.
        if unsafe { ConnectNamedPipe(raw_handle, overlapped) } == 0 {
            // SAFETY: reads the calling thread's last error.
            match unsafe { GetLastError() } {
                ERROR_IO_PENDING => {}
                // A client connected between creation and now (and may have left again):
                // no completion will come, so signal the event ourselves.
                ERROR_PIPE_CONNECTED | ERROR_NO_DATA => {
                    waiting.early = true;
                    // SAFETY: the slot's own event.
                    unsafe { SetEvent(waiting.slot.event.raw()) };
                }
                error => return Err(io::Error::from_raw_os_error(error as i32)),
            }
        }
        Ok(waiting)
    }

    /// After its event fired: whether a client is connected.
    fn connected(&mut self) -> io::Result<()> {
        if self.early {
            // A client that already left shows as a connection that reads its end at once.
            return Ok(());
        }
        let handle = raw(self
            .handle
            .as_ref()
            .expect("a waiting instance has a handle"));
        let mut moved = 0;
        // SAFETY: the operation issued with this slot has completed (its event fired).
        let ok = unsafe { GetOverlappedResult(handle, &*self.slot.overlapped, &mut moved, 0) };
        if ok != 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        match os_error(&error) {
            Some(ERROR_PIPE_CONNECTED) => Ok(()),
            _ => Err(error),
        }
    }
}

/// Creates one instance of the pipe at `path`.
fn create_instance(path: &[u16], security: &Security, first: bool) -> io::Result<OwnedHandle> {
    let mut open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
    if first {
        open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
    }
    // SAFETY: `path` is NUL-terminated; the security attributes point into `security`,
    // which outlives the call.
    let handle = unsafe {
        CreateNamedPipeW(
            path.as_ptr(),
            open_mode,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            PIPE_UNLIMITED_INSTANCES,
            BUFFER_SIZE,
            BUFFER_SIZE,
            0,
            security.attributes(),
        )
    };
    owned(handle)
}
