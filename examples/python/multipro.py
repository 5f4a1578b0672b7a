"""Processes that talk to each other by name, and identical workers on one queue, all in
Python with the standard library, through a monogusa manager's Python door.

    monogusa serve --authkey-file key --python 127.0.0.1:4344 &
    MONOGUSA_PYTHON_ADDRESS=127.0.0.1:4344 MONOGUSA_AUTHKEY=$(cat key) \
        python3 examples/python/multipro.py [TASKS]

Part 1: a main process and two *different* workers (a greeter and a tally), each with a
mailbox of its own name, handling messages by their "type". Part 2: three *identical*
workers taking TASKS tasks (default 20) from one durable queue. SIGINT or SIGTERM to the
main process ends everything cleanly: the workers finish the task in hand and exit.
"""
import multiprocessing
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import monogusa  # noqa: E402

RUN = "%d" % os.getpid()  # this run's names, so runs side by side do not mix


def greeter(run):
    """Handles "hello" (answers the sender) and "stop"."""
    client = monogusa.Client.from_env()
    inbox = client.mailbox("greeter-" + run)
    while True:
        message = inbox.recv(1)
        if message is None:
            continue
        if message["type"] == "hello":
            client.mailbox(message["reply_to"]).send(
                {"type": "greeting", "text": "hello, %s, from greeter" % message["name"]})
        elif message["type"] == "stop":
            return


def tally(run):
    """Handles "add" (keeps a total), "report" (answers it) and "stop"."""
    client = monogusa.Client.from_env()
    inbox = client.mailbox("tally-" + run)
    total = 0
    while True:
        message = inbox.recv(1)
        if message is None:
            continue
        if message["type"] == "add":
            total += message["n"]
        elif message["type"] == "report":
            client.mailbox(message["reply_to"]).send({"type": "total", "total": total})
        elif message["type"] == "stop":
            return


def messages(context):
    client = monogusa.Client.from_env()
    me = "main-" + RUN
    workers = [context.Process(target=f, args=(RUN,), name=f.__name__) for f in (greeter, tally)]
    for worker in workers:
        worker.start()
    greeter_box, tally_box = client.mailbox("greeter-" + RUN), client.mailbox("tally-" + RUN)
    inbox = client.mailbox(me)
    greeter_box.send({"type": "hello", "name": "main", "reply_to": me})
    for n in range(1, 11):
        tally_box.send({"type": "add", "n": n})
    tally_box.send({"type": "report", "reply_to": me})
    for _ in range(2):
        reply = inbox.recv(30)
        if reply is None:
            raise SystemExit("no reply from the workers")
        if reply["type"] == "greeting":
            print("main got:", reply["text"], flush=True)
        elif reply["type"] == "total":
            print("main got: total", reply["total"], flush=True)
    for box in (greeter_box, tally_box):
        box.send({"type": "stop"})
    for worker in workers:
        worker.join()
        print("%s exited %d" % (worker.name, worker.exitcode), flush=True)


def resize(path):
    time.sleep(0.05)  # the work
    return path


def identical_worker(queue_name, number):
    client = monogusa.Client.from_env()
    done, failed = monogusa.Worker(client, "resizer-%d" % number).run(
        client.tasks(queue_name), resize)
    print("resizer-%d stopped after %d tasks" % (number, done), flush=True)


def tasks(context, count):
    client = monogusa.Client.from_env()
    queue_name = "resize-" + RUN
    queue = client.tasks(queue_name)
    for start in range(0, count, 1000):  # a push takes at most 10,000 tasks
        queue.push_many(["img-%d.png" % n for n in range(start, min(count, start + 1000))])
    workers = [context.Process(target=identical_worker, args=(queue_name, n))
               for n in range(1, 4)]
    for worker in workers:
        worker.start()
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and queue.stats()["done"] < count:
        time.sleep(0.05)
    print("main: %s, stopping the workers" % (
        "signal %d" % stopping[0] if stopping else "all tasks done"), flush=True)
    for worker in workers:
        worker.terminate()  # SIGTERM: a Worker finishes its task in hand and returns
    for worker in workers:
        worker.join()
    print("main: %d done, %d left" % (queue.stats()["done"], queue.stats()["ready"]), flush=True)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    # A process started fresh (not forked) opens its own connections.
    context = multiprocessing.get_context("spawn")
    messages(context)
    tasks(context, count)


if __name__ == "__main__":
    main()
