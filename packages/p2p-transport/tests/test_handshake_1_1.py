"""Protocol 1.1 negotiation (Noise XX inside hello/ack/handshake_finish), sans-I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import envelope
from p2p.transport.handshake import (
    FEATURE_1_1,
    HANDSHAKE_FINISH,
    DowngradeError,
    HandshakeInitiator,
    HandshakeMalformedError,
    HandshakeRejectedError,
    HandshakeResponder,
    IdentityBindingError,
    NoiseError,
    State,
    challenge_marks_offer,
    with_1_1,
)

Pair = tuple[KeyPair, NodeIdentity, KeyPair, NodeIdentity]


def _allow_all(peer_id: str, public_key: str) -> bool:
    return True


@pytest.fixture
def pair() -> Pair:
    ka, kb = KeyPair.generate(), KeyPair.generate()
    return ka, NodeIdentity.create(ka, "a"), kb, NodeIdentity.create(kb, "b")


def _initiator(kp: KeyPair, me: NodeIdentity, **kw: Any) -> HandshakeInitiator:
    kw.setdefault("features", with_1_1(["ueps/1"]))
    return HandshakeInitiator(me, kp.derive_shared_secret, static_key=kp.private_bytes, **kw)


def _responder(kp: KeyPair, me: NodeIdentity, **kw: Any) -> HandshakeResponder:
    kw.setdefault("features", with_1_1(["ueps/1"]))
    return HandshakeResponder(
        me, kp.derive_shared_secret, _allow_all, static_key=kp.private_bytes, **kw
    )


def _text(message: Any) -> str:
    return envelope.to_text(message)


def _edit_payload(frame: str, edit: Any) -> str:
    """Re-encode ``frame`` with its payload text changed by ``edit(payload_text)``."""
    outer = json.loads(frame)
    payload = json.dumps(outer["payload"], separators=(",", ":"))
    outer["payload"] = json.loads(edit(payload))
    return json.dumps(outer, separators=(",", ":"))


def test_both_offer_negotiates_1_1(pair: Pair) -> None:
    ka, a, kb, b = pair
    init, resp = _initiator(ka, a), _responder(kb, b)
    hello = _text(init.hello())
    assert json.loads(hello)["payload"]["features"] == ["ueps/1", FEATURE_1_1]
    assert challenge_marks_offer(init.challenge)
    decision = resp.receive_hello(hello)
    assert decision.awaiting_finish and decision.result is None
    assert decision.peer is not None and decision.peer.id == a.id
    assert resp.state is State.AWAITING
    result = init.receive_ack(_text(decision.reply))
    assert result.protocol == "1.1" and result.features == ("ueps/1", FEATURE_1_1)
    assert init.finish is not None and init.finish.type == HANDSHAKE_FINISH
    final = resp.receive_finish(_text(init.finish))
    assert final.accepted and final.result is not None and resp.state is State.DONE
    theirs = final.result
    assert theirs.protocol == "1.1" and theirs.peer.public_key == a.public_key
    assert theirs.handshake_hash == result.handshake_hash
    assert len(result.ueps_key) == 32 and result.ueps_key == theirs.ueps_key
    assert result.ueps_key != result.secret  # UEPS no longer keyed by the static secret
    assert result.send is not None and theirs.receive is not None
    assert theirs.receive.decrypt_with_ad(b"", result.send.encrypt_with_ad(b"", b"hi")) == b"hi"
    assert result.receive is not None and theirs.send is not None
    assert result.receive.decrypt_with_ad(b"", theirs.send.encrypt_with_ad(b"", b"yo")) == b"yo"


def test_peer_that_advertises_nothing_gets_1_0(pair: Pair) -> None:
    """A Go-like initiator (no features): our 1.1-capable responder answers plain 1.0."""
    ka, a, kb, b = pair
    init = HandshakeInitiator(a, ka.derive_shared_secret)
    resp = _responder(kb, b)
    decision = resp.receive_hello(_text(init.hello()))
    assert decision.accepted and decision.result is not None
    assert decision.result.protocol == "1.0"
    ack = json.loads(_text(decision.reply))["payload"]
    assert "noise" not in ack
    assert init.receive_ack(_text(decision.reply)).protocol == "1.0"


def test_go_like_responder_gives_1_0_to_our_offer(pair: Pair) -> None:
    ka, a, kb, b = pair
    init = _initiator(ka, a)
    resp = HandshakeResponder(b, kb.derive_shared_secret, _allow_all)  # no 1.1, no features
    decision = resp.receive_hello(_text(init.hello()))
    assert decision.accepted
    result = init.receive_ack(_text(decision.reply))
    assert result.protocol == "1.0" and init.finish is None


def test_stripped_offer_is_detected_by_the_responder(pair: Pair) -> None:
    ka, a, kb, b = pair
    init, resp = _initiator(ka, a), _responder(kb, b)

    def strip(payload: str) -> str:
        obj = json.loads(payload)
        obj.pop("noise")
        obj["features"] = ["ueps/1"]
        return json.dumps(obj, separators=(",", ":"))

    decision = resp.receive_hello(_edit_payload(_text(init.hello()), strip))
    assert not decision.accepted and isinstance(decision.error, DowngradeError)
    with pytest.raises(HandshakeRejectedError, match="stripped"):
        init.receive_ack(_text(decision.reply))


def test_stripped_ack_is_refused_by_a_pinning_or_requiring_initiator(pair: Pair) -> None:
    ka, a, kb, b = pair
    for kwargs in ({"require_1_1": True}, {"pinned": lambda key: key == b.public_key}):
        init, resp = _initiator(ka, a, **kwargs), _responder(kb, b)
        decision = resp.receive_hello(_text(init.hello()))

        def strip(payload: str) -> str:
            obj = json.loads(payload)
            obj.pop("noise")
            obj.pop("features")
            return json.dumps(obj, separators=(",", ":"))

        with pytest.raises(DowngradeError):
            init.receive_ack(_edit_payload(_text(decision.reply), strip))


def test_half_stripped_ack_is_refused_even_unpinned(pair: Pair) -> None:
    ka, a, kb, b = pair
    init, resp = _initiator(ka, a), _responder(kb, b)
    decision = resp.receive_hello(_text(init.hello()))

    def drop_noise(payload: str) -> str:
        obj = json.loads(payload)
        obj.pop("noise")
        return json.dumps(obj, separators=(",", ":"))

    with pytest.raises(DowngradeError, match="half"):
        init.receive_ack(_edit_payload(_text(decision.reply), drop_noise))


def test_altered_features_inside_1_1_fail_the_transcript(pair: Pair) -> None:
    ka, a, kb, b = pair
    init, resp = _initiator(ka, a), _responder(kb, b)
    hello = _edit_payload(_text(init.hello()), lambda p: p.replace('"ueps/1",', ""))
    decision = resp.receive_hello(hello)
    assert decision.awaiting_finish  # the responder cannot tell yet ...
    with pytest.raises(NoiseError):  # ... the initiator can: the prologues differ
        init.receive_ack(_text(decision.reply))
    # and the other way: the ack's features changed in flight
    init, resp = _initiator(ka, a), _responder(kb, b)
    decision = resp.receive_hello(_text(init.hello()))
    ack = _edit_payload(_text(decision.reply), lambda p: p.replace('"ueps/1",', ""))
    with pytest.raises(NoiseError, match="altered"):
        init.receive_ack(ack)


def test_pinned_or_required_responder_refuses_1_0(pair: Pair) -> None:
    ka, a, kb, b = pair
    for kwargs, reason in (
        ({"require_1_1": True}, "required"),
        ({"pinned": lambda key: key == a.public_key}, "pinned"),
    ):
        init = HandshakeInitiator(a, ka.derive_shared_secret)
        decision = _responder(kb, b, **kwargs).receive_hello(_text(init.hello()))
        assert isinstance(decision.error, DowngradeError)
        with pytest.raises(HandshakeRejectedError, match=reason):
            init.receive_ack(_text(decision.reply))


def _impostor_finish(resp: HandshakeResponder, alice: NodeIdentity, static: Any) -> Any:
    """Mallory names Alice in the hello and drives the Noise side with ``static``."""
    from p2p.transport.handshake import _noise_split, _with_noise

    mallory = HandshakeInitiator(
        alice, lambda _key: bytes(32), features=with_1_1(), static_key=bytes(range(32))
    )
    mallory._static = static
    decision = resp.receive_hello(_text(mallory.hello()))
    assert decision.awaiting_finish and decision.reply is not None
    hs = mallory._noise
    assert hs is not None
    split = _noise_split(decision.reply.payload)
    assert split is not None
    hs.read_message(split[1])  # she skips the 1.0 response she cannot check
    third = envelope.new_message(HANDSHAKE_FINISH, alice.id, resp.identity.id, None)
    third.payload = _with_noise('{"protocol":"1.1"}', hs.write_message(b""))
    return resp.receive_finish(_text(third))


def test_impostor_claiming_a_known_key_cannot_finish(pair: Pair) -> None:
    """Mallory sends a hello naming Alice's identity but holds only her own key."""
    from p2p.transport.noise import KeyPair as NoiseKeyPair

    ka, alice, kb, b = pair
    km = KeyPair.generate()
    # her own static key: message 3 decrypts, but the key is not the hello's identity's
    final = _impostor_finish(_responder(kb, b), alice, NoiseKeyPair(km.private_bytes))
    assert not final.accepted and isinstance(final.error, IdentityBindingError)
    # Alice's public key with Mallory's private key: ``se`` differs, message 3 fails
    fake = NoiseKeyPair(km.private_bytes)
    fake.public = ka.public_bytes
    resp = _responder(kb, b)
    final = _impostor_finish(resp, alice, fake)
    assert not final.accepted and isinstance(final.error, NoiseError)
    assert resp.result is None and resp.state is State.FAILED


