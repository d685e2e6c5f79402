"""Proof of key, rate-excess close and the threat table, sans-I/O with injected clocks.

An inbound session starts unproven: only a fresh (in-window, never seen), correctly
addressed frame that decrypts proves the peer holds its key; a replay cannot.
"""

from __future__ import annotations

import os
import time

import pytest
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import TransportConfig, smsg
from p2p.transport.handshake import REASON_SELF, HandshakeInitiator, HandshakeResponder
from p2p.transport.limits import ReplayGuard
from p2p.transport.session import (
    MAX_HELD_RAW_FRAME,
    Delivery,
    RateLimitExceededError,
    Session,
    TooManyUndecryptableError,
)
from p2p.transport.ueps_channel import ThreatTracker
from pytest_p2p.transport_fixtures import body, go_now

SECRET = os.urandom(32)
PEER = NodeIdentity.create(KeyPair.generate(), "peer")
ME = NodeIdentity.create(KeyPair.generate(), "me")


def _frame(**kw: str) -> bytes:
    return smsg.encrypt(
        body("get_stats", PEER.id, ME.id, None, **kw), smsg.password_for_secret(SECRET)
    )


def _unproven(guard: ReplayGuard | None = None, **cfg: object) -> Session:
    config = TransportConfig(**cfg)  # type: ignore[arg-type]
    replay = guard if guard is not None else ReplayGuard.from_config(config)
    return Session(PEER, SECRET, config, replay, 0.0, own_id=ME.id, proven=False)


def test_a_fresh_frame_proves_the_key() -> None:
    s = _unproven()
    assert not s.proven
    assert isinstance(s.receive(_frame(), 1.0, time.time()), Delivery)
    assert s.proven


def test_a_replay_never_proves() -> None:
    guard = ReplayGuard.from_config(TransportConfig())
    recorded = _frame()
    live = Session(PEER, SECRET, TransportConfig(), guard, 0.0, own_id=ME.id)
    assert isinstance(live.receive(recorded, 1.0, time.time()), Delivery)
    impostor = _unproven(guard)  # same peer key, same guard: the transport's situation
    assert impostor.receive(recorded, 2.0, time.time()) is None
    assert not impostor.proven and impostor.drops["dedup"] == 1


@pytest.mark.parametrize("offset", [-301.0, 301.0])
def test_stale_or_misaddressed_frames_never_prove(offset: float) -> None:
    s = _unproven()
    assert s.receive(_frame(ts=go_now(offset)), 1.0, time.time()) is None
    reflected = smsg.encrypt(
        body("get_stats", ME.id, PEER.id, None), smsg.password_for_secret(SECRET)
    )
    assert s.receive(reflected, 1.0, time.time()) is None
    assert not s.proven and s.undecryptable_in_a_row == 2


def test_unproven_raw_frames_are_held_once_then_charged_to_the_connection() -> None:
    s = _unproven(max_undecryptable_in_a_row=3)
    s.raw_frames_enabled = True
    setup = b"\x09" + os.urandom(60)
    assert s.receive(setup, 1.0, time.time()) is None
    assert s.held_raw == setup
    assert s.receive(b"\x09junk", 1.0, time.time()) is None  # not routed, counted
    assert s.drops["unproven"] == 1
    with pytest.raises(TooManyUndecryptableError):
        for _ in range(3):  # the held frame counted too: the 3rd junk frame ends it
            s.receive(b"\x09" + os.urandom(MAX_HELD_RAW_FRAME), 1.0, time.time())
    assert s.held_raw == setup


def test_proven_raw_frames_are_routed() -> None:
    s = _unproven()
    s.raw_frames_enabled = True
    s.receive(_frame(), 1.0, time.time())
    assert s.receive(b"\x09ueps", 1.0, time.time()) is not None


def test_a_connection_that_keeps_exceeding_its_rate_limit_is_told_to_close() -> None:
    s = _unproven(rate_burst=5, rate_refill_per_s=1.0, max_rate_limited=10)
    now = 0.0
    for _ in range(15):  # 5 pass, 10 are rate-limited: at the limit, not over it
        s.receive(b"x", now, time.time())
    assert s.drops["rate"] == 10
    s2 = _unproven(rate_burst=5, rate_refill_per_s=1.0, max_rate_limited=10)
    with pytest.raises(RateLimitExceededError) as info:
        for _ in range(16):
            s2.receive(b"x", now, time.time())
    assert info.value.count == 11


def test_rate_excess_is_counted_per_window() -> None:
    s = _unproven(
        rate_burst=1, rate_refill_per_s=0.001, max_rate_limited=3, rate_limited_window=10.0
    )
    s.receive(b"x", 0.0, time.time())
    for t in (1.0, 2.0, 3.0, 12.0, 13.0, 14.0):  # 3 per window: never over
        s.receive(b"x", t, time.time())
    assert s.drops["rate"] == 6


def test_the_responder_refuses_its_own_identity() -> None:
    own = KeyPair.generate()
    me = NodeIdentity.create(own, "me")
    responder = HandshakeResponder(me, own.derive_shared_secret, lambda *_: True)
    hello = HandshakeInitiator(me, own.derive_shared_secret).hello()
    decision = responder.receive_hello(hello)
    assert decision.result is None and decision.error is not None
    assert decision.error.reason == REASON_SELF


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_threat_table_evicts_the_least_dangerous_never_a_ban() -> None:
    clock = Clock()
    tracker = ThreatTracker(clock=clock, threshold=250, cooldown=300, max_peers=8)
    for _ in range(3):
        tracker.record("banned")
    assert tracker.refused("banned")
    for i in range(5000):  # churn of throw-away identities, one violation each
        clock.t += 0.01
        tracker.record(f"throwaway-{i}")
    assert tracker.refused("banned") and len(tracker) == 8


def test_a_full_table_of_bans_does_not_track_newcomers() -> None:
    clock = Clock()
    tracker = ThreatTracker(clock=clock, threshold=50, cooldown=300, max_peers=2)
    tracker.record("a")
    tracker.record("b")
    assert tracker.refused("a") and tracker.refused("b")
    assert not tracker.record("c")
    assert tracker.untracked == 1 and tracker.refused("a") and tracker.refused("b")
    clock.t = 301.0  # the bans ended: they are now the least dangerous
    assert tracker.record("c")  # tracked again: one violation trips this threshold
    assert tracker.refused("c") and len(tracker) == 2
