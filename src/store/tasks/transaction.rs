//! A task's ack with writes (`ack_with`): the ack, adds to counters, a dict's keys, values
//! and pushes to the same queue, applied together under every lock they need and recorded
//! in one journal record, so one commit holds all of it or none of it.
//!
//! Locks are taken in one order by every transaction: the queue first, then the other objects
//! by id (no other path holds one of those while waiting for a queue). What can fail is tried
//! before the ack: the lease (an expired one changes nothing), each object's kind, the store's
//! room (the pushes are charged first), an overflow; a failure undoes what was done, so an
//! error means nothing was applied.

use std::any::Any;

use super::{ACKED, EXPIRED, MAX_BATCH, SharedTasks, UNKNOWN, expire, settle};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::kinds::tasks::Effect;
use crate::service::Caller;
use crate::store::journal::Change;
use crate::store::tasks::book::LeaseError;
use crate::store::{Bytes, counter, dict, value};

/// One object a transaction writes, locked for its length.
enum Held<'a> {
    Counter(counter::Held<'a>),
    Dict(dict::Held<'a>),
    Value(value::Held<'a>),
}

fn bad(why: String) -> RemoteError {
    RemoteError::new(RemoteErrorKind::BadArguments, why)
}

impl<'a> Held<'a> {
    /// Locks object `id`, which must be a counter, a dict or a value.
    fn of(any: &'a dyn Any, id: u64) -> Result<Held<'a>, RemoteError> {
        if let Some(c) = any.downcast_ref::<counter::CounterKindServer<counter::SharedCounter>>() {
            return Ok(Held::Counter(c.inner().hold()));
        }
        if let Some(d) = any.downcast_ref::<dict::DictKindServer<dict::SharedDict>>() {
            return Ok(Held::Dict(d.inner().hold()));
        }
        if let Some(v) = any.downcast_ref::<value::ValueKindServer<value::SharedValue>>() {
            return Ok(Held::Value(v.inner().hold()));
        }
        Err(bad(format!(
            "object {id} is not a counter, a dict or a value: an ack writes only those"
        )))
    }

    fn undo(&mut self) {
        match self {
            Held::Counter(c) => c.undo(),
            Held::Dict(d) => d.undo(),
            Held::Value(v) => v.undo(),
        }
    }

    fn changes(&self, out: &mut Vec<Change>) {
        match self {
            Held::Counter(c) => c.changes(out),
            Held::Dict(d) => d.changes(out),
            Held::Value(v) => v.changes(out),
        }
    }
}

/// Applies one effect on a held object (pushes wait for the ack); `held` is sorted by id.
fn apply(held: &mut [(u64, Held<'_>)], effect: Effect) -> Result<(), RemoteError> {
    let Some(id) = effect.object() else {
        return Ok(());
    };
    let at = held
        .binary_search_by_key(&id, |(h, _)| *h)
        .expect("every object is held");
    let object = &mut held[at].1;
    match (object, effect) {
        (Held::Counter(c), Effect::Add { delta, .. }) => c.add(delta),
        (Held::Dict(d), Effect::Insert { key, value, .. }) => d.insert(key, value),
        (Held::Dict(d), Effect::Remove { key, .. }) => {
            d.remove(&key);
            Ok(())
        }
        (Held::Value(v), Effect::Set { new, .. }) => v.set(new),
        (_, effect) => Err(bad(format!("object {id} is not what {effect:?} writes"))),
    }
}

impl SharedTasks {
    /// `ack_with`: see the module.
    pub(super) fn ack_with_effects(
        &self,
        id: u64,
        token: u64,
        result: Bytes,
        effects: Vec<Effect>,
        caller: &Caller<'_>,
    ) -> Result<u8, RemoteError> {
        if effects.len() > MAX_BATCH {
            return Err(RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                format!("at most {MAX_BATCH} writes per ack"),
            ));
        }
        let result = (!result.0.is_empty()).then_some(result);
        let mut ids: Vec<u64> = effects.iter().filter_map(Effect::object).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return self.transact(id, token, result, effects, &[], &[]);
        }
        let objects = caller.objects().ok_or_else(|| {
            RemoteError::new(
                RemoteErrorKind::Misuse,
                "an ack with writes to other objects needs a connection to the manager",
            )
        })?;
        let mut args = Some((result, effects));
        objects.with_objects(&ids, &mut |found| {
            let (result, effects) = args.take().expect("run once");
            self.transact(id, token, result, effects, found, &ids)
        })
    }

    fn transact(
        &self,
        id: u64,
        token: u64,
        result: Option<Bytes>,
        effects: Vec<Effect>,
        objects: &[&dyn Any],
        ids: &[u64],
    ) -> Result<u8, RemoteError> {
        let mut inner = self.state();
        let now = self.now();
        expire(&mut inner, now);
        match inner.book.check_lease(id, token, now) {
            Ok(()) => {}
            Err(LeaseError::Expired) => return Ok(EXPIRED),
            Err(LeaseError::Unknown) => return Ok(UNKNOWN),
        }
        let mut held = ids
            .iter()
            .zip(objects)
            .map(|(&id, &any)| Ok((id, Held::of(any, id)?)))
            .collect::<Result<Vec<_>, RemoteError>>()?;
        let (pushes, writes): (Vec<Effect>, Vec<Effect>) = effects
            .into_iter()
            .partition(|e| matches!(e, Effect::Push { .. }));
        let charged = inner.charge_tasks(
            pushes.iter().filter_map(|p| match p {
                Effect::Push { payload, .. } => Some(payload),
                _ => None,
            }),
            pushes.len(),
        )?;
        let mut outcome = Ok(ACKED);
        for effect in writes {
            if let Err(e) = apply(&mut held, effect) {
                outcome = Err(e);
                break;
            }
        }
        if outcome.is_ok() {
            outcome = settle(&mut inner, id, token, result, now);
        }
        if outcome != Ok(ACKED) {
            for (_, object) in held.iter_mut().rev() {
                object.undo();
            }
            inner.charged.give_len(charged);
            return outcome;
        }
        for effect in pushes {
            if let Effect::Push { payload, options } = effect {
                let len = payload.0.len();
                if !inner.book.push(payload, options, now).1 {
                    inner.charged.give_item(len);
                }
            }
        }
        let mut others = Vec::new();
        for (_, object) in &held {
            object.changes(&mut others);
        }
        let written = self.keep_with(&mut inner, others);
        drop(held);
        drop(inner);
        self.signals.available.notify_all();
        self.signals.settled.notify_all();
        written.wait()?;
        Ok(ACKED)
    }
}
