"""KeyPair, public-key text form, node IDs, low-order points."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import (
    IdentityError,
    InvalidPrivateKeyError,
    InvalidPublicKeyError,
    KeyPair,
    LowOrderPointError,
    decode_public_key,
    encode_public_key,
    node_id_from_public_key,
)

# Every X25519 u-coordinate of small order (and its non-canonical encodings): X25519 with
# any private key gives all zeros for these (libsodium's blocklist).
_LOW_ORDER_HEX = [
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
]


def test_generate_is_random_and_consistent() -> None:
    a, b = KeyPair.generate(), KeyPair.generate()
    assert a.private_bytes != b.private_bytes
    assert len(a.private_bytes) == len(a.public_bytes) == 32
    # public key agrees with an independent computation by cryptography
    expected = X25519PrivateKey.from_private_bytes(a.private_bytes).public_key().public_bytes_raw()
    assert a.public_bytes == expected
    assert len(a.public_key_b64) == 44 and a.public_key_b64.endswith("=")


def test_private_key_is_kept_unclamped() -> None:
    raw = b"\xff" * 32  # clamping would change the first and last bytes
    kp = KeyPair.from_private_bytes(raw)
    assert kp.private_bytes == raw
    assert KeyPair.from_private_bytes(bytearray(raw)).public_bytes == kp.public_bytes


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_private_key_length(size: int) -> None:
    with pytest.raises(InvalidPrivateKeyError, match="32 bytes"):
        KeyPair.from_private_bytes(bytes(size))


def test_repr_hides_private_key() -> None:
    kp = KeyPair.from_private_bytes(bytes(range(1, 33)))
    text = repr(kp)
    assert kp.public_key_b64 in text
    assert kp.private_bytes.hex() not in text
    assert base64.b64encode(kp.private_bytes).decode() not in text


@pytest.fixture(params=["sodium", "openssl"])
def x25519_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both X25519s ``derive_shared_secret`` may use: libsodium's (PyNaCl installed, as it
    is beside p2p-transport) and cryptography's (p2p-identity alone)."""
    from p2p.identity import keys

    if request.param == "openssl":
        monkeypatch.setattr(keys, "_sodium_x25519", None)
    elif keys._sodium_x25519 is None:
        pytest.skip("PyNaCl is not installed (p2p-identity alone): cryptography's X25519 only")
    return str(request.param)


def _openssl_secret(private: bytes, public: bytes) -> bytes | None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    try:
        raw = X25519PrivateKey.from_private_bytes(private).exchange(
            X25519PublicKey.from_public_bytes(public)
        )
    except ValueError:
        return None
    return hashlib.sha256(raw).digest()


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_sodium_and_openssl_agree_on_any_public_key(private: bytes, public: bytes) -> None:
    """Any 32 bytes (off the curve, on the twist, top bit set, non-canonical): libsodium's
    answer is OpenSSL's, or both refuse it as low order."""
    expected = _openssl_secret(private, public)
    kp = KeyPair.from_private_bytes(private)
    if expected is None:
        with pytest.raises(LowOrderPointError):
            kp.derive_shared_secret(public)
    else:
        assert kp.derive_shared_secret(public) == expected


@pytest.mark.parametrize("hexkey", _LOW_ORDER_HEX)
def test_both_backends_refuse_the_blocklist(hexkey: str) -> None:
    private = KeyPair.generate().private_bytes
    assert _openssl_secret(private, bytes.fromhex(hexkey)) is None
    with pytest.raises(IdentityError):
        KeyPair.from_private_bytes(private).derive_shared_secret(bytes.fromhex(hexkey))


@pytest.mark.parametrize("hexkey", _LOW_ORDER_HEX)
@pytest.mark.parametrize("high_bit", [False, True])
@pytest.mark.usefixtures("x25519_backend")
def test_low_order_points_rejected(hexkey: str, high_bit: bool) -> None:
    raw = bytearray(bytes.fromhex(hexkey))
    if high_bit:
        raw[31] |= 0x80  # ignored by X25519: still low order
    kp = KeyPair.generate()
    with pytest.raises(LowOrderPointError, match="low order"):
        kp.derive_shared_secret(base64.b64encode(bytes(raw)).decode())
    with pytest.raises(LowOrderPointError):
        kp.derive_shared_secret(bytes(raw))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64!!",
        "A" * 43,  # too short
        "A" * 44,  # 33 bytes, no padding
        "A" * 42 + "==",  # 31 bytes
        "s7unOCc-UKJzAlx4MxZ5_ZXMbDVzfdWsPGI0md8xkD8=",  # URL alphabet
        "s7unOCc+UKJzAlx4MxZ5/ZXMbDVzfdWsPGI0md8xkD8",  # padding missing
        "s7unOCc+UKJzAlx4MxZ5/ZXMbDVzfdWsPGI0md8xkD8=\n",  # trailing newline
        "s7unOCc+UKJzAlx4MxZ5/ZXMbDVzfdWsPGI0md8xkD==",  # wrong length after decode
        "s7unOCc+UKJzAlx4MxZ5/ZXMbDVzfdWsPGI0md8xkDé",  # non-ASCII
        "A" * 10_000,  # oversized, rejected before decoding
    ],
)
def test_bad_public_key_text(text: str) -> None:
    with pytest.raises(InvalidPublicKeyError):
        decode_public_key(text)
    with pytest.raises(InvalidPublicKeyError):
        KeyPair.generate().derive_shared_secret(text)
    with pytest.raises(InvalidPublicKeyError):
        node_id_from_public_key(text)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_bad_public_key_bytes(size: int) -> None:
    with pytest.raises(InvalidPublicKeyError):
        node_id_from_public_key(bytes(size))
    with pytest.raises(InvalidPublicKeyError):
        encode_public_key(bytes(size))
    with pytest.raises(InvalidPublicKeyError):
        KeyPair.generate().derive_shared_secret(bytes(size))


def test_public_key_text_round_trip() -> None:
    kp = KeyPair.generate()
    assert decode_public_key(kp.public_key_b64) == kp.public_bytes
    assert encode_public_key(kp.public_bytes) == kp.public_key_b64


@pytest.mark.usefixtures("x25519_backend")
@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_shared_secret_is_symmetric(priv_a: bytes, priv_b: bytes) -> None:
    a = KeyPair.from_private_bytes(priv_a)
    b = KeyPair.from_private_bytes(priv_b)
    s = a.derive_shared_secret(b.public_key_b64)
    assert s == b.derive_shared_secret(a.public_key_b64)
    raw = X25519PrivateKey.from_private_bytes(priv_a).exchange(
        X25519PrivateKey.from_private_bytes(priv_b).public_key()
    )
    assert s == hashlib.sha256(raw).digest()


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_node_id_definition(pub: bytes) -> None:
    nid = node_id_from_public_key(pub)
    assert nid == hashlib.sha256(pub).hexdigest()[:32]
    assert nid == node_id_from_public_key(encode_public_key(pub))
    assert len(nid) == 32 and nid == nid.lower()
