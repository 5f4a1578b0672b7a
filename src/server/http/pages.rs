//! What the HTTP side answers: the page, its state as JSON and as Server-Sent Events, dead
//! letters and their actions, the log tail, and Prometheus `/metrics`. Everything is read
//! in-process from the manager's own objects (no socket round trip, no user types: payloads
//! are shown by size).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use super::super::Shared;
use super::super::objects::{DESCRIBE_PAGE, HeldRefs};
use super::request::Request;
use super::{HttpState, Response};
use crate::kinds::dict::DictKindClient;
use crate::kinds::list::ListKindClient;
use crate::kinds::logs::LogsKindClient;
use crate::kinds::queue::QueueKindClient;
use crate::kinds::tasks::TaskKindClient;
use crate::kinds::workers::WorkersKindClient;
use crate::service::{Caller, ObjectDescription};
use crate::store::tasks::{Counts, DURATION_BOUNDS_MS, DeadLetter, RunMetrics};
use crate::workers::{LogPage, WorkerStatus};

/// The page: plain HTML, CSS and JS, served from the binary.
const PAGE: &str = include_str!("page.html");

/// How often the events stream sends the state.
const EVERY: Duration = Duration::from_secs(1);

/// The most objects and task queues the page lists (beyond, it says how many there are).
const MAX_LISTED: usize = 500;

/// What one pass over the objects found: the first [`MAX_LISTED`] objects and task queues, and
/// how many there are. Pages are dropped as they are read, so a manager of 100,000 objects
/// costs no more memory than a page and the lists.
struct Scan {
    listed: Vec<ObjectDescription>,
    queues: Vec<ObjectDescription>,
    objects_total: u64,
    queues_total: u64,
}

fn scan(shared: &Shared) -> Scan {
    let mut found = Scan {
        listed: Vec::new(),
        queues: Vec::new(),
        objects_total: 0,
        queues_total: 0,
    };
    let mut after = 0;
    loop {
        let page = shared
            .objects
            .describe(Vec::new(), after, DESCRIBE_PAGE)
            .objects;
        let full = page.len() == DESCRIBE_PAGE;
        after = page.last().map_or(after, |o| o.id);
        for object in page {
            found.objects_total += 1;
            if object.service == crate::store::tasks::SERVICE {
                found.queues_total += 1;
                if found.queues.len() < MAX_LISTED {
                    found.queues.push(object.clone());
                }
            }
            if found.listed.len() < MAX_LISTED {
                found.listed.push(object);
            }
        }
        if !full {
            return found;
        }
    }
}

/// The id of the built-in object `name`, by name (no scan).
fn named(shared: &Shared, name: &str, service: &str) -> Option<u64> {
    shared.objects.find_shared(name, service)
}

/// Object `id`, called in-process (a detached caller, no connection) through its kind's
/// generated stub: `TaskKindClient::from_handle(InProcess { shared, id }).stats()`.
struct InProcess<'a> {
    shared: &'a Shared,
    id: u64,
}

impl crate::stub::Calls for InProcess<'_> {
    fn call<R: serde::de::DeserializeOwned, A: serde::Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> crate::Result<R> {
        self.shared
            .objects
            .call_typed(
                self.id,
                method,
                args,
                &mut HeldRefs::default(),
                &Caller::detached(),
            )
            .map_err(crate::Error::Remote)
    }

    fn send<R: serde::de::DeserializeOwned, A: serde::Serialize>(
        &self,
        _: &str,
        _: &A,
    ) -> crate::Result<crate::Pending<R>> {
        Err(crate::Error::Config(
            "in-process calls are not pipelined".into(),
        ))
    }
}

/// The task queue `id`'s declared stub, in-process.
fn tasks(shared: &Shared, id: u64) -> TaskKindClient<InProcess<'_>> {
    TaskKindClient::from_handle(InProcess { shared, id })
}

