//! `TaskQueue` on Redis: a stream with one consumer group. XADD pushes, XREADGROUP takes
//! (blocking outside scripts, in slices), XACK + XDEL acks, XAUTOCLAIM with the lease
//! timeout as min-idle-time hands out expired leases, the delivery count gives the attempt,
//! out of attempts goes to a second stream (the dead letters), delays and retries wait in a
//! sorted set moved to the stream when due, dedup keys are SET NX.
//!
//! Unlike the manager, a lease is not tied to a connection: a worker that dies leaves its
//! leases until they expire (the lease timeout), and then another takes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::objects::Kind;
use super::{RedisStore, flow, prefix, scripts};
use crate::error::{Error, Result};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::kinds::tasks::{Outcome, TaskStatus};
use crate::proxies::{LeaseOps, Target, TaskBackend, Write};
use crate::store::Bytes;
use crate::store::tasks::{
    ACKED, Counts, DeadLetter, Delivery, EXPIRED, Failed, Node, Parent, PushOptions, Settings,
};

/// The longest single block of a waiting take: between blocks it reruns the take script,
/// so delayed tasks that came due and expired leases are seen within this.
const BLOCK_SLICE: Duration = Duration::from_millis(100);

/// A delivery as the take script returns it: entry, id, attempt, enqueued, payload,
/// lease end.
type TakeRow = (String, u64, u32, u64, Vec<u8>, u64);

/// A dead letter as the script lists it: id, attempts, enqueued, payload, reasons.
type DeadRow = (u64, u32, u64, Vec<u8>, Vec<String>);

/// The kind recorded in a task queue's meta hash.
pub(crate) const KIND: &str = "monogusa.TaskQueue";

/// One task queue on Redis.
pub(crate) struct RedisTasks {
    store: Arc<RedisStore>,
    name: String,
    prefix: String,
    meta: String,
    stream: String,
    delayed: String,
    dead: String,
    /// This handle's consumer name in the group: unique per process and handle.
    consumer: String,
    /// The settings in force (the creator's).
    settings: Settings,
    next_token: AtomicU64,
}

impl RedisTasks {
    /// Opens (or creates, with `settings`) the queue `name`.
    pub(crate) fn open(
        store: &Arc<RedisStore>,
        name: &str,
        tag: &str,
        settings: Settings,
    ) -> Result<Arc<RedisTasks>> {
        super::open_object(store, name, KIND, tag)?;
        let prefix = prefix(name);
        let meta = format!("{prefix}meta");
        let stream = format!("{prefix}s");
        let kept: (u64, u32, u64, u64, u64) = store.run(|c| {
            scripts::TASKS_SETUP
                .key(&meta)
                .key(&stream)
                .arg(settings.lease_ms)
                .arg(settings.max_attempts)
                .arg(settings.backoff_base_ms)
                .arg(settings.backoff_max_ms)
                .arg(
                    settings
                        .result_ttl_ms
                        .unwrap_or(flow::DEFAULT_RESULT_TTL_MS),
                )
                .invoke(c)
        })?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        Ok(Arc::new(RedisTasks {
            store: Arc::clone(store),
            name: name.to_string(),
            delayed: format!("{prefix}z"),
            dead: format!("{prefix}dead"),
            meta,
            stream,
            prefix,
            consumer: format!(
                "{}-{}-{:016x}",
                crate::workers::host_name(),
                std::process::id(),
                u64::from_le_bytes(random)
            ),
            settings: Settings {
                lease_ms: kept.0,
                max_attempts: kept.1,
                backoff_base_ms: kept.2,
                backoff_max_ms: kept.3,
                result_ttl_ms: Some(kept.4),
            },
            next_token: AtomicU64::new(1),
        }))
    }

    fn take_now(&self, n: u32) -> Result<Vec<TakeRow>> {
        self.store.run(|c| {
            scripts::TAKE
                .key(&self.meta)
                .key(&self.stream)
                .key(&self.delayed)
                .key(&self.dead)
                .arg(&self.consumer)
                .arg(n)
                .arg(&self.prefix)
                .invoke(c)
        })
    }

