//! The built-in shared objects over real sockets and real processes.

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
        Some(RemoteErrorKind::Handler)
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
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::Handler), "{err}");
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
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::Handler), "{err}");
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
