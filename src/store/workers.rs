//! The manager's side of the worker registry: who works for this manager, in what state, with
//! what in hand, and when each was last heard from. Workers report themselves (heartbeats),
//! supervisors report what they started and how it ended; `monogusa stat` reads it.
//!
//! Times of heartbeats are taken on the manager's own monotonic clock when a report arrives,
//! so a worker on a machine whose clock is off is never shown as lost, nor a lost one as live.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::Entries;
use crate::error::{RemoteError, RemoteErrorKind, Result};
pub(crate) use crate::kinds::workers::{SERVICE, WorkersKindServer};
use crate::kinds::workers::{WorkerReport, WorkerState, WorkerStatus, WorkersKind};
use crate::service::Hooks;

/// At most this many workers are remembered; beyond it the longest-ended ones are forgotten.
const MAX_WORKERS: usize = 4096;

/// A worker not heard from for this long (when its reports do not say) is shown as lost.
const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(5);

/// How many gone workers are remembered, most recent first.
const MAX_GONE: usize = 32;

/// The most bytes of a reported host name, and of one task id in hand (longer are cut).
const MAX_FIELD_BYTES: usize = 128;

/// The most task ids in hand a report keeps (a worker's threads rarely hold more): with the
/// cuts above, an entry stays under 10 KiB, and the registry under 40 MiB at its 4096 workers.
const MAX_IN_HAND: usize = 64;

#[derive(Default)]
struct Entry {
    pid: Option<u32>,
    host: Option<String>,
    state: Option<WorkerState>,
    restarts: u32,
    started: Option<SystemTime>,
    last_heartbeat: Option<Instant>,
    /// When its supervisor last said it sees it running.
    last_supervised: Option<Instant>,
    /// When the state last changed (to forget the longest-ended first).
    changed: Option<Instant>,
    lost_after: Option<Duration>,
    done: u64,
    failed: u64,
    in_hand: Vec<String>,
}

/// The manager's side: entries by worker name behind one lock (reports are small and rare).
pub(crate) struct SharedWorkers {
    state: Mutex<Workers>,
    /// How long an ended or lost worker stays listed.
    forget_after: Duration,
}

struct Workers {
    entries: HashMap<String, Entry>,
    /// Those ended or lost for longer than `forget_after`, most recent first.
    gone: VecDeque<WorkerStatus>,
}

impl SharedWorkers {
    /// An empty registry (it is never kept: workers report again after a restart).
    pub(crate) fn new(forget_after: Duration, entries: Entries) -> Result<Self, RemoteError> {
        if !entries.is_empty() {
            return Err(super::bad_entry(SERVICE));
        }
        Ok(SharedWorkers {
            state: Mutex::new(Workers {
                entries: HashMap::new(),
                gone: VecDeque::new(),
            }),
            forget_after,
        })
    }
}

/// Whether a state means the process is (meant to be) alive and heartbeating.
fn is_live(state: &WorkerState) -> bool {
    matches!(state, WorkerState::Running | WorkerState::Stopping)
}

impl WorkersKind for SharedWorkers {
    fn report(&self, report: WorkerReport) -> Result<(), RemoteError> {
        SharedWorkers::report(self, report)
    }

    fn list(&self) -> Vec<WorkerStatus> {
        SharedWorkers::list(self)
    }

    fn forget(&self, name: String) -> bool {
        let mut state = self.state.lock();
        let known = state.entries.remove(&name).is_some();
        state.gone.retain(|w| w.name != name);
        known
    }

    fn gone(&self) -> Vec<WorkerStatus> {
        let mut state = self.state.lock();
        self.sweep(&mut state, Instant::now());
        state.gone.iter().cloned().collect()
    }
}

impl Hooks for SharedWorkers {}

impl SharedWorkers {
    fn report(&self, report: WorkerReport) -> Result<(), RemoteError> {
        if report.name.is_empty() || report.name.len() > 256 {
            return Err(RemoteError::new(
                RemoteErrorKind::BadArguments,
                "a worker's name must be 1 to 256 bytes",
            ));
        }
        let now = Instant::now();
        let mut state = self.state.lock();
        let Workers { entries, gone } = &mut *state;
        if !entries.contains_key(&report.name) && entries.len() >= MAX_WORKERS {
            forget_longest_ended(entries);
        }
        // Back under a name that had gone: no longer gone.
        gone.retain(|w| w.name != report.name);
        let entry = entries.entry(report.name).or_default();
        if let Some(pid) = report.pid {
            if entry.pid.is_some_and(|old| old != pid) {
                // A new process under this name: what the last one did is not its own.
                entry.last_heartbeat = None;
                entry.started = None;
                entry.done = 0;
                entry.failed = 0;
                entry.in_hand.clear();
            }
            entry.pid = Some(pid);
        }
        if report.supervised {
            entry.last_supervised = Some(now);
        }
        if report.heartbeat {
            entry.last_heartbeat = Some(now);
            entry.started.get_or_insert_with(SystemTime::now);
        }
        if let Some(state) = report.state {
            entry.state = Some(state);
            entry.changed = Some(now);
        }
        if let Some(host) = report.host {
            entry.host = Some(super::logs::cut(host, MAX_FIELD_BYTES));
        }
        if let Some(restarts) = report.restarts {
            entry.restarts = restarts;
        }
        if let Some(done) = report.done {
            entry.done = done;
        }
        if let Some(failed) = report.failed {
            entry.failed = failed;
        }
        if let Some(in_hand) = report.in_hand {
            entry.in_hand = in_hand
                .into_iter()
                .take(MAX_IN_HAND)
                .map(|id| super::logs::cut(id, MAX_FIELD_BYTES))
                .collect();
        }
        if let Some(ms) = report.lost_after_ms {
            entry.lost_after = Some(Duration::from_millis(ms));
        }
        Ok(())
    }

