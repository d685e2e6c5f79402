"""The deterministic mutation schedule shared by the crash-safety child and its checker.

Step ``i`` (from ``M``) mutates exactly one peer. Odd peers only ever get
``update_metrics(ping=i)``, so the largest odd-peer ping in a saved file says how far the
child had got: the file must equal the state after step P or P+1 (the next odd step
would have raised it).
"""

from __future__ import annotations

from typing import Protocol

M = 16  # peers (even: M must be even)
FIRST_STEP = M


class Ops(Protocol):
    def has(self, pid: str) -> bool: ...
    def add(self, pid: str, i: int) -> None: ...
    def update_metrics(self, pid: str, i: int) -> None: ...
    def record_failure(self, pid: str) -> None: ...
    def update_score(self, pid: str, score: float) -> None: ...
    def remove(self, pid: str) -> None: ...


def pid_of(j: int) -> str:
    return f"p{j:02d}"


def step(i: int, ops: Ops) -> None:
    j = i % M
    pid = pid_of(j)
    if j % 2:
        ops.update_metrics(pid, i)
        return
    cycle = (i // M) % 3
    if cycle == 1:
        if ops.has(pid):
            ops.update_metrics(pid, i)
        else:
            ops.add(pid, i)
    elif cycle == 2:
        if i % 4 == 0:
            ops.record_failure(pid)
        else:
            ops.update_score(pid, float(i % 131) - 15.0)  # exercises clamping both ways
    else:
        ops.remove(pid)


State = dict[str, tuple[float, int, float, float]]  # id -> (ping, hops, geo, score)


class Model:
    """The schedule applied to a plain dict: what the registry must hold."""

    def __init__(self) -> None:
        self.state: State = {pid_of(j): (0.0, 0, 0.0, 50.0) for j in range(M)}

    def has(self, pid: str) -> bool:
        return pid in self.state

    def add(self, pid: str, i: int) -> None:
        self.state[pid] = (float(i), i, 2.0 * i, 50.0)  # added with score 0 -> 50

    def update_metrics(self, pid: str, i: int) -> None:
        s = self.state[pid][3]
        self.state[pid] = (float(i), i, 2.0 * i, s)

    def record_failure(self, pid: str) -> None:
        p, h, g, s = self.state[pid]
        self.state[pid] = (p, h, g, max(s - 5.0, 0.0))

    def update_score(self, pid: str, score: float) -> None:
        p, h, g, _ = self.state[pid]
        self.state[pid] = (p, h, g, min(max(score, 0.0), 100.0))

    def remove(self, pid: str) -> None:
        del self.state[pid]
