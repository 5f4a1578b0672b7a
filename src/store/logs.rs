//! The manager's side of the log buffer: the last lines of every worker's output, numbered in
//! arrival order, for `monogusa logs` (and `--follow`) from any machine that has the key.
//!
//! Bounded three ways, so no worker can grow the manager's memory: lines per source, bytes
//! per line (longer ones are cut, and say so), and sources (the one silent longest is
//! forgotten first).

use std::collections::{HashMap, VecDeque};

use parking_lot::{Condvar, Mutex};

use super::Entries;
use super::builtin::{Waiting, builtin_methods, builtin_service, deadline, wait_while};
use crate::error::{RemoteError, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::workers::{LogLine, LogPage, ShippedLine};

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Logs";

/// The most lines kept per source.
pub(crate) const LINES_PER_SOURCE: usize = 1000;

/// The most bytes kept of one line.
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// The most sources kept.
const MAX_SOURCES: usize = 1024;

/// The most lines one read returns.
const MAX_PAGE: usize = 10_000;

#[derive(Default)]
struct Source {
    lines: VecDeque<LogLine>,
    /// Lines its shipper reported dropped (never sent: the manager was slow or gone).
    dropped: u64,
}

struct State {
    sources: HashMap<String, Source>,
    /// The number of the last line appended (lines are numbered from 1).
    last: u64,
    closing: bool,
}

/// The manager's side.
pub(crate) struct SharedLogs {
    state: Mutex<State>,
    arrived: Condvar,
}

impl SharedLogs {
    /// An empty buffer (it is never kept).
    pub(crate) fn new(entries: Entries) -> Result<Self, RemoteError> {
        if !entries.is_empty() {
            return Err(super::bad_entry(SERVICE));
        }
        Ok(SharedLogs {
            state: Mutex::new(State {
                sources: HashMap::new(),
                last: 0,
                closing: false,
            }),
            arrived: Condvar::new(),
        })
    }
}

builtin_methods!(
    /// The methods of `SharedLogs`.
    LogsMethod {
        Append = "append",
        Read = "read",
    }
);

builtin_service!(SharedLogs, SERVICE, LogsMethod);

/// `text` cut to at most [`MAX_LINE_BYTES`] at a character boundary, marked when cut.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_LINE_BYTES {
        let mut end = MAX_LINE_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl SharedLogs {
    fn dispatch(
        &self,
        method: LogsMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        match method {
            LogsMethod::Append => {
                let (lines, dropped): (Vec<ShippedLine>, Vec<(String, u64)>) =
                    decode_args(args, SERVICE, method.name())?;
                self.append(lines, dropped);
                encode_result(&(), out)
            }
            LogsMethod::Read => {
                let (after, source, max, timeout_ms): (
                    Option<u64>,
                    Option<String>,
                    u32,
                    Option<u64>,
                ) = decode_args(args, SERVICE, method.name())?;
                let max = (max as usize).clamp(1, MAX_PAGE);
                let page = match after {
                    None => self.tail(source.as_deref(), max),
                    Some(after) => self.after(after, source.as_deref(), max, timeout_ms, caller)?,
                };
                encode_result(&page, out)
            }
        }
    }

    fn append(&self, lines: Vec<ShippedLine>, dropped: Vec<(String, u64)>) {
        let mut state = self.state.lock();
        for line in lines {
            state.last += 1;
            let seq = state.last;
            if !state.sources.contains_key(&line.source) && state.sources.len() >= MAX_SOURCES {
                forget_most_silent(&mut state.sources);
            }
            let source = state.sources.entry(line.source.clone()).or_default();
            if source.lines.len() >= LINES_PER_SOURCE {
                source.lines.pop_front();
            }
            source.lines.push_back(LogLine {
                seq,
                source: line.source,
                stream: line.stream,
                time: line.time,
                text: bounded(line.text),
            });
        }
        for (name, count) in dropped {
            if let Some(source) = state.sources.get_mut(&name) {
                source.dropped += count;
            }
        }
        self.arrived.notify_all();
    }

    /// The last `max` lines (of `source`, or of all), oldest first.
    fn tail(&self, source: Option<&str>, max: usize) -> LogPage {
        let state = self.state.lock();
        let mut lines = collect(&state, source, 0);
        let skip = lines.len().saturating_sub(max);
        lines.drain(..skip);
        page(&state, source, lines)
    }

    /// The lines after number `after`, waiting up to the timeout for one to arrive.
    fn after(
        &self,
        after: u64,
        source: Option<&str>,
        max: usize,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<LogPage, RemoteError> {
        // A number past the last line comes from before a manager restart: start over.
        let after = if after > self.state.lock().last {
            0
        } else {
            after
        };
        let nothing_new = |s: &State| match source {
            None => s.last <= after,
            Some(name) => s
                .sources
                .get(name)
                .and_then(|src| src.lines.back())
                .is_none_or(|line| line.seq <= after),
        };
        let (state, _) = wait_while(
            self.state.lock(),
            &self.arrived,
            Waiting {
                deadline: deadline(timeout_ms),
                what: "log buffer",
                caller,
            },
            |s| s.closing,
            nothing_new,
            |_| {},
        )?;
        let mut lines = collect(&state, source, after);
        lines.truncate(max);
        Ok(page(&state, source, lines))
    }

    fn wake_all(&self) {
        self.state.lock().closing = true;
        self.arrived.notify_all();
    }

    fn forget(&self, _: u64) {}
}

/// The kept lines numbered after `after`, of `source` or of all, in arrival order.
fn collect(state: &State, source: Option<&str>, after: u64) -> Vec<LogLine> {
    let mut lines: Vec<LogLine> = state
        .sources
        .iter()
        .filter(|(name, _)| source.is_none_or(|s| s == name.as_str()))
        .flat_map(|(_, src)| {
            // Numbers grow within a source: skip the old ones by search, not by scan.
            let start = src.lines.partition_point(|l| l.seq <= after);
            src.lines.range(start..).cloned()
        })
        .collect();
    lines.sort_unstable_by_key(|l| l.seq);
    lines
}

fn page(state: &State, source: Option<&str>, lines: Vec<LogLine>) -> LogPage {
    let next = lines.last().map_or(state.last, |l| l.seq);
    let dropped = state
        .sources
        .iter()
        .filter(|(name, src)| src.dropped > 0 && source.is_none_or(|s| s == name.as_str()))
        .map(|(name, src)| (name.clone(), src.dropped))
        .collect();
    LogPage {
        lines,
        next,
        dropped,
    }
}

/// Makes room for a new source: forgets the one whose last line is oldest.
fn forget_most_silent(sources: &mut HashMap<String, Source>) {
    let victim = sources
        .iter()
        .min_by_key(|(_, src)| src.lines.back().map_or(0, |l| l.seq))
        .map(|(name, _)| name.clone());
    if let Some(name) = victim {
        sources.remove(&name);
    }
}
