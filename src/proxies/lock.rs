//! The client's side of `Lock` and `Semaphore`: the typed proxy over an `ObjectHandle`. A guard
//! keeps the connection it acquired on, out of the pool, and releases over it: the manager
//! knows holders by connection, so a killed process's locks are freed when its connections
//! close.

use std::time::Duration;

use super::millis;
use crate::client::{Client, Connection};
use crate::error::Result;
use crate::store::lock::{LOCK, SEMAPHORE};
use crate::stub::ObjectHandle;

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
