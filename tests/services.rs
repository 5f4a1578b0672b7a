//! `#[service]` through the public API over real sockets: typed stubs, typed application
//! errors, serialized mutation, object lifetimes across clones, connections and processes.
#![allow(missing_docs)] // tests, not API

mod common;

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use common::{ROLE_VAR, spawn_child, wait_until};
use monogusa::{Client, Error, Manager, ManagerHandle, ObjectRef, RemoteErrorKind};
use serde::{Deserialize, Serialize};

const KEY: &str = "service-key";

/// An application error that travels typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterError {
    Frozen,
    Overflow { at: i64 },
}

/// Counts per key.
#[monogusa::service]
pub trait Counter {
    /// Current value of `key`.
    fn get(&self, key: String) -> i64;
    /// Adds one to `key` and returns the new value.
    fn inc(&mut self, key: String) -> i64;
    /// Adds `delta`, failing when frozen or past `limit`.
    fn add(&mut self, key: String, delta: i64) -> Result<i64, CounterError>;
    /// Refuses further changes.
    fn freeze(&mut self);
    /// Sum of all keys.
    fn total(&self) -> i64;
    /// Panics, for testing.
    fn explode(&self, why: String) -> u8;
}

#[derive(Default)]
pub struct MemoryCounter {
    counts: HashMap<String, i64>,
    frozen: bool,
    limit: Option<i64>,
}

impl Counter for MemoryCounter {
    fn get(&self, key: String) -> i64 {
        self.counts.get(&key).copied().unwrap_or(0)
    }
    fn inc(&mut self, key: String) -> i64 {
        let n = self.counts.entry(key).or_insert(0);
        *n += 1;
        *n
    }
    fn add(&mut self, key: String, delta: i64) -> Result<i64, CounterError> {
        if self.frozen {
            return Err(CounterError::Frozen);
        }
        let n = self.counts.entry(key).or_insert(0);
        let next = *n + delta;
        if self.limit.is_some_and(|limit| next > limit) {
            return Err(CounterError::Overflow { at: *n });
        }
        *n = next;
        Ok(next)
    }
    fn freeze(&mut self) {
        self.frozen = true;
    }
    fn total(&self) -> i64 {
        self.counts.values().sum()
    }
    fn explode(&self, why: String) -> u8 {
        panic!("exploded: {why}")
    }
}

/// A second service, to check type checks between services.
#[monogusa::service]
pub trait Greeter {
    fn greet(&self, name: String) -> String;
}

pub struct English;

impl Greeter for English {
    fn greet(&self, name: String) -> String {
        format!("hello, {name}")
    }
}

/// Observes concurrency inside an object.
#[monogusa::service]
pub trait Probe {
    /// Waits (up to a few seconds) until `others` other `meet` calls are inside at once.
    fn meet(&self, others: usize) -> bool;
}

#[derive(Default)]
pub struct MeetingPoint {
    inside: std::sync::atomic::AtomicUsize,
}

impl Probe for MeetingPoint {
    fn meet(&self, others: usize) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.inside.fetch_add(1, SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut met = false;
        while std::time::Instant::now() < deadline {
            if self.inside.load(SeqCst) > others {
                met = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Stay until everyone has seen the meeting, so no caller misses it.
        std::thread::sleep(Duration::from_millis(20));
        self.inside.fetch_sub(1, SeqCst);
        met
    }
}

fn start_manager() -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .serve("counter", CounterServer::new(MemoryCounter::default()))
        .serve(
            "other_counter",
            CounterServer::new(MemoryCounter::default()),
        )
        .serve("greeter", GreeterServer::new(English))
        .serve("probe", ProbeServer::new(MeetingPoint::default()))
        .register_type("Counter", |limit: Option<i64>| {
            CounterServer::new(MemoryCounter {
                limit,
                ..MemoryCounter::default()
            })
        })
        .register_type("PlainCounter", || {
            CounterServer::new(MemoryCounter::default())
        })
        .register("ping", || "pong")
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn references(client: &Client, id: u64) -> Option<u64> {
    let description = client.describe().unwrap();
    description
        .objects
        .iter()
        .find(|o| o.id == id)
        .map(|o| o.references)
}

#[test]
fn typed_results_and_typed_application_errors() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let counter = CounterClient::open(&client, "counter").unwrap();
    assert_eq!(counter.inc("a".into()).unwrap(), 1);
    assert_eq!(counter.add("a".into(), 41).unwrap(), Ok(42));
    assert_eq!(counter.get("a".into()).unwrap(), 42);
    counter.freeze().unwrap();
    // The application's error arrives typed, inside the call's Ok.
    assert_eq!(
        counter.add("a".into(), 1).unwrap(),
        Err(CounterError::Frozen)
    );
    assert_eq!(counter.total().unwrap(), 42);

    let limited = CounterClient::create(&client, (Some(10i64),)).unwrap();
    assert_eq!(limited.add("x".into(), 8).unwrap(), Ok(8));
    assert_eq!(
        limited.add("x".into(), 5).unwrap(),
        Err(CounterError::Overflow { at: 8 })
    );
}

#[test]
fn shared_reference_methods_run_together() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let probe = ProbeClient::open(&client, "probe").unwrap();
    // Three `&self` calls from three threads are inside the object at the same time; were
    // they serialized, none would see the others and each would report false.
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let probe = probe.clone();
            std::thread::spawn(move || probe.meet(2).unwrap())
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap(), "`&self` calls did not overlap");
    }
}

