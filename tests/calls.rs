//! Calls through the public API over real sockets: typed results and errors, timeouts,
//! concurrency from many threads.
#![allow(missing_docs)] // tests, not API

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use monogusa::{Client, Error, Manager, RemoteErrorKind};

#[test]
fn typed_results_of_many_shapes() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("add", ("k", 40i64)).unwrap(), 40);
    assert_eq!(client.call::<i64>("add", ("k", 2i64)).unwrap(), 42);
    assert_eq!(
        client.call::<String>("echo", ("héllo ✓",)).unwrap(),
        "héllo ✓"
    );
    assert_eq!(client.call::<i64>("divide", (10i64, 3i64)).unwrap(), 3);
    assert_eq!(
        client.call::<Point>("point", (1, -2)).unwrap(),
        Point { x: 1, y: -2 }
    );
}

#[test]
fn application_errors_arrive_with_their_message() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let err = client.call::<i64>("divide", (1i64, 0i64)).unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("{err}")
    };
    assert_eq!(remote.kind(), RemoteErrorKind::Handler);
    assert_eq!(remote.message(), "cannot divide 1 by zero");
    assert_eq!(
        err.to_string(),
        "the function returned an error: cannot divide 1 by zero"
    );
}

#[test]
fn functions_of_every_arity() {
    let manager = Manager::builder()
        .authkey(KEY)
        .register("a0", || 0u32)
        .register("a1", |a: u32| a)
        .register("a2", |a: u32, b: u32| a + b)
        .register("a3", |a: u32, b: u32, c: u32| a + b + c)
        .register("a4", |a: u32, b: u32, c: u32, d: u32| a + b + c + d)
        .register("a5", |a: u32, b: u32, c: u32, d: u32, e: u32| {
            a + b + c + d + e
        })
        .register("a6", |a: u32, b: u32, c: u32, d: u32, e: u32, f: u32| {
            a + b + c + d + e + f
        })
        .register(
            "a7",
            |a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32| a + b + c + d + e + f + g,
        )
        .register(
            "a8",
            |a: String,
             b: bool,
             c: Option<u8>,
             d: Vec<i16>,
             e: (u8, char),
             f: HashMap<String, u32>,
             g: f64,
             h: ()| { format!("{a} {b} {c:?} {d:?} {e:?} {} {g} {h:?}", f["x"]) },
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<u32>("a0", ()).unwrap(), 0);
    assert_eq!(client.call::<u32>("a1", (1u32,)).unwrap(), 1);
    assert_eq!(client.call::<u32>("a2", (1u32, 2u32)).unwrap(), 3);
    assert_eq!(client.call::<u32>("a3", (1u32, 2u32, 3u32)).unwrap(), 6);
    assert_eq!(
        client.call::<u32>("a4", (1u32, 2u32, 3u32, 4u32)).unwrap(),
        10
    );
    assert_eq!(
        client
            .call::<u32>("a5", (1u32, 2u32, 3u32, 4u32, 5u32))
            .unwrap(),
        15
    );
    assert_eq!(
        client
            .call::<u32>("a6", (1u32, 2u32, 3u32, 4u32, 5u32, 6u32))
            .unwrap(),
        21
    );
    assert_eq!(
        client
            .call::<u32>("a7", (1u32, 2u32, 3u32, 4u32, 5u32, 6u32, 7u32))
            .unwrap(),
        28
    );
    let map = HashMap::from([("x".to_string(), 9u32)]);
    let text: String = client
        .call(
            "a8",
            (
                "s",
                true,
                Some(3u8),
                vec![-1i16, 2],
                (7u8, 'z'),
                map,
                0.5f64,
                (),
            ),
        )
        .unwrap();
    assert_eq!(text, "s true Some(3) [-1, 2] (7, 'z') 9 0.5 ()");
    // One argument too few is a typed error, not a hang or a crash.
    let err = client.call::<u32>("a2", (1u32,)).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::BadArguments),
        "{err}"
    );
}

#[test]
fn duplicate_registration_is_a_configuration_error() {
    let err = Manager::builder()
        .authkey(KEY)
        .register("f", || 1u8)
        .register("f", || 2u8)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains('f')),
        "{err}"
    );
}

#[test]
fn invalid_addresses_are_reported() {
    let err = Manager::builder()
        .authkey(KEY)
        .bind("nowhere")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
    let err = Client::connect("127.0.0.1:notaport", KEY).unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
}

#[test]
fn nothing_listening_is_an_io_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Client::connect(free, KEY).unwrap_err();
    assert!(
        matches!(err, Error::Io(ref e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{err}"
    );
    // The error says where.
    assert!(err.to_string().contains(&free.to_string()), "{err}");
}

/// A Unix socket in a directory that does not exist: the error names the path.
#[test]
#[cfg_attr(
    windows,
    ignore = "Unix-domain sockets: Windows has named pipes instead (tests/pipes.rs)"
)]
fn io_errors_name_the_path() {
    let missing = "unix:/nonexistent-dir-for-monogusa/m.sock";
    let err = Client::connect(missing, KEY).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent-dir-for-monogusa/m.sock"),
        "{err}"
    );
    let err = monogusa::Manager::builder()
        .authkey(KEY)
        .bind(missing)
        .build()
        .unwrap()
        .start()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("listening on unix:/nonexistent-dir-for-monogusa"),
        "{err}"
    );
}

