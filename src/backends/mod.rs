//! Where the objects live besides a manager, side by side, each small: `connect` (one way in,
//! `monogusa::connect(url)`, whatever holds the objects), `redis` and `sqs`. Each gives the
//! same typed proxies and task queues as a manager's objects, through the task queue's
//! `TaskBackend`/`LeaseOps` seam and the proxies' `Target`.

pub(crate) mod connect;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "sqs")]
pub(crate) mod sqs;
