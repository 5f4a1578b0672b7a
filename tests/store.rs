//! The built-in shared objects over real sockets and real processes.
#![allow(missing_docs)] // tests, not API

mod common;

use std::collections::HashSet;
use std::process::Child;
use std::thread;
use std::time::Duration;

use common::{KEY, ROLE_VAR, spawn_child, start_standard, wait_until};
use monogusa::{Client, Error, RemoteErrorKind};

const ADDRESS_VAR: &str = "MONOGUSA_TEST_ADDRESS";
const ARG_VAR: &str = "MONOGUSA_TEST_ARG";

fn remote_kind(err: &Error) -> Option<RemoteErrorKind> {
    match err {
        Error::Remote(r) => Some(r.kind()),
        _ => None,
    }
}

/// Entry point of the child processes these tests spawn.
#[test]
#[ignore = "run only as a child process by the other tests"]
fn child_main() {
    let role = std::env::var(ROLE_VAR).expect("child_main runs only as a child");
    let address = std::env::var(ADDRESS_VAR).unwrap();
    let arg = std::env::var(ARG_VAR).unwrap_or_default();
    let client = Client::connect(address.as_str(), KEY).unwrap();
    match role.as_str() {
        "adder" => {
            let counter = client.counter("hits").unwrap();
            let dict = client.dict::<String, i64>("per_key").unwrap();
            for _ in 0..arg.parse::<usize>().unwrap() {
                counter.add(1).unwrap();
                dict.update_counter(&"k".to_string(), 1).unwrap();
            }
        }
        "consumer" => {
            // Takes items until the sentinel; records each, failing on a duplicate.
            let jobs = client.queue::<Option<u64>>("jobs", 0).unwrap();
            let seen = client.dict::<u64, String>("seen").unwrap();
            while let Some(item) = jobs.get().unwrap() {
                assert!(
                    seen.insert_if_absent(&item, &arg).unwrap(),
                    "item {item} delivered twice"
                );
                jobs.task_done().unwrap();
            }
            jobs.task_done().unwrap();
        }
        "locked_incrementer" => {
            // Read-modify-write in two calls, safe only under the lock.
            let lock = client.lock("l").unwrap();
            let value = client.value::<u64>("v").unwrap();
            for _ in 0..arg.parse::<usize>().unwrap() {
                let guard = lock.acquire().unwrap();
                let n = value.get().unwrap().unwrap_or(0);
                value.set(&(n + 1)).unwrap();
                guard.release().unwrap();
            }
        }
        "lock_holder" => {
            let lock = client.lock("l").unwrap();
            let _guard = lock.acquire().unwrap();
            client.event("held").unwrap().set().unwrap();
            loop {
                thread::sleep(Duration::from_secs(1));
            }
        }
        "barrier_party" => {
            let barrier = client.barrier("b", 4).unwrap();
            let position = barrier.wait().unwrap();
            client
                .list::<u64>("positions")
                .unwrap()
                .push(&position)
                .unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, address: &str, arg: &str) -> Child {
    spawn_child(role, &[(ADDRESS_VAR, address), (ARG_VAR, arg)])
}

#[test]
fn counts_are_exact_across_processes_and_threads() {
    let manager = start_standard();
    let address = manager.address().to_string();
    let children: Vec<Child> = (0..3).map(|_| spawn("adder", &address, "400")).collect();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let counter = client.counter("hits").unwrap();
            let dict = client.dict::<String, i64>("per_key").unwrap();
            thread::spawn(move || {
                for _ in 0..250 {
                    counter.add(1).unwrap();
                    dict.update_counter(&"k".to_string(), 1).unwrap();
                }
            })
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(client.counter("hits").unwrap().get().unwrap(), 2200);
    let dict = client.dict::<String, i64>("per_key").unwrap();
    assert_eq!(dict.get(&"k".to_string()).unwrap(), Some(2200));
}

#[test]
fn counter_and_dict_operations() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let counter = client.counter("c").unwrap();
    assert_eq!(counter.add(5).unwrap(), 5);
    assert_eq!(counter.add(-2).unwrap(), 3);
    assert_eq!(counter.set(10).unwrap(), 3);
    assert_eq!(counter.get().unwrap(), 10);
    counter.set(i64::MAX).unwrap();
    assert_eq!(
        remote_kind(&counter.add(1).unwrap_err()),
        Some(RemoteErrorKind::Misuse)
    );
    assert_eq!(
        counter.get().unwrap(),
        i64::MAX,
        "a failed add changes nothing"
    );

    let dict = client.dict::<String, Vec<u32>>("d").unwrap();
    let (a, b) = ("a".to_string(), "b".to_string());
    assert!(dict.is_empty().unwrap());
    assert_eq!(dict.insert(&a, &vec![1]).unwrap(), None);
    assert_eq!(dict.insert(&a, &vec![1, 2]).unwrap(), Some(vec![1]));
    assert!(!dict.insert_if_absent(&a, &vec![9]).unwrap());
    assert!(dict.insert_if_absent(&b, &vec![3]).unwrap());
    assert_eq!(dict.get(&a).unwrap(), Some(vec![1, 2]));
    assert!(dict.contains(&b).unwrap());
    assert_eq!(dict.len().unwrap(), 2);
    assert_eq!(dict.keys().unwrap(), [a.clone(), b.clone()]);
    assert_eq!(
        dict.items().unwrap(),
        [(a.clone(), vec![1, 2]), (b.clone(), vec![3])]
    );
    assert_eq!(dict.remove(&a).unwrap(), Some(vec![1, 2]));
    assert_eq!(dict.remove(&a).unwrap(), None);
    let err = dict.update_counter(&b, 1).unwrap_err();
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::Misuse), "{err}");
    dict.clear().unwrap();
    assert_eq!(dict.len().unwrap(), 0);
    // The same name from another client is the same object.
    let other = Client::connect(manager.address(), KEY).unwrap();
    other
        .dict::<String, Vec<u32>>("d")
        .unwrap()
        .insert(&a, &vec![7])
        .unwrap();
    assert_eq!(dict.get(&a).unwrap(), Some(vec![7]));
}

