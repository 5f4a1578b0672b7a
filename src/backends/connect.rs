//! One way in, whatever holds the objects: [`connect`] takes a URL (a manager, or Redis with
//! the `redis` feature) and gives a [`Store`] whose `.tasks()`, `.counter()`, `.dict()`,
//! `.value()` and `.lock()` return the same types either way, so worker code does not change
//! when a team outgrows one manager.

#[cfg(any(feature = "redis", feature = "sqs"))]
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::proxies::{Counter, Dict, Lock, TaskQueue, TaskQueueSettings, Value};

/// Shared objects and task queues behind a URL, from [`connect`].
#[derive(Debug, Clone)]
pub struct Store {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Manager(Client),
    #[cfg(feature = "redis")]
    Redis(Arc<crate::backends::redis::RedisStore>),
    #[cfg(feature = "sqs")]
    Sqs(Arc<crate::backends::sqs::SqsStore>),
}

/// Secrets for [`connect_with`], for programs that keep them elsewhere than the environment.
/// Each one left `None` is read from its environment variable, as [`connect`] does.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Secrets {
    /// A manager's authkey (else `MONOGUSA_AUTHKEY` or the file `MONOGUSA_AUTHKEY_FILE`).
    pub authkey: Option<Vec<u8>>,
    /// Redis's password (else `MONOGUSA_REDIS_PASSWORD`, else the URL's).
    pub redis_password: Option<String>,
    /// AWS's access key id (else `AWS_ACCESS_KEY_ID`).
    pub aws_access_key_id: Option<String>,
    /// AWS's secret access key (else `AWS_SECRET_ACCESS_KEY`).
    pub aws_secret_access_key: Option<String>,
    /// AWS's session token, for temporary credentials (else `AWS_SESSION_TOKEN`).
    pub aws_session_token: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive() // never the values
    }
}

/// Opens the store at `url`:
///
/// - `monogusa://HOST:PORT`, `monogusa+unix:///PATH` or `unix:/PATH`: a manager; the authkey comes from
///   `MONOGUSA_AUTHKEY` (or the file `MONOGUSA_AUTHKEY_FILE` names), never the URL;
/// - `redis://HOST:PORT/DB`, `rediss://…`, `redis+unix:///PATH` (feature `redis`): Redis; a
///   password from `MONOGUSA_REDIS_PASSWORD` (it may be in the URL too, but URLs end up in
///   logs and process lists, and messages never show it).
///
/// Connects once, so a wrong address, key or password is reported here.
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// // The same worker code on a manager or on Redis: only the URL changes.
/// let url = std::env::var("TASKS_URL").unwrap_or("monogusa://127.0.0.1:4343".into());
/// let store = monogusa::connect(&url)?;
/// let emails = store.tasks::<String>("emails")?;
/// if let Some(task) = emails.take(std::time::Duration::from_secs(5))? {
///     println!("sending to {}", task.payload());
///     task.ack()?;
/// }
/// # Ok(()) }
/// ```
pub fn connect(url: &str) -> Result<Store> {
    connect_with(url, &Secrets::default())
}

/// [`connect`] with secrets given by the program; those it leaves `None` come from the
/// environment. It also opens
///
/// - `sqs://HOST` (HTTPS) or `sqs+http://HOST:PORT` (a local stand-in such as moto's
///   server) (feature `sqs`): Amazon SQS, for task queues only; AWS credentials from here or
///   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; the region from the
///   host name, `AWS_REGION` or `AWS_DEFAULT_REGION`.
pub fn connect_with(url: &str, secrets: &Secrets) -> Result<Store> {
    // A manager's own address form, `unix:/path`, as `monogusa+unix:///path`.
    if let Some(path) = url.strip_prefix("unix:").filter(|p| !p.starts_with("//")) {
        return connect_with(&format!("monogusa+unix://{path}"), secrets);
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::Config(format!("{url:?} is not a URL (monogusa://, redis://)")))?;
    match scheme {
        "monogusa" | "monogusa+unix" => {
            let address = if scheme == "monogusa+unix" {
                format!("unix:{rest}")
            } else {
                rest.trim_end_matches('/').to_string()
            };
            let key = match &secrets.authkey {
                Some(key) => key.clone(),
                None => manager_key()?,
            };
            Ok(Store {
                inner: Inner::Manager(Client::connect(address.as_str(), key)?),
            })
        }
        "redis" | "rediss" | "redis+unix" => redis(url, secrets),
        "sqs" | "sqs+http" => sqs(url, secrets),
        other => Err(Error::Config(format!(
            "no backend for {other}:// URLs (monogusa://, monogusa+unix://, redis://, sqs://)"
        ))),
    }
}

