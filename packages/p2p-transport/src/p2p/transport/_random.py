"""Random bytes for nonces and message ids, cut from one ``os.urandom`` call per 4 KiB.

A getrandom syscall per frame costs more than the rest of the nonce handling. The pool is
locked for threads and emptied in a forked child, so parent and child never hand out the
same bytes. What it hands out is public (nonces travel in clear, ids are ids).
"""

from __future__ import annotations

import os
import threading

__all__ = ["random_bytes"]

_CHUNK = 4096
_lock = threading.Lock()
_buf = b""
_pos = 0


def random_bytes(n: int) -> bytes:
    """``n`` (≤ 4096) fresh random bytes."""
    global _buf, _pos
    if not 0 < n <= _CHUNK:
        raise ValueError(f"n must be in 1..{_CHUNK}")
    with _lock:
        p = _pos
        if p + n > len(_buf):
            _buf, p = os.urandom(_CHUNK), 0
        _pos = p + n
        return _buf[p : p + n]


def _reset_after_fork() -> None:
    global _lock, _buf, _pos
    _lock = threading.Lock()
    _buf, _pos = b"", 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