    /// Waits up to `block` for a new entry, without taking it (the next take script does).
    fn wait_for_entries(&self, block: Duration) -> Result<()> {
        let ms = block.as_millis().max(1) as u64;
        // XREAD from the stream's end: returns when something is added, or after `ms`.
        self.store.run_blocking(block, |c| {
            ::redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(ms)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg("$")
                .query::<::redis::Value>(c)
                .map(|_| ())
        })
    }
}

impl TaskBackend for RedisTasks {
    fn push(&self, tasks: Vec<(Bytes, PushOptions)>) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(tasks.len());
        // Scripts take their arguments in one message: push in slices.
        for chunk in tasks.chunks(500) {
            let ids: Vec<u64> = self.store.run(|c| {
                let mut invocation = scripts::PUSH.prepare_invoke();
                invocation
                    .key(&self.meta)
                    .key(&self.stream)
                    .key(&self.delayed)
                    .arg(&self.prefix);
                for (payload, options) in chunk {
                    invocation
                        .arg(payload.0.as_slice())
                        .arg(options.delay_ms)
                        .arg(options.max_attempts.unwrap_or(0))
                        .arg(options.dedup.as_deref().unwrap_or(""));
                }
                invocation.invoke(c)
            })?;
            out.extend(ids);
        }
        Ok(out)
    }

    fn take(&self, n: u32, timeout: Duration) -> Result<(Vec<Delivery>, Arc<dyn LeaseOps>)> {
        let deadline = Instant::now() + timeout;
        let rows = loop {
            let rows = self.take_now(n)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !rows.is_empty() || left.is_zero() {
                break rows;
            }
            self.wait_for_entries(left.min(BLOCK_SLICE))?;
        };
        let leases = Arc::new(RedisLeases {
            tasks: self.shared(),
            entries: Mutex::new(HashMap::new()),
        });
        let mut delivered = Vec::with_capacity(rows.len());
        for (entry, id, attempt, enqueued, payload, lease_until) in rows {
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            leases.entries.lock().insert(token, entry);
            delivered.push(Delivery {
                id,
                token,
                attempt,
                enqueued,
                lease_until,
                payload: Bytes(payload),
            });
        }
        Ok((delivered, leases))
    }

    fn join(&self, timeout: Duration) -> Result<bool> {
        crate::proxies::join_by_polling(|| self.stats(), timeout)
    }

    fn push_graph(&self, nodes: Vec<Node>) -> Result<Vec<u64>> {
        crate::store::tasks::check_graph(&nodes).map_err(Error::Remote)?;
        // One script, so one message: the graph is checked and pushed whole.
        let pushed: Vec<(u64, u8)> = self.store.run(|c| {
            let mut invocation = flow::PUSH_GRAPH.prepare_invoke();
            invocation
                .key(&self.meta)
                .key(&self.stream)
                .key(&self.delayed)
                .key(&self.dead)
                .arg(&self.prefix);
            for node in &nodes {
                invocation
                    .arg(node.payload.0.as_slice())
                    .arg(node.options.delay_ms)
                    .arg(node.options.max_attempts.unwrap_or(0))
                    .arg(node.options.dedup.as_deref().unwrap_or(""))
                    .arg(u8::from(node.options.run_if_parents_die))
                    .arg(node.after.len());
                for parent in &node.after {
                    match *parent {
                        Parent::Task(id) => invocation.arg("t").arg(id),
                        Parent::Node(at) => invocation.arg("n").arg(at),
                    };
                }
            }
            invocation.invoke(c)
        })?;
        Ok(pushed.into_iter().map(|(id, _)| id).collect())
    }

    fn inputs(&self, id: u64) -> Result<Vec<(u64, Outcome)>> {
        let slots: Vec<(u64, u8, Vec<u8>)> = self
            .store
            .run(|c| flow::INPUTS.arg(&self.prefix).arg(id).invoke(c))?;
        Ok(slots
            .into_iter()
            .map(|(parent, state, value)| (parent, slot_outcome(state, value)))
            .collect())
    }

    fn status(&self, id: u64) -> Result<TaskStatus> {
        let (code, attempt): (u8, u32) = self.store.run(|c| {
            flow::STATUS
                .key(&self.stream)
                .arg(&self.prefix)
                .arg(id)
                .invoke(c)
        })?;
        Ok(match code {
            0 => TaskStatus::Ready,
            1 => TaskStatus::Delayed,
            2 => TaskStatus::Leased { attempt },
            3 => TaskStatus::Waiting,
            4 => TaskStatus::Done,
            5 => TaskStatus::Dead,
            _ => TaskStatus::Unknown,
        })
    }

    fn outcome(&self, id: u64, timeout: Duration) -> Result<Outcome> {
        let found = self.outcomes(vec![id], timeout)?;
        Ok(found
            .into_iter()
            .next()
            .map_or(Outcome::Pending, |(_, o)| o))
    }

    fn outcomes(&self, ids: Vec<u64>, timeout: Duration) -> Result<Vec<(u64, Outcome)>> {
        // Redis cannot wait on a change: it is asked every 50 ms.
        let until = Instant::now() + timeout;
        loop {
            let rows: Vec<::redis::Value> = self.store.run(|c| {
                let mut invocation = flow::OUTCOMES.prepare_invoke();
                invocation.arg(&self.prefix);
                for id in &ids {
                    invocation.arg(*id);
                }
                invocation.invoke(c)
            })?;
            let found: Vec<(u64, Outcome)> = ids
                .iter()
                .zip(rows)
                .filter_map(|(&id, row)| outcome_row(row).map(|o| (id, o)))
                .collect();
            let left = until.saturating_duration_since(Instant::now());
            if !found.is_empty() || left.is_zero() {
                return Ok(found);
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    fn stats(&self) -> Result<Counts> {
        let (ready, delayed, leased, dead, done, oldest): (u64, u64, u64, u64, u64, u64) =
            self.store.run(|c| {
                scripts::STATS
                    .key(&self.meta)
                    .key(&self.stream)
                    .key(&self.delayed)
                    .key(&self.dead)
                    .invoke(c)
            })?;
        Ok(Counts {
            ready,
            delayed,
            leased,
            dead,
            done,
            oldest_ready_ms: oldest,
        })
    }

    fn settings(&self) -> Result<Settings> {
        Ok(self.settings)
    }

    fn dead(&self, after: u64, limit: u32) -> Result<Vec<DeadLetter>> {
        let rows: Vec<DeadRow> = self
            .store
            .run(|c| scripts::DEAD.key(&self.dead).arg(&self.prefix).invoke(c))?;
        let mut letters: Vec<DeadLetter> = rows
            .into_iter()
            .filter(|row| row.0 > after)
            .map(|(id, attempts, enqueued, payload, reasons)| DeadLetter {
                id,
                attempts,
                enqueued,
                reasons,
                payload: Bytes(payload),
            })
            .collect();
        letters.sort_by_key(|l| l.id);
        letters.truncate(limit as usize);
        Ok(letters)
    }

    fn requeue(&self, id: Option<u64>) -> Result<u64> {
        let id = id.map_or(String::new(), |id| id.to_string());
        self.store.run(|c| {
            scripts::REQUEUE
                .key(&self.stream)
                .key(&self.dead)
                .arg(&self.prefix)
                .arg(&id)
                .invoke(c)
        })
    }

    fn purge_dead(&self) -> Result<u64> {
        self.store
            .run(|c| scripts::PURGE.key(&self.dead).arg(&self.prefix).invoke(c))
    }
}

impl RedisTasks {
    /// A lease script's invocation with what every one takes: the keys (`meta`, `stream`,
    /// and with `all_keys` `delayed` and `dead`), then consumer, key prefix and entry. Callers
    /// add their own arguments.
    fn lease_script<'a>(
        &self,
        script: &'a ::redis::Script,
        all_keys: bool,
        entry: &str,
    ) -> ::redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.meta).key(&self.stream);
        if all_keys {
            invocation.key(&self.delayed).key(&self.dead);
        }
        invocation.arg(&self.consumer).arg(&self.prefix).arg(entry);
        invocation
    }

    /// How long a done task's record is kept (the settings in force, read at open).
    fn result_ttl(&self) -> u64 {
        self.settings
            .result_ttl_ms
            .unwrap_or(flow::DEFAULT_RESULT_TTL_MS)
    }

    /// This queue, shared with the leases it hands out.
    fn shared(&self) -> Arc<RedisTasks> {
        Arc::new(RedisTasks {
            store: Arc::clone(&self.store),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            meta: self.meta.clone(),
            stream: self.stream.clone(),
            delayed: self.delayed.clone(),
            dead: self.dead.clone(),
            consumer: self.consumer.clone(),
            settings: self.settings,
            next_token: AtomicU64::new(0),
        })
    }
}

