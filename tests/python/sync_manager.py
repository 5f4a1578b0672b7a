"""An unmodified SyncManager client, as the Python docs write one, against a Rust manager
(for tests/python.rs). Each check prints "ok NAME"; a failed one raises.

usage: sync_manager.py SCENARIO HOST PORT KEY
  typeids: every typeid SyncManager registers (Pool aside)
  named:   named objects through get_dict(name) & co on a plain BaseManager subclass
  tasks:   a task queue through get_tasks(name): push, take, ack, fail, extend, stats, ...
  take_and_die: takes a task and SIGKILLs itself
"""
import queue
import os
import signal
import sys
import threading
import time
from multiprocessing import Process
from multiprocessing.managers import BaseManager, SyncManager


def check(name, condition=True):
    assert condition, name
    print("ok", name, flush=True)


def connect(host, port, key):
    m = SyncManager(address=(host, port), authkey=key)
    m.connect()
    return m


def add_from_child(host, port, key, d, l, n):
    # A proxy passed to another process reconnects there (its own incref).
    for i in range(n):
        l.append(i)
    d["child"] = "done"


def typeids(host, port, key):
    m = connect(host, port, key)

    d = m.dict(a=1)
    d["b"] = [1, 2]
    d.update({"c": 3.5}, )
    check("dict", d["a"] == 1 and d["b"] == [1, 2] and len(d) == 3 and "c" in d)
    check("dict.get", d.get("zz") is None and d.get("zz", 7) == 7)
    check("dict.copy", d.copy() == {"a": 1, "b": [1, 2], "c": 3.5})
    check("dict.iter", sorted(iter(d)) == ["a", "b", "c"] and sorted(d) == ["a", "b", "c"])
    check("dict.items", sorted(d.items()) == [("a", 1), ("b", [1, 2]), ("c", 3.5)])
    del d["c"]
    try:
        d["c"]
        check("dict.KeyError", False)
    except KeyError:
        check("dict.KeyError")
    check("dict.pop", d.pop("a") == 1 and d.pop("a", None) is None)
    check("dict.setdefault", d.setdefault("s", 5) == 5 and d.setdefault("s", 6) == 5)
    check("dict.str", str(d) in ("{'b': [1, 2], 's': 5}", "{'s': 5, 'b': [1, 2]}"))

    l = m.list([3, 1, 2])
    l.append(0)
    l.extend([9])
    l += [7]
    check("list", l[0] == 3 and l[-1] == 7 and len(l) == 6)
    l.sort()
    check("list.sort", list(l) == [0, 1, 2, 3, 7, 9])
    l.sort(reverse=True)
    l.reverse()
    check("list.reverse", list(l) == [0, 1, 2, 3, 7, 9])
    l.insert(1, "x")
    l.remove("x")
    check("list.index", l.index(3) == 3 and l.count(7) == 1 and 9 in l)
    check("list.pop", l.pop() == 9 and l.pop(0) == 0 and list(l) == [1, 2, 3, 7])
    del l[0]
    l[0] = 20
    check("list.setitem", list(l) == [20, 3, 7])
    check("list.add", l + [1] == [20, 3, 7, 1] and l * 2 == [20, 3, 7, 20, 3, 7])
    check("list.reversed", list(reversed(l)) == [7, 3, 20])
    try:
        l[10]
        check("list.IndexError", False)
    except IndexError:
        check("list.IndexError")

    child = Process(target=add_from_child, args=(host, port, key, d, l, 5))
    child.start()
    child.join()
    check("proxies in a child process", len(l) == 8 and d["child"] == "done")

    q = m.Queue()
    q.put(1)
    q.put("two")
    check("Queue", q.qsize() == 2 and q.get() == 1 and q.get(timeout=1) == "two")
    try:
        q.get(timeout=0.05)
        check("Queue.Empty", False)
    except queue.Empty:
        check("Queue.Empty")
    bounded = m.Queue(1)
    bounded.put(1)
    try:
        bounded.put(2, timeout=0.05)
        check("Queue.Full", False)
    except queue.Full:
        check("Queue.Full")

    jq = m.JoinableQueue()
    jq.put("job")

    def work():
        jq.get()
        jq.task_done()

    t = threading.Thread(target=work)
    t.start()
    jq.join()
    t.join()
    check("JoinableQueue")

    lock = m.Lock()
    with lock:
        check("Lock", not lock.acquire(False))
    check("Lock.release", lock.acquire(timeout=1))
    lock.release()

    rlock = m.RLock()
    with rlock:
        with rlock:
            check("RLock")
    try:
        rlock.release()
        check("RLock.unacquired", False)
    except RuntimeError:
        check("RLock.unacquired")

    sem = m.Semaphore(2)
    check("Semaphore", sem.acquire() and sem.acquire() and not sem.acquire(timeout=0.05))
    sem.release()
    sem.release()
    bsem = m.BoundedSemaphore(1)
    bsem.acquire()
    bsem.release()
    try:
        bsem.release()
        check("BoundedSemaphore", False)
    except ValueError:
        check("BoundedSemaphore")

    cond = m.Condition()
    ready = m.list()

    def waiter():
        with cond:
            while not len(ready):
                cond.wait(5)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    with cond:
        ready.append(1)
        cond.notify_all()
    t.join(10)
    check("Condition", not t.is_alive())
    with cond:
        check("Condition.wait_for", cond.wait_for(lambda: len(ready) == 1, timeout=1))
        check("Condition.timeout", cond.wait(0.05) is False)

    event = m.Event()
    check("Event", not event.is_set() and not event.wait(0.05))
    event.set()
    check("Event.set", event.is_set() and event.wait(1))

    barrier = m.Barrier(2)
    got = []
    t = threading.Thread(target=lambda: got.append(barrier.wait(5)))
    t.start()
    mine = barrier.wait(5)
    t.join()
    check("Barrier", sorted(got + [mine]) == [0, 1] and barrier.parties == 2)

    v = m.Value("i", 5)
    v.value += 1
    check("Value", v.value == 6 and v.get() == 6)
    v.set("any")
    check("Value.set", v.value == "any")

    a = m.Array("i", [1, 2, 3])
    a[0] = 10
    check("Array", len(a) == 3 and a[0] == 10 and a[2] == 3)
    zeros = m.Array("d", 3)
    check("Array.zeros", len(zeros) == 3 and zeros[1] == 0)
    try:
        m.Array("i", 10 ** 12)
        check("Array of a huge length refused", False)
    except Exception as e:
        check("Array of a huge length refused", "ValueError" in type(e).__name__ + str(e))

    ns = m.Namespace(x=1)
    ns.y = "two"
    check("Namespace", ns.x == 1 and ns.y == "two")
    del ns.x
    try:
        ns.x
        check("Namespace.AttributeError", False)
    except AttributeError:
        check("Namespace.AttributeError")

    try:
        m.Pool()
        check("Pool refused", False)
    except Exception as e:
        check("Pool refused", "Pool" in str(e))


