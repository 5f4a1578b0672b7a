"""The PyPI msgpack-rpc client (`msgpack-rpc-python` 0.4, over tornado and the old
`msgpack-python`, which packs bytes as str) against the msgpack-rpc door, for
tests/msgpack.rs.

usage: pypi_client.py SCENARIO HOST PORT KEY
"""
import hashlib
import hmac
import sys

import msgpackrpc
from msgpackrpc.error import RPCError


def text(value):
    """The old msgpack reads every str as bytes: decoded back, for printing."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [text(v) for v in value]
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in value.items()}
    return value


def main():
    scenario, host, port, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
    assert scenario == "tasks"
    # Skipping authentication: an error reply the client reads, not a silent close.
    skipper = msgpackrpc.Client(msgpackrpc.Address(host, port), timeout=10)
    try:
        skipper.call("counter.add", "hits", 1)
        print("unauthenticated: served")
    except RPCError as e:
        print("unauthenticated:", text(e.args[0])[0])
    skipper.close()

    rpc = msgpackrpc.Client(msgpackrpc.Address(host, port), timeout=10)
    nonce = rpc.call("monogusa.challenge")
    proof = hmac.new(key, b"monogusa msgpack proof" + nonce, hashlib.sha256).digest()
    print("proved:", rpc.call("monogusa.prove", proof))  # bytes sent as str by this client
    pushed = rpc.call("tasks.push", "pypi-jobs", [[{"to": "a@x"}, {}], [{"to": "b@x"}, {}]])
    print("pushed:", len(pushed))
    taken = text(rpc.call("tasks.take", "pypi-jobs", 2, 5000))
    print("taken:", sorted(t["payload"]["to"] for t in taken))
    print("acked:", rpc.call("tasks.ack", "pypi-jobs", [[t["id"], t["token"]] for t in taken]))
    print("done:", text(rpc.call("tasks.stats", "pypi-jobs"))["done"])

    wrong = msgpackrpc.Client(msgpackrpc.Address(host, port), timeout=10)
    nonce = wrong.call("monogusa.challenge")
    try:
        wrong.call("monogusa.prove", b"\x00" * 32)
        print("wrong proof: accepted")
    except RPCError as e:
        print("wrong proof:", text(e.args[0])[0])


if __name__ == "__main__":
    main()
