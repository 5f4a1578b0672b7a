//! The manager as a hostile or faulty peer sees it: each test reproduces one way a peer could
//! once kill, starve or fool the manager, and checks that it now gets a typed error while
//! everyone else is served.
#![allow(missing_docs)] // tests, not API

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use std::time::{Duration, Instant};

use common::*;
use monogusa::{Client, Error, RemoteErrorKind};

// ---- Deep input ---------------------------------------------------------------------------

/// A recursive argument type, as a user might register.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Expr {
    Lit(i64),
    Neg(Box<Expr>),
}

impl Expr {
    fn eval(&self) -> i64 {
        match self {
            Expr::Lit(n) => *n,
            Expr::Neg(e) => -e.eval(),
        }
    }
}

#[monogusa::service]
pub trait Evaluator {
    fn eval(&self, expr: Expr) -> i64;
}

struct Eval;

impl Evaluator for Eval {
    fn eval(&self, expr: Expr) -> i64 {
        expr.eval()
    }
}

/// `levels` nested `Neg`s around `Lit(7)`, encoded by hand as the codec would (encoding it
/// through serde would recurse as deep in the test itself).
fn deep_expr(levels: usize) -> Vec<u8> {
    let mut bytes = 1u32.to_le_bytes().repeat(levels);
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&7i64.to_le_bytes());
    bytes
}

fn open_frame(id: u64, name: &str, service: &str) -> Vec<u8> {
    let mut fields = string_arg(name);
    fields.extend(string_arg(service));
    request_frame(id, 3, &fields, &[])
}

fn create_frame(id: u64, type_id: &str, service: &str, args: &[u8]) -> Vec<u8> {
    let mut fields = string_arg(type_id);
    fields.extend(string_arg(service));
    request_frame(id, 4, &fields, args)
}

fn expect_error(stream: &mut TcpStream, id: u64, kind: u16, contains: &str) {
    let reply = read_response(stream).unwrap();
    assert_eq!(reply.id, id);
    let (code, message) = reply.error();
    assert_eq!(code, kind, "{message}");
    assert!(message.contains(contains), "{message}");
}

fn expect_u64(stream: &mut TcpStream, id: u64) -> u64 {
    let reply = read_response(stream).unwrap();
    assert_eq!(reply.id, id);
    assert!(!reply.is_error, "{:?}", reply.error());
    u64::from_le_bytes(reply.body[..8].try_into().unwrap())
}

/// 10,000 levels in a 40 KB frame once overflowed the connection thread's stack and aborted
/// the whole manager. Functions, service methods and constructors now answer BadArguments.
#[test]
fn deeply_nested_arguments_are_bad_arguments_not_a_crash() {
    let manager = standard_builder()
        .register("eval", |e: Expr| e.eval())
        .serve("evaluator", EvaluatorServer::new(Eval))
        .register_type("Evaluator", |_seed: Expr| EvaluatorServer::new(Eval))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let bad_arguments = 2;
    let mut raw = raw_authenticated(manager.address(), KEY.as_bytes());

    raw.write_all(&call_frame(1, "eval", &deep_expr(10_000)))
        .unwrap();
    expect_error(&mut raw, 1, bad_arguments, "nested deeper than 128");

    raw.write_all(&open_frame(2, "evaluator", "Evaluator"))
        .unwrap();
    let object = expect_u64(&mut raw, 2);
    raw.write_all(&method_frame(3, object, "eval", &deep_expr(10_000)))
        .unwrap();
    expect_error(&mut raw, 3, bad_arguments, "nested deeper than");

    raw.write_all(&create_frame(
        4,
        "Evaluator",
        "Evaluator",
        &deep_expr(10_000),
    ))
    .unwrap();
    expect_error(&mut raw, 4, bad_arguments, "nested deeper than");

    // Within the limit it works, on the same connection.
    raw.write_all(&call_frame(5, "eval", &deep_expr(100)))
        .unwrap();
    let reply = read_response(&mut raw).unwrap();
    assert_eq!(reply.body, 7i64.to_le_bytes());
    assert_still_serves(manager.address());
}

/// The limit is the manager's to set.
#[test]
fn the_decode_depth_limit_is_configurable() {
    let manager = standard_builder()
        .register("eval", |e: Expr| e.eval())
        .max_decode_depth(8)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let mut e = Expr::Lit(1);
    for _ in 0..3 {
        e = Expr::Neg(Box::new(e));
    }
    assert_eq!(client.call::<i64>("eval", (&e,)).unwrap(), -1);
    for _ in 0..10 {
        e = Expr::Neg(Box::new(e));
    }
    match client.call::<i64>("eval", (&e,)) {
        Err(Error::Remote(r)) => assert_eq!(r.kind(), RemoteErrorKind::BadArguments),
        other => panic!("{other:?}"),
    }
}

/// Serializes as a bare sequence of words: a reply whose bytes are a 10,000-level `Expr`.
struct RawWords(Vec<u32>, i64);

impl serde::Serialize for RawWords {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(self.0.len() + 1)?;
        for w in &self.0 {
            t.serialize_element(w)?;
        }
        t.serialize_element(&self.1)?;
        t.end()
    }
}

