"""Children of the crash-safety test: each mutates a registry as fast as it can, forever.

Runs as a small fork server (Python + numpy start-up is ~1 s on a busy machine, a fork is
~1 ms): it prints "ready", then for every line ``PATH`` on stdin forks a child that writes
the initial state to PATH and prints its pid; the test SIGKILLs that pid at a random moment
and sends "reap", answered with "reaped" once the child is gone.
"""

from __future__ import annotations

import os
import sys

from p2p.peers import Peer, PeerRegistry
from peers_crash_schedule import FIRST_STEP, M, pid_of, step


class RegistryOps:
    def __init__(self, reg: PeerRegistry) -> None:
        self.reg = reg

    def has(self, pid: str) -> bool:
        return pid in self.reg

    def add(self, pid: str, i: int) -> None:
        self.reg.add(Peer(id=pid, name=pid, ping_ms=float(i), hops=i, geo_km=2.0 * i, score=0))

    def update_metrics(self, pid: str, i: int) -> None:
        self.reg.update_metrics(pid, float(i), 2.0 * i, i)

    def record_failure(self, pid: str) -> None:
        self.reg.record_failure(pid)

    def update_score(self, pid: str, score: float) -> None:
        self.reg.update_score(pid, score)

    def remove(self, pid: str) -> None:
        self.reg.remove(pid)


def run_child(path: str) -> None:
    reg = PeerRegistry(path, save_delay=0.001)
    for j in range(M):
        reg.add(Peer(id=pid_of(j), name=pid_of(j), score=50.0))
    reg.save()
    sys.stdout.write(f"{os.getpid()}\n")
    sys.stdout.flush()
    ops = RegistryOps(reg)
    i = FIRST_STEP
    while True:
        step(i, ops)
        i += 1


def serve() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "reap":
            os.waitpid(-1, 0)
            sys.stdout.write("reaped\n")
            sys.stdout.flush()
        elif cmd and os.fork() == 0:
            try:
                run_child(cmd)
            finally:
                os._exit(1)


if __name__ == "__main__":
    serve()
