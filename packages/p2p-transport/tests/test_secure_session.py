"""The protocol 1.1 session, sans-I/O: replay, reorder and reflection fail by construction."""

from __future__ import annotations

from typing import Any

import pytest
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import TransportConfig, envelope
from p2p.transport.errors import TooManyUndecryptableError
from p2p.transport.handshake import HandshakeInitiator, HandshakeResponder, with_1_1
from p2p.transport.limits import ReplayGuard
from p2p.transport.secure_session import FRAME_MAGIC, SecureSession
from p2p.transport.session import Delivery, RawFrame

NOW = 1000.0
WALL = 1_800_000_000.0


def _sessions(**cfg: Any) -> tuple[SecureSession, SecureSession, NodeIdentity, NodeIdentity]:
    """A real 1.1 handshake between two fresh identities, then both ends' sessions."""
    ka, kb = KeyPair.generate(), KeyPair.generate()
    a, b = NodeIdentity.create(ka, "a"), NodeIdentity.create(kb, "b")
    init = HandshakeInitiator(
        a, ka.derive_shared_secret, features=with_1_1(), static_key=ka.private_bytes
    )
    resp = HandshakeResponder(
        b,
        kb.derive_shared_secret,
        lambda _i, _k: True,
        features=with_1_1(),
        static_key=kb.private_bytes,
    )
    decision = resp.receive_hello(envelope.to_text(init.hello()))
    assert decision.reply is not None
    ra = init.receive_ack(envelope.to_text(decision.reply))
    assert init.finish is not None
    rb = resp.receive_finish(envelope.to_text(init.finish)).result
    assert rb is not None and ra.send and ra.receive and rb.send and rb.receive
    config = TransportConfig(**{"rate_burst": 100_000, "rate_refill_per_s": 1e6, **cfg})

    def make(result: Any, own: NodeIdentity) -> SecureSession:
        return SecureSession(
            result.peer,
            result.secret,
            config,
            ReplayGuard.from_config(config),
            NOW,
            send=result.send,
            receive=result.receive,
            own_id=own.id,
        )

    return make(ra, a), make(rb, b), a, b


def _msg(src: NodeIdentity, dst: NodeIdentity, n: int = 0) -> Any:
    return envelope.new_message("get_stats", src.id, dst.id, {"n": n})


def _got(verdict: Any) -> Any:
    assert isinstance(verdict, Delivery), verdict
    return verdict.message


def test_frames_flow_both_ways_and_are_prefixed() -> None:
    sa, sb, a, b = _sessions()
    frame = sa.seal(_msg(a, b))
    assert frame.startswith(FRAME_MAGIC) and not frame.startswith(b"SMSG")
    assert _got(sb.receive(frame, NOW, WALL)).from_ == a.id
    assert _got(sa.receive(sb.seal(_msg(b, a)), NOW, WALL)).from_ == b.id
    assert sa.proven and sb.proven
    assert sa.messages_out == 1 and sb.messages_in == 1 and sb.bytes_in == len(frame)


def test_replayed_frame_is_rejected() -> None:
    sa, sb, a, b = _sessions()
    frame = sa.seal(_msg(a, b))
    _got(sb.receive(frame, NOW, WALL))
    assert sb.receive(frame, NOW, WALL) is None
    assert sb.drops.as_dict()["decrypt"] == 1
    _got(sb.receive(sa.seal(_msg(a, b, 1)), NOW, WALL))  # the genuine stream goes on


def test_reordered_frames_are_rejected_without_losing_the_stream() -> None:
    sa, sb, a, b = _sessions()
    first, second = sa.seal(_msg(a, b, 1)), sa.seal(_msg(a, b, 2))
    assert sb.receive(second, NOW, WALL) is None  # early: wrong nonce
    assert _got(sb.receive(first, NOW, WALL)).payload is not None
    _got(sb.receive(second, NOW, WALL))


