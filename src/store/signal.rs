//! The manager's side of `Event` and `Barrier`, for processes waiting for each other: the
//! state, its limits and its methods (the client's side is in `proxies`).

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::waiting::{Waiting, deadline, wait_while};
use crate::error::{RemoteError, Result};
pub(crate) use crate::kinds::signal::{BARRIER, BarrierKindServer, EVENT, EventKindServer};
use crate::kinds::signal::{BarrierKind, EventKind};
use crate::service::{Caller, Hooks};

#[derive(Default)]
struct EventState {
    set: bool,
    closing: bool,
}

#[derive(Default)]
pub(crate) struct SharedEvent {
    state: Mutex<EventState>,
    changed: Condvar,
}

impl SharedEvent {
    fn state(&self) -> MutexGuard<'_, EventState> {
        self.state.lock()
    }
}

impl EventKind for SharedEvent {
    fn set(&self) {
        self.state().set = true;
        self.changed.notify_all();
    }

    fn clear(&self) {
        self.state().set = false;
    }

    fn is_set(&self) -> bool {
        self.state().set
    }

    fn wait(&self, timeout_ms: Option<u64>, caller: &Caller<'_>) -> Result<bool, RemoteError> {
        let (_state, set) = wait_while(
            self.state(),
            &self.changed,
            Waiting {
                deadline: deadline(timeout_ms),
                what: "event",
                caller,
            },
            |s| s.closing,
            |s| !s.set,
            |_| {},
        )?;
        Ok(set)
    }
}

impl Hooks for SharedEvent {
    fn shutdown(&self) {
        self.state().closing = true;
        self.changed.notify_all();
    }
}

struct BarrierState {
    parties: u64,
    /// Waiters arrived in the current round.
    arrived: u64,
    /// Rounds completed; a waiter leaves when this moves past the round it joined.
    round: u64,
    closing: bool,
}

pub(crate) struct SharedBarrier {
    state: Mutex<BarrierState>,
    released: Condvar,
}

impl SharedBarrier {
    pub(crate) fn new(parties: u64) -> Self {
        SharedBarrier {
            state: Mutex::new(BarrierState {
                parties,
                arrived: 0,
                round: 0,
                closing: false,
            }),
            released: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, BarrierState> {
        self.state.lock()
    }
}

impl BarrierKind for SharedBarrier {
    fn wait(
        &self,
        timeout_ms: Option<u64>,
        caller: &Caller<'_>,
    ) -> Result<Option<u64>, RemoteError> {
        let mut state = self.state();
        let position = state.arrived;
        state.arrived += 1;
        if state.arrived == state.parties {
            // The last one in releases the round.
            state.arrived = 0;
            state.round += 1;
            self.released.notify_all();
            return Ok(Some(position));
        }
        let round = state.round;
        let (mut state, passed) = wait_while(
            state,
            &self.released,
            Waiting {
                deadline: deadline(timeout_ms),
                what: "barrier",
                caller,
            },
            |s| s.closing,
            |s| s.round == round,
            // A party that hung up no longer counts toward this round (if it passed, the
            // round is over and nothing is undone).
            |s| {
                if s.round == round {
                    s.arrived -= 1;
                }
            },
        )?;
        if !passed {
            state.arrived -= 1; // gave up: the round no longer counts on us
        }
        Ok(passed.then_some(position))
    }

    fn parties(&self) -> u64 {
        self.state().parties
    }

    fn waiting(&self) -> u64 {
        self.state().arrived
    }
}

impl Hooks for SharedBarrier {
    fn shutdown(&self) {
        self.state().closing = true;
        self.released.notify_all();
    }
}
