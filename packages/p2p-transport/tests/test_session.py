"""Session: the per-connection frame judge, driven by explicit clocks and Go's captured frames."""

from __future__ import annotations

from typing import Any

import pytest
from p2p.identity import GoTime, KeyPair, NodeIdentity
from p2p.transport import TransportConfig, envelope, smsg
from p2p.transport.limits import DropCounters, ReplayGuard
from p2p.transport.session import Delivery, RawFrame, Session, TooManyUndecryptableError


def _capture(golden: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    wc = golden["wire_capture"]
    return wc, [f for f in wc["capture"]["frames"] if f["opcode_name"] == "binary"]


def _peer(wc: dict[str, Any], side: str) -> NodeIdentity:
    kp = KeyPair.from_private_bytes(bytes.fromhex(wc[side]["private_key_hex"]))
    return NodeIdentity.create(kp, side)


def _go_seconds(body: str) -> float:
    message = envelope.as_message(body, ValueError)  # type: ignore[arg-type]
    seconds = envelope.ts_seconds(message)
    assert seconds is not None
    return seconds


def _session(wc: dict[str, Any], peer_side: str, **cfg: Any) -> Session:
    secret = bytes.fromhex(wc["shared_secret_hex"])
    config = TransportConfig(**cfg)
    return Session(_peer(wc, peer_side), secret, config, ReplayGuard.from_config(config), 0.0)


def test_every_captured_go_frame_is_delivered_at_capture_time(golden: dict[str, Any]) -> None:
    wc, frames = _capture(golden)
    server_side = _session(wc, "client_identity")  # frames from the Go client
    client_side = _session(wc, "server_identity")  # frames from the Go server
    for i, f in enumerate(frames):
        body = f["decrypted"]["body"]
        session = server_side if f["dir"] == "client->server" else client_side
        verdict = session.receive(bytes.fromhex(f["payload_hex"]), float(i), _go_seconds(body))
        assert isinstance(verdict, Delivery), f["seq"]
        assert verdict.message.to_json().decode() == body
    assert server_side.drops.total == 0 and client_side.drops.total == 0
    assert server_side.messages_in + client_side.messages_in == len(frames)


def test_captured_ping_replayed_later_is_stale(golden: dict[str, Any]) -> None:
    wc, frames = _capture(golden)
    ping = frames[0]
    session = _session(wc, "client_identity")
    sent = _go_seconds(ping["decrypted"]["body"])
    verdict = session.receive(bytes.fromhex(ping["payload_hex"]), 0.0, sent + 301)
    assert verdict is None and session.drops["stale_ts"] == 1
    # window disabled: the reference's behaviour (delivered)
    lax = _session(wc, "client_identity", ts_window=None)
    assert isinstance(lax.receive(bytes.fromhex(ping["payload_hex"]), 0.0, sent + 10_000), Delivery)


def test_captured_frame_replayed_in_window_is_dedup_dropped(golden: dict[str, Any]) -> None:
    wc, frames = _capture(golden)
    frame = bytes.fromhex(frames[0]["payload_hex"])
    now = _go_seconds(frames[0]["decrypted"]["body"])
    session = _session(wc, "client_identity")
    assert isinstance(session.receive(frame, 0.0, now), Delivery)
    assert session.receive(frame, 1.0, now) is None
    assert session.drops["dedup"] == 1
    # remembered for as long as its own ts is acceptable (not arrival + TTL): never again
    assert session.receive(frame, 301.0, now) is None
    assert session.receive(frame, 600.0, now + 299.0) is None
    assert session.drops["dedup"] == 3
    assert session.receive(frame, 700.0, now + 301.0) is None
    assert session.drops["stale_ts"] == 1


@pytest.fixture
def link() -> tuple[Session, Session, NodeIdentity, NodeIdentity, bytes]:
    ka, kb = KeyPair.generate(), KeyPair.generate()
    a, b = NodeIdentity.create(ka, "a"), NodeIdentity.create(kb, "b")
    secret = ka.derive_shared_secret(kb.public_key_b64)
    cfg = TransportConfig(rate_burst=3, rate_refill_per_s=2.0, max_undecryptable_in_a_row=3)
    totals = DropCounters()
    at_a = Session(
        b, secret, cfg, ReplayGuard.from_config(TransportConfig()), 0.0, drops_parent=totals
    )
    at_b = Session(
        a, secret, cfg, ReplayGuard.from_config(TransportConfig()), 0.0, drops_parent=totals
    )
    return at_a, at_b, a, b, secret


def _now_s() -> float:
    return GoTime.now().timestamp_ns() / 1e9


def test_seal_and_receive_between_two_sessions(link: Any) -> None:
    at_a, at_b, a, b, _secret = link
    frame = at_a.seal(envelope.new_message("get_stats", a.id, b.id, None))
    verdict = at_b.receive(frame, 0.1, _now_s())
    assert isinstance(verdict, Delivery) and verdict.message.from_ == a.id
    assert at_a.messages_out == 1 and at_a.bytes_out == len(frame)
    assert at_b.messages_in == 1 and at_b.frames_in == 1 and at_b.last_activity == 0.1


def test_rate_limit_continuous_refill(link: Any) -> None:
    at_a, at_b, a, b, _secret = link
    now = _now_s()
    frames = [at_a.seal(envelope.new_message("get_stats", a.id, b.id, None)) for _ in range(6)]
    verdicts = [at_b.receive(f, 0.0, now) for f in frames[:4]]
    assert [isinstance(v, Delivery) for v in verdicts] == [True, True, True, False]
    assert at_b.drops["rate"] == 1
    assert at_b.receive(frames[4], 0.25, now) is None  # 0.5 token: not yet
    assert isinstance(at_b.receive(frames[5], 0.5, now), Delivery)  # 1 token after 0.5 s
    assert at_b.last_activity == 0.5  # dropped frames still count as activity


def test_undecryptable_run_raises_at_threshold(link: Any) -> None:
    at_a, at_b, a, b, _secret = link
    now = _now_s()
    bad = smsg.encrypt("{}", "not the link password")
    t = 0.0
    for _ in range(2):
        t += 1
        assert at_b.receive(bad, t, now) is None
    good = at_a.seal(envelope.new_message("get_stats", a.id, b.id, None))
    assert isinstance(at_b.receive(good, t + 1, now), Delivery)
    assert at_b.undecryptable_in_a_row == 0
    assert at_b.receive(b"garbage", t + 2, now) is None
    assert at_b.receive("text frame", t + 3, now) is None
    with pytest.raises(TooManyUndecryptableError) as info:
        at_b.receive(bad, t + 4, now)
    assert info.value.count == 3
    assert at_b.drops["decrypt"] == 5


def test_raw_frames_routed_only_when_enabled(link: Any) -> None:
    at_a, at_b, a, b, _secret = link
    now = _now_s()
    ueps = b"\x09\x01\x01\x05payload"
    assert at_b.receive(ueps, 0.0, now) is None  # off: tried as SMSG (Go) and dropped
    at_b.raw_frames_enabled = True
    assert at_b.receive(ueps, 1.0, now) == RawFrame(ueps)
    smsg_frame = at_a.seal(envelope.new_message("get_stats", a.id, b.id, None))
    assert isinstance(at_b.receive(smsg_frame, 2.0, now), Delivery)


def test_missing_ts_is_stale_when_checking(link: Any) -> None:
    _at_a, at_b, _a, _b, secret = link
    body = '{"id":"x1","type":"get_stats","from":"a","to":"b","payload":null}'
    frame = smsg.encrypt(body, smsg.password_for_secret(secret))
    assert at_b.receive(frame, 0.0, _now_s()) is None
    assert at_b.drops["stale_ts"] == 1
