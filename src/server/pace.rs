//! Which calls of a connection are quick: replies already produced are written before a call
//! not known to be quick, so they never wait behind a slow one, while bursts of quick calls
//! still leave in one write.

use std::time::Duration;

/// What a call runs: a registered function (by its handler's address) or an object (by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Target {
    Function(usize),
    Object(u64),
}

/// Which targets ran quickly the last time this connection called them: a small
/// direct-mapped table, so the check costs no hashing and no allocation. A target pushed out
/// by another simply counts as unknown again (one extra write, then it is relearned).
///
/// Reading the clock twice per call was 7% of a pipelined call, so a target known to be quick
/// is timed only on one call in [`Pace::SAMPLE`]; unknown and slow targets are always timed.
pub(super) struct Pace {
    slots: [Slot; Pace::SLOTS],
}

#[derive(Clone, Copy, Default)]
struct Slot {
    target: Option<Target>,
    quick: bool,
    /// Calls of a quick target left until the next timed one.
    untimed: u8,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            slots: [Slot::default(); Pace::SLOTS],
        }
    }
}

impl Pace {
    /// A call under this is "quick": holding earlier replies back for it costs less than a
    /// write.
    const QUICK: Duration = Duration::from_micros(20);
    const SLOTS: usize = 64;
    const SAMPLE: u8 = 16;

    #[inline]
    fn slot(target: Target) -> usize {
        let key = match target {
            Target::Function(address) => (address as u64) >> 4,
            Target::Object(id) => id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32,
        };
        key as usize % Self::SLOTS
    }

    #[inline]
    pub(super) fn is_quick(&self, target: Target) -> bool {
        let slot = &self.slots[Self::slot(target)];
        slot.target == Some(target) && slot.quick
    }

    /// Whether to time this call of `target` (counting down the untimed quick calls).
    #[inline]
    pub(super) fn should_time(&mut self, target: Target) -> bool {
        let slot = &mut self.slots[Self::slot(target)];
        if slot.target != Some(target) || !slot.quick || slot.untimed == 0 {
            return true;
        }
        slot.untimed -= 1;
        false
    }

    #[inline]
    pub(super) fn record(&mut self, target: Target, took: Duration) {
        let quick = took < Self::QUICK;
        self.slots[Self::slot(target)] = Slot {
            target: Some(target),
            quick,
            untimed: if quick { Self::SAMPLE - 1 } else { 0 },
        };
    }
}
