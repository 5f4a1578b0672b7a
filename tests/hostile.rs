//! Bad input of every kind gets a clear error, and the manager keeps serving everyone else
//! with its state intact.
#![allow(missing_docs)] // tests, not API

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use monogusa::{Client, Error, Manager, RemoteErrorKind};

/// A fake manager on a free port: accepts one connection and lets `script` speak for it.
fn fake_manager(
    script: impl FnOnce(TcpStream) + Send + 'static,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || script(listener.accept().unwrap().0));
    (address, server)
}

/// Checks the manager still serves a fresh, honest client and its state is what we expect.
fn assert_still_serving(address: &monogusa::Address, key: &str, expected: i64) {
    let client = Client::connect(address, KEY).unwrap();
    assert_eq!(client.call::<i64>("get", (key,)).unwrap(), expected);
}

#[test]
fn wrong_key_is_rejected_and_others_are_served() {
    let manager = start_standard();
    let honest = Client::connect(manager.address(), KEY).unwrap();
    honest.call::<i64>("inc", ("k",)).unwrap();

    let err = Client::connect(manager.address(), "not the key").unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert!(err.to_string().contains("rejected"), "{err}");
    wait_until(Duration::from_secs(5), "auth failure counted", || {
        manager.stats().auth_failures == 1
    });

    assert_eq!(honest.call::<i64>("inc", ("k",)).unwrap(), 2);
    assert_still_serving(manager.address(), "k", 2);
}

#[test]
fn empty_authkey_is_refused_at_configuration() {
    let err = Manager::builder().authkey("").build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    // No key at all is not an empty key: the manager makes a random one (see
    // `a_keyless_manager_starts_children_with_command_and_from_env`).
    let manager = start_standard();
    let err = Client::connect(manager.address(), "").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn silent_peer_is_cut_after_the_deadline_while_others_are_served() {
    let manager = standard_builder()
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut silent = TcpStream::connect(socket_addr(manager.address())).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // Meanwhile, an honest client is served at once.
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);

    assert!(
        closed_by_peer(&mut silent),
        "the silent peer was not cut off"
    );
    assert_eq!(manager.stats().handshake_failures, 1);
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 2);
}