/// The leases of one take: which stream entry each token stands for.
struct RedisLeases {
    tasks: Arc<RedisTasks>,
    entries: Mutex<HashMap<u64, String>>,
}

impl RedisLeases {
    /// An ack script's answer (0: acked, the lease is gone) as an ack status.
    fn settled(&self, token: u64, status: u8) -> u8 {
        if status == 0 {
            self.entries.lock().remove(&token);
            ACKED
        } else {
            EXPIRED
        }
    }

    fn entry(&self, id: u64, token: u64) -> Result<String> {
        self.entries
            .lock()
            .get(&token)
            .cloned()
            .ok_or_else(|| lease_over(id))
    }
}

fn lease_over(id: u64) -> Error {
    Error::Remote(crate::error::RemoteError::new(
        crate::error::RemoteErrorKind::LeaseExpired,
        format!(
            "task {id}'s lease is over (it expired or was returned): it may be running elsewhere"
        ),
    ))
}

/// An input slot's outcome from its state and value (see `flow`).
fn slot_outcome(state: u8, value: Vec<u8>) -> Outcome {
    match state {
        1 => Outcome::Done(None),
        2 => Outcome::Done(Some(Bytes(value))),
        3 => Outcome::Dead(reasons(&value)),
        _ => Outcome::Pending,
    }
}

