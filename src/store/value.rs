//! The manager's side of `Value<T>`, one shared value with atomic swap and compare-and-swap:
//! the state, its limits and its methods (the client's side is in `proxies`).

use std::sync::Arc;

use parking_lot::Mutex;

use super::Bytes;
use super::budget::{Budget, Charged};
use super::builtin::{builtin_methods, builtin_service};
use super::journal::Change;
use super::{Entries, Persist};
use crate::error::{RemoteError, Result};
use crate::service::{Caller, decode_args, encode_result};

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Value";

/// The manager's side: the encoded value, if one was ever set.
pub(crate) struct SharedValue {
    /// The value, and what it costs the store's budget.
    value: Mutex<(Option<Bytes>, Charged)>,
    /// Kept as one entry while set.
    persist: Persist,
}

impl SharedValue {
    pub(crate) fn new(
        budget: Arc<Budget>,
        persist: Persist,
        entries: Entries,
    ) -> Result<Self, RemoteError> {
        let mut charged = Charged::new(budget);
        let mut value = None;
        if let Some((_, stored)) = entries.into_iter().next() {
            let stored = Bytes(stored);
            charged.take(&stored)?;
            value = Some(stored);
        }
        Ok(SharedValue {
            value: Mutex::new((value, charged)),
            persist,
        })
    }
}

/// Replaces the value under the store's limits, returning the old one.
fn replace(
    value: &mut Option<Bytes>,
    charged: &mut Charged,
    new: Bytes,
) -> Result<Option<Bytes>, RemoteError> {
    charged.take(&new)?;
    let old = value.replace(new);
    if let Some(old) = &old {
        charged.give(old);
    }
    Ok(old)
}

builtin_methods!(
    /// The methods of `SharedValue`.
    ValueMethod {
        Get = "get",
        Swap = "swap",
        CompareAndSwap = "compare_and_swap",
    }
);

builtin_service!(SharedValue, SERVICE, ValueMethod);

impl SharedValue {
    fn dispatch(
        &self,
        method: ValueMethod,
        args: &[u8],
        out: &mut Vec<u8>,
        _: &Caller<'_>,
    ) -> Result<(), RemoteError> {
        let mut guard = self.value.lock();
        let (value, charged) = &mut *guard;
        match method {
            ValueMethod::Get => encode_result(&*value, out),
            ValueMethod::Swap => {
                let (new,): (Bytes,) = decode_args(args, SERVICE, method.name())?;
                let old = replace(value, charged, new)?;
                let written = self.keep(value.as_ref().expect("just set"));
                drop(guard);
                written.wait()?;
                encode_result(&old, out)
            }
            ValueMethod::CompareAndSwap => {
                let (expected, new): (Option<Bytes>, Bytes) =
                    decode_args(args, SERVICE, method.name())?;
                let swapped = *value == expected;
                let mut written = super::backend::Written::nothing();
                if swapped {
                    replace(value, charged, new)?;
                    written = self.keep(value.as_ref().expect("just set"));
                }
                drop(guard);
                written.wait()?;
                encode_result(&swapped, out)
            }
        }
    }

    /// Records the value the object is about to hold.
    fn keep(&self, new: &Bytes) -> super::backend::Written<'_> {
        self.persist
            .record(|object| [Change::put(object, [], new.0.clone())])
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}
