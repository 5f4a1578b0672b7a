//! The manager's side of `Lock` and `Semaphore`: the state, its limits and its methods (the
//! client's side is in `proxies`). Permits are held per connection and released by the manager
//! when the holding connection dies (Python's managers keep such a lock forever).

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::HashMap;

use super::waiting::{Waiting, deadline, wait_while};
use crate::error::{RemoteError, RemoteErrorKind, Result};
pub(crate) use crate::kinds::lock::{LOCK, LockKindServer, SEMAPHORE, SemaphoreKindServer};
use crate::kinds::lock::{LockKind, SemaphoreKind};
use crate::service::{Caller, Hooks};

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

/// A lock: a semaphore of one permit, under a service name of its own.
pub(crate) struct SharedLock(pub(crate) SharedSemaphore);

impl Hooks for SharedLock {
    fn shutdown(&self) {
        self.0.shutdown();
    }

    fn tracks_connections(&self) -> bool {
        true
    }

    fn connection_closed(&self, connection: u64) {
        self.0.connection_closed(connection);
    }
}

impl LockKind for SharedLock {
    fn acquire(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError> {
        SemaphoreKind::acquire(&self.0, timeout_ms, caller)
    }

    fn release(&self, caller: &Caller<'_>) -> Result<(), RemoteError> {
        SemaphoreKind::release(&self.0, caller)
    }

    fn available(&self) -> u64 {
        SemaphoreKind::available(&self.0)
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
}

impl SemaphoreKind for SharedSemaphore {
    fn acquire(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError> {
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
            *state.held.entry(caller.connection()).or_insert(0) += 1;
        }
        Ok(got)
    }

    fn release(&self, caller: &Caller<'_>) -> Result<(), RemoteError> {
        let holder = caller.connection();
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
        Ok(())
    }

    fn available(&self) -> u64 {
        self.state().available
    }
}

impl Hooks for SharedSemaphore {
    fn shutdown(&self) {
        self.state().closing = true;
        self.freed.notify_all();
    }

    fn tracks_connections(&self) -> bool {
        true
    }

    fn connection_closed(&self, connection: u64) {
        let mut state = self.state();
        if let Some(count) = state.held.remove(&connection) {
            state.available += count;
            self.freed.notify_all();
        }
    }
}