def test_garbage_finish_never_raises(pair: Pair) -> None:
    ka, a, kb, b = pair
    for bad in ("not json", '{"type":"handshake_finish","payload":{"noise":"AAAA"}}', "{}"):
        init, resp = _initiator(ka, a), _responder(kb, b)
        decision = resp.receive_hello(_text(init.hello()))
        init.receive_ack(_text(decision.reply))
        final = resp.receive_finish(bad)
        assert not final.accepted and final.error is not None
        assert resp.state is State.FAILED


def test_finish_with_a_flipped_byte_fails(pair: Pair) -> None:
    ka, a, kb, b = pair
    init, resp = _initiator(ka, a), _responder(kb, b)
    decision = resp.receive_hello(_text(init.hello()))
    init.receive_ack(_text(decision.reply))
    assert init.finish is not None
    payload = init.finish.payload or ""
    field = json.loads(payload)["noise"]
    flipped = field[:-6] + ("A" if field[-6] != "A" else "B") + field[-5:]
    init.finish.payload = payload.replace(field, flipped)
    final = resp.receive_finish(_text(init.finish))
    assert isinstance(final.error, (NoiseError, HandshakeMalformedError))


def test_require_1_1_needs_the_offer(pair: Pair) -> None:
    ka, a, _kb, _b = pair
    with pytest.raises(DowngradeError):
        HandshakeInitiator(a, ka.derive_shared_secret, require_1_1=True)


