"""The event-loop side of :mod:`p2p.transport.pacing`: ``await pacer.turn()`` before a
handshake step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from p2p.transport.pacing import OPEN, TurnBudget

__all__ = ["TurnPacer"]


class TurnPacer:
    """The handshake steps of one transport share one :class:`~p2p.transport.pacing.TurnBudget`.

    A step that opens a window schedules ``turn_over`` with ``call_soon``, so it runs in
    the next turn of the loop; a step told to wait yields with ``sleep(0)``, which resumes
    it in the next turn too, and asks again with its ticket. A waiter that is cancelled
    (its handshake timed out) leaves the queue.
    """

    __slots__ = ("_clock", "budget")

    def __init__(self, budget: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.budget = TurnBudget(budget)
        self._clock = clock

    async def turn(self) -> None:
        """Return once this step may run in the current turn of the loop."""
        budget = self.budget
        verdict, ticket = budget.admit(self._clock())
        try:
            while ticket is not None:
                await asyncio.sleep(0)
                verdict, ticket = budget.admit(self._clock(), ticket)
        except BaseException:
            if ticket is not None:
                budget.withdraw(ticket)
            raise
        if verdict is OPEN:
            asyncio.get_running_loop().call_soon(budget.turn_over, budget.window)
