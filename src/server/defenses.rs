//! What keeps peers without the key from flooding the manager's log, guessing its key
//! quickly, or leaving it without file descriptors.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Log lines about failing peers, at most [`RateLimitedLog::BURST`] per
/// [`RateLimitedLog::WINDOW`]; the rest are counted and summarized in one line when the next
/// window opens. One peer without the key once wrote 6.8 MB/s of log this way.
pub(crate) struct RateLimitedLog {
    state: Mutex<LogWindow>,
}

struct LogWindow {
    started: Instant,
    written: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    const WINDOW: Duration = Duration::from_secs(10);
    const BURST: u32 = 20;

    pub(crate) fn new() -> Self {
        RateLimitedLog {
            state: Mutex::new(LogWindow {
                started: Instant::now(),
                written: 0,
                suppressed: 0,
            }),
        }
    }

    /// Logs `message` at warn level unless this window's lines are spent.
    pub(crate) fn warn(&self, message: fmt::Arguments<'_>) {
        if !log::log_enabled!(log::Level::Warn) {
            return;
        }
        let mut window = self.state.lock();
        if window.started.elapsed() >= Self::WINDOW {
            if window.suppressed > 0 {
                log::warn!(
                    "{} more such messages suppressed in the last {} s",
                    window.suppressed,
                    window.started.elapsed().as_secs()
                );
            }
            *window = LogWindow {
                started: Instant::now(),
                written: 0,
                suppressed: 0,
            };
        }
        if window.written < Self::BURST {
            window.written += 1;
            drop(window);
            log::warn!("{message}");
        } else {
            window.suppressed += 1;
        }
    }
}

/// Wrong keys by peer address. After a few, each further wrong key from that address is
/// answered later, doubling up to [`Guesses::MAX_DELAY`]; a quiet minute forgives. One client
/// once tried 6,093 keys a second; now it gets one every two seconds per connection.
#[derive(Default)]
pub(crate) struct Guesses {
    by_address: Mutex<HashMap<IpAddr, Strikes>>,
}

struct Strikes {
    count: u32,
    last: Instant,
}

impl Guesses {
    const FREE: u32 = 3;
    const FIRST_DELAY: Duration = Duration::from_millis(50);
    const MAX_DELAY: Duration = Duration::from_secs(2);
    const FORGIVE_AFTER: Duration = Duration::from_secs(60);
    /// Addresses remembered at most; past it, the forgiven are forgotten first.
    const REMEMBERED: usize = 4096;

    /// Records a wrong key from `address`; returns how long to wait before saying so.
    pub(crate) fn failed(&self, address: Option<IpAddr>) -> Duration {
        // Unix-socket peers have no address; they all share one record.
        let address = address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut map = self.by_address.lock();
        if map.len() >= Self::REMEMBERED {
            map.retain(|_, s| s.last.elapsed() < Self::FORGIVE_AFTER);
            if map.len() >= Self::REMEMBERED {
                map.clear();
            }
        }
        let strikes = map.entry(address).or_insert(Strikes {
            count: 0,
            last: Instant::now(),
        });
        if strikes.last.elapsed() >= Self::FORGIVE_AFTER {
            strikes.count = 0;
        }
        strikes.count = strikes.count.saturating_add(1);
        strikes.last = Instant::now();
        Self::delay_for(strikes.count)
    }

    fn delay_for(count: u32) -> Duration {
        if count <= Self::FREE {
            return Duration::ZERO;
        }
        let doublings = (count - Self::FREE - 1).min(16);
        (Self::FIRST_DELAY * 2u32.pow(doublings)).min(Self::MAX_DELAY)
    }
}

/// Whether `accept` failed because the process or system has no descriptor left.
pub(crate) fn out_of_descriptors(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// A descriptor held in reserve for the moment the process runs out: given up, it lets the
/// acceptor take one waiting connection and answer it.
pub(crate) struct SpareDescriptor(Option<std::fs::File>);

impl SpareDescriptor {
    pub(crate) fn new() -> Self {
        SpareDescriptor(Self::open())
    }

    fn open() -> Option<std::fs::File> {
        #[cfg(unix)]
        {
            std::fs::File::open("/dev/null").ok()
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// Gives the descriptor up; false if there was none to give.
    pub(crate) fn release(&mut self) -> bool {
        self.0.take().is_some()
    }

    /// Takes a descriptor in reserve again (if one is free by now).
    pub(crate) fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = Self::open();
        }
    }
}

/// With the `deadlock-detection` feature, starts (once per process) a thread that looks for
/// deadlocked locks every second and, finding some, prints their threads' backtraces and
/// aborts: a deadlock in a test then fails it loudly instead of hanging it.
pub(crate) fn watch_for_deadlocks() {
    #[cfg(feature = "deadlock-detection")]
    {
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("monogusa-deadlocks".into())
                .spawn(|| {
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                        let deadlocks = parking_lot::deadlock::check_deadlock();
                        if deadlocks.is_empty() {
                            continue;
                        }
                        for (i, threads) in deadlocks.iter().enumerate() {
                            for t in threads {
                                use std::io::Write;
                                let _ = writeln!(
                                    std::io::stderr(),
                                    "deadlock {i}, thread {:?}:\n{:?}",
                                    t.thread_id(),
                                    t.backtrace()
                                );
                            }
                        }
                        std::process::abort();
                    }
                });
        });
    }
}

/// Raises this process's soft limit on open files to its hard limit: the usual soft limit
/// of 1024 fits only about a thousand connections. Once per process; failures are logged.
pub(crate) fn raise_descriptor_limit() {
    #[cfg(unix)]
    {
        static RAISED: std::sync::Once = std::sync::Once::new();
        RAISED.call_once(|| match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => log::debug!("open file limit: {limit}"),
            Err(e) => log::warn!("cannot raise the open file limit: {e}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_slow_down_then_are_forgiven() {
        assert_eq!(Guesses::delay_for(1), Duration::ZERO);
        assert_eq!(Guesses::delay_for(3), Duration::ZERO);
        assert_eq!(Guesses::delay_for(4), Duration::from_millis(50));
        assert_eq!(Guesses::delay_for(5), Duration::from_millis(100));
        assert_eq!(Guesses::delay_for(40), Duration::from_secs(2));
        let guesses = Guesses::default();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(guesses.failed(a).is_zero());
        }
        assert!(!guesses.failed(a).is_zero());
        assert!(
            guesses.failed(b).is_zero(),
            "another address is not punished"
        );
    }
}
