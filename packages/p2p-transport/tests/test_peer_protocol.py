"""PeerProtocol: every per-connection policy with an injected clock and no sockets.

Frames in (real SMSG under a real secret), events out; timers through ``tick`` with the
write buffer size given as a number.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import TransportConfig, envelope, smsg
from p2p.transport.handshake import HandshakeResult
from p2p.transport.limits import DropCounters, DropReason, ReplayGuard
from p2p.transport.messages import DisconnectCode
from p2p.transport.protocol import (
    FRAME_HEADER_MAX,
    PROVEN,
    CloseRequested,
    Dropped,
    Events,
    MessageReceived,
    PeerProtocol,
    PingDue,
    RawFrameReceived,
    ReplyDue,
    WriteStalled,
)
from pytest_p2p.transport_fixtures import body

SECRET = os.urandom(32)
PEER = NodeIdentity.create(KeyPair.generate(), "peer")
ME = NodeIdentity.create(KeyPair.generate(), "me")
PASSWORD = smsg.password_for_secret(SECRET)
UEPS_SETUP = b"\x09" + bytes(60)


def _proto(
    *,
    outbound: bool = False,
    raw_frames: bool = False,
    ping_phase: float | None = None,
    parent: DropCounters | None = None,
    **cfg: object,
) -> PeerProtocol:
    config = TransportConfig(**cfg)  # type: ignore[arg-type]
    return PeerProtocol(
        HandshakeResult(PEER, SECRET, features=("ueps/1",)),
        config,
        ReplayGuard.from_config(config),
        0.0,
        outbound=outbound,
        own_id=ME.id,
        drops_parent=parent,
        raw_frames=raw_frames,
        ping_phase=ping_phase,
    )


def _frame(type_: str = "get_stats", payload: object = None) -> bytes:
    return smsg.encrypt(body(type_, PEER.id, ME.id, payload), PASSWORD)


def _kinds(events: Events) -> list[type]:
    return [type(e) for e in events]


def test_built_from_the_handshake_result_carrying_its_secret() -> None:
    p = _proto()
    assert p.shared_secret == SECRET and p.features == ("ueps/1",) and p.peer == PEER
    assert SECRET.hex() not in repr(p)
    frame = p.send_message(envelope.ping(ME.id, PEER.id, 1))
    # the peer, holding the same secret, opens what we seal
    opened = json.loads(smsg.decrypt(frame, PASSWORD).body)
    assert opened["type"] == "ping" and opened["from"] == ME.id
    assert p.session.messages_out == 1 and p.session.bytes_out == len(frame)


def test_outbound_is_proven_from_the_start() -> None:
    p = _proto(outbound=True)
    events = p.receive_frame(_frame(), 1.0, time.time())
    assert _kinds(events) == [MessageReceived]
    assert p.prove() == ()


def test_inbound_is_on_probation_until_a_fresh_frame_decrypts() -> None:
    p = _proto()
    assert not p.proven
    assert p.tick(5.0, 0) == ()  # unproven: no keepalive ping, no idle check yet
    frame = _frame()
    events = p.receive_frame(frame, 1.0, time.time())
    assert events[0] is PROVEN
    assert isinstance(events[1], MessageReceived)
    assert events[1].size == len(frame) and events[1].message.from_ == PEER.id
    assert p.proven
    # proven once: the next message is just a message
    assert _kinds(p.receive_frame(_frame(), 2.0, time.time())) == [MessageReceived]


def test_a_replay_is_dropped_with_its_reason_and_proves_nothing() -> None:
    parent = DropCounters()
    p = _proto(parent=parent)
    p.session.proven = True
    p.reported_proven = True
    frame = _frame()
    assert _kinds(p.receive_frame(frame, 1.0, time.time())) == [MessageReceived]
    assert p.receive_frame(frame, 2.0, time.time()) == (Dropped(DropReason.DEDUP),)
    assert parent["dedup"] == 1


def test_undecryptable_frames_while_unproven_are_dropped_then_closed() -> None:
    p = _proto(max_undecryptable_in_a_row=3)
    assert p.receive_frame(b"SMSG garbage", 1.0, time.time()) == (Dropped(DropReason.DECRYPT),)
    assert p.receive_frame(b"SMSG garbage", 2.0, time.time()) == (Dropped(DropReason.DECRYPT),)
    (close,) = p.receive_frame(b"SMSG garbage", 3.0, time.time())
    assert isinstance(close, CloseRequested)
    assert close.cause == "undecryptable" and close.reason == "too many undecryptable frames"
    assert close.code == int(DisconnectCode.PROTOCOL_ERROR)
    assert PEER.id in close.detail
    assert not p.proven


def test_rate_limit_abuse_requests_a_close() -> None:
    p = _proto(outbound=True, rate_burst=1, rate_refill_per_s=0.001, max_rate_limited=2)
    wall = time.time()
    assert _kinds(p.receive_frame(_frame(), 0.0, wall)) == [MessageReceived]
    assert p.receive_frame(_frame(), 0.1, wall) == (Dropped(DropReason.RATE),)
    assert p.receive_frame(_frame(), 0.2, wall) == (Dropped(DropReason.RATE),)
    (close,) = p.receive_frame(_frame(), 0.3, wall)
    assert isinstance(close, CloseRequested) and close.cause == "rate_limit"
    assert close.reason == "rate limit exceeded" and close.code is not None


def test_the_raw_frame_held_while_unproven_is_released_by_the_proof() -> None:
    p = _proto(raw_frames=True)
    assert p.receive_frame(UEPS_SETUP, 1.0, time.time()) == ()  # held, not routed
    assert p.receive_frame(b"\x09second", 1.0, time.time()) == (Dropped(DropReason.UNPROVEN),)
    events = p.receive_frame(_frame(), 2.0, time.time())
    assert _kinds(events) == [type(PROVEN), RawFrameReceived, MessageReceived]
    assert events[1] == RawFrameReceived(UEPS_SETUP, held=True)
    assert p.session.held_raw is None
    # proven: raw frames go straight through, not held
    assert p.receive_frame(b"\x09next", 3.0, time.time()) == (RawFrameReceived(b"\x09next"),)


def test_a_held_frame_is_not_released_once_raw_frames_are_off() -> None:
    p = _proto(raw_frames=True)
    p.receive_frame(UEPS_SETUP, 1.0, time.time())
    p.session.raw_frames_enabled = False
    assert p.prove() == (PROVEN,)
    assert p.prove() == ()  # reported once


def test_a_ping_is_answered_with_a_pong_before_it_is_dispatched() -> None:
    p = _proto(outbound=True)
    wall = time.time()
    events = p.receive_frame(_frame("ping", {"sentAt": 123}), 1.0, wall)
    assert _kinds(events) == [ReplyDue, MessageReceived]
    reply = events[0]
    assert isinstance(reply, ReplyDue)
    pong = reply.message
    assert pong.type == "pong" and pong.to == PEER.id and pong.from_ == ME.id
    received = events[1]
    assert isinstance(received, MessageReceived) and pong.reply_to == received.message.id
    quiet = _proto(outbound=True, answer_pings=False)
    assert _kinds(quiet.receive_frame(_frame("ping", {"sentAt": 1}), 1.0, wall)) == [
        MessageReceived
    ]


def test_ping_due_once_per_interval_from_a_spread_phase() -> None:
    p = _proto(outbound=True, ping_interval=30.0, ping_phase=0.5)
    assert p.last_ping_sent == -15.0  # first ping due half way through the first interval
    assert p.tick(14.9, 0) == ()
    assert p.tick(15.0, 0) == (PingDue(-15.0),)
    ping = p.ping(15.0, time.time())
    assert ping.type == "ping" and ping.to == PEER.id
    assert p.tick(20.0, 0) == ()
    p.receive_frame(_frame(), 40.0, time.time())  # activity: not idle
    assert p.tick(45.0, 0) == (PingDue(15.0),)
    p.ping(45.0, time.time(), keepalive=False)  # a probe leaves the phase alone
    assert p.tick(45.5, 0) == (PingDue(15.0),)


def test_phases_of_a_crowd_spread_over_the_interval() -> None:
    firsts = [
        -_proto(outbound=True, ping_interval=30.0, ping_phase=u / 10).last_ping_sent
        for u in range(10)
    ]
    due_at = sorted(30.0 - f for f in firsts)
    assert due_at == pytest.approx([3.0 * i for i in range(10)])
    with pytest.raises(ValueError):
        _proto(ping_phase=1.0)


def test_silent_peer_closed_after_the_idle_timeout() -> None:
    p = _proto(outbound=True, ping_interval=30.0, pong_timeout=10.0)
    p.receive_frame(_frame(), 5.0, time.time())
    p.last_ping_sent = 100.0  # keep PingDue out of the way
    assert p.tick(45.0, 0) == ()
    (close,) = p.tick(45.5, 0)
    assert isinstance(close, CloseRequested)
    assert close.reason == "idle timeout" and close.code is None and close.cause == ""
    assert close.detail == "silent for 40.5 s"


def test_unproven_connection_expires_after_the_idle_timeout() -> None:
    p = _proto(ping_interval=30.0, pong_timeout=10.0)
    assert p.tick(40.0, 0) == ()
    (close,) = p.tick(40.1, 0)
    assert isinstance(close, CloseRequested)
    assert close.cause == "unproven" and close.reason == "never proved its key"
    assert close.code is None


def test_write_stall_after_send_timeout_without_progress() -> None:
    p = _proto(outbound=True, send_timeout=10.0)
    p.write_started(1.0)
    assert p.tick(2.0, 5000) == ()  # the first look at a wait starts its clock
    assert p.tick(12.0, 5000) == ()
    (stall,) = p.tick(12.5, 5000)
    assert isinstance(stall, WriteStalled) and stall.waited == pytest.approx(10.5)


def test_a_finishing_write_or_a_draining_buffer_is_progress() -> None:
    p = _proto(outbound=True, send_timeout=10.0)
    p.write_started(0.0)
    p.tick(1.0, 5000)
    p.write_finished(9.0)
    p.write_started(9.5)  # another write waits: the finished one was progress
    assert p.tick(15.0, 5000) == ()
    assert p.tick(24.0, 4000) == ()  # the buffer shrank
    assert p.writes_pending == 1
    p.write_finished(24.5)
    assert not p.write_stalled(0, 100.0)  # nothing waits: never stalled


def test_outbound_byte_cap() -> None:
    cap = 2 * 1024 * 1024
    p = _proto(outbound=True, max_outbound_bytes=cap)
    assert not p.would_overflow(0, 2 * cap)  # an empty buffer always takes one frame
    assert not p.would_overflow(500, cap - 500 - FRAME_HEADER_MAX)
    assert p.would_overflow(500, cap - 500 - FRAME_HEADER_MAX + 1)


def test_disconnect_frame_is_sealed_and_not_counted() -> None:
    p = _proto(outbound=True)
    frame = p.disconnect_frame("bye", 1000)
    opened = json.loads(smsg.decrypt(frame, PASSWORD).body)
    assert opened["type"] == "disconnect" and opened["to"] == PEER.id
    assert p.session.messages_out == 0
