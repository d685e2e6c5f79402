"""Rate-limit repetitive log lines: a flood of bad frames must not become a flood of logs.

A peer that sends a frame per millisecond, each one rejected, would otherwise write one
WARNING per frame: more bytes to the operator's disk than it sends us. Each kind of line
(a *key*, e.g. ``"rate-limited frame"``) gets a budget:

- the first ``burst`` lines of a key in an ``interval`` are written;
- the rest of that interval are counted, not written;
- the next line of that key after the interval (or :meth:`LimitedLogger.flush`) writes
  one summary, ``suppressed K similar lines in the last T s: <key>``, then the budget
  starts again.

So a key writes at most ``burst + 1`` lines per interval, whatever the traffic.
:class:`LogLimiter` is the sans-I/O rule (an injected clock); :class:`LimitedLogger` is
the thin shell over a ``logging.Logger``. Keys are few and fixed (one per kind of line,
not per peer); at most ``max_keys`` are tracked, the least recently used is forgotten
first (its pending count goes into the next summary of any key).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_LOG_BURST",
    "DEFAULT_LOG_INTERVAL",
    "LimitedLogger",
    "LogLimiter",
    "Suppressed",
]

#: Lines of one key written per interval before the rest are only counted.
DEFAULT_LOG_BURST = 10
#: Seconds of one budget window.
DEFAULT_LOG_INTERVAL = 60.0
#: Keys tracked at once.
DEFAULT_MAX_KEYS = 256


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A summary to write: ``count`` lines of ``key`` were dropped over ``seconds``."""

    key: Hashable
    count: int
    seconds: float


class _Window:
    __slots__ = ("seen", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.seen = 0
        self.suppressed = 0


class LogLimiter:
    """Decides, per key and instant, whether a line is written (no I/O, no clock)."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_LOG_BURST,
        interval: float = DEFAULT_LOG_INTERVAL,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if burst < 0:
            raise ValueError("burst must be >= 0")
        if not interval > 0:
            raise ValueError("interval must be > 0")
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.burst = burst
        self.interval = float(interval)
        self.max_keys = max_keys
        self._windows: OrderedDict[Hashable, _Window] = OrderedDict()
        self._orphans = 0  # suppressed counts of forgotten keys
        #: lines suppressed since this limiter was made (all keys)
        self.total_suppressed = 0

    def hit(self, key: Hashable, now: float) -> tuple[bool, Suppressed | None]:
        """One line of ``key`` wants out at ``now``: (write it?, summary to write first)."""
        w = self._windows.get(key)
        summary = None
        if w is None:
            w = _Window(now)
            self._windows[key] = w
            if len(self._windows) > self.max_keys:
                _, old = self._windows.popitem(last=False)
                self._orphans += old.suppressed
        else:
            self._windows.move_to_end(key)
            if now - w.start >= self.interval:
                summary = self._close(key, w, now)
                w.start, w.seen, w.suppressed = now, 0, 0
        w.seen += 1
        if w.seen <= self.burst:
            return True, summary
        w.suppressed += 1
        self.total_suppressed += 1
        return False, summary

    def _close(self, key: Hashable, w: _Window, now: float) -> Suppressed | None:
        count = w.suppressed + self._orphans
        if not count:
            return None
        self._orphans = 0
        return Suppressed(key, count, now - w.start)

    def flush(self, now: float) -> list[Suppressed]:
        """Summaries of every window whose interval is over (their budgets restart)."""
        out = []
        for key, w in list(self._windows.items()):
            if now - w.start >= self.interval:
                summary = self._close(key, w, now)
                del self._windows[key]
                if summary is not None:
                    out.append(summary)
        return out


class LimitedLogger:
    """``logger`` with per-key budgets: ``limited.warning("bad frame", "bad frame from %s", x)``.

    A level the logger would not write costs one ``isEnabledFor`` call and is not counted.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = DEFAULT_LOG_BURST,
        interval: float = DEFAULT_LOG_INTERVAL,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.limiter = LogLimiter(burst=burst, interval=interval, max_keys=max_keys)
        self._clock = clock

    def log(self, level: int, key: Hashable, msg: str, *args: object) -> bool:
        """Write ``msg % args`` at ``level`` unless ``key`` is over budget; True if written."""
        if not self.logger.isEnabledFor(level):
            return False
        write, summary = self.limiter.hit(key, self._clock())
        if summary is not None:
            self._summarise(level, summary)
        if write:
            self.logger.log(level, msg, *args)
        return write

    def _summarise(self, level: int, s: Suppressed) -> None:
        self.logger.log(
            level, "suppressed %d similar lines in the last %.0f s: %s", s.count, s.seconds, s.key
        )

    def debug(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.DEBUG, key, msg, *args)

    def info(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, key, msg, *args)

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def flush(self, level: int = logging.INFO) -> None:
        """Write the summaries of finished intervals now (e.g. from a periodic ticker)."""
        for s in self.limiter.flush(self._clock()):
            self._summarise(level, s)