#[test]
fn objects_under_different_names_are_independent() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let a = CounterClient::open(&client, "counter").unwrap();
    let b = CounterClient::open(&client, "other_counter").unwrap();
    a.inc("k".into()).unwrap();
    a.inc("k".into()).unwrap();
    b.inc("k".into()).unwrap();
    assert_eq!(
        (a.get("k".into()).unwrap(), b.get("k".into()).unwrap()),
        (2, 1)
    );
}

#[test]
fn a_panicking_method_is_an_error_and_the_object_serves_on() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let counter = CounterClient::open(&client, "counter").unwrap();
    counter.inc("k".into()).unwrap();
    let err = counter.explode("on purpose".into()).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::Panicked && r.message().contains("exploded: on purpose")),
        "{err}"
    );
    assert_eq!(counter.inc("k".into()).unwrap(), 2);
}

#[test]
fn opening_what_is_not_there_or_of_another_service_is_a_clear_error() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let err = CounterClient::open(&client, "nope").unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::UnknownObject),
        "{err}"
    );
    let err = CounterClient::open(&client, "greeter").unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::WrongService && r.message().contains("Greeter")),
        "{err}"
    );
    let err = GreeterClient::create(&client, ()).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::UnknownType),
        "{err}"
    );
    let err = GreeterClient::create_as(&client, "Counter", (None::<i64>,)).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::WrongService),
        "{err}"
    );
    let err = CounterClient::create(&client, ("not an option",)).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::BadArguments),
        "{err}"
    );
    // A reference claiming the wrong service is checked by the manager.
    let greeter = GreeterClient::open(&client, "greeter").unwrap();
    let forged = ObjectRef {
        id: greeter.object_ref().id,
        service: "Counter".into(),
    };
    let err = CounterClient::from_ref(&client, &forged).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::WrongService),
        "{err}"
    );
    assert_eq!(greeter.greet("ann".into()).unwrap(), "hello, ann");
}

#[test]
fn describe_lists_functions_objects_and_types() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let d = client.describe().unwrap();
    assert_eq!(d.functions, ["ping"]);
    let counter = d
        .objects
        .iter()
        .find(|o| o.name.as_deref() == Some("counter"))
        .unwrap();
    assert_eq!(counter.service, "Counter");
    let methods: Vec<(&str, bool)> = counter
        .methods
        .iter()
        .map(|m| (m.name.as_str(), m.mutates))
        .collect();
    assert_eq!(
        methods,
        [
            ("get", false),
            ("inc", true),
            ("add", true),
            ("freeze", true),
            ("total", false),
            ("explode", false)
        ]
    );
    let types: Vec<(&str, &str)> = d
        .types
        .iter()
        .map(|t| (t.type_id.as_str(), t.service.as_str()))
        .collect();
    assert_eq!(types, [("Counter", "Counter"), ("PlainCounter", "Counter")]);
}

