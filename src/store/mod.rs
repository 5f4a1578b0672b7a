//! The built-in shared objects, like Python's `SyncManager` offers: opened by name from any
//! client (created on first use), stored encoded so the manager needs no user types, with
//! typed proxies on the client side.
//!
//! Each is a [`Service`] whose methods all take `&self` and synchronize inside, so a call
//! blocked in one (a `get` on an empty queue) holds only that object's own condition, never a
//! lock another call needs.

mod budget;
mod builtin;
mod bytes;
pub(crate) mod counter;
pub(crate) mod dict;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod queue;
pub(crate) mod signal;
pub(crate) mod value;

pub(crate) use budget::{Budget, StoreLimits};
pub(crate) use bytes::Bytes;

use std::sync::Arc;

use crate::error::{RemoteError, RemoteErrorKind, Result};
use crate::service::Service;
use crate::service::decode_args;

/// The most permits a semaphore, or parties a barrier, may have: far beyond any real use,
/// and far from the overflow of a counter.
const MAX_COUNT: u64 = 1 << 32;

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

/// Makes the manager's object of `kind` from its creation arguments; containers charge what
/// they hold to `budget`.
pub(crate) fn construct(
    kind: &str,
    args: &[u8],
    budget: &Arc<Budget>,
) -> Result<Box<dyn Service>, RemoteError> {
    let budget = Arc::clone(budget);
    match kind {
        counter::SERVICE => Ok(Box::new(counter::SharedCounter::default())),
        dict::SERVICE => Ok(Box::new(dict::SharedDict::new(budget))),
        queue::SERVICE => {
            let (capacity,): (u64,) = decode_args(args, "Queue", "new")?;
            Ok(Box::new(queue::SharedQueue::new(capacity, budget)?))
        }
        value::SERVICE => Ok(Box::new(value::SharedValue::new(budget))),
        list::SERVICE => Ok(Box::new(list::SharedList::new(budget))),
        lock::LOCK => Ok(Box::new(lock::SharedLock(lock::SharedSemaphore::new(
            1, "lock",
        )))),
        lock::SEMAPHORE => {
            let (permits,): (u64,) = decode_args(args, "Semaphore", "new")?;
            check_count("semaphore's permits", permits)?;
            Ok(Box::new(lock::SharedSemaphore::new(permits, "semaphore")))
        }
        signal::EVENT => Ok(Box::new(signal::SharedEvent::default())),
        signal::BARRIER => {
            let (parties,): (u64,) = decode_args(args, "Barrier", "new")?;
            check_count("barrier's parties", parties)?;
            Ok(Box::new(signal::SharedBarrier::new(parties)))
        }
        other => Err(RemoteError::new(
            RemoteErrorKind::UnknownType,
            format!("no built-in shared object of kind {other:?}"),
        )),
    }
}
