"""Dispatcher semantics: breaker before lookup, one replacing handler, sync and async."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest
from p2p import ueps

SECRET = b"s" * 32


def packet(impl: ModuleType, intent: int, threat: int = 0) -> object:
    return impl.read_and_verify(impl.build(intent, b"x", SECRET, threat_score=threat), SECRET)


def test_threshold_is_strict(impl: ModuleType) -> None:
    d = ueps.Dispatcher()
    got: list[int] = []
    d.register(ueps.INTENT_COMPUTE, lambda p: got.append(p.header.threat_score))
    d.dispatch(packet(impl, 0x20, 50_000))
    with pytest.raises(ueps.ThreatScoreExceeded):
        d.dispatch(packet(impl, 0x20, 50_001))
    assert got == [50_000]


def test_threat_checked_before_intent(impl: ModuleType) -> None:
    d = ueps.Dispatcher()
    with pytest.raises(ueps.ThreatScoreExceeded):
        d.dispatch(packet(impl, 0x77, 60_000))
    with pytest.raises(ueps.UnknownIntent):
        d.dispatch(packet(impl, 0x77, 0))


@pytest.mark.parametrize("log_drops", [True, False])
def test_drops_are_logged_unless_the_caller_logs_them(
    impl: ModuleType, log_drops: bool, caplog: pytest.LogCaptureFixture
) -> None:
    d = ueps.Dispatcher(log_drops=log_drops)
    caplog.set_level("WARNING", logger="p2p.ueps.dispatcher")
    for _ in range(100):
        with pytest.raises(ueps.ThreatScoreExceeded):
            d.dispatch(packet(impl, 0x77, 60_000))
        with pytest.raises(ueps.UnknownIntent):
            d.dispatch(packet(impl, 0x77, 0))
    assert len(caplog.records) == (200 if log_drops else 0)


def test_register_replaces(impl: ModuleType) -> None:
    d = ueps.Dispatcher()
    d.register(ueps.INTENT_REHAB, lambda p: "first")
    d.register(ueps.INTENT_REHAB, lambda p: "second")
    assert d.dispatch(packet(impl, 0x30)) == "second"
    d.unregister(ueps.INTENT_REHAB)
    with pytest.raises(ueps.UnknownIntent):
        d.dispatch(packet(impl, 0x30))


def test_async_handlers(impl: ModuleType) -> None:
    d = ueps.Dispatcher()

    async def handler(p: object) -> str:
        await asyncio.sleep(0)
        return "done"

    d.register(ueps.INTENT_CUSTOM, handler)
    assert asyncio.run(d.dispatch_async(packet(impl, 0xFF))) == "done"
    d.register(ueps.INTENT_CUSTOM, lambda p: "sync")
    assert asyncio.run(d.dispatch_async(packet(impl, 0xFF))) == "sync"


def test_nil_packet_and_bad_intent() -> None:
    d = ueps.Dispatcher()
    with pytest.raises(ueps.UEPSError, match="nil packet"):
        d.dispatch(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        d.register(256, lambda p: None)


def test_constants() -> None:
    assert (ueps.INTENT_HANDSHAKE, ueps.INTENT_COMPUTE, ueps.INTENT_REHAB, ueps.INTENT_CUSTOM) == (
        0x01,
        0x20,
        0x30,
        0xFF,
    )
    assert ueps.THREAT_SCORE_THRESHOLD == 50_000
