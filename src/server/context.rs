//! Who is calling: the connection whose request this thread is running. Each connection has a
//! thread of its own, so the built-in objects learn the caller from here: the lock and
//! semaphore count permits per connection, and a call blocked in a queue or a lock notices
//! that its caller hung up, and leaves before it takes anything.

use std::cell::RefCell;
use std::sync::Arc;

use crate::transport::Stream;

struct Caller {
    connection: u64,
    stream: Arc<Stream>,
}

thread_local! {
    static CALLER: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

/// Clears the caller when the connection's thread is done with it.
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        CALLER.with(|c| c.borrow_mut().take());
    }
}

/// Makes `connection` on `stream` the caller for this thread until the guard drops.
pub(crate) fn enter(connection: u64, stream: Arc<Stream>) -> Entered {
    CALLER.with(|c| *c.borrow_mut() = Some(Caller { connection, stream }));
    Entered(())
}

/// The id of the connection whose request this thread is running (0 outside a connection).
pub(crate) fn current_connection() -> u64 {
    CALLER.with(|c| c.borrow().as_ref().map_or(0, |caller| caller.connection))
}

/// Whether the caller has closed or reset its connection: its call's result can no longer
/// reach it. One non-blocking syscall; false outside a connection.
pub(crate) fn caller_gone() -> bool {
    CALLER.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|caller| caller.stream.peer_gone())
    })
}