/// Arguments of the wrong shape are described in words: what was called, the types it
/// expects, and what was wrong with the bytes.
#[test]
fn bad_arguments_are_described_in_words() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    match client.call::<i64>("add", ("k",)) {
        Err(Error::Remote(e)) => {
            let text = e.message();
            assert!(text.contains("add") && text.contains("i64"), "{text}");
            assert!(text.contains("ends too early"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_call_times_out_and_the_client_recovers() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let err = client
        .call_with_timeout::<u64>("sleep_ms", (2000u64,), Duration::from_millis(50))
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(monogusa::Phase::Call)),
        "{err}"
    );
    // The timed-out connection was discarded; the next call uses a fresh one.
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    assert_eq!(
        client
            .call_with_timeout::<u64>("sleep_ms", (1u64,), Duration::from_secs(30))
            .unwrap(),
        1
    );
}

#[test]
fn default_call_timeout_from_the_builder() {
    let manager = start_standard();
    let client = Client::builder(manager.address(), KEY)
        .call_timeout(Duration::from_millis(50))
        .connect()
        .unwrap();
    let err = client.call::<u64>("sleep_ms", (2000u64,)).unwrap_err();
    assert!(
        matches!(err, Error::Timeout(monogusa::Phase::Call)),
        "{err}"
    );
    assert_eq!(client.call::<u64>("sleep_ms", (0u64,)).unwrap(), 0);
}

#[test]
fn sixty_four_threads_times_a_thousand_increments_is_exact() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || {
                for _ in 0..1000 {
                    client.call::<i64>("inc", ("shared",)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(client.call::<i64>("get", ("shared",)).unwrap(), 64_000);
    assert_eq!(manager.stats().calls, 64_001);
}

#[test]
fn a_blocking_call_holds_up_only_its_own_thread() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let slow = {
        let client = client.clone();
        thread::spawn(move || client.call::<u64>("sleep_ms", (500u64,)).unwrap())
    };
    wait_until(
        Duration::from_secs(5),
        "the slow call reached the manager",
        || manager.stats().calls >= 1,
    );
    // While the slow call runs, other calls from the same Client go through.
    for i in 1..=50 {
        assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), i);
    }
    assert!(
        !slow.is_finished(),
        "the fast calls did not overlap the slow one"
    );
    assert_eq!(slow.join().unwrap(), 500);
}

#[test]
fn large_values_round_trip() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let big = "z".repeat(5 << 20);
    assert_eq!(client.call::<String>("echo", (&big,)).unwrap(), big);
    assert_eq!(
        client
            .call::<usize>("echo_bytes", (vec![1u8; 3 << 20],))
            .unwrap(),
        3 << 20
    );
    assert_eq!(
        client.call::<String>("echo", ("small again",)).unwrap(),
        "small again"
    );
}

#[test]
fn ipv6_loopback_when_available() {
    let Ok(manager) = standard_builder().bind("[::1]:0").build().unwrap().start() else {
        return; // no IPv6 on this machine
    };
    assert!(manager.address().to_string().starts_with("[::1]:"));
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

/// A connect that cannot complete (a listener whose queue is full drops the SYN) times out
/// in its own phase, and no request was sent.
#[test]
fn a_connect_timeout_names_its_phase() {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let address = socket.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (never accepted) until a connect no longer completes at once.
    let mut held = Vec::new();
    let full = (0..64).any(|_| {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => {
                held.push(stream);
                false
            }
            Err(_) => true,
        }
    });
    if !full {
        println!("skipped: this kernel completes connects to a full listener");
        return;
    }
    let err = Client::builder(address.to_string().as_str(), KEY)
        .connect_timeout(Duration::from_millis(200))
        .reconnect(0, Duration::ZERO)
        .connect()
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(monogusa::Phase::Connect)),
        "{err}"
    );
    assert!(err.to_string().contains("connecting timed out"), "{err}");
}

#[test]
fn notifications_run_one_way_and_their_failures_reach_nobody() {
    let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let recorded = Arc::clone(&events);
    let manager = common::standard_builder()
        .register("log_event", move |event: String| {
            recorded.lock().unwrap().push(event);
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    for n in 0..100 {
        client.notify("log_event", (format!("event {n}"),)).unwrap();
    }
    // Failures are the manager's to log: the sender hears nothing and goes on.
    client.notify("boom", ("in a notification",)).unwrap();
    client.notify("no_such_function", ()).unwrap();
    client.notify("log_event", (1u8, 2u8)).unwrap(); // wrong arguments
    common::wait_until(Duration::from_secs(30), "every event recorded", || {
        events.lock().unwrap().len() == 100
    });
    let mut got = events.lock().unwrap().clone();
    got.sort();
    let mut want: Vec<String> = (0..100).map(|n| format!("event {n}")).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        client.call::<String>("echo", ("still fine",)).unwrap(),
        "still fine"
    );
}
