//! The log buffer: the last lines of every worker's output, numbered in arrival order.

#![allow(dead_code)] // generated items this kind's callers do not all use (constructors, senders)

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::RemoteError;
use crate::service::Caller;

/// The wire name of the kind.
pub(crate) const SERVICE: &str = LogsKindClient::SERVICE;

/// The methods of the log buffer.
#[crate::service(crate = "crate", name = "monogusa.Logs", hooks)]
pub(crate) trait LogsKind {
    /// Keeps `lines`, and what each shipper says it dropped.
    fn append(&self, lines: Vec<ShippedLine>, dropped: Vec<(String, u64)>);
    /// Lines numbered after `after` (the last `max` if `None`), of `source` or of all,
    /// waiting up to `timeout_ms` for the first when there are none yet.
    fn read(
        &self,
        after: Option<u64>,
        source: Option<String>,
        max: u32,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<LogPage, RemoteError>;
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A `log` record ([`LogForwarder`](crate::workers::LogForwarder)).
    Log,
}

/// A line on its way to the manager's log buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShippedLine {
    pub(crate) source: String,
    pub(crate) stream: LogStream,
    pub(crate) time: SystemTime,
    pub(crate) text: String,
}

/// A line of a worker's output as the manager keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogLine {
    /// Its number: lines are numbered in the order they reached the manager, from 1.
    pub seq: u64,
    /// The worker it came from.
    pub source: String,
    /// Which of its outputs.
    pub stream: LogStream,
    /// When the supervisor (or forwarder) read it.
    pub time: SystemTime,
    /// The line, without its line ending (cut at 4 KiB, ending in `…` when cut).
    pub text: String,
}

/// Lines read from the manager's log buffer ([`Logs`](crate::workers::Logs)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogPage {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
    /// The number to read after next time.
    pub next: u64,
    /// Per worker, how many lines its shipper dropped because the manager was slow or gone.
    pub dropped: Vec<(String, u64)>,
}
