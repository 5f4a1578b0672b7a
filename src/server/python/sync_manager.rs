//! What an unmodified `SyncManager(address, authkey).connect()` client creates
//! (`m.dict()`, `m.list()`, `m.Queue()`, `m.Lock()`, `m.Value('i', 0)`, ...), and the shared
//! objects a plain `BaseManager` subclass reaches by name (`get_dict(name)`, `get_queue(name)`,
//! ...), each answering the method names of the proxy type Python's client makes for it.
//!
//! A typeid's object is anonymous: a built-in shared object under an internal name
//! (`monogusa.python:dict:<run>:<n>`), deleted when its last proxy goes (the refcount Python's
//! client keeps with `incref`/`decref`). Objects reached by name are the manager's own named
//! ones, with any Python value as elements ([`Dynamic`](crate::Dynamic) from Rust).
//!
//! RLock and Condition have no built-in kind: they live here, over a built-in lock, so that a
//! connection that dies still gives the lock back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::{Condvar, Mutex};

use super::shared_calls::{Native, arg, timeout_ms, truthy};
use crate::python::methods::exception;
use crate::python::shared::{Kind, PythonShared, encoded};
use crate::store::waiting::{Waiting, deadline, wait_while};
use crate::values::value::ForeignValue;

/// The prefix of every anonymous object's name (an internal name: `stat` hides it).
pub(super) const ANONYMOUS_PREFIX: &str = "monogusa.python:";

/// What `SyncManager`'s proxies call besides a kind's own methods (`PythonShared::exposed`):
/// `iter(d)` and `reversed(l)` (whose results are `Iterator` proxies, a typeid only
/// `SyncManager` registers, so a plain `BaseManager`'s objects by name do without them) and
/// the list operators of `ListProxy`.
const DICT_EXTRA: &[&str] = &["__iter__"];
const LIST_EXTRA: &[&str] = &["__add__", "__imul__", "__mul__", "__reversed__", "__rmul__"];
/// `RLock()` and `Condition()`, which have no kind of their own.
const ACQUIRER: &[&str] = &["acquire", "release"];
const CONDITION: &[&str] = &["acquire", "notify", "notify_all", "release", "wait"];
/// The longest `Array(typecode, n)` made from a length (as the list operators' cap).
const MAX_ARRAY_LEN: i64 = 1 << 20;
/// `IteratorProxy._exposed_`.
pub(super) const ITERATOR: &[&str] = &["__next__", "close", "send", "throw"];

/// What a `create` of one of these typeids made.
pub(super) enum Made {
    /// A built-in shared object (to delete with the last reference if `owned`).
    Shared {
        spec: PythonShared,
        owned: bool,
    },
    RLock(Reentrant),
    Condition(Condition),
}

/// A made object with the method names its proxy calls.
pub(super) struct Creation {
    pub(super) made: Made,
    pub(super) exposed: Vec<&'static str>,
}

/// Numbers the anonymous objects of this run; the run's own stamp keeps names apart from
/// those a crashed run left in a data directory (swept at the first creation).
pub(super) struct Names {
    run: u64,
    next: AtomicU64,
}

