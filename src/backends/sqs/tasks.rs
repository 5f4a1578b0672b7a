//! `TaskQueue` on SQS: push is SendMessage (DelaySeconds up to 15 minutes), take is
//! ReceiveMessage with long polling (up to 20 s per request) and the lease as
//! VisibilityTimeout, ack is DeleteMessage, extend is ChangeMessageVisibility, the attempt is
//! ApproximateReceiveCount plus the failures the message carries, and dead letters go to
//! the queue `NAME-dead`, named in the queue's redrive policy (which also catches messages
//! whose leases kept expiring).
//!
//! A failed task is sent again (with its attempt count and reasons as message attributes,
//! delayed by the backoff) and the delivered copy deleted: SQS messages cannot change, and
//! this keeps every reason. What SQS cannot do is refused with a clear error, never
//! emulated badly: dedup keys (standard queues have none), delays over 15 minutes, leases
//! over 12 hours, messages over the queue's size limit. It keeps no count of acked tasks
//! (`stats().done` is 0) and no age of the oldest; standard queues order best-effort.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value as Json, json};

use super::SqsStore;
use crate::base64;
use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
use crate::proxies::{LeaseOps, TaskBackend};
use crate::store::Bytes;
use crate::store::tasks::{
    ACKED, Counts, DeadLetter, Delivery, EXPIRED, Failed, PushOptions, Settings,
};

/// SQS's limits.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_POLL: Duration = Duration::from_secs(20);
const MAX_RECEIVE: u32 = 10;

