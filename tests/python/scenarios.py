"""Python clients, written as a Python user writes them, for tests/python.rs.

usage: scenarios.py SCENARIO HOST PORT KEY [ARGS...]
"""
import os
import queue
import sys
from multiprocessing.connection import Client
from multiprocessing.managers import BaseManager, RemoteError, ValueProxy, dispatch


class Manager(BaseManager):
    pass


for name in ["get", "put", "inc", "fail", "get_queue", "get_dict", "get_lock",
             "get_event", "get_list", "get_counter", "divide", "big", "tally"]:
    Manager.register(name)
# As SyncManager registers its Value: the proxy type gives `.value`.
Manager.register("get_value", proxytype=ValueProxy)


def connect(host, port, key):
    # Port 0 means HOST is a Unix socket's path.
    m = Manager(address=host if port == 0 else (host, port), authkey=key)
    m.connect()
    return m


def remote_queue(m):
    # The docs' "remote manager" pattern: q = m.get_queue(); q.put(x); q.get().
    q = m.get_queue()
    print("got", q.get(timeout=10))  # the Rust client put 1 first
    q.put(7)
    q.put(8)
    print("then", q.get(), q.get())
    try:
        q.get_nowait()
    except queue.Empty:
        print("empty raised")
    q.put(9)  # for the Rust client
    # A method Python's queues lack, as the kind declares it: the element typed as Rust's.
    print("peeked", q.peek(), q.qsize())


def shared_dict(m):
    d = m.get_dict()
    print("from rust:", d["rust"])  # put there by the Rust client
    d["python"] = 42
    d.update({"a": 1, "b": 2})
    print("len:", len(d), "keys:", sorted(d.keys()))
    try:
        d["missing"]
    except KeyError as e:
        print("KeyError raised:", e)
    print("get default:", d.get("missing", -1))


def shared_lock(m, marker):
    lock = m.get_lock()
    assert lock.acquire(timeout=10)
    open(marker, "w").close()       # the Rust side now sees the lock held
    ev = m.get_event()
    assert ev.wait(20), "the Rust side never set the event"
    lock.release()
    print("released")


def errors(m, key):
    try:
        m.fail("boom")
    except RemoteError as e:
        print("RemoteError raised:", "boom" in str(e))
    try:
        m.divide(1, 0)
    except RemoteError as e:
        print("RemoteError raised:", "zero" in str(e))
    try:
        m.divide("x", 1)
    except RemoteError as e:
        print("type mismatch:", "TypeError" in str(e) or "expected" in str(e))
    v = m.get_value()
    v.set("hello")
    print("value:", v.get(), v.value)
    c = m.get_counter()
    print("counter:", c.add(5), c.get())
    lst = m.get_list()
    lst.append("x")
    lst.extend(["y", "z"])
    print("list:", len(lst), lst[0], lst[-1])
    # The server-level calls a manager's own helpers make.
    print("objects:", m._number_of_objects() >= 1, "refcount=" in m._debug_info())
    # A proxy rebuilt from a bare Token asks the server for its methods (get_methods).
    from multiprocessing.managers import AutoProxy
    kept = m.get("uname_key_absent")  # alive while the rebuilt proxy is used
    token = kept._token
    rebuilt = AutoProxy(token, "pickle", manager=m, authkey=key)
    print("rebuilt:", rebuilt._getvalue())


def shutdown(host, port, key):
    conn = Client((host, port), authkey=key)
    dispatch(conn, None, "shutdown")
    print("shutdown sent")


def evil(host, port, key, marker):
    conn = Client((host, port), authkey=key)
    # os.system('touch MARKER') as a pickle, by hand (protocol 0).
    payload = b"cos\nsystem\n(S'touch " + marker.encode() + b"'\ntR."
    conn.send_bytes(payload)
    kind, result = conn.recv()
    print("reply:", kind, "os.system" in result)


def memo_bomb():
    import pickle
    x = []
    for _ in range(30):
        x = [x, x]
    return pickle.dumps((None, "dummy", (x,), {}), protocol=2)


