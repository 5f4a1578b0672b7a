//! `Lock` on Redis: SET NX PX with a random token, released only by its holder (a
//! token-checked script), its lease renewed by a thread of the guard's while held.
//!
//! How this differs from the manager's lock: the manager frees a lock the moment its
//! holder's connection closes; Redis cannot see the holder, so a holder that dies keeps the
//! lock until its lease runs out (`LOCK_LEASE`), and not before. A holder that stalls longer
//! than the lease (its renewals stopped) loses the lock; its late release is ignored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{RedisStore, open_object, prefix, scripts};
use crate::error::{Error, Result};

/// How long a lock outlives a holder that stopped renewing it.
pub(crate) const LOCK_LEASE: Duration = Duration::from_secs(10);

/// How often a waiting acquire tries again.
const RETRY: Duration = Duration::from_millis(10);

/// A lock on Redis.
#[derive(Debug)]
pub(crate) struct RedisLock {
    store: Arc<RedisStore>,
    key: String,
    lease: Duration,
}

/// A held lock: renews its lease until dropped or released.
pub(crate) struct RedisGuard {
    lock: Arc<RedisLock>,
    token: String,
    stop: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    renewer: Option<JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGuard")
            .field("key", &self.lock.key)
            .finish()
    }
}

impl RedisLock {
    pub(crate) fn open(
        store: &Arc<RedisStore>,
        name: &str,
        lease: Option<Duration>,
    ) -> Result<Arc<RedisLock>> {
        open_object(store, name, crate::store::lock::LOCK, "")?;
        Ok(Arc::new(RedisLock {
            store: Arc::clone(store),
            key: format!("{}v", prefix(name)),
            lease: lease.unwrap_or(LOCK_LEASE).max(Duration::from_millis(30)),
        }))
    }

    /// Takes the lock, waiting up to `timeout` (forever if `None`).
    pub(crate) fn acquire(
        self: &Arc<Self>,
        timeout: Option<Duration>,
    ) -> Result<Option<RedisGuard>> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let deadline = timeout.map(|t| Instant::now() + t);
        let lease_ms = self.lease.as_millis() as u64;
        loop {
            let taken: u8 = self.store.run(|c| {
                scripts::LOCK_TAKE
                    .key(&self.key)
                    .arg(&token)
                    .arg(lease_ms)
                    .invoke(c)
            })?;
            if taken == 1 {
                return Ok(Some(self.guard(token)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(RETRY);
        }
    }

    fn guard(self: &Arc<Self>, token: String) -> RedisGuard {
        let stop = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let lock = Arc::clone(self);
            let token = token.clone();
            let stop = Arc::clone(&stop);
            let lost = Arc::clone(&lost);
            std::thread::Builder::new()
                .name("monogusa-redis-lock".into())
                .stack_size(128 * 1024)
                .spawn(move || {
                    let every = lock.lease / 3;
                    let lease_ms = lock.lease.as_millis() as u64;
                    let mut stopped = stop.0.lock();
                    while !*stopped {
                        stop.1.wait_for(&mut stopped, every);
                        if *stopped {
                            break;
                        }
                        let renewed: Result<u8> = lock.store.run(|c| {
                            scripts::LOCK_RENEW
                                .key(&lock.key)
                                .arg(&token)
                                .arg(lease_ms)
                                .invoke(c)
                        });
                        if let Ok(0) = renewed {
                            lost.store(true, Ordering::SeqCst);
                            log::warn!("the Redis lock {} was lost (its lease ran out)", lock.key);
                            break;
                        }
                    }
                })
                .ok()
        };
        RedisGuard {
            lock: Arc::clone(self),
            token,
            stop,
            renewer,
            lost,
        }
    }

    /// Whether someone holds it now.
    pub(crate) fn is_locked(&self) -> Result<bool> {
        self.store
            .run(|c| ::redis::cmd("EXISTS").arg(&self.key).query(c))
    }
}

impl RedisGuard {
    /// Releases (if still the holder); stops renewing either way.
    pub(crate) fn release(&mut self) -> Result<()> {
        {
            let mut stopped = self.stop.0.lock();
            if *stopped {
                return Ok(());
            }
            *stopped = true;
            self.stop.1.notify_all();
        }
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        let lock = &self.lock;
        let released: u8 = lock.store.run(|c| {
            scripts::LOCK_RELEASE
                .key(&lock.key)
                .arg(&self.token)
                .invoke(c)
        })?;
        if released == 0 && !self.lost.load(Ordering::SeqCst) {
            log::warn!(
                "the Redis lock {} was not ours any more at release",
                lock.key
            );
        }
        Ok(())
    }
}
