//! Workers' output in one place: lines read from a child's pipes, printed prefixed with its
//! name (one write per line, so lines of different workers never mix mid-line), and shipped
//! to the manager's log buffer by one thread that never makes a reader wait.
//!
//! Invariant: nothing here grows without bound. A line is cut at [`MAX_LINE`] bytes, and the
//! shipper holds at most [`MAX_UNSHIPPED`] bytes: past that, lines are dropped and counted
//! (the counts reach the manager with the next batch that gets through).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use super::registry::Logs;
use super::{LogStream, ShippedLine};
use crate::client::Client;

/// The longest line read whole; longer ones are split.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// The most bytes waiting to be shipped.
const MAX_UNSHIPPED: usize = 1024 * 1024;

/// The most lines (and bytes) per call to the manager.
const BATCH_LINES: usize = 512;
const BATCH_BYTES: usize = 256 * 1024;

/// How long a failed shipment waits before the next try.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Unshipped {
    lines: VecDeque<ShippedLine>,
    bytes: usize,
    /// Dropped and not yet reported, by source.
    dropped: HashMap<String, u64>,
    /// Dropped since the start, of every source.
    dropped_total: u64,
    /// A batch is on its way to the manager.
    in_flight: bool,
    closed: bool,
}

struct ShipperShared {
    state: Mutex<Unshipped>,
    wake: Condvar,
}

