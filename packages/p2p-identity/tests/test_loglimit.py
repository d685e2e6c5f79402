"""LogLimiter / LimitedLogger: a flood of one kind of line writes a bounded number of lines."""

from __future__ import annotations

import logging

import pytest
from p2p.identity import LimitedLogger, LogLimiter
from p2p.identity.loglimit import Suppressed


def test_first_burst_pass_then_counted_then_one_summary() -> None:
    lim = LogLimiter(burst=3, interval=10.0)
    got = [lim.hit("k", 0.0 + i * 0.001) for i in range(100)]
    assert [w for w, _ in got] == [True] * 3 + [False] * 97
    assert all(s is None for _, s in got)
    write, summary = lim.hit("k", 10.5)
    assert write and summary == Suppressed("k", 97, 10.5)
    assert lim.total_suppressed == 97


def test_keys_have_their_own_budgets() -> None:
    lim = LogLimiter(burst=1, interval=10.0)
    assert lim.hit("a", 0)[0] and not lim.hit("a", 1)[0]
    assert lim.hit("b", 1)[0]


def test_a_quiet_interval_gives_no_summary() -> None:
    lim = LogLimiter(burst=2, interval=1.0)
    lim.hit("k", 0)
    assert lim.hit("k", 5) == (True, None)


def test_flush_reports_finished_windows() -> None:
    lim = LogLimiter(burst=0, interval=1.0)
    for t in range(5):
        lim.hit("k", t / 10)
    assert lim.flush(0.5) == []
    assert lim.flush(2.0) == [Suppressed("k", 5, 2.0)]
    assert lim.flush(9.0) == []


def test_forgotten_keys_still_count() -> None:
    lim = LogLimiter(burst=0, interval=1.0, max_keys=2)
    lim.hit("a", 0)
    lim.hit("b", 0)
    lim.hit("c", 0)  # forgets "a" (1 suppressed)
    _, summary = lim.hit("b", 5)
    assert summary == Suppressed("b", 2, 5)


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        LogLimiter(burst=-1)
    with pytest.raises(ValueError):
        LogLimiter(interval=0)
    with pytest.raises(ValueError):
        LogLimiter(max_keys=0)


def test_limited_logger_writes_a_bounded_number_of_records(caplog) -> None:
    now = [0.0]
    logger = logging.getLogger("test.loglimit")
    limited = LimitedLogger(logger, burst=5, interval=60.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.loglimit")
    for i in range(10_000):
        now[0] = i * 0.001
        limited.warning("junk", "junk frame %d", i)
    assert len(caplog.records) == 5
    now[0] = 61.0
    limited.warning("junk", "junk frame again")
    texts = [r.getMessage() for r in caplog.records]
    assert texts[5] == "suppressed 9995 similar lines in the last 61 s: junk"
    assert texts[6] == "junk frame again"
    now[0] = 200.0
    for _ in range(9):
        limited.warning("junk", "x")
    limited.flush()  # this window is not over yet
    assert caplog.records[-1].getMessage() == "x"
    now[0] = 300.0
    limited.flush()
    assert caplog.records[-1].getMessage() == "suppressed 4 similar lines in the last 100 s: junk"


def test_disabled_level_is_not_counted(caplog) -> None:
    logger = logging.getLogger("test.loglimit.off")
    caplog.set_level(logging.WARNING, logger="test.loglimit.off")
    limited = LimitedLogger(logger, burst=1)
    for _ in range(100):
        assert not limited.debug("k", "quiet")
    assert limited.limiter.total_suppressed == 0
    assert limited.warning("k", "loud")
