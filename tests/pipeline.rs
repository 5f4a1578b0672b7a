//! Many calls in flight: pending replies matched to their callers, out-of-order waits,
//! timeouts of single calls, status reports and reconnection.
#![allow(missing_docs)] // tests, not API

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use monogusa::{Address, Client, ConnectionStatus, Error, Pending, RemoteErrorKind};

#[test]
fn hundreds_in_flight_from_one_thread() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let pending: Vec<Pending<i64>> = (0..300)
        .map(|i| client.send("add", ("k", i as i64)).unwrap())
        .collect();
    let mut expected = 0;
    for (i, p) in pending.into_iter().enumerate() {
        expected += i as i64;
        assert_eq!(p.wait().unwrap(), expected, "reply {i}");
    }
    assert_eq!(manager.stats().calls, 300);
}

#[test]
fn waits_in_any_order_get_their_own_replies() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let mut pending: Vec<(usize, Pending<String>)> = (0..100)
        .map(|i| (i, client.send("echo", (format!("msg {i}"),)).unwrap()))
        .collect();
    // Reverse order, then a shuffled remainder: each reply reaches its own caller.
    let tail = pending.split_off(50);
    for (i, p) in tail.into_iter().rev() {
        assert_eq!(p.wait().unwrap(), format!("msg {i}"));
    }
    let (even, odd): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(i, _)| i % 2 == 0);
    for (i, p) in odd.into_iter().chain(even) {
        assert_eq!(p.wait().unwrap(), format!("msg {i}"));
    }
}

#[test]
fn many_threads_share_one_pipeline() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let client = client.clone();
            thread::spawn(move || {
                for round in 0..50 {
                    let batch: Vec<(String, Pending<String>)> = (0..8)
                        .map(|j| {
                            let text = format!("t{t} r{round} j{j}");
                            let p = client.send("echo", (&text,)).unwrap();
                            (text, p)
                        })
                        .collect();
                    // Alternate wait orders between rounds.
                    let iter: Box<dyn Iterator<Item = _>> = if round % 2 == 0 {
                        Box::new(batch.into_iter())
                    } else {
                        Box::new(batch.into_iter().rev())
                    };
                    for (text, p) in iter {
                        assert_eq!(p.wait().unwrap(), text);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(manager.stats().calls, 16 * 50 * 8);
}

#[test]
fn errors_arrive_at_their_own_pending_reply() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let ok = client.send::<i64>("divide", (10i64, 2i64)).unwrap();
    let failing = client.send::<i64>("divide", (1i64, 0i64)).unwrap();
    let unknown = client.send::<i64>("nope", ()).unwrap();
    let panicking = client.send::<u8>("boom", ("x",)).unwrap();
    let after = client.send::<i64>("inc", ("k",)).unwrap();
    assert!(
        matches!(panicking.wait(), Err(Error::Remote(ref r)) if r.kind() == RemoteErrorKind::Panicked)
    );
    assert!(
        matches!(unknown.wait(), Err(Error::Remote(ref r)) if r.kind() == RemoteErrorKind::UnknownFunction)
    );
    assert!(
        matches!(failing.wait(), Err(Error::Remote(ref r)) if r.kind() == RemoteErrorKind::Handler)
    );
    assert_eq!(ok.wait().unwrap(), 5);
    assert_eq!(after.wait().unwrap(), 1);
}

#[test]
fn a_single_pending_call_times_out_and_the_rest_carry_on() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let slow = client.send::<u64>("sleep_ms", (300u64,)).unwrap();
    let err = slow.wait_timeout(Duration::from_millis(20)).unwrap_err();
    assert!(
        matches!(err, Error::Timeout(monogusa::Phase::Call)),
        "{err}"
    );
    // The late reply is discarded, not handed to the next caller.
    let next = client.send::<String>("echo", ("after",)).unwrap();
    assert_eq!(next.wait_timeout(Duration::from_secs(30)).unwrap(), "after");
    // A dropped pending reply is discarded too.
    drop(client.send::<String>("echo", ("dropped",)).unwrap());
    assert_eq!(
        client
            .send::<String>("echo", ("last",))
            .unwrap()
            .wait()
            .unwrap(),
        "last"
    );
}

#[test]
fn a_quick_call_is_not_held_back_by_a_slow_one_behind_it() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    // Teach the connection that `inc` is quick, so it is batched like in a real burst.
    for _ in 0..3 {
        client
            .send::<i64>("inc", ("warm",))
            .unwrap()
            .wait()
            .unwrap();
    }
    let quick = client.send::<i64>("inc", ("k",)).unwrap();
    let slow = client.send::<u64>("sleep_ms", (2_000u64,)).unwrap();
    // The quick reply arrives while the slow call is still sleeping.
    assert_eq!(quick.wait().unwrap(), 1);
    assert!(
        client
            .call_with_timeout::<i64>("get", ("k",), Duration::from_secs(30))
            .is_ok(),
        "pool calls are independent of the pipeline"
    );
    let err = slow.wait_timeout(Duration::from_millis(1)).unwrap_err();
    assert!(
        matches!(err, Error::Timeout(monogusa::Phase::Call)),
        "the slow call finished first: {err}"
    );
}

