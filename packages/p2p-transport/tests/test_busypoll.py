"""Busy polling: the window rule with no clock or socket; the selector on a real socket
pair with a fake clock; then a real ping exchange on 127.0.0.1 under ``busypoll.run``."""

from __future__ import annotations

import asyncio
import selectors
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from p2p.identity import NodeManager
from p2p.transport import ConfigError, Transport, envelope
from p2p.transport.aio import busypoll
from p2p.transport.aio.busypoll import BusyPollSelector, EventLoopPolicy
from p2p.transport.spin import MAX_SPIN_S, SpinStats, SpinWindow
from pytest_p2p.transport_fixtures import fast_transport_config

# --- SpinWindow (no clock) -----------------------------------------------------------------


def test_the_window_starts_closed_and_grows_by_doubling_on_quick_io() -> None:
    w = SpinWindow(100e-6, start_s=10e-6)
    assert w.window_s == 0
    seen = []
    for _ in range(6):
        w.slept(60e-6, woke_on_io=True)  # I/O 60 µs into the sleep: within 2 * max_s
        seen.append(round(w.window_s * 1e6))
    assert seen == [10, 20, 40, 80, 100, 100]  # capped at max_s
    assert w.stats.grown == 5 and w.stats.slept == 6


def test_polling_that_catches_io_keeps_the_window() -> None:
    w = SpinWindow(100e-6)
    w.slept(0, woke_on_io=True)
    before = w.window_s
    for _ in range(10):
        w.caught()
    assert w.window_s == before
    assert w.stats.caught == 10


def test_long_sleeps_halve_the_window_then_close_it() -> None:
    """An idle node stops polling after a few wake-ups: its cost falls to nothing."""
    w = SpinWindow(100e-6, start_s=10e-6)
    for _ in range(5):
        w.slept(0, woke_on_io=True)
    assert w.window_s == 100e-6
    seen = []
    for _ in range(5):
        w.slept(0.5, woke_on_io=True)  # a keepalive every half second
        seen.append(round(w.window_s * 1e6, 1))
    assert seen == [50.0, 25.0, 12.5, 0.0, 0.0]
    assert w.spin_for(None) == 0


def test_a_short_sleep_that_ended_on_a_timer_does_not_grow_the_window() -> None:
    w = SpinWindow(100e-6)
    w.slept(10e-6, woke_on_io=False)
    assert w.window_s == 0


def test_the_grow_threshold_is_its_own_setting() -> None:
    w = SpinWindow(50e-6, grow_within_s=50e-6)
    w.slept(60e-6, woke_on_io=True)  # beyond grow_within_s: no growth
    assert w.window_s == 0
    w.slept(40e-6, woke_on_io=True)
    assert w.window_s > 0