#[cfg(feature = "redis")]
fn redis(url: &str, secrets: &Secrets) -> Result<Store> {
    Ok(Store {
        inner: Inner::Redis(crate::backends::redis::RedisStore::open(
            url,
            secrets.redis_password.as_deref(),
            None,
        )?),
    })
}

#[cfg(not(feature = "redis"))]
fn redis(_: &str, _: &Secrets) -> Result<Store> {
    Err(Error::Config(
        "this build has no Redis backend: enable monogusa's `redis` feature".into(),
    ))
}

#[cfg(feature = "sqs")]
fn sqs(url: &str, secrets: &Secrets) -> Result<Store> {
    let from_env =
        |given: &Option<String>, name: &str| given.clone().or_else(|| std::env::var(name).ok());
    let access_key = from_env(&secrets.aws_access_key_id, "AWS_ACCESS_KEY_ID");
    let secret = from_env(&secrets.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY");
    let (Some(access_key), Some(secret)) = (access_key, secret) else {
        return Err(Error::Config(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or give Secrets)"
                .into(),
        ));
    };
    let credentials = crate::backends::sqs::sigv4::Credentials {
        access_key,
        secret,
        session_token: from_env(&secrets.aws_session_token, "AWS_SESSION_TOKEN"),
    };
    Ok(Store {
        inner: Inner::Sqs(Arc::new(crate::backends::sqs::SqsStore::open(
            url,
            credentials,
        )?)),
    })
}

#[cfg(not(feature = "sqs"))]
fn sqs(_: &str, _: &Secrets) -> Result<Store> {
    Err(Error::Config(
        "this build has no SQS backend: enable monogusa's `sqs` feature".into(),
    ))
}

/// What SQS refuses: it holds task queues only.
#[cfg(feature = "sqs")]
fn tasks_only(what: &str) -> Error {
    Error::Config(format!(
        "SQS holds task queues only, not a {what}: keep it on a manager or Redis"
    ))
}

/// The manager's key, from the environment or the file it names.
fn manager_key() -> Result<Vec<u8>> {
    if let Some(key) = std::env::var_os(crate::wire::protocol::AUTHKEY_VAR) {
        return Ok(key.into_encoded_bytes());
    }
    if let Some(path) = std::env::var_os("MONOGUSA_AUTHKEY_FILE") {
        let key = std::fs::read(&path).map_err(|e| {
            Error::Config(format!("cannot read the key file {}: {e}", path.display()))
        })?;
        let end = key
            .iter()
            .rposition(|b| !b"\r\n".contains(b))
            .map_or(0, |i| i + 1);
        return Ok(key[..end].to_vec());
    }
    Err(Error::Config(
        "no authkey: set MONOGUSA_AUTHKEY or MONOGUSA_AUTHKEY_FILE".into(),
    ))
}

impl From<Client> for Store {
    fn from(client: Client) -> Self {
        Store {
            inner: Inner::Manager(client),
        }
    }
}

impl Store {
    /// The manager's client, if this store is a manager.
    pub fn client(&self) -> Option<&Client> {
        match &self.inner {
            #[cfg(feature = "sqs")]
            Inner::Sqs(_) => None,
            Inner::Manager(client) => Some(client),
            #[cfg(feature = "redis")]
            Inner::Redis(_) => None,
        }
    }

    /// Opens the task queue `name` (created with the default settings).
    pub fn tasks<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<TaskQueue<T>> {
        self.tasks_with(name, TaskQueueSettings::default())
    }