#[test]
fn created_objects_live_while_any_stub_does() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let observer = Client::connect(manager.address(), KEY).unwrap();
    let counter = CounterClient::create_as(&client, "PlainCounter", ()).unwrap();
    let id = counter.object_ref().id;
    assert_eq!(references(&observer, id), Some(1));
    let clone = counter.clone();
    assert_eq!(references(&observer, id), Some(1), "clones count locally");
    drop(counter);
    assert_eq!(clone.inc("k".into()).unwrap(), 1);
    // Another client (another connection) takes its own reference.
    let other_client = Client::connect(manager.address(), KEY).unwrap();
    let other = CounterClient::from_ref(&other_client, &clone.object_ref()).unwrap();
    assert_eq!(references(&observer, id), Some(2));
    drop(clone);
    assert_eq!(references(&observer, id), Some(1));
    assert_eq!(other.inc("k".into()).unwrap(), 2);
    drop(other);
    assert_eq!(
        references(&observer, id),
        None,
        "the last stub's drop frees the object"
    );
    let stale = ObjectRef {
        id,
        service: "Counter".into(),
    };
    let err = CounterClient::from_ref(&observer, &stale).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::UnknownObject),
        "{err}"
    );
}

#[test]
fn a_stub_after_the_manager_shut_down_gets_a_clear_error() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let counter = CounterClient::open(&client, "counter").unwrap();
    let created = CounterClient::create(&client, (None::<i64>,)).unwrap();
    manager.shutdown();
    let err = counter.inc("k".into()).unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost(_) | Error::Io(_)),
        "{err}"
    );
    let err = created.inc("k".into()).unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost(_) | Error::Io(_)),
        "{err}"
    );
    drop(created); // must not hang or panic
}

// ---- Across processes ------------------------------------------------------------------------

const ADDRESS_VAR: &str = "MONOGUSA_TEST_ADDRESS";
const ARG_VAR: &str = "MONOGUSA_TEST_ARG";

