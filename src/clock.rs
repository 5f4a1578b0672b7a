//! Where a manager's time comes from: the system's clock, or a test's that moves only when the
//! test says so ([`TestClock`]). Task queues read it for everything that falls due: delays,
//! retries' backoff, leases, results' time-to-live.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A manager's clock ([`ManagerBuilder::clock`](crate::ManagerBuilder::clock)): the system's
/// by default, or a [`TestClock`]'s.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<TestTime>>);

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock(system)"),
            Some(time) => write!(f, "Clock(test, at {} ms)", time.ms.load(Ordering::Acquire)),
        }
    }
}

/// What a test clock's advance wakes: an object with waits that depend on the time.
pub(crate) trait Wake: Send + Sync {
    /// The time moved: look again at what falls due.
    fn wake(&self);
}

/// A test clock's time and who to wake when it moves.
struct TestTime {
    /// Unix milliseconds.
    ms: AtomicU64,
    wakers: Mutex<Vec<Weak<dyn Wake>>>,
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// The time, in Unix milliseconds (what task queues count in).
    pub(crate) fn now_ms(&self) -> u64 {
        match &self.0 {
            None => unix_ms(SystemTime::now()),
            Some(time) => time.ms.load(Ordering::Acquire),
        }
    }

    /// Whether it is a test clock (whose milliseconds are exact, not rounded down).
    pub(crate) fn is_test(&self) -> bool {
        self.0.is_some()
    }

    /// Asks to be woken whenever a test clock moves (nothing for the system's clock).
    pub(crate) fn on_advance(&self, waker: Weak<dyn Wake>) {
        if let Some(time) = &self.0 {
            let mut wakers = time.wakers.lock();
            wakers.retain(|w| w.strong_count() > 0);
            wakers.push(waker);
        }
    }
}

/// A clock for tests that moves only when told ([`TestClock::advance`]): give it to a manager
/// with [`ManagerBuilder::clock`](crate::ManagerBuilder::clock), and delays, retries'
/// backoff, lease expiries and results' time-to-live fall due at once when the test moves
/// time past them, with no real waiting. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use monogusa::{Client, Manager, PushOptions, TestClock};
///
/// # fn main() -> monogusa::Result<()> {
/// let clock = TestClock::new();
/// let manager = Manager::builder().authkey("password").clock(&clock).build()?.start()?;
/// let client = Client::connect(manager.address(), "password")?;
/// let reminders = client.tasks::<String>("reminders")?;
/// let tomorrow = PushOptions { delay: Duration::from_secs(24 * 3600), ..PushOptions::default() };
/// reminders.push_with(&"water the plants".to_string(), &tomorrow)?;
/// assert!(reminders.take(Duration::ZERO)?.is_none(), "not before tomorrow");
/// clock.advance(Duration::from_secs(24 * 3600));
/// assert!(reminders.take(Duration::ZERO)?.is_some(), "a day later, at once");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TestClock(Arc<TestTime>);

impl fmt::Debug for TestClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TestClock").field(&self.now()).finish()
    }
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

impl TestClock {
    /// A test clock standing at the system's time now.
    pub fn new() -> TestClock {
        TestClock::starting_at(SystemTime::now())
    }

    /// A test clock standing at `time`.
    pub fn starting_at(time: SystemTime) -> TestClock {
        TestClock(Arc::new(TestTime {
            ms: AtomicU64::new(unix_ms(time)),
            wakers: Mutex::new(Vec::new()),
        }))
    }

    /// Its time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.ms.load(Ordering::Acquire))
    }

    /// Moves its time on by `by` (whole milliseconds), and wakes what waits on it: a take
    /// blocked until a delayed task falls due gets it at once.
    pub fn advance(&self, by: Duration) {
        self.0.ms.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
        let wakers: Vec<Arc<dyn Wake>> = self
            .0
            .wakers
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// The [`Clock`] that reads it.
    pub fn clock(&self) -> Clock {
        Clock(Some(Arc::clone(&self.0)))
    }
}

impl From<&TestClock> for Clock {
    fn from(clock: &TestClock) -> Self {
        clock.clock()
    }
}

impl From<TestClock> for Clock {
    fn from(clock: TestClock) -> Self {
        clock.clock()
    }
}
