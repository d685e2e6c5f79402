"""Challenge-response (IDENTITY.md §4): ``HMAC-SHA256(key=shared_secret, msg=challenge)``.

The HMAC itself comes from p2p.ueps (a keyed state cached per secret, native when the
extension is built). Callers with a long-lived session may pass an ``HmacKey`` instead of
the raw secret and skip the per-call key set-up.
"""

from __future__ import annotations

import os

from p2p.identity.errors import InvalidSecretError
from p2p.ueps import HmacKey

__all__ = [
    "CHALLENGE_SIZE",
    "SECRET_SIZE",
    "generate_challenge",
    "sign_challenge",
    "verify_challenge",
]

CHALLENGE_SIZE = 32
SECRET_SIZE = 32


def _key(secret: bytes | HmacKey) -> HmacKey:
    if isinstance(secret, HmacKey):
        return secret
    if not isinstance(secret, bytes | bytearray | memoryview):
        raise InvalidSecretError("shared secret must be bytes")
    if len(secret) != SECRET_SIZE:
        raise InvalidSecretError(f"shared secret must be {SECRET_SIZE} bytes, got {len(secret)}")
    return HmacKey(bytes(secret))


def generate_challenge() -> bytes:
    """32 bytes from the OS CSPRNG."""
    return os.urandom(CHALLENGE_SIZE)


def sign_challenge(challenge: bytes, secret: bytes | HmacKey) -> bytes:
    """The 32-byte response to ``challenge`` under the shared ``secret``.

    Any challenge length is signed (Go does too); the handshake enforces 32 bytes.
    """
    return _key(secret).digest(bytes(challenge))


def verify_challenge(challenge: bytes, response: bytes, secret: bytes | HmacKey) -> bool:
    """Constant-time check of a response; a response of any other length is just unequal."""
    return bool(_key(secret).verify(bytes(challenge), bytes(response)))