/// A dead parent's reasons, as its slot keeps them.
fn reasons(value: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(value)
        .split(flow::REASONS_SEPARATOR)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// One row of the outcomes script: `None` if the task has not finished.
fn outcome_row(row: ::redis::Value) -> Option<Outcome> {
    use ::redis::{FromRedisValue, Value};
    let Value::Array(items) = row else {
        return None;
    };
    let mut items = items.into_iter();
    let code = items.next().and_then(|v| u8::from_redis_value(v).ok())?;
    let rest = items.next();
    match code {
        1 => Some(Outcome::Done(
            rest.and_then(|v| Vec::<u8>::from_redis_value(v).ok())
                .map(Bytes),
        )),
        2 => Some(Outcome::Dead(
            rest.and_then(|v| Vec::<String>::from_redis_value(v).ok())
                .unwrap_or_default(),
        )),
        3 => Some(Outcome::Unknown),
        _ => None,
    }
}

/// Equal jitter: between half and all of the backoff.
fn jitter() -> f64 {
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    0.5 + f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX) / 2.0
}

impl LeaseOps for RedisLeases {
    fn ack(&self, leases: &[(u64, u64)]) -> Result<Vec<u8>> {
        let t = &self.tasks;
        let mut statuses = Vec::with_capacity(leases.len());
        for &(id, token) in leases {
            let Ok(entry) = self.entry(id, token) else {
                statuses.push(EXPIRED);
                continue;
            };
            let status: u8 = t.store.run(|c| {
                t.lease_script(&scripts::ACK, false, &entry)
                    .arg(0)
                    .arg("")
                    .arg(t.result_ttl())
                    .invoke(c)
            })?;
            if status == 0 {
                self.entries.lock().remove(&token);
                statuses.push(ACKED);
            } else {
                statuses.push(EXPIRED);
            }
        }
        Ok(statuses)
    }

