"""A msgpack-rpc client written on a plain socket with the `msgpack` package from PyPI.

usage: client.py SCENARIO HOST PORT KEY
"""
import hashlib
import hmac
import os
import signal
import socket
import sys
from multiprocessing import Process

import msgpack


class Rpc:
    def __init__(self, host, port, key=None):
        if port == 0:  # HOST is a Unix socket's path
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(host)
        else:
            self.sock = socket.create_connection((host, port))
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.next_id = 0
        if key is not None:
            # Authentication: the nonce, then HMAC-SHA256(key, label + nonce).
            nonce = self.call("monogusa.challenge")
            proof = hmac.new(key, b"monogusa msgpack proof" + nonce, hashlib.sha256).digest()
            assert self.call("monogusa.prove", proof) is True

    def send(self, method, *params):
        self.next_id += 1
        self.sock.sendall(msgpack.packb([0, self.next_id, method, list(params)]))
        return self.next_id

    def notify(self, method, *params):
        self.sock.sendall(msgpack.packb([2, method, list(params)]))

    def receive(self):
        while True:
            for message in self.unpacker:
                return message
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the manager closed the connection")
            self.unpacker.feed(data)

    def call(self, method, *params):
        msgid = self.send(method, *params)
        kind, got, error, result = self.receive()
        assert kind == 1 and got == msgid, (kind, got, msgid)
        if error is not None:
            raise RuntimeError(error)
        return result


def counter_worker(host, port, key):
    rpc = Rpc(host, port, key)
    for _ in range(1000):
        rpc.call("counter.add", "hits", 1)