class Named(BaseManager):
    pass


for typeid in ["get_dict", "get_list", "get_queue", "get_counter", "get_value",
               "get_lock", "get_event", "get_tasks", "get_mailbox"]:
    Named.register(typeid)


def named(host, port, key):
    m = Named(address=(host, port), authkey=key)
    m.connect()
    d = m.get_dict("scores")
    d["python"] = 42
    check("get_dict", d["rust"] == 7 and len(d) == 2 and sorted(d.keys()) == ["python", "rust"])
    l = m.get_list("log")
    l.append("from python")
    check("get_list", l[0] == "from rust" and len(l) == 2)
    q = m.get_queue("jobs")
    check("get_queue", q.get(timeout=5) == [1, "x"])
    q.put({"from": "python"})
    check("get_queue.peek", q.peek() == {"from": "python"} and q.qsize() == 1)
    c = m.get_counter("hits")
    check("get_counter", c.add(5) == 15 and c.get() == 15)
    v = m.get_value("greeting")
    v.set("hello from python")
    check("get_value", v.get() == "hello from python")
    lock = m.get_lock("config")
    check("get_lock", lock.acquire(timeout=5))
    lock.release()
    e = m.get_event("go")
    e.set()
    check("get_event", e.is_set())
    # A dict a Rust client made as Dict<String, i64>: its values convert, misfits are refused.
    typed = m.get_dict("typed")
    typed["python"] = 5
    check("get_dict of a Rust type", typed["python"] == 5)
    try:
        typed["python"] = "five"
        check("get_dict of a Rust type refuses a misfit", False)
    except Exception as err:
        check("get_dict of a Rust type refuses a misfit", "int" in str(err))


