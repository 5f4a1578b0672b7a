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
/// monogusa::workers::LogForwarder::new(&client, "mailer-7")
///     .level(log::LevelFilter::Info)
///     .echo(true) // and to standard error
///     .install()?;
/// log::info!("ready"); // `monogusa logs --worker mailer-7` prints it
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

    /// How many records were dropped so far (the manager was slow or gone).
    pub fn dropped(&self) -> u64 {
        self.shipper.dropped()
    }

    /// Makes it the program's logger. Fails if one is set already.
    pub fn install(self) -> crate::Result<()> {
        let level = self.level;
        log::set_boxed_logger(Box::new(self))
            .map_err(|e| crate::Error::Config(format!("could not install the logger: {e}")))?;
        log::set_max_level(level);
        Ok(())
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