impl Names {
    pub(super) fn new() -> Names {
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        Names {
            run: u64::from_le_bytes(random),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self, typeid: &str) -> String {
        let n = self.next.fetch_add(1, Relaxed);
        format!("{ANONYMOUS_PREFIX}{typeid}:{:08x}:{n}", self.run as u32)
    }
}

fn int(value: Option<ForeignValue>, what: &str, default: i64) -> Result<i64, ForeignValue> {
    match value {
        None | Some(ForeignValue::None) => Ok(default),
        Some(ForeignValue::Int(n)) => Ok(n),
        Some(ForeignValue::Bool(b)) => Ok(b as i64),
        Some(other) => Err(exception(
            "TypeError",
            format!("{what} must be an int, not {}", other.type_name()),
        )),
    }
}

fn count(value: Option<ForeignValue>, what: &str, default: i64) -> Result<u64, ForeignValue> {
    let n = int(value, what, default)?;
    u64::try_from(n).map_err(|_| exception("ValueError", format!("{what} must be >= 0")))
}

/// What `typeid` makes, for the typeids of `SyncManager` and the `get_*(name)` family;
/// `None` for any other typeid. Contents given at creation (`m.dict(a=1)`, `m.list([1, 2])`,
/// `m.Value('i', 5)`) are filled in by [`fill`].
pub(super) fn creation(
    names: &Names,
    typeid: &str,
    args: &[ForeignValue],
    kwds: &[(ForeignValue, ForeignValue)],
) -> Option<Result<Creation, ForeignValue>> {
    let anonymous = |kind: Kind, args: Vec<u8>| {
        let spec = PythonShared::dynamic(kind, &names.next(typeid), args);
        let extra = match kind {
            Kind::Dict => DICT_EXTRA,
            Kind::List => LIST_EXTRA,
            _ => &[],
        };
        Ok(Creation {
            exposed: [spec.exposed(), extra].concat(),
            made: Made::Shared { spec, owned: true },
        })
    };
    let first = args.first().cloned();
    Some(match typeid {
        "dict" => anonymous(Kind::Dict, Vec::new()),
        "list" => anonymous(Kind::List, Vec::new()),
        "Namespace" => anonymous(Kind::Namespace, Vec::new()),
        "Value" => anonymous(Kind::Value, Vec::new()),
        "Array" => anonymous(Kind::Array, Vec::new()),
        "Queue" | "JoinableQueue" => {
            let maxsize = arg(args, kwds, 0, "maxsize");
            // Python's queues take maxsize <= 0 as unbounded, as a capacity of 0 is here.
            match int(maxsize, "maxsize", 0) {
                Ok(n) => anonymous(Kind::Queue, encoded(&(n.max(0) as u64,))),
                Err(e) => Err(e),
            }
        }
        "Lock" => anonymous(Kind::Lock, Vec::new()),
        "Semaphore" | "BoundedSemaphore" => match count(arg(args, kwds, 0, "value"), "value", 1) {
            Ok(permits) => anonymous(
                Kind::Semaphore {
                    bounded: typeid == "BoundedSemaphore",
                },
                encoded(&(permits,)),
            ),
            Err(e) => Err(e),
        },
        "Event" => anonymous(Kind::Event, Vec::new()),
        "Barrier" => {
            if arg(args, kwds, 1, "action").is_some_and(|a| a != ForeignValue::None) {
                Err(exception(
                    "TypeError",
                    "Barrier(action=...) cannot run a Python callable in a Rust manager",
                ))
            } else {
                match count(first, "parties", 0) {
                    Ok(0) => Err(exception("ValueError", "parties must be > 0")),
                    Ok(parties) => anonymous(Kind::Barrier, encoded(&(parties,))),
                    Err(e) => Err(e),
                }
            }
        }
        "RLock" => Ok(Creation {
            made: Made::RLock(Reentrant::new(PythonShared::lock(&names.next(typeid)))),
            exposed: ACQUIRER.to_vec(),
        }),
        "Condition" => {
            if first.is_some_and(|lock| lock != ForeignValue::None) {
                Err(exception(
                    "TypeError",
                    "Condition(lock) takes no lock here: each Condition has its own RLock",
                ))
            } else {
                Ok(Creation {
                    made: Made::Condition(Condition {
                        lock: Reentrant::new(PythonShared::lock(&names.next(typeid))),
                        waiters: Mutex::new(Waiters::default()),
                        changed: Condvar::new(),
                    }),
                    exposed: CONDITION.to_vec(),
                })
            }
        }
        "Pool" => Err(exception(
            "NotImplementedError",
            "Pool runs Python callables; a Rust manager has none (use its task queues)",
        )),
        "get_dict" => by_name(typeid, args, Kind::Dict),
        "get_list" => by_name(typeid, args, Kind::List),
        "get_queue" => by_name(typeid, args, Kind::Queue),
        "get_counter" => by_name(typeid, args, Kind::Counter),
        "get_value" => by_name(typeid, args, Kind::Value),
        "get_lock" => by_name(typeid, args, Kind::Lock),
        "get_event" => by_name(typeid, args, Kind::Event),
        "get_tasks" => by_name(typeid, args, Kind::Tasks),
        "get_mailbox" => mailbox(typeid, args),
        "get_workers" => Ok(workers()),
        _ => return None,
    })
}

/// `get_dict(name)` and the like: the named object, made on first use.
fn by_name(typeid: &str, args: &[ForeignValue], kind: Kind) -> Result<Creation, ForeignValue> {
    let Some(ForeignValue::Str(name)) = args.first() else {
        return Err(exception(
            "TypeError",
            format!("{typeid}(name) takes the object's name, a str"),
        ));
    };
    if name.starts_with(crate::service::INTERNAL_PREFIX) {
        return Err(exception(
            "ValueError",
            format!("{name:?} is one of the manager's own names"),
        ));
    }
    let args = match kind {
        Kind::Queue => encoded(&(0u64,)),
        Kind::Tasks => encoded(&(crate::store::tasks::Settings::default(),)),
        _ => Vec::new(),
    };
    let spec = PythonShared::dynamic(kind, name, args);
    Ok(Creation {
        exposed: spec.exposed().to_vec(),
        made: Made::Shared { spec, owned: false },
    })
}

/// `get_workers()`: the manager's worker registry, for a Python worker's reports.
fn workers() -> Creation {
    let spec = PythonShared::dynamic(Kind::Workers, "", Vec::new());
    Creation {
        exposed: spec.exposed().to_vec(),
        made: Made::Shared { spec, owned: false },
    }
}

/// `get_mailbox(name)`: the mailbox `name` (Rust's `client.mailbox::<Dynamic>(name)`), as a
/// queue proxy: `put` sends, `get` receives.
fn mailbox(typeid: &str, args: &[ForeignValue]) -> Result<Creation, ForeignValue> {
    let Some(ForeignValue::Str(name)) = args.first() else {
        return Err(exception(
            "TypeError",
            format!("{typeid}(name) takes the mailbox's name, a str"),
        ));
    };
    let name = format!("{}{name}", crate::kinds::queue::MAILBOX_PREFIX);
    let spec = PythonShared::dynamic(
        Kind::Queue,
        &name,
        encoded(&(crate::kinds::queue::MAILBOX_CAPACITY,)),
    );
    Ok(Creation {
        exposed: spec.exposed().to_vec(),
        made: Made::Shared { spec, owned: false },
    })
}

/// The contents a creation was given, put into the new object: `dict(mapping, **kwds)`,
/// `list(iterable)`, `Namespace(**kwds)`, `Value(typecode, value)`, `Array(typecode, seq)`.
pub(super) fn fill(
    native: &mut Native<'_, '_>,
    spec: &PythonShared,
    args: Vec<ForeignValue>,
    kwds: Vec<(ForeignValue, ForeignValue)>,
) -> Result<(), ForeignValue> {
    use super::shared_calls::shared_method;
    let mut args = args.into_iter();
    match spec.kind {
        Kind::Dict | Kind::Namespace => {
            if let Some(initial) = args.next() {
                shared_method(native, spec, "update", vec![initial], &[])?;
            }
            if !kwds.is_empty() {
                shared_method(native, spec, "update", vec![ForeignValue::Dict(kwds)], &[])?;
            }
        }
        Kind::List => {
            if let Some(initial) = args.next() {
                shared_method(native, spec, "extend", vec![initial], &[])?;
            }
        }
        Kind::Array => {
            let _typecode = args.next();
            match args.next() {
                Some(ForeignValue::Int(n)) => {
                    // A length, not items: bounded before anything is allocated for it.
                    if !(0..=MAX_ARRAY_LEN).contains(&n) {
                        return Err(exception(
                            "ValueError",
                            format!("an Array of 0 to {MAX_ARRAY_LEN} items, not {n}"),
                        ));
                    }
                    let zeros = vec![ForeignValue::Int(0); n as usize];
                    shared_method(native, spec, "extend", vec![ForeignValue::List(zeros)], &[])?;
                }
                Some(initial) => {
                    shared_method(native, spec, "extend", vec![initial], &[])?;
                }
                None => return Err(exception("TypeError", "Array(typecode, sequence)")),
            }
        }
        Kind::Value => {
            // The typecode is not checked, as Python's own `managers.Value` does not.
            let _typecode = args.next();
            let value = args.next().unwrap_or(ForeignValue::None);
            shared_method(native, spec, "set", vec![value], &[])?;
        }
        _ => {}
    }
    Ok(())
}

/// A lock its holder may take again, as `threading.RLock`: over a built-in lock (released if
/// the holding connection dies), with the holder and its depth kept here. Python's client
/// calls a proxy's methods over one connection per thread, so a connection is a thread.
pub(super) struct Reentrant {
    pub(super) spec: PythonShared,
    /// The holding connection and how many times it took the lock.
    owner: Mutex<Option<(u64, u64)>>,
}

impl Reentrant {
    fn new(spec: PythonShared) -> Reentrant {
        Reentrant {
            spec,
            owner: Mutex::new(None),
        }
    }

