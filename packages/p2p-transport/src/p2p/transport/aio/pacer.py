"""The event-loop side of :mod:`p2p.transport.pacing`: ``await pacer.turn()`` before a
handshake step."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable

from p2p.transport.pacing import OPEN, TurnBudget

__all__ = ["TurnPacer"]


class TurnPacer:
    """The handshake steps of one transport share one :class:`~p2p.transport.pacing.TurnBudget`.

    A step that opens a window schedules ``turn_over`` with ``call_soon``, so it runs in
    the next turn of the loop. A step told to wait either yields with ``sleep(0)`` and
    asks again next turn (the first few of the queue), or sleeps on a future until a
    waiter ahead leaves the queue (the rest). A waiter that is cancelled (its handshake
    timed out) leaves the queue.
    """

    __slots__ = ("_clock", "_parked", "budget")

    def __init__(self, budget: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.budget = TurnBudget(budget)
        self._clock = clock
        #: sleeping waiters, a heap by ticket (a woken waiter may sleep again, out of
        #: arrival order: the smallest ticket must always be the first one woken)
        self._parked: list[tuple[int, asyncio.Future[None]]] = []

    async def turn(self) -> None:
        """Return once this step may run in the current turn of the loop."""
        budget = self.budget
        verdict, ticket = budget.admit(self._clock())
        if ticket is None:  # the common case: no queue
            if verdict is OPEN:
                asyncio.get_running_loop().call_soon(budget.turn_over, budget.window)
            return
        try:
            while ticket is not None:
                if budget.polls(ticket):
                    await asyncio.sleep(0)
                else:
                    woken = asyncio.get_running_loop().create_future()
                    heapq.heappush(self._parked, (ticket, woken))
                    await woken
                verdict, ticket = budget.admit(self._clock(), ticket)
        except BaseException:
            if ticket is not None:
                budget.withdraw(ticket)
            raise
        finally:
            self._wake()  # this step left the queue: the next sleepers may poll
        if verdict is OPEN:
            asyncio.get_running_loop().call_soon(budget.turn_over, budget.window)

    def _wake(self) -> None:
        parked, budget = self._parked, self.budget
        while parked and (parked[0][1].done() or budget.polls(parked[0][0])):
            _, woken = heapq.heappop(parked)
            if not woken.done():
                woken.set_result(None)
