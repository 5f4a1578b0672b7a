//! The same shared objects and task queues on Redis (feature `redis`): for teams whose workers
//! span machines, or whose state must outlive any one host. Opened with
//! [`connect`](crate::connect)`("redis://…")`; the types are the manager's own (`TaskQueue`,
//! `Counter`, `Dict`, `Value`, `Lock`), so worker code does not change.
//!
//! Every object `NAME` keeps its keys under `monogusa:{NAME}:…` (the braces are a Redis
//! Cluster hash tag: one object's keys stay in one slot, so its scripts are atomic), with a
//! `meta` hash holding its kind and element type tag, checked on every open as the manager
//! does. Values are our codec's bytes; counters are decimal (INCRBY's own).
//!
//! Calls go through a small pool of blocking connections, each with read and write
//! timeouts: Redis gone or restarting makes a call fail with a typed error within its
//! timeout (never hang), and the next call opens a new connection.

mod flow;
mod lock;
mod lua;
mod objects;
mod scripts;
mod tasks;

pub(crate) use lock::{RedisGuard, RedisLock};
pub(crate) use objects::{Kind, RedisObject};
pub(crate) use tasks::RedisTasks;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Phase, RemoteError, RemoteErrorKind, Result};

/// How long a call to Redis may take unless the URL's user says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most idle connections kept.
const MAX_IDLE: usize = 32;

/// A Redis server and the connections to it.
pub(crate) struct RedisStore {
    client: ::redis::Client,
    idle: Mutex<Vec<::redis::Connection>>,
    timeout: Duration,
    /// The address without credentials, for messages.
    shown: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.shown)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced, for messages and logs.
fn without_secret(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`, `redis+unix:///path`); the
    /// password comes from the URL or, better, the `MONOGUSA_REDIS_PASSWORD` environment
    /// variable. Connects once, so a wrong address or password is reported here.
    pub(crate) fn open(
        url: &str,
        password: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Arc<RedisStore>> {
        let shown = without_secret(url);
        let mut info: ::redis::ConnectionInfo =
            ::redis::IntoConnectionInfo::into_connection_info(url)
                .map_err(|e| Error::Config(format!("the Redis URL {shown} is not valid: {e}")))?;
        let password = password
            .map(str::to_string)
            .or_else(|| std::env::var("MONOGUSA_REDIS_PASSWORD").ok());
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = ::redis::Client::open(info)
            .map_err(|e| Error::Config(format!("the Redis URL {shown}: {e}")))?;
        let store = Arc::new(RedisStore {
            client,
            idle: Mutex::new(Vec::new()),
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            shown,
        });
        let first = store.connection()?;
        store.idle.lock().push(first);
        Ok(store)
    }

    fn connection(&self) -> Result<::redis::Connection> {
        if let Some(connection) = self.idle.lock().pop() {
            return Ok(connection);
        }
        let connection = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.error(e, Phase::Connect))?;
        connection
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| connection.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.error(e, Phase::Connect))?;
        Ok(connection)
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped, not pooled.
    pub(crate) fn run<R>(
        &self,
        f: impl FnOnce(&mut ::redis::Connection) -> ::redis::RedisResult<R>,
    ) -> Result<R> {
        let mut connection = self.connection()?;
        match f(&mut connection) {
            Ok(value) => {
                let mut idle = self.idle.lock();
                if idle.len() < MAX_IDLE {
                    idle.push(connection);
                }
                Ok(value)
            }
            Err(e) => {
                // A server's answer (a script's refusal) leaves the connection usable.
                if is_server_reply(&e) {
                    let mut idle = self.idle.lock();
                    if idle.len() < MAX_IDLE {
                        idle.push(connection);
                    }
                }
                Err(self.error(e, Phase::Call))
            }
        }
    }

    /// Runs `f` with a blocking command's read timeout of `block` plus the usual timeout.
    pub(crate) fn run_blocking<R>(
        &self,
        block: Duration,
        f: impl FnOnce(&mut ::redis::Connection) -> ::redis::RedisResult<R>,
    ) -> Result<R> {
        let mut connection = self.connection()?;
        let result = connection
            .set_read_timeout(Some(self.timeout + block))
            .and_then(|()| f(&mut connection));
        let reset = connection.set_read_timeout(Some(self.timeout));
        match result {
            Ok(value) => {
                if reset.is_ok() {
                    let mut idle = self.idle.lock();
                    if idle.len() < MAX_IDLE {
                        idle.push(connection);
                    }
                }
                Ok(value)
            }
            Err(e) => Err(self.error(e, Phase::Call)),
        }
    }

    /// Our error for a Redis one: timeouts name their phase, an unreachable server is an
    /// I/O error naming it, a refused password an authentication error, a script's own
    /// refusal the remote error it carries.
    fn error(&self, e: ::redis::RedisError, phase: Phase) -> Error {
        let text = e.to_string();
        // Redis takes a reply's first word as its code: ours is `MONOGUSA`.
        let refusal = match (e.code(), e.detail()) {
            (Some(REFUSAL), Some(detail)) => script_refusal(&format!("{REFUSAL} {detail}")),
            _ => script_refusal(&text),
        };
        if let Some((kind, message)) = refusal {
            return Error::Remote(RemoteError::new(kind, message));
        }
        if e.is_timeout() {
            return Error::Timeout(phase);
        }
        if matches!(e.kind(), ::redis::ErrorKind::AuthenticationFailed)
            || text.contains("WRONGPASS")
            || text.contains("NOAUTH")
        {
            return Error::Authentication(format!("Redis at {} refused the password", self.shown));
        }
        if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            let io = std::io::Error::other(format!("Redis at {}: {text}", self.shown));
            return if phase == Phase::Call && !e.is_connection_refusal() {
                Error::ConnectionLost(io)
            } else {
                Error::Io(io)
            };
        }
        Error::Remote(RemoteError::new(
            RemoteErrorKind::Storage,
            format!("Redis at {}: {text}", self.shown),
        ))
    }
}

