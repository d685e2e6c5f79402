"""The collector settings of a node process: fewer, shorter collections for big fleets.

Measured with ``tools/bench/fleet.py`` (issue 14): with CPython's default thresholds
(700, 10, 10) a controller connecting 1 000 workers ran ~220 collections (~0.5 s in
total, loop stalls from them of 100+ ms), and at 10 000 workers ~2 500 collections took
37 s of 187 s, the longest full ones over 3 s. With a young-generation threshold of
10 000 the N = 1 000 connecting phase ran 14 collections (0.12 s, the longest 19 ms);
50 000 ran 2 to 3 (0.1-0.27 s) but single pauses grew to 83-195 ms, so 10 000 it is: the
count falls ~15x while one young collection stays short. ``gc.freeze()`` after
start-up moves everything built so far (imports, identity, config) out of the collector's
sight, so later full collections do not walk it.

Process-wide, so reference-counted: the first node to start applies the settings, the
last to close restores what was there before.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["NODE_GC_THRESHOLD", "acquire", "release"]

NODE_GC_THRESHOLD = (10_000, 20, 100)
"""``gc.set_threshold`` of a running node (CPython's default: 700, 10, 10)."""

_lock = threading.Lock()
_users = 0
_saved: tuple[int, int, int] | None = None


def acquire(threshold: tuple[int, int, int] = NODE_GC_THRESHOLD) -> None:
    """A node started: apply ``threshold`` and freeze the start-up heap (first node only)."""
    global _users, _saved
    with _lock:
        _users += 1
        if _users == 1:
            _saved = gc.get_threshold()
            gc.collect()
            gc.freeze()
            gc.set_threshold(*threshold)


def release() -> None:
    """A node closed: the last one restores the previous thresholds and unfreezes."""
    global _users, _saved
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            gc.unfreeze()
            _saved = None
