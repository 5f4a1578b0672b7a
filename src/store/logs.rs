//! The manager's side of the log buffer: the last lines of every worker's output, numbered in
//! arrival order, for `monogusa logs` (and `--follow`) from any machine that has the key.
//!
//! Bounded so that no worker, nor any key holder, can grow the manager's memory: lines per
//! source, bytes per line (longer ones are cut, and say so), bytes per source name, sources
//! (the one silent longest is forgotten first), and bytes in all (past [`MAX_BYTES`], the
//! oldest lines of the source holding most go first). The buffer has this budget of its own,
//! apart from the user's `max_store_bytes`, so a full store never silences the logs and the
//! logs never fill the store.

use std::collections::{HashMap, VecDeque};

use parking_lot::{Condvar, Mutex};

use super::Entries;
use super::waiting::{Waiting, deadline, wait_while};
use crate::error::{RemoteError, Result};
use crate::kinds::logs::{LogLine, LogPage, LogsKind, ShippedLine};
pub(crate) use crate::kinds::logs::{LogsKindServer, SERVICE};
use crate::service::{Caller, Hooks};

/// The most lines kept per source.
pub(crate) const LINES_PER_SOURCE: usize = 1000;

/// The most bytes kept of one line.
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// The most sources kept.
const MAX_SOURCES: usize = 1024;

/// The most bytes of a source's name (longer names are cut).
pub(crate) const MAX_SOURCE_BYTES: usize = 256;

/// The most bytes the buffer holds, lines and names together.
pub(crate) const MAX_BYTES: usize = 64 << 20;

/// What a kept line costs besides its text and its source's name.
const LINE_OVERHEAD: usize = std::mem::size_of::<LogLine>();

/// The most lines one read returns.
const MAX_PAGE: usize = 10_000;

#[derive(Default)]
struct Source {
    lines: VecDeque<LogLine>,
    /// What its lines cost (see [`cost`]).
    bytes: usize,
    /// Lines its shipper reported dropped (never sent: the manager was slow or gone).
    dropped: u64,
}

struct State {
    sources: HashMap<String, Source>,
    /// What every kept line costs, in all.
    bytes: usize,
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
                bytes: 0,
                last: 0,
                closing: false,
            }),
            arrived: Condvar::new(),
        })
    }
}

/// What keeping `line` costs.
fn cost(line: &LogLine) -> usize {
    line.text.len() + line.source.len() + LINE_OVERHEAD
}

/// `text` cut to at most [`MAX_LINE_BYTES`] at a character boundary, marked when cut.
fn bounded(text: String) -> String {
    cut(text, MAX_LINE_BYTES)
}

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl LogsKind for SharedLogs {
    fn append(&self, lines: Vec<ShippedLine>, dropped: Vec<(String, u64)>) {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        for line in lines {
            state.last += 1;
            let name = cut(line.source, MAX_SOURCE_BYTES);
            if !state.sources.contains_key(&name) && state.sources.len() >= MAX_SOURCES {
                forget_most_silent(state);
            }
            let line = LogLine {
                seq: state.last,
                source: name.clone(),
                stream: line.stream,
                time: line.time,
                text: bounded(line.text),
            };
            let bytes = cost(&line);
            {
                let source = state.sources.entry(name.clone()).or_default();
                if source.lines.len() >= LINES_PER_SOURCE
                    && let Some(old) = source.lines.pop_front()
                {
                    source.bytes -= cost(&old);
                    state.bytes -= cost(&old);
                }
            }
            while state.bytes + bytes > MAX_BYTES && evict_one(state, &name) {}
            let source = state.sources.entry(name).or_default();
            source.bytes += bytes;
            state.bytes += bytes;
            source.lines.push_back(line);
        }
        for (name, count) in dropped {
            let name = cut(name, MAX_SOURCE_BYTES);
            if let Some(source) = state.sources.get_mut(&name) {
                source.dropped += count;
            }
        }
        self.arrived.notify_all();
    }

    fn read(
        &self,
        after: Option<u64>,
        source: Option<String>,
        max: u32,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<LogPage, RemoteError> {
        let max = (max as usize).clamp(1, MAX_PAGE);
        match after {
            None => Ok(self.tail(source.as_deref(), max)),
            Some(after) => self.after(after, source.as_deref(), max, timeout_ms, caller),
        }
    }
}

impl Hooks for SharedLogs {
    fn shutdown(&self) {
        self.state.lock().closing = true;
        self.arrived.notify_all();
    }
}

impl SharedLogs {
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
fn forget_most_silent(state: &mut State) {
    let victim = state
        .sources
        .iter()
        .min_by_key(|(_, src)| src.lines.back().map_or(0, |l| l.seq))
        .map(|(name, _)| name.clone());
    if let Some(source) = victim.and_then(|name| state.sources.remove(&name)) {
        state.bytes -= source.bytes;
    }
}

/// Makes room in all: the oldest line of `appending` if it holds at least its share, else
/// of the source holding most (a flooding source pays for itself, in constant time). Whether
/// a line went.
fn evict_one(state: &mut State, appending: &str) -> bool {
    let share = state.bytes / state.sources.len().max(1);
    let victim = match state.sources.get(appending) {
        Some(source) if source.bytes >= share && !source.lines.is_empty() => appending.to_string(),
        _ => match state
            .sources
            .iter()
            .filter(|(_, s)| !s.lines.is_empty())
            .max_by_key(|(_, s)| s.bytes)
        {
            Some((name, _)) => name.clone(),
            None => return false,
        },
    };
    let source = state.sources.get_mut(&victim).expect("found above");
    let Some(old) = source.lines.pop_front() else {
        return false;
    };
    source.bytes -= cost(&old);
    state.bytes -= cost(&old);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::LogStream;
    use std::time::SystemTime;

    fn line(source: &str, text: &str) -> ShippedLine {
        ShippedLine {
            source: source.to_string(),
            stream: LogStream::Stdout,
            time: SystemTime::now(),
            text: text.to_string(),
        }
    }

    /// The audit's flood: long source names copied into every line, from many sources, grew
    /// the buffer to 2.75 GB. Names are cut, and the whole stays under its budget, the
    /// flooding sources losing their own oldest lines.
    #[test]
    fn a_flood_of_long_names_and_lines_stays_within_the_budget() {
        let logs = SharedLogs::new(Entries::default()).unwrap();
        let text = "x".repeat(MAX_LINE_BYTES);
        for source in 0..40 {
            let name = format!("{source}-{}", "n".repeat(64 << 10));
            let batch: Vec<ShippedLine> =
                (0..LINES_PER_SOURCE).map(|_| line(&name, &text)).collect();
            logs.append(batch, vec![(name, 1)]);
            let state = logs.state.lock();
            assert!(state.bytes <= MAX_BYTES, "{} bytes", state.bytes);
            let counted: usize = state.sources.values().map(|s| s.bytes).sum();
            assert_eq!(counted, state.bytes);
            let real: usize = state
                .sources
                .values()
                .flat_map(|s| &s.lines)
                .map(cost)
                .sum();
            assert_eq!(real, state.bytes);
            assert!(state.sources.keys().all(|n| n.len() <= MAX_SOURCE_BYTES));
        }
        // A quiet source's few lines survive the flood of the others.
        logs.append(vec![line("quiet", "hello")], vec![]);
        let flood: Vec<ShippedLine> = (0..2000).map(|_| line("loud", &text)).collect();
        logs.append(flood, vec![]);
        assert_eq!(logs.tail(Some("quiet"), 10).lines.len(), 1);
    }
}