#[test]
fn client_handshake_deadline_against_a_silent_server() {
    // Something that accepts but never speaks: the client gives up after its deadline.
    let (address, server) = fake_manager(|mut s| {
        let _ = s.read_to_end(&mut Vec::new()); // silent until the client gives up
    });
    let err = Client::builder(address, KEY)
        .handshake_timeout(Duration::from_millis(200))
        .connect()
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(monogusa::Phase::Handshake)),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn garbage_instead_of_a_handshake() {
    let manager = start_standard();
    let mut stream = TcpStream::connect(socket_addr(manager.address())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The manager answers with its banner so a human can see what it is, then closes.
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert_eq!(reply.first(), Some(&1u8), "{reply:?}");
    assert!(reply.ends_with(BANNER), "{reply:?}");
    assert_eq!(manager.stats().handshake_failures, 1);
    assert_still_serving(manager.address(), "k", 0);
}

#[test]
fn newer_protocol_version_gets_a_clear_mismatch() {
    let manager = start_standard();
    let mut stream = TcpStream::connect(socket_addr(manager.address())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let banner = b"monogusa/2 bincode2-fixint-le";
    let mut hello = vec![banner.len() as u8];
    hello.extend_from_slice(banner);
    hello.extend_from_slice(&[0; 32]);
    stream.write_all(&hello).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert_eq!(reply[0], 1);
    assert_eq!(&reply[2..], BANNER);
}

#[test]
fn client_refuses_a_peer_that_is_not_a_manager() {
    let (address, server) = fake_manager(|mut s| {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let mut sink = [0u8; 256];
        let _ = s.read(&mut sink);
    });
    let err = Client::connect(address, KEY).unwrap_err();
    assert!(
        matches!(err, Error::Incompatible(ref m) if m.contains("not a monogusa manager")),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn client_reports_a_manager_of_another_version() {
    let (address, server) = fake_manager(|mut s| {
        let mut hello = [0u8; 1 + 29 + 32];
        s.read_exact(&mut hello).unwrap();
        let theirs = b"monogusa/2 bincode2-fixint-le";
        let mut reply = vec![1u8, theirs.len() as u8];
        reply.extend_from_slice(theirs);
        s.write_all(&reply).unwrap();
    });
    let err = Client::connect(address, KEY).unwrap_err();
    assert!(
        matches!(err, Error::Incompatible(ref m) if m.contains("monogusa/2")),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn four_gib_length_prefix_is_refused_before_allocating() {
    let manager = start_standard();
    Client::connect(manager.address(), KEY)
        .unwrap()
        .call::<i64>("inc", ("k",))
        .unwrap();

    let mut stream = raw_authenticated(manager.address(), KEY.as_bytes());
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    let notice = read_response(&mut stream).unwrap();
    assert_eq!(notice.id, 0, "a connection notice");
    let (code, message) = notice.error();
    assert_eq!(code, 7, "FrameTooLarge: {message}");
    assert!(message.contains("4294967295"), "{message}");
    assert!(closed_by_peer(&mut stream));
    assert_eq!(manager.stats().protocol_errors, 1);
    assert_still_serving(manager.address(), "k", 1);
}

#[test]
fn truncated_frame_then_close() {
    let manager = start_standard();
    let mut stream = raw_authenticated(manager.address(), KEY.as_bytes());
    let frame = call_frame(1, "inc", &string_arg("k"));
    stream.write_all(&frame[..frame.len() - 2]).unwrap();
    drop(stream);
    wait_until(Duration::from_secs(5), "truncation noticed", || {
        manager.stats().protocol_errors == 1
    });
    // The half-received call never ran.
    assert_still_serving(manager.address(), "k", 0);
}

#[test]
fn a_client_stalling_mid_frame_is_cut_but_idle_ones_are_not() {
    let manager = standard_builder()
        .stall_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let idle = Client::connect(manager.address(), KEY).unwrap();
    let mut stalling = raw_authenticated(manager.address(), KEY.as_bytes());
    let frame = call_frame(1, "inc", &string_arg("k"));
    stalling.write_all(&frame[..6]).unwrap(); // a header and a bit, then nothing
    assert!(
        closed_by_peer(&mut stalling),
        "the stalled connection was kept"
    );
    wait_until(Duration::from_secs(5), "the stall counted", || {
        manager.stats().protocol_errors == 1
    });
    // The idle client was quiet for longer than the stall timeout, yet is still connected.
    assert_eq!(idle.call::<i64>("inc", ("k",)).unwrap(), 1);
    assert_eq!(
        manager.stats().connections_accepted,
        2,
        "no reconnection was needed"
    );
}

#[test]
fn a_client_that_stops_reading_its_replies_is_cut() {
    let manager = standard_builder()
        .stall_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut greedy = raw_authenticated(manager.address(), KEY.as_bytes());
    // Ask for far more reply bytes than the socket buffers hold, and never read them.
    let mut args = string_arg("x");
    args.extend_from_slice(&(16u64 << 20).to_le_bytes());
    for id in 1..=4 {
        greedy.write_all(&call_frame(id, "repeat", &args)).unwrap();
    }
    wait_until(
        Duration::from_secs(20),
        "the greedy connection is closed",
        || manager.stats().connections_open == 0,
    );
    assert_still_serving(manager.address(), "k", 0);
    drop(greedy);
}

#[test]
fn trailing_garbage_after_a_valid_frame() {
    let manager = start_standard();
    let mut stream = raw_authenticated(manager.address(), KEY.as_bytes());
    let mut bytes = call_frame(1, "inc", &string_arg("k"));
    bytes.extend_from_slice(&[0, 0, 0, 3, 0xde, 0xad, 0xbe]);
    stream.write_all(&bytes).unwrap();

    // The valid call is answered first...
    let reply = read_response(&mut stream).unwrap();
    assert_eq!((reply.id, reply.is_error), (1, false));
    assert_eq!(reply.body, 1i64.to_le_bytes());
    // ...then the garbage frame earns a notice and the connection closes.
    let notice = read_response(&mut stream).unwrap();
    assert_eq!(notice.id, 0);
    assert_eq!(notice.error().0, 6, "MalformedRequest");
    assert!(closed_by_peer(&mut stream));
    assert_still_serving(manager.address(), "k", 1);
}

#[test]
fn trailing_bytes_inside_arguments_are_bad_arguments_and_the_connection_lives() {
    let manager = start_standard();
    let mut stream = raw_authenticated(manager.address(), KEY.as_bytes());
    let mut args = string_arg("k");
    args.push(0);
    stream.write_all(&call_frame(1, "inc", &args)).unwrap();
    let reply = read_response(&mut stream).unwrap();
    let (code, message) = reply.error();
    assert_eq!(code, 2, "BadArguments: {message}");
    assert!(message.contains("trailing"), "{message}");
    // Same connection, valid call: served.
    stream
        .write_all(&call_frame(2, "inc", &string_arg("k")))
        .unwrap();
    let reply = read_response(&mut stream).unwrap();
    assert_eq!((reply.id, reply.is_error), (2, false));
}

#[test]
fn lying_string_length_in_arguments_is_refused_not_allocated() {
    let manager = start_standard();
    let mut stream = raw_authenticated(manager.address(), KEY.as_bytes());
    let mut args = (1u64 << 60).to_le_bytes().to_vec();
    args.extend_from_slice(b"abc");
    stream.write_all(&call_frame(1, "echo", &args)).unwrap();
    let reply = read_response(&mut stream).unwrap();
    assert_eq!(reply.error().0, 2, "BadArguments");
    assert_still_serving(manager.address(), "k", 0);
}

#[test]
fn reserved_request_id_zero_is_a_protocol_violation() {
    let manager = start_standard();
    let mut stream = raw_authenticated(manager.address(), KEY.as_bytes());
    stream
        .write_all(&call_frame(0, "inc", &string_arg("k")))
        .unwrap();
    let notice = read_response(&mut stream).unwrap();
    assert_eq!((notice.id, notice.error().0), (0, 6));
    assert!(closed_by_peer(&mut stream));
    assert_still_serving(manager.address(), "k", 0);
}

#[test]
fn unknown_function_wrong_arguments_and_panics_are_typed_and_survivable() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    client.call::<i64>("inc", ("k",)).unwrap();

    let err = client.call::<i64>("no_such_function", ("k",)).unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("{err}")
    };
    assert_eq!(remote.kind(), RemoteErrorKind::UnknownFunction);
    assert!(remote.message().contains("no_such_function"), "{remote}");
    assert!(
        remote.message().contains("inc"),
        "lists what exists: {remote}"
    );

    let err = client.call::<i64>("inc", (42u64,)).unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("{err}")
    };
    assert_eq!(remote.kind(), RemoteErrorKind::BadArguments);
    assert!(remote.message().contains("String"), "{remote}");

    let err = client.call::<i64>("add", ("k",)).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::BadArguments),
        "{err}"
    );

    let err = client.call::<u8>("boom", ("on purpose",)).unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("{err}")
    };
    assert_eq!(remote.kind(), RemoteErrorKind::Panicked);
    assert!(remote.message().contains("boom: on purpose"), "{remote}");

    // Same client (and pooled connection), same state: everything still works.
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 2);
    assert_still_serving(manager.address(), "k", 2);
}