/// The task queues and their counts.
fn queues(shared: &Shared, queues: &[ObjectDescription]) -> Vec<(String, u64, Counts)> {
    queues
        .iter()
        .filter_map(|o| {
            let counts = tasks(shared, o.id).stats().ok()?;
            Some((o.name.clone().unwrap_or_default(), o.id, counts))
        })
        .collect()
}

/// The worker registry's list of workers, or of those recently gone.
fn registry(shared: &Shared, gone: bool) -> Vec<WorkerStatus> {
    named(shared, "monogusa.workers", crate::store::workers::SERVICE)
        .and_then(|id| {
            let registry = WorkersKindClient::from_handle(InProcess { shared, id });
            if gone {
                registry.gone()
            } else {
                registry.list()
            }
            .ok()
        })
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The whole state the page shows, as JSON text: built at most once per [`EVERY`] and shared
/// by every viewer (each `/events` stream used to build its own, every second).
pub(super) fn shared_state(shared: &Shared, http: &HttpState) -> Arc<str> {
    let mut snapshot = http.snapshot.lock();
    if let Some((made, text)) = &*snapshot
        && made.elapsed() < EVERY - Duration::from_millis(100)
    {
        return Arc::clone(text);
    }
    let text: Arc<str> = state(shared).to_string().into();
    http.states_built.fetch_add(1, SeqCst);
    *snapshot = Some((std::time::Instant::now(), Arc::clone(&text)));
    text
}

/// The state the page shows, as JSON: the first [`MAX_LISTED`] objects and task queues (and
/// how many there are), workers, connections, counters.
fn state(shared: &Shared) -> Json {
    let found = scan(shared);
    let stats = shared.stats();
    let queues: Vec<Json> = queues(shared, &found.queues)
        .into_iter()
        .map(|(name, _, c)| {
            json!({"name": name, "ready": c.ready, "delayed": c.delayed, "leased": c.leased,
                   "dead": c.dead, "done": c.done, "oldest_ready_ms": c.oldest_ready_ms})
        })
        .collect();
    let workers: Vec<Json> = registry(shared, false)
        .into_iter()
        .map(|w| {
            let busy = !w.in_hand.is_empty();
            json!({"name": w.name, "pid": w.pid, "host": w.host, "state": w.state.to_string(),
                   "activity": if busy { "busy" } else { "idle" }, "restarts": w.restarts,
                   "heartbeat_age_ms": w.heartbeat_age.map(|a| a.as_millis() as u64),
                   "done": w.done, "failed": w.failed, "in_hand": w.in_hand})
        })
        .collect();
    let workers_gone: Vec<Json> = registry(shared, true)
        .into_iter()
        .map(|w| json!({"name": w.name, "pid": w.pid, "state": w.state.to_string()}))
        .collect();
    let shared_objects: Vec<Json> = found
        .listed
        .iter()
        .map(|o| {
            // Containers say how many items they hold.
            let one = InProcess { shared, id: o.id };
            let size: Option<u64> = match o.service.as_str() {
                crate::store::dict::SERVICE => DictKindClient::from_handle(one).len().ok(),
                crate::store::list::SERVICE => ListKindClient::from_handle(one).len().ok(),
                crate::store::queue::SERVICE => QueueKindClient::from_handle(one).len().ok(),
                _ => None,
            };
            json!({"id": o.id, "name": o.name, "kind": o.service, "references": o.references, "size": size,
                   "internal": o.is_internal()})
        })
        .collect();
    let connections: Vec<Json> = shared
        .connection_list()
        .into_iter()
        .map(|c| {
            json!({"door": c.door, "peer": c.peer, "authenticated": c.authenticated, "calls": c.calls,
                   "since_ms": c.since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)})
        })
        .collect();
    json!({
        "time_ms": now_ms(),
        "stats": stats,
        "connections": connections,
        "queues": queues,
        "workers": workers,
        "workers_gone": workers_gone,
        "objects": shared_objects,
        "objects_total": found.objects_total,
        "queues_total": found.queues_total,
    })
}

