//! The client's side of what the manager keeps about workers: the registry (reports and the
//! list `monogusa stat` shows) and the log buffer (`monogusa logs`).

use std::time::Duration;

use super::{LogLine, LogPage, ShippedLine, WorkerReport, WorkerStatus};
use crate::client::Client;
use crate::error::Result;
use crate::kinds::workers::WorkersKindClient;
use crate::store::{logs, workers};
use crate::stub::ObjectHandle;

/// The names the manager keeps them under (one of each per manager).
const LOGS_NAME: &str = "monogusa.logs";
/// Their type tag: the version of the records they hold.
const TAG: &str = crate::kinds::workers::REGISTRY_TAG;
use crate::kinds::workers::REGISTRY_NAME;

/// The registry, for reports.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    handle: ObjectHandle,
}

impl Registry {
    pub(crate) fn open(client: &Client) -> Result<Self> {
        let handle = ObjectHandle::open_shared(client, workers::SERVICE, REGISTRY_NAME, TAG, &())?;
        Ok(Registry { handle })
    }

    /// By name, as declared: a report is sent borrowed (the stub would take it owned).
    pub(crate) fn report(&self, report: &WorkerReport) -> Result<()> {
        self.handle.call("report", &(report,))
    }

    /// The declaration's typed stub over the registry.
    fn stub(&self) -> WorkersKindClient<&ObjectHandle> {
        WorkersKindClient::from_handle(&self.handle)
    }
}

/// The manager's log buffer: the last lines of every worker's output (1000 per worker), from
/// [`Client::logs`]. Supervisors and [`LogForwarder`](super::LogForwarder)s fill it.
#[derive(Debug, Clone)]
pub struct Logs {
    handle: ObjectHandle,
}

impl Logs {
    pub(crate) fn open(client: &Client) -> Result<Self> {
        let handle = ObjectHandle::open_shared(client, logs::SERVICE, LOGS_NAME, TAG, &())?;
        Ok(Logs { handle })
    }

    // By name, as declared: lines and names are sent borrowed (the stub would take them
    // owned, a copy of every line shipped).
    pub(crate) fn append(&self, lines: &[ShippedLine], dropped: &[(String, u64)]) -> Result<()> {
        self.handle.call("append", &(lines, dropped))
    }

    /// The last `lines` lines, of `worker` or of all, oldest first.
    pub fn tail(&self, lines: u32, worker: Option<&str>) -> Result<LogPage> {
        self.handle
            .call("read", &(None::<u64>, worker, lines, None::<u64>))
    }

    /// The lines numbered after `after` (at most `max`), of `worker` or of all, waiting up to
    /// `timeout` for one to arrive (an empty page if none did).
    pub fn after(
        &self,
        after: u64,
        worker: Option<&str>,
        max: u32,
        timeout: Duration,
    ) -> Result<LogPage> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.handle
            .call("read", &(Some(after), worker, max, Some(timeout_ms)))
    }

    /// Every line after `after` as it arrives, for ever (what `monogusa logs --follow`
    /// prints); an error is yielded once, then the iterator ends.
    pub fn follow<'a>(
        &'a self,
        mut after: u64,
        worker: Option<&'a str>,
    ) -> impl Iterator<Item = Result<LogLine>> + 'a {
        let mut page = std::collections::VecDeque::new();
        let mut failed = false;
        std::iter::from_fn(move || {
            loop {
                if let Some(line) = page.pop_front() {
                    return Some(Ok(line));
                }
                if failed {
                    return None;
                }
                match self.after(after, worker, 1000, Duration::from_secs(1)) {
                    Ok(next) => {
                        after = next.next;
                        page.extend(next.lines);
                    }
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                }
            }
        })
    }
}

/// What the manager keeps about workers.
impl Client {
    /// Every worker the manager knows of, by name: state, pid, restarts, heartbeat age,
    /// tasks done and failed.
    pub fn workers(&self) -> Result<Vec<WorkerStatus>> {
        Registry::open(self)?.stub().list()
    }

    /// Workers that ended or were lost longer ago than the manager's
    /// [`forget_workers_after`](crate::ManagerBuilder::forget_workers_after), most recent
    /// first (the last 32): no longer in [`Client::workers`].
    pub fn workers_gone(&self) -> Result<Vec<WorkerStatus>> {
        Registry::open(self)?.stub().gone()
    }

    /// Forgets the worker `name` (an ended one, say); returns whether it was known.
    pub fn forget_worker(&self, name: &str) -> Result<bool> {
        Registry::open(self)?.stub().forget(name.to_string())
    }

    /// The manager's log buffer.
    pub fn logs(&self) -> Result<Logs> {
        Logs::open(self)
    }
}
