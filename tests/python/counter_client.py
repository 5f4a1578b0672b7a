"""The five-process view counter, unchanged: each process calls inc and get 1000 times."""
import sys
from multiprocessing import Process
from multiprocessing.managers import BaseManager


class Manager(BaseManager):
    pass


Manager.register("get")
Manager.register("inc")


def work(host, port, key, rounds):
    m = Manager(address=(host, port), authkey=key)
    m.connect()
    for _ in range(rounds):
        m.inc("hikakin")
        m.get("hikakin").conjugate()


if __name__ == "__main__":
    host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    procs = [Process(target=work, args=(host, port, key, rounds)) for _ in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0, p.exitcode
    m = Manager(address=(host, port), authkey=key)
    m.connect()
    print("count =", m.get("hikakin").conjugate())
