//! `Lock` and `Semaphore`: held by a connection, released by their guard's drop, and by the
//! manager when the holding connection dies (Python's managers keep such a lock forever).
//!
//! A guard keeps the connection it acquired on, out of the client's pool, and releases over
//! it: the manager knows holders by connection, so a killed process's locks are freed when
//! its connections close.

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::HashMap;
use std::time::Duration;

use super::builtin::{Waiting, builtin_methods, builtin_service, deadline, millis, wait_while};
use crate::client::{Client, Connection};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::stub::ObjectHandle;

pub(crate) const LOCK: &str = "monogusa.Lock";
pub(crate) const SEMAPHORE: &str = "monogusa.Semaphore";

/// Permits by holding connection: a lock is a semaphore of one permit.
struct Permits {
    available: u64,
    held: HashMap<u64, u64>,
    closing: bool,
}

pub(crate) struct SharedSemaphore {
    state: Mutex<Permits>,
    freed: Condvar,
    what: &'static str,
}

builtin_methods!(
    /// The methods of `SharedSemaphore`.
    PermitMethod {
        Acquire = "acquire",
        Release = "release",
        Available = "available",
    }
);

builtin_service!(SharedSemaphore, SEMAPHORE, PermitMethod,
    tracks_connections: true
);

/// A lock: a semaphore of one permit, under a service name of its own.
pub(crate) struct SharedLock(pub(crate) SharedSemaphore);

builtin_service!(SharedLock, LOCK, PermitMethod,
    tracks_connections: true
);

impl SharedLock {
    fn dispatch(
        &self,
        method: PermitMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        self.0.dispatch(method, args, out, caller)
    }

    fn wake_all(&self) {
        self.0.wake_all();
    }

    fn forget(&self, connection: u64) {
        self.0.forget(connection);
    }
}

impl SharedSemaphore {
    pub(crate) fn new(permits: u64, what: &'static str) -> Self {
        SharedSemaphore {
            state: Mutex::new(Permits {
                available: permits,
                held: HashMap::new(),
                closing: false,
            }),
            freed: Condvar::new(),
            what,
        }
    }

    fn state(&self) -> MutexGuard<'_, Permits> {
        self.state.lock()
    }

    fn dispatch(
        &self,
        method: PermitMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let holder = caller.connection();
        match method {
            PermitMethod::Acquire => {
                let (timeout_ms,): (Option<u64>,) = decode_args(args, self.what, "acquire")?;
                let (mut state, got) = wait_while(
                    self.state(),
                    &self.freed,
                    Waiting {
                        deadline: deadline(timeout_ms),
                        what: self.what,
                        caller,
                    },
                    |s| s.closing,
                    |s| s.available == 0,
                    |_| {},
                )?;
                if got {
                    state.available -= 1;
                    *state.held.entry(holder).or_insert(0) += 1;
                }
                encode_result(&got, out)
            }
            PermitMethod::Release => {
                let mut state = self.state();
                let Some(count) = state.held.get_mut(&holder) else {
                    return Err(RemoteError::new(
                        RemoteErrorKind::Misuse,
                        format!("release of a {} this connection does not hold", self.what),
                    ));
                };
                *count -= 1;
                if *count == 0 {
                    state.held.remove(&holder);
                }
                state.available += 1;
                self.freed.notify_one();
                encode_result(&(), out)
            }
            PermitMethod::Available => encode_result(&self.state().available, out),
        }
    }

    fn wake_all(&self) {
        self.state().closing = true;
        self.freed.notify_all();
    }

    fn forget(&self, connection: u64) {
        let mut state = self.state();
        if let Some(count) = state.held.remove(&connection) {
            state.available += count;
            self.freed.notify_all();
        }
    }
}

/// A shared lock in the manager, opened by name with [`Client::lock`]. Mutual exclusion
/// between any threads and processes: each held guard is its own connection.
#[derive(Debug, Clone)]
pub struct Lock {
    handle: ObjectHandle,
}

/// A shared counting semaphore, opened by name with [`Client::semaphore`].
#[derive(Debug, Clone)]
pub struct Semaphore {
    handle: ObjectHandle,
}

/// Holds a [`Lock`] or a [`Semaphore`] permit; dropping it releases (errors ignored: if the
/// connection is gone, the manager has released already). [`Guard::release`] reports them.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct Guard {
    handle: ObjectHandle,
    connection: Option<Connection>,
}

impl Guard {
    /// Releases now, reporting any error.
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        if self.connection.is_none() {
            return Ok(()); // released already
        }
        let mut connection = self.connection.take();
        let result: Result<()> = self.handle.call_on(&mut connection, "release", &(), None);
        if let Some(connection) = connection {
            self.handle.client().give_back(connection);
        }
        result
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.release_inner() {
            log::debug!("releasing a shared lock: {e}");
        }
    }
}

/// Acquires over a connection of its own, which the guard then keeps.
fn acquire(handle: &ObjectHandle, timeout: Option<Duration>) -> Result<Option<Guard>> {
    let mut connection = None;
    let got: Result<bool> =
        handle.call_on(&mut connection, "acquire", &(timeout.map(millis),), None);
    match got {
        Ok(true) => Ok(Some(Guard {
            handle: handle.clone(),
            connection,
        })),
        other => {
            if let Some(connection) = connection {
                handle.client().give_back(connection);
            }
            other.map(|_| None)
        }
    }
}

impl Lock {
    pub(crate) fn open(client: &Client, name: &str) -> Result<Lock> {
        let handle = ObjectHandle::open_shared(client, LOCK, name, "", &())?;
        Ok(Lock { handle })
    }

    /// Waits until the lock is free and takes it.
    pub fn acquire(&self) -> Result<Guard> {
        acquire(&self.handle, None)?
            .ok_or_else(|| crate::Error::Protocol("a blocking acquire gave up".into()))
    }

    /// Takes the lock if it becomes free within `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Guard>> {
        acquire(&self.handle, Some(timeout))
    }

    /// Takes the lock if it is free now.
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        acquire(&self.handle, Some(Duration::ZERO))
    }

    /// Whether someone holds the lock now.
    pub fn is_locked(&self) -> Result<bool> {
        let available: u64 = self.handle.call("available", &())?;
        Ok(available == 0)
    }
}

impl Semaphore {
    pub(crate) fn open(client: &Client, name: &str, permits: u64) -> Result<Semaphore> {
        let handle = ObjectHandle::open_shared(client, SEMAPHORE, name, "", &(permits,))?;
        Ok(Semaphore { handle })
    }

    /// Waits for a permit and takes it.
    pub fn acquire(&self) -> Result<Guard> {
        acquire(&self.handle, None)?
            .ok_or_else(|| crate::Error::Protocol("a blocking acquire gave up".into()))
    }

    /// Takes a permit if one frees within `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Guard>> {
        acquire(&self.handle, Some(timeout))
    }

    /// How many permits are free now.
    pub fn available(&self) -> Result<u64> {
        self.handle.call("available", &())
    }
}