def test_recorded_1_1_frames_resist_both_static_keys(pair: Pair) -> None:
    """Forward secrecy: record the three handshake messages and a transport frame, then
    give the attacker both static private keys. Every key the attacker can compute (the
    static secret of 1.0, each DH that involves a static key, in place of the unknown
    ephemeral-ephemeral ``ee``) fails to open the recorded message 2 or the frame."""
    import hashlib as _hashlib

    from p2p.transport.handshake import NOISE_PROLOGUE, _noise_split
    from p2p.transport.noise import CipherState, SymmetricState
    from p2p.transport.noise import KeyPair as NoiseKeyPair

    ka, a, kb, b = pair
    init, resp = _initiator(ka, a), _responder(kb, b)
    hello = init.hello()
    decision = resp.receive_hello(_text(hello))
    assert decision.reply is not None
    result = init.receive_ack(_text(decision.reply))
    assert result.send is not None
    frame = result.send.encrypt_with_ad(b"", b'{"type":"get_stats"}')
    # --- the attacker: the recorded text frames and both static private keys
    s_i, s_r = NoiseKeyPair(ka.private_bytes), NoiseKeyPair(kb.private_bytes)
    hello_split = _noise_split(hello.payload)
    ack_split = _noise_split(decision.reply.payload)
    assert hello_split is not None and ack_split is not None
    e_i, msg2 = hello_split[1][:32], ack_split[1]
    e_r = msg2[:32]
    computable = {
        "ss": s_i.dh(s_r.public),
        "es": s_r.dh(e_i),  # = DH(e_i, s_r), which the real handshake mixes
        "se": s_i.dh(e_r),  # = DH(s_i, e_r)
        "static secret": ka.derive_shared_secret(b.public_key),
    }
    opened = 0
    for name, guess in computable.items():
        sym = SymmetricState()
        sym.mix_hash(NOISE_PROLOGUE + hello_split[0].encode())
        sym.mix_hash(e_i)
        sym.mix_hash(b"")  # message 1 payload
        sym.mix_hash(e_r)
        sym.mix_key(guess if len(guess) == 32 else _hashlib.sha256(guess).digest())
        try:
            sym.decrypt_and_hash(msg2[32:80])
            opened += 1
        except NoiseError:
            pass
        # and straight at the transport frame: the guess as a key, and the guessed chain's split
        for cipher in (CipherState(guess[:32]), *sym.split()):
            with pytest.raises(NoiseError):
                cipher.decrypt_with_ad(b"", frame)
        assert name
    assert opened == 0


def test_captured_go_hello_gets_the_go_ack_from_a_1_1_responder(golden: dict[str, Any]) -> None:
    """Go never offers 1.1: a 1.1-capable responder answers its captured hello exactly as
    the Go responder did (same payload keys and values, same challenge response)."""
    wc = golden["wire_capture"]
    frames = [f for f in wc["capture"]["frames"] if f.get("opcode") == 1]
    go_ack = json.loads(frames[1]["payload_text"])
    server_kp = KeyPair.from_private_bytes(bytes.fromhex(wc["server_identity"]["private_key_hex"]))
    me = NodeIdentity.from_dict(go_ack["payload"]["identity"])
    resp = _responder(server_kp, me)
    assert resp.supports_1_1
    decision = resp.receive_hello(frames[0]["payload_text"])
    assert decision.accepted and decision.result is not None
    assert decision.result.protocol == "1.0"
    ours = json.loads(_text(decision.reply))
    assert ours["payload"] == {**go_ack["payload"], "features": ["ueps/1"]}
    plain = _responder(server_kp, me, features=with_1_1())  # only 1.1 configured
    ours = json.loads(_text(plain.receive_hello(frames[0]["payload_text"]).reply))
    assert ours["payload"] == go_ack["payload"]
    assert list(ours) == list(go_ack)
