"""X25519 key pairs, node IDs and the static shared secret (IDENTITY.md §1-3).

The private key is 32 raw bytes stored unclamped, as Go's ``crypto/ecdh`` keeps it;
clamping happens inside the scalar multiplication. Public keys travel as standard,
padded base64 (44 characters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from p2p.identity.errors import InvalidPrivateKeyError, InvalidPublicKeyError, LowOrderPointError

try:  # libsodium's X25519, when PyNaCl is installed (p2p-transport always installs it)
    from nacl.bindings import crypto_scalarmult as _sodium_x25519
    from nacl.exceptions import CryptoError as _SodiumError
except ImportError:  # pragma: no cover - p2p-identity alone: cryptography's (OpenSSL)
    _sodium_x25519 = None  # type: ignore[assignment]

__all__ = [
    "KEY_SIZE",
    "PUBLIC_KEY_B64_LEN",
    "KeyPair",
    "decode_public_key",
    "encode_public_key",
    "node_id_from_public_key",
]

#: what either X25519 raises for a low-order point (cryptography: ValueError)
_LOW_ORDER_ERRORS: tuple[type[Exception], ...] = (
    (ValueError, _SodiumError) if _sodium_x25519 is not None else (ValueError,)
)

KEY_SIZE = 32
PUBLIC_KEY_B64_LEN = 44
_ZERO = bytes(KEY_SIZE)


def encode_public_key(raw: bytes) -> str:
    """Raw 32-byte public key → standard padded base64."""
    if len(raw) != KEY_SIZE:
        raise InvalidPublicKeyError(f"public key must be {KEY_SIZE} bytes, got {len(raw)}")
    return base64.b64encode(raw).decode("ascii")


def decode_public_key(text: str) -> bytes:
    """Standard padded base64 (Go ``StdEncoding``) → raw 32-byte public key.

    Stricter than Go in one harmless way: Go's decoder skips embedded CR/LF, we reject
    them (a Go node never sends them, and keys are compared as strings elsewhere).
    """
    if not isinstance(text, str):
        raise InvalidPublicKeyError("public key must be a base64 string")
    if len(text) != PUBLIC_KEY_B64_LEN:
        raise InvalidPublicKeyError(
            f"public key must be {PUBLIC_KEY_B64_LEN} base64 characters, got {len(text)}"
        )
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidPublicKeyError("public key is not standard base64") from None
    if len(raw) != KEY_SIZE:
        raise InvalidPublicKeyError(f"public key must be {KEY_SIZE} bytes, got {len(raw)}")
    return raw


def _raw_public(public_key: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(public_key, str):
        return decode_public_key(public_key)
    raw = bytes(public_key)
    if len(raw) != KEY_SIZE:
        raise InvalidPublicKeyError(f"public key must be {KEY_SIZE} bytes, got {len(raw)}")
    return raw


def node_id_from_public_key(public_key: bytes | str) -> str:
    """``hex(SHA-256(raw_public_key)[:16])``: the 32-character node ID.

    Accepts the raw 32 bytes or their base64 text form.
    """
    return hashlib.sha256(_raw_public(public_key)).digest()[:16].hex()


class KeyPair:
    """A node's X25519 key pair. The private half never leaves this object except through
    :attr:`private_bytes` (for the key file); ``repr`` shows only the public key."""

    __slots__ = ("_private", "_public", "_public_b64", "_sk")

    def __init__(self, sk: X25519PrivateKey, private: bytes) -> None:
        self._sk = sk
        self._private = private
        self._public = sk.public_key().public_bytes_raw()
        self._public_b64 = base64.b64encode(self._public).decode("ascii")

    @classmethod
    def generate(cls) -> KeyPair:
        """A new key pair: 32 bytes from the OS CSPRNG, stored unclamped like Go's."""
        return cls.from_private_bytes(os.urandom(KEY_SIZE))

    @classmethod
    def from_private_bytes(cls, raw: bytes | bytearray | memoryview) -> KeyPair:
        """Load the raw 32-byte private key (the content of ``private.key``)."""
        data = bytes(raw)
        if len(data) != KEY_SIZE:
            raise InvalidPrivateKeyError(f"private key must be {KEY_SIZE} bytes, got {len(data)}")
        return cls(X25519PrivateKey.from_private_bytes(data), data)

    @property
    def private_bytes(self) -> bytes:
        """The raw 32-byte private key, exactly as it is stored on disk."""
        return self._private

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._public

    @property
    def public_key_b64(self) -> str:
        """The public key as standard padded base64 (the ``publicKey`` JSON field)."""
        return self._public_b64

    @property
    def node_id(self) -> str:
        """This key's node ID (:func:`node_id_from_public_key`)."""
        return node_id_from_public_key(self._public)

    def derive_shared_secret(self, peer_public_key: str | bytes) -> bytes:
        """``SHA-256(X25519(own_private, peer_public))``: the static secret with a peer.

        ``peer_public_key`` is base64 text (as it travels) or the raw 32 bytes. Raises
        :class:`InvalidPublicKeyError` for bad base64 or length and
        :class:`LowOrderPointError` when X25519 yields all zeros.
        """
        peer = _raw_public(peer_public_key)
        try:
            if _sodium_x25519 is not None:
                # the same X25519 (RFC 7748: clamped scalar, top bit of u masked); on the
                # handshake's path, where its code is cold, libsodium's is the quicker:
                # ~28 us less per handshake, both ends together (OpenSSL's wins warm by ~3)
                raw = _sodium_x25519(self._private, peer)
            else:
                raw = self._sk.exchange(X25519PublicKey.from_public_bytes(peer))
        except _LOW_ORDER_ERRORS:  # both refuse a low-order point themselves
            raise LowOrderPointError("failed to derive shared secret: low order point") from None
        if hmac.compare_digest(raw, _ZERO):  # belt and braces: never hash a zero secret
            raise LowOrderPointError("failed to derive shared secret: low order point")
        return hashlib.sha256(raw).digest()

    def __repr__(self) -> str:
        return f"KeyPair(public_key_b64={self._public_b64!r})"
