"""Handshake pacing: the sans-I/O turn budget with an injected clock; the event-loop shell
with a fake clock (each step "costs" one unit) on a real loop whose turns are counted;
then a live burst of dials on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from p2p.transport import Transport, pacing
from p2p.transport.aio.pacer import TurnPacer
from p2p.transport.pacing import OPEN, RUN, WAIT, TurnBudget

# --- TurnBudget (no loop) ------------------------------------------------------------------


def test_the_first_step_of_a_turn_opens_a_window_and_runs() -> None:
    b = TurnBudget(0.005)
    assert b.admit(10.0) == (OPEN, None)
    assert b.window == 1
    assert b.admit(10.004) == (RUN, None)
    verdict, ticket = b.admit(10.005)  # the window has used its budget
    assert verdict is WAIT and ticket is not None
    assert b.admit(10.100)[0] is WAIT  # newcomers queue behind the waiter
    assert b.waiting == 2
    assert b.deferred == 2


def test_turn_over_closes_the_window_it_was_scheduled_for() -> None:
    b = TurnBudget(0.005)
    assert b.admit(0.0)[0] is OPEN
    first = b.window
    b.turn_over(first)
    assert b.admit(1.0)[0] is OPEN  # a fresh budget in the new turn
    assert b.window == first + 1
    b.turn_over(first)  # late marker of the old window: no effect on the new one
    assert b.admit(1.010)[0] is WAIT


def test_waiters_run_first_come_first_served() -> None:
    b = TurnBudget(0.005)
    b.admit(0.0)
    _, t1 = b.admit(0.006)
    _, t2 = b.admit(0.007)
    b.turn_over(b.window)
    assert b.admit(1.0)[0] is WAIT  # a newcomer, even with a fresh window: behind them
    assert b.admit(1.0, t2) == (WAIT, t2)  # not the head
    assert b.admit(1.0, t1) == (OPEN, None)
    assert b.admit(1.001, t2) == (RUN, None)


def test_the_head_waiter_reopens_the_window_it_waited_behind() -> None:
    """The waiter ran before the turn's ``turn_over`` (callback order), so the window it
    waited behind is still current: a turn has passed since, and it opens the next one."""
    b = TurnBudget(0.005)
    b.admit(0.0)
    _, t1 = b.admit(0.006)
    _, t2 = b.admit(0.006)
    waited_behind = b.window
    assert b.admit(0.007, t1) == (OPEN, None)
    assert b.window == waited_behind + 1
    # the next waiter respects the window the head just opened ...
    assert b.admit(0.013, t2) == (WAIT, t2)
    # ... and reopens it only once it has waited behind it for a turn
    assert b.admit(0.014, t2) == (OPEN, None)
    assert b.waiting == 0


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    b = TurnBudget(0.005)
    b.admit(0.0)
    _, t1 = b.admit(0.006)
    _, t2 = b.admit(0.006)
    assert t1 is not None and t2 is not None
    b.withdraw(t1)
    b.turn_over(b.window)
    assert b.admit(1.0, t2) == (OPEN, None)
    assert b.waiting == 0


def test_a_budget_of_zero_turns_pacing_off() -> None:
    b = TurnBudget(0)
    assert all(b.admit(float(t)) == (RUN, None) for t in range(100))
    assert b.deferred == 0


# --- TurnPacer on a real loop, fake clock ----------------------------------------------------


class StepClock:
    """A clock that advances one unit per step run (a step costs 1.0 "seconds")."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def run_steps(
    pacer: TurnPacer, clock: StepClock, n: int, *, starts: Callable[[int], Awaitable[None]]
) -> tuple[list[int], list[int]]:
    """Start ``n`` steps in one turn; each awaits ``starts(i)``, then ``pacer.turn()``, then
    "works" one unit. Returns (turn each step ran in, step order)."""
    loop = asyncio.get_running_loop()
    turn = 0
    ticking = True

    def tick() -> None:  # counts loop turns: one call_soon chain, one increment per turn
        nonlocal turn
        turn += 1
        if ticking:
            loop.call_soon(tick)

    ran_in: list[int] = [0] * n
    order: list[int] = []

    async def step(i: int) -> None:
        await starts(i)
        await pacer.turn()
        ran_in[i] = turn
        order.append(i)
        clock.now += 1.0

    loop.call_soon(tick)
    await asyncio.gather(*(step(i) for i in range(n)))
    ticking = False
    return ran_in, order