#[test]
fn opening_a_name_as_another_kind_or_type_is_refused() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    client.counter("x").unwrap();
    let err = client.dict::<String, i64>("x").unwrap_err();
    assert_eq!(
        remote_kind(&err),
        Some(RemoteErrorKind::WrongService),
        "{err}"
    );
    assert!(err.to_string().contains("Counter"), "{err}");
    client.dict::<String, i64>("d").unwrap();
    let err = client.dict::<String, String>("d").unwrap_err();
    assert_eq!(
        remote_kind(&err),
        Some(RemoteErrorKind::WrongService),
        "{err}"
    );
    let err = client.queue::<String>("d", 0).unwrap_err();
    assert_eq!(
        remote_kind(&err),
        Some(RemoteErrorKind::WrongService),
        "{err}"
    );
    assert!(
        client.dict::<String, i64>("d").is_ok(),
        "the right types still open it"
    );
}

#[test]
fn every_item_reaches_exactly_one_of_several_consumer_processes() {
    const ITEMS: u64 = 1500;
    const CONSUMERS: usize = 3;
    let manager = start_standard();
    let address = manager.address().to_string();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.queue::<Option<u64>>("jobs", 64).unwrap();
    let consumers: Vec<Child> = (0..CONSUMERS)
        .map(|i| spawn("consumer", &address, &i.to_string()))
        .collect();
    for item in 0..ITEMS {
        jobs.put(&Some(item)).unwrap(); // blocks while 64 are queued
    }
    for _ in 0..CONSUMERS {
        jobs.put(&None).unwrap();
    }
    jobs.join().unwrap();
    for mut c in consumers {
        assert!(c.wait().unwrap().success(), "a consumer failed");
    }
    let seen = client.dict::<u64, String>("seen").unwrap();
    let keys: HashSet<u64> = seen.keys().unwrap().into_iter().collect();
    assert_eq!(keys, (0..ITEMS).collect::<HashSet<_>>());
    let workers: HashSet<String> = seen.items().unwrap().into_iter().map(|(_, w)| w).collect();
    assert!(!workers.is_empty());
}

#[test]
fn queue_timeouts_and_join() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let q = client.queue::<String>("q", 1).unwrap();
    assert_eq!(q.try_get().unwrap(), None);
    assert_eq!(q.get_timeout(Duration::from_millis(30)).unwrap(), None);
    assert!(
        q.put_timeout(&"a".into(), Duration::from_millis(30))
            .unwrap()
    );
    assert!(
        !q.put_timeout(&"b".into(), Duration::from_millis(30))
            .unwrap(),
        "full"
    );
    assert_eq!(q.len().unwrap(), 1);
    assert!(
        !q.join_timeout(Duration::from_millis(30)).unwrap(),
        "one task open"
    );
    assert_eq!(q.get().unwrap(), "a");
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::from_secs(10)).unwrap());
    let err = q.task_done().unwrap_err();
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::Misuse), "{err}");
}

