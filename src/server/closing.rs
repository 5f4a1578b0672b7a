//! Why a native connection's request loop ended other than by a clean close: what the loop,
//! the dispatcher and the reply writer all return (its own room, below all three).

use std::io;

use crate::error::RemoteError;

/// Why a connection's request loop ended other than by a clean close.
pub(super) enum Closing {
    PeerGone(io::Error),
    Truncated,
    /// The peer began a frame and stopped sending it.
    Stalled,
    /// The peer broke the protocol; it is told why before the connection closes.
    Violation(RemoteError),
}
