"""Grow the process's file-descriptor table once, at start, not while peers connect.

Linux keeps a process's descriptors in a table that doubles when a new one does not fit
(256, 512, 1 024, ... slots). In a process with more than one thread (asyncio's default
executor, a child watcher, a library's worker thread) each doubling waits for an RCU
grace period (``synchronize_rcu`` in the kernel's ``expand_fdtable``): 8-18 ms on this
project's test machine, during which the ``socket()`` or ``accept()`` that needed the slot
blocks, and the event loop with it. A controller dialling a thousand workers hit that
wait at descriptors 256, 512 and 1 024, and it was the largest stall while connecting.

:func:`reserve_fd_table` asks the kernel for one descriptor near the top of the range the
transport may use (its connection budgets, capped by ``RLIMIT_NOFILE``) and closes it at
once: the table grows in one step, before any connection exists, and never shrinks. It
costs about 8 bytes per slot (16 KiB for 2 048). ``F_DUPFD`` picks the lowest free
descriptor at or above the one asked for, so no open descriptor is ever replaced.
"""

from __future__ import annotations

import logging
import os
import threading

try:
    import fcntl
    import resource
except ImportError:  # pragma: no cover - Windows: no descriptor table to grow
    fcntl = None  # type: ignore[assignment]
    resource = None  # type: ignore[assignment]

__all__ = ["MAX_RESERVED_FDS", "reserve_fd_table"]

log = logging.getLogger(__name__)

MAX_RESERVED_FDS = 1 << 20
"""The most descriptors :func:`reserve_fd_table` makes room for, whatever it is asked."""

_lock = threading.Lock()
_reserved = 0  # the largest count reserved in this process so far


def reserve_fd_table(count: int) -> int:
    """Make room for ``count`` descriptors in this process's table now (at most
    ``RLIMIT_NOFILE``'s soft limit and :data:`MAX_RESERVED_FDS`). Returns the count the
    table now holds at least, as far as this module knows (0 where the platform has no
    ``fcntl``). Cheap when called again: the table only grows."""
    global _reserved
    if fcntl is None or resource is None or count <= 0:
        return 0
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        count = min(count, soft)
    count = min(count, MAX_RESERVED_FDS)
    with _lock:
        if count <= _reserved:
            return _reserved
        try:
            probe = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:  # out of descriptors already: nothing to gain
            log.debug("descriptor table not reserved: %s", exc)
            return _reserved
        try:
            top = fcntl.fcntl(probe, fcntl.F_DUPFD_CLOEXEC, count - 1)
        except OSError as exc:  # EMFILE/EINVAL: every slot up there is taken or over the limit
            log.debug("descriptor table not reserved up to %d: %s", count, exc)
            return _reserved
        else:
            os.close(top)
        finally:
            os.close(probe)
        _reserved = count
        log.debug("descriptor table reserved for %d descriptors", count)
        return count
