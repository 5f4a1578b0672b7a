"""A worker that talks: run several and read their output aggregated, prefixed by name, on
the supervisor's stdout, with `monogusa logs`, and live on the dashboard's log websocket.

    monogusa serve --authkey-file key --http 127.0.0.1:8080 &
    monogusa run --authkey-file key -w 3 -- python3 -u examples/python/logs.py

Each process prints a line every half second (its name comes from MONOGUSA_WORKER) and ends
cleanly on SIGTERM, as the supervisor's stop sends it.
"""
import os
import signal
import sys
import time

name = os.environ.get("MONOGUSA_WORKER", "logs-%d" % os.getpid())
stopping = []
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
n = 0
while not stopping:
    n += 1
    print("%s says line %d" % (name, n), flush=True)
    if n % 5 == 0:
        print("%s: a warning on stderr" % name, file=sys.stderr, flush=True)
    time.sleep(0.5)
print("%s: bye" % name, flush=True)