#[test]
fn typed_stubs_pipeline_too() {
    #[monogusa::service]
    pub trait Tally {
        fn add(&mut self, n: i64) -> i64;
    }
    struct Sum(i64);
    impl Tally for Sum {
        fn add(&mut self, n: i64) -> i64 {
            self.0 += n;
            self.0
        }
    }
    let manager = monogusa::Manager::builder()
        .authkey(KEY)
        .serve("tally", TallyServer::new(Sum(0)))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let tally = TallyClient::open(&client, "tally").unwrap();
    let pending: Vec<_> = (1..=64).map(|n| tally.send().add(n).unwrap()).collect();
    let totals: Vec<i64> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    assert_eq!(totals.last(), Some(&(64 * 65 / 2)));
    assert!(totals.windows(2).all(|w| w[0] < w[1]), "calls ran in order");
}

/// A client that retries `attempts` times from `first_delay`, recording every status report.
fn watched_client(
    address: &Address,
    attempts: u32,
    first_delay: Duration,
) -> (Client, Arc<Mutex<Vec<ConnectionStatus>>>) {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&statuses);
    let client = Client::builder(address, KEY)
        .reconnect(attempts, first_delay)
        .on_status(move |s| seen.lock().unwrap().push(s.clone()))
        .connect()
        .unwrap();
    (client, statuses)
}

/// Starts a new manager at `address` after `delay` (the old one is down meanwhile: clients
/// must retry until it is up).
fn restart_after(
    address: &Address,
    delay: Duration,
) -> thread::JoinHandle<monogusa::ManagerHandle> {
    let address = address.clone();
    thread::spawn(move || {
        thread::sleep(delay);
        start_standard_at(&address)
    })
}

#[test]
fn lost_pipeline_fails_calls_in_flight_then_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::unix(dir.path().join("m.sock"));
    let first = start_standard_at(&address);
    let (client, statuses) = watched_client(&address, 50, Duration::from_millis(10));
    assert_eq!(
        client.send::<i64>("inc", ("k",)).unwrap().wait().unwrap(),
        1
    );
    let in_flight = client.send::<u64>("sleep_ms", (300u64,)).unwrap();
    wait_until(Duration::from_secs(10), "the slow call is running", || {
        first.stats().calls == 2
    });
    first.shutdown(); // waits for the sleeping call, whose reply still goes out...
    // ...so the in-flight call completes; only calls whose reply cannot come fail.
    assert_eq!(in_flight.wait().unwrap(), 300);
    let lost = client.send::<i64>("inc", ("k",)).and_then(Pending::wait);
    assert!(matches!(lost, Err(Error::ConnectionLost(_))), "{lost:?}");

    // A new manager on the same address: the next send reconnects (with backoff while it
    // is not yet there) and works against the new state.
    let restarter = restart_after(&address, Duration::from_millis(50));
    let value = loop {
        match client.send::<i64>("inc", ("k",)).and_then(Pending::wait) {
            Ok(v) => break v,
            Err(Error::Io(_) | Error::ConnectionLost(_)) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(value, 1, "a fresh manager's state");
    let _second = restarter.join().unwrap();
    let statuses = statuses.lock().unwrap();
    assert_eq!(statuses.first(), Some(&ConnectionStatus::Connected));
    assert!(
        statuses
            .iter()
            .any(|s| matches!(s, ConnectionStatus::Disconnected { .. })),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&ConnectionStatus::Connected),
        "{statuses:?}"
    );
}

