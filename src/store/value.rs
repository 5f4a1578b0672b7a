//! The manager's side of `Value<T>`, one shared value with atomic swap and compare-and-swap:
//! the state, its limits and its methods (the client's side is in `proxies`).

use std::sync::Arc;

use parking_lot::Mutex;

use super::Bytes;
use super::budget::{Budget, Charged};
use super::builtin::{builtin_methods, builtin_service};
use crate::error::{RemoteError, Result};
use crate::service::{Caller, decode_args, encode_result};

/// The service name, which is also the kind clients open by name.
pub(crate) const SERVICE: &str = "monogusa.Value";

/// The manager's side: the encoded value, if one was ever set.
pub(crate) struct SharedValue {
    /// The value, and what it costs the store's budget.
    value: Mutex<(Option<Bytes>, Charged)>,
}

impl SharedValue {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        SharedValue {
            value: Mutex::new((None, Charged::new(budget))),
        }
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
                encode_result(&replace(value, charged, new)?, out)
            }
            ValueMethod::CompareAndSwap => {
                let (expected, new): (Option<Bytes>, Bytes) =
                    decode_args(args, SERVICE, method.name())?;
                let swapped = *value == expected;
                if swapped {
                    replace(value, charged, new)?;
                }
                encode_result(&swapped, out)
            }
        }
    }

    fn wake_all(&self) {}

    fn forget(&self, _: u64) {}
}
