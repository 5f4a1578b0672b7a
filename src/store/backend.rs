//! The storage seam: what holds the built-in shared objects. The manager's object table keeps
//! ids and names; a backend makes the objects, restores those it kept at start, and records
//! their creation and deletion. Two backends: [`Memory`] (the default: nothing outlives the
//! process) and [`Durable`] (a data directory: counters, values, dicts, lists, queues and
//! task queues survive a restart).
//!
//! Each kept object gets a [`Persist`], through which it records its changes while holding
//! its own lock and waits for them outside it (see `journal`).

#[cfg(feature = "durable")]
use std::collections::HashMap;
use std::sync::Arc;

#[cfg(feature = "durable")]
use parking_lot::Mutex;

use super::Budget;
use super::journal::{Change, Journal, Ticket};
use crate::error::{RemoteError, Result};
use crate::service::Service;

/// One object as a backend gives it back at start.
pub(crate) struct Restored {
    pub(crate) name: String,
    pub(crate) tag: String,
    pub(crate) object: Box<dyn Service>,
}

/// What holds the built-in shared objects.
pub(crate) trait StoreBackend: Send + Sync {
    /// Where it keeps them, for logs ("memory", or the data file's path).
    fn place(&self) -> String;

    /// Makes the new object `name` of `kind` from its creation arguments, recording its
    /// creation if the backend keeps that kind (and waiting until that is durable).
    fn create(
        &self,
        kind: &str,
        name: &str,
        tag: &str,
        args: &[u8],
        budget: &Arc<Budget>,
    ) -> Result<Box<dyn Service>, RemoteError>;

    /// Records that `name`'s object was deleted.
    fn delete(&self, name: &str) -> Result<(), RemoteError>;

    /// The objects kept from earlier runs (once, at start), each charged to `budget`.
    fn restore(&self, budget: &Arc<Budget>) -> Result<Vec<Restored>>;

    /// Writes what is pending and stops; the manager is done with the store.
    fn close(&self);
}

/// A kept object's way to its store: the journal and its number there. In memory, empty,
/// and every method is a no-op that costs one branch.
#[derive(Clone, Default)]
pub(crate) struct Persist(Option<(Arc<Journal>, u64)>);

/// Changes recorded and not yet known to be durable: wait on it once the object's own lock
/// is released, so concurrent mutations share a commit.
#[must_use = "a mutation is durable only once its `Written` is waited on"]
pub(crate) struct Written<'a>(Option<(&'a Journal, Ticket)>);

impl Persist {
    /// Whether this object's changes are kept (false in memory).
    pub(crate) fn is_kept(&self) -> bool {
        self.0.is_some()
    }

    /// Records the changes `make` returns for this object (given its number). In memory
    /// `make` is not called.
    pub(crate) fn record<I: IntoIterator<Item = Change>>(
        &self,
        make: impl FnOnce(u64) -> I,
    ) -> Written<'_> {
        Written(
            self.0
                .as_ref()
                .map(|(journal, object)| (&**journal, journal.record(make(*object)))),
        )
    }
}

impl Persist {
    /// Adds the changes `make` returns for this object to `out`, for a record made with
    /// others' (a transaction's); in memory `make` is not called.
    pub(crate) fn collect<I: IntoIterator<Item = Change>>(
        &self,
        out: &mut Vec<Change>,
        make: impl FnOnce(u64) -> I,
    ) {
        if let Some((_, object)) = &self.0 {
            out.extend(make(*object));
        }
    }
}

impl Written<'_> {
    /// Nothing was recorded.
    pub(crate) fn nothing() -> Self {
        Written(None)
    }

    /// Waits until the changes are on disk; a `Storage` error if they could not be written.
    pub(crate) fn wait(self) -> Result<(), RemoteError> {
        match self.0 {
            Some((journal, ticket)) => journal.wait(ticket),
            None => Ok(()),
        }
    }
}

impl Change {
    /// Sets `key` of `object` to `value`.
    pub(crate) fn put(object: u64, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Change::Put {
            object,
            key: key.into(),
            value: value.into(),
        }
    }

    /// Removes `key` of `object`.
    pub(crate) fn delete(object: u64, key: impl Into<Vec<u8>>) -> Self {
        Change::Delete {
            object,
            key: key.into(),
        }
    }
}