#[test]
fn pool_calls_reconnect_with_backoff_and_report_status() {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::unix(dir.path().join("m.sock"));
    let first = start_standard_at(&address);
    let (client, statuses) = watched_client(&address, 100, Duration::from_millis(5));
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    first.shutdown();
    assert!(matches!(
        client.call::<i64>("inc", ("k",)),
        Err(Error::ConnectionLost(_))
    ));
    let restarter = restart_after(&address, Duration::from_millis(100));
    // This call finds no manager at first and retries until the new one is up.
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    let _second = restarter.join().unwrap();
    let statuses = statuses.lock().unwrap();
    assert!(
        statuses
            .iter()
            .any(|s| matches!(s, ConnectionStatus::Reconnecting { attempt: 1, .. })),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&ConnectionStatus::Connected));
}

#[test]
fn reply_callbacks_run_in_send_order_and_survive_a_panicking_one() {
    let manager = common::start_standard();
    let client = Client::connect(manager.address(), common::KEY).unwrap();
    let (done, replies) = std::sync::mpsc::channel();
    for n in 0..200i64 {
        let done = done.clone();
        let caller = client.clone();
        client
            .send::<i64>("add", ("callbacks", 1i64))
            .unwrap()
            .on_reply(move |total| {
                if n == 50 {
                    panic!("a callback that panics");
                }
                // A callback may call the client too (over another connection).
                let echoed: String = caller.call("echo", (format!("{n}"),)).unwrap();
                done.send((n, total.unwrap(), echoed)).unwrap();
            });
    }
    drop(done);
    let got: Vec<(i64, i64, String)> = replies.iter().collect();
    assert_eq!(
        got.len(),
        199,
        "every callback but the panicking one reported"
    );
    for (i, (n, total, echoed)) in got.iter().enumerate() {
        let expected = if i < 50 { i as i64 } else { i as i64 + 1 };
        assert_eq!(*n, expected, "in send order");
        assert_eq!(*total, n + 1, "each saw its own reply");
        assert_eq!(echoed, &n.to_string());
    }
}

