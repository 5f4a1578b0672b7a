//! The manager's side of `Event` and `Barrier`, for processes waiting for each other: the
//! state, its limits and its methods (the client's side is in `proxies`).

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::builtin::{Waiting, builtin_methods, builtin_service, deadline, wait_while};
use crate::error::{RemoteError, Result};
use crate::service::{Caller, decode_args, encode_result};

pub(crate) const EVENT: &str = "monogusa.Event";
pub(crate) const BARRIER: &str = "monogusa.Barrier";

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

builtin_methods!(
    /// The methods of `SharedEvent`.
    EventMethod {
        Set = "set",
        Clear = "clear",
        IsSet = "is_set",
        Wait = "wait",
    }
);

builtin_service!(SharedEvent, EVENT, EventMethod);

impl SharedEvent {
    fn state(&self) -> MutexGuard<'_, EventState> {
        self.state.lock()
    }

    fn dispatch(
        &self,
        method: EventMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        match method {
            EventMethod::Set => {
                self.state().set = true;
                self.changed.notify_all();
                encode_result(&(), out)
            }
            EventMethod::Clear => {
                self.state().set = false;
                encode_result(&(), out)
            }
            EventMethod::IsSet => encode_result(&self.state().set, out),
            EventMethod::Wait => {
                let (timeout_ms,): (Option<u64>,) = decode_args(args, "Event", "wait")?;
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
                encode_result(&set, out)
            }
        }
    }

    fn wake_all(&self) {
        self.state().closing = true;
        self.changed.notify_all();
    }

    fn forget(&self, _: u64) {}
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

builtin_methods!(
    /// The methods of `SharedBarrier`.
    BarrierMethod {
        Wait = "wait",
        Parties = "parties",
        Waiting = "waiting",
    }
);

builtin_service!(SharedBarrier, BARRIER, BarrierMethod);

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

    fn dispatch(
        &self,
        method: BarrierMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        caller: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        match method {
            BarrierMethod::Wait => {
                let (timeout_ms,): (Option<u64>,) = decode_args(args, "Barrier", "wait")?;
                let mut state = self.state();
                let position = state.arrived;
                state.arrived += 1;
                if state.arrived == state.parties {
                    // The last one in releases the round.
                    state.arrived = 0;
                    state.round += 1;
                    self.released.notify_all();
                    return encode_result(&Some(position), out);
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
                    // A party that hung up no longer counts toward this round (if it passed,
                    // the round is over and nothing is undone).
                    |s| {
                        if s.round == round {
                            s.arrived -= 1;
                        }
                    },
                )?;
                if !passed {
                    state.arrived -= 1; // gave up: the round no longer counts on us
                }
                encode_result(&passed.then_some(position), out)
            }
            BarrierMethod::Parties => encode_result(&self.state().parties, out),
            BarrierMethod::Waiting => encode_result(&self.state().arrived, out),
        }
    }

    fn wake_all(&self) {
        self.state().closing = true;
        self.released.notify_all();
    }

    fn forget(&self, _: u64) {}
}
