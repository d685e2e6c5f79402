"""The Noise XX core against the published vectors (cacophony, snow) and the spec's rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from p2p.transport.noise import (
    MAX_NONCE,
    PROTOCOL_NAME,
    CipherState,
    HandshakeState,
    KeyPair,
    NoiseError,
    SymmetricState,
)

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors" / "noise"


def _vectors() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "xx_25519_chachapoly_sha256.json").read_text("utf-8"))
    return list(data["vectors"])


def _pair(hexkey: str) -> KeyPair:
    return KeyPair(bytes.fromhex(hexkey))


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["from"])
def test_published_vector_byte_for_byte(vector: dict[str, Any]) -> None:
    assert vector["protocol_name"].encode() == PROTOCOL_NAME
    init = HandshakeState(
        True,
        _pair(vector["init_static"]),
        prologue=bytes.fromhex(vector["init_prologue"]),
        ephemeral=_pair(vector["init_ephemeral"]),
    )
    resp = HandshakeState(
        False,
        _pair(vector["resp_static"]),
        prologue=bytes.fromhex(vector["resp_prologue"]),
        ephemeral=_pair(vector["resp_ephemeral"]),
    )
    messages = vector["messages"]
    for i, m in enumerate(messages[:3]):
        sender, receiver = (init, resp) if i % 2 == 0 else (resp, init)
        written = sender.write_message(bytes.fromhex(m["payload"]))
        assert written.hex() == m["ciphertext"], f"handshake message {i}"
        assert receiver.read_message(written).hex() == m["payload"]
    assert init.complete and resp.complete
    assert init.handshake_hash == resp.handshake_hash
    if "handshake_hash" in vector:
        assert init.handshake_hash.hex() == vector["handshake_hash"]
    assert init.remote_static == _pair(vector["resp_static"]).public
    assert resp.remote_static == _pair(vector["init_static"]).public
    i_send, i_recv = init.split()
    r_send, r_recv = resp.split()
    for i, m in enumerate(messages[3:], start=3):
        send, recv = (i_send, r_recv) if i % 2 == 0 else (r_send, i_recv)
        written = send.encrypt_with_ad(b"", bytes.fromhex(m["payload"]))
        assert written.hex() == m["ciphertext"], f"transport message {i}"
        assert recv.decrypt_with_ad(b"", written).hex() == m["payload"]


def _handshake(prologue_i: bytes = b"p", prologue_r: bytes = b"p") -> tuple[HandshakeState, ...]:
    init = HandshakeState(True, KeyPair.generate(), prologue=prologue_i)
    resp = HandshakeState(False, KeyPair.generate(), prologue=prologue_r)
    resp.read_message(init.write_message())
    init.read_message(resp.write_message())
    resp.read_message(init.write_message())
    return init, resp


def test_random_keys_agree_and_transport_both_ways() -> None:
    init, resp = _handshake()
    a_send, a_recv = init.split()
    b_send, b_recv = resp.split()
    for i in range(3):
        assert b_recv.decrypt_with_ad(b"", a_send.encrypt_with_ad(b"", b"ping %d" % i)) == (
            b"ping %d" % i
        )
        assert a_recv.decrypt_with_ad(b"", b_send.encrypt_with_ad(b"", b"pong")) == b"pong"


def test_prologue_mismatch_fails_the_second_message() -> None:
    init = HandshakeState(True, KeyPair.generate(), prologue=b"features A")
    resp = HandshakeState(False, KeyPair.generate(), prologue=b"features B")
    resp.read_message(init.write_message())
    with pytest.raises(NoiseError, match="decryption failed"):
        init.read_message(resp.write_message())
    with pytest.raises(NoiseError, match="failed"):
        init.write_message()


def test_tampered_messages_fail_and_commit_nothing() -> None:
    init = HandshakeState(True, KeyPair.generate())
    resp = HandshakeState(False, KeyPair.generate())
    resp.read_message(init.write_message())
    second = bytearray(resp.write_message(b"payload"))
    second[40] ^= 1  # inside the encrypted static key
    with pytest.raises(NoiseError):
        init.read_message(bytes(second))
    assert init.remote_static is None and not init.complete


def test_third_message_from_someone_else_fails() -> None:
    """An impostor who does not hold the static key it sends cannot make ``se`` match."""
    init = HandshakeState(True, KeyPair.generate())
    resp = HandshakeState(False, KeyPair.generate())
    resp.read_message(init.write_message())
    init.read_message(resp.write_message())
    third = bytearray(init.write_message())
    third[-1] ^= 1
    with pytest.raises(NoiseError):
        resp.read_message(bytes(third))
    assert not resp.complete


def test_truncated_and_out_of_turn() -> None:
    resp = HandshakeState(False, KeyPair.generate())
    with pytest.raises(NoiseError, match="truncated"):
        resp.read_message(b"\x00" * 31)
    init = HandshakeState(True, KeyPair.generate())
    with pytest.raises(NoiseError, match="turn"):
        init.read_message(b"\x00" * 32)
    with pytest.raises(NoiseError, match="before the handshake"):
        HandshakeState(True, KeyPair.generate()).split()


def test_low_order_ephemeral_is_refused() -> None:
    init = HandshakeState(True, KeyPair.generate())
    resp = HandshakeState(False, KeyPair.generate())
    resp.read_message(init.write_message())
    zero_point = bytes(32)
    with pytest.raises(NoiseError, match="low-order"):
        init.read_message(zero_point + resp.write_message()[32:])


def test_cipher_state_nonce_rules() -> None:
    key = bytes(range(32))
    sender, receiver = CipherState(key), CipherState(key)
    first = sender.encrypt_with_ad(b"ad", b"one")
    second = sender.encrypt_with_ad(b"ad", b"two")
    with pytest.raises(NoiseError):
        receiver.decrypt_with_ad(b"ad", second)  # reordered: wrong nonce
    assert receiver.n == 0  # a failure consumes no nonce
    assert receiver.decrypt_with_ad(b"ad", first) == b"one"
    with pytest.raises(NoiseError):
        receiver.decrypt_with_ad(b"ad", first)  # replayed
    assert receiver.decrypt_with_ad(b"ad", second) == b"two"
    with pytest.raises(NoiseError, match="tag"):
        receiver.decrypt_with_ad(b"", b"short")
    near_end = CipherState(key, MAX_NONCE - 1)
    near_end.encrypt_with_ad(b"", b"last")
    with pytest.raises(NoiseError, match="exhausted"):
        near_end.encrypt_with_ad(b"", b"one more")
    keyless = CipherState()
    assert keyless.encrypt_with_ad(b"ad", b"plain") == b"plain"
    assert "key" not in repr(CipherState(key)).replace("keyed", "")


def test_rekey_follows_section_11_3() -> None:
    """REKEY(k) = ENCRYPT(k, 2**64-1, "", 32 zero bytes)[:32], computed independently."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    key = bytes(range(32, 64))
    expected = ChaCha20Poly1305(key).encrypt(b"\x00" * 4 + b"\xff" * 8, bytes(32), b"")[:32]
    a, b = CipherState(key), CipherState(key)
    a.encrypt_with_ad(b"", b"x")
    b.decrypt_with_ad(b"", CipherState(key).encrypt_with_ad(b"", b"x"))
    a.rekey()
    b.rekey()
    assert a.n == 1 and b.n == 1
    ct = a.encrypt_with_ad(b"", b"after")
    assert ChaCha20Poly1305(expected).decrypt(b"\x00" * 4 + (1).to_bytes(8, "little"), ct, b"")
    assert b.decrypt_with_ad(b"", ct) == b"after"
    with pytest.raises(NoiseError):
        CipherState(key, 2).decrypt_with_ad(b"", ct)  # the old key no longer opens it


def test_symmetric_state_long_protocol_name_is_hashed() -> None:
    import hashlib

    name = b"Noise_XX_25519_ChaChaPoly_SHA256_but_longer_than_32"
    assert SymmetricState(name).h == hashlib.sha256(name).digest()
    assert SymmetricState().h == PROTOCOL_NAME
