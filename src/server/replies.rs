//! A connection's replies: batched in one buffer and written with as few syscalls as
//! possible, within a total deadline, never interleaved with a keepalive heartbeat, and
//! paced so a quick reply never waits behind a slow call.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::transport::Stream;

use super::closing::Closing;
use super::keepalive::Activity;
use super::pace::{Pace, Target};

/// Replies are written once this many bytes are pending even if more requests are buffered,
/// so a long burst of calls does not grow the output buffer without bound.
pub(super) const FLUSH_AT: usize = 256 << 10;

/// The output buffer's usual capacity, and the size above which it is given back once empty.
pub(super) const OUT_BUFFER: usize = 4096;
const SHRINK_OUT_ABOVE: usize = 1 << 20;

/// A socket timeout is re-armed to a deadline only when it is this much too long.
pub(super) const DEADLINE_SLACK: Duration = Duration::from_millis(100);

/// The shortest timeout given to a socket (zero would mean none).
pub(super) const MIN_SOCKET_TIMEOUT: Duration = Duration::from_millis(1);

/// Replies waiting to be written, and the socket they go to.
pub(super) struct Replies<'s> {
    pub(super) stream: &'s Stream,
    /// What the keepalive watches; its lock is held while writing.
    activity: &'s Activity,
    pub(super) out: Vec<u8>,
    pace: Pace,
    /// How long the peer may take to read what we write.
    stall: Duration,
    /// The write timeout the socket has now.
    write_timeout: Duration,
}

impl<'s> Replies<'s> {
    pub(super) fn new(
        stream: &'s Stream,
        activity: &'s Activity,
        stall: Duration,
        capacity: usize,
    ) -> Self {
        Replies {
            stream,
            activity,
            out: Vec::with_capacity(capacity),
            pace: Pace::default(),
            stall,
            write_timeout: stall,
        }
    }

    /// Writes the pending replies. The peer has `stall` in all to take them: a peer reading
    /// a byte at a time cannot keep this thread writing for longer.
    #[inline]
    pub(super) fn flush(&mut self) -> Result<(), Closing> {
        if self.out.is_empty() {
            return Ok(());
        }
        let activity = self.activity;
        let result = activity.exclusive(|| self.write_out());
        self.out.clear();
        result.map_err(Closing::PeerGone)
    }

    #[inline]
    fn write_out(&mut self) -> io::Result<()> {
        // The common case: one write takes everything, and no clock is read.
        let mut written = match self.stream.write(&self.out) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        if written == self.out.len() {
            return Ok(());
        }
        let deadline = Instant::now() + self.stall;
        while written < self.out.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer stopped reading its replies",
                ));
            }
            if left + DEADLINE_SLACK < self.write_timeout {
                self.stream
                    .set_write_timeout(Some(left.max(MIN_SOCKET_TIMEOUT)))?;
                self.write_timeout = left;
            }
            match self.stream.write(&self.out[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.write_timeout != self.stall {
            self.stream.set_write_timeout(Some(self.stall))?;
            self.write_timeout = self.stall;
        }
        Ok(())
    }

    /// Gives back the memory of a large reply once it is written: an idle connection that
    /// once read a 48 MiB value should not keep 48 MiB.
    #[inline]
    pub(super) fn shrink(&mut self) {
        if self.out.capacity() > SHRINK_OUT_ABOVE {
            self.out = Vec::with_capacity(OUT_BUFFER);
        }
    }

    /// Runs one call. Replies already produced are written first unless the call is known
    /// to be quick: a reply never waits behind a later, slow call (a blocking one, say),
    /// while a burst of quick calls still leaves in one write.
    #[inline]
    pub(super) fn run(
        &mut self,
        target: Target,
        run: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), Closing> {
        if !self.out.is_empty() && !self.pace.is_quick(target) {
            self.flush()?;
        }
        self.activity.begin();
        if self.pace.should_time(target) {
            let started = Instant::now();
            run(&mut self.out);
            self.pace.record(target, started.elapsed());
        } else {
            run(&mut self.out);
        }
        self.activity.end();
        Ok(())
    }
}