def test_reflected_frame_is_rejected() -> None:
    sa, _sb, a, b = _sessions()
    own = sa.seal(_msg(a, b))
    assert sa.receive(own, NOW, WALL) is None  # our own frame sent back: other direction's key
    assert sa.drops.as_dict()["decrypt"] == 1


def test_frame_of_another_session_is_rejected() -> None:
    sa, _sb, a, b = _sessions()
    _sa2, sb2, _a2, _b2 = _sessions()
    assert sb2.receive(sa.seal(_msg(a, b)), NOW, WALL) is None


def test_text_and_unprefixed_frames() -> None:
    sa, sb, a, b = _sessions()
    assert sb.receive('{"type":"ping"}', NOW, WALL) is None
    assert sb.receive(b"UEPS-ish raw frame", NOW, WALL) is None
    sb.raw_frames_enabled = True
    raw = sb.receive(b"\x09raw ueps", NOW, WALL)
    assert isinstance(raw, RawFrame) and raw.data == b"\x09raw ueps"
    _got(sb.receive(sa.seal(_msg(a, b)), NOW, WALL))


def test_misaddressed_message_is_dropped() -> None:
    sa, sb, a, _b = _sessions()
    stranger = NodeIdentity.create(KeyPair.generate(), "c")
    assert sb.receive(sa.seal(_msg(a, stranger)), NOW, WALL) is None
    assert sb.drops.as_dict()["misaddressed"] == 1


def test_a_run_of_bad_frames_closes() -> None:
    _sa, sb, _a, _b = _sessions(max_undecryptable_in_a_row=3)
    sb.receive(FRAME_MAGIC + b"\x00" * 40, NOW, WALL)
    sb.receive(FRAME_MAGIC + b"\x00" * 40, NOW, WALL)
    with pytest.raises(TooManyUndecryptableError):
        sb.receive(FRAME_MAGIC + b"\x00" * 40, NOW, WALL)


def test_rate_limited_frames_keep_the_nonces_in_step() -> None:
    """A frame dropped by the rate limit was still sealed with the next nonce: the receiver
    opens it anyway (and drops it), so the frames after the burst still open, across a
    rekey too. A rate-limited frame that is not the next one consumes nothing."""
    sa, sb, a, b = _sessions(rate_burst=3, rate_refill_per_s=1.0, rekey_after_messages=4)
    frames = [sa.seal(_msg(a, b, i)) for i in range(6)]
    opened = [sb.receive(frame, NOW, WALL) for frame in frames]
    assert [v is not None for v in opened] == [True] * 3 + [False] * 3
    assert sb.drops.as_dict()["rate"] == 3
    sb.receive(FRAME_MAGIC + b"\x00" * 40, NOW, WALL)  # rate-limited garbage: no nonce taken
    last = _msg(a, b, 6)
    assert _got(sb.receive(sa.seal(last), NOW + 2.0, WALL)).id == last.id
    assert sb.frames_opened == 7 and sb.drops.as_dict().get("decrypt", 0) == 0


def test_rekey_across_the_boundary_both_ways() -> None:
    sa, sb, a, b = _sessions(rekey_after_messages=4)
    key_before = sa._send._key
    frames = [sa.seal(_msg(a, b, i)) for i in range(10)]
    assert sa._send._key != key_before  # rekeyed twice (after 4 and 8)
    assert [_got(sb.receive(f, NOW, WALL)).payload for f in frames] == [
        _msg(a, b, i).payload for i in range(10)
    ]
    assert sb._receive._key == sa._send._key and sb.frames_opened == 10
    # a frame of the old key does not open after the boundary (replay across a rekey)
    assert sb.receive(frames[1], NOW, WALL) is None
    for i in range(9):
        _got(sa.receive(sb.seal(_msg(b, a, i)), NOW, WALL))


def test_seal_unsent_takes_the_next_nonce() -> None:
    sa, sb, a, b = _sessions()
    last = sa.seal_unsent(envelope.disconnect(a.id, b.id, "bye", 1000))
    assert sa.messages_out == 0
    assert _got(sb.receive(last, NOW, WALL)).type == "disconnect"