#[test]
fn oversize_request_is_refused_locally_and_nothing_is_sent() {
    let manager = start_standard();
    let client = Client::builder(manager.address(), KEY)
        .max_frame_len(1024)
        .connect()
        .unwrap();
    let big = "x".repeat(2000);
    let err = client.call::<String>("echo", (&big,)).unwrap_err();
    assert!(
        matches!(err, Error::FrameTooLarge { max: 1024, .. }),
        "{err}"
    );
    assert_eq!(manager.stats().calls, 0);
    assert_eq!(client.call::<String>("echo", ("small",)).unwrap(), "small");
}

#[test]
fn oversize_request_for_the_manager_gets_a_notice() {
    let manager = standard_builder()
        .max_frame_len(1024)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let err = client
        .call::<usize>("echo_bytes", (vec![0u8; 4096],))
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::FrameTooLarge),
        "{err}"
    );
    // The broken connection was dropped; the next call opens a new one.
    assert_eq!(
        client
            .call::<usize>("echo_bytes", (vec![0u8; 100],))
            .unwrap(),
        100
    );
}

#[test]
fn oversize_reply_is_an_error_not_a_broken_connection() {
    let manager = standard_builder()
        .max_frame_len(1024)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    // A small request whose result is larger than the manager's frame limit.
    let err = client
        .call::<String>("repeat", ("y", 2000usize))
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::BadReply),
        "{err}"
    );
    assert_eq!(client.call::<String>("echo", ("ok",)).unwrap(), "ok");
}