/// Our message attributes.
const ID: &str = "monogusa-id";
const ATTEMPTS: &str = "monogusa-attempts";
const ENQUEUED: &str = "monogusa-enqueued";
const REASONS: &str = "monogusa-reasons";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whole seconds, rounded up (SQS counts in seconds).
fn seconds_up(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

fn refused(kind: RemoteErrorKind, message: String) -> Error {
    Error::Remote(RemoteError::new(kind, message))
}

/// A message as received.
struct Received {
    receipt: String,
    id: u64,
    attempts: u32,
    receives: u32,
    enqueued: u64,
    reasons: Vec<String>,
    payload: Vec<u8>,
}

/// One task queue on SQS (and its dead-letter queue).
pub(crate) struct SqsTasks {
    store: Arc<SqsStore>,
    name: String,
    url: String,
    dead_url: String,
    settings: Settings,
    /// The largest message the queue takes (its MaximumMessageSize).
    max_message: usize,
    next_token: AtomicU64,
}

impl SqsTasks {
    /// Opens (or creates, with `settings`) the queue `name` and its dead-letter queue.
    pub(crate) fn open(
        store: &Arc<SqsStore>,
        name: &str,
        tag: &str,
        settings: Settings,
    ) -> Result<Arc<SqsTasks>> {
        let lease = Duration::from_millis(settings.lease_ms);
        if lease > MAX_VISIBILITY {
            return Err(Error::Config(format!(
                "a lease of {lease:?} is over SQS's 12-hour visibility limit"
            )));
        }
        if Duration::from_millis(settings.backoff_max_ms) > MAX_DELAY {
            return Err(Error::Config(format!(
                "a max backoff of {:?} is over SQS's 15-minute delay limit",
                Duration::from_millis(settings.backoff_max_ms)
            )));
        }
        let dead = store.call("CreateQueue", &json!({"QueueName": format!("{name}-dead")}))?;
        let dead_url = dead["QueueUrl"].as_str().unwrap_or_default().to_string();
        let dead_arn = store.call(
            "GetQueueAttributes",
            &json!({"QueueUrl": dead_url, "AttributeNames": ["QueueArn"]}),
        )?["Attributes"]["QueueArn"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let redrive = json!({"deadLetterTargetArn": dead_arn, "maxReceiveCount": settings.max_attempts.to_string()});
        // An existing queue keeps its settings: CreateQueue with other attributes fails, so
        // look it up first.
        let existing = store.call("GetQueueUrl", &json!({"QueueName": name}));
        let url = match existing {
            Ok(found) => found["QueueUrl"].as_str().unwrap_or_default().to_string(),
            Err(_) => store.call(
                "CreateQueue",
                &json!({
                    "QueueName": name,
                    "Attributes": {
                        "VisibilityTimeout": seconds_up(lease).max(1).to_string(),
                        "RedrivePolicy": redrive.to_string(),
                    },
                    "tags": {
                        "monogusa-kind": crate::store::tasks::SERVICE,
                        "monogusa-type": tag,
                        "monogusa-backoff-ms": settings.backoff_base_ms.to_string(),
                        "monogusa-max-backoff-ms": settings.backoff_max_ms.to_string(),
                        "monogusa-lease-ms": settings.lease_ms.to_string(),
                    },
                }),
            )?["QueueUrl"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let tags = store.call("ListQueueTags", &json!({"QueueUrl": url}))?;
        let tags = &tags["Tags"];
        if let Some(kept) = tags["monogusa-type"].as_str()
            && kept != tag
        {
            return Err(refused(
                RemoteErrorKind::WrongService,
                format!("{name} holds {kept}, not {tag}"),
            ));
        }
        let attributes = store.call(
            "GetQueueAttributes",
            &json!({"QueueUrl": url, "AttributeNames": ["All"]}),
        )?;
        let attributes = &attributes["Attributes"];
        let number = |v: &Json| v.as_str().and_then(|s| s.parse::<u64>().ok());
        let kept_redrive: Option<Json> = attributes["RedrivePolicy"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok());
        let kept = Settings {
            lease_ms: number(&tags["monogusa-lease-ms"]).unwrap_or(settings.lease_ms),
            max_attempts: kept_redrive
                .as_ref()
                .and_then(|r| {
                    r["maxReceiveCount"]
                        .as_u64()
                        .or_else(|| number(&r["maxReceiveCount"]))
                })
                .map_or(settings.max_attempts, |n| n as u32),
            backoff_base_ms: number(&tags["monogusa-backoff-ms"])
                .unwrap_or(settings.backoff_base_ms),
            backoff_max_ms: number(&tags["monogusa-max-backoff-ms"])
                .unwrap_or(settings.backoff_max_ms),
            result_ttl_ms: None,
        };
        let max_message = number(&attributes["MaximumMessageSize"]).unwrap_or(262_144) as usize;
        Ok(Arc::new(SqsTasks {
            store: Arc::clone(store),
            name: name.to_string(),
            url,
            dead_url,
            settings: kept,
            max_message,
            next_token: AtomicU64::new(1),
        }))
    }

    /// Sends one message to `queue`.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        queue: &str,
        id: u64,
        attempts: u32,
        enqueued: u64,
        reasons: &[String],
        payload: &[u8],
        delay: Duration,
    ) -> Result<()> {
        let body = base64::encode(payload);
        if body.len() + 512 > self.max_message {
            return Err(refused(
                RemoteErrorKind::LimitExceeded,
                format!(
                    "a task of {} bytes is over the SQS queue {}'s message limit of {} bytes (base64 adds a third)",
                    payload.len(),
                    self.name,
                    self.max_message
                ),
            ));
        }
        if delay > MAX_DELAY {
            return Err(refused(
                RemoteErrorKind::BadArguments,
                format!("a delay of {delay:?} is over SQS's 15-minute limit"),
            ));
        }
        let number = |n: u64| json!({"DataType": "Number", "StringValue": n.to_string()});
        self.store.call(
            "SendMessage",
            &json!({
                "QueueUrl": queue,
                "MessageBody": body,
                "DelaySeconds": seconds_up(delay),
                "MessageAttributes": {
                    ID: number(id),
                    ATTEMPTS: number(u64::from(attempts)),
                    ENQUEUED: number(enqueued),
                    REASONS: {"DataType": "String", "StringValue": serde_json::to_string(reasons).unwrap_or_default()},
                },
            }),
        )?;
        Ok(())
    }

    /// Receives up to `n` messages of `queue`, long-polling up to `wait`.
    fn receive(
        &self,
        queue: &str,
        n: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>> {
        let answer = self.store.call(
            "ReceiveMessage",
            &json!({
                "QueueUrl": queue,
                "MaxNumberOfMessages": n.clamp(1, MAX_RECEIVE),
                "WaitTimeSeconds": wait.as_secs().min(MAX_POLL.as_secs()),
                "VisibilityTimeout": seconds_up(visibility),
                "AttributeNames": ["All"],
                "MessageSystemAttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
            }),
        )?;
        let mut out = Vec::new();
        for message in answer["Messages"].as_array().into_iter().flatten() {
            let attribute = |name: &str| message["MessageAttributes"][name]["StringValue"].as_str();
            let number = |name: &str| {
                attribute(name)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let payload = message["Body"].as_str().and_then(base64::decode);
            let receipt = message["ReceiptHandle"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let Some(payload) = payload else {
                log::warn!(
                    "SQS queue {}: a message that is not ours is left alone",
                    self.name
                );
                continue;
            };
            out.push(Received {
                receipt,
                id: number(ID),
                attempts: number(ATTEMPTS) as u32,
                receives: message["Attributes"]["ApproximateReceiveCount"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1),
                enqueued: number(ENQUEUED),
                reasons: attribute(REASONS)
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default(),
                payload,
            });
        }
        Ok(out)
    }

    fn delete(&self, queue: &str, receipt: &str) -> Result<()> {
        self.store.call(
            "DeleteMessage",
            &json!({"QueueUrl": queue, "ReceiptHandle": receipt}),
        )?;
        Ok(())
    }

    fn set_visibility(&self, queue: &str, receipt: &str, visibility: Duration) -> Result<()> {
        self.store.call(
            "ChangeMessageVisibility",
            &json!({"QueueUrl": queue, "ReceiptHandle": receipt, "VisibilityTimeout": seconds_up(visibility)}),
        )?;
        Ok(())
    }

    /// Every dead letter (received, then made visible again), or with `take`, removed.
    fn dead_letters(&self, take: impl Fn(&Received) -> bool) -> Result<Vec<Received>> {
        let mut all: Vec<Received> = Vec::new();
        loop {
            let batch = self.receive(
                &self.dead_url,
                MAX_RECEIVE,
                Duration::ZERO,
                Duration::from_secs(30),
            )?;
            if batch.is_empty() {
                break;
            }
            all.extend(batch);
        }
        for letter in &all {
            if take(letter) {
                self.delete(&self.dead_url, &letter.receipt)?;
            } else {
                self.set_visibility(&self.dead_url, &letter.receipt, Duration::ZERO)?;
            }
        }
        Ok(all)
    }
}

fn random_id() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    // 53 bits: exact as a JSON number anywhere.
    Ok(u64::from_le_bytes(bytes) >> 11)
}

impl TaskBackend for SqsTasks {
    fn push(&self, tasks: Vec<(Bytes, PushOptions)>) -> Result<Vec<u64>> {
        let mut ids = Vec::with_capacity(tasks.len());
        for (payload, options) in tasks {
            if options.dedup.is_some() {
                return Err(refused(
                    RemoteErrorKind::BadArguments,
                    "SQS standard queues have no dedup keys (use a manager or Redis)".into(),
                ));
            }
            if options.max_attempts.is_some() {
                return Err(refused(
                    RemoteErrorKind::BadArguments,
                    "on SQS, attempts are the queue's redrive policy's, not a task's".into(),
                ));
            }
            let id = random_id()?;
            self.send(
                &self.url,
                id,
                0,
                now_ms(),
                &[],
                &payload.0,
                Duration::from_millis(options.delay_ms),
            )?;
            ids.push(id);
        }
        Ok(ids)
    }

    fn take(&self, n: u32, timeout: Duration) -> Result<(Vec<Delivery>, Arc<dyn LeaseOps>)> {
        let lease = Duration::from_millis(self.settings.lease_ms).max(Duration::from_secs(1));
        let deadline = Instant::now() + timeout;
        let leases = Arc::new(SqsLeases {
            tasks: self.shared(),
            receipts: Mutex::new(std::collections::HashMap::new()),
        });
        let mut delivered = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if delivered.is_empty() {
                left
            } else {
                Duration::ZERO
            };
            let batch = self.receive(&self.url, n - delivered.len() as u32, wait, lease)?;
            let got_any = !batch.is_empty();
            for message in batch {
                let attempt = message.attempts + message.receives;
                if attempt > self.settings.max_attempts {
                    // Its leases kept expiring: out of attempts, to the dead letters.
                    let mut reasons = message.reasons.clone();
                    reasons.push("its lease expired".into());
                    self.send(
                        &self.dead_url,
                        message.id,
                        attempt - 1,
                        message.enqueued,
                        &reasons,
                        &message.payload,
                        Duration::ZERO,
                    )?;
                    self.delete(&self.url, &message.receipt)?;
                    continue;
                }
                let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                let lease_until = now_ms() + lease.as_millis() as u64;
                leases.receipts.lock().insert(
                    token,
                    (message.receipt.clone(), lease_until, message.clone_meta()),
                );
                delivered.push(Delivery {
                    id: message.id,
                    token,
                    attempt,
                    enqueued: message.enqueued,
                    lease_until,
                    payload: Bytes(message.payload),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if delivered.len() as u32 >= n || (!delivered.is_empty() && !got_any) || left.is_zero()
            {
                break;
            }
            if delivered.is_empty() && left < Duration::from_secs(1) {
                // Long polls count whole seconds: wait out a short remainder in small steps.
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
        }
        Ok((delivered, leases))
    }

    fn join(&self, timeout: Duration) -> Result<bool> {
        crate::proxies::join_by_polling(|| self.stats(), timeout)
    }

    fn stats(&self) -> Result<Counts> {
        let number = |v: &Json| v.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let main = self.store.call(
            "GetQueueAttributes",
            &json!({"QueueUrl": self.url, "AttributeNames": ["All"]}),
        )?;
        let dead = self.store.call(
            "GetQueueAttributes",
            &json!({"QueueUrl": self.dead_url, "AttributeNames": ["ApproximateNumberOfMessages"]}),
        )?;
        let a = &main["Attributes"];
        Ok(Counts {
            ready: number(&a["ApproximateNumberOfMessages"]),
            delayed: number(&a["ApproximateNumberOfMessagesDelayed"]),
            leased: number(&a["ApproximateNumberOfMessagesNotVisible"]),
            dead: number(&dead["Attributes"]["ApproximateNumberOfMessages"]),
            done: 0,
            oldest_ready_ms: 0,
        })
    }

    fn settings(&self) -> Result<Settings> {
        Ok(self.settings)
    }

    fn dead(&self, after: u64, limit: u32) -> Result<Vec<DeadLetter>> {
        let mut letters: Vec<DeadLetter> = self
            .dead_letters(|_| false)?
            .into_iter()
            .filter(|l| l.id > after)
            .map(|l| DeadLetter {
                id: l.id,
                attempts: l.attempts,
                enqueued: l.enqueued,
                reasons: l.reasons,
                payload: Bytes(l.payload),
            })
            .collect();
        letters.sort_by_key(|l| l.id);
        letters.truncate(limit as usize);
        Ok(letters)
    }

    fn requeue(&self, id: Option<u64>) -> Result<u64> {
        let chosen = |l: &Received| id.is_none_or(|id| l.id == id);
        let mut n = 0;
        for letter in self.dead_letters(chosen)? {
            if chosen(&letter) {
                self.send(
                    &self.url,
                    letter.id,
                    0,
                    letter.enqueued,
                    &[],
                    &letter.payload,
                    Duration::ZERO,
                )?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn purge_dead(&self) -> Result<u64> {
        Ok(self.dead_letters(|_| true)?.len() as u64)
    }
}

impl Received {
    /// What a lease needs to send the task again.
    fn clone_meta(&self) -> Meta {
        Meta {
            id: self.id,
            attempt: self.attempts + self.receives,
            enqueued: self.enqueued,
            reasons: self.reasons.clone(),
            payload: self.payload.clone(),
        }
    }
}

/// A leased message's content, to send it again on failure.
struct Meta {
    id: u64,
    attempt: u32,
    enqueued: u64,
    reasons: Vec<String>,
    payload: Vec<u8>,
}

impl SqsTasks {
    fn shared(&self) -> Arc<SqsTasks> {
        Arc::new(SqsTasks {
            store: Arc::clone(&self.store),
            name: self.name.clone(),
            url: self.url.clone(),
            dead_url: self.dead_url.clone(),
            settings: self.settings,
            max_message: self.max_message,
            next_token: AtomicU64::new(0),
        })
    }
}

/// The leases of one take: each token's receipt handle, lease end and content.
struct SqsLeases {
    tasks: Arc<SqsTasks>,
    receipts: Mutex<std::collections::HashMap<u64, (String, u64, Meta)>>,
}

fn lease_over(id: u64) -> Error {
    refused(
        RemoteErrorKind::LeaseExpired,
        format!(
            "task {id}'s lease is over (it expired or was returned): it may be running elsewhere"
        ),
    )
}

impl SqsLeases {
    /// The receipt of a lease still running; removed from the take if `finish`.
    fn live(&self, id: u64, token: u64, finish: bool) -> Result<(String, Meta)> {
        let mut receipts = self.receipts.lock();
        let Some((receipt, until, _)) = receipts.get(&token) else {
            return Err(lease_over(id));
        };
        // Past its end, another worker may hold it: never act on an old receipt.
        if now_ms() > *until {
            receipts.remove(&token);
            return Err(lease_over(id));
        }
        let receipt = receipt.clone();
        if finish {
            let (_, _, meta) = receipts.remove(&token).expect("looked up above");
            Ok((receipt, meta))
        } else {
            let meta = &receipts[&token].2;
            Ok((
                receipt,
                Meta {
                    id: meta.id,
                    attempt: meta.attempt,
                    enqueued: meta.enqueued,
                    reasons: Vec::new(),
                    payload: Vec::new(),
                },
            ))
        }
    }
}

impl LeaseOps for SqsLeases {
    fn ack(&self, leases: &[(u64, u64)]) -> Result<Vec<u8>> {
        let mut statuses = Vec::with_capacity(leases.len());
        for &(id, token) in leases {
            match self.live(id, token, true) {
                Ok((receipt, _)) => match self.tasks.delete(&self.tasks.url, &receipt) {
                    Ok(()) => statuses.push(ACKED),
                    Err(e) if e.remote_kind() == Some(RemoteErrorKind::LeaseExpired) => {
                        statuses.push(EXPIRED)
                    }
                    Err(e) => return Err(e),
                },
                Err(_) => statuses.push(EXPIRED),
            }
        }
        Ok(statuses)
    }

    fn fail(&self, id: u64, token: u64, reason: String, retry: bool) -> Result<Failed> {
        let (receipt, meta) = self.live(id, token, true)?;
        let t = &self.tasks;
        let mut reasons = meta.reasons;
        reasons.push(reason);
        if !retry || meta.attempt >= t.settings.max_attempts {
            t.send(
                &t.dead_url,
                meta.id,
                meta.attempt,
                meta.enqueued,
                &reasons,
                &meta.payload,
                Duration::ZERO,
            )?;
            t.delete(&t.url, &receipt)?;
            return Ok(Failed::Dead);
        }
        let base =
            t.settings.backoff_base_ms as f64 * 2f64.powi(meta.attempt.saturating_sub(1) as i32);
        let delay = Duration::from_millis(base.min(t.settings.backoff_max_ms as f64) as u64);
        t.send(
            &t.url,
            meta.id,
            meta.attempt,
            meta.enqueued,
            &reasons,
            &meta.payload,
            delay,
        )?;
        t.delete(&t.url, &receipt)?;
        Ok(Failed::RetryAt(now_ms() + seconds_up(delay) * 1000))
    }

    fn extend(&self, id: u64, token: u64, extra_ms: u64) -> Result<u64> {
        let (receipt, _) = self.live(id, token, false)?;
        let extra = Duration::from_millis(extra_ms).max(Duration::from_secs(1));
        if extra > MAX_VISIBILITY {
            return Err(refused(
                RemoteErrorKind::BadArguments,
                format!("a lease of {extra:?} is over SQS's 12-hour visibility limit"),
            ));
        }
        self.tasks
            .set_visibility(&self.tasks.url, &receipt, extra)?;
        let until = now_ms() + seconds_up(extra) * 1000;
        if let Some(entry) = self.receipts.lock().get_mut(&token) {
            entry.1 = until;
        }
        Ok(until)
    }

    fn release(&self, id: u64, token: u64) -> Result<()> {
        let (receipt, _) = self.live(id, token, true)?;
        self.tasks
            .set_visibility(&self.tasks.url, &receipt, Duration::ZERO)
    }
}
