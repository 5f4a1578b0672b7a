//! The built-in shared objects, like Python's `SyncManager` offers: opened by name from any
//! client (created on first use), stored encoded so the manager needs no user types, with
//! typed proxies on the client side.
//!
//! Each is a [`Service`] whose methods all take `&self` and synchronize inside, so a call
//! blocked in one (a `get` on an empty queue) holds only that object's own condition, never a
//! lock another call needs.

pub(crate) mod backend;
mod budget;
pub(crate) mod counter;
pub(crate) mod dict;
pub(crate) mod waiting;
// Without `durable` only the memory backend exists, and nothing commits.
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
pub(crate) mod journal;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod logs;
pub(crate) mod queue;
pub(crate) mod signal;
#[cfg(feature = "durable")]
mod sqlite;
pub(crate) mod tasks;
pub(crate) mod value;
pub(crate) mod workers;

pub(crate) use crate::kinds::Bytes;
pub(crate) use backend::Persist;
pub(crate) use budget::{Budget, StoreLimits};

use std::sync::Arc;

use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::Service;
use crate::service::decode_args;

/// The most permits a semaphore, or parties a barrier, may have: far beyond any real use,
/// and far from the overflow of a counter.
const MAX_COUNT: u64 = 1 << 32;

/// The error for a stored entry its kind cannot read (a damaged or foreign data file).
fn bad_entry(kind: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Misuse,
        format!("a stored entry of a {kind} does not decode"),
    )
}

/// A stored `u64` (8 bytes, little-endian).
fn stored_u64(kind: &str, bytes: &[u8]) -> Result<u64, RemoteError> {
    Ok(u64::from_le_bytes(
        bytes.try_into().map_err(|_| bad_entry(kind))?,
    ))
}

fn check_count(what: &str, count: u64) -> Result<(), RemoteError> {
    match count {
        0 => Err(RemoteError::new(
            RemoteErrorKind::BadArguments,
            format!("a {what} needs at least 1"),
        )),
        n if n > MAX_COUNT => Err(RemoteError::new(
            RemoteErrorKind::BadArguments,
            format!("a {what} of {n} is over the limit of {MAX_COUNT}"),
        )),
        _ => Ok(()),
    }
}

/// What a kept object held, as the entries its kind wrote (empty for a new object).
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Whether a durable store keeps objects of `kind` across restarts. Locks, semaphores,
/// events and barriers belong to live connections and start afresh.
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
pub(crate) fn is_kept(kind: &str) -> bool {
    matches!(
        kind,
        counter::SERVICE
            | dict::SERVICE
            | queue::SERVICE
            | value::SERVICE
            | list::SERVICE
            | tasks::SERVICE
    )
}

/// Makes the manager's object of `kind` from its creation arguments and what it held before
/// (`entries`, for an object restored from a data directory); containers charge what they
/// hold to `budget`, and kept kinds record their changes through `persist`.
pub(crate) fn construct(
    kind: &str,
    args: &[u8],
    budget: &Arc<Budget>,
    persist: Persist,
    entries: Entries,
) -> Result<Box<dyn Service>, RemoteError> {
    let budget = Arc::clone(budget);
    match kind {
        counter::SERVICE => Ok(Box::new(counter::CounterKindServer::new(
            counter::SharedCounter::new(persist, entries)?,
        ))),
        dict::SERVICE => Ok(Box::new(dict::DictKindServer::new(dict::SharedDict::new(
            budget, persist, entries,
        )?))),
        queue::SERVICE => {
            let (capacity,): (u64,) = decode_args(args, "Queue", "new")?;
            Ok(Box::new(queue::QueueKindServer::new(
                queue::SharedQueue::new(capacity, budget, persist, entries)?,
            )))
        }
        value::SERVICE => Ok(Box::new(value::ValueKindServer::new(
            value::SharedValue::new(budget, persist, entries)?,
        ))),
        list::SERVICE => Ok(Box::new(list::ListKindServer::new(list::SharedList::new(
            budget, persist, entries,
        )?))),
        tasks::SERVICE => {
            let settings = tasks::Settings::from_args(args)?;
            Ok(Box::new(tasks::TaskKindServer::new(
                tasks::SharedTasks::new(settings, budget, persist, entries)?,
            )))
        }
        workers::SERVICE => Ok(Box::new(workers::WorkersKindServer::new(
            workers::SharedWorkers::new(budget.limits.forget_workers_after, entries)?,
        ))),
        logs::SERVICE => Ok(Box::new(logs::LogsKindServer::new(logs::SharedLogs::new(
            entries,
        )?))),
        lock::LOCK => Ok(Box::new(lock::LockKindServer::new(lock::SharedLock(
            lock::SharedSemaphore::new(1, "lock"),
        )))),
        lock::SEMAPHORE => {
            let (permits,): (u64,) = decode_args(args, "Semaphore", "new")?;
            check_count("semaphore's permits", permits)?;
            Ok(Box::new(lock::SemaphoreKindServer::new(
                lock::SharedSemaphore::new(permits, "semaphore"),
            )))
        }
        signal::EVENT => Ok(Box::new(signal::EventKindServer::new(
            signal::SharedEvent::default(),
        ))),
        signal::BARRIER => {
            let (parties,): (u64,) = decode_args(args, "Barrier", "new")?;
            check_count("barrier's parties", parties)?;
            Ok(Box::new(signal::BarrierKindServer::new(
                signal::SharedBarrier::new(parties),
            )))
        }
        other => Err(RemoteError::new(
            RemoteErrorKind::UnknownType,
            format!("no built-in shared object of kind {other:?}"),
        )),
    }
}
