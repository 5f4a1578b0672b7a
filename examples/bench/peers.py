"""Peers' workflows for the harness (examples/bench/peers.rs): a Celery chord and an RQ job
that depends on many, on the redis-server the harness started.

usage: peers.py celery|rq REDIS_URL N WORKERS    prints tasks per second (N members and the
                                                  callback, from the push to the callback done)
       peers.py celery-worker|rq-worker REDIS_URL WORKERS   (run by the modes above)
"""
import os
import subprocess
import sys
import time


def noop(i):
    return i


def total(results):
    return sum(results)


def celery_app(url):
    from celery import Celery
    app = Celery("peers", broker=url, backend=url)
    # Acked after the task ran, as monogusa's tasks are; results kept in Redis.
    app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1,
                    worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
    app.task(name="peers.noop")(noop)
    app.task(name="peers.total")(total)
    return app


def spawn(mode, url, workers):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), mode, url, str(workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_celery(url, n, workers):
    from celery import chord
    app = celery_app(url)
    worker = spawn("celery-worker", url, workers)
    try:
        # Warm: the workers are up when a task comes back.
        app.tasks["peers.noop"].delay(0).get(timeout=120)
        started = time.monotonic()
        result = chord(app.tasks["peers.noop"].s(i) for i in range(n))(app.tasks["peers.total"].s())
        assert result.get(timeout=600) == n * (n - 1) // 2
        return (n + 1) / (time.monotonic() - started)
    finally:
        worker.terminate()
        worker.wait()


def run_rq(url, n, workers):
    from redis import Redis
    from rq import Queue
    connection = Redis.from_url(url)
    queue = Queue("peers", connection=connection)
    procs = [spawn("rq-worker", url, 1) for _ in range(workers)]
    try:
        warm = queue.enqueue("peers.noop", 0)
        while warm.get_status(refresh=True) != "finished":
            time.sleep(0.01)
        started = time.monotonic()
        jobs = [queue.enqueue("peers.noop", i) for i in range(n)]
        callback = queue.enqueue("peers.total", [], depends_on=jobs)
        while callback.get_status(refresh=True) != "finished":
            time.sleep(0.01)
        return (n + 1) / (time.monotonic() - started)
    finally:
        for p in procs:
            p.kill()  # a SimpleWorker's warm shutdown waits out its blocking pop
        for p in procs:
            p.wait()


def main():
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "celery-worker":
        app = celery_app(url)
        app.worker_main(["worker", "-c", sys.argv[3], "--pool", "prefork", "-l", "error"])
    elif mode == "rq-worker":
        from redis import Redis
        from rq import Queue, SimpleWorker
        connection = Redis.from_url(url)
        SimpleWorker([Queue("peers", connection=connection)], connection=connection).work()
    else:
        n, workers = int(sys.argv[3]), int(sys.argv[4])
        rate = {"celery": run_celery, "rq": run_rq}[mode](url, n, workers)
        print("%.1f" % rate, flush=True)


if __name__ == "__main__":
    main()
