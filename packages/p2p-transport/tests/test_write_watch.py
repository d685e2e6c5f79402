"""The write-stall judgement without sockets: snapshots in, an injected clock."""

from __future__ import annotations

from p2p.transport.connection import WriteWatch

TIMEOUT = 10.0


def test_nothing_waiting_never_stalls() -> None:
    watch = WriteWatch(0.0)
    assert not watch.stalled(0, 0, 100.0, TIMEOUT)
    assert not watch.stalled(0, 0, 1000.0, TIMEOUT)


def test_library_bytes_that_never_leave_stall_without_any_send_of_ours() -> None:
    """Pongs websockets wrote itself, growing, never read: stalled after the timeout."""
    watch = WriteWatch(0.0)
    assert not watch.stalled(0, 0, 50.0, TIMEOUT)  # idle for long: no debt carried over
    assert not watch.stalled(4096, 0, 52.5, TIMEOUT)  # a wait starts here
    assert not watch.stalled(9000, 0, 55.0, TIMEOUT)
    assert not watch.stalled(20000, 0, 62.5, TIMEOUT)
    assert watch.stalled(30000, 0, 63.0, TIMEOUT)


def test_a_shrinking_buffer_is_progress() -> None:
    watch = WriteWatch(0.0)
    watch.stalled(100_000, 0, 1.0, TIMEOUT)
    for t in range(2, 40, 2):  # a slow reader: the buffer shrinks a little each look
        assert not watch.stalled(100_000 - t * 1000, 0, float(t), TIMEOUT)
    assert not watch.stalled(61_000, 0, 41.0, TIMEOUT)  # shrank once more
    assert watch.stalled(61_000, 0, 52.0, TIMEOUT)


def test_our_sends_finishing_are_progress() -> None:
    watch = WriteWatch(0.0)
    watch.stalled(0, 1, 1.0, TIMEOUT)
    for t in range(2, 60, 3):
        watch.progressed(float(t))  # each send completes (the buffer drained below the mark)
        assert not watch.stalled(70_000, 1, float(t) + 0.5, TIMEOUT)
    assert watch.stalled(70_000, 1, 75.0, TIMEOUT)  # then nothing for > 10 s
