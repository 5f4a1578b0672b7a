//! A `log::Log` that ships records to the manager's log buffer: for a worker the supervisor
//! did not start (whose output nobody reads), so `monogusa logs` shows it too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::LogStream;
use super::ShippedLine;
use super::output::Shipper;
use crate::client::Client;

/// Ships `log` records to the manager's log buffer under a source name, from a thread of its
/// own: logging never waits for the manager, and when the manager is slow or gone, records
/// are dropped and counted (never buffered without bound).
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// let client = monogusa::Client::from_env()?;
/// let forwarding = monogusa::workers::LogForwarder::new(&client, "mailer-7")
///     .level(log::LevelFilter::Info)
///     .echo(true) // and to standard error
///     .install()?;
/// log::info!("ready"); // `monogusa logs --worker mailer-7` prints it
/// forwarding.flush(std::time::Duration::from_secs(1)); // before exiting
/// # Ok(()) }
/// ```
pub struct LogForwarder {
    source: String,
    level: log::LevelFilter,
    echo: bool,
    shipper: Arc<Shipper>,
}

impl std::fmt::Debug for LogForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogForwarder")
            .field("source", &self.source)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl LogForwarder {
    /// A forwarder of records at level info and above to `client`'s manager, as `source`.
    pub fn new(client: &Client, source: &str) -> LogForwarder {
        LogForwarder {
            source: source.to_string(),
            level: log::LevelFilter::Info,
            echo: false,
            shipper: Arc::new(Shipper::start(client.clone())),
        }
    }

    /// Forwards records at `level` and above.
    pub fn level(mut self, level: log::LevelFilter) -> Self {
        self.level = level;
        self
    }

    /// Also writes every record to standard error.
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Makes it the program's logger (fails if one is set already); the handle it returns
    /// counts what was dropped and flushes.
    pub fn install(self) -> crate::Result<Forwarding> {
        let level = self.level;
        let forwarding = Forwarding {
            shipper: Arc::clone(&self.shipper),
        };
        log::set_boxed_logger(Box::new(self))
            .map_err(|e| crate::Error::Config(format!("could not install the logger: {e}")))?;
        log::set_max_level(level);
        Ok(forwarding)
    }
}

/// What an installed [`LogForwarder`] did, from [`LogForwarder::install`].
#[derive(Clone)]
pub struct Forwarding {
    shipper: Arc<Shipper>,
}

impl std::fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarding")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Forwarding {
    /// How many records were dropped so far (the manager was slow or gone).
    pub fn dropped(&self) -> u64 {
        self.shipper.dropped()
    }

    /// Waits up to `within` for the records logged so far to reach the manager (or be
    /// given up on).
    pub fn flush(&self, within: Duration) {
        self.shipper.flush(within);
    }
}

impl log::Log for LogForwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = format!("{} {}: {}", record.level(), record.target(), record.args());
        if self.echo {
            eprintln!("{text}");
        }
        self.shipper.offer(ShippedLine {
            source: self.source.clone(),
            stream: LogStream::Log,
            time: SystemTime::now(),
            text,
        });
    }

    fn flush(&self) {
        self.shipper.flush(Duration::from_secs(2));
    }
}
