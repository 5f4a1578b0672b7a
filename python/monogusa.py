"""monogusa for Python: push tasks and run workers against a monogusa manager, with nothing
but the standard library (Python 3.8 and later).

It speaks to the manager's Python door (``monogusa serve --python ADDRESS``, or
``ManagerBuilder::python_listener`` with ``python_builtins``) through
``multiprocessing.managers``, so the worker side carries no dependency::

    import monogusa

    client = monogusa.Client.from_env()          # MONOGUSA_PYTHON_ADDRESS, MONOGUSA_AUTHKEY
    emails = client.tasks("emails")
    emails.push({"to": "ada@example.com"})

    def send(payload):
        print("sending to", payload["to"])     # raise to fail (and retry) the task

    monogusa.Worker(client, "mailer").run(emails, send, threads=4)

A task is leased to the thread that took it: ``ack``, ``fail``, ``extend`` and ``release``
go through that thread's connection (another thread's call raises ``KeyError``), and when
the connection closes (the process died) its leases go back to the queue at once.
"""

import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import namedtuple
from multiprocessing.managers import BaseManager
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__all__ = ["Client", "TaskQueue", "Task", "Mailbox", "Worker", "MonogusaError", "Permanent"]

ADDRESS_VAR = "MONOGUSA_PYTHON_ADDRESS"
AUTHKEY_VAR = "MONOGUSA_AUTHKEY"
WORKER_VAR = "MONOGUSA_WORKER"
HEARTBEAT_VAR = "MONOGUSA_HEARTBEAT_MS"
CONTROL_PREFIX = "monogusa.control:"

Address = Union[str, Tuple[str, int]]


class MonogusaError(Exception):
    """A configuration or connection problem, said in words."""


class Permanent(Exception):
    """Raised by a handler for a failure no retry would fix (bad input): the task goes to the
    dead letters at once, whatever attempts it had left."""


class _Manager(BaseManager):
    pass


for _typeid in ("get_tasks", "get_mailbox", "get_dict", "get_list", "get_queue",
                "get_counter", "get_value", "get_lock", "get_event", "get_workers"):
    _Manager.register(_typeid)


def parse_address(text: str) -> Address:
    """``host:port``, ``[v6]:port`` or ``unix:/path``, as the manager prints them."""
    if text.startswith("unix:"):
        return text[len("unix:"):]
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise MonogusaError("not an address (host:port or unix:/path): %r" % text)
    return (host.strip("[]"), int(port))


Task = namedtuple("Task", ["id", "payload", "attempt"])
Task.__doc__ = "A task taken from a queue: its id, its payload and which delivery this is (1 first)."


_current = threading.local()


def current_task() -> Optional[Task]:
    """The task a ``Worker``'s handler runs, called from that handler (``None`` elsewhere)."""
    current = getattr(_current, "task", None)
    return None if current is None else current[1]


def inputs() -> List[Dict[str, Any]]:
    """What the task a ``Worker``'s handler runs was given by the tasks it ran after (a
    chord's callback: every member's result, in order; a chain's step: the step before's),
    called from that handler. See ``TaskQueue.inputs``."""
    current = getattr(_current, "task", None)
    if current is None:
        raise MonogusaError("inputs() is for a Worker's handler, while it runs a task")
    queue, task = current
    return queue.inputs(task.id)


