//! A soak test: several clients hammer counters and queues through a relay that injects
//! faults (truncating, dripping, freezing, resetting, corrupting the handshake), for a bounded
//! time. Afterwards every counter is within what was acknowledged and what was in doubt, no
//! item is duplicated or appears from nowhere, no acknowledged item is lost except to a get
//! whose reply was lost, and the manager's threads, descriptors and memory are back to where
//! they started.
#![allow(missing_docs)] // tests, not API

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use monogusa::{Client, Error};

/// A small deterministic generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Each connection through the relay gets a fault: most pass, the rest break in every way
/// the relay knows. Flips land in the handshake (the first 94 bytes toward the manager),
/// which authenticates; frames after it rely on TCP's checksums, as any TCP protocol does.
fn fault_for(seed: u64, connection: u64) -> Fault {
    let mut rng = Rng(seed ^ (connection + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    match rng.below(10) {
        0 => Fault::TruncateAfter(1 + rng.below(400) as usize),
        1 => Fault::ResetAfter(1 + rng.below(300) as usize),
        2 => Fault::FlipAt(rng.below(94) as usize),
        3 => Fault::Drip(1),
        4 if rng.below(3) == 0 => Fault::Freeze,
        _ => Fault::Pass,
    }
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    acked_adds: u64,
    doubtful_adds: u64,
    acked_puts: Vec<u64>,
    attempted_puts: Vec<u64>,
    received: Vec<u64>,
    doubtful_gets: u64,
}

/// Whether an error leaves the call's outcome unknown (it may have run).
fn in_doubt(error: &Error) -> bool {
    matches!(
        error,
        Error::ConnectionLost(_) | Error::Timeout(monogusa::Phase::Call)
    )
}

fn client_through(relay: &monogusa::Address) -> Option<Client> {
    Client::builder(relay, KEY)
        .connect_timeout(Duration::from_secs(2))
        .handshake_timeout(Duration::from_secs(2))
        .call_timeout(Duration::from_secs(3))
        .keepalive(Duration::from_millis(100), Duration::from_millis(600))
        .reconnect(0, Duration::from_millis(5))
        .connect()
        .ok()
}

fn worker(relay: &monogusa::Address, id: u64, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut seq = 0u64;
    while Instant::now() < until {
        let Some(client) = client_through(relay) else {
            continue;
        };
        let (Ok(counter), Ok(queue)) = (client.counter("soak"), client.queue::<u64>("items", 0))
        else {
            continue;
        };
        for _ in 0..20 {
            match counter.add(1) {
                Ok(_) => tally.acked_adds += 1,
                Err(e) if in_doubt(&e) => {
                    tally.doubtful_adds += 1;
                    break;
                }
                Err(_) => break,
            }
            let item = id << 32 | seq;
            seq += 1;
            tally.attempted_puts.push(item);
            match queue.put(&item) {
                Ok(()) => tally.acked_puts.push(item),
                Err(_) => break,
            }
            match queue.get_timeout(Duration::from_millis(200)) {
                Ok(Some(got)) => tally.received.push(got),
                Ok(None) => {}
                Err(e) => {
                    if in_doubt(&e) {
                        tally.doubtful_gets += 1;
                    }
                    break;
                }
            }
        }
    }
    tally
}

#[test]
fn faults_on_the_wire_lose_nothing_acknowledged_and_leak_nothing() {
    let seed = std::env::var("MONOGUSA_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    let manager = ChildManager::start(&[]);
    let watcher = Client::connect(&manager.address, KEY).unwrap();
    wait_until(Duration::from_secs(10), "the probes closed", || {
        watcher.manager_stats().unwrap().connections_open == 1
    });
    // Threads not counting those idle, waiting to be reused by a next connection (they
    // exit after a while on their own).
    let busy_threads = || manager.status("Threads") - watcher.manager_stats().unwrap().idle_threads;
    let (fds, threads, rss) = (manager.open_fds(), busy_threads(), manager.rss_kib());

    let relay = Relay::start(&manager.address, move |n| fault_for(seed, n));
    let until = Instant::now() + Duration::from_secs(4);
    let tallies = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..6)
        .map(|id| {
            let relay = relay.address.clone();
            let tallies = Arc::clone(&tallies);
            std::thread::spawn(move || {
                let tally = worker(&relay, id, until);
                tallies.lock().unwrap().push(tally);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    drop(relay); // closes every connection it carried, frozen ones too

    let tallies = tallies.lock().unwrap();
    let acked: u64 = tallies.iter().map(|t| t.acked_adds).sum();
    let doubtful: u64 = tallies.iter().map(|t| t.doubtful_adds).sum();
    let count = watcher.counter("soak").unwrap().get().unwrap() as u64;
    assert!(
        acked <= count && count <= acked + doubtful,
        "counter {count}: {acked} acknowledged, {doubtful} in doubt"
    );
    assert!(acked > 100, "the soak did little work: {acked} adds");
    let stats = watcher.manager_stats().unwrap();
    eprintln!(
        "soak (seed {seed:#x}): {acked} adds acknowledged, {doubtful} in doubt, counter {count}; \
         {} connections, {} protocol errors, {} handshake failures, {} wrong keys",
        stats.connections_accepted,
        stats.protocol_errors,
        stats.handshake_failures,
        stats.auth_failures
    );

    // Drain what is left, then account for every item.
    let queue = watcher.queue::<u64>("items", 0).unwrap();
    let mut received: Vec<u64> = tallies.iter().flat_map(|t| t.received.clone()).collect();
    while let Some(item) = queue.try_get().unwrap() {
        received.push(item);
    }
    let unique: HashSet<u64> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "an item was delivered twice");
    let attempted: HashSet<u64> = tallies
        .iter()
        .flat_map(|t| t.attempted_puts.clone())
        .collect();
    assert!(unique.is_subset(&attempted), "an item came from nowhere");
    let lost = tallies
        .iter()
        .flat_map(|t| t.acked_puts.iter())
        .filter(|item| !unique.contains(item))
        .count() as u64;
    let doubtful_gets: u64 = tallies.iter().map(|t| t.doubtful_gets).sum();
    assert!(
        lost <= doubtful_gets,
        "{lost} acknowledged items lost, only {doubtful_gets} gets lost their reply"
    );

    wait_until(
        Duration::from_secs(30),
        "threads and fds back to baseline",
        || {
            let stats = watcher.manager_stats().unwrap();
            stats.connections_open == 1
                && stats.handshakes_in_progress == 0
                && manager.open_fds() == fds
                && busy_threads() == threads
        },
    );
    let after = manager.rss_kib();
    assert!(
        after < rss + 32 * 1024,
        "resident memory {rss} KiB before, {after} KiB after"
    );
    let stats = watcher.manager_stats().unwrap();
    assert!(stats.protocol_errors + stats.handshake_failures + stats.auth_failures > 0);
}
