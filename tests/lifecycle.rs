//! Unix sockets, connection limits, shutdown and restart.
#![allow(missing_docs)] // tests, not API

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::thread;
use std::time::Duration;

use common::*;
use monogusa::{Address, Client, Error, Manager, RemoteErrorKind};

fn unix_address(dir: &tempfile::TempDir) -> Address {
    Address::unix(dir.path().join("manager.sock"))
}

#[test]
fn unix_socket_serves_calls_is_private_and_is_removed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let address = unix_address(&dir);
    let manager = start_standard_at(&address);
    assert_eq!(manager.address(), &address);
    let path = dir.path().join("manager.sock");
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let client = Client::connect(&address, KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    manager.shutdown();
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manager.sock");
    // A dead manager's socket: bound, then its listener dropped without removing the file.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let manager = start_standard_at(&Address::unix(&path));
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

#[test]
fn live_socket_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let address = unix_address(&dir);
    let first = start_standard_at(&address);
    let err = start_error_at(&address);
    assert!(
        matches!(err, Error::Io(ref e) if e.kind() == std::io::ErrorKind::AddrInUse),
        "{err}"
    );
    // The first manager is untouched.
    assert_eq!(
        Client::connect(first.address(), KEY)
            .unwrap()
            .call::<i64>("get", ("k",))
            .unwrap(),
        0
    );
}

#[test]
fn a_regular_file_at_the_path_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manager.sock");
    std::fs::write(&path, b"precious").unwrap();
    let err = start_error_at(&Address::unix(&path));
    assert!(
        matches!(err, Error::Io(ref e) if e.to_string().contains("not a socket")),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn shutdown_with_idle_clients_connected() {
    let manager = start_standard();
    let address = manager.address().clone();
    let clients: Vec<Client> = (0..5)
        .map(|_| Client::connect(&address, KEY).unwrap())
        .collect();
    for c in &clients {
        c.call::<i64>("inc", ("k",)).unwrap();
    }
    assert_eq!(manager.stats().connections_open, 5);
    manager.shutdown(); // returns although five connections sit idle
    for c in &clients {
        let err = c.call::<i64>("get", ("k",)).unwrap_err();
        assert!(
            matches!(err, Error::ConnectionLost(_) | Error::Io(_)),
            "{err}"
        );
    }
    assert!(
        Client::connect(&address, KEY).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn shutdown_lets_a_call_in_flight_finish() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let in_flight = {
        let client = client.clone();
        thread::spawn(move || client.call::<u64>("sleep_ms", (300u64,)))
    };
    wait_until(
        Duration::from_secs(5),
        "the call reached the manager",
        || manager.stats().calls == 1,
    );
    manager.shutdown();
    assert_eq!(
        in_flight.join().unwrap().unwrap(),
        300,
        "the reply was lost"
    );
}

#[test]
fn remote_shutdown() {
    let manager = start_standard();
    let address = manager.address().clone();
    let client = Client::connect(&address, KEY).unwrap();
    client.shutdown_server().unwrap();
    manager.wait(); // returns because the manager stopped
    assert!(Client::connect(&address, KEY).is_err());
}

#[test]
fn remote_shutdown_can_be_forbidden() {
    let manager = standard_builder()
        .allow_remote_shutdown(false)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let err = client.shutdown_server().unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref r) if r.kind() == RemoteErrorKind::NotPermitted),
        "{err}"
    );
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

#[test]
fn connections_over_the_limit_are_refused_clearly() {
    let manager = standard_builder()
        .max_connections(2)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let a = Client::connect(manager.address(), KEY).unwrap();
    let b = Client::connect(manager.address(), KEY).unwrap();
    let err = Client::connect(manager.address(), KEY).unwrap_err();
    assert!(
        matches!(err, Error::Refused(ref m) if m.contains("limit of 2")),
        "{err}"
    );
    assert_eq!(manager.stats().connections_refused, 1);
    // The admitted clients are served meanwhile.
    assert_eq!(a.call::<i64>("inc", ("k",)).unwrap(), 1);
    assert_eq!(b.call::<i64>("inc", ("k",)).unwrap(), 2);
    // Once one leaves, a newcomer gets in.
    drop(a);
    wait_until(Duration::from_secs(5), "a connection closed", || {
        manager.stats().connections_open == 1
    });
    let c = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(c.call::<i64>("inc", ("k",)).unwrap(), 3);
}

#[test]
fn client_reconnects_after_a_manager_restart() {
    let dir = tempfile::tempdir().unwrap();
    let address = unix_address(&dir);
    let first = start_standard_at(&address);
    let client = Client::connect(&address, KEY).unwrap();
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
    first.shutdown();

    let _second = start_standard_at(&address);
    // The pooled connection died with the first manager: that call's outcome is unknown and
    // it is not retried...
    let err = client.call::<i64>("inc", ("k",)).unwrap_err();
    assert!(matches!(err, Error::ConnectionLost(_)), "{err}");
    // ...and the next call connects afresh to the new manager (whose state is new).
    assert_eq!(client.call::<i64>("inc", ("k",)).unwrap(), 1);
}

#[test]
fn dropping_the_handle_shuts_the_manager_down() {
    let dir = tempfile::tempdir().unwrap();
    let address = unix_address(&dir);
    {
        let _manager = start_standard_at(&address);
        Client::connect(&address, KEY).unwrap();
    }
    assert!(!dir.path().join("manager.sock").exists());
    assert!(Client::connect(&address, KEY).is_err());
}