def test_polling_never_outlasts_the_wait_asyncio_asked_for() -> None:
    w = SpinWindow(100e-6)
    for _ in range(5):
        w.slept(0, woke_on_io=True)
    assert w.spin_for(None) == 100e-6  # no timer due: the whole window
    assert w.spin_for(30e-6) == 30e-6  # a timer is due sooner
    assert w.spin_for(0) == 0  # callbacks are ready: no polling at all


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"max_s": 0}, "max_s"),
        ({"max_s": -1e-6}, "max_s"),
        ({"max_s": MAX_SPIN_S * 2}, "max_s"),
        ({"max_s": 50e-6, "start_s": 60e-6}, "start_s"),
        ({"max_s": 50e-6, "start_s": 0}, "start_s"),
        ({"max_s": 50e-6, "grow_within_s": 10e-6}, "grow_within_s"),
        ({"max_s": 50e-6, "grow_within_s": 2.0}, "grow_within_s"),
    ],
)
def test_out_of_range_settings_are_refused(args: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        SpinWindow(**args)
    assert info.value.field_name == field
    assert str(info.value).startswith(f"SpinWindow.{field}:")


# --- BusyPollSelector on a socket pair ------------------------------------------------------


class FakeClock:
    """Each reading advances 10 µs: a poll loop sees time pass without sleeping for real."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10e-6
        return self.now


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def open_window(max_s: float = 100e-6) -> SpinWindow:
    """A window grown to ``max_s``, its counters back at zero."""
    w = SpinWindow(max_s)
    while w.window_s < max_s:
        w.slept(0, woke_on_io=True)
    w.stats = SpinStats()
    return w


def test_ready_io_is_caught_by_polling(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sel = BusyPollSelector(open_window(), clock=FakeClock())
    sel.register(a, selectors.EVENT_READ)
    b.send(b"x")
    ready = sel.select(None)
    assert [key.fileobj for key, _ in ready] == [a]
    assert sel.window.stats.caught == 1 and sel.window.stats.slept == 0
    sel.close()


def test_with_nothing_to_read_it_polls_the_window_then_sleeps(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    yields = []
    monkeypatch.setattr(busypoll, "_yield", lambda: yields.append(1))
    sel = BusyPollSelector(open_window(100e-6), clock=FakeClock())
    sel.register(a, selectors.EVENT_READ)
    assert sel.select(0.001) == []  # the timeout passes (for real: one millisecond)
    assert len(yields) >= 5  # it gave the CPU away between polls (10 fake µs per reading)
    assert sel.window.stats.slept == 1 and sel.window.stats.caught == 0
    assert 90e-6 <= sel.spin_s <= 200e-6  # fake time: one window, not more
    sel.close()


def test_a_zero_timeout_neither_polls_nor_counts(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    sel = BusyPollSelector(open_window(), clock=FakeClock())
    sel.register(a, selectors.EVENT_READ)
    assert sel.select(0) == []
    assert sel.spin_s == 0 and sel.window.stats.slept == 0
    sel.close()


# --- loops ------------------------------------------------------------------------------------


def test_new_event_loop_uses_the_selector_and_zero_means_plain_asyncio() -> None:
    loop = busypoll.new_event_loop(50)
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert isinstance(loop._selector, BusyPollSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()
    plain = busypoll.new_event_loop(0)
    try:
        assert not isinstance(getattr(plain, "_selector", None), BusyPollSelector)
    finally:
        plain.close()


def test_the_policy_validates_at_once_and_makes_busy_poll_loops() -> None:
    with pytest.raises(ConfigError):
        EventLoopPolicy(-5)
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(EventLoopPolicy(50))
    try:

        async def selector_kind() -> type:
            return type(asyncio.get_running_loop()._selector)  # type: ignore[attr-defined]

        assert asyncio.run(selector_kind()) is BusyPollSelector
    finally:
        asyncio.set_event_loop_policy(old)


def test_pings_between_two_transports_under_busy_poll(
    make_node_manager: Callable[[str], NodeManager],
) -> None:
    """Real transports on 127.0.0.1, run by ``busypoll.run``: every ping gets its pong."""

    async def scenario() -> tuple[int, BusyPollSelector]:
        a = Transport(make_node_manager("a"), None, fast_transport_config())
        b = Transport(make_node_manager("b"), None, fast_transport_config())
        await a.start()
        await b.start()
        try:
            conn = await a.connect(b.address)
            waiting: dict[str, asyncio.Future[None]] = {}

            def on_pong(_conn: Any, m: Any) -> None:
                if m.type == envelope.PONG and m.reply_to in waiting:
                    waiting.pop(m.reply_to).set_result(None)

            a.on_message(on_pong)
            loop = asyncio.get_running_loop()
            for i in range(50):
                ping = envelope.ping(a.node_manager.identity.id, conn.peer_id, i)  # type: ignore[union-attr]
                waiting[ping.id] = loop.create_future()
                fut = waiting[ping.id]
                await conn.send(ping)
                await asyncio.wait_for(fut, 2)
            return 50 - len(waiting), loop._selector  # type: ignore[attr-defined]
        finally:
            await a.stop()
            await b.stop()

    answered, selector = busypoll.run(scenario(), busy_poll_us=100)
    assert answered == 50
    assert isinstance(selector, BusyPollSelector)
    assert selector.window.stats.slept + selector.window.stats.caught > 0


def test_run_refuses_a_bad_window_before_running_anything() -> None:
    async def never() -> None:
        raise AssertionError("ran")

    coro = never()
    with pytest.raises(ConfigError):
        busypoll.run(coro, busy_poll_us=5000)
    coro.close()