fn is_server_reply(e: &::redis::RedisError) -> bool {
    matches!(
        e.kind(),
        ::redis::ErrorKind::Server(_) | ::redis::ErrorKind::Extension
    )
}

/// The prefix our scripts put on an error that is a remote error of a kind.
const REFUSAL: &str = "MONOGUSA";

/// A script's refusal (`MONOGUSA <kind> <message>`), as our remote error kind and message.
fn script_refusal(text: &str) -> Option<(RemoteErrorKind, String)> {
    let at = text.find(REFUSAL)?;
    let rest = text[at + REFUSAL.len()..].trim_start();
    let (kind, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = match kind {
        "WRONG" => RemoteErrorKind::WrongService,
        "MISUSE" => RemoteErrorKind::Misuse,
        "EXPIRED" => RemoteErrorKind::LeaseExpired,
        "BAD" => RemoteErrorKind::BadArguments,
        "LIMIT" => RemoteErrorKind::LimitExceeded,
        _ => RemoteErrorKind::Storage,
    };
    Some((kind, message.trim().to_string()))
}

/// The prefix of every key of object `name` (`monogusa:{name}:`).
pub(crate) fn prefix(name: &str) -> String {
    format!("monogusa:{{{name}}}:")
}

/// Opens object `name` of `kind`: records its kind and type tag if new, refuses another
/// kind or tag as the manager does.
pub(crate) fn open_object(store: &RedisStore, name: &str, kind: &str, tag: &str) -> Result<()> {
    if name.is_empty() || name.contains(['{', '}']) {
        return Err(Error::Config(format!(
            "{name:?} cannot name a Redis object (empty, or with braces)"
        )));
    }
    let meta = format!("{}meta", prefix(name));
    store.run(|c| {
        scripts::OPEN
            .key(&meta)
            .arg(kind)
            .arg(tag)
            .arg(name)
            .invoke::<()>(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            without_secret("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(without_secret("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }

    #[test]
    fn refusals_carry_their_kind() {
        let (kind, message) =
            script_refusal("An error was signalled by the server - ResponseError: MONOGUSA WRONG jobs is a monogusa.Counter").unwrap();
        assert_eq!(kind, RemoteErrorKind::WrongService);
        assert_eq!(message, "jobs is a monogusa.Counter");
        assert_eq!(prefix("jobs"), "monogusa:{jobs}:");
    }
}