def main():
    scenario, host, port, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
    if scenario == "calls":
        rpc = Rpc(host, port, key)
        print("echo:", rpc.call("echo", "hello"))
        print("add:", rpc.call("add", 2, 3))
        print("point:", rpc.call("point", {"x": 1, "y": 2}))
        print("bytes:", rpc.call("length", b"\x00" * 300))
        # 100 calls in flight, replies matched by msgid.
        ids = [rpc.send("add", i, 1) for i in range(100)]
        results = {}
        for _ in ids:
            _, msgid, error, result = rpc.receive()
            results[msgid] = result
        print("pipelined ok:", all(results[m] == i + 1 for i, m in enumerate(ids)))
        # A call that blocks does not hold up the next: the reply comes out of order.
        slow = rpc.send("sleep_ms", 300)
        fast = rpc.send("echo", "fast")
        first = rpc.receive()
        second = rpc.receive()
        print("out of order:", first[1] == fast and second[1] == slow)
        rpc.notify("counter.add", "notified", 5)
        print("notified:", rpc.call("counter.get", "notified"))
        rpc.call("queue.put", "jobs", {"task": [1, 2]})
        print("queue:", rpc.call("queue.get", "jobs", 1000))
        rpc.call("dict.insert", "d", "k", 7)
        print("dict:", rpc.call("dict.get", "d", "k"), rpc.call("dict.items", "d"))
        for method, params in [("nope", []), ("add", ["x", 1]), ("fail", ["why"]), ("boom", [])]:
            try:
                rpc.call(method, *params)
            except RuntimeError as e:
                print("error:", e.args[0][0])
        print("describe:", "counter.add" in rpc.call("monogusa.describe")["objects"]["counter"])
    elif scenario == "worker":
        rpc = Rpc(host, port, key)
        rpc.call("workers.report", {"name": "mp-worker", "heartbeat": True, "pid": 4242,
                                    "host": "elsewhere", "state": "Running", "done": 3})
        listed = rpc.call("workers.list")
        print("listed:", [w["name"] for w in listed if w["name"] == "mp-worker"])
    elif scenario == "results":
        rpc = Rpc(host, port, key)
        [[rid, _]] = rpc.call("tasks.push", "mp-results", [[{"n": 3}, {}]])
        print("status:", rpc.call("tasks.status", "mp-results", rid))
        [t] = rpc.call("tasks.take", "mp-results", 1, 5000)
        print("leased:", rpc.call("tasks.status", "mp-results", rid))
        print("completed:", rpc.call("tasks.complete", "mp-results", [[t["id"], t["token"], {"tripled": 9}]]))
        print("outcome:", rpc.call("tasks.outcome", "mp-results", rid, 1000))
        # A chord: two members and a callback after both, in one commit.
        ids = rpc.call("tasks.push_graph", "mp-chord", [
            {"payload": 2}, {"payload": 3},
            {"payload": "sum", "after": [{"Node": 0}, {"Node": 1}]},
        ])
        print("graph:", [new for _, new in ids], rpc.call("tasks.status", "mp-chord", ids[2][0]))
        for t in rpc.call("tasks.take", "mp-chord", 2, 5000):
            rpc.call("tasks.complete", "mp-chord", [[t["id"], t["token"], t["payload"] * 10]])
        [cb] = rpc.call("tasks.take", "mp-chord", 1, 5000)
        print("inputs:", [o for _, o in rpc.call("tasks.inputs", "mp-chord", cb["id"])])
    elif scenario == "typed":
        rpc = Rpc(host, port, key)
        taken = rpc.call("tasks.take", "typed-emails", 1, 5000)
        print("typed take:", taken[0]["payload"])
        rpc.call("tasks.ack", "typed-emails", [[taken[0]["id"], taken[0]["token"]]])
        rpc.call("tasks.push", "typed-emails", [[{"to": "bob@x", "retries": 1}, {}]])
        try:
            rpc.call("tasks.push", "typed-emails", [[{"to": 7, "retries": 1}, {}]])
            print("misfit: accepted")
        except RuntimeError as e:
            print("misfit:", e.args[0][0], "Email.to" in e.args[0][1])
    elif scenario == "kinds":
        rpc = Rpc(host, port, key)
        described = rpc.call("monogusa.describe")
        wanted = ["push", "take", "ack", "fail", "extend", "stats", "dead", "requeue"]
        print("described:", all("tasks." + m in described["objects"]["tasks"] for m in wanted))
        print("services:", sorted(described["services"]["tally"]))
        pushed = rpc.call("tasks.push", "emails", [[{"to": "a@x"}, {}], [{"to": "b@x"}, {"max_attempts": 1}]])
        print("pushed:", [new for _, new in pushed])
        taken = rpc.call("tasks.take", "emails", 2, 1000)
        print("taken:", sorted(t["payload"]["to"] for t in taken), [t["attempt"] for t in taken])
        a = next(t for t in taken if t["payload"]["to"] == "a@x")
        b = next(t for t in taken if t["payload"]["to"] == "b@x")
        print("extended:", rpc.call("tasks.extend", "emails", a["id"], a["token"], 60000) > a["lease_until"] - 1)
        print("acked:", rpc.call("tasks.ack", "emails", [[a["id"], a["token"]]]))
        print("failed:", rpc.call("tasks.fail", "emails", b["id"], b["token"], "bad address"))
        try:
            rpc.call("tasks.ack", "emails", [[a["id"], a["token"]]], "extra")
        except RuntimeError as e:
            print("extra argument:", e.args[0][0])
        stats = rpc.call("tasks.stats", "emails")
        print("stats:", stats["done"], stats["dead"], stats["ready"])
        dead = rpc.call("tasks.dead", "emails", 0, 10)
        print("dead:", dead[0]["reasons"], dead[0]["payload"])
        print("requeued:", rpc.call("tasks.requeue", "emails", None), rpc.call("tasks.stats", "emails")["ready"])
        rpc.call("semaphore.open", "s", 2)
        print("semaphore:", rpc.call("semaphore.acquire", "s", 0), rpc.call("semaphore.available", "s"))
        rpc.call("semaphore.release", "s")
        try:
            rpc.call("barrier.wait", "nobody", 10)
        except RuntimeError as e:
            print("barrier:", e.args[0][0])
        rpc.call("barrier.open", "b", 1)
        print("barrier wait:", rpc.call("barrier.wait", "b", 1000))
        rpc.call("event.set", "e")
        print("event:", rpc.call("event.is_set", "e"))
        print("tally:", rpc.call("tally.add", 5), rpc.call("tally.add", 2), rpc.call("tally.total"))
        rpc.call("queue.put", "peeked", "first")
        print("peek:", rpc.call("queue.peek", "peeked"), rpc.call("queue.len", "peeked"))
        rpc.call("mailbox.send", "resizer-1", {"stop": True})
        print("mailbox:", rpc.call("mailbox.recv", "resizer-1", 1000), rpc.call("mailbox.recv", "resizer-1", 0))
        rpc.call("mailbox.send", "resizer-2", "for rust")
        try:
            rpc.call("tasks.nope", "emails")
        except RuntimeError as e:
            print("unknown method:", e.args[0][0])
    elif scenario == "take_and_die":
        rpc = Rpc(host, port, key)
        taken = rpc.call("tasks.take", "jobs", 1, 5000)
        print("holding", taken[0]["payload"], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    elif scenario == "busy":
        held = [Rpc(host, port, key) for _ in range(2)]
        rpc = Rpc(host, port)
        kind, msgid, error, result = rpc.receive()
        print("refused:", kind, msgid, error[0])
        del held
    elif scenario == "counter":
        procs = [Process(target=counter_worker, args=(host, port, key)) for _ in range(5)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            assert p.exitcode == 0
        print("count:", Rpc(host, port, key).call("counter.get", "hits"))
    elif scenario == "echo":
        print("echo:", Rpc(host, port, key).call("echo", "over tcp"))
    elif scenario == "unix":
        print("echo:", Rpc(host, port, key).call("echo", "over unix"))
    elif scenario == "stall":
        rpc = Rpc(host, port, key)
        rpc.sock.sendall(b"\x94\x00")  # the start of a request, never finished
        try:
            rpc.receive()
            print("answered?!")
        except (EOFError, ConnectionError):
            print("cut")
    elif scenario == "unauthenticated":
        rpc = Rpc(host, port)
        try:
            rpc.call("echo", "x")
        except RuntimeError as e:
            print("refused:", e.args[0][0])
        try:
            rpc.call("echo", "x")
            print("still open?!")
        except (EOFError, ConnectionError):
            print("closed")
    elif scenario == "wrong_proof":
        rpc = Rpc(host, port)
        rpc.call("monogusa.challenge")
        try:
            rpc.call("monogusa.prove", b"\x00" * 32)
        except RuntimeError as e:
            print("refused:", e.args[0][0])
    elif scenario == "reused_msgid":
        rpc = Rpc(host, port, key)
        rpc.sock.sendall(msgpack.packb([0, 77, "sleep_ms", [300]]) + msgpack.packb([0, 77, "echo", ["x"]]))
        first = rpc.receive()
        second = rpc.receive()
        print("reused:", first[2] and first[2][0], second[3])
    elif scenario == "hostile":
        for name, data in [
            ("garbage", b"\xc1\xc1\xc1"),
            ("bin32", b"\xc6\xff\xff\xff\xff"),
            ("deep", b"\x91" * 100000),
        ]:
            rpc = Rpc(host, port, key)
            rpc.sock.sendall(data)
            try:
                rpc.receive()
                print(name, "answered?!")
            except (EOFError, ConnectionError):
                print(name, "closed")
        print("after:", Rpc(host, port, key).call("echo", "alive"))


if __name__ == "__main__":
    main()
