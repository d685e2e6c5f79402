"""How long an event loop with nothing to do polls for I/O before it sleeps.

Waking a process that sleeps in ``epoll_wait`` is slow on a virtual machine: the idle
vCPU halts, and the wake-up is an interrupt through the hypervisor. On the 2-core VM our
benchmarks run on, that costs ~40 µs per hop between two processes, several times the
work of the hop itself; a bare asyncio echo between two processes then does ~10 000
round trips/s, and polling for a few tens of µs before sleeping lifts it to ~26 000 with
less CPU in all. Go's scheduler spins before it parks for the same reason.

:class:`SpinWindow` is the rule (KVM's halt-polling rule), with no clock or socket of its
own: the I/O shell (:mod:`p2p.transport.aio.busypoll`) measures and reports.

- A poll that finds I/O keeps the window.
- A sleep that ended on I/O within ``grow_within_s`` (default ``2 * max_s``: the sleep
  includes the slow wake-up itself) says a longer poll might have caught it: the window
  grows (from ``start_s``, doubling, up to ``max_s``).
- A longer sleep halves the window (below ``start_s`` it closes).

So a node in a conversation polls up to ``max_s`` per wait, and an idle one stops
polling after a few long sleeps: the CPU this costs is at most ``max_s`` per wake-up and
falls to nothing while the node is idle.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.transport.errors import ConfigError

__all__ = ["MAX_SPIN_S", "SpinStats", "SpinWindow"]

_OWNER = "SpinWindow"

MAX_SPIN_S = 0.001
"""The largest window accepted: each wake-up may cost at most this much CPU."""


@dataclass
class SpinStats:
    """What the polling did (for benchmarks and metrics)."""

    caught: int = 0
    """Waits answered by polling (I/O came before the window closed)."""
    slept: int = 0
    """Waits that went to sleep (after polling, or with the window closed)."""
    grown: int = 0
    shrunk: int = 0


class SpinWindow:
    """The polling window: grows while I/O comes soon after a wait starts, shrinks when idle."""

    __slots__ = ("_window", "grow_within_s", "max_s", "start_s", "stats")

    def __init__(
        self, max_s: float, *, start_s: float | None = None, grow_within_s: float | None = None
    ) -> None:
        if not 0 < max_s <= MAX_SPIN_S:
            problem = f"must be in (0, {MAX_SPIN_S}] s, got {max_s!r}"
            raise ConfigError("max_s", problem, owner=_OWNER)
        start = max_s / 8 if start_s is None else start_s
        if not 0 < start <= max_s:
            raise ConfigError("start_s", f"must be in (0, max_s], got {start_s!r}", owner=_OWNER)
        grow_within = 2 * max_s if grow_within_s is None else grow_within_s
        if not max_s <= grow_within <= 1.0:
            problem = f"must be in [max_s, 1] s, got {grow_within_s!r}"
            raise ConfigError("grow_within_s", problem, owner=_OWNER)
        self.max_s = max_s
        self.start_s = start
        self.grow_within_s = grow_within
        self._window = 0.0
        self.stats = SpinStats()

    @property
    def window_s(self) -> float:
        """How long the next wait polls (0: it sleeps at once)."""
        return self._window

    def spin_for(self, timeout: float | None) -> float:
        """How long to poll in a wait that may sleep ``timeout`` s (``None``: no timer is due)."""
        if timeout is None:
            return self._window
        return min(self._window, timeout) if timeout > 0 else 0.0

    def caught(self) -> None:
        """Polling found I/O: the window was long enough."""
        self.stats.caught += 1

    def slept(self, duration: float, *, woke_on_io: bool) -> None:
        """The wait slept ``duration`` s after polling; it ended on I/O or on a timer."""
        self.stats.slept += 1
        if duration > self.grow_within_s:
            if self._window > 0:
                self.stats.shrunk += 1
                half = self._window / 2
                self._window = half if half >= self.start_s else 0.0
        elif woke_on_io and self._window < self.max_s:
            self.stats.grown += 1
            self._window = min(self.max_s, max(self.start_s, self._window * 2))