#[test]
fn built_in_objects_take_pipelined_calls_too() {
    let manager = common::start_standard();
    let client = Client::connect(manager.address(), common::KEY).unwrap();
    let hits = client.counter("hits").unwrap();
    let pending: Vec<Pending<i64>> = (0..64).map(|_| hits.send().add(1).unwrap()).collect();
    let totals: Vec<i64> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    assert_eq!(
        totals,
        (1..=64).collect::<Vec<i64>>(),
        "in order, each its own"
    );
    assert_eq!(hits.send().get().unwrap().wait().unwrap(), 64);

    let dict = client.dict::<String, Vec<u8>>("blobs").unwrap();
    let puts: Vec<_> = (0..10u8)
        .map(|n| dict.send().insert(&format!("k{n}"), &vec![n; 3]).unwrap())
        .collect();
    for put in puts {
        assert_eq!(put.wait().unwrap(), None);
    }
    let got = dict.send().get(&"k7".into()).unwrap().wait().unwrap();
    assert_eq!(got, Some(vec![7, 7, 7]), "decoded after the wait");
    let counts = client.dict::<String, i64>("counts").unwrap();
    let adds: Vec<_> = (0..5)
        .map(|_| counts.send().update_counter(&"n".into(), 2).unwrap())
        .collect();
    let seen: Vec<i64> = adds.into_iter().map(|p| p.wait().unwrap()).collect();
    assert_eq!(seen, [2, 4, 6, 8, 10]);
    assert!(counts.send().contains(&"n".into()).unwrap().wait().unwrap());

    let value = client.value::<String>("greeting").unwrap();
    value.send().set(&"hello".into()).unwrap().wait().unwrap();
    let old = value.send().swap(&"bye".into()).unwrap().wait().unwrap();
    assert_eq!(old.as_deref(), Some("hello"));

    let jobs = client.queue::<u32>("jobs", 0).unwrap();
    let puts: Vec<_> = (0..100)
        .map(|n| jobs.send().put_timeout(&n, Duration::from_secs(1)).unwrap())
        .collect();
    assert!(puts.into_iter().all(|p| p.wait().unwrap()));
    assert_eq!(jobs.send().len().unwrap().wait().unwrap(), 100);
    assert_eq!(jobs.send().try_get().unwrap().wait().unwrap(), Some(0));

    let list = client.list::<String>("names").unwrap();
    let lengths: Vec<_> = (0..20)
        .map(|n| list.send().push(&format!("n{n}")).unwrap())
        .collect();
    let lengths: Vec<u64> = lengths.into_iter().map(|p| p.wait().unwrap()).collect();
    assert_eq!(lengths, (1..=20).collect::<Vec<u64>>());
    let old = list.send().set(3, &"three".into()).unwrap();
    let past_the_end = list.send().set(99, &"nowhere".into()).unwrap();
    let got = list.send().get(3).unwrap();
    let popped = list.send().pop().unwrap();
    let len = list.send().len().unwrap();
    assert_eq!(old.wait().unwrap(), "n3");
    assert!(
        matches!(past_the_end.wait(), Err(Error::Remote(_))),
        "an error past the end, for that call alone"
    );
    assert_eq!(got.wait().unwrap().as_deref(), Some("three"));
    assert_eq!(popped.wait().unwrap().as_deref(), Some("n19"));
    assert_eq!(len.wait().unwrap(), 19);

    let ready = client.event("ready").unwrap();
    let before = ready.send().is_set().unwrap();
    ready.send().set().unwrap().wait().unwrap();
    assert!(!before.wait().unwrap());
    assert!(ready.send().is_set().unwrap().wait().unwrap());
    ready.send().clear().unwrap().wait().unwrap();
    assert!(!ready.is_set().unwrap());
}

/// A batch: calls encoded together and sent with one write; each reply reaches its own
/// pending, in any wait order, and batches interleave correctly with plain sends from other
/// threads on the same pipeline.
#[test]
fn batches_send_many_calls_at_once_alongside_plain_sends() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let plain = {
        let client = client.clone();
        thread::spawn(move || {
            for i in 0..400 {
                let text = format!("plain {i}");
                assert_eq!(
                    client
                        .send::<String>("echo", (&text,))
                        .unwrap()
                        .wait()
                        .unwrap(),
                    text
                );
            }
        })
    };
    let mut total = 0i64;
    for size in [1usize, 2, 63, 64, 65, 200, 1000] {
        let mut batch = client.batch().unwrap();
        let adds: Vec<Pending<i64>> = (0..size)
            .map(|i| batch.call("add", ("b", i as i64)).unwrap())
            .collect();
        let echoes: Vec<(String, Pending<String>)> = (0..size)
            .map(|i| {
                let text = format!("{size}/{i}");
                let pending = batch.call("echo", (&text,)).unwrap();
                (text, pending)
            })
            .collect();
        assert_eq!(batch.len(), 2 * size);
        batch.send().unwrap();
        assert!(batch.is_empty());
        // Echoes backwards, then the running sums in order.
        for (text, pending) in echoes.into_iter().rev() {
            assert_eq!(pending.wait().unwrap(), text);
        }
        for (i, pending) in adds.into_iter().enumerate() {
            total += i as i64;
            assert_eq!(pending.wait().unwrap(), total);
        }
    }
    plain.join().unwrap();
}

