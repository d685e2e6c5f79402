"""Challenge-response: HMAC-SHA256 via p2p.ueps, constant-time verification."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import (
    CHALLENGE_SIZE,
    InvalidSecretError,
    generate_challenge,
    sign_challenge,
    verify_challenge,
)
from p2p.ueps import HmacKey


def test_generate_challenge() -> None:
    a, b = generate_challenge(), generate_challenge()
    assert len(a) == len(b) == CHALLENGE_SIZE == 32
    assert a != b


def test_sign_and_verify(secret: bytes) -> None:
    ch = generate_challenge()
    sig = sign_challenge(ch, secret)
    assert sig == hmac.digest(secret, ch, hashlib.sha256)
    assert verify_challenge(ch, sig, secret) is True
    assert verify_challenge(ch, sig, bytes(32)) is False
    assert verify_challenge(generate_challenge(), sig, secret) is False


def test_prepared_hmac_key_gives_same_result(secret: bytes) -> None:
    ch = generate_challenge()
    key = HmacKey(secret)
    assert sign_challenge(ch, key) == sign_challenge(ch, secret)
    assert verify_challenge(ch, sign_challenge(ch, secret), key) is True


@pytest.mark.parametrize("cut", [0, 1, 31, 33, 64])
def test_response_of_other_length_is_unequal(secret: bytes, cut: int) -> None:
    ch = generate_challenge()
    sig = sign_challenge(ch, secret)
    other = (sig + sig)[:cut]
    assert verify_challenge(ch, other, secret) is False


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_secret_must_be_32_bytes(size: int) -> None:
    with pytest.raises(InvalidSecretError):
        sign_challenge(generate_challenge(), bytes(size))
    with pytest.raises(InvalidSecretError):
        verify_challenge(generate_challenge(), bytes(32), bytes(size))


def test_secret_type_checked() -> None:
    with pytest.raises(InvalidSecretError):
        sign_challenge(b"x", "not bytes")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200), st.binary(min_size=32, max_size=32), st.binary(max_size=40))
def test_verify_accepts_only_the_signature(challenge: bytes, secret: bytes, other: bytes) -> None:
    sig = sign_challenge(challenge, secret)
    assert verify_challenge(challenge, sig, secret)
    assert verify_challenge(challenge, other, secret) is (other == sig)