    fn acquire(
        &self,
        native: &mut Native<'_, '_>,
        wait: Option<u64>,
    ) -> Result<bool, ForeignValue> {
        let me = native.caller.connection();
        if let Some((holder, depth)) = &mut *self.owner.lock()
            && *holder == me
        {
            *depth += 1;
            return Ok(true);
        }
        let got: bool = native.call("acquire", &(wait,))?;
        if got {
            *self.owner.lock() = Some((me, 1));
        }
        Ok(got)
    }

    /// Gives the lock back once (`all`: entirely, for a condition's wait); the depth it had.
    fn let_go(&self, native: &mut Native<'_, '_>, all: bool) -> Result<u64, ForeignValue> {
        let me = native.caller.connection();
        let mut owner = self.owner.lock();
        let Some((holder, depth)) = &mut *owner else {
            return Err(exception("RuntimeError", "cannot release un-acquired lock"));
        };
        if *holder != me {
            return Err(exception("RuntimeError", "cannot release un-acquired lock"));
        }
        let had = *depth;
        *depth = if all { 0 } else { had - 1 };
        if *depth == 0 {
            *owner = None;
            native.call::<(), _>("release", &())?;
        }
        Ok(had)
    }

    fn restore(&self, native: &Native<'_, '_>, depth: u64) {
        *self.owner.lock() = Some((native.caller.connection(), depth));
    }