#[test]
fn reply_of_an_unexpected_type_is_a_codec_error() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let err = client.call::<String>("inc", ("k",)).unwrap_err();
    assert!(
        matches!(err, Error::Codec(ref m) if m.contains("inc")),
        "{err}"
    );
    assert_eq!(client.call::<i64>("get", ("k",)).unwrap(), 1);
}

#[test]
fn hostile_requests_to_shared_objects_get_typed_errors() {
    let manager = start_standard();
    let mut stream = raw_authenticated(manager.address(), KEY.as_bytes());
    let mut ask = |frame: Vec<u8>| {
        stream.write_all(&frame).unwrap();
        read_response(&mut stream).unwrap()
    };
    // A kind the manager does not have.
    let (code, message) = ask(open_shared_frame(1, "monogusa.Teapot", "t", "", &[])).error();
    assert_eq!(code, 12, "UnknownType: {message}");
    // A queue without its capacity argument.
    let (code, message) = ask(open_shared_frame(2, "monogusa.Queue", "q", "u64", &[])).error();
    assert_eq!(code, 2, "BadArguments: {message}");
    // Releasing a lock this connection never acquired.
    let opened = ask(open_shared_frame(3, "monogusa.Lock", "l", "", &[]));
    assert!(!opened.is_error, "{opened:?}");
    let lock = u64::from_le_bytes(opened.body[..8].try_into().unwrap());
    let (code, message) = ask(method_frame(4, lock, "release", &[])).error();
    assert_eq!(code, 16, "Misuse: {message}");
    // A method the object does not have, and arguments of the wrong shape.
    let (code, _) = ask(method_frame(5, lock, "explode", &[])).error();
    assert_eq!(code, 11, "UnknownMethod");
    let (code, _) = ask(method_frame(6, lock, "acquire", &[9, 9, 9])).error();
    assert_eq!(code, 2, "BadArguments");
    // The connection and the lock are still fine: an honest client takes the lock.
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert!(client.lock("l").unwrap().try_acquire().unwrap().is_some());
}

/// Function and method names are looked up by their bytes before any UTF-8 check. A name
/// that is not UTF-8 therefore matches nothing: a method name gets `UnknownMethod`, the
/// connection serving on; a function name is still refused as a malformed request (the
/// envelope cannot be read), and the manager serves everyone else.
#[test]
fn names_that_are_not_utf8_are_refused_clearly() {
    let manager = start_standard();
    let mut raw = raw_authenticated(manager.address(), KEY.as_bytes());
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(&open_shared_frame(
        1,
        "monogusa.Counter",
        "c",
        "",
        &0i64.to_le_bytes(),
    ))
    .unwrap();
    let opened = read_response(&mut raw).unwrap();
    assert!(!opened.is_error, "{opened:?}");
    let counter = u64::from_le_bytes(opened.body[..8].try_into().unwrap());

    let mut fields = counter.to_le_bytes().to_vec();
    fields.extend_from_slice(&3u64.to_le_bytes());
    fields.extend_from_slice(b"a\xffd");
    raw.write_all(&request_frame(2, 2, &fields, &1i64.to_le_bytes()))
        .unwrap();
    let refused = read_response(&mut raw).unwrap();
    let (code, message) = refused.error();
    assert_eq!(code, 11, "UnknownMethod: {message}");
    assert!(message.contains("a\u{fffd}d"), "{message}");
    // The same connection still serves a method with a proper name.
    raw.write_all(&method_frame(3, counter, "add", &5i64.to_le_bytes()))
        .unwrap();
    let added = read_response(&mut raw).unwrap();
    assert_eq!(added.body, 5i64.to_le_bytes(), "{added:?}");

    let mut name = 3u64.to_le_bytes().to_vec();
    name.extend_from_slice(b"in\xff");
    raw.write_all(&request_frame(4, 0, &name, &string_arg("k")))
        .unwrap();
    let notice = read_response(&mut raw).unwrap();
    let (code, message) = notice.error();
    assert_eq!(code, 6, "MalformedRequest: {message}");
    assert!(message.contains("UTF-8"), "{message}");
    assert_still_serving(manager.address(), KEY, 0);
}
