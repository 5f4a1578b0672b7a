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
    inner: LockInner,
}

#[derive(Debug, Clone)]
enum LockInner {
    Manager(ObjectHandle),
    #[cfg(feature = "redis")]
    Redis(std::sync::Arc<crate::backends::redis::RedisLock>),
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
    handle: Option<ObjectHandle>,
    connection: Option<Connection>,
    #[cfg(feature = "redis")]
    redis: Option<crate::backends::redis::RedisGuard>,
}

impl Guard {
    /// Releases now, reporting any error.
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        #[cfg(feature = "redis")]
        if let Some(mut redis) = self.redis.take() {
            return redis.release();
        }
        let Some(handle) = &self.handle else {
            return Ok(());
        };
        if self.connection.is_none() {
            return Ok(()); // released already
        }
        let mut connection = self.connection.take();
        let result: Result<()> = handle.call_on(&mut connection, "release", &(), None);
        if let Some(connection) = connection {
            handle.client().give_back(connection);
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
            handle: Some(handle.clone()),
            connection,
            #[cfg(feature = "redis")]
            redis: None,
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
        Ok(Lock {
            inner: LockInner::Manager(handle),
        })
    }

    /// A lock on Redis.
    #[cfg(feature = "redis")]
    pub(crate) fn on_redis(lock: std::sync::Arc<crate::backends::redis::RedisLock>) -> Lock {
        Lock {
            inner: LockInner::Redis(lock),
        }
    }

    fn acquire_within(&self, timeout: Option<Duration>) -> Result<Option<Guard>> {
        match &self.inner {
            LockInner::Manager(handle) => acquire(handle, timeout),
            #[cfg(feature = "redis")]
            LockInner::Redis(lock) => Ok(lock.acquire(timeout)?.map(|guard| Guard {
                handle: None,
                connection: None,
                redis: Some(guard),
            })),
        }
    }

    /// Waits until the lock is free and takes it.
    pub fn acquire(&self) -> Result<Guard> {
        self.acquire_within(None)?
            .ok_or_else(|| crate::Error::Protocol("a blocking acquire gave up".into()))
    }

    /// Takes the lock if it becomes free within `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Guard>> {
        self.acquire_within(Some(timeout))
    }

    /// Takes the lock if it is free now.
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        self.acquire_within(Some(Duration::ZERO))
    }

    /// Whether someone holds the lock now.
    pub fn is_locked(&self) -> Result<bool> {
        match &self.inner {
            LockInner::Manager(handle) => {
                let available: u64 = handle.call("available", &())?;
                Ok(available == 0)
            }
            #[cfg(feature = "redis")]
            LockInner::Redis(lock) => lock.is_locked(),
        }
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
