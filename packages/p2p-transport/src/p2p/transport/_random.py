"""Random bytes for nonces and message ids, cut from one ``os.urandom`` call per 4 KiB.

A getrandom syscall per frame costs more than the rest of the nonce handling. The pool is a
buffer of 32-byte slots and an ``itertools.count`` that numbers them: ``next()`` on a count
is atomic under the GIL, so no two callers (threads included) ever get the same slot of the
same buffer, without a lock. A refill swaps in a fresh ``(buffer, count)`` pair; a forked
child starts with a fresh pair, so parent and child never hand out the same bytes. What the
pool hands out is public (nonces travel in clear, ids are ids).
"""

from __future__ import annotations

import itertools
import os

__all__ = ["random_bytes"]

_SLOT = 32
_SLOTS = 128


def _fresh() -> tuple[bytes, itertools.count[int]]:
    return os.urandom(_SLOT * _SLOTS), itertools.count()


_state = _fresh()


def random_bytes(n: int) -> bytes:
    """``n`` fresh random bytes (from the pool when ``n <= 32``)."""
    global _state
    if not 0 < n <= _SLOT:
        if n <= 0:
            raise ValueError("n must be positive")
        return os.urandom(n)
    buf, counter = _state
    i = next(counter)
    while i >= _SLOTS:
        _state = _fresh()  # concurrent refills: each caller still gets unique bytes
        buf, counter = _state
        i = next(counter)
    o = i * _SLOT
    return buf[o : o + n]


def _reset_after_fork() -> None:
    global _state
    _state = _fresh()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
