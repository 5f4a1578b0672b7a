//! What key holders may keep in the store: bytes in all, bytes per item, items per container.
//! Every container charges what it holds to one budget shared by the manager's store and
//! refunds it when items leave (or the container is deleted), so no client, however
//! authenticated, can make the manager allocate until the system kills it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Bytes;
use crate::error::{RemoteError, RemoteErrorKind};

/// Bytes counted for each stored item beyond its encoding: its allocation, the container's
/// slot, a map's node share. An estimate, so that a million empty items are not free.
const ITEM_OVERHEAD: u64 = 48;

/// The store's limits (see the `ManagerBuilder` methods that set them).
#[derive(Debug, Clone)]
pub(crate) struct StoreLimits {
    pub(crate) max_objects: usize,
    pub(crate) max_bytes: u64,
    pub(crate) max_item_bytes: usize,
    pub(crate) max_items: usize,
    /// How long a worker that ended (or was lost) stays in the registry's list before it
    /// moves to the recently-gone list.
    pub(crate) forget_workers_after: std::time::Duration,
    /// How long a task queue remembers a task done, with its result (zero: not at all).
    pub(crate) result_ttl: std::time::Duration,
    /// Where the store's time comes from (task queues' delays, leases, backoff, results).
    pub(crate) clock: crate::clock::Clock,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_objects: 100_000,
            max_bytes: 512 << 20,
            max_item_bytes: 16 << 20,
            max_items: 1_000_000,
            forget_workers_after: std::time::Duration::from_secs(60),
            result_ttl: std::time::Duration::from_secs(24 * 3600),
            clock: crate::clock::Clock::system(),
        }
    }
}

/// The limits and the bytes held now, shared by every built-in object of one manager.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    used: AtomicU64,
    pub(crate) limits: StoreLimits,
}

fn exceeded(message: String) -> RemoteError {
    RemoteError::new(RemoteErrorKind::LimitExceeded, message)
}

impl Budget {
    pub(crate) fn new(limits: StoreLimits) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicU64::new(0),
            limits,
        })
    }

    /// What storing `item` costs, once it is known not to be too large on its own.
    pub(crate) fn cost_of(&self, item: &Bytes) -> Result<u64, RemoteError> {
        let len = item.0.len();
        if len > self.limits.max_item_bytes {
            return Err(exceeded(format!(
                "an item of {len} bytes is over the store's limit of {} bytes per item",
                self.limits.max_item_bytes
            )));
        }
        Ok(len as u64 + ITEM_OVERHEAD)
    }

    /// Whether a container may grow to `len` items.
    pub(crate) fn check_len(&self, len: usize, what: &str) -> Result<(), RemoteError> {
        if len > self.limits.max_items {
            return Err(exceeded(format!(
                "the {what} is full: the store's limit is {} items per container",
                self.limits.max_items
            )));
        }
        Ok(())
    }

    /// Takes `bytes` from the budget, or refuses and takes nothing.
    pub(crate) fn charge(&self, bytes: u64) -> Result<(), RemoteError> {
        let max = self.limits.max_bytes;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= max)
            })
            .map(|_| ())
            .map_err(|used| {
                exceeded(format!(
                    "the store holds {used} bytes; {bytes} more would pass its limit of {max}"
                ))
            })
    }

    pub(crate) fn refund(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes held by the store now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// What one container has charged, refunded when it is dropped (deleted, or the manager
/// ends). Kept beside the container's items, under the same lock.
#[derive(Debug)]
pub(crate) struct Charged {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Charged {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Charged { budget, bytes: 0 }
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Charges for `item` coming in (refusing it if over a limit).
    pub(crate) fn take(&mut self, item: &Bytes) -> Result<(), RemoteError> {
        let cost = self.budget.cost_of(item)?;
        self.budget.charge(cost)?;
        self.bytes += cost;
        Ok(())
    }

    /// Charges for two items at once (a key and its value): both or neither.
    pub(crate) fn take_pair(&mut self, a: &Bytes, b: &Bytes) -> Result<(), RemoteError> {
        let cost = self.budget.cost_of(a)? + self.budget.cost_of(b)?;
        self.budget.charge(cost)?;
        self.bytes += cost;
        Ok(())
    }

    /// Charges for `item` coming back (a transaction undone): never refused, as it held its
    /// place before.
    pub(crate) fn force(&mut self, item: &Bytes) {
        self.force_len(item.0.len() as u64 + ITEM_OVERHEAD);
    }

    /// Refunds `item` going out.
    pub(crate) fn give(&mut self, item: &Bytes) {
        self.give_item(item.0.len());
    }

    /// Refunds an item of `len` bytes going out (when only its length is at hand: no copy).
    pub(crate) fn give_item(&mut self, len: usize) {
        let cost = (len as u64 + ITEM_OVERHEAD).min(self.bytes);
        self.budget.refund(cost);
        self.bytes -= cost;
    }

    /// Charges `bytes` of bookkeeping (a finished task's record), refused past the store's
    /// budget.
    pub(crate) fn take_len(&mut self, bytes: u64) -> Result<(), RemoteError> {
        self.budget.charge(bytes)?;
        self.bytes += bytes;
        Ok(())
    }

    /// Charges `bytes` of bookkeeping for a change that cannot be refused (it happened): the
    /// store may pass its budget by that much, and refuses what comes next.
    pub(crate) fn force_len(&mut self, bytes: u64) {
        self.budget.used.fetch_add(bytes, Ordering::AcqRel);
        self.bytes += bytes;
    }

    /// Refunds what [`Charged::take_len`] or [`Charged::force_len`] charged.
    pub(crate) fn give_len(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.budget.refund(bytes);
        self.bytes -= bytes;
    }

    /// Refunds everything (the container was emptied).
    pub(crate) fn give_all(&mut self) {
        self.budget.refund(self.bytes);
        self.bytes = 0;
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        self.give_all();
    }
}
