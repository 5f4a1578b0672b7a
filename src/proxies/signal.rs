//! The client's side of `Event` and `Barrier`, for processes waiting for each other: the typed
//! proxy over an `ObjectHandle`.

use std::time::Duration;

use super::millis;
use crate::client::Client;
use crate::error::Result;
use crate::kinds::signal::{BARRIER, BarrierKindClient, EVENT, EventKindClient};
use crate::stub::ObjectHandle;

/// A shared flag that processes wait on, opened by name with [`Client::event`].
#[derive(Debug, Clone)]
pub struct Event {
    pub(super) handle: ObjectHandle,
}

impl Event {
    pub(crate) fn open(client: &Client, name: &str) -> Result<Event> {
        let handle = ObjectHandle::open_shared(client, EVENT, name, "", &())?;
        Ok(Event { handle })
    }

    /// The declaration's typed stub over this event.
    pub(super) fn stub(&self) -> EventKindClient<&ObjectHandle> {
        EventKindClient::from_handle(&self.handle)
    }

    /// Sets the flag, waking every waiter.
    pub fn set(&self) -> Result<()> {
        self.stub().set()
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<()> {
        self.stub().clear()
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool> {
        self.stub().is_set()
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<()> {
        self.stub().wait(None)?;
        Ok(())
    }

    /// Waits at most `timeout` for the flag; returns whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.stub().wait(Some(millis(timeout)))
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
        let position = self.stub().wait(None)?;
        position.ok_or_else(|| crate::Error::Protocol("a blocking barrier wait gave up".into()))
    }

    /// Like [`Barrier::wait`], giving up after `timeout` (`None`); a caller that gives up no
    /// longer counts toward the round.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<u64>> {
        self.stub().wait(Some(millis(timeout)))
    }

    /// How many parties the barrier waits for.
    pub fn parties(&self) -> Result<u64> {
        self.stub().parties()
    }

    /// The declaration's typed stub over this barrier.
    fn stub(&self) -> BarrierKindClient<&ObjectHandle> {
        BarrierKindClient::from_handle(&self.handle)
    }
}