#[test]
fn a_blocked_get_holds_up_only_its_own_thread_and_gets_the_next_put() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let q = client.queue::<u32>("q", 0).unwrap();
    let waiter = {
        let q = q.clone();
        thread::spawn(move || q.get())
    };
    wait_until(
        Duration::from_secs(10),
        "the get is blocked in the manager",
        || manager.stats().calls >= 1,
    );
    // Other threads of the same client carry on meanwhile.
    let counter = client.counter("c").unwrap();
    for i in 1..=20 {
        assert_eq!(counter.add(1).unwrap(), i);
    }
    assert!(!waiter.is_finished());
    q.put(&7).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 7);
}

#[test]
fn shutdown_wakes_blocked_callers_with_a_clear_error() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let q = client.queue::<u32>("q", 0).unwrap();
    let blocked: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || q.get())
        })
        .collect();
    wait_until(Duration::from_secs(10), "three gets are blocked", || {
        manager.stats().calls >= 3
    });
    manager.shutdown(); // returns: the blocked calls were woken
    for t in blocked {
        let err = t.join().unwrap().unwrap_err();
        assert_eq!(
            remote_kind(&err),
            Some(RemoteErrorKind::ShuttingDown),
            "{err}"
        );
    }
}

#[test]
fn value_and_list_operations() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let v = client.value::<String>("v").unwrap();
    assert_eq!(v.get().unwrap(), None);
    assert!(v.compare_and_swap(None, &"a".into()).unwrap());
    assert!(!v.compare_and_swap(None, &"b".into()).unwrap());
    assert!(v.compare_and_swap(Some(&"a".into()), &"c".into()).unwrap());
    assert_eq!(v.swap(&"d".into()).unwrap(), Some("c".into()));
    v.set(&"e".into()).unwrap();
    assert_eq!(v.get().unwrap(), Some("e".into()));

    let list = client.list::<i32>("l").unwrap();
    assert!(list.is_empty().unwrap());
    for i in 0..5 {
        assert_eq!(list.push(&i).unwrap(), i as u64 + 1);
    }
    assert_eq!(list.get(2).unwrap(), Some(2));
    assert_eq!(list.get(9).unwrap(), None);
    assert_eq!(list.set(2, &20).unwrap(), 2);
    let err = list.set(9, &0).unwrap_err();
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::Misuse), "{err}");
    assert_eq!(list.range(1, 4).unwrap(), [1, 20, 3]);
    assert_eq!(list.range(3, 100).unwrap(), [3, 4]);
    assert_eq!(list.pop().unwrap(), Some(4));
    assert_eq!(list.len().unwrap(), 4);
    list.clear().unwrap();
    assert_eq!(list.pop().unwrap(), None);
}

#[test]
fn the_lock_excludes_across_processes() {
    let manager = start_standard();
    let address = manager.address().to_string();
    let children: Vec<Child> = (0..3)
        .map(|_| spawn("locked_incrementer", &address, "150"))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let client = Client::connect(manager.address(), KEY).unwrap();
    assert_eq!(client.value::<u64>("v").unwrap().get().unwrap(), Some(450));
    assert!(!client.lock("l").unwrap().is_locked().unwrap());
}

#[test]
fn a_lock_held_by_a_killed_process_is_released() {
    let manager = start_standard();
    let address = manager.address().to_string();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let lock = client.lock("l").unwrap();
    let mut holder = spawn("lock_holder", &address, "");
    assert!(
        client
            .event("held")
            .unwrap()
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
    );
    assert!(lock.is_locked().unwrap());
    assert!(
        lock.try_acquire().unwrap().is_none(),
        "held by the other process"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let guard = lock.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert!(guard.is_some(), "the dead holder's lock was not released");
}

#[test]
fn guards_release_on_drop_and_semaphores_count_permits() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let lock = client.lock("l").unwrap();
    {
        let _guard = lock.acquire().unwrap();
        assert!(
            lock.try_acquire().unwrap().is_none(),
            "a second guard, even in one thread"
        );
    }
    assert!(
        lock.try_acquire().unwrap().is_some(),
        "released by the drop"
    );

    let sem = client.semaphore("s", 2).unwrap();
    let a = sem.acquire().unwrap();
    let _b = sem.acquire().unwrap();
    assert_eq!(sem.available().unwrap(), 0);
    assert!(
        sem.acquire_timeout(Duration::from_millis(30))
            .unwrap()
            .is_none()
    );
    a.release().unwrap();
    assert!(
        sem.acquire_timeout(Duration::from_secs(10))
            .unwrap()
            .is_some()
    );
}

#[test]
fn events_wake_their_waiters() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let event = client.event("e").unwrap();
    assert!(!event.wait_timeout(Duration::from_millis(20)).unwrap());
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let event = event.clone();
            thread::spawn(move || event.wait())
        })
        .collect();
    wait_until(Duration::from_secs(10), "three waiters", || {
        manager.stats().calls >= 4
    });
    event.set().unwrap();
    for w in waiters {
        w.join().unwrap().unwrap();
    }
    assert!(event.is_set().unwrap());
    event.clear().unwrap();
    assert!(!event.is_set().unwrap());
}

