"""Sans-I/O handshake machines, proven against a real Go handshake (wire_capture)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from p2p.identity import KeyPair, NodeIdentity, sign_challenge, verify_challenge
from p2p.transport import envelope
from p2p.transport.handshake import (
    ChallengeError,
    HandshakeError,
    HandshakeInitiator,
    HandshakeMalformedError,
    HandshakeRejectedError,
    HandshakeResponder,
    IdentityBindingError,
    PinnedKeyMismatchError,
    State,
    version_reject_reason,
)


def _frames(golden: dict[str, Any]) -> list[dict[str, Any]]:
    return golden["wire_capture"]["capture"]["frames"]


def _captured(golden: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    wc = golden["wire_capture"]
    frames = _frames(golden)
    hello = json.loads(frames[0]["payload_text"])
    ack = json.loads(frames[1]["payload_text"])
    return wc, hello, ack


def _keypair(hexkey: str) -> KeyPair:
    return KeyPair.from_private_bytes(bytes.fromhex(hexkey))


def _identity_from(payload: dict[str, Any]) -> NodeIdentity:
    return NodeIdentity.from_dict(payload["identity"])


def _allow_all(peer_id: str, public_key: str) -> bool:
    return True


def test_capture_is_text_then_binary(golden: dict[str, Any]) -> None:
    frames = _frames(golden)
    assert [f["opcode_name"] for f in frames[:2]] == ["text", "text"]
    assert all(f["opcode_name"] == "binary" for f in frames[2:])


def test_our_initiator_accepts_captured_go_ack(golden: dict[str, Any]) -> None:
    wc, hello, _ack = _captured(golden)
    client_kp = _keypair(wc["client_identity"]["private_key_hex"])
    me = _identity_from(hello["payload"])
    challenge = base64.b64decode(hello["payload"]["challenge"])
    initiator = HandshakeInitiator(
        me,
        client_kp.derive_shared_secret,
        expected_peer_id=hello["to"],
        expected_public_key=wc["server_identity"]["publicKey"],
        challenge=challenge,
    )
    sent = json.loads(envelope.to_text(initiator.hello()))
    # same JSON shape as the Go initiator's handshake
    assert list(sent) == list(hello)
    assert list(sent["payload"]) == list(hello["payload"])
    assert sent["payload"] == hello["payload"]
    assert (sent["type"], sent["from"], sent["to"]) == (hello["type"], hello["from"], hello["to"])
    assert initiator.state is State.AWAITING
    result = initiator.receive_ack(_frames(golden)[1]["payload_text"])
    assert initiator.state is State.DONE
    assert result.peer.id == wc["server_identity"]["id"]
    assert result.peer.public_key == wc["server_identity"]["publicKey"]
    assert result.secret.hex() == wc["shared_secret_hex"]
    assert result.features == ()


def test_our_responder_answers_captured_go_handshake(golden: dict[str, Any]) -> None:
    wc, hello, go_ack = _captured(golden)
    server_kp = _keypair(wc["server_identity"]["private_key_hex"])
    me = _identity_from(go_ack["payload"])
    responder = HandshakeResponder(me, server_kp.derive_shared_secret, _allow_all)
    decision = responder.receive_hello(_frames(golden)[0]["payload_text"])
    assert decision.accepted and decision.reply is not None and decision.error is None
    assert decision.result is not None
    assert decision.result.secret.hex() == wc["shared_secret_hex"]
    ours = json.loads(envelope.to_text(decision.reply))
    assert list(ours) == list(go_ack)  # id,type,from,to,ts,payload (no replyTo)
    assert list(ours["payload"]) == list(go_ack["payload"])
    assert (ours["type"], ours["from"], ours["to"]) == (
        go_ack["type"],
        go_ack["from"],
        go_ack["to"],
    )
    assert ours["payload"]["identity"] == go_ack["payload"]["identity"]
    # deterministic HMAC: same response as the Go responder gave
    assert ours["payload"]["challengeResponse"] == go_ack["payload"]["challengeResponse"]
    # ...and what a Go initiator checks: HMAC(secret, challenge)
    secret = bytes.fromhex(wc["shared_secret_hex"])
    challenge = base64.b64decode(hello["payload"]["challenge"])
    response = base64.b64decode(ours["payload"]["challengeResponse"])
    assert verify_challenge(challenge, response, secret)


def test_responder_version_reject_matches_reference(golden: dict[str, Any]) -> None:
    wc, hello, go_ack = _captured(golden)
    server_kp = _keypair(wc["server_identity"]["private_key_hex"])
    responder = HandshakeResponder(
        _identity_from(go_ack["payload"]), server_kp.derive_shared_secret, _allow_all
    )
    hello["payload"]["version"] = "2.0"
    decision = responder.receive_hello(json.dumps(hello))
    assert not decision.accepted and decision.reply is not None
    assert responder.state is State.FAILED
    reply = json.loads(envelope.to_text(decision.reply))
    go_reply = json.loads(
        wc["reject_version_2_0"]["server_reply"].split(" ", 1)[1].split(" || ")[0]
    )
    assert list(reply) == list(go_reply)
    assert reply["payload"] == go_reply["payload"]
    assert json.dumps(reply["payload"], separators=(",", ":")) == golden["messages"][
        "handshake_reject_version_payload"
    ].replace(
        '"id":"c3dc8ec3a5df5ca5fe8f405d77a4dbff","name":"node-1","publicKey":"1zrcLFd1loHn67vg4Tcm98o1YAsH6+u6GyVHNkcYY3U="',
        '"id":"3a9d0b593887c6b9bdb320dd8c6168aa","name":"node-0","publicKey":"s7unOCc+UKJzAlx4MxZ5/ZXMbDVzfdWsPGI0md8xkD8="',
    )
    assert (reply["from"], reply["to"]) == (go_reply["from"], go_reply["to"])
    templates = golden["messages"]["handshake_reject_reasons"]
    assert version_reject_reason("2.0") == templates[0].replace("<v>", "2.0")


def test_responder_not_authorized_reason(golden: dict[str, Any]) -> None:
    wc, _hello, go_ack = _captured(golden)
    server_kp = _keypair(wc["server_identity"]["private_key_hex"])
    seen: list[tuple[str, str]] = []

    def deny(peer_id: str, key: str) -> bool:
        seen.append((peer_id, key))
        return False

    responder = HandshakeResponder(
        _identity_from(go_ack["payload"]), server_kp.derive_shared_secret, deny
    )
    decision = responder.receive_hello(_frames(golden)[0]["payload_text"])
    assert not decision.accepted and decision.reply is not None
    payload = json.loads(envelope.to_text(decision.reply))["payload"]
    assert payload["accepted"] is False
    assert payload["reason"] == golden["messages"]["handshake_reject_reasons"][1]
    assert "challengeResponse" not in payload
    assert seen == [(wc["client_identity"]["id"], wc["client_identity"]["publicKey"])]
    # and the Go client's error text for it
    assert wc["reject_allowlist"]["client_connect_error"].endswith(
        f"handshake rejected: {payload['reason']}"
    )


# --- fresh identities -------------------------------------------------------------------


@pytest.fixture
def pair() -> tuple[KeyPair, NodeIdentity, KeyPair, NodeIdentity]:
    ka, kb = KeyPair.generate(), KeyPair.generate()
    return ka, NodeIdentity.create(ka, "a"), kb, NodeIdentity.create(kb, "b")


def _run(initiator: HandshakeInitiator, responder: HandshakeResponder) -> Any:
    decision = responder.receive_hello(envelope.to_text(initiator.hello()))
    assert decision.reply is not None
    return decision, envelope.to_text(decision.reply)


def test_round_trip_and_features(pair: Any) -> None:
    ka, a, kb, b = pair
    init = HandshakeInitiator(a, ka.derive_shared_secret, features=["ueps/1"])
    resp = HandshakeResponder(b, kb.derive_shared_secret, _allow_all, features=["ueps/1", "x"])
    hello = envelope.to_text(init.hello())
    assert json.loads(hello)["payload"]["features"] == ["ueps/1"]
    decision = resp.receive_hello(hello)
    assert decision.result is not None and decision.result.features == ("ueps/1",)
    result = init.receive_ack(envelope.to_text(decision.reply))  # type: ignore[arg-type]
    assert result.features == ("ueps/1", "x")
    assert result.secret == decision.result.secret
    assert "secret" not in repr(result).lower() or result.secret.hex() not in repr(result)


def test_no_features_field_unless_configured(pair: Any) -> None:
    ka, a, kb, b = pair
    init = HandshakeInitiator(a, ka.derive_shared_secret)
    resp = HandshakeResponder(b, kb.derive_shared_secret, _allow_all)
    _decision, ack = _run(init, resp)
    assert "features" not in json.loads(ack)["payload"]
    assert list(json.loads(ack)["payload"]) == ["identity", "challengeResponse", "accepted"]


def test_initiator_rejects_id_not_bound_to_key(pair: Any) -> None:
    ka, a, kb, b = pair
    forged = NodeIdentity(
        id="00" * 16, name=b.name, public_key=b.public_key, created_at=b.created_at, role=b.role
    )
    init = HandshakeInitiator(a, ka.derive_shared_secret)
    resp = HandshakeResponder(forged, kb.derive_shared_secret, _allow_all)
    _, ack = _run(init, resp)
    with pytest.raises(IdentityBindingError):
        init.receive_ack(ack)
    assert init.state is State.FAILED


def test_responder_rejects_id_not_bound_to_key(pair: Any) -> None:
    ka, a, kb, b = pair
    forged = NodeIdentity(
        id="11" * 16, name=a.name, public_key=a.public_key, created_at=a.created_at, role=a.role
    )
    init = HandshakeInitiator(forged, ka.derive_shared_secret)
    resp = HandshakeResponder(b, kb.derive_shared_secret, _allow_all)
    decision, ack = _run(init, resp)
    assert not decision.accepted
    assert isinstance(decision.error, IdentityBindingError)
    with pytest.raises(HandshakeRejectedError, match="does not match"):
        init.receive_ack(ack)


def test_pinned_key_mismatch(pair: Any) -> None:
    ka, a, kb, b = pair
    other = KeyPair.generate()
    init = HandshakeInitiator(a, ka.derive_shared_secret, expected_public_key=other.public_key_b64)
    assert json.loads(envelope.to_text(init.hello()))["to"] == other.node_id
    resp = HandshakeResponder(b, kb.derive_shared_secret, _allow_all)
    decision = resp.receive_hello(
        json.dumps(
            {
                **json.loads(
                    envelope.to_text(
                        HandshakeInitiator(
                            a, ka.derive_shared_secret, challenge=init.challenge
                        ).hello()
                    )
                )
            }
        )
    )
    with pytest.raises(PinnedKeyMismatchError):
        init.receive_ack(envelope.to_text(decision.reply))  # type: ignore[arg-type]


def test_wrong_challenge_response_refused(pair: Any) -> None:
    ka, a, kb, b = pair
    init = HandshakeInitiator(a, ka.derive_shared_secret)
    resp = HandshakeResponder(b, kb.derive_shared_secret, _allow_all)
    _, ack = _run(init, resp)
    doc = json.loads(ack)
    doc["payload"]["challengeResponse"] = base64.b64encode(
        sign_challenge(os.urandom(32), kb.derive_shared_secret(ka.public_key_b64))
    ).decode()
    with pytest.raises(ChallengeError):
        init.receive_ack(json.dumps(doc))
    init2 = HandshakeInitiator(a, ka.derive_shared_secret)
    _, ack2 = _run(init2, HandshakeResponder(b, kb.derive_shared_secret, _allow_all))
    doc2 = json.loads(ack2)
    del doc2["payload"]["challengeResponse"]
    with pytest.raises(ChallengeError):
        init2.receive_ack(json.dumps(doc2))


@pytest.mark.parametrize("field", ["challenge", "identity", "version"])
def test_responder_null_fields_never_raise(pair: Any, field: str) -> None:
    """Go decodes null into zero values; a null field is a refusal, never a crash."""
    ka, a, kb, b = pair
    hello = json.loads(envelope.to_text(HandshakeInitiator(a, ka.derive_shared_secret).hello()))
    hello["payload"][field] = None
    decision = HandshakeResponder(b, kb.derive_shared_secret, _allow_all).receive_hello(
        json.dumps(hello)
    )
    assert not decision.accepted and isinstance(decision.error, HandshakeError)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_challenge_must_be_32_bytes(pair: Any, size: int) -> None:
    ka, a, kb, b = pair
    with pytest.raises(ChallengeError):
        HandshakeInitiator(a, ka.derive_shared_secret, challenge=os.urandom(size))
    good = json.loads(envelope.to_text(HandshakeInitiator(a, ka.derive_shared_secret).hello()))
    if size:
        good["payload"]["challenge"] = base64.b64encode(os.urandom(size)).decode()
    else:
        del good["payload"]["challenge"]
    decision = HandshakeResponder(b, kb.derive_shared_secret, _allow_all).receive_hello(
        json.dumps(good)
    )
    assert not decision.accepted and isinstance(decision.error, ChallengeError)
    assert decision.reply is not None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: "{nope",
        lambda d: json.dumps({**d, "type": "ping"}),
        lambda d: json.dumps({**d, "payload": {**d["payload"], "challenge": "***"}}),
        lambda d: json.dumps({**d, "payload": {**d["payload"], "version": 1}}),
        lambda d: json.dumps([1, 2]),
    ],
    ids=["not-json", "wrong-type", "bad-b64", "version-not-string", "array"],
)
def test_responder_closes_without_reply_on_garbage(pair: Any, mutate: Any) -> None:
    ka, a, kb, b = pair
    hello = json.loads(envelope.to_text(HandshakeInitiator(a, ka.derive_shared_secret).hello()))
    decision = HandshakeResponder(b, kb.derive_shared_secret, _allow_all).receive_hello(
        mutate(hello)
    )
    assert decision.reply is None and not decision.accepted
    assert isinstance(decision.error, HandshakeError)


def test_null_payload_is_go_zero_struct_version_reject(pair: Any) -> None:
    """Go unmarshals ``"payload": null`` into a zero struct: version "" is refused with an ack."""
    ka, a, kb, b = pair
    hello = json.loads(envelope.to_text(HandshakeInitiator(a, ka.derive_shared_secret).hello()))
    hello["payload"] = None
    decision = HandshakeResponder(b, kb.derive_shared_secret, _allow_all).receive_hello(
        json.dumps(hello)
    )
    assert decision.reply is not None and not decision.accepted
    reason = json.loads(envelope.to_text(decision.reply))["payload"]["reason"]
    assert reason == "incompatible protocol version , supported: [1.0]"


def test_initiator_garbage_and_wrong_type(pair: Any) -> None:
    ka, a, _kb, _b = pair
    init = HandshakeInitiator(a, ka.derive_shared_secret)
    init.hello()
    with pytest.raises(HandshakeMalformedError, match="expected handshake_ack, got ping"):
        init.receive_ack(
            json.dumps({"id": "x", "type": "ping", "from": "", "to": "", "payload": {"sentAt": 1}})
        )
    init2 = HandshakeInitiator(a, ka.derive_shared_secret)
    init2.hello()
    with pytest.raises(HandshakeMalformedError):
        init2.receive_ack(b"\xff\xfe")


def test_state_machine_order_enforced(pair: Any) -> None:
    ka, a, kb, b = pair
    init = HandshakeInitiator(a, ka.derive_shared_secret)
    with pytest.raises(HandshakeError):
        init.receive_ack("{}")
    init.hello()
    with pytest.raises(HandshakeError):
        init.hello()
    resp = HandshakeResponder(b, kb.derive_shared_secret, _allow_all)
    resp.receive_hello("{}")
    with pytest.raises(HandshakeError):
        resp.receive_hello("{}")
