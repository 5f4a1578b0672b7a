//! `Counter`, `Value` and `Dict` on Redis, answering the same methods with the same encoded
//! arguments and results as the manager's objects, so the proxies do not know which they
//! talk to. Counter: INCRBY on a decimal string. Value: GET/SET, compare-and-swap in a
//! script. Dict: a hash of encoded keys to encoded values; `update_counter` is an optimistic
//! transaction (WATCH, then MULTI), exact in `i64`, since the values are our codec's bytes.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{RedisStore, open_object, prefix, scripts};
use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
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

/// One object on Redis.
#[derive(Debug)]
pub(crate) struct RedisObject {
    store: Arc<RedisStore>,
    kind: Kind,
    /// The key holding its state.
    key: String,
}

fn misuse(message: &str) -> Error {
    Error::Remote(RemoteError::new(RemoteErrorKind::Misuse, message))
}

fn unknown(method: &str) -> Error {
    Error::Remote(RemoteError::new(
        RemoteErrorKind::UnknownMethod,
        format!("no method {method} on Redis"),
    ))
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
        Ok(Arc::new(RedisObject {
            store: Arc::clone(store),
            kind,
            key: format!("{}v", prefix(name)),
        }))
    }

    /// Calls `method` with `args` as the manager's object of this kind would answer it.
    pub(crate) fn call<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R> {
        let mut encoded = Vec::new();
        codec::encode_into(args, &mut encoded)?;
        let mut out = Vec::new();
        match self.kind {
            Kind::Counter => self.counter(method, &encoded, &mut out)?,
            Kind::Value => self.value(method, &encoded, &mut out)?,
            Kind::Dict => self.dict(method, &encoded, &mut out)?,
        }
        codec::decode_exact(&out)
    }

    fn counter(&self, method: &str, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let key = &self.key;
        let value: i64 = match method {
            "get" => self
                .store
                .run(|c| ::redis::cmd("GET").arg(key).query::<Option<i64>>(c))?
                .unwrap_or(0),
            "add" => {
                let (delta,): (i64,) = codec::decode_exact(args)?;
                self.store
                    .run(|c| ::redis::cmd("INCRBY").arg(key).arg(delta).query(c))
                    .map_err(|e| match e {
                        Error::Remote(r) if r.message().contains("overflow") => {
                            misuse("the counter would overflow")
                        }
                        other => other,
                    })?
            }
            "set" => {
                let (value,): (i64,) = codec::decode_exact(args)?;
                self.store
                    .run(|c| {
                        ::redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("GET")
                            .query::<Option<i64>>(c)
                    })?
                    .unwrap_or(0)
            }
            other => return Err(unknown(other)),
        };
        codec::encode_into(&value, out)
    }

    fn value(&self, method: &str, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let key = &self.key;
        match method {
            "get" => {
                let value: Option<Vec<u8>> =
                    self.store.run(|c| ::redis::cmd("GET").arg(key).query(c))?;
                codec::encode_into(&value.map(Bytes), out)
            }
            "set" => {
                let (value,): (Bytes,) = codec::decode_exact(args)?;
                self.store.run(|c| {
                    ::redis::cmd("SET")
                        .arg(key)
                        .arg(value.0.as_slice())
                        .query::<()>(c)
                })?;
                codec::encode_into(&(), out)
            }
            "swap" => {
                let (value,): (Bytes,) = codec::decode_exact(args)?;
                let old: Option<Vec<u8>> = self.store.run(|c| {
                    ::redis::cmd("SET")
                        .arg(key)
                        .arg(value.0.as_slice())
                        .arg("GET")
                        .query(c)
                })?;
                codec::encode_into(&old.map(Bytes), out)
            }
            "compare_and_swap" => {
                let (expected, new): (Option<Bytes>, Bytes) = codec::decode_exact(args)?;
                let swapped: u8 = self.store.run(|c| {
                    scripts::COMPARE_AND_SWAP
                        .key(key)
                        .arg(u8::from(expected.is_some()))
                        .arg(expected.as_ref().map_or(&[][..], |e| e.0.as_slice()))
                        .arg(new.0.as_slice())
                        .invoke(c)
                })?;
                codec::encode_into(&(swapped == 1), out)
            }
            other => Err(unknown(other)),
        }
    }

    fn dict(&self, method: &str, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let key = &self.key;
        let store = &self.store;
        match method {
            "insert" => {
                let (field, value): (Bytes, Bytes) = codec::decode_exact(args)?;
                let old: Option<Vec<u8>> = store.run(|c| {
                    scripts::HASH_INSERT
                        .key(key)
                        .arg(field.0.as_slice())
                        .arg(value.0.as_slice())
                        .invoke(c)
                })?;
                codec::encode_into(&old.map(Bytes), out)
            }
            "get" => {
                let (field,): (Bytes,) = codec::decode_exact(args)?;
                let value: Option<Vec<u8>> = store.run(|c| {
                    ::redis::cmd("HGET")
                        .arg(key)
                        .arg(field.0.as_slice())
                        .query(c)
                })?;
                codec::encode_into(&value.map(Bytes), out)
            }
            "remove" => {
                let (field,): (Bytes,) = codec::decode_exact(args)?;
                let old: Option<Vec<u8>> = store.run(|c| {
                    scripts::HASH_REMOVE
                        .key(key)
                        .arg(field.0.as_slice())
                        .invoke(c)
                })?;
                codec::encode_into(&old.map(Bytes), out)
            }
            "contains" => {
                let (field,): (Bytes,) = codec::decode_exact(args)?;
                let there: bool = store.run(|c| {
                    ::redis::cmd("HEXISTS")
                        .arg(key)
                        .arg(field.0.as_slice())
                        .query(c)
                })?;
                codec::encode_into(&there, out)
            }
            "len" => {
                let n: u64 = store.run(|c| ::redis::cmd("HLEN").arg(key).query(c))?;
                codec::encode_into(&n, out)
            }
            "keys" => {
                let keys: Vec<Vec<u8>> = store.run(|c| ::redis::cmd("HKEYS").arg(key).query(c))?;
                let keys: Vec<Bytes> = keys.into_iter().map(Bytes).collect();
                codec::encode_into(&keys, out)
            }
            "items" => {
                let items: Vec<(Vec<u8>, Vec<u8>)> =
                    store.run(|c| ::redis::cmd("HGETALL").arg(key).query(c))?;
                let items: Vec<(Bytes, Bytes)> = items
                    .into_iter()
                    .map(|(k, v)| (Bytes(k), Bytes(v)))
                    .collect();
                codec::encode_into(&items, out)
            }
            "clear" => {
                store.run(|c| ::redis::cmd("DEL").arg(key).query::<()>(c))?;
                codec::encode_into(&(), out)
            }
            "insert_if_absent" => {
                let (field, value): (Bytes, Bytes) = codec::decode_exact(args)?;
                let added: bool = store.run(|c| {
                    ::redis::cmd("HSETNX")
                        .arg(key)
                        .arg(field.0.as_slice())
                        .arg(value.0.as_slice())
                        .query(c)
                })?;
                codec::encode_into(&added, out)
            }
            "update_counter" => {
                let (field, delta): (Bytes, i64) = codec::decode_exact(args)?;
                let next = self.update_counter(&field, delta)?;
                codec::encode_into(&next, out)
            }
            other => Err(unknown(other)),
        }
    }

    /// Adds `delta` to the `i64` at `field`, exactly: read under WATCH, write in MULTI,
    /// again if another client changed the hash in between.
    fn update_counter(&self, field: &Bytes, delta: i64) -> Result<i64> {
        let key = &self.key;
        for _ in 0..1000 {
            // None: the hash changed, again; Some(Err(why)): refused.
            let outcome: Option<std::result::Result<i64, &'static str>> = self.store.run(|c| {
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