/// Entry point of the child processes these tests spawn.
#[test]
#[ignore = "run only as a child process by the other tests"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    let address = std::env::var(ADDRESS_VAR).unwrap();
    let arg = std::env::var(ARG_VAR).unwrap_or_default();
    let client = Client::connect(address.as_str(), KEY).unwrap();
    match role.as_str() {
        "incrementer" => {
            let counter = CounterClient::open(&client, "counter").unwrap();
            let rounds: usize = arg.parse().unwrap();
            for _ in 0..rounds {
                counter.inc("shared".into()).unwrap();
            }
        }
        "borrower" => {
            // Reopen an object made by another process, use it, then let go.
            let object: ObjectRef = ref_from_text(&arg);
            let counter = CounterClient::from_ref(&client, &object).unwrap();
            counter.inc("borrowed".into()).unwrap();
        }
        "holder" => {
            // Take a reference and hold it until killed.
            let object: ObjectRef = ref_from_text(&arg);
            let counter = CounterClient::from_ref(&client, &object).unwrap();
            counter.inc("held".into()).unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// ObjectRef as "id:service", enough to pass one through an environment variable.
fn ref_to_text(object: &ObjectRef) -> String {
    format!("{}:{}", object.id, object.service)
}

fn ref_from_text(text: &str) -> ObjectRef {
    let (id, service) = text.split_once(':').unwrap();
    ObjectRef {
        id: id.parse().unwrap(),
        service: service.into(),
    }
}

fn spawn(role: &str, address: &str, arg: &str) -> Child {
    spawn_child(role, &[(ADDRESS_VAR, address), (ARG_VAR, arg)])
}

#[test]
fn mutating_methods_are_serialized_across_processes() {
    let manager = start_manager();
    let address = manager.address().to_string();
    let children: Vec<Child> = (0..4)
        .map(|_| spawn("incrementer", &address, "500"))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let client = Client::connect(manager.address(), KEY).unwrap();
    let counter = CounterClient::open(&client, "counter").unwrap();
    assert_eq!(counter.get("shared".into()).unwrap(), 2000);
}

#[test]
fn references_follow_stubs_across_processes_and_die_with_them() {
    let manager = start_manager();
    let address = manager.address().to_string();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let observer = Client::connect(manager.address(), KEY).unwrap();
    let counter = CounterClient::create(&client, (None::<i64>,)).unwrap();
    let id = counter.object_ref().id;
    let encoded = ref_to_text(&counter.object_ref());

    // A process that reopens the object and exits releases its reference.
    assert!(
        spawn("borrower", &address, &encoded)
            .wait()
            .unwrap()
            .success()
    );
    assert_eq!(counter.get("borrowed".into()).unwrap(), 1);
    assert_eq!(references(&observer, id), Some(1));

    // A process killed while holding a reference releases it too.
    let mut holder = spawn("holder", &address, &encoded);
    wait_until(
        Duration::from_secs(30),
        "the holder took its reference",
        || counter.get("held".into()).unwrap() == 1,
    );
    assert_eq!(references(&observer, id), Some(2));
    holder.kill().unwrap();
    holder.wait().unwrap();
    wait_until(
        Duration::from_secs(10),
        "the killed holder's reference is released",
        || references(&observer, id) == Some(1),
    );

    // When the creator lets go last, the object is freed — though another process used it.
    let mut holder = spawn("holder", &address, &encoded);
    wait_until(
        Duration::from_secs(30),
        "the second holder took its reference",
        || references(&observer, id) == Some(2),
    );
    drop(counter);
    assert_eq!(
        references(&observer, id),
        Some(1),
        "the holder keeps it alive"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    wait_until(Duration::from_secs(10), "the object is freed", || {
        references(&observer, id).is_none()
    });
}

#[test]
fn a_stub_with_a_timeout_times_its_calls_out_and_the_original_keeps_none() {
    let manager = start_manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let probe = ProbeClient::open(&client, "probe").unwrap();
    // Nobody else comes yet: the call waits in the manager, longer than we will.
    let impatient = probe.with_timeout(Duration::from_millis(100));
    match impatient.meet(1) {
        Err(monogusa::Error::Timeout(monogusa::Phase::Call)) => {}
        other => panic!("expected a call timeout, got {other:?}"),
    }
    // The stub it came from has no timeout, and both still work (this call is the one the
    // first waited for, so it ends too).
    assert!(probe.meet(0).unwrap());
    let greeter = GreeterClient::open(&client, "greeter").unwrap();
    let greeting = greeter
        .with_timeout(Duration::from_secs(30))
        .greet("Ada".into());
    assert!(greeting.unwrap().contains("Ada"));
}

/// Seats held per connection: a service that names itself on the wire, takes the caller,
/// fails calls with typed remote errors and hears of closed connections (`hooks`), as the
/// built-in kinds do.
#[monogusa::service(name = "venue.Seats", hooks)]
pub trait Seats {
    /// Takes a seat for the calling connection; `LimitExceeded` when none is left.
    fn take(&self, caller: &monogusa::Caller<'_>) -> Result<u64, monogusa::RemoteError>;
    /// Seats taken.
    fn taken(&self) -> u64;
}

struct Venue {
    capacity: u64,
    held: parking_lot::Mutex<HashMap<u64, u64>>,
}

impl Seats for Venue {
    fn take(&self, caller: &monogusa::Caller<'_>) -> Result<u64, monogusa::RemoteError> {
        let mut held = self.held.lock();
        let taken: u64 = held.values().sum();
        if taken == self.capacity {
            return Err(monogusa::RemoteError::new(
                RemoteErrorKind::LimitExceeded,
                "the venue is full",
            ));
        }
        *held.entry(caller.connection()).or_insert(0) += 1;
        Ok(taken + 1)
    }

    fn taken(&self) -> u64 {
        self.held.lock().values().sum()
    }
}

impl monogusa::Hooks for Venue {
    fn tracks_connections(&self) -> bool {
        true
    }

    fn connection_closed(&self, connection: u64) {
        self.held.lock().remove(&connection);
    }
}

#[test]
fn services_name_themselves_see_their_caller_fail_calls_and_hear_closed_connections() {
    let manager = Manager::builder()
        .authkey(KEY)
        .serve(
            "hall",
            SeatsServer::new(Venue {
                capacity: 2,
                held: Default::default(),
            }),
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    assert_eq!(SeatsClient::SERVICE, "venue.Seats");
    let watcher = Client::connect(manager.address(), KEY).unwrap();
    let seats = SeatsClient::open(&watcher, "hall").unwrap();
    {
        let guest = Client::connect(manager.address(), KEY).unwrap();
        let hall = SeatsClient::open(&guest, "hall").unwrap();
        assert_eq!(hall.take().unwrap(), 1);
        assert_eq!(hall.take().unwrap(), 2);
        // The method's own error is the call's: typed, with its kind.
        match hall.take() {
            Err(Error::Remote(e)) => assert_eq!(e.kind(), RemoteErrorKind::LimitExceeded),
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
        assert_eq!(seats.taken().unwrap(), 2);
    }
    // The guest's connections closed: its seats are given back.
    wait_until(Duration::from_secs(10), "the seats to be freed", || {
        seats.taken().unwrap() == 0
    });
}