fn json_response(value: &Json) -> Response {
    Response::new(200, "application/json", value.to_string())
}

/// Answers every path but `/healthz` and `/events`.
pub(super) fn route(shared: &Shared, http: &HttpState, request: &Request) -> Response {
    let path = request.path.as_str();
    let method = request.method.as_str();
    match (method, path) {
        ("GET", "/") => Response::new(200, "text/html; charset=utf-8", PAGE),
        // Fresh for a request (bounded by the HTTP side's 64 connections); the streams,
        // which repeat, share one.
        ("GET", "/api/state") => json_response(&state(shared)),
        ("GET", "/metrics") => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(shared, http),
        ),
        ("GET", "/api/logs") => {
            let after = request
                .query_param("after")
                .and_then(|a| a.parse::<u64>().ok());
            let worker = request
                .query_param("worker")
                .filter(|w| !w.is_empty())
                .map(str::to_string);
            json_response(&logs(shared, after, worker))
        }
        (_, p) if p.starts_with("/api/queues/") => {
            queue_action(shared, request, &p["/api/queues/".len()..])
        }
        ("GET", _) => Response::text(404, "no such page\n"),
        _ => Response::text(405, "method not allowed\n"),
    }
}

/// `GET /api/queues/NAME/dead`, `POST …/requeue` (all, or `?id=`), `POST …/purge`,
/// `GET …/groups` (the tasks pushed after others, with their parents' progress),
/// `GET …/task?id=N` (one task's story).
fn queue_action(shared: &Shared, request: &Request, rest: &str) -> Response {
    let method = request.method.as_str();
    let Some((name, action)) = rest.rsplit_once('/') else {
        return Response::text(404, "no such queue action\n");
    };
    let Some(queue) = named(shared, name, crate::store::tasks::SERVICE) else {
        return Response::text(404, "no such task queue\n");
    };
    match (method, action) {
        ("GET", "dead") => {
            let letters: Vec<DeadLetter> = tasks(shared, queue).dead(0, 1000).unwrap_or_default();
            let letters: Vec<Json> = letters
                .into_iter()
                .map(|l| {
                    json!({"id": l.id, "attempts": l.attempts, "enqueued": l.enqueued,
                                "reasons": l.reasons, "payload_bytes": l.payload.0.len()})
                })
                .collect();
            json_response(&json!({"queue": name, "dead": letters}))
        }
        ("POST", "requeue") => {
            let n = tasks(shared, queue).requeue(None).unwrap_or(0);
            json_response(&json!({"requeued": n}))
        }
        ("POST", "purge") => {
            let n = tasks(shared, queue).purge_dead().unwrap_or(0);
            json_response(&json!({"purged": n}))
        }
        ("GET", "groups") => {
            let groups = tasks(shared, queue).groups(0, 1000).unwrap_or_default();
            let groups: Vec<Json> = groups
                .into_iter()
                .map(|g| {
                    json!({"id": g.id, "status": g.status.to_string(), "size": g.size,
                           "done": g.done, "dead": g.dead})
                })
                .collect();
            json_response(&json!({"queue": name, "groups": groups}))
        }
        ("GET", "task") => {
            let Some(id) = request
                .query_param("id")
                .and_then(|i| i.parse::<u64>().ok())
            else {
                return Response::text(400, "which task? ?id=N\n");
            };
            let Ok(t) = tasks(shared, queue).task(id) else {
                return Response::text(500, "the queue did not answer\n");
            };
            let parents: Vec<Json> = t
                .parents
                .iter()
                .map(|(p, s)| json!({"id": p, "status": s.to_string()}))
                .collect();
            json_response(
                &json!({"queue": name, "id": t.id, "status": t.status.to_string(),
                "enqueued": t.enqueued, "attempts": t.attempts, "max_attempts": t.max_attempts,
                "reasons": t.reasons, "lease_until": t.lease_until, "parents": parents,
                "finished": t.finished, "result_bytes": t.result_bytes,
                "payload_bytes": t.payload_bytes}),
            )
        }
        ("GET", _) => Response::text(404, "no such queue action\n"),
        _ => Response::text(405, "method not allowed\n"),
    }
}

