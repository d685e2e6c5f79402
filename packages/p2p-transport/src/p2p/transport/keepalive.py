"""When to ping: keepalive decisions spread over the interval (sans-I/O, injected clock).

Connections made together (a controller dialling a fleet, workers dialling in after a
restart) would otherwise ping together for ever: every tick of the ticker would spawn a
ping for each of them at once. Two rules keep the work flat:

1. Phase: a new connection's first keepalive ping is due at a uniformly random point of
   its first interval (:func:`initial_last_ping`), so pings of a crowd spread over the
   whole interval and stay spread (each later ping is one interval after the last).
2. Budget: one tick sends at most :func:`ping_budget` pings, the most overdue first
   (:func:`due_pings`): twice the steady rate, so a backlog drains within an interval and
   a burst never costs more than that.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["MIN_PINGS_PER_TICK", "due_pings", "initial_last_ping", "ping_budget"]

K = TypeVar("K")

MIN_PINGS_PER_TICK = 16
"""A tick may always send this many pings (small fleets never wait)."""


def initial_last_ping(connected_at: float, interval: float, u: float) -> float:
    """The ``last_ping_sent`` to give a new connection so its first ping is due at
    ``connected_at + u * interval`` (``u`` uniform in [0, 1), e.g. ``random.random()``)."""
    if not 0.0 <= u < 1.0:
        raise ValueError("u must be in [0, 1)")
    return connected_at - (1.0 - u) * interval


def ping_budget(live: int, tick: float, interval: float) -> int:
    """Pings one tick may send for ``live`` connections: twice the steady rate
    (``live * tick / interval``), at least :data:`MIN_PINGS_PER_TICK`."""
    return max(MIN_PINGS_PER_TICK, math.ceil(2 * live * tick / interval))


def due_pings(
    last_sent: Iterable[tuple[K, float]], now: float, interval: float, limit: int
) -> list[K]:
    """Keys whose last ping is ``interval`` or more ago, most overdue first, at most ``limit``."""
    due = [(sent, i, key) for i, (key, sent) in enumerate(last_sent) if now - sent >= interval]
    if len(due) > limit:
        due = heapq.nsmallest(limit, due, key=lambda d: (d[0], d[1]))
    else:
        due.sort(key=lambda d: (d[0], d[1]))
    return [key for _, _, key in due]