/// The default backend: objects live in the manager's memory only.
pub(crate) struct Memory;

impl StoreBackend for Memory {
    fn place(&self) -> String {
        "memory".into()
    }

    fn create(
        &self,
        kind: &str,
        _: &str,
        _: &str,
        args: &[u8],
        budget: &Arc<Budget>,
    ) -> Result<Box<dyn Service>, RemoteError> {
        super::construct(kind, args, budget, Persist::default(), Vec::new())
    }

    fn delete(&self, _: &str) -> Result<(), RemoteError> {
        Ok(())
    }

    fn restore(&self, _: &Arc<Budget>) -> Result<Vec<Restored>> {
        Ok(Vec::new())
    }

    fn close(&self) {}
}

/// A data directory: kept kinds record every change in a journal committed to a database
/// file, and are restored from it at start.
#[cfg(feature = "durable")]
pub(crate) struct Durable {
    journal: Arc<Journal>,
    /// The store's number of each kept object, by name.
    numbers: Mutex<HashMap<String, u64>>,
    next_number: Mutex<u64>,
    /// What the file held at start, until `restore` takes it.
    loaded: Mutex<Vec<super::sqlite::StoredObject>>,
    path: std::path::PathBuf,
}

#[cfg(feature = "durable")]
impl Durable {
    /// Opens the data directory `dir` (creating it), refusing one another manager holds.
    pub(crate) fn open(
        dir: &std::path::Path,
        durability: super::journal::Durability,
    ) -> Result<Durable> {
        let (database, path) = super::sqlite::Database::open(dir)?;
        let loaded = database.load(&path)?;
        let next = loaded.iter().map(|o| o.object).max().unwrap_or(0) + 1;
        let numbers = loaded.iter().map(|o| (o.name.clone(), o.object)).collect();
        let journal = Journal::start(Box::new(database), durability, path.display().to_string())?;
        Ok(Durable {
            journal,
            numbers: Mutex::new(numbers),
            next_number: Mutex::new(next),
            loaded: Mutex::new(loaded),
            path,
        })
    }

    fn persist(&self, number: u64) -> Persist {
        Persist(Some((Arc::clone(&self.journal), number)))
    }
}

#[cfg(feature = "durable")]
impl StoreBackend for Durable {
    fn place(&self) -> String {
        self.path.display().to_string()
    }

    fn create(
        &self,
        kind: &str,
        name: &str,
        tag: &str,
        args: &[u8],
        budget: &Arc<Budget>,
    ) -> Result<Box<dyn Service>, RemoteError> {
        if !super::is_kept(kind) {
            return super::construct(kind, args, budget, Persist::default(), Vec::new());
        }
        let number = {
            let mut next = self.next_number.lock();
            *next += 1;
            *next - 1
        };
        let object = super::construct(kind, args, budget, self.persist(number), Vec::new())?;
        self.numbers.lock().insert(name.to_string(), number);
        let ticket = self.journal.record([Change::Create {
            object: number,
            name: name.to_string(),
            kind: kind.to_string(),
            tag: tag.to_string(),
            args: args.to_vec(),
        }]);
        self.journal.wait(ticket)?;
        Ok(object)
    }

    fn delete(&self, name: &str) -> Result<(), RemoteError> {
        let Some(number) = self.numbers.lock().remove(name) else {
            return Ok(()); // a kind that is not kept
        };
        let ticket = self.journal.record([Change::Drop { object: number }]);
        self.journal.wait(ticket)
    }

    fn restore(&self, budget: &Arc<Budget>) -> Result<Vec<Restored>> {
        let loaded = std::mem::take(&mut *self.loaded.lock());
        let mut restored = Vec::with_capacity(loaded.len());
        for stored in loaded {
            let object = super::construct(
                &stored.kind,
                &stored.args,
                budget,
                self.persist(stored.object),
                stored.entries,
            )
            .map_err(|e| {
                crate::Error::Config(format!(
                    "cannot restore {:?} (a {}) from {}: {}",
                    stored.name,
                    stored.kind,
                    self.path.display(),
                    e.message()
                ))
            })?;
            restored.push(Restored {
                name: stored.name,
                tag: stored.tag,
                object,
            });
        }
        Ok(restored)
    }

    fn close(&self) {
        self.journal.close();
    }
}
