"""An asyncio event loop that polls briefly for I/O before it sleeps (opt-in).

Why and when, with the rule and its cost bound: :mod:`p2p.transport.spin`. This is
the shell: a selector whose ``select`` polls with a zero timeout while the window is
open, yielding the CPU between polls (so a process that shares its core with the peer
it waits for lets that peer run, rather than spinning against it), then sleeps as
usual. Only waits that could sleep poll: when callbacks are ready asyncio asks for a
zero timeout and gets it unchanged.

Use::

    from p2p.transport.aio import busypoll

    busypoll.run(main(), busy_poll_us=100)           # like asyncio.run
    loop = busypoll.new_event_loop(busy_poll_us=100) # or as a loop factory
    asyncio.set_event_loop_policy(busypoll.EventLoopPolicy(100))  # or every new loop

It is a :class:`asyncio.SelectorEventLoop`, so it works wherever asyncio's selector loop
does; it cannot be combined with uvloop (which has no Python selector).
"""

from __future__ import annotations

import asyncio
import os
import selectors
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from p2p.transport.spin import MAX_SPIN_S, SpinWindow

__all__ = [
    "DEFAULT_BUSY_POLL_US",
    "MAX_BUSY_POLL_US",
    "BusyPollSelector",
    "EventLoopPolicy",
    "new_event_loop",
    "run",
]

T = TypeVar("T")

DEFAULT_BUSY_POLL_US = 100.0
"""Covers a small request's reply from another process on this machine: the peer's own
work (~30-50 µs for a message) plus the hop (~40 µs where waking a process is slow)."""

MAX_BUSY_POLL_US = MAX_SPIN_S * 1e6
"""The largest ``busy_poll_us`` accepted (a bound on the CPU one wake-up may cost)."""

_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: None)


class BusyPollSelector(selectors.DefaultSelector):
    """The platform's default selector, polling for up to the window before each sleep."""

    def __init__(
        self, window: SpinWindow, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self.spin_s = 0.0
        """CPU time spent polling, in all (seconds)."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Ready ``(key, events)`` pairs, as the platform selector's ``select``; a wait
        that may sleep polls first, for up to the window and never past ``timeout``."""
        if timeout is not None and timeout <= 0:
            return super().select(timeout)
        clock = self._clock
        spin = self.window.spin_for(timeout)
        if spin > 0:
            start = clock()
            end = start + spin
            while True:
                ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
                now = clock()
                if ready:
                    self.spin_s += now - start
                    self.window.caught()
                    return ready
                if now >= end:
                    break
                _yield()
            self.spin_s += now - start
            if timeout is not None:
                timeout = max(0.0, timeout - (now - start))
        slept_from = clock()
        ready = super().select(timeout)
        self.window.slept(clock() - slept_from, woke_on_io=bool(ready))
        return ready


def new_event_loop(busy_poll_us: float = DEFAULT_BUSY_POLL_US) -> asyncio.AbstractEventLoop:
    """A selector event loop polling up to ``busy_poll_us`` µs per wait (0: asyncio's own loop)."""
    if busy_poll_us == 0:
        return asyncio.new_event_loop()
    selector = BusyPollSelector(SpinWindow(busy_poll_us / 1e6))
    return asyncio.SelectorEventLoop(selector)


def run(main: Coroutine[Any, Any, T], *, busy_poll_us: float = DEFAULT_BUSY_POLL_US) -> T:
    """:func:`asyncio.run` on :func:`new_event_loop` (``busy_poll_us`` 0: plain asyncio)."""
    if busy_poll_us == 0:
        return asyncio.run(main)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=lambda: new_event_loop(busy_poll_us)) as runner:
            return runner.run(main)
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(EventLoopPolicy(busy_poll_us))  # 3.10: no Runner
    try:
        return asyncio.run(main)
    finally:
        asyncio.set_event_loop_policy(policy)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Makes :func:`new_event_loop`'s loops (for code that calls ``asyncio.run`` itself)."""

    def __init__(self, busy_poll_us: float = DEFAULT_BUSY_POLL_US) -> None:
        if busy_poll_us:
            SpinWindow(busy_poll_us / 1e6)  # a bad value raises ConfigError here, not per loop
        super().__init__()
        self._busy_poll_us = busy_poll_us

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop(self._busy_poll_us)