class Client:
    """A connection to a manager's Python door."""

    def __init__(self, address: Address, authkey: Union[str, bytes]):
        if isinstance(address, str):
            address = parse_address(address)
        if isinstance(authkey, str):
            authkey = authkey.encode()
        self.address = address
        self._manager = _Manager(address=address, authkey=authkey)
        try:
            self._manager.connect()
        except OSError as e:
            raise MonogusaError("cannot reach the manager's Python door at %r: %s" % (address, e))

    @classmethod
    def from_env(cls) -> "Client":
        """The manager a supervisor (``monogusa run``) or a parent process named in the
        environment: ``MONOGUSA_PYTHON_ADDRESS`` and ``MONOGUSA_AUTHKEY``."""
        address = os.environ.get(ADDRESS_VAR)
        key = os.environ.get(AUTHKEY_VAR)
        if not address or key is None:
            raise MonogusaError(
                "%s and %s must be set (monogusa run sets them when the manager has a "
                "Python door: monogusa serve --python ADDRESS)" % (ADDRESS_VAR, AUTHKEY_VAR))
        return cls(address, key)

    def tasks(self, name: str) -> "TaskQueue":
        """The durable task queue ``name`` (created with default settings on first use)."""
        return TaskQueue(self._manager.get_tasks(name), name)

    def mailbox(self, name: str) -> "Mailbox":
        """The mailbox ``name``: what a Rust ``client.mailbox(name)`` or ``Worker::mailbox``
        reads and sends."""
        return Mailbox(self._manager.get_mailbox(name), name)

    def dict(self, name: str) -> Any:
        """The shared dict ``name`` (a proxy: ``d[k] = v``, ``d.get(k)``, ...)."""
        return self._manager.get_dict(name)

    def list(self, name: str) -> Any:
        """The shared list ``name``."""
        return self._manager.get_list(name)

    def queue(self, name: str) -> Any:
        """The shared queue ``name`` (``put``, ``get(timeout=...)``, ``qsize``)."""
        return self._manager.get_queue(name)

    def counter(self, name: str) -> Any:
        """The shared counter ``name`` (``add(n)``, ``get()``)."""
        return self._manager.get_counter(name)

    def value(self, name: str) -> Any:
        """The shared value ``name`` (``get()``, ``set(v)``)."""
        return self._manager.get_value(name)

    def lock(self, name: str) -> Any:
        """The shared lock ``name`` (``acquire(timeout=...)``, ``release()``)."""
        return self._manager.get_lock(name)

    def event(self, name: str) -> Any:
        """The shared event ``name`` (``set()``, ``wait(timeout)``, ``is_set()``)."""
        return self._manager.get_event(name)