/// What a batch holds is sent when it is dropped unsent; a call that cannot be encoded (over
/// the frame limit) fails alone and adds nothing; errors reach their own pending.
#[test]
fn a_dropped_batch_still_sends_and_bad_calls_fail_alone() {
    let manager = standard_builder()
        .max_frame_len(64 * 1024)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::builder(manager.address(), KEY)
        .max_frame_len(64 * 1024)
        .connect()
        .unwrap();
    let (first, failing, last) = {
        let mut batch = client.batch().unwrap();
        let first = batch.call::<i64>("inc", ("d",)).unwrap();
        let too_big = batch.call::<usize>("echo_bytes", (vec![0u8; 100_000],));
        assert!(
            matches!(too_big, Err(Error::FrameTooLarge { .. })),
            "{too_big:?}"
        );
        let failing = batch.call::<i64>("divide", (1i64, 0i64)).unwrap();
        let last = batch.call::<i64>("inc", ("d",)).unwrap();
        assert_eq!(batch.len(), 3);
        (first, failing, last)
    }; // dropped here, unsent: the drop sends it
    assert_eq!(first.wait().unwrap(), 1);
    assert!(
        matches!(failing.wait(), Err(Error::Remote(ref r)) if r.kind() == RemoteErrorKind::Handler)
    );
    assert_eq!(last.wait().unwrap(), 2);
    assert_eq!(manager.stats().calls, 3);
}

/// Batches far larger than the socket buffers, from several threads at once, while the
/// manager's replies pile up unread: no deadlock, nothing lost or misdelivered.
#[test]
fn huge_batches_from_many_threads_do_not_deadlock() {
    // Unix sockets: their buffers are far smaller than loopback TCP's.
    let dir = tempfile::tempdir().unwrap();
    let manager = start_standard_at(&Address::unix(dir.path().join("m.sock")));
    let client = Client::connect(manager.address(), KEY).unwrap();
    // One thread, one batch of 10 MB: its caller must get to reading replies while the
    // manager still has requests to read.
    let payload = "y".repeat(1000);
    let mut batch = client.batch().unwrap();
    let pending: Vec<Pending<String>> = (0..10_000)
        .map(|_| batch.call("echo", (&payload,)).unwrap())
        .collect();
    batch.send().unwrap();
    for p in pending {
        assert_eq!(p.wait().unwrap().len(), 1000);
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = client.clone();
            thread::spawn(move || {
                let payload = "x".repeat(1000);
                for round in 0..3 {
                    let mut batch = client.batch().unwrap();
                    let pending: Vec<Pending<String>> = (0..3000)
                        .map(|_| batch.call("echo", (&payload,)).unwrap())
                        .collect();
                    // A plain send between batches goes through the writer thread.
                    let between = client.send::<String>("echo", (format!("{t}/{round}"),));
                    batch.send().unwrap();
                    for p in pending {
                        assert_eq!(p.wait().unwrap().len(), 1000);
                    }
                    assert_eq!(between.unwrap().wait().unwrap(), format!("{t}/{round}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(manager.stats().calls, 10_000 + 4 * 3 * 3001);
}

/// A batch whose connection is lost: its waits fail with `ConnectionLost`, and the next batch
/// connects afresh.
#[test]
fn a_lost_connection_fails_a_batch_then_the_next_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::unix(dir.path().join("m.sock"));
    let first = start_standard_at(&address);
    let client = Client::builder(&address, KEY)
        .reconnect(50, Duration::from_millis(10))
        .connect()
        .unwrap();
    let mut batch = client.batch().unwrap();
    let warm = batch.call::<i64>("inc", ("k",)).unwrap();
    batch.send().unwrap();
    assert_eq!(warm.wait().unwrap(), 1);
    first.shutdown();
    let lost = batch
        .call::<i64>("inc", ("k",))
        .and_then(|p| batch.send().and_then(|()| p.wait()));
    assert!(matches!(lost, Err(Error::ConnectionLost(_))), "{lost:?}");
    drop(batch);
    let restarter = restart_after(&address, Duration::from_millis(50));
    let value = loop {
        let attempt = client.batch().and_then(|mut batch| {
            let p = batch.call::<i64>("inc", ("k",))?;
            batch.send()?;
            p.wait()
        });
        match attempt {
            Ok(v) => break v,
            Err(Error::Io(_) | Error::ConnectionLost(_)) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(value, 1, "a fresh manager's state");
    let _second = restarter.join().unwrap();
}