/// The log lines after `after` (or the last ones), of `worker` or of all; never waits.
pub(super) fn log_page(shared: &Shared, after: Option<u64>, worker: Option<String>) -> LogPage {
    named(shared, "monogusa.logs", crate::store::logs::SERVICE)
        .and_then(|id| {
            LogsKindClient::from_handle(InProcess { shared, id })
                .read(after, worker, 200, Some(0))
                .ok()
        })
        .unwrap_or(LogPage {
            lines: Vec::new(),
            next: after.unwrap_or(0),
            dropped: Vec::new(),
        })
}

/// `HH:MM:SS` in UTC.
pub(super) fn clock(time: SystemTime) -> String {
    crate::workers::clock(time)
}

fn logs(shared: &Shared, after: Option<u64>, worker: Option<String>) -> Json {
    let page = log_page(shared, after, worker);
    let lines: Vec<Json> = page
        .lines
        .into_iter()
        .map(|l| json!({"seq": l.seq, "source": l.source, "text": l.text,
                        "time_ms": l.time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)}))
        .collect();
    json!({"lines": lines, "next": page.next})
}

/// `GET /events`: the state as Server-Sent Events, every second, until the page goes away or
/// the manager stops.
pub(super) fn events(
    shared: &Arc<Shared>,
    http: &HttpState,
    stream: &mut impl Write,
) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
    )?;
    while !shared.stopping.load(SeqCst) {
        let event = format!("data: {}\n\n", shared_state(shared, http));
        stream.write_all(event.as_bytes())?;
        stream.flush()?;
        std::thread::sleep(EVERY);
    }
    Ok(())
}