def hostile_bytes(host, port, key, which):
    conn = Client((host, port), authkey=key)
    bodies = {
        "truncated": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00(N\x8c\x05dum",
        "memo": b"\x80\x04h\x07.",
        "deep": b"\x80\x04" + b"]" * 100000 + b"a" * 99999 + b".",
        "garbage": b"\xde\xad\xbe\xef" * 10,
        # The audit's memo bomb: 30 levels, each referring twice to the one below (2^30
        # lists once expanded), as the arguments of a call.
        "memo_bomb": memo_bomb(),
        # 8 MiB of EMPTY_LIST: 60 times its size in nodes, were it not for the budget.
        "empty_lists": b"\x80\x02" + b"]" * (8 << 20) + b".",
    }
    conn.send_bytes(bodies[which])
    kind, result = conn.recv()
    print("reply:", kind)


def raw_length(host, port, key, which):
    conn = Client((host, port), authkey=key)
    sock = conn  # a Connection: write a header by hand
    if which == "2gib":
        sock._send(b"\x7f\xff\xff\xff" + b"x" * 100)
    else:
        sock._send(b"\xff\xff\xff\xff" + (1 << 40).to_bytes(8, "big"))
    try:
        print("reply:", conn.recv())
    except (EOFError, ConnectionError, OSError):
        print("closed")


def wrong_key(host, port):
    import time
    from multiprocessing import AuthenticationError
    started = time.monotonic()
    try:
        m = Manager(address=(host, port), authkey=b"not the key")
        m.connect()
        print("connected?!")
    except AuthenticationError as e:
        print("AuthenticationError")
    print("answered in ms", int((time.monotonic() - started) * 1000))


def main():
    scenario, host, port, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
    rest = sys.argv[5:]
    if scenario == "remote_queue":
        remote_queue(connect(host, port, key))
    elif scenario == "shared_dict":
        shared_dict(connect(host, port, key))
    elif scenario == "shared_lock":
        shared_lock(connect(host, port, key), rest[0])
    elif scenario == "errors":
        errors(connect(host, port, key), key)
    elif scenario == "shutdown":
        shutdown(host, port, key)
    elif scenario == "evil":
        evil(host, port, key, rest[0])
    elif scenario == "hostile":
        hostile_bytes(host, port, key, rest[0])
    elif scenario == "length":
        raw_length(host, port, key, rest[0])
    elif scenario == "wrong_key":
        wrong_key(host, port)
    elif scenario == "busy":
        # Authenticated connections up to the cap, then one more: told why, not dropped.
        from multiprocessing.connection import Client
        held = [Client((host, port), authkey=key) for _ in range(int(rest[0]))]
        for c in held:
            # A reply means the manager counts it authenticated (the client's last handshake
            # message may still be on its way when Client() returns).
            c.send((None, "accept_connection", ("held",), {}))
            assert c.recv()[0] == "#RETURN"
        try:
            Client((host, port), authkey=key)
            print("admitted past the cap?!")
        except Exception as e:
            print("refused:", "monogusa: busy" in str(e), str(e)[:200])
        del held
    elif scenario == "service":
        # A typeid naming an object the manager serves: its #[service] methods.
        tally = connect(host, port, key).tally()
        print("tally:", tally.add(5), tally.add(2), tally.total())
        try:
            tally.add("x")
        except Exception as e:
            print("bad argument:", "BadArguments" in str(e) or "expected" in str(e))
        try:
            tally.explode()
            print("exploded quietly?!")
        except Exception as e:
            print("panicked:", "panicked" in str(e), "after:", tally.total())
    elif scenario == "dummy":
        connect(host, port, key)
        print("ok")
    elif scenario == "hoard":
        # Result proxies of a 1 MiB value, never released.
        m = connect(host, port, key)
        held = []
        try:
            for _ in range(64):
                held.append(m.big())
            print("held all", len(held))
        except Exception as e:
            print("refused after", len(held), type(e).__name__, "LimitExceeded" in str(e))
        del held
    else:
        raise SystemExit("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
