//! What every built-in shared object shares: its service descriptor and the `Service` glue.

/// Declares a built-in kind's methods once, as an enum: the service descriptor lists them in
/// the enum's order and dispatch matches on the enum, so the wire name, the descriptor and
/// the code that runs can never disagree (matching on positions could be silently rewired by
/// reordering a list).
macro_rules! builtin_methods {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $method:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($variant),*
        }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The methods as the manager describes them (all take `&self`).
            const INFOS: &'static [$crate::service::MethodInfo] =
                &[$($crate::service::MethodInfo { name: $method, mutates: false }),*];

            /// The method at `index` of the descriptor, if there is one.
            fn from_index(index: usize) -> Option<$name> {
                Self::ALL.get(index).copied()
            }

            /// The method's name on the wire.
            #[allow(dead_code)]
            fn name(self) -> &'static str {
                Self::INFOS[self as usize].name
            }
        }
    };
}

/// Implements [`Service`](crate::Service) for a built-in object type from its service name,
/// its methods (an enum declared with `builtin_methods!`) and three inherent methods:
/// `dispatch(method, args, out, caller)`, `wake_all()` (shutdown) and `forget(connection)`
/// (a connection closed).
macro_rules! builtin_service {
    ($ty:ty, $service:expr, $methods:ident $(, tracks_connections: $tracks:literal)?) => {
        impl $crate::service::Service for $ty {
            fn descriptor() -> &'static $crate::service::ServiceDescriptor {
                static DESCRIPTOR: $crate::service::ServiceDescriptor =
                    $crate::service::ServiceDescriptor {
                        name: $service,
                        methods: $methods::INFOS,
                    };
                &DESCRIPTOR
            }

            fn service(&self) -> &'static $crate::service::ServiceDescriptor {
                <Self as $crate::service::Service>::descriptor()
            }

            fn call_shared(
                &self,
                index: usize,
                args: &[u8],
                out: &mut Vec<u8>,
                caller: &$crate::service::Caller<'_>,
            ) -> Result<(), $crate::error::RemoteError> {
                match $methods::from_index(index) {
                    Some(method) => self.dispatch(method, args, out, caller),
                    None => Err($crate::service::no_such_method($service, index)),
                }
            }

            fn call_exclusive(
                &mut self,
                index: usize,
                _: &[u8],
                _: &mut Vec<u8>,
                _: &$crate::service::Caller<'_>,
            ) -> Result<(), $crate::error::RemoteError> {
                Err($crate::service::no_such_method($service, index))
            }

            fn shutdown(&self) {
                self.wake_all();
            }

            fn tracks_connections(&self) -> bool {
                false $(|| $tracks)?
            }

            fn connection_closed(&self, connection: u64) {
                self.forget(connection);
            }
        }
    };
}

pub(crate) use builtin_methods;
pub(crate) use builtin_service;

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