def tasks(host, port, key):
    m = Named(address=(host, port), authkey=key)
    m.connect()
    q = m.get_tasks("emails-%d" % os.getpid())  # one per interpreter run
    first = q.push({"to": "a@x"})
    ids = q.push_many([{"to": "b@x"}, {"to": "c@x"}])
    check("push", isinstance(first, int) and len(ids) == 2 and first not in ids)
    task_id, payload, attempt = q.take(timeout=5)
    check("take", task_id == first and payload == {"to": "a@x"} and attempt == 1)
    q.extend(task_id, 60)
    q.ack(task_id)
    try:
        q.ack(task_id)
        check("ack twice refused", False)
    except KeyError:
        check("ack twice refused")
    second, payload, _ = q.take(timeout=5)
    check("fail retries", q.fail(second, "smtp down") == "retry")
    third, payload, _ = q.take(timeout=5)
    q.release(third)
    stats = q.stats()
    check("stats", stats["done"] == 1 and stats["ready"] + stats["delayed"] == 2)
    check("take times out", m.get_tasks("empty").take(timeout=0.2) is None)
    check("dead letters", q.dead_letters() == [])
    check("requeue", q.requeue() == 0)
    m.get_mailbox("resizer-%d" % os.getpid()).put({"stop": True})
    check("mailbox", m.get_mailbox("resizer-%d" % os.getpid()).get(timeout=5) == {"stop": True})
    m.get_mailbox("rust").put("from python")


def typed(host, port, key):
    """Objects a Rust client made with typed elements: a struct crosses as a dict."""
    m = Named(address=(host, port), authkey=key)
    m.connect()
    q = m.get_tasks("typed-emails")
    task_id, payload, attempt = q.take(timeout=5)
    check("typed take", payload == {"to": "ada@x", "retries": 3, "cc": None})
    q.ack(task_id)
    q.push({"to": "bob@x", "retries": 1})  # cc left out: an Option is None
    try:
        q.push({"to": "eve@x", "retries": -1})
        check("typed misfit refused", False)
    except Exception as e:
        check("typed misfit refused", "Email.retries" in str(e) and "u32" in str(e))
    try:
        q.push({"to": "eve@x", "retries": 1, "bcc": "x"})
        check("typed unknown field refused", False)
    except Exception as e:
        check("typed unknown field refused", "bcc" in str(e))
    queue = m.get_queue("typed-points")
    check("typed queue", queue.get(timeout=5) == [1, -2])
    queue.put([3, 4])
    try:
        m.get_tasks("typed-jobs")
        check("enum refused", False)
    except Exception as e:
        check("enum refused", "enums" in str(e))


def take_and_die(host, port, key):
    m = Named(address=(host, port), authkey=key)
    m.connect()
    task_id, payload, attempt = m.get_tasks("jobs").take(timeout=10)
    print("holding", payload, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def main():
    scenario, host, port, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
    {"typeids": typeids, "named": named, "tasks": tasks, "take_and_die": take_and_die,
     "typed": typed}[scenario](
        host, port, key)


if __name__ == "__main__":
    main()