    /// Opens the task queue `name`, created with `settings` if it does not exist.
    pub fn tasks_with<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        settings: TaskQueueSettings,
    ) -> Result<TaskQueue<T>> {
        match &self.inner {
            Inner::Manager(client) => client.named(name).tasks(settings),
            #[cfg(feature = "redis")]
            Inner::Redis(store) => {
                let tag = crate::proxies::type_tag::<T>();
                let backend =
                    crate::backends::redis::RedisTasks::open(store, name, &tag, settings.into())?;
                Ok(TaskQueue::with_backend(backend, format!("{name} on Redis")))
            }
            #[cfg(feature = "sqs")]
            Inner::Sqs(store) => {
                let tag = crate::proxies::type_tag::<T>();
                let backend =
                    crate::backends::sqs::SqsTasks::open(store, name, &tag, settings.into())?;
                Ok(TaskQueue::with_backend(backend, format!("{name} on SQS")))
            }
        }
    }

    /// Opens the counter `name` (created at 0).
    pub fn counter(&self, name: &str) -> Result<Counter> {
        match &self.inner {
            #[cfg(feature = "sqs")]
            Inner::Sqs(_) => Err(tasks_only("counter")),
            Inner::Manager(client) => client.counter(name),
            #[cfg(feature = "redis")]
            Inner::Redis(store) => Ok(Counter::from_target(crate::proxies::Target::Redis(
                crate::backends::redis::RedisObject::open(
                    store,
                    name,
                    crate::backends::redis::Kind::Counter,
                    "i64",
                )?,
            ))),
        }
    }

    /// Opens the dict `name` (created empty).
    pub fn dict<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Dict<K, V>> {
        match &self.inner {
            #[cfg(feature = "sqs")]
            Inner::Sqs(_) => Err(tasks_only("dict")),
            Inner::Manager(client) => client.dict(name),
            #[cfg(feature = "redis")]
            Inner::Redis(store) => {
                let tag = format!(
                    "{}->{}",
                    crate::proxies::type_tag::<K>(),
                    crate::proxies::type_tag::<V>()
                );
                Ok(Dict::from_target(crate::proxies::Target::Redis(
                    crate::backends::redis::RedisObject::open(
                        store,
                        name,
                        crate::backends::redis::Kind::Dict,
                        &tag,
                    )?,
                )))
            }
        }
    }

    /// Opens the value `name` (created unset).
    pub fn value<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<Value<T>> {
        match &self.inner {
            #[cfg(feature = "sqs")]
            Inner::Sqs(_) => Err(tasks_only("value")),
            Inner::Manager(client) => client.value(name),
            #[cfg(feature = "redis")]
            Inner::Redis(store) => Ok(Value::from_target(crate::proxies::Target::Redis(
                crate::backends::redis::RedisObject::open(
                    store,
                    name,
                    crate::backends::redis::Kind::Value,
                    &crate::proxies::type_tag::<T>(),
                )?,
            ))),
        }
    }

    /// Opens the lock `name` (created free). On Redis, a holder that dies keeps it until its
    /// lease (10 s) runs out; see [`Store::lock_with_lease`].
    pub fn lock(&self, name: &str) -> Result<Lock> {
        self.lock_with_lease(name, None)
    }

    /// Opens the lock `name`; on Redis, with a lease of `lease` (renewed while held), the
    /// longest a dead holder keeps it. The manager frees a dead holder's lock at once and
    /// ignores `lease`.
    pub fn lock_with_lease(&self, name: &str, lease: Option<Duration>) -> Result<Lock> {
        match &self.inner {
            #[cfg(feature = "sqs")]
            Inner::Sqs(_) => Err(tasks_only("lock")),
            Inner::Manager(client) => {
                let _ = lease;
                client.lock(name)
            }
            #[cfg(feature = "redis")]
            Inner::Redis(store) => Ok(Lock::on_redis(crate::backends::redis::RedisLock::open(
                store, name, lease,
            )?)),
        }
    }
}
