//! `Counter`, `Value` and `Dict` on Redis: each implements its kind's declared trait
//! (`CounterKind`, `ValueKind`, `DictKind`), and the kind's generated dispatch answers the
//! proxies' calls, with the same encoded arguments and results as the manager's objects, so
//! the proxies do not know which they talk to and a method added to a kind does not compile
//! until Redis has it too. Counter: INCRBY on a decimal string. Value: GET/SET,
//! compare-and-swap in a script. Dict: a hash of encoded keys to encoded values;
//! `update_counter` is an optimistic transaction (WATCH, then MULTI), exact in `i64`, since
//! the values are our codec's bytes.

use std::cell::RefCell;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{RedisStore, open_object, prefix, scripts};
use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
use crate::kinds::counter::{CounterKind, CounterKindServer};
use crate::kinds::dict::{DictKind, DictKindServer};
use crate::kinds::value::{ValueKind, ValueKindServer};
use crate::service::{Caller, Hooks, Service};
use crate::store::Bytes;
use crate::wire::codec;

/// Which kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Value,
    Dict,
}

impl Kind {
    fn service(self) -> &'static str {
        match self {
            Kind::Counter => crate::store::counter::SERVICE,
            Kind::Value => crate::store::value::SERVICE,
            Kind::Dict => crate::store::dict::SERVICE,
        }
    }
}

/// One object on Redis: its kind's generated server over the Redis implementation.
pub(crate) struct RedisObject {
    service: Box<dyn Service>,
    /// Its kind and the key that holds its state (for a task's ack with writes).
    pub(crate) kind: Kind,
    pub(crate) key: String,
}

impl std::fmt::Debug for RedisObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisObject")
            .field("service", &self.service.service().name)
            .finish_non_exhaustive()
    }
}

/// Where an object's state is: the store and its key.
struct Home {
    store: Arc<RedisStore>,
    key: String,
}

/// `Counter` on Redis.
struct RedisCounter(Home);
/// `Value` on Redis.
struct RedisValue(Home);
/// `Dict` on Redis.
struct RedisDict(Home);

impl Hooks for RedisCounter {}
impl Hooks for RedisValue {}
impl Hooks for RedisDict {}