    /// `acquire` and `release` as Python's `AcquirerProxy` calls them.
    pub(super) fn method(
        &self,
        native: &mut Native<'_, '_>,
        method: &str,
        args: &[ForeignValue],
        kwds: &[(ForeignValue, ForeignValue)],
    ) -> Result<ForeignValue, ForeignValue> {
        match method {
            "acquire" => {
                let blocking = truthy(&arg(args, kwds, 0, "blocking"), true);
                let wait = if blocking {
                    timeout_ms(&arg(args, kwds, 1, "timeout"))
                } else {
                    Some(0)
                };
                self.acquire(native, wait).map(ForeignValue::Bool)
            }
            "release" => self.let_go(native, false).map(|_| ForeignValue::None),
            other => Err(exception(
                "AttributeError",
                format!("a lock has no method {other}"),
            )),
        }
    }
}

#[derive(Default)]
struct Waiters {
    /// Tickets of the waiting calls, in arrival order, and whether each was notified.
    waiting: VecDeque<(u64, bool)>,
    next: u64,
}

/// `threading.Condition` over its own [`Reentrant`] lock: `wait` gives the lock back
/// entirely, waits to be notified (or its timeout), and takes it again at the same depth.
pub(super) struct Condition {
    pub(super) lock: Reentrant,
    waiters: Mutex<Waiters>,
    changed: Condvar,
}

impl Condition {
    pub(super) fn method(
        &self,
        native: &mut Native<'_, '_>,
        method: &str,
        args: &[ForeignValue],
        kwds: &[(ForeignValue, ForeignValue)],
    ) -> Result<ForeignValue, ForeignValue> {
        match method {
            "acquire" | "release" => self.lock.method(native, method, args, kwds),
            "wait" => {
                let wait = timeout_ms(&arg(args, kwds, 0, "timeout"));
                self.wait(native, wait).map(ForeignValue::Bool)
            }
            "notify" => {
                let n = count(arg(args, kwds, 0, "n"), "n", 1)?;
                self.notify(native, n as usize)
            }
            "notify_all" => self.notify(native, usize::MAX),
            other => Err(exception(
                "AttributeError",
                format!("a condition has no method {other}"),
            )),
        }
    }

    fn owned_by(&self, native: &Native<'_, '_>) -> bool {
        matches!(*self.lock.owner.lock(), Some((holder, _)) if holder == native.caller.connection())
    }

    fn wait(&self, native: &mut Native<'_, '_>, wait: Option<u64>) -> Result<bool, ForeignValue> {
        if !self.owned_by(native) {
            return Err(exception("RuntimeError", "cannot wait on un-acquired lock"));
        }
        let ticket = {
            let mut waiters = self.waiters.lock();
            waiters.next += 1;
            let ticket = waiters.next;
            waiters.waiting.push_back((ticket, false));
            ticket
        };
        let depth = self.lock.let_go(native, true)?;
        let notified = |w: &Waiters| {
            w.waiting
                .iter()
                .find(|(t, _)| *t == ticket)
                .is_some_and(|(_, n)| *n)
        };
        let outcome = wait_while(
            self.waiters.lock(),
            &self.changed,
            Waiting {
                deadline: deadline(wait),
                what: "condition",
                caller: native.caller,
            },
            |_| false,
            |w| !notified(w),
            |_| {},
        );
        // Leaving the queue either way; a notification that came too late to count goes to
        // no one (as with threading.Condition).
        let notified = match outcome {
            Ok((mut waiters, _)) => {
                let was = notified(&waiters);
                waiters.waiting.retain(|(t, _)| *t != ticket);
                was
            }
            Err(e) => {
                self.waiters.lock().waiting.retain(|(t, _)| *t != ticket);
                return Err(exception("RuntimeError", e.to_string()));
            }
        };
        // Take the lock again, as deep as it was held, before returning (Python does too).
        let got: bool = native.call("acquire", &(None::<u64>,))?;
        if got {
            self.lock.restore(native, depth);
        }
        Ok(notified)
    }

    fn notify(&self, native: &Native<'_, '_>, n: usize) -> Result<ForeignValue, ForeignValue> {
        if !self.owned_by(native) {
            return Err(exception(
                "RuntimeError",
                "cannot notify on un-acquired lock",
            ));
        }
        let mut waiters = self.waiters.lock();
        for (_, notified) in waiters.waiting.iter_mut().filter(|(_, n)| !*n).take(n) {
            *notified = true;
        }
        self.changed.notify_all();
        Ok(ForeignValue::None)
    }
}