#[test]
fn hundreds_of_clients_at_once() {
    const CLIENTS: usize = 300;
    let manager = start_standard();
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|_| Client::connect(manager.address(), KEY).unwrap())
        .collect();
    assert_eq!(manager.stats().connections_open, CLIENTS as u64);
    let threads: Vec<_> = clients
        .into_iter()
        .map(|client| {
            thread::spawn(move || {
                for _ in 0..10 {
                    client.call::<i64>("inc", ("k",)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let observer = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(
        observer.call::<i64>("get", ("k",)).unwrap(),
        (CLIENTS * 10) as i64
    );
    drop(observer);
    wait_until(Duration::from_secs(10), "every connection closed", || {
        manager.stats().connections_open == 0
    });
}

/// In-process observers see each connection come and go, with its id and peer, and the
/// handle describes the manager without a connection.
#[test]
fn connection_events_and_an_in_process_describe() {
    use std::sync::{Arc, Mutex};
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let manager = common::standard_builder()
        .on_connection(move |event| seen.lock().unwrap().push(event.clone()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = monogusa::Client::connect(manager.address(), common::KEY).unwrap();
    client.counter("visits").unwrap().add(1).unwrap();
    drop(client);
    common::wait_until(Duration::from_secs(10), "both events", || {
        events.lock().unwrap().len() >= 2
    });
    let events = events.lock().unwrap().clone();
    match (&events[0], &events[1]) {
        (
            monogusa::ConnectionEvent::Connected { id, peer },
            monogusa::ConnectionEvent::Closed {
                id: closed, reason, ..
            },
        ) => {
            assert_eq!(id, closed);
            assert!(peer.starts_with("127.0.0.1:"), "{peer}");
            assert!(reason.contains("closed by the client"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let description = manager.describe();
    assert!(description.functions.contains(&"add".to_string()));
    assert_eq!(description.objects_total, 1);
    assert_eq!(description.objects[0].name.as_deref(), Some("visits"));
}

/// One manager, several listeners: a TCP port and a Unix socket serve the same objects, and
/// shutdown closes both (removing the socket file).
#[test]
fn one_manager_listens_on_several_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sock");
    let manager = common::standard_builder()
        .also_bind(Address::unix(&path))
        .build()
        .unwrap()
        .start()
        .unwrap();
    assert_eq!(manager.addresses().len(), 2);
    let over_tcp = Client::connect(manager.address(), KEY).unwrap();
    let over_unix = Client::connect(&manager.addresses()[1], KEY).unwrap();
    over_tcp.counter("both").unwrap().add(1).unwrap();
    assert_eq!(over_unix.counter("both").unwrap().add(1).unwrap(), 2);
    assert_eq!(over_unix.call::<i64>("add", ("k", 5i64)).unwrap(), 5);
    assert_eq!(over_tcp.call::<i64>("get", ("k",)).unwrap(), 5);
    let tcp = manager.address().clone();
    drop((over_tcp, over_unix));
    manager.shutdown();
    assert!(!path.exists(), "the socket file is removed");
    assert!(
        Client::connect(&tcp, KEY).is_err(),
        "the TCP port is closed too"
    );
}

/// A connection thread whose connection ended serves the next connection: a new connection
/// costs no thread spawn. Threads still waiting idle do not hold up shutdown.
#[test]
fn connection_threads_are_reused() {
    let manager = Manager::builder()
        .authkey(KEY)
        .register("thread", || format!("{:?}", std::thread::current().id()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let on_thread = || -> String {
        let client = Client::connect(manager.address(), KEY).unwrap();
        client.call("thread", ()).unwrap()
    };
    let idle = || {
        // The connection's thread is idle again before the next connection arrives.
        wait_until(Duration::from_secs(10), "the thread idle again", || {
            let stats = manager.stats();
            stats.connections_open == 0 && stats.idle_threads == 1
        });
    };
    let first = on_thread();
    idle();
    for _ in 0..20 {
        assert_eq!(
            on_thread(),
            first,
            "the idle thread serves the next connection"
        );
        idle();
    }
    // Several at once: the idle thread takes one, new threads the rest, all served.
    let clients: Vec<Client> = (0..8)
        .map(|_| Client::connect(manager.address(), KEY).unwrap())
        .collect();
    let threads: std::collections::HashSet<String> = clients
        .iter()
        .map(|c| c.call::<String>("thread", ()).unwrap())
        .collect();
    assert_eq!(threads.len(), 8, "each connection on its own thread");
    drop(clients);
    wait_until(Duration::from_secs(10), "all eight idle", || {
        manager.stats().idle_threads == 8
    });
    manager.shutdown();
}

/// `Client::doors` lists every door with its real port, from the manager itself, so that a
/// supervisor can tell programs in other languages where their door is; the function is the
/// manager's own and not listed among the user's.
#[test]
fn doors_are_listed_with_real_ports() {
    let manager = monogusa::Manager::builder()
        .authkey(KEY)
        .python_listener("127.0.0.1:0")
        .msgpack_listener("127.0.0.1:0")
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let doors = client.doors().unwrap();
    let expected = vec![
        ("native".to_string(), manager.address().to_string()),
        (
            "python".to_string(),
            manager.python_addresses()[0].to_string(),
        ),
        (
            "msgpack-rpc".to_string(),
            manager.msgpack_addresses()[0].to_string(),
        ),
    ];
    assert_eq!(doors, expected);
    assert!(client.describe().unwrap().functions.is_empty());
}
