//! Many calls encoded together and sent with one write: [`Client::batch`].
//!
//! `Client::send` takes the pipeline's lock once per call and hands each frame to the writer
//! thread. A batch encodes into a buffer of its own, with no lock at all, taking request ids
//! from the pipeline a block at a time; [`Batch::send`] then passes the whole buffer over under
//! one lock, and, when nothing else is queued, writes it from the calling thread in one
//! `write` (no thread hand-off).

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::wire::message::{Op, encode_request};

use super::pipeline::Pipe;
use super::{Client, Pending};

/// Request ids reserved per lock while a batch fills.
const IDS_PER_RESERVATION: u64 = 64;

/// Calls gathered to leave together, from [`Client::batch`].
///
/// Each [`call`](Batch::call) returns its [`Pending`] reply at once; nothing leaves until
/// [`send`](Batch::send) (or until the batch is dropped, which sends what it holds: nothing
/// queued is lost). Wait on the replies after sending: a reply to a call still in the batch
/// never comes before its timeout.
///
/// ```no_run
/// # fn main() -> monogusa::Result<()> {
/// # let client = monogusa::Client::connect("127.0.0.1:4343", "password")?;
/// let mut batch = client.batch()?;
/// let replies = (0..64)
///     .map(|i| batch.call::<i64>("square", (i,)))
///     .collect::<monogusa::Result<Vec<_>>>()?;
/// batch.send()?;
/// let squares = replies
///     .into_iter()
///     .map(|reply| reply.wait())
///     .collect::<monogusa::Result<Vec<i64>>>()?;
/// # Ok(()) }
/// ```
pub struct Batch<'c> {
    client: &'c Client,
    pipe: Arc<Pipe>,
    frames: Vec<u8>,
    /// The next reserved id, and how many reserved ones are left.
    next_id: u64,
    reserved: u64,
    calls: usize,
}

impl<'c> Batch<'c> {
    pub(super) fn new(client: &'c Client, pipe: Arc<Pipe>) -> Batch<'c> {
        Batch {
            client,
            pipe,
            frames: Vec::with_capacity(4096),
            next_id: 0,
            reserved: 0,
            calls: 0,
        }
    }

    /// Adds a call of the function registered as `function` with the argument tuple `args`;
    /// its reply, decoded as `R`, comes through the returned [`Pending`] once the batch is
    /// sent. Arguments that cannot be encoded, or a frame over the size limit, fail here and
    /// add nothing.
    pub fn call<R: DeserializeOwned>(
        &mut self,
        function: &str,
        args: impl Serialize,
    ) -> Result<Pending<R>> {
        self.add(Op::Call(function), &args)
    }

    fn add<R: DeserializeOwned, A: Serialize>(
        &mut self,
        op: Op<'_>,
        args: &A,
    ) -> Result<Pending<R>> {
        if self.reserved == 0 {
            self.next_id = self.pipe.reserve_ids(IDS_PER_RESERVATION)?;
            self.reserved = IDS_PER_RESERVATION;
        }
        let id = self.next_id;
        encode_request(&mut self.frames, id, op, args, self.pipe.max_frame_len())?;
        self.next_id += 1;
        self.reserved -= 1;
        self.calls += 1;
        Ok(Pending::finished_by(Arc::clone(&self.pipe), id, Ok))
    }

    /// How many calls the batch holds, not yet sent.
    pub fn len(&self) -> usize {
        self.calls
    }

    /// True if it holds no call.
    pub fn is_empty(&self) -> bool {
        self.calls == 0
    }

    /// Sends every call in the batch, in the order they were added, and empties it (it may
    /// be filled and sent again). If the connection is lost, this and every unanswered
    /// call's wait fail with [`Error::ConnectionLost`]; none is retried.
    pub fn send(&mut self) -> Result<()> {
        if self.frames.is_empty() {
            return Ok(());
        }
        self.calls = 0;
        let sent = self.pipe.send_frames(&mut self.frames);
        self.frames.clear(); // sent, or failed with the connection: either way not again
        if let Err(e @ Error::ConnectionLost(_)) = &sent {
            self.client.lost(e);
        }
        sent
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Sends what was added and not sent: its callers hold `Pending`s for it. A failure
        // reaches them through their waits.
        let _ = self.send();
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("calls", &self.calls)
            .field("bytes", &self.frames.len())
            .finish_non_exhaustive()
    }
}
