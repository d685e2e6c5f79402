"""Every case of the golden ``identity`` section, plus the identities of ``wire_capture``."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from p2p.identity import (
    IdentityError,
    IdentityNotInitializedError,
    InvalidPublicKeyError,
    KeyPair,
    LowOrderPointError,
    NodeIdentity,
    NodeManager,
    NodeRole,
    check_identity_binding,
    node_id_from_public_key,
    sign_challenge,
    verify_challenge,
)

_IDENTITY_IN_FRAME = re.compile(r'"identity":(\{[^{}]*\})')


def _keys(golden: dict[str, Any]) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = golden["identity"]["keys"]
    return keys


def test_every_key(golden: dict[str, Any]) -> None:
    keys = _keys(golden)
    assert len(keys) == 5
    for k in keys:
        kp = KeyPair.from_private_bytes(bytes.fromhex(k["private_key_hex"]))
        assert kp.private_bytes.hex() == k["private_key_hex"]
        assert kp.public_bytes.hex() == k["public_key_hex"]
        assert kp.public_key_b64 == k["public_key_b64"]
        assert kp.node_id == k["node_id"]
        assert node_id_from_public_key(k["public_key_b64"]) == k["node_id"]
        assert node_id_from_public_key(bytes.fromhex(k["public_key_hex"])) == k["node_id"]


def test_every_pair_and_challenge_signature(golden: dict[str, Any]) -> None:
    keys = _keys(golden)
    pairs = golden["identity"]["pairs"]
    assert len(pairs) == 10
    checked = 0
    for pr in pairs:
        a = KeyPair.from_private_bytes(bytes.fromhex(keys[pr["a"]]["private_key_hex"]))
        b = KeyPair.from_private_bytes(bytes.fromhex(keys[pr["b"]]["private_key_hex"]))
        s_ab = a.derive_shared_secret(keys[pr["b"]]["public_key_b64"])
        s_ba = b.derive_shared_secret(keys[pr["a"]]["public_key_b64"])
        assert s_ab.hex() == pr["shared_secret_hex"]
        assert s_ba == s_ab  # "symmetric": true
        assert pr["symmetric"] is True
        # raw public bytes give the same secret as the base64 text form
        assert a.derive_shared_secret(b.public_bytes) == s_ab
        assert base64.b64encode(s_ab).decode() == pr["smsg_password"]
        for cs in pr["challenge_signatures"]:
            challenge = bytes.fromhex(cs["challenge_hex"])
            assert base64.b64decode(cs["challenge_b64"]) == challenge
            sig = sign_challenge(challenge, s_ab)
            assert sig.hex() == cs["signature_hex"]
            assert base64.b64encode(sig).decode() == cs["signature_b64"]
            assert verify_challenge(challenge, sig, s_ab) is cs["verify_ok"]
            wrong = bytes(32) if s_ab != bytes(32) else b"\x01" * 32
            assert verify_challenge(challenge, sig, wrong) is cs["verify_wrong_secret"]
            checked += 1
    assert checked == sum(len(p["challenge_signatures"]) for p in pairs)


def test_spec_vector_pair() -> None:
    """The worked example of IDENTITY.md §4."""
    a = KeyPair.from_private_bytes(bytes(range(1, 33)))
    b = KeyPair.from_private_bytes(bytes(range(33, 65)))
    assert a.public_key_b64 == "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="
    assert a.node_id == "aaa8fff703b50b2297f4f6e13508f724"
    assert b.public_key_b64 == "WGmv9FBUlzLLqu1eXfmzCm2jHLDldCutWtShp2jxpns="
    assert b.node_id == "4457134794559182226754e9dd2f1083"
    secret = a.derive_shared_secret(b.public_key_b64)
    assert secret.hex() == "55e832a7ed7d0f03b46e908d9cca795de2d2bf140fd80308e85a06069ae2b7a4"
    assert (
        sign_challenge(bytes(32), secret).hex()
        == "e43656e508c9e7b403b9b8c854bb5216c0e07a97659f3a3a6d4e46149b3bba7e"
    )
    assert base64.b64encode(secret).decode() == "Vegyp+19DwO0bpCNnMp5XeLSvxQP2AMI6FoGBprit6Q="


_EXPECTED_ERROR = {
    "not_base64": InvalidPublicKeyError,
    "31_bytes": InvalidPublicKeyError,
    "33_bytes": InvalidPublicKeyError,
    "empty": InvalidPublicKeyError,
    "all_zero_low_order": LowOrderPointError,
}


def test_every_derive_error(golden: dict[str, Any], tmp_path: Path) -> None:
    keys = _keys(golden)
    kp = KeyPair.from_private_bytes(bytes.fromhex(keys[0]["private_key_hex"]))
    cases = golden["identity"]["derive_errors"]
    assert {c["name"] for c in cases} == {*_EXPECTED_ERROR, "no_identity"}
    for case in cases:
        if case["name"] == "no_identity":
            manager = NodeManager(tmp_path / "private.key", tmp_path / "node.json")
            assert not manager.has_identity
            with pytest.raises(IdentityNotInitializedError, match="not initialized"):
                manager.derive_shared_secret(keys[1]["public_key_b64"])
            continue
        expected = _EXPECTED_ERROR[case["name"]]
        with pytest.raises(expected) as info:
            kp.derive_shared_secret(case["peer_public_key"])
        assert isinstance(info.value, IdentityError)
        # the same case through the manager, as the reference reports it
        manager = NodeManager(tmp_path / "m" / "private.key", tmp_path / "m" / "node.json")
        manager.generate("n", NodeRole.WORKER)
        with pytest.raises(expected):
            manager.derive_shared_secret(case["peer_public_key"])


def test_generated_identity_example(golden: dict[str, Any], tmp_path: Path) -> None:
    example = golden["identity"]["generated_identity_example"]
    text: str = example["node_json"]
    ident = NodeIdentity.from_json(text)
    assert ident.name == "example-node"
    assert ident.role is NodeRole.WORKER
    assert ident.created_at.nanosecond == 458922911
    assert ident.to_json() == text.encode()  # byte-identical, nanoseconds kept
    check_identity_binding(ident)
    assert example["private_key_len"] == 32
    # our own generated node.json has exactly the same shape
    manager = NodeManager(tmp_path / "private.key", tmp_path / "node.json")
    mine = manager.generate("example-node", NodeRole.WORKER)
    written = (tmp_path / "node.json").read_text()
    assert not written.endswith("\n")
    assert list(json.loads(written)) == list(json.loads(text))
    assert re.fullmatch(r'\{\n(  "[a-zA-Z]+": "[^"]*",\n){4}  "role": "worker"\n\}', written)
    assert NodeIdentity.from_json(written) == mine
    assert len((tmp_path / "private.key").read_bytes()) == example["private_key_len"]
    assert oct((tmp_path / "private.key").stat().st_mode & 0o777) == "0o" + example[
        "private_key_mode"
    ].lstrip("0")


def test_wire_capture_identities(golden: dict[str, Any]) -> None:
    wc = golden["wire_capture"]
    for side in ("client_identity", "server_identity"):
        ident = wc[side]
        kp = KeyPair.from_private_bytes(bytes.fromhex(ident["private_key_hex"]))
        assert kp.public_key_b64 == ident["publicKey"]
        assert kp.node_id == ident["id"]
    client = KeyPair.from_private_bytes(bytes.fromhex(wc["client_identity"]["private_key_hex"]))
    server = KeyPair.from_private_bytes(bytes.fromhex(wc["server_identity"]["private_key_hex"]))
    secret = client.derive_shared_secret(server.public_key_b64)
    assert secret.hex() == wc["shared_secret_hex"]
    assert server.derive_shared_secret(client.public_key_b64) == secret
    assert base64.b64encode(secret).decode() == wc["smsg_password"]


def test_wire_capture_handshake(golden: dict[str, Any]) -> None:
    """The captured Go handshake: identities parse, re-encode byte-identically and are
    bound to their keys; the ack's challengeResponse verifies under the shared secret."""
    wc = golden["wire_capture"]
    texts = [f["payload_text"] for f in wc["capture"]["frames"] if f.get("payload_text")]
    texts.append(wc["reject_version_2_0"]["server_reply"])
    seen = 0
    for text in texts:
        for raw in _IDENTITY_IN_FRAME.findall(text):
            ident = NodeIdentity.from_json(raw)
            assert ident.to_json(indent=False) == raw.encode()
            check_identity_binding(ident)
            seen += 1
    assert seen >= 3
    hs = json.loads(texts[0])
    ack = json.loads(texts[1])
    assert (hs["type"], ack["type"]) == ("handshake", "handshake_ack")
    client_id = NodeIdentity.from_dict(hs["payload"]["identity"])
    server_id = NodeIdentity.from_dict(ack["payload"]["identity"])
    server = KeyPair.from_private_bytes(bytes.fromhex(wc["server_identity"]["private_key_hex"]))
    secret = server.derive_shared_secret(client_id.public_key)
    challenge = base64.b64decode(hs["payload"]["challenge"])
    response = base64.b64decode(ack["payload"]["challengeResponse"])
    assert len(challenge) == 32
    assert wc["challenge_response_ok"] is True
    assert verify_challenge(challenge, response, secret) is True
    assert sign_challenge(challenge, secret) == response
    assert server_id.public_key == server.public_key_b64


def test_zero_value_identity_matches_go(golden: dict[str, Any]) -> None:
    zero = golden["messages"]["zero_value_structs"]["NodeIdentity"]
    ident = NodeIdentity.from_json("{}")
    assert ident.to_json(indent=False) == zero.encode()
    assert NodeIdentity.from_json(zero) == ident
    assert NodeIdentity.from_json("null") == ident
    assert ident.created_at.is_zero()
    assert ident.role == ""