    fn ack_with(&self, id: u64, token: u64, result: Bytes, writes: Vec<Write>) -> Result<u8> {
        let t = &self.tasks;
        // Each write's key, checked to be Redis's object of the right kind before anything.
        let key = |target: &Target, kind: Kind| -> Result<String> {
            match target {
                Target::Redis(object) if object.kind == kind => Ok(object.key.clone()),
                _ => Err(Error::Remote(RemoteError::new(
                    RemoteErrorKind::BadArguments,
                    "an ack on Redis writes Redis's counters, dicts and values of this store: \
                     nothing was applied",
                ))),
            }
        };
        let mut args: Vec<Vec<u8>> = Vec::new();
        for write in &writes {
            match write {
                Write::Add(target, delta) => args.extend([
                    b"a".to_vec(),
                    key(target, Kind::Counter)?.into_bytes(),
                    delta.to_string().into_bytes(),
                ]),
                Write::Insert(target, field, value) => args.extend([
                    b"i".to_vec(),
                    key(target, Kind::Dict)?.into_bytes(),
                    field.0.clone(),
                    value.0.clone(),
                ]),
                Write::Remove(target, field) => args.extend([
                    b"r".to_vec(),
                    key(target, Kind::Dict)?.into_bytes(),
                    field.0.clone(),
                ]),
                Write::Set(target, value) => args.extend([
                    b"s".to_vec(),
                    key(target, Kind::Value)?.into_bytes(),
                    value.0.clone(),
                ]),
                Write::Push(payload, options) => args.extend([
                    b"p".to_vec(),
                    payload.0.clone(),
                    options.delay_ms.to_string().into_bytes(),
                    options.max_attempts.unwrap_or(0).to_string().into_bytes(),
                    options.dedup.clone().unwrap_or_default().into_bytes(),
                ]),
            }
        }
        let Ok(entry) = self.entry(id, token) else {
            return Ok(EXPIRED);
        };
        let status: u8 = t.store.run(|c| {
            let mut invocation = t.lease_script(&scripts::ACK_WITH, false, &entry);
            invocation
                .arg(u8::from(!result.0.is_empty()))
                .arg(result.0.as_slice())
                .arg(t.result_ttl());
            for arg in &args {
                invocation.arg(arg.as_slice());
            }
            invocation.invoke(c)
        })?;
        Ok(self.settled(token, status))
    }

    fn complete(&self, id: u64, token: u64, result: Bytes) -> Result<u8> {
        let t = &self.tasks;
        let Ok(entry) = self.entry(id, token) else {
            return Ok(EXPIRED);
        };
        let status: u8 = t.store.run(|c| {
            t.lease_script(&scripts::ACK, false, &entry)
                .arg(u8::from(!result.0.is_empty()))
                .arg(result.0.as_slice())
                .arg(t.result_ttl())
                .invoke(c)
        })?;
        Ok(self.settled(token, status))
    }

    fn fail(&self, id: u64, token: u64, reason: String, retry: bool) -> Result<Failed> {
        let t = &self.tasks;
        let entry = self.entry(id, token)?;
        let outcome: i64 = t.store.run(|c| {
            t.lease_script(&scripts::FAIL, true, &entry)
                .arg(&reason)
                .arg(jitter())
                .arg(u8::from(retry))
                .invoke(c)
        })?;
        self.entries.lock().remove(&token);
        match outcome {
            -2 => Err(lease_over(id)),
            -1 => Ok(Failed::Dead),
            at => Ok(Failed::RetryAt(at as u64)),
        }
    }

    fn extend(&self, id: u64, token: u64, extra_ms: u64) -> Result<u64> {
        let t = &self.tasks;
        let entry = self.entry(id, token)?;
        let until: i64 = t.store.run(|c| {
            t.lease_script(&scripts::EXTEND, false, &entry)
                .arg(extra_ms)
                .invoke(c)
        })?;
        if until < 0 {
            return Err(lease_over(id));
        }
        Ok(until as u64)
    }

    fn release(&self, id: u64, token: u64) -> Result<()> {
        let t = &self.tasks;
        let entry = self.entry(id, token)?;
        let status: u8 = t
            .store
            .run(|c| t.lease_script(&scripts::RELEASE, false, &entry).invoke(c))?;
        self.entries.lock().remove(&token);
        if status == 0 {
            Ok(())
        } else {
            Err(lease_over(id))
        }
    }
}