#[test]
fn a_barrier_across_processes() {
    let manager = start_standard();
    let address = manager.address().to_string();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let barrier = client.barrier("b", 4).unwrap();
    assert_eq!(barrier.parties().unwrap(), 4);
    let parties: Vec<Child> = (0..3)
        .map(|_| spawn("barrier_party", &address, ""))
        .collect();
    let mine = barrier
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("all four arrived");
    for mut p in parties {
        assert!(p.wait().unwrap().success());
    }
    let mut positions = client
        .list::<u64>("positions")
        .unwrap()
        .range(0, 10)
        .unwrap();
    positions.push(mine);
    positions.sort_unstable();
    assert_eq!(positions, [0, 1, 2, 3]);
    // Alone at a fresh round, a timed wait gives up and leaves the count as it was.
    assert_eq!(
        barrier.wait_timeout(Duration::from_millis(30)).unwrap(),
        None
    );
}

#[test]
fn shutdown_wakes_callers_blocked_in_locks_events_and_barriers() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let lock = client.lock("l").unwrap();
    let _held = lock.acquire().unwrap();
    let waiters = vec![
        {
            let lock = lock.clone();
            thread::spawn(move || lock.acquire().map(drop))
        },
        {
            let event = client.event("e").unwrap();
            thread::spawn(move || event.wait())
        },
        {
            let barrier = client.barrier("b", 5).unwrap();
            thread::spawn(move || barrier.wait().map(drop))
        },
    ];
    // One acquire (held) plus three blocked calls have reached the manager.
    wait_until(Duration::from_secs(10), "three blocked calls", || {
        manager.stats().calls >= 4
    });
    manager.shutdown();
    for w in waiters {
        let err = w.join().unwrap().unwrap_err();
        assert_eq!(
            remote_kind(&err),
            Some(RemoteErrorKind::ShuttingDown),
            "{err}"
        );
    }
}

/// One namespace for every named object: a served object's name cannot be opened as a shared
/// object (or the other way round), and `describe` lists each name once.
#[test]
fn served_and_shared_objects_share_one_namespace() {
    #[monogusa::service]
    pub trait Greeter {
        fn greet(&self) -> String;
    }
    struct Hello;
    impl Greeter for Hello {
        fn greet(&self) -> String {
            "hello".into()
        }
    }
    let manager = monogusa::Manager::builder()
        .authkey(KEY)
        .serve("greeter", GreeterServer::new(Hello))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    match client.counter("greeter") {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), RemoteErrorKind::WrongService, "{e}");
            assert!(e.message().contains("served Greeter"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    client.counter("hits").unwrap();
    match GreeterClient::open(&client, "hits") {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), RemoteErrorKind::WrongService, "{e}");
            assert!(e.message().contains("monogusa.Counter"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match client.counter("") {
        Err(Error::Remote(e)) => assert_eq!(e.kind(), RemoteErrorKind::BadArguments),
        other => panic!("{other:?}"),
    }
    let names: Vec<_> = client
        .describe()
        .unwrap()
        .objects
        .into_iter()
        .filter_map(|o| o.name)
        .collect();
    assert_eq!(names.iter().filter(|n| *n == "greeter").count(), 1);
    assert!(
        monogusa::Manager::builder()
            .authkey(KEY)
            .serve("", GreeterServer::new(Hello))
            .build()
            .is_err()
    );
}

/// A tag of the user's own replaces the shape check: programs that agree on it share the
/// object.
#[test]
fn a_type_tag_of_your_own_replaces_the_shape_check() {
    let manager = start_standard();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let unsigned = client
        .named("numbers")
        .type_tag("numbers v1")
        .queue::<u64>(0)
        .unwrap();
    unsigned.put(&7).unwrap();
    // Same tag, another type of the same encoding: the user says they agree.
    let signed = client
        .named("numbers")
        .type_tag("numbers v1")
        .queue::<i64>(0)
        .unwrap();
    assert_eq!(signed.get().unwrap(), 7);
    // Without the tag, the shape is checked, and differs from the tag.
    match client.queue::<i64>("numbers", 0) {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), RemoteErrorKind::WrongService);
            assert!(e.message().contains("numbers v1"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Dicts, lists and values take tags too.
    client.named("d").type_tag("t").dict::<u8, u8>().unwrap();
    client.named("l").type_tag("t").list::<u8>().unwrap();
    client.named("v").type_tag("t").value::<u8>().unwrap();
    assert!(client.named("v").type_tag("other").value::<u8>().is_err());
}