/// A client decoding a reply nested too deep gets a codec error, not a stack overflow.
#[test]
fn deeply_nested_replies_are_a_codec_error_for_the_client() {
    let manager = standard_builder()
        .register("deep", |levels: u32| {
            let mut words = vec![1u32; levels as usize];
            words.push(0);
            monogusa::Reply(RawWords(words, 7))
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    match client.call::<Expr>("deep", (10_000u32,)) {
        Err(Error::Codec(m)) => assert!(m.contains("nested deeper than 128"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.call::<Expr>("deep", (3u32,)).unwrap().eval(), -7);
    let strict = Client::builder(manager.address(), KEY)
        .max_decode_depth(3)
        .connect()
        .unwrap();
    assert!(matches!(
        strict.call::<Expr>("deep", (3u32,)),
        Err(Error::Codec(_))
    ));
    // Pipelined replies are held to the same limit.
    let pending = client.send::<Expr>("deep", (10_000u32,)).unwrap();
    assert!(matches!(pending.wait(), Err(Error::Codec(_))));
}

/// An honest client is served (through a built-in object, which every manager has).
fn assert_still_serves(address: &monogusa::Address) {
    let client = Client::connect(address, KEY).unwrap();
    let alive = client.counter("alive").unwrap();
    let before = alive.get().unwrap();
    assert_eq!(alive.add(1).unwrap(), before + 1);
}

// ---- Memory for frames in progress ---------------------------------------------------------

/// 34 connections each announcing a 64 MiB frame (136 bytes in all) once made the manager
/// zero-fill 2.2 GB and abort. Buffers now grow with the bytes that arrive.
#[test]
fn announced_lengths_cost_nothing_until_the_bytes_arrive() {
    let manager = ChildManager::start(&[]);
    let before = manager.rss_kib();
    let mut liars = Vec::new();
    for _ in 0..40 {
        let mut raw = raw_authenticated(&manager.address, KEY.as_bytes());
        raw.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
        raw.write_all(&[0; 100]).unwrap();
        liars.push(raw);
    }
    // Every liar's prefix has been read once this honest call is answered after them.
    assert_still_serves(&manager.address);
    std::thread::sleep(Duration::from_millis(200));
    let after = manager.rss_kib();
    assert!(
        after < before + 64 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    drop(liars);
}

/// Frames in progress share one budget: past it a connection is closed with a typed notice,
/// its memory is given back, and the others are served.
#[test]
fn the_manager_wide_budget_for_frames_in_progress_holds() {
    let manager = standard_builder()
        .max_buffered_bytes(8 << 20)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let frame_of = |len: usize| {
        let mut args = (len as u64).to_le_bytes().to_vec();
        args.extend(std::iter::repeat_n(b'x', len));
        call_frame(1, "echo", &args)
    };
    let big = frame_of(7 << 20);
    let mut first = raw_authenticated(manager.address(), KEY.as_bytes());
    first.write_all(&big[..6 << 20]).unwrap();
    wait_until(
        Duration::from_secs(20),
        "the first frame is buffered",
        || manager.stats().buffered_bytes >= 6 << 20,
    );
    let mut second = raw_authenticated(manager.address(), KEY.as_bytes());
    let _ = second.write_all(&big[..5 << 19]);
    let notice = read_response(&mut second).unwrap();
    assert_eq!(notice.id, 0);
    let (code, message) = notice.error();
    assert_eq!(code, 14, "{message}"); // LimitExceeded
    assert!(message.contains("budget"), "{message}");
    assert_still_serves(manager.address());
    // The first completes its frame and is answered.
    first.write_all(&big[6 << 20..]).unwrap();
    let reply = read_response(&mut first).unwrap();
    assert!(!reply.is_error);
    drop(first);
    // Its memory came back.
    wait_until(Duration::from_secs(10), "the budget is given back", || {
        manager.stats().buffered_bytes == 0
    });
}

/// A peer sending a frame one byte at a time used to keep its connection (and buffer) for as
/// long as each byte came within the stall timeout. The timeout is now a total deadline.
#[test]
fn a_frame_dripped_byte_by_byte_is_cut_at_the_total_deadline() {
    let manager = standard_builder()
        .stall_timeout(Duration::from_millis(600))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut raw = raw_authenticated(manager.address(), KEY.as_bytes());
    let frame = call_frame(1, "echo", &string_arg("hello"));
    let started = Instant::now();
    let mut cut = false;
    for byte in &frame {
        if raw.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert!(
        cut || closed_by_peer(&mut raw),
        "the dripping peer was not cut"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    wait_until(Duration::from_secs(10), "the stall is counted", || {
        manager.stats().protocol_errors == 1
    });
    assert_still_serves(manager.address());
}

// ---- Peers without the key ----------------------------------------------------------------

/// Fifty sockets sending one byte every 8 s once held all fifty slots for minutes while
/// honest clients were refused. Handshakes now have a total deadline and their own limit, and
/// a new connection displaces the longest-waiting handshake.
#[test]
fn handshake_slowloris_cannot_starve_honest_clients() {
    let manager = standard_builder()
        .max_connections(16)
        .max_handshakes(8)
        .handshake_timeout(Duration::from_millis(1500))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let address = socket_addr(manager.address());
    // An honest client connected before the attack keeps its connection.
    let before = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(before.call::<i64>("inc", ("k",)).unwrap(), 1);
    let mut drips: Vec<TcpStream> = (0..30)
        .map(|_| {
            let s = TcpStream::connect(address).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    // Each drip socket sends the start of a banner, a byte at a time.
    for round in 0..3 {
        for s in &mut drips {
            let _ = s.write_all(&BANNER[..1].repeat(1 + round));
        }
        // Honest clients get in while the drip goes on.
        let honest = Client::connect(manager.address(), KEY).unwrap();
        assert!(honest.call::<i64>("inc", ("k",)).unwrap() >= 2);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(before.call::<i64>("inc", ("k",)).unwrap() >= 5);
    let stats = manager.stats();
    assert!(stats.handshakes_displaced > 0, "{stats:?}");
    assert!(stats.handshakes_in_progress <= 8, "{stats:?}");
    // Every drip socket is cut: displaced, or at the total deadline however it drips.
    for s in &mut drips {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        loop {
            let _ = s.write_all(b"x");
            if closed_by_peer(s) {
                break;
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    wait_until(Duration::from_secs(10), "the handshakes end", || {
        manager.stats().handshakes_in_progress == 0
    });
}

/// A peer that keeps failing the key is answered more and more slowly; others are not.
#[test]
fn repeated_wrong_keys_are_slowed_down() {
    let manager = start_standard();
    let mut failures = 0;
    let started = Instant::now();
    while failures < 8 {
        match Client::connect(manager.address(), "wrong-key") {
            Err(Error::Authentication(_)) => failures += 1,
            other => panic!("{other:?}"),
        }
    }
    // 3 free, then 50 + 100 + 200 + 400 + 800 ms at least.
    assert!(started.elapsed() >= Duration::from_millis(1550));
    wait_until(Duration::from_secs(10), "every failure is counted", || {
        manager.stats().auth_failures == 8
    });
    assert_still_serves(manager.address());
}

// ---- Callers that die while they wait --------------------------------------------------------

fn open_queue_raw(raw: &mut TcpStream, name: &str) -> u64 {
    raw.write_all(&open_shared_frame(
        1,
        "monogusa.Queue",
        name,
        "u64",
        &0u64.to_le_bytes(),
    ))
    .unwrap();
    expect_u64(raw, 1)
}

/// A client that disconnected while blocked in `Queue.get` used to keep its place and take
/// the next item, which was lost. Now it leaves before taking anything.
#[test]
fn closed_waiters_do_not_take_items() {
    let manager = start_standard();
    let calls_before = manager.stats().calls;
    let mut waiters = Vec::new();
    for _ in 0..50 {
        let mut raw = raw_authenticated(manager.address(), KEY.as_bytes());
        let queue = open_queue_raw(&mut raw, "jobs");
        raw.write_all(&method_frame(2, queue, "get", &[0])).unwrap();
        waiters.push(raw);
    }
    wait_until(Duration::from_secs(10), "every get is waiting", || {
        manager.stats().calls >= calls_before + 50
    });
    drop(waiters);
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.queue::<u64>("jobs", 0).unwrap();
    for i in 0..20u64 {
        jobs.put(&i).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(
            jobs.get_timeout(Duration::from_secs(10))
                .unwrap()
                .expect("an item no dead waiter took"),
        );
    }
    assert_eq!(got, (0..20).collect::<Vec<_>>());
}

/// The same for waiters SIGKILLed in `get` and `get_timeout`, in separate processes.
#[test]
fn sigkilled_waiters_do_not_take_items() {
    let manager = start_standard();
    let address = manager.address().to_string();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let calls_before = manager.stats().calls;
    let mut children: Vec<_> = ["get", "get", "get_timeout"]
        .iter()
        .map(|how| spawn_child("waiter", &[(ADDRESS_VAR, address.as_str()), (HOW_VAR, how)]))
        .collect();
    // Each child makes two calls: `ready.add`, then the get it blocks in.
    wait_until(Duration::from_secs(30), "every child waits in get", || {
        manager.stats().calls >= calls_before + 6
    });
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let jobs = client.queue::<u64>("jobs", 0).unwrap();
    for i in 0..10u64 {
        jobs.put(&i).unwrap();
    }
    for i in 0..10u64 {
        assert_eq!(jobs.get_timeout(Duration::from_secs(10)).unwrap(), Some(i));
    }
}

/// A barrier party that hung up no longer counts toward the round, and a dead acquirer does
/// not take the lock.
#[test]
fn dead_parties_and_acquirers_leave_barriers_and_locks() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let barrier = client.barrier("b", 2).unwrap();
    let lock = client.lock("l").unwrap();
    let held = lock.acquire().unwrap();
    let calls_before = manager.stats().calls;
    let (mut party, mut acquirer) = (
        raw_authenticated(manager.address(), KEY.as_bytes()),
        raw_authenticated(manager.address(), KEY.as_bytes()),
    );
    party
        .write_all(&open_shared_frame(
            1,
            "monogusa.Barrier",
            "b",
            "",
            &2u64.to_le_bytes(),
        ))
        .unwrap();
    let b = expect_u64(&mut party, 1);
    party.write_all(&method_frame(2, b, "wait", &[0])).unwrap();
    acquirer
        .write_all(&open_shared_frame(1, "monogusa.Lock", "l", "", &[]))
        .unwrap();
    let l = expect_u64(&mut acquirer, 1);
    acquirer
        .write_all(&method_frame(2, l, "acquire", &[0]))
        .unwrap();
    wait_until(Duration::from_secs(10), "both wait", || {
        manager.stats().calls >= calls_before + 2
    });
    drop(party);
    drop(acquirer);
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    // The lock is free for us, not held by the dead acquirer.
    let again = lock.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert!(again.is_some());
    // Two live parties pass together.
    let other = Client::connect(manager.address(), KEY).unwrap();
    let waiter = std::thread::spawn(move || {
        other
            .barrier("b", 2)
            .unwrap()
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
    });
    let mine = barrier.wait_timeout(Duration::from_secs(10)).unwrap();
    let theirs = waiter.join().unwrap();
    let mut positions = [mine.expect("passed"), theirs.expect("passed")];
    positions.sort();
    assert_eq!(positions, [0, 1]);
}

const ADDRESS_VAR: &str = "MONOGUSA_TEST_ADDRESS";
const HOW_VAR: &str = "MONOGUSA_TEST_HOW";

/// The roles of this test binary's child processes.
#[test]
#[ignore = "runs only as a child process"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    let address = std::env::var(ADDRESS_VAR).unwrap();
    let client = Client::connect(address.as_str(), KEY).unwrap();
    match role.as_str() {
        "waiter" => {
            let jobs = client.queue::<u64>("jobs", 0).unwrap();
            client.counter("ready").unwrap().add(1).unwrap();
            match std::env::var(HOW_VAR).unwrap().as_str() {
                "get" => {
                    jobs.get().unwrap();
                }
                _ => {
                    jobs.get_timeout(Duration::from_secs(60)).unwrap();
                }
            }
            panic!("a waiter got an item before it was killed");
        }
        other => panic!("unknown role {other}"),
    }
}

// ---- Handles across a manager restart ---------------------------------------------------------

/// Ids restarted at 1 with every run, so after a restart an old client's `hits.add(1)`
/// returned `Ok(2)` and incremented `errors`. Ids now carry a random run number: a named
/// handle reopens its name, a created object's handle gets `StaleObject`.
#[test]
fn handles_from_an_earlier_run_never_reach_another_object() {
    let first = standard_builder()
        .register_type("Evaluator", || EvaluatorServer::new(Eval))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let address = first.address().clone();
    let old = Client::builder(&address, KEY)
        .reconnect(50, Duration::from_millis(20))
        .connect()
        .unwrap();
    let hits = old.counter("hits").unwrap();
    let errors = old.counter("errors").unwrap();
    hits.add(1).unwrap();
    errors.add(10).unwrap();
    let created = EvaluatorClient::create(&old, ()).unwrap();
    assert_eq!(created.eval(Expr::Lit(3)).unwrap(), 3);
    first.shutdown();

    let second = standard_builder()
        .bind(&address)
        .register_type("Evaluator", || EvaluatorServer::new(Eval))
        .build()
        .unwrap()
        .start()
        .unwrap();
    // Another client opens the names in the other order, so the new run's first id is
    // `errors`, which `hits` had in the old run.
    let fresh = Client::connect(&address, KEY).unwrap();
    let new_errors = fresh.counter("errors").unwrap();
    let _new_hits = fresh.counter("hits").unwrap();
    // The old handle reopens "hits": the new run's counter, which starts at 0. (The old
    // client's pooled connection died with the old run: a call on it is ConnectionLost,
    // never retried; the next call connects afresh.)
    let added = match hits.add(1) {
        Err(Error::ConnectionLost(_)) => hits.add(1),
        other => other,
    };
    assert_eq!(added.unwrap(), 1);
    assert_eq!(new_errors.get().unwrap(), 0, "errors must be untouched");
    assert_eq!(errors.get().unwrap(), 0);
    match created.eval(Expr::Lit(3)) {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), RemoteErrorKind::StaleObject, "{e}");
            assert!(e.message().contains("earlier run"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    drop(second);
}

// ---- Limits for key holders -----------------------------------------------------------------

fn limit_kind<T: std::fmt::Debug>(result: monogusa::Result<T>) -> String {
    match result {
        Err(Error::Remote(e)) if e.kind() == RemoteErrorKind::LimitExceeded => {
            e.message().to_string()
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

/// 1,000 x 1 MiB into a queue and a dict once took 2 GB and aborted the manager. The store now
/// has limits, each a typed error that changes nothing, and the memory comes back.
#[test]
fn the_store_has_limits_with_typed_errors() {
    let manager = standard_builder()
        .max_store_bytes(4 << 20)
        .max_item_bytes(1 << 20)
        .max_items_per_container(100)
        .max_shared_objects(20)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let queue = client.queue::<serde_bytes::ByteBuf>("big", 0).unwrap();
    // Encoded with its 8-byte length: exactly 1 MiB, the largest item allowed.
    let mib = serde_bytes::ByteBuf::from(vec![7u8; (1 << 20) - 8]);
    let mut put = 0;
    let message = loop {
        match queue.put_timeout(&mib, Duration::from_secs(5)) {
            Ok(true) => put += 1,
            other => break limit_kind(other),
        }
    };
    assert!(message.contains("limit of 4194304"), "{message}");
    assert_eq!(put, 3, "three items of nearly 1 MiB fit in 4 MiB");
    assert_eq!(queue.len().unwrap(), 3, "the refused put changed nothing");
    assert!(manager.stats().store_bytes <= 4 << 20);
    // Too big on its own.
    let huge = serde_bytes::ByteBuf::from(vec![0u8; 2 << 20]);
    let message = limit_kind(client.value("v").unwrap().swap(&huge));
    assert!(message.contains("per item"), "{message}");
    // A dict is held to the same budget and to its item count.
    let dict = client.dict::<u32, u32>("d").unwrap();
    for k in 0..100 {
        dict.insert(&k, &k).unwrap();
    }
    let message = limit_kind(dict.insert(&100, &100));
    assert!(message.contains("100 items"), "{message}");
    dict.insert(&5, &50).unwrap(); // replacing is not growing
    assert_eq!(dict.len().unwrap(), 100);
    // Taking items out gives their bytes back.
    let before = manager.stats().store_bytes;
    queue.get().unwrap();
    assert!(manager.stats().store_bytes < before);
    queue.put(&mib).unwrap();
    // Objects are limited in number, and can be deleted.
    let mut names = Vec::new();
    let message = loop {
        let name = format!("c{}", names.len());
        match client.counter(&name) {
            Ok(_) => names.push(name),
            Err(e) => break limit_kind::<()>(Err(e)),
        }
    };
    assert!(message.contains("20 shared objects"), "{message}");
    assert!(client.delete_shared(&names[0]).unwrap());
    assert!(!client.delete_shared(&names[0]).unwrap());
    client.counter("one-more").unwrap();
    // Deleting a container gives its bytes back.
    assert!(client.delete_shared("big").unwrap());
    assert!(client.delete_shared("d").unwrap());
    wait_until(Duration::from_secs(5), "the store is empty", || {
        manager.stats().store_bytes == 0
    });
    // Its old handles are told the object is gone.
    match queue.len() {
        Err(Error::Remote(e)) => assert_eq!(e.kind(), RemoteErrorKind::UnknownObject),
        other => panic!("{other:?}"),
    }
}

/// A call blocked in a deleted queue is woken with a clear error.
#[test]
fn deleting_a_queue_wakes_its_waiters() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let queue = client.queue::<u64>("q", 0).unwrap();
    let waiter = std::thread::spawn(move || queue.get());
    wait_until(Duration::from_secs(10), "the get waits", || {
        manager.stats().calls >= 1
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(client.delete_shared("q").unwrap());
    match waiter.join().unwrap() {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), RemoteErrorKind::UnknownObject, "{e}");
            assert!(e.message().contains("deleted"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// Creation arguments out of range are refused, not silently changed.
#[test]
fn nonsense_creation_arguments_are_refused() {
    let manager = standard_builder()
        .max_items_per_container(1000)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    for result in [
        client.barrier("b", 0).map(|_| ()),
        client.semaphore("s", u64::MAX).map(|_| ()),
    ] {
        match result {
            Err(Error::Remote(e)) => assert_eq!(e.kind(), RemoteErrorKind::BadArguments, "{e}"),
            other => panic!("{other:?}"),
        }
    }
    limit_kind(client.queue::<u8>("q", usize::MAX));
    limit_kind(client.queue::<u8>("q", 1001));
    client.queue::<u8>("q", 1000).unwrap();
}

/// Many created objects per connection are bounded too.
#[test]
fn created_objects_per_connection_are_bounded() {
    let manager = standard_builder()
        .register_type("Evaluator", || EvaluatorServer::new(Eval))
        .max_objects_per_connection(5)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let mut kept = Vec::new();
    for _ in 0..5 {
        kept.push(EvaluatorClient::create(&client, ()).unwrap());
    }
    limit_kind(EvaluatorClient::create(&client, ()));
    kept.pop();
    EvaluatorClient::create(&client, ()).unwrap();
}

/// `describe` once failed past ~650k objects (its reply passed the frame limit). It now
/// lists a page and says how many there are; the rest come page by page.
#[test]
fn describe_stays_usable_with_many_objects() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    for i in 0..2500 {
        client.counter(&format!("c{i}")).unwrap();
    }
    let first = client.describe().unwrap();
    assert_eq!(first.objects_total, 2500);
    assert_eq!(first.objects.len(), 1000);
    let mut seen = first.objects.len();
    let mut last = first.objects.last().unwrap().id;
    loop {
        let page = client.describe_objects(last, 1000).unwrap();
        if page.objects.is_empty() {
            break;
        }
        assert!(page.objects.windows(2).all(|w| w[0].id < w[1].id));
        seen += page.objects.len();
        last = page.objects.last().unwrap().id;
    }
    assert_eq!(seen, 2500);
    assert_eq!(manager.stats().shared_objects, 2500);
}

// ---- Keepalive ------------------------------------------------------------------------------

fn short_keepalive() -> monogusa::ManagerBuilder {
    standard_builder().keepalive(Duration::from_millis(100), Duration::from_millis(800))
}

fn short_keepalive_client(address: &monogusa::Address) -> Client {
    Client::builder(address, KEY)
        .keepalive(Duration::from_millis(100), Duration::from_millis(800))
        .reconnect(0, Duration::from_millis(10))
        .connect()
        .unwrap()
}

/// With no call timeout, a call on a half-open path (a relay that stops forwarding but keeps
/// acknowledging) once hung forever. Both sides now notice in about the keepalive timeout: the
/// client's call fails with ConnectionLost, the manager cuts the connection, and the item the
/// dead call waited for goes to a living consumer.
#[test]
fn a_half_open_connection_is_noticed_on_both_sides() {
    let manager = short_keepalive().build().unwrap().start().unwrap();
    let relay = Relay::start(manager.address(), |_| Fault::Pass);
    let through_relay = short_keepalive_client(&relay.address);
    let queue = through_relay.queue::<u64>("jobs", 0).unwrap();
    let calls_before = manager.stats().calls;
    let waiter = std::thread::spawn(move || queue.get());
    wait_until(Duration::from_secs(10), "the get waits", || {
        manager.stats().calls > calls_before
    });
    relay.freeze_all();
    let started = Instant::now();
    match waiter.join().unwrap() {
        Err(Error::ConnectionLost(e)) => {
            assert!(e.to_string().contains("no keepalive"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    wait_until(Duration::from_secs(20), "the manager cut it", || {
        manager.stats().keepalive_cuts == 1
    });
    let direct = Client::connect(manager.address(), KEY).unwrap();
    let jobs = direct.queue::<u64>("jobs", 0).unwrap();
    jobs.put(&7).unwrap();
    assert_eq!(jobs.get_timeout(Duration::from_secs(10)).unwrap(), Some(7));
}

/// Calls that rightly wait long go on waiting, many keepalive timeouts long, while the peer
/// lives: a blocked get, a slow function, a slow pipelined call.
#[test]
fn long_calls_outlive_the_keepalive_timeout() {
    let manager = short_keepalive().build().unwrap().start().unwrap();
    let client = short_keepalive_client(manager.address());
    let queue = client.queue::<u64>("later", 0).unwrap();
    let putter = {
        let client = Client::connect(manager.address(), KEY).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2500));
            client.queue::<u64>("later", 0).unwrap().put(&42).unwrap();
        })
    };
    assert_eq!(queue.get().unwrap(), 42);
    putter.join().unwrap();
    assert_eq!(client.call::<u64>("sleep_ms", (2000u64,)).unwrap(), 2000);
    let pending = client.send::<u64>("sleep_ms", (2000u64,)).unwrap();
    assert_eq!(pending.wait().unwrap(), 2000);
    assert_eq!(manager.stats().keepalive_cuts, 0);
}

/// A manager that goes silent mid-call (frozen path) fails a pipelined wait too.
#[test]
fn a_silent_manager_fails_pipelined_waits() {
    let manager = short_keepalive().build().unwrap().start().unwrap();
    let relay = Relay::start(manager.address(), |_| Fault::Pass);
    let client = short_keepalive_client(&relay.address);
    let pending = client.send::<u64>("sleep_ms", (3_000u64,)).unwrap();
    wait_until(Duration::from_secs(10), "the call runs", || {
        manager.stats().calls >= 1
    });
    relay.freeze_all();
    match pending.wait() {
        Err(Error::ConnectionLost(e)) => assert!(e.to_string().contains("no keepalive"), "{e}"),
        other => panic!("{other:?}"),
    }
}

// ---- Descriptors, threads, memory and logs of a manager process -------------------------------

/// Two descriptors per connection once fit only 508 connections under the usual limit of
/// 1024. Now: one per connection, the soft limit raised to the hard one, and every thread
/// and descriptor back to baseline after thousands of connections come and go.
#[test]
fn one_descriptor_per_connection_and_back_to_baseline() {
    let manager = ChildManager::start(&[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", manager.child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(
        open_files[0], open_files[1],
        "soft limit raised to hard: {limits}"
    );
    // Wait for the probe connections of `start` to close.
    let watcher = Client::connect(&manager.address, KEY).unwrap();
    wait_until(Duration::from_secs(10), "the probes closed", || {
        watcher.manager_stats().unwrap().connections_open == 1
    });
    // Threads not counting those idle, waiting to be reused (they exit on their own).
    let busy_threads = || manager.status("Threads") - watcher.manager_stats().unwrap().idle_threads;
    let (fds, threads) = (manager.open_fds(), busy_threads());
    let clients: Vec<TcpStream> = (0..200)
        .map(|_| raw_authenticated(&manager.address, KEY.as_bytes()))
        .collect();
    wait_until(Duration::from_secs(10), "all are connected", || {
        watcher.manager_stats().unwrap().connections_open == 201
    });
    assert_eq!(manager.open_fds(), fds + 200, "one descriptor each");
    drop(clients);
    for _ in 0..2000 {
        let client = Client::connect(&manager.address, KEY).unwrap();
        client.counter("cycles").unwrap().add(1).unwrap();
    }
    wait_until(Duration::from_secs(20), "back to baseline", || {
        watcher.manager_stats().unwrap().connections_open == 1
            && manager.open_fds() == fds
            && busy_threads() == threads
    });
    assert!(
        watcher.manager_stats().unwrap().idle_threads <= 64,
        "at most 64 threads wait idle"
    );
    assert_eq!(watcher.counter("cycles").unwrap().get().unwrap(), 2000);
}

/// A manager of the `monogusa` binary with a hard limit of 64 descriptors (so raising its
/// soft limit gains nothing), serving on a free port.
fn manager_with_64_descriptors() -> (std::process::Child, monogusa::Address) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let bind = format!("127.0.0.1:{port}");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec '{}' serve --bind {bind}",
            common::monogusa_binary().display()
        ))
        .env("MONOGUSA_AUTHKEY", KEY)
        .env("MONOGUSA_LOG", "error")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let address: monogusa::Address = bind.parse().unwrap();
    wait_until(Duration::from_secs(30), "the child manager serves", || {
        Client::connect(&address, KEY).is_ok()
    });
    (child, address)
}

/// Clients connected until the manager has no descriptor left for one more, and the error
/// that one got.
fn connect_until_refused(address: &monogusa::Address) -> (Vec<Client>, Error) {
    let mut held = Vec::new();
    loop {
        match Client::builder(address, KEY)
            .handshake_timeout(Duration::from_secs(5))
            .connect()
        {
            Ok(client) => {
                held.push(client);
                assert!(held.len() < 100, "the descriptor limit never bit");
            }
            Err(e) => return (held, e),
        }
    }
}

/// Out of descriptors, the manager once left connection 509 hanging and logged "Too many
/// open files" a hundred times a second. Now it answers BUSY and the client is refused.
#[test]
fn out_of_descriptors_answers_busy() {
    let (mut child, address) = manager_with_64_descriptors();
    let (mut held, refused) = connect_until_refused(&address);
    assert!(
        matches!(refused, Error::Refused(ref m) if m.contains("file descriptors")),
        "{refused:?}"
    );
    // Those connected are still served, and room comes back when they go.
    assert_eq!(held[0].counter("c").unwrap().add(1).unwrap(), 1);
    held.truncate(1);
    wait_until(Duration::from_secs(10), "a new client gets in", || {
        Client::connect(&address, KEY).is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// With no descriptor free and no connection waiting (the last one was answered BUSY with
/// the spare descriptor, which was then taken back), SIGTERM still stops the manager: the
/// connection that wakes its acceptor needs a descriptor, and one is kept for it (it once
/// stayed up 27 minutes).
#[test]
fn sigterm_stops_a_manager_with_no_descriptor_free() {
    let (mut child, address) = manager_with_64_descriptors();
    let (held, refused) = connect_until_refused(&address);
    assert!(matches!(refused, Error::Refused(_)), "{refused:?}");
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let stopped = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(stopped, "the manager did not stop on SIGTERM within 20 s");
    drop(held);
}

/// Idle connections that once read a large value kept its buffer (20 of them held 1 GB).
/// Reply buffers are now given back.
#[test]
fn buffers_of_large_replies_are_given_back() {
    let manager = ChildManager::start(&["--max-item-bytes", "50000000"]);
    let writer = Client::connect(&manager.address, KEY).unwrap();
    let blob = serde_bytes::ByteBuf::from(vec![1u8; 40 << 20]);
    writer.value("blob").unwrap().swap(&blob).unwrap();
    drop(blob);
    let before = manager.rss_kib();
    let readers: Vec<Client> = (0..6)
        .map(|_| {
            let client = Client::connect(&manager.address, KEY).unwrap();
            let value: Option<serde_bytes::ByteBuf> = client.value("blob").unwrap().get().unwrap();
            assert_eq!(value.unwrap().len(), 40 << 20);
            client
        })
        .collect();
    let after = manager.rss_kib();
    // Six idle readers holding a 40 MiB buffer each would be 240 MiB.
    assert!(
        after < before + 100 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    drop(readers);
}

/// A closed stderr once made every log line panic: no client was served, SIGTERM was
/// ignored and slots leaked. Log writes now never panic.
#[test]
fn a_closed_stderr_does_not_take_the_manager_down() {
    let mut manager = ChildManager::start_with(&[], "debug", std::process::Stdio::piped());
    drop(manager.child.stderr.take()); // the reading end closes: every write fails (EPIPE)
    for _ in 0..30 {
        let mut garbage = TcpStream::connect(socket_addr(&manager.address)).unwrap();
        let _ = garbage.write_all(b"GET / HTTP/1.1\r\n\r\n");
    }
    for _ in 0..20 {
        assert_still_serves(&manager.address);
    }
    let watcher = Client::connect(&manager.address, KEY).unwrap();
    wait_until(Duration::from_secs(10), "no slot leaked", || {
        let stats = watcher.manager_stats().unwrap();
        stats.connections_open == 1 && stats.handshakes_in_progress == 0
    });
    let status = std::process::Command::new("kill")
        .args(["-TERM", &manager.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(watcher);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = manager.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGTERM did not stop the manager"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One peer without the key once wrote 6.8 MB/s of log. Failures are now rate-limited and
/// summarized; a short key is warned about once.
#[test]
fn failure_logs_are_rate_limited_and_weak_keys_warned_once() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr");
    let log = std::fs::File::create(&log_path).unwrap();
    let manager = ChildManager::start_with(&[], "warn", std::process::Stdio::from(log));
    for _ in 0..300 {
        let mut garbage = TcpStream::connect(socket_addr(&manager.address)).unwrap();
        let _ = garbage.write_all(b"garbage garbage garbage garbage");
        let mut sink = Vec::new();
        garbage
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = garbage.read_to_end(&mut sink);
    }
    let watcher = Client::connect(&manager.address, KEY).unwrap();
    wait_until(Duration::from_secs(10), "all failures counted", || {
        watcher.manager_stats().unwrap().handshake_failures >= 300
    });
    let text = std::fs::read_to_string(&log_path).unwrap();
    let failures = text
        .lines()
        .filter(|l| l.contains("handshake failed"))
        .count();
    assert!(failures <= 20, "{failures} lines for 300 failures:\n{text}");
    assert_eq!(
        text.matches("bytes long").count(),
        1,
        "one warning about the short key:\n{text}"
    );
}

// ---- What the audit found holding -----------------------------------------------------------

/// Thousands of idle connections stay cheap (the audit measured 22 KiB each).
#[test]
fn idle_connections_stay_cheap() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let manager = ChildManager::start(&[]);
    let watcher = Client::connect(&manager.address, KEY).unwrap();
    wait_until(Duration::from_secs(10), "the probes closed", || {
        watcher.manager_stats().unwrap().connections_open == 1
    });
    let before = manager.rss_kib();
    let idle: Vec<TcpStream> = (0..800)
        .map(|_| raw_authenticated(&manager.address, KEY.as_bytes()))
        .collect();
    wait_until(Duration::from_secs(20), "all are connected", || {
        watcher.manager_stats().unwrap().connections_open == 801
    });
    let per_connection = (manager.rss_kib() - before) / 800;
    assert!(
        per_connection < 64,
        "{per_connection} KiB per idle connection"
    );
    assert_still_serves(&manager.address);
    drop(idle);
}

/// Mutated requests of every kind, each on a real connection: every answer is a well-formed
/// reply or notice with a known error kind, and the manager serves on.
#[test]
fn thousands_of_mutated_requests_get_typed_answers() {
    let manager = start_standard();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let templates = [
        call_frame(1, "add", &{
            let mut a = string_arg("k");
            a.extend(5i64.to_le_bytes());
            a
        }),
        call_frame(1, "echo", &string_arg("hello")),
        open_shared_frame(1, "monogusa.Queue", "q", "u64", &0u64.to_le_bytes()),
        open_shared_frame(1, "monogusa.Dict", "d", "u8, u8", &[]),
        method_frame(1, 1, "get", &[0]),
        request_frame(1, 9, &[], &[]),
        request_frame(1, 7, &[], &16u64.to_le_bytes()),
    ];
    let mut raw = raw_authenticated(manager.address(), KEY.as_bytes());
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reconnects = 0;
    for i in 0..3000 {
        let mut frame = templates[i % templates.len()].clone();
        // Mutate the payload (not the length prefix, which has its own tests) a few times.
        for _ in 0..1 + next() % 4 {
            let at = 4 + (next() as usize) % (frame.len() - 4);
            frame[at] = next() as u8;
        }
        if raw.write_all(&frame).is_err() {
            raw = raw_authenticated(manager.address(), KEY.as_bytes());
            reconnects += 1;
            continue;
        }
        match read_response(&mut raw) {
            Ok(reply) => {
                if reply.is_error {
                    let (code, _) = reply.error();
                    assert!((1..=16).contains(&code), "unknown error kind {code}");
                }
                if reply.id == 0 {
                    // A notice: the manager closes this connection.
                    raw = raw_authenticated(manager.address(), KEY.as_bytes());
                    reconnects += 1;
                }
            }
            Err(_) => {
                raw = raw_authenticated(manager.address(), KEY.as_bytes());
                reconnects += 1;
            }
        }
    }
    assert!(reconnects < 3000);
    assert_still_serves(manager.address());
}

/// The binary warns about a key file others can read and a bind to every interface.
#[test]
fn the_binary_warns_about_a_readable_key_file_and_a_wildcard_bind() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "a-key-of-twenty-bytes").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(common::monogusa_binary())
        .args([
            "serve",
            "--bind",
            &format!("0.0.0.0:{port}"),
            "--authkey-file",
        ])
        .arg(&key_file)
        .env("MONOGUSA_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "the binary serves", || {
        Client::connect(address.as_str(), "a-key-of-twenty-bytes").is_ok()
    });
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("can be read by other users"), "{text}");
    assert!(text.contains("every interface"), "{text}");
    assert!(
        !text.contains("bytes long"),
        "a 21-byte key is not weak: {text}"
    );
}

/// Waiters in an event and in a queue's join whose callers hang up leave at once: their
/// threads and slots do not wait for an event that may never come.
#[test]
fn hung_up_event_and_join_waiters_free_their_slots() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.queue::<u64>("pending", 0).unwrap();
    jobs.put(&1).unwrap(); // never marked done: join would wait forever
    let calls_before = manager.stats().calls;
    let mut waiters = Vec::new();
    for (kind, name, tag, args, method) in [
        ("monogusa.Event", "never", "", vec![], "wait"),
        (
            "monogusa.Queue",
            "pending",
            "u64",
            0u64.to_le_bytes().to_vec(),
            "join",
        ),
    ] {
        let mut raw = raw_authenticated(manager.address(), KEY.as_bytes());
        raw.write_all(&open_shared_frame(1, kind, name, tag, &args))
            .unwrap();
        let object = expect_u64(&mut raw, 1);
        raw.write_all(&method_frame(2, object, method, &[0]))
            .unwrap();
        waiters.push(raw);
    }
    wait_until(Duration::from_secs(10), "both wait", || {
        manager.stats().calls >= calls_before + 2
    });
    assert_eq!(manager.stats().connections_open, 3);
    drop(waiters);
    wait_until(Duration::from_secs(10), "their slots are free", || {
        manager.stats().connections_open == 1
    });
}

/// A handshake dripped a byte at a time, each within the per-read timeout, is cut at the
/// handshake's total deadline (without displacement: the handshake slots are not full).
#[test]
fn a_dripped_handshake_is_cut_at_its_total_deadline() {
    let manager = standard_builder()
        .handshake_timeout(Duration::from_millis(800))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut drip = TcpStream::connect(socket_addr(manager.address())).unwrap();
    drip.set_nodelay(true).unwrap();
    let mut reader = drip.try_clone().unwrap();
    let closed = std::thread::spawn(move || {
        reader
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        closed_by_peer(&mut reader)
    });
    // An honest hello, 62 bytes, one every 200 ms: 12 s in all if never cut.
    let mut hello = vec![BANNER.len() as u8];
    hello.extend_from_slice(BANNER);
    hello.extend_from_slice(&[7; 32]);
    let mut sent = 0;
    for byte in &hello {
        if closed.is_finished() || drip.write_all(&[*byte]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(closed.join().unwrap(), "the dripping handshake was not cut");
    assert!(
        sent < hello.len(),
        "all {sent} bytes went through before the cut"
    );
    assert_eq!(manager.stats().handshakes_displaced, 0);
}

/// A client already connected that needs one more connection while the manager is stopped
/// (SIGSTOP: its socket still accepts) gives up within the keepalive's timeout: the
/// handshake has one total deadline, and retries stop at the timeout. (It waited 39 s: a
/// socket timeout per handshake read, and retries on top.)
#[test]
fn a_new_pooled_connection_to_a_stopped_manager_fails_within_the_keepalive_timeout() {
    let mut manager = ChildManager::start(&[]);
    let client = Client::builder(&manager.address, KEY)
        .keepalive(Duration::from_millis(500), Duration::from_secs(2))
        .handshake_timeout(Duration::from_secs(2))
        .connect()
        .unwrap();
    // One connection, busy with a long wait, so the next call must open another.
    let busy = client.clone();
    let waiting = std::thread::spawn(move || {
        let queue = busy.queue::<u64>("never", 0).unwrap();
        let _ = queue.get_timeout(Duration::from_secs(60));
    });
    std::thread::sleep(Duration::from_millis(300));
    let pid = manager.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let result = client.call::<u64>("no-such-function", ());
    let took = started.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert!(result.is_err(), "{result:?}");
    assert!(took < Duration::from_secs(8), "gave up after {took:?}");
    let _ = manager.child.kill();
    let _ = waiting.join();
}

/// Handshake slots are taken back from the source holding most: a flood of silent
/// connections from 127.0.0.2 displaces its own, never the honest, slower client's handshake
/// from 127.0.0.1 (the oldest-first rule displaced 11 of 20 honest clients).
#[test]
fn a_handshake_flood_from_one_host_displaces_its_own() {
    let manager = monogusa::Manager::builder()
        .authkey(KEY)
        .bind("127.0.0.1:0")
        .max_handshakes(4)
        .handshake_timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let target = socket_addr(manager.address());
    let from = |ip: [u8; 4]| connect_from(ip, target);
    // The honest client: connected first, slow to prove its key.
    let honest = from([127, 0, 0, 1]);
    wait_until(
        Duration::from_secs(10),
        "the honest handshake to begin",
        || manager.stats().handshakes_in_progress == 1,
    );
    let flood: Vec<TcpStream> = (0..20).map(|_| from([127, 0, 0, 2])).collect();
    wait_until(Duration::from_secs(10), "the flood to be displaced", || {
        manager.stats().handshakes_displaced >= 17
    });
    // The honest connection is still open: a read finds nothing yet, not the end.
    honest
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = (&honest).read(&mut byte);
    assert!(!matches!(read, Ok(0)), "the honest handshake was displaced");
    drop(flood);
}
