"""How much of one event-loop turn handshake work may take (sans-I/O, injected clock).

A controller dialling a fleet, or a fleet dialling in after a restart, gets dozens of
handshake steps ready in the same turn of the event loop: their peers answer together.
Run back to back, they hold up everything else (timers, pings, stats replies) for tens of
milliseconds. A :class:`TurnBudget` lets handshake steps run until the current window has
lasted ``budget`` seconds; the steps after that wait for a later turn. The work is the
same. What changes is how long anything else waits: at most two windows run in one turn
(see below), so about two budgets plus a step, however many handshakes are ready.

The rules:

1. A step asks :meth:`TurnBudget.admit`. The first step after the window closed opens a
   new one (:data:`OPEN`); later steps run while the window is within its budget
   (:data:`RUN`). Past it, a step gets a ticket and waits (:data:`WAIT`).
2. While anyone waits, newcomers wait behind them: the waiters run first come, first
   served, as the head of the queue retries.
3. The I/O shell closes a window in the turn after it opened (:meth:`TurnBudget.turn_over`,
   scheduled with ``call_soon``). Callbacks scheduled before it in that turn run first, so
   a retrying waiter can still see the old window: a waiter at the head of the queue that
   sees the very window it waited behind knows a turn has passed, and opens the next one
   itself. Only the head may do so, so no step waits behind the same window twice, and no
   step starves however the loop orders its callbacks.
4. Only the first few waiters ask every turn (:meth:`TurnBudget.polls`); the others sleep
   until a waiter ahead leaves the queue. A fleet with hundreds of handshakes in flight so
   costs a few retries per turn, not one per waiting step.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["MIN_POLLERS", "OPEN", "RUN", "WAIT", "Admission", "TurnBudget"]

MIN_POLLERS = 8
"""Waiters at the head of the queue that always ask every turn (see ``polls``)."""

Admission = Literal["open", "run", "wait"]
OPEN: Admission = "open"
"""Run; this step opened window :attr:`TurnBudget.window`: call ``turn_over`` next turn."""
RUN: Admission = "run"
"""Run: the window is open and within its budget (or pacing is off)."""
WAIT: Admission = "wait"
"""Do not run in this turn: ask again in a later one, with the ticket given."""


class TurnBudget:
    """One event loop's handshake budget per turn; ``budget <= 0`` turns pacing off."""

    __slots__ = (
        "_last_runs",
        "_opened_at",
        "_runs",
        "_tickets",
        "_waiting",
        "budget",
        "deferred",
        "window",
    )

    def __init__(self, budget: float) -> None:
        self.budget = budget
        #: times a step was told to wait (ever): how often pacing acted
        self.deferred = 0
        #: the number of the current (or last) window
        self.window = 0
        self._opened_at: float | None = None
        #: waiting steps in arrival order: ticket -> the window they last waited behind
        self._waiting: dict[int, int] = {}
        self._tickets = 0
        #: steps run in the current window, and in the last one before it
        self._runs = 0
        self._last_runs = 0

    @property
    def waiting(self) -> int:
        """Steps waiting for a turn."""
        return len(self._waiting)

    def admit(self, now: float, ticket: int | None = None) -> tuple[Admission, int | None]:
        """May a handshake step run at ``now``? ``ticket``: the one a :data:`WAIT` gave this
        step (it has yielded a turn since). Returns the verdict and the step's ticket
        (``None`` once it may run)."""
        if self.budget <= 0:
            return RUN, None
        waiting = self._waiting
        if ticket is None:
            if waiting:  # newcomers queue behind the waiters
                return self._wait(None), self._enqueue()
            verdict = self._by_window(now)
            return verdict, (self._enqueue() if verdict is WAIT else None)
        if ticket != next(iter(waiting)):
            return self._wait(ticket), ticket
        if self._opened_at is None or waiting[ticket] == self.window:
            del waiting[ticket]  # the window it waited behind is from an earlier turn
            return self._open(now), None
        verdict = self._by_window(now)
        if verdict is WAIT:  # counted by _by_window: note the window it now waits behind
            waiting[ticket] = self.window
            return WAIT, ticket
        del waiting[ticket]
        return verdict, None

    def polls(self, ticket: int) -> bool:
        """Should this waiter ask again next turn? Only the first :attr:`pollers` of the
        queue need to (the others could not run before them); the rest may sleep until
        a waiter ahead leaves the queue, and then ask again."""
        waiting = self._waiting
        return not waiting or ticket - next(iter(waiting)) < self.pollers

    @property
    def pollers(self) -> int:
        """Waiters at the head of the queue that ask every turn: twice what the last
        window ran, at least :data:`MIN_POLLERS`."""
        return max(MIN_POLLERS, 2 * self._last_runs)

    def withdraw(self, ticket: int) -> None:
        """A waiting step gave up (cancelled, timed out): it leaves the queue."""
        self._waiting.pop(ticket, None)

    def turn_over(self, window: int) -> None:
        """A new turn has started since ``window`` opened: close it (if still current)."""
        if window == self.window:
            self._opened_at = None

    def _by_window(self, now: float) -> Admission:
        opened = self._opened_at
        if opened is None:
            return self._open(now)
        if now - opened < self.budget:
            self._runs += 1
            return RUN
        self.deferred += 1
        return WAIT

    def _open(self, now: float) -> Admission:
        self.window += 1
        self._opened_at = now
        self._last_runs, self._runs = self._runs, 1
        return OPEN

    def _enqueue(self) -> int:
        self._tickets += 1
        self._waiting[self._tickets] = self.window
        return self._tickets

    def _wait(self, ticket: int | None) -> Admission:
        self.deferred += 1
        if ticket is not None:
            self._waiting[ticket] = self.window
        return WAIT