class TaskQueue:
    """A durable task queue: tasks are leased to the thread that takes them, acknowledged when
    done, retried with backoff when failed, and dead-lettered after their last attempt."""

    def __init__(self, proxy: Any, name: str):
        self._proxy = proxy
        self.name = name

    def push(self, payload: Any) -> int:
        """Adds a task; its id."""
        return self._proxy.push(payload)

    def push_many(self, payloads: List[Any]) -> List[int]:
        """Adds tasks in one call; their ids, in order."""
        return self._proxy.push_many(list(payloads))

    def push_after(self, parents: List[int], payload: Any) -> int:
        """Adds a task that runs once every task in ``parents`` is done (its status is
        "waiting" until then); if one of them dies, it dies too. Its id."""
        return self._proxy.push_after(list(parents), payload)

    def push_group(self, members: List[Any], callback: Any,
                   run_if_parents_die: bool = False) -> Tuple[int, List[int]]:
        """Adds ``members`` and a ``callback`` task in one commit: the callback runs once
        every member is done (a chord), exactly once, and reads their results in order with
        ``inputs(id)``. If a member dies the callback dies too, unless ``run_if_parents_die``.
        ``(callback id, member ids)``."""
        callback_id, ids = self._proxy.push_group(list(members), callback, run_if_parents_die)
        return callback_id, list(ids)

    def push_chain(self, steps: List[Any]) -> List[int]:
        """Adds ``steps`` in one commit, each to run once the one before is done (its
        ``inputs`` are that step's result). Their ids."""
        return list(self._proxy.push_chain(list(steps)))

    def inputs(self, task_id: int) -> List[Dict[str, Any]]:
        """What the tasks ``task_id`` runs after ended with, in order: a dict each, with
        ``id``, ``status`` ("done", "dead" or "pending") and ``result`` or ``reasons``."""
        return self._proxy.inputs(task_id)

    def take(self, timeout: Optional[float] = None) -> Optional[Task]:
        """The next task, leased to this thread, waiting up to ``timeout`` seconds (``None``:
        as long as it takes); ``None`` if none came."""
        taken = self._proxy.take(timeout)
        return None if taken is None else Task(*taken)

    def ack(self, task_id: int, result: Any = None) -> None:
        """The task is done: it leaves the queue, and the manager keeps ``result`` (any plain
        value) for a day, for ``result(id)``. ``RuntimeError`` if its lease ran out (it may be
        running elsewhere), ``KeyError`` if this thread holds no lease on it."""
        if result is None:
            self._proxy.ack(task_id)
        else:
            self._proxy.ack(task_id, result)

    def status(self, task_id: int) -> str:
        """Where a task is: "ready", "delayed", "leased", "done", "dead" or "unknown"."""
        return self._proxy.status(task_id)

    def result(self, task_id: int, timeout: Optional[float] = None) -> Any:
        """A task's result (``None`` after a plain ack), waiting up to ``timeout`` seconds:
        ``TimeoutError`` if it did not finish, ``RuntimeError`` if it is dead (with its
        reasons), ``KeyError`` if it is not known."""
        return self._proxy.result(task_id, timeout)

    def fail(self, task_id: int, reason: str = "") -> str:
        """The task failed: ``"retry"`` (it runs again after a backoff) or ``"dead"`` (its
        attempts are spent: it is in the dead letters with its reasons)."""
        return self._proxy.fail(task_id, reason)

    def fail_permanently(self, task_id: int, reason: str = "") -> None:
        """The task failed and no retry would fix it: to the dead letters at once."""
        self._proxy.fail_permanently(task_id, reason)

    def extend(self, task_id: int, seconds: float) -> None:
        """Keeps the task's lease ``seconds`` longer from now."""
        self._proxy.extend(task_id, seconds)

    def release(self, task_id: int) -> None:
        """Gives the task back untouched (it does not count as an attempt)."""
        self._proxy.release(task_id)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits up to ``timeout`` seconds (``None``: as long as it takes) until no task is
        ready, delayed or leased; whether the queue drained."""
        return self._proxy.join(timeout)

    def stats(self) -> Dict[str, int]:
        """How many tasks are ready, delayed, leased, dead and done."""
        return self._proxy.stats()

    def settings(self) -> Dict[str, int]:
        """The queue's lease (``lease_ms``), attempts and backoff."""
        return self._proxy.settings()

    def dead_letters(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The first ``limit`` dead letters: ``id``, ``attempts``, ``reasons``, ``payload``."""
        return self._proxy.dead_letters(limit)

    def requeue(self, task_id: Optional[int] = None) -> int:
        """Moves dead letters back to the queue (one, or all); how many moved."""
        return self._proxy.requeue(task_id)


class Mailbox:
    """A mailbox: messages to one name, read by whoever holds that name."""

    def __init__(self, proxy: Any, name: str):
        self._proxy = proxy
        self.name = name

    def send(self, message: Any) -> None:
        """Sends ``message`` (any plain value)."""
        self._proxy.put(message)

    def recv(self, timeout: Optional[float] = None) -> Any:
        """The next message, waiting up to ``timeout`` seconds; ``None`` if none came."""
        import queue
        try:
            return self._proxy.get(True, timeout)
        except queue.Empty:
            return None


class Worker:
    """A worker process: takes tasks from a queue on ``threads`` threads, runs ``handler`` on
    each payload, acknowledges it when the handler returns and fails it (with the traceback as
    the reason) when it raises; keeps the lease of a long task alive; on SIGTERM or SIGINT (a
    supervisor's stop) stops taking, finishes what it holds, and returns. A second SIGINT
    exits at once. Started by a supervisor (``MONOGUSA_WORKER`` names it), it also reads its
    control mailbox, where the supervisor's stop message arrives (with SIGTERM after it).

    While it runs it is in the manager's worker registry under ``name`` (by default the name
    its supervisor gave it, ``MONOGUSA_WORKER``), heartbeating every ``heartbeat`` seconds
    (``MONOGUSA_HEARTBEAT_MS`` from a supervisor, else 5) with what it has done and holds, so
    ``monogusa stat`` and the dashboard show it as they show a Rust worker."""

    def __init__(self, client: Client, name: Optional[str] = None,
                 heartbeat: Optional[float] = None):
        self.client = client
        self.name = name or os.environ.get(WORKER_VAR) or "%s-%d" % (
            socket.gethostname(), os.getpid())
        if heartbeat is None:
            heartbeat = int(os.environ.get(HEARTBEAT_VAR, "5000")) / 1000.0
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_hand = set()  # ids of the tasks being worked on
        self._workers = None  # the registry's proxy, made at the first report
        self.done = 0
        self.failed = 0

    def stop(self) -> None:
        """Asks the worker to stop taking tasks (what it holds is finished)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop.is_set()

    def run(self, queue: TaskQueue, handler: Callable[[Any], Any], threads: int = 1,
            poll: float = 0.5) -> Tuple[int, int]:
        """Runs until a stop; how many tasks were done and failed."""
        restore = self._handle_signals()
        self._report(state="Running", pid=os.getpid(), host=socket.gethostname(),
                     lost_after_ms=int(self.heartbeat * 3000) + 1000)
        finished = threading.Event()
        beats = threading.Thread(target=self._heartbeats, args=(finished,),
                                 name="%s-heartbeat" % self.name, daemon=True)
        beats.start()
        try:
            loops = [threading.Thread(target=self._loop, args=(queue, handler, poll),
                                      name="%s-%d" % (self.name, n), daemon=True)
                     for n in range(max(1, threads))]
            for loop in loops:
                loop.start()
            for loop in loops:
                while loop.is_alive():
                    loop.join(0.2)  # a bare join would keep signals from being handled
        finally:
            restore()
            finished.set()
            beats.join()
            self._report(state="Stopped", in_hand=[])
        return self.done, self.failed

    def _report(self, **fields: Any) -> None:
        """Merges ``fields`` into this worker's registry entry; a manager that is slow or gone
        only costs this heartbeat."""
        with self._lock:
            report = {"name": self.name, "heartbeat": True, "done": self.done,
                      "failed": self.failed, "in_hand": [str(i) for i in self._in_hand]}
        report.update(fields)
        try:
            self._registry().report(report)
        except Exception:  # the next heartbeat tries again
            pass

    def _registry(self) -> Any:
        # One proxy: each thread that calls it gets a connection of its own.
        with self._lock:
            if self._workers is None:
                self._workers = self.client._manager.get_workers()
            return self._workers

    def _heartbeats(self, finished: threading.Event) -> None:
        """Heartbeats, and the supervisor's stop message when supervised: the supervisor
        made the control mailbox before starting this process."""
        control = None
        if os.environ.get(WORKER_VAR) == self.name:
            try:
                control = self.client.mailbox(CONTROL_PREFIX + self.name)
            except Exception:  # a manager without it: signals still stop the worker
                control = None
        said_stopping = False
        next_beat = time.monotonic() + self.heartbeat
        while not finished.is_set():
            if self._stop.is_set() and not said_stopping:
                said_stopping = True
                self._report(state="Stopping")
            wait = max(0.0, min(next_beat - time.monotonic(), 0.5))
            message = None
            if control is not None and not self._stop.is_set():
                try:
                    message = control.recv(wait)
                except Exception:
                    finished.wait(wait)
            else:
                finished.wait(wait)
            if isinstance(message, dict) and message.get("stop"):
                self._stop.set()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.heartbeat
                if not self._stop.is_set():
                    self._report()

    def _handle_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}

        def on_signal(signum: int, frame: Any) -> None:
            if self._stop.is_set() and signum == signal.SIGINT:
                os._exit(130)
            self._stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return restore

    def _loop(self, queue: TaskQueue, handler: Callable[[Any], Any], poll: float) -> None:
        # This thread's proxy connection holds the leases it takes; the handler runs on a
        # thread of its own so that this one can extend them while it works.
        lease = queue.settings()["lease_ms"] / 1000.0
        while not self._stop.is_set():
            task = queue.take(poll)
            if task is None:
                continue
            with self._lock:
                self._in_hand.add(task.id)
            outcome: Dict[str, Any] = {}
            finished = threading.Event()

            def work(payload: Any = task.payload, task: Task = task) -> None:
                _current.task = (queue, task)
                try:
                    outcome["result"] = handler(payload)
                except Permanent as e:
                    outcome["error"] = "%s" % e
                    outcome["permanent"] = True
                except BaseException:  # the task's failure, not the worker's
                    outcome["error"] = traceback.format_exc()
                finally:
                    finished.set()

            threading.Thread(target=work, name="%s-task" % self.name, daemon=True).start()
            while not finished.wait(lease / 3):
                queue.extend(task.id, lease)
            if "error" in outcome:
                if outcome.get("permanent"):
                    queue.fail_permanently(task.id, outcome["error"][-4000:])
                else:
                    queue.fail(task.id, outcome["error"][-4000:])
                with self._lock:
                    self.failed += 1
                    self._in_hand.discard(task.id)
            else:
                queue.ack(task.id, outcome.get("result"))
                with self._lock:
                    self.done += 1
                    self._in_hand.discard(task.id)


def main(argv: List[str]) -> int:
    """``python monogusa.py ADDRESS KEY QUEUE PAYLOAD...``: pushes each payload (as text)."""
    if len(argv) < 4:
        sys.stderr.write(main.__doc__ + "\n")
        return 2
    queue = Client(argv[0], argv[1]).tasks(argv[2])
    for payload in argv[3:]:
        print(queue.push(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