/// Ships lines to the manager's log buffer from a thread of its own.
pub(crate) struct Shipper {
    shared: Arc<ShipperShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shipper {
    /// Starts the shipping thread for `client`'s manager.
    pub(crate) fn start(client: Client) -> Shipper {
        let shared = Arc::new(ShipperShared {
            state: Mutex::new(Unshipped::default()),
            wake: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("monogusa-log-shipper".into())
                .spawn(move || ship(&client, &shared))
                .ok()
        };
        Shipper {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// Queues `line`, or drops and counts it if too much waits already. Never blocks on the
    /// manager.
    pub(crate) fn offer(&self, line: ShippedLine) {
        let mut state = self.shared.state.lock();
        let size = line.text.len() + line.source.len() + 32;
        if state.closed || state.bytes + size > MAX_UNSHIPPED {
            *state.dropped.entry(line.source).or_default() += 1;
            state.dropped_total += 1;
            return;
        }
        state.bytes += size;
        state.lines.push_back(line);
        self.shared.wake.notify_one();
    }

    /// How many lines were dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.state.lock().dropped_total
    }

    /// Waits (at most `within`) until what waits was shipped or given up on.
    pub(crate) fn flush(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut state = self.shared.state.lock();
        while (!state.lines.is_empty() || state.in_flight) && Instant::now() < deadline {
            self.shared.wake.notify_one();
            self.shared
                .wake
                .wait_for(&mut state, Duration::from_millis(20));
        }
    }

    /// Ships what waits (for at most `within`), then stops the thread.
    pub(crate) fn finish(&self, within: Duration) {
        self.flush(within);
        {
            let mut state = self.shared.state.lock();
            state.closed = true;
            self.shared.wake.notify_all();
        }
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.finish(Duration::from_millis(200));
    }
}

/// The shipping thread: batches of waiting lines to the manager until closed.
fn ship(client: &Client, shared: &ShipperShared) {
    let mut logs: Option<Logs> = None;
    loop {
        let (batch, dropped) = {
            let mut state = shared.state.lock();
            while state.lines.is_empty() && !state.closed {
                shared.wake.wait(&mut state);
            }
            if state.closed {
                return;
            }
            let mut batch = Vec::new();
            let mut bytes = 0;
            while batch.len() < BATCH_LINES && bytes < BATCH_BYTES {
                let Some(line) = state.lines.pop_front() else {
                    break;
                };
                bytes += line.text.len() + line.source.len() + 32;
                batch.push(line);
            }
            state.bytes -= bytes;
            state.in_flight = true;
            let dropped: Vec<(String, u64)> = state.dropped.drain().collect();
            (batch, dropped)
        };
        let shipped = match &logs {
            Some(l) => l.append(&batch, &dropped),
            None => Logs::open(client).and_then(|l| {
                let result = l.append(&batch, &dropped);
                logs = Some(l);
                result
            }),
        };
        let mut state = shared.state.lock();
        state.in_flight = false;
        shared.wake.notify_all();
        if shipped.is_err() {
            // The manager is slow or gone: this batch is lost, and counted.
            for line in &batch {
                *state.dropped.entry(line.source.clone()).or_default() += 1;
                state.dropped_total += 1;
            }
            for (source, count) in dropped {
                *state.dropped.entry(source).or_default() += count;
            }
            if state.closed {
                return;
            }
            shared.wake.wait_for(&mut state, RETRY_AFTER);
        }
    }
}

/// ANSI colours for prefixes, one per worker in turn (as foreman does).
const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// Prints lines prefixed with their worker's name to standard output.
pub(crate) struct Printer {
    colour: bool,
    width: usize,
}

impl Printer {
    /// A printer for names up to `width` wide, coloured if standard output is a terminal.
    pub(crate) fn new(width: usize) -> Printer {
        Printer {
            colour: std::io::stdout().is_terminal(),
            width,
        }
    }

    /// Prints `text` as one line prefixed with the time and `name` (coloured by `index`).
    pub(crate) fn print(&self, index: usize, name: &str, text: &str) {
        let time = clock(SystemTime::now());
        let line = if self.colour {
            let colour = COLOURS[index % COLOURS.len()];
            format!(
                "\x1b[{colour}m{time} {name:<width$} |\x1b[0m {text}\n",
                width = self.width
            )
        } else {
            format!("{time} {name:<width$} | {text}\n", width = self.width)
        };
        // One write of the whole line under the lock: lines never mix.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// `HH:MM:SS` in UTC.
pub(crate) fn clock(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Where a child's lines go.
pub(crate) struct Sink {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) printer: Option<Arc<Printer>>,
    pub(crate) shipper: Option<Arc<Shipper>>,
}

/// Reads `pipe` line by line until it ends, sending each line to `sink`.
pub(crate) fn pump(pipe: impl Read, stream: LogStream, sink: &Sink) {
    let mut reader = BufReader::with_capacity(MAX_LINE, pipe);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let ended = read_bounded_line(&mut reader, &mut line).unwrap_or(true);
        if !line.is_empty() {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(printer) = &sink.printer {
                printer.print(sink.index, &sink.name, &text);
            }
            if let Some(shipper) = &sink.shipper {
                shipper.offer(ShippedLine {
                    source: sink.name.clone(),
                    stream,
                    time: SystemTime::now(),
                    text,
                });
            }
        }
        if ended {
            return;
        }
    }
}

/// Reads up to and including the next newline, or [`MAX_LINE`] bytes, into `line`. Returns
/// whether the input ended.
fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(true);
        }
        let room = MAX_LINE - line.len();
        let take = available.len().min(room);
        match available[..take].iter().position(|b| *b == b'\n') {
            Some(at) => {
                line.extend_from_slice(&available[..=at]);
                reader.consume(at + 1);
                return Ok(false);
            }
            None => {
                line.extend_from_slice(&available[..take]);
                reader.consume(take);
                if line.len() >= MAX_LINE {
                    return Ok(false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_at_the_limit_and_the_last_unterminated_one_is_kept() {
        let mut input = vec![b'a'; MAX_LINE + 10];
        input.extend_from_slice(b"\nshort\r\ntail");
        let mut reader = BufReader::with_capacity(1000, input.as_slice());
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let ended = read_bounded_line(&mut reader, &mut line).unwrap();
            if !line.is_empty() {
                lines.push(line);
            }
            if ended {
                break;
            }
        }
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], b"aaaaaaaaaa\n");
        assert_eq!(lines[2], b"short\r\n");
        assert_eq!(lines[3], b"tail");
    }
}
