//! Blocking waits of the built-in objects (a queue's `get`, a lock's `acquire`, ...): under
//! a deadline, woken at shutdown, and noticing a caller that hung up.

/// The error a blocked call gets when the manager shuts down.
pub(crate) fn shutting_down(what: &str) -> crate::error::RemoteError {
    crate::error::RemoteError::new(
        crate::error::RemoteErrorKind::ShuttingDown,
        format!("the {what}'s manager is shutting down"),
    )
}

/// A deadline `timeout_ms` from now; `None` waits forever.
pub(crate) fn deadline(timeout_ms: Option<u64>) -> Option<std::time::Instant> {
    timeout_ms.map(|ms| std::time::Instant::now() + std::time::Duration::from_millis(ms))
}

/// Who waits, for how long, on what (for [`wait_while`]).
pub(crate) struct Waiting<'a> {
    /// Give up then; `None` waits as long as the caller lives.
    pub(crate) deadline: Option<std::time::Instant>,
    /// The object's kind, for error messages.
    pub(crate) what: &'a str,
    pub(crate) caller: &'a crate::service::Caller<'a>,
}

/// How often a blocked call wakes to check that its caller is still there.
const CHECK_CALLER_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The error of a call whose caller hung up while it waited (nobody will read it).
fn caller_gone(what: &str) -> crate::error::RemoteError {
    crate::error::RemoteError::new(
        crate::error::RemoteErrorKind::Misuse,
        format!("the caller hung up while waiting on the {what}"),
    )
}

/// Waits on `condvar` while `blocked` holds, until `deadline`. Returns the guard and whether
/// the condition cleared; an error once `closing` says the manager is stopping.
///
/// A caller that hangs up (closes or resets its connection, or is killed) is noticed within
/// [`CHECK_CALLER_EVERY`], and checked once more right before a wait that succeeded returns:
/// so a dead caller never takes the item, permit or round it waited for. It leaves through
/// `leave` (to undo what its waiting counted), and passes the wake-up it may have consumed on
/// to the next waiter.
pub(crate) fn wait_while<'a, S>(
    mut state: parking_lot::MutexGuard<'a, S>,
    condvar: &parking_lot::Condvar,
    waiting: Waiting<'_>,
    closing: impl Fn(&S) -> bool,
    blocked: impl Fn(&S) -> bool,
    leave: impl FnOnce(&mut S),
) -> Result<(parking_lot::MutexGuard<'a, S>, bool), crate::error::RemoteError> {
    let Waiting {
        deadline,
        what,
        caller,
    } = waiting;
    let mut waited = false;
    loop {
        if closing(&state) {
            return Err(shutting_down(what));
        }
        if !blocked(&state) {
            if waited && caller.is_gone() {
                leave(&mut state);
                condvar.notify_one();
                return Err(caller_gone(what));
            }
            return Ok((state, true));
        }
        if waited && caller.is_gone() {
            leave(&mut state);
            return Err(caller_gone(what));
        }
        let slice = match deadline {
            None => CHECK_CALLER_EVERY,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok((state, false));
                }
                left.min(CHECK_CALLER_EVERY)
            }
        };
        condvar.wait_for(&mut state, slice);
        waited = true;
    }
}
