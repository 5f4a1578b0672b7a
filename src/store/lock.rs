//! The manager's side of `Lock` and `Semaphore`: the state, its limits and its methods (the
//! client's side is in `proxies`). Permits are held per connection and released by the manager
//! when the holding connection dies (Python's managers keep such a lock forever).

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::HashMap;

use super::builtin::{Waiting, builtin_methods, builtin_service, deadline, wait_while};
use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::{Caller, decode_args, encode_result};

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