thread_local! {
    /// A failure of Redis itself (gone, timed out, refusing the password) during the call on
    /// this thread: the kinds' methods fail with a `RemoteError`, and the caller gets this
    /// error back as it was (`Error::Io`, `Error::Timeout`, ...), not a remote error.
    static FAILURE: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// A Redis error as a kind's method gives it: Redis's own answers are remote errors; a
/// failure to reach it is kept for the caller (see [`FAILURE`]).
fn failed(error: Error) -> RemoteError {
    match error {
        Error::Remote(remote) => remote,
        other => {
            let placeholder = RemoteError::new(RemoteErrorKind::Storage, other.to_string());
            FAILURE.with(|f| *f.borrow_mut() = Some(other));
            placeholder
        }
    }
}

fn misuse(message: &str) -> RemoteError {
    RemoteError::new(RemoteErrorKind::Misuse, message)
}

impl RedisObject {
    /// Opens (or creates) object `name` of `kind` whose elements have type tag `tag`.
    pub(crate) fn open(
        store: &Arc<RedisStore>,
        name: &str,
        kind: Kind,
        tag: &str,
    ) -> Result<Arc<RedisObject>> {
        open_object(store, name, kind.service(), tag)?;
        let key = format!("{}v", prefix(name));
        let home = Home {
            store: Arc::clone(store),
            key: key.clone(),
        };
        let service: Box<dyn Service> = match kind {
            Kind::Counter => Box::new(CounterKindServer::new(RedisCounter(home))),
            Kind::Value => Box::new(ValueKindServer::new(RedisValue(home))),
            Kind::Dict => Box::new(DictKindServer::new(RedisDict(home))),
        };
        Ok(Arc::new(RedisObject { service, kind, key }))
    }

    /// Calls `method` with `args`, through the kind's generated dispatch.
    pub(crate) fn call<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R> {
        let descriptor = self.service.service();
        let index = descriptor
            .methods
            .iter()
            .position(|m| m.name == method)
            .ok_or_else(|| {
                Error::Remote(RemoteError::new(
                    RemoteErrorKind::UnknownMethod,
                    format!("{} has no method {method} on Redis", descriptor.name),
                ))
            })?;
        let mut encoded = Vec::new();
        codec::encode_into(args, &mut encoded)?;
        let mut out = Vec::new();
        FAILURE.with(|f| f.borrow_mut().take());
        match self
            .service
            .call_shared(index, &encoded, &mut out, &Caller::detached())
        {
            Ok(()) => codec::decode_exact(&out),
            Err(remote) => Err(FAILURE
                .with(|f| f.borrow_mut().take())
                .unwrap_or(Error::Remote(remote))),
        }
    }
}

impl Home {
    fn run<R>(
        &self,
        f: impl FnOnce(&mut ::redis::Connection) -> ::redis::RedisResult<R>,
    ) -> std::result::Result<R, RemoteError> {
        self.store.run(f).map_err(failed)
    }
}

impl CounterKind for RedisCounter {
    fn get(&self) -> std::result::Result<i64, RemoteError> {
        let key = &self.0.key;
        Ok(self
            .0
            .run(|c| ::redis::cmd("GET").arg(key).query::<Option<i64>>(c))?
            .unwrap_or(0))
    }

    fn add(&self, delta: i64) -> std::result::Result<i64, RemoteError> {
        let key = &self.0.key;
        self.0
            .run(|c| ::redis::cmd("INCRBY").arg(key).arg(delta).query(c))
            .map_err(|e| {
                if e.message().contains("overflow") {
                    misuse("the counter would overflow")
                } else {
                    e
                }
            })
    }

    fn set(&self, value: i64) -> std::result::Result<i64, RemoteError> {
        let key = &self.0.key;
        Ok(self
            .0
            .run(|c| {
                ::redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("GET")
                    .query::<Option<i64>>(c)
            })?
            .unwrap_or(0))
    }
}
impl ValueKind for RedisValue {
    fn get(&self) -> std::result::Result<Option<Bytes>, RemoteError> {
        let key = &self.0.key;
        let value: Option<Vec<u8>> = self.0.run(|c| ::redis::cmd("GET").arg(key).query(c))?;
        Ok(value.map(Bytes))
    }

    fn swap(&self, new: Bytes) -> std::result::Result<Option<Bytes>, RemoteError> {
        let key = &self.0.key;
        let old: Option<Vec<u8>> = self.0.run(|c| {
            ::redis::cmd("SET")
                .arg(key)
                .arg(new.0.as_slice())
                .arg("GET")
                .query(c)
        })?;
        Ok(old.map(Bytes))
    }

    fn compare_and_swap(
        &self,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> std::result::Result<bool, RemoteError> {
        let key = &self.0.key;
        let swapped: u8 = self.0.run(|c| {
            scripts::COMPARE_AND_SWAP
                .key(key)
                .arg(u8::from(expected.is_some()))
                .arg(expected.as_ref().map_or(&[][..], |e| e.0.as_slice()))
                .arg(new.0.as_slice())
                .invoke(c)
        })?;
        Ok(swapped == 1)
    }
}

impl DictKind for RedisDict {
    fn insert(&self, key: Bytes, value: Bytes) -> std::result::Result<Option<Bytes>, RemoteError> {
        let hash = &self.0.key;
        let old: Option<Vec<u8>> = self.0.run(|c| {
            scripts::HASH_INSERT
                .key(hash)
                .arg(key.0.as_slice())
                .arg(value.0.as_slice())
                .invoke(c)
        })?;
        Ok(old.map(Bytes))
    }

    fn get(&self, key: Bytes) -> std::result::Result<Option<Bytes>, RemoteError> {
        let hash = &self.0.key;
        let value: Option<Vec<u8>> = self.0.run(|c| {
            ::redis::cmd("HGET")
                .arg(hash)
                .arg(key.0.as_slice())
                .query(c)
        })?;
        Ok(value.map(Bytes))
    }

    fn remove(&self, key: Bytes) -> std::result::Result<Option<Bytes>, RemoteError> {
        let hash = &self.0.key;
        let old: Option<Vec<u8>> = self.0.run(|c| {
            scripts::HASH_REMOVE
                .key(hash)
                .arg(key.0.as_slice())
                .invoke(c)
        })?;
        Ok(old.map(Bytes))
    }

    fn contains(&self, key: Bytes) -> std::result::Result<bool, RemoteError> {
        let hash = &self.0.key;
        self.0.run(|c| {
            ::redis::cmd("HEXISTS")
                .arg(hash)
                .arg(key.0.as_slice())
                .query(c)
        })
    }

    fn len(&self) -> std::result::Result<u64, RemoteError> {
        let hash = &self.0.key;
        self.0.run(|c| ::redis::cmd("HLEN").arg(hash).query(c))
    }

    fn keys(&self) -> std::result::Result<Vec<Bytes>, RemoteError> {
        let hash = &self.0.key;
        let keys: Vec<Vec<u8>> = self.0.run(|c| ::redis::cmd("HKEYS").arg(hash).query(c))?;
        Ok(keys.into_iter().map(Bytes).collect())
    }

    fn items(&self) -> std::result::Result<Vec<(Bytes, Bytes)>, RemoteError> {
        let hash = &self.0.key;
        let items: Vec<(Vec<u8>, Vec<u8>)> =
            self.0.run(|c| ::redis::cmd("HGETALL").arg(hash).query(c))?;
        Ok(items
            .into_iter()
            .map(|(k, v)| (Bytes(k), Bytes(v)))
            .collect())
    }

    fn clear(&self) -> std::result::Result<(), RemoteError> {
        let hash = &self.0.key;
        self.0.run(|c| ::redis::cmd("DEL").arg(hash).query::<()>(c))
    }

    fn update_counter(&self, key: Bytes, delta: i64) -> std::result::Result<i64, RemoteError> {
        self.add_to(&key, delta)
    }

    fn insert_if_absent(&self, key: Bytes, value: Bytes) -> std::result::Result<bool, RemoteError> {
        let hash = &self.0.key;
        self.0.run(|c| {
            ::redis::cmd("HSETNX")
                .arg(hash)
                .arg(key.0.as_slice())
                .arg(value.0.as_slice())
                .query(c)
        })
    }
}

impl RedisDict {
    /// Adds `delta` to the `i64` at `field`, exactly: read under WATCH, write in MULTI,
    /// again if another client changed the hash in between.
    fn add_to(&self, field: &Bytes, delta: i64) -> std::result::Result<i64, RemoteError> {
        let key = &self.0.key;
        for _ in 0..1000 {
            // None: the hash changed, again; Some(Err(why)): refused.
            let outcome: Option<std::result::Result<i64, &'static str>> = self.0.run(|c| {
                ::redis::cmd("WATCH").arg(key).query::<()>(c)?;
                let current: Option<Vec<u8>> = ::redis::cmd("HGET")
                    .arg(key)
                    .arg(field.0.as_slice())
                    .query(c)?;
                let current = match current {
                    None => 0,
                    Some(bytes) => match codec::decode_exact::<i64>(&bytes) {
                        Ok(n) => n,
                        Err(_) => {
                            ::redis::cmd("UNWATCH").query::<()>(c)?;
                            return Ok(Some(Err("update_counter needs an i64 value at that key")));
                        }
                    },
                };
                let Some(next) = current.checked_add(delta) else {
                    ::redis::cmd("UNWATCH").query::<()>(c)?;
                    return Ok(Some(Err("update_counter would overflow")));
                };
                let mut encoded = Vec::new();
                codec::encode_into(&next, &mut encoded).expect("an i64 encodes");
                let done: Option<((),)> = ::redis::pipe()
                    .atomic()
                    .cmd("HSET")
                    .arg(key)
                    .arg(field.0.as_slice())
                    .arg(encoded)
                    .ignore()
                    .cmd("PING")
                    .query(c)?;
                Ok(done.map(|_| Ok(next)))
            })?;
            match outcome {
                Some(Ok(next)) => return Ok(next),
                Some(Err(why)) => return Err(misuse(why)),
                None => continue,
            }
        }
        Err(misuse(
            "update_counter gave up: the dict changed under it 1000 times",
        ))
    }
}
