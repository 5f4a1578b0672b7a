//! The seam every door of the manager plugs into. A [`Listener`] speaks one wire format on
//! the sockets bound for it; the host (the accept loop in `server`) owns what is the same for
//! every door: accepting, the spare descriptor that lets a peer be told BUSY when the process
//! is out of descriptors, catching a panic in admission, the rate-limited log of refusals, the
//! shared wrong-key slowdown and shutdown. A listener admits a connection within its door's
//! caps (displacing the oldest handshake of the most crowded source when full) and refuses
//! one in its own protocol's words.
//!
//! A new door is one implementation of this trait and one builder method that registers it
//! with [`ManagerBuilder::listen`](super::ManagerBuilder); the `cfg` of its feature appears
//! there only.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::transport::{Address, Stream};

/// One door of the manager.
pub(crate) trait Listener: Send + Sync + 'static {
    /// Whom it serves, as the log and [`ManagerHandle`](super::ManagerHandle) name it:
    /// `"native"`, `"python"`, `"msgpack-rpc"`, `"http"`.
    fn name(&self) -> &'static str;

    /// Serves `stream` (on a thread of its own), or refuses it when the door is full.
    fn admit(&self, shared: &Arc<Shared>, stream: Stream);

    /// The words that tell a peer of this door there is no room: written once, briefly, before
    /// the connection closes (a silent close would leave it guessing).
    fn busy(&self, why: &str) -> Vec<u8>;

    /// Says where it listens.
    fn announce(&self, shared: &Shared, address: &Address) {
        let _ = shared;
        log::info!("manager listening for {} clients on {address}", self.name());
    }

    /// Shutdown: ends every connection of this door that the host does not track itself.
    fn close_all(&self, shared: &Shared) {
        let _ = shared;
    }
}

/// Tells `stream`'s peer `why` there is no room, in `door`'s words, and lets it go: counted,
/// and said once through the rate-limited failure log (a flood of refusals cannot flood it).
pub(crate) fn refuse(shared: &Shared, door: &dyn Listener, mut stream: Stream, why: &str) {
    shared
        .stats
        .connections_refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared.failure_log.warn(format_args!(
        "refusing {} client {}: {why}",
        door.name(),
        stream.peer_label()
    ));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(&door.busy(why));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    super::drain_briefly(&mut stream);
}