/// One metric in the text exposition format.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A label value, escaped as the format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus `/metrics`: connections, calls and errors, handshakes, store, task queues by
/// state and acked totals, workers by state.
fn metrics(shared: &Shared, http: &HttpState) -> String {
    let s = shared.stats();
    let mut out = String::new();
    let one = |v: u64| vec![(String::new(), v)];
    metric(
        &mut out,
        "monogusa_connections_open",
        "gauge",
        "Connections open now.",
        &one(s.connections_open),
    );
    metric(
        &mut out,
        "monogusa_connections_accepted_total",
        "counter",
        "Connections accepted.",
        &one(s.connections_accepted),
    );
    metric(
        &mut out,
        "monogusa_connections_refused_total",
        "counter",
        "Connections refused (limits).",
        &one(s.connections_refused),
    );
    metric(
        &mut out,
        "monogusa_calls_total",
        "counter",
        "Calls served.",
        &one(s.calls),
    );
    metric(
        &mut out,
        "monogusa_errors_total",
        "counter",
        "Failures, by kind.",
        &[
            ("{kind=\"handshake\"}".into(), s.handshake_failures),
            ("{kind=\"authentication\"}".into(), s.auth_failures),
            ("{kind=\"protocol\"}".into(), s.protocol_errors),
            ("{kind=\"keepalive_cut\"}".into(), s.keepalive_cuts),
        ],
    );
    metric(
        &mut out,
        "monogusa_handshakes_in_progress",
        "gauge",
        "Handshakes under way.",
        &one(s.handshakes_in_progress),
    );
    metric(
        &mut out,
        "monogusa_store_bytes",
        "gauge",
        "Bytes the shared objects hold.",
        &one(s.store_bytes),
    );
    metric(
        &mut out,
        "monogusa_shared_objects",
        "gauge",
        "Built-in shared objects.",
        &one(s.shared_objects),
    );
    metric(
        &mut out,
        "monogusa_dashboard_state_builds_total",
        "counter",
        "Times the dashboard's state was built: at most once a second, whatever the viewers.",
        &one(http.states_built.load(SeqCst)),
    );
    metric(
        &mut out,
        "monogusa_idle_threads",
        "gauge",
        "Connection threads waiting to serve the next connection.",
        &one(s.idle_threads),
    );
    let queues = queues(shared, &scan(shared).queues);
    let mut depths = Vec::new();
    let mut done = Vec::new();
    for (name, _, c) in &queues {
        let q = label(name);
        for (state, n) in [
            ("ready", c.ready),
            ("delayed", c.delayed),
            ("leased", c.leased),
            ("dead", c.dead),
        ] {
            depths.push((format!("{{queue=\"{q}\",state=\"{state}\"}}"), n));
        }
        done.push((format!("{{queue=\"{q}\"}}"), c.done));
    }
    metric(
        &mut out,
        "monogusa_task_queue_tasks",
        "gauge",
        "Tasks in a queue, by state.",
        &depths,
    );
    metric(
        &mut out,
        "monogusa_task_queue_acked_total",
        "counter",
        "Tasks acked since the queue was created.",
        &done,
    );
    let runs: Vec<(String, RunMetrics)> = queues
        .iter()
        .filter_map(|(name, id, _)| Some((label(name), tasks(shared, *id).metrics().ok()?)))
        .collect();
    let per_queue = |value: fn(&RunMetrics) -> u64| -> Vec<(String, u64)> {
        runs.iter()
            .map(|(q, r)| (format!("{{queue=\"{q}\"}}"), value(r)))
            .collect()
    };
    metric(
        &mut out,
        "monogusa_task_queue_failed_total",
        "counter",
        "Failed deliveries since the manager started.",
        &per_queue(|r| r.failed),
    );
    metric(
        &mut out,
        "monogusa_task_queue_dead_total",
        "counter",
        "Tasks moved to the dead letters since the manager started.",
        &per_queue(|r| r.dead),
    );
    let _ = writeln!(
        out,
        "# HELP monogusa_task_duration_seconds How long acked or failed deliveries ran, from take to ack or fail."
    );
    let _ = writeln!(out, "# TYPE monogusa_task_duration_seconds histogram");
    for (q, run) in &runs {
        let mut cumulative = 0;
        for (i, bound) in DURATION_BOUNDS_MS.iter().enumerate() {
            cumulative += run.buckets.get(i).copied().unwrap_or(0);
            let le = *bound as f64 / 1000.0;
            let _ = writeln!(
                out,
                "monogusa_task_duration_seconds_bucket{{queue=\"{q}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let count: u64 = run.buckets.iter().sum();
        let sum = run.sum_ms as f64 / 1000.0;
        let _ = writeln!(
            out,
            "monogusa_task_duration_seconds_bucket{{queue=\"{q}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "monogusa_task_duration_seconds_sum{{queue=\"{q}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "monogusa_task_duration_seconds_count{{queue=\"{q}\"}} {count}"
        );
    }
    let mut by_state = std::collections::BTreeMap::<String, u64>::new();
    let mut failed = 0;
    for w in registry(shared, false) {
        *by_state.entry(w.state.to_string()).or_default() += 1;
        failed += w.failed;
    }
    let states: Vec<(String, u64)> = by_state
        .into_iter()
        .map(|(state, n)| (format!("{{state=\"{}\"}}", label(&state)), n))
        .collect();
    metric(
        &mut out,
        "monogusa_workers",
        "gauge",
        "Registered workers, by state.",
        &states,
    );
    metric(
        &mut out,
        "monogusa_worker_failed_tasks",
        "gauge",
        "Tasks failed, as the registered workers report them.",
        &one(failed),
    );
    out
}
