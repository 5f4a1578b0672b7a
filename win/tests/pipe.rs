//! The pipe layer on its own, over real pipes: timeouts, shutdowns, peeks and instances.
#![cfg(windows)]

use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use monogusa_win::pipe::{Access, PipeListener, PipeStream, Queued};

fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "monogusa-win-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A listener and one connected pair of ends.
fn pair() -> (PipeListener, PipeStream, PipeStream) {
    let name = unique_name();
    let listener = PipeListener::bind(&name, &Access::default()).unwrap();
    let client = PipeStream::connect(&name, Some(Duration::from_secs(10))).unwrap();
    let server = listener.accept().unwrap();
    (listener, client, server)
}

#[test]
fn bytes_go_both_ways_and_peeks_count_them() {
    let (_listener, client, server) = pair();
    assert!(server.is_server() && !client.is_server());
    assert_eq!(server.queued().unwrap(), Queued::Bytes(0));
    assert_eq!(client.write(b"hello").unwrap(), 5);
    assert_eq!(server.queued().unwrap(), Queued::Bytes(5));
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(server.write(b"back").unwrap(), 4);
    assert_eq!(client.read(&mut buf).unwrap(), 4);
    assert_eq!(server.client_process_id(), Some(std::process::id()));
}

#[test]
fn a_read_times_out_and_the_stream_still_works() {
    let (_listener, client, server) = pair();
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 8];
    let err = server.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    client.write(b"late").unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 4);
}

#[test]
fn closing_one_end_is_the_end_of_stream_and_a_closed_peek() {
    let (_listener, client, server) = pair();
    client.write(b"last").unwrap();
    drop(client);
    let mut buf = [0u8; 8];
    // What was written before the close is still delivered.
    assert_eq!(server.read(&mut buf).unwrap(), 4);
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    assert_eq!(server.queued().unwrap(), Queued::Closed);
}

#[test]
fn a_shutdown_from_another_thread_ends_a_waiting_read() {
    let (_listener, _client, server) = pair();
    let server = std::sync::Arc::new(server);
    let reader = {
        let server = std::sync::Arc::clone(&server);
        thread::spawn(move || {
            let mut buf = [0u8; 8];
            server.read(&mut buf)
        })
    };
    thread::sleep(Duration::from_millis(100));
    server.shutdown(Shutdown::Read).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), 0);
    let mut buf = [0u8; 8];
    assert_eq!(server.read(&mut buf).unwrap(), 0, "stays shut");
}

#[test]
fn shutting_the_server_end_both_ways_disconnects_the_client() {
    let (_listener, client, server) = pair();
    server.shutdown(Shutdown::Both).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).unwrap(), 0);
    assert!(server.write(b"x").is_err());
}

#[test]
fn a_write_nobody_reads_times_out_once_the_buffer_is_full() {
    let (_listener, _client, server) = pair();
    server
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = vec![7u8; 64 << 10];
    let started = Instant::now();
    let mut written = 0usize;
    let err = loop {
        match server.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never filled");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(written > 0);
    assert_eq!(server.write_now(b"x").unwrap(), 0, "nothing fits now");
}

#[test]
fn many_clients_at_once_each_get_their_own_instance() {
    let name = unique_name();
    let listener = PipeListener::bind(&name, &Access::default()).unwrap();
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let name = name.clone();
            thread::spawn(move || {
                let c = PipeStream::connect(&name, Some(Duration::from_secs(30))).unwrap();
                c.write(&[i as u8]).unwrap();
                let mut buf = [0u8; 1];
                assert_eq!(c.read(&mut buf).unwrap(), 1);
                assert_eq!(buf[0], i as u8);
            })
        })
        .collect();
    for _ in 0..50 {
        let s = listener.accept().unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap(), 1);
        s.write(&buf).unwrap();
        thread::spawn(move || {
            let mut rest = [0u8; 1];
            let _ = s.read(&mut rest);
        });
    }
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn a_taken_name_is_refused_and_a_missing_one_is_not_found() {
    let name = unique_name();
    let _first = PipeListener::bind(&name, &Access::default()).unwrap();
    let err = PipeListener::bind(&name, &Access::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    let err = PipeStream::connect(&unique_name(), Some(Duration::from_secs(1))).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn a_group_that_does_not_exist_is_a_clear_error() {
    let access = Access {
        group: Some("no-such-group-for-monogusa".into()),
    };
    let err = PipeListener::bind(&unique_name(), &access).unwrap_err();
    assert!(
        err.to_string().contains("no-such-group-for-monogusa"),
        "{err}"
    );
}

/// A write larger than the pipe's buffer that times out reports the bytes it did move, and
/// exactly those reach the reader: nothing is lost or said twice.
#[test]
fn a_timed_out_write_reports_what_it_moved() {
    let (_listener, client, server) = pair();
    server
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let big: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
    let moved = match server.write(&big) {
        Ok(n) => n,
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
            0
        }
    };
    assert!(moved < big.len(), "nobody reads: it cannot all fit");
    server.write(b"!").unwrap_or(0);
    drop(server);
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match client.read(&mut buf).unwrap() {
            0 => break,
            n => seen.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        seen.len() == moved || seen.len() == moved + 1,
        "{} vs {moved}",
        seen.len()
    );
    assert_eq!(&seen[..moved], &big[..moved]);
}
