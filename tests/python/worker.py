"""python/monogusa.py as a Python user runs it, for tests/python.rs.

usage: worker.py SCENARIO [ARGS...], with MONOGUSA_PYTHON_ADDRESS and MONOGUSA_AUTHKEY set.
Each check prints "ok NAME"; a failed one prints "FAILED NAME" and the script exits 1.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import monogusa  # noqa: E402

failed = False


def check(name, condition=True):
    global failed
    print(("ok " if condition else "FAILED ") + name, flush=True)
    failed = failed or not condition


def api():
    client = monogusa.Client.from_env()
    q = client.tasks("api-%d" % os.getpid())
    first = q.push({"to": "a@x"})
    rest = q.push_many([{"to": "b@x"}, {"to": "c@x"}])
    check("push", isinstance(first, int) and len(rest) == 2)
    task = q.take(5)
    check("take", task.id == first and task.payload == {"to": "a@x"} and task.attempt == 1)
    task_id, payload, attempt = task  # a task unpacks as a tuple
    q.extend(task_id, 30)
    q.ack(task_id)
    try:
        q.ack(task_id)
        check("ack twice refused", False)
    except KeyError:
        check("ack twice refused")
    second = q.take(5)
    check("fail retries", q.fail(second.id, "smtp down") == "retry")
    third = q.take(5)
    q.release(third.id)
    stats = q.stats()
    check("stats", stats["done"] == 1 and stats["ready"] + stats["delayed"] == 2)
    check("settings", q.settings()["lease_ms"] == 30000)
    check("join times out", q.join(0.1) is False)
    check("dead letters", q.dead_letters() == [] and q.requeue() == 0)
    check("take times out", client.tasks("empty").take(0.2) is None)
    bad = client.tasks("api-bad-%d" % os.getpid())
    bad.push({"to": "nobody"})
    task = bad.take(5)
    bad.fail_permanently(task.id, "no address")
    letters = bad.dead_letters()
    check("fail permanently", len(letters) == 1 and letters[0]["attempts"] == 1
          and letters[0]["reasons"] == ["no address"])
    check("join drained", bad.join(5) is True)
    deps = client.tasks("api-deps-%d" % os.getpid())
    parent = deps.push("parent")
    child = deps.push_after([parent], "child")
    check("push_after waits", deps.status(child) == "waiting")
    task = deps.take(5)
    deps.ack(task.id)
    check("push_after released", deps.status(child) == "ready" and deps.take(5).payload == "child")
    results = client.tasks("api-results-%d" % os.getpid())
    rid = results.push({"n": 2})
    check("status ready", results.status(rid) == "ready")
    task = results.take(5)
    results.ack(task.id, {"doubled": 4})
    check("result", results.status(rid) == "done" and results.result(rid, 1) == {"doubled": 4})
    try:
        results.result(123456789, 0.1)
        check("unknown result", False)
    except KeyError:
        check("unknown result")
    chords = client.tasks("api-chord-%d" % os.getpid())
    callback, members = chords.push_group([{"n": 1}, {"n": 2}, {"n": 3}], {"sum": True})
    check("push_group waits", len(members) == 3 and chords.status(callback) == "waiting")
    steps = chords.push_chain([{"n": 4}, {"add": 1}])

    def handle(payload):
        if "n" in payload:
            return payload["n"] * 10
        given = monogusa.inputs()
        if "sum" in payload:
            return sum(i["result"] for i in given)
        return given[0]["result"] + payload["add"]

    worker = monogusa.Worker(client, name="chords-%d" % os.getpid())
    stopper = threading.Thread(target=lambda: (chords.result(callback, 10),
                                               chords.result(steps[1], 10),
                                               worker.stop()))
    stopper.start()
    worker.run(chords, handle, threads=2, poll=0.1)
    stopper.join()
    check("push_group calls back with every result", chords.result(callback, 1) == 60)
    check("push_chain passes results on", chords.result(steps[1], 1) == 41)
    lenient, parts = chords.push_group([{"n": 5}, {"n": 6}], {"sum": True}, run_if_parents_die=True)
    first = chords.take(5)
    chords.fail_permanently(first.id, "no good")
    second = chords.take(5)
    chords.ack(second.id, 60)
    last = chords.take(5)
    given = chords.inputs(last.id)
    check("inputs of a callback that runs anyway", last.id == lenient
          and [i["status"] for i in given] == ["dead", "done"]
          and given[0]["reasons"] == ["no good"] and given[1]["result"] == 60
          and given[1]["id"] == parts[1])
    chords.ack(last.id)
    box = client.mailbox("inbox-%d" % os.getpid())
    box.send({"hello": [1, 2]})
    check("mailbox", box.recv(5) == {"hello": [1, 2]} and box.recv(0.1) is None)
    check("counter", client.counter("py-hits").add(2) >= 2)
    try:
        monogusa.Client("127.0.0.1:1", "x")
        check("unreachable", False)
    except monogusa.MonogusaError as e:
        check("unreachable", "127.0.0.1" in str(e))


def work(queue_name, threads):
    """Runs a Worker: each payload is a dict {"n": int, "sleep": secs, "fail": bool};
    done payloads are counted in the dict "py-done" (n -> times run)."""
    client = monogusa.Client.from_env()
    done = client.dict("py-done")
    queue = client.tasks(queue_name)

    slow = os.environ.get("PY_SLOW_FIRST") == "1"

    def handle(payload):
        print("start", payload["n"], flush=True)
        time.sleep(60 if slow else payload.get("sleep", 0))
        if payload.get("fail"):
            raise ValueError("bad payload %d" % payload["n"])
        if payload.get("perm"):
            raise monogusa.Permanent("hopeless payload %d" % payload["n"])
        done[str(payload["n"])] = done.get(str(payload["n"]), 0) + 1
        return payload["n"] * 10  # the task's result

    worker = monogusa.Worker(client)
    print("ready", worker.name, flush=True)
    ok, bad = worker.run(queue, handle, threads=int(threads), poll=0.1)
    print("stopped done=%d failed=%d" % (ok, bad), flush=True)


def main():
    scenario = sys.argv[1]
    {"api": api, "work": work}[scenario](*sys.argv[2:])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
