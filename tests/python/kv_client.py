"""The tutorial's key-value client, unchanged: put, get(...).conjugate(), get_uname."""
import sys
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register("get")
QueueManager.register("put")
QueueManager.register("get_uname")

host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
m = QueueManager(address=(host, port), authkey=key)
m.connect()
m.put("a", 10)
m.put("b", "text")
print("a =", m.get("a").conjugate())
print("b =", m.get("b"))
print("missing =", m.get("nope"))
print("uname =", m.get_uname())
