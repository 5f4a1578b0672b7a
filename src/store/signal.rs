//! `Event` and `Barrier`: processes waiting for each other.

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::builtin::{Waiting, builtin_methods, builtin_service, deadline, millis, wait_while};
use crate::client::Client;
use crate::error::{RemoteError, Result};
use crate::service::{Caller, decode_args, encode_result};
use crate::stub::ObjectHandle;

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
        }
    }

    fn wake_all(&self) {
        self.state().closing = true;
        self.released.notify_all();
    }

    fn forget(&self, _: u64) {}
}

/// A shared flag that processes wait on, opened by name with [`Client::event`].
#[derive(Debug, Clone)]
pub struct Event {
    handle: ObjectHandle,
}

impl Event {
    pub(crate) fn open(client: &Client, name: &str) -> Result<Event> {
        let handle = ObjectHandle::open_shared(client, EVENT, name, "", &())?;
        Ok(Event { handle })
    }

    /// Sets the flag, waking every waiter.
    pub fn set(&self) -> Result<()> {
        self.handle.call("set", &())
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<()> {
        self.handle.call("clear", &())
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool> {
        self.handle.call("is_set", &())
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<()> {
        let _: bool = self.handle.call("wait", &(None::<u64>,))?;
        Ok(())
    }

    /// Waits at most `timeout` for the flag; returns whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.handle.call("wait", &(Some(millis(timeout)),))
    }
}

/// A shared barrier for a number of parties, opened by name with [`Client::barrier`].
#[derive(Debug, Clone)]
pub struct Barrier {
    handle: ObjectHandle,
}

impl Barrier {
    pub(crate) fn open(client: &Client, name: &str, parties: u64) -> Result<Barrier> {
        let handle = ObjectHandle::open_shared(client, BARRIER, name, "", &(parties,))?;
        Ok(Barrier { handle })
    }

    /// Waits until all parties have arrived; returns this caller's arrival position
    /// (0 for the first).
    pub fn wait(&self) -> Result<u64> {
        let position: Option<u64> = self.handle.call("wait", &(None::<u64>,))?;
        position.ok_or_else(|| crate::Error::Protocol("a blocking barrier wait gave up".into()))
    }

    /// Like [`Barrier::wait`], giving up after `timeout` (`None`); a caller that gives up no
    /// longer counts toward the round.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<u64>> {
        self.handle.call("wait", &(Some(millis(timeout)),))
    }

    /// How many parties the barrier waits for.
    pub fn parties(&self) -> Result<u64> {
        self.handle.call("parties", &())
    }
}