    fn list(&self) -> Vec<WorkerStatus> {
        let now = Instant::now();
        let mut state = self.state.lock();
        self.sweep(&mut state, now);
        let mut list: Vec<WorkerStatus> = state
            .entries
            .iter()
            .map(|(name, e)| status(name, e, now).0)
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Moves the workers ended or lost for longer than `forget_after` to the gone list.
    fn sweep(&self, state: &mut Workers, now: Instant) {
        let Workers { entries, gone } = state;
        let expired: Vec<String> = entries
            .iter()
            .filter(|(name, e)| {
                status(name, e, now)
                    .1
                    .is_some_and(|since| now.saturating_duration_since(since) > self.forget_after)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            let entry = entries.remove(&name).expect("listed above");
            gone.push_front(status(&name, &entry, now).0);
            gone.truncate(MAX_GONE);
        }
    }
}

/// What a worker's entry says now, and since when it has been ended or lost (`None` while
/// it is alive, restarting, or never heartbeat nor supervised).
fn status(name: &str, e: &Entry, now: Instant) -> (WorkerStatus, Option<Instant>) {
    let age = e.last_heartbeat.map(|t| now.saturating_duration_since(t));
    let mut state = e.state.clone().unwrap_or(WorkerState::Running);
    let lost_after = e.lost_after.unwrap_or(DEFAULT_LOST_AFTER);
    let mut ended_since = None;
    if is_live(&state) {
        // Silent past its deadline while meant to be alive: lost (hung, or its machine
        // gone). A program that never heartbeats (not built on `Worker`) is alive while its
        // supervisor says so; lost when its supervisor falls silent (killed).
        let last_word = e.last_heartbeat.or(e.last_supervised);
        if let Some(last) = last_word
            && now.saturating_duration_since(last) > lost_after
        {
            state = WorkerState::Lost;
            ended_since = Some(last + lost_after);
        }
    } else if !matches!(state, WorkerState::Restarting) {
        ended_since = e.changed;
    }
    let status = WorkerStatus {
        name: name.to_string(),
        pid: e.pid,
        host: e.host.clone(),
        state,
        restarts: e.restarts,
        started: e.started,
        heartbeat_age: age,
        done: e.done,
        failed: e.failed,
        in_hand: e.in_hand.clone(),
    };
    (status, ended_since)
}

/// Makes room: forgets the worker that ended longest ago (or, if none ended, the one whose
/// state changed longest ago).
fn forget_longest_ended(entries: &mut HashMap<String, Entry>) {
    let victim = entries
        .iter()
        .min_by_key(|(_, e)| (e.state.as_ref().is_some_and(is_live), e.changed))
        .map(|(name, _)| name.clone());
    if let Some(name) = victim {
        entries.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit's registry flood (huge hosts and in-hand lists in every report grew it to
    /// 2.94 GB): fields are cut, and an entry stays small whatever a report carries.
    #[test]
    fn reports_with_huge_fields_are_cut_to_size() {
        let workers = SharedWorkers::new(Duration::from_secs(60), Entries::default()).unwrap();
        workers
            .report(WorkerReport {
                name: "w".into(),
                host: Some("h".repeat(1 << 20)),
                in_hand: Some(vec!["t".repeat(1 << 16); 10_000]),
                ..WorkerReport::default()
            })
            .unwrap();
        let listed = workers.list();
        let w = &listed[0];
        assert!(w.host.as_ref().unwrap().len() <= MAX_FIELD_BYTES);
        assert_eq!(w.in_hand.len(), MAX_IN_HAND);
        assert!(w.in_hand.iter().all(|id| id.len() <= MAX_FIELD_BYTES));
        let too_long = WorkerReport {
            name: "n".repeat(257),
            ..WorkerReport::default()
        };
        assert!(workers.report(too_long).is_err());
    }
}