async def no_wait(i: int) -> None:
    return None


async def test_steps_ready_together_are_spread_over_turns_in_order() -> None:
    clock = StepClock()
    pacer = TurnPacer(2.5, clock=clock)  # three one-unit steps fit: at 0, 1 and 2
    ran_in, order = await run_steps(pacer, clock, 30, starts=no_wait)
    per_turn: dict[int, int] = {}
    for t in ran_in:
        per_turn[t] = per_turn.get(t, 0) + 1
    assert max(per_turn.values()) <= 3
    assert len(per_turn) >= 10
    assert order == sorted(order)  # FIFO: no step overtakes one that waited longer
    assert pacer.budget.deferred > 0


async def test_only_the_head_of_a_long_queue_asks_every_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 steps ready at once, three fit a window: the waiters beyond the first few sleep
    until the queue reaches them, so the retries stay a few per turn (not ~200)."""

    async def waits(min_pollers: int) -> tuple[int, list[int]]:
        monkeypatch.setattr(pacing, "MIN_POLLERS", min_pollers)
        clock = StepClock()
        pacer = TurnPacer(2.5, clock=clock)
        _, order = await run_steps(pacer, clock, 200, starts=no_wait)
        assert pacer.budget.waiting == 0 and not pacer._parked
        return pacer.budget.deferred, order

    default = pacing.MIN_POLLERS
    everyone_polls, order_all = await waits(10_000)
    head_polls, order_head = await waits(default)
    assert order_head == order_all == list(range(200))  # the same order either way
    assert head_polls * 5 < everyone_polls


async def test_sleepers_woken_then_put_back_to_sleep_still_reach_the_head() -> None:
    """Cheap steps first (a window runs many: many waiters are woken), then dear ones (a
    window runs one: woken waiters far from the head sleep again, after others that slept
    later). The queue still drains in order: the smallest ticket is always woken first."""
    loop = asyncio.get_running_loop()
    clock = StepClock()
    pacer = TurnPacer(2.5, clock=clock)
    order: list[int] = []

    async def step(i: int) -> None:
        await pacer.turn()
        order.append(i)
        clock.now += 0.05 if i < 150 else 1.0

    tasks = [loop.create_task(step(i)) for i in range(400)]
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert order == list(range(400))
    assert pacer.budget.waiting == 0 and not pacer._parked


async def test_a_cancelled_sleeper_does_not_hold_up_the_queue() -> None:
    clock = StepClock()
    pacer = TurnPacer(0.5, clock=clock)  # one step per window
    loop = asyncio.get_running_loop()
    done: list[int] = []

    async def step(i: int) -> None:
        await pacer.turn()
        done.append(i)
        clock.now += 1.0

    tasks = [loop.create_task(step(i)) for i in range(30)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert pacer._parked  # the tail of the queue sleeps
    assert len(done) < 5
    for t in tasks[5:25]:
        t.cancel()  # pollers and sleepers give up; the ones before and after them do not
    await asyncio.gather(*tasks, return_exceptions=True)
    assert done == [*range(5), *range(25, 30)]
    assert pacer.budget.waiting == 0 and not pacer._parked


async def test_no_step_starves_whatever_the_callback_order() -> None:
    """Half the steps are woken by callbacks scheduled before the pacer's marker of each
    turn (they run ahead of it): they still get their turn."""
    loop = asyncio.get_running_loop()
    clock = StepClock()
    pacer = TurnPacer(1.5, clock=clock)

    async def staggered(i: int) -> None:
        if i % 2:
            fut: asyncio.Future[None] = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut

    ran_in, order = await run_steps(pacer, clock, 40, starts=staggered)
    assert sorted(order) == list(range(40))
    per_turn: dict[int, int] = {}
    for t in ran_in:
        per_turn[t] = per_turn.get(t, 0) + 1
    assert max(per_turn.values()) <= 2


async def test_an_early_waiter_is_not_starved_by_a_flood() -> None:
    """A step that arrives while three new steps arrive every turn and a window fits two:
    it runs within a few turns of arriving (first come, first served), not at the end."""
    loop = asyncio.get_running_loop()
    clock = StepClock()
    pacer = TurnPacer(1.5, clock=clock)
    turn = 0
    ran: dict[str, int] = {}
    flood: list[asyncio.Task[None]] = []
    woken = loop.create_future()
    flooded = asyncio.Event()

    async def step(name: str) -> None:
        await pacer.turn()
        ran[name] = turn
        clock.now += 1.0

    async def early() -> None:
        await woken
        await step("early")

    def tick() -> None:
        nonlocal turn
        turn += 1
        if turn == 5:
            woken.set_result(None)
        if turn <= 40:
            flood.extend(loop.create_task(step(f"f{turn}.{k}")) for k in range(3))
            loop.call_soon(tick)
        else:
            flooded.set()

    loop.call_soon(tick)
    early_task = loop.create_task(early())
    await early_task
    assert ran["early"] <= 5 + 3
    await flooded.wait()
    await asyncio.gather(*flood)
    assert len(ran) == 1 + 3 * 40
    assert pacer.budget.waiting == 0


async def test_a_lone_step_never_waits() -> None:
    clock = StepClock()
    pacer = TurnPacer(0.5, clock=clock)
    for _ in range(20):
        await pacer.turn()
        clock.now += 1.0  # each step is over budget on its own
        await asyncio.sleep(0)  # the next step comes in a later turn
    assert pacer.budget.deferred == 0


# --- live: a burst of dials ---------------------------------------------------------------


async def test_a_burst_of_dials_is_paced_and_every_one_connects(
    make_transport: Callable[..., Awaitable[Transport]],
) -> None:
    limits: dict[str, Any] = {
        "max_handshakes_per_ip": 64,
        "max_pending_handshakes": 64,
        "handshake_burst_per_ip": 64,
        "max_conns_per_prefix": 64,
    }
    # a budget of a nanosecond: every step after the first of a turn waits a turn
    dialler = await make_transport("dialler", handshake_turn_budget=1e-9, **limits)
    others = [await make_transport(f"w{i}", **limits) for i in range(12)]
    # one transport dialling many peers at once (as a controller does)
    conns = await asyncio.gather(*(dialler.connect(t.address) for t in others))
    assert {c.peer_id for c in conns} == {t.node_manager.identity.id for t in others}
    assert dialler.pacer.budget.deferred > 0
    # many peers dialling one listener at once: the listener's side is paced
    listener = await make_transport("listener", handshake_turn_budget=1e-9, **limits)
    got = await asyncio.gather(*(t.connect(listener.address) for t in others))
    assert all(c.peer_id == listener.node_manager.identity.id for c in got)
    assert listener.pacer.budget.deferred > 0
    assert all(t.pacer.budget.deferred == 0 for t in others)  # one dial each: never waits


@pytest.mark.parametrize("budget", [0, 0.005])
async def test_dials_work_with_pacing_on_and_off(
    make_transport: Callable[..., Awaitable[Transport]], budget: float
) -> None:
    a = await make_transport("a", handshake_turn_budget=budget)
    b = await make_transport("b", handshake_turn_budget=budget)
    conn = await a.connect(b.address)
    assert conn.peer_id == b.node_manager.identity.id
