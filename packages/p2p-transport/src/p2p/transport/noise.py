"""The Noise Protocol Framework (revision 34), sans-I/O: ``Noise_XX_25519_ChaChaPoly_SHA256``.

Protocol 1.1 between our nodes runs the XX handshake (SECURITY.md "protocol 1.1")::

    XX:
      -> e
      <- e, ee, s, es
      -> s, se

Three objects, as the spec names them (§5):

- :class:`CipherState`: a key and a 64-bit counter nonce; ChaChaPoly's 96-bit nonce is 32
  zero bits then the counter, little-endian (§12.3). Decryption failures leave the nonce
  alone; the nonce ``2**64 - 1`` is reserved, so the state refuses to go past it;
  :meth:`CipherState.rekey` is §11.3's ``REKEY(k)``.
- :class:`SymmetricState`: the chaining key ``ck`` and transcript hash ``h`` (HKDF per §4.3
  over HMAC-SHA256).
- :class:`HandshakeState`: the XX message patterns driven by ``write_message`` /
  ``read_message``; after the third message :meth:`HandshakeState.split` gives the two
  transport CipherStates (initiator→responder, responder→initiator).

Primitives come from ``cryptography`` (X25519, ChaCha20-Poly1305) and the standard library
(SHA-256, HMAC). Ephemeral keys are drawn from the OS CSPRNG unless injected (test vectors).
Checked against the published cacophony and snow vectors (tests/vectors/noise/).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from p2p.transport.errors import NoiseError

__all__ = [
    "DHLEN",
    "HASHLEN",
    "MAX_MESSAGE_LEN",
    "MAX_NONCE",
    "PROTOCOL_NAME",
    "TAGLEN",
    "CipherState",
    "HandshakeState",
    "KeyPair",
    "NoiseError",
    "SymmetricState",
    "hkdf",
]

PROTOCOL_NAME: Final = b"Noise_XX_25519_ChaChaPoly_SHA256"
DHLEN: Final = 32
HASHLEN: Final = 32
TAGLEN: Final = 16
KEYLEN: Final = 32
MAX_NONCE: Final = (1 << 64) - 1
"""Reserved (§5.1): no message is ever encrypted with it; :meth:`CipherState.rekey` uses it."""
MAX_MESSAGE_LEN: Final = 65535
"""Largest Noise message (§3); handshake messages are far smaller."""
_ZEROS32: Final = bytes(32)

XX: Final[tuple[tuple[str, ...], ...]] = (("e",), ("e", "ee", "s", "es"), ("s", "se"))
"""The XX pattern: message i is written by the initiator when i is even."""


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf(chaining_key: bytes, input_key_material: bytes, outputs: int) -> tuple[bytes, ...]:
    """§4.3 ``HKDF(chaining_key, input_key_material, num_outputs)`` with HMAC-SHA256."""
    if outputs not in (2, 3):
        raise ValueError("HKDF gives 2 or 3 outputs")
    temp_key = _hmac(chaining_key, input_key_material)
    out1 = _hmac(temp_key, b"\x01")
    out2 = _hmac(temp_key, out1 + b"\x02")
    if outputs == 2:
        return out1, out2
    return out1, out2, _hmac(temp_key, out2 + b"\x03")


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


class KeyPair:
    """An X25519 key pair (the private key raw, as Noise vectors and our key file hold it)."""

    __slots__ = ("_sk", "public")

    def __init__(self, private: bytes) -> None:
        if len(private) != DHLEN:
            raise NoiseError(f"private key must be {DHLEN} bytes")
        self._sk = X25519PrivateKey.from_private_bytes(private)
        self.public: bytes = self._sk.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> KeyPair:
        pair = cls.__new__(cls)
        pair._sk = X25519PrivateKey.generate()
        pair.public = pair._sk.public_key().public_bytes_raw()
        return pair

    def dh(self, public: bytes) -> bytes:
        """``DH(self, public)``; a low-order peer key (all-zero output) is refused."""
        if len(public) != DHLEN:
            raise NoiseError(f"public key must be {DHLEN} bytes")
        try:
            shared = self._sk.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError:
            raise NoiseError("DH with a low-order public key") from None
        if hmac.compare_digest(shared, _ZEROS32):  # pragma: no cover - cryptography refuses first
            raise NoiseError("DH with a low-order public key")
        return shared

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()})"


class CipherState:
    """§5.1: a ChaChaPoly key (or none) and a counter nonce."""

    __slots__ = ("_aead", "_key", "n")

    def __init__(self, key: bytes | None = None, n: int = 0) -> None:
        self._key: bytes | None = None
        self._aead: ChaCha20Poly1305 | None = None
        self.n = 0
        if key is not None:
            self.initialize_key(key)
        self.n = n

    def initialize_key(self, key: bytes | None) -> None:
        if key is not None and len(key) != KEYLEN:
            raise NoiseError(f"cipher key must be {KEYLEN} bytes")
        self._key = key
        self._aead = ChaCha20Poly1305(key) if key is not None else None
        self.n = 0

    def has_key(self) -> bool:
        return self._key is not None

    def set_nonce(self, n: int) -> None:
        self.n = n

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._aead is None:
            return plaintext
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce space exhausted: rekey or reconnect")
        out = self._aead.encrypt(_nonce(self.n), plaintext, ad)
        self.n += 1
        return out

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Raises :class:`NoiseError` on a bad tag; the nonce then stays where it was."""
        if self._aead is None:
            return ciphertext
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce space exhausted: rekey or reconnect")
        if len(ciphertext) < TAGLEN:
            raise NoiseError("ciphertext shorter than its tag")
        try:
            out = self._aead.decrypt(_nonce(self.n), ciphertext, ad)
        except InvalidTag:
            raise NoiseError("decryption failed") from None
        self.n += 1
        return out

    def rekey(self) -> None:
        """§11.3 ``REKEY(k) = ENCRYPT(k, maxnonce, zerolen, zeros)[:32]``; ``n`` is kept."""
        if self._aead is None:
            raise NoiseError("rekey without a key")
        new = self._aead.encrypt(_nonce(MAX_NONCE), _ZEROS32, b"")[:KEYLEN]
        n = self.n
        self.initialize_key(new)
        self.n = n

    def __repr__(self) -> str:  # never show the key
        return f"CipherState(keyed={self.has_key()}, n={self.n})"


class SymmetricState:
    """§5.2: chaining key, transcript hash and the handshake's CipherState."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME) -> None:
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self.h = _hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_k = hkdf(self.ck, input_key_material, 2)
        self.cipher.initialize_key(temp_k[:KEYLEN])

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        temp_k1, temp_k2 = hkdf(self.ck, b"", 2)
        return CipherState(temp_k1[:KEYLEN]), CipherState(temp_k2[:KEYLEN])


class HandshakeState:
    """§5.3 for the XX pattern: three messages, alternating, the initiator first.

    ``write_message(payload)`` / ``read_message(message)`` in turn; any failure (bad length,
    bad tag, low-order key, out of turn) raises :class:`NoiseError` and leaves the state
    failed for good. After the third message :attr:`complete` is true, :attr:`remote_static`
    is the peer's proven static key and :meth:`split` gives ``(send, receive)``.
    """

    __slots__ = (
        "_e",
        "_ephemeral_factory",
        "_extra",
        "_failed",
        "_index",
        "_s",
        "_split",
        "_ss",
        "initiator",
        "re",
        "rs",
    )

    def __init__(
        self,
        initiator: bool,
        static: KeyPair,
        *,
        prologue: bytes = b"",
        ephemeral: KeyPair | None = None,
        ephemeral_factory: Callable[[], KeyPair] = KeyPair.generate,
        protocol_name: bytes = PROTOCOL_NAME,
    ) -> None:
        self.initiator = initiator
        self._s = static
        self._e = ephemeral
        self._ephemeral_factory = ephemeral_factory
        self._ss = SymmetricState(protocol_name)
        self._ss.mix_hash(prologue)
        self._index = 0
        self._failed = False
        self._split: tuple[CipherState, CipherState] | None = None
        self._extra = b""
        self.re: bytes | None = None
        self.rs: bytes | None = None

    # --- state ---------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self._index >= len(XX) and not self._failed

    @property
    def handshake_hash(self) -> bytes:
        """``h`` (channel binding); final once :attr:`complete`."""
        return self._ss.h

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key (proven only once :attr:`complete`)."""
        return self.rs

    @property
    def my_turn_to_write(self) -> bool:
        return self._index < len(XX) and (self._index % 2 == 0) == self.initiator

    @property
    def extra_key(self) -> bytes:
        """A third secret key from the final chaining key: the third output of the HKDF
        whose first two Split() turns into the transport keys (``HKDF(ck, "", 3)[2]``).
        Independent of both transport keys; for a second channel (UEPS) on the session."""
        if not self.complete:
            raise NoiseError("extra_key before the handshake completed")
        return self._extra

    def split(self) -> tuple[CipherState, CipherState]:
        """``(send, receive)`` transport CipherStates for this side (after message 3)."""
        if not self.complete or self._split is None:
            raise NoiseError("split() before the handshake completed")
        c1, c2 = self._split
        return (c1, c2) if self.initiator else (c2, c1)

    # --- messages ------------------------------------------------------------------
    def write_message(self, payload: bytes = b"") -> bytes:
        self._check_turn(writing=True)
        try:
            out = bytearray()
            ss = self._ss
            for token in XX[self._index]:
                if token == "e":
                    if self._e is None:
                        self._e = self._ephemeral_factory()
                    out += self._e.public
                    ss.mix_hash(self._e.public)
                elif token == "s":
                    out += ss.encrypt_and_hash(self._s.public)
                else:
                    self._dh_token(token)
            out += ss.encrypt_and_hash(payload)
            if len(out) > MAX_MESSAGE_LEN:
                raise NoiseError("handshake message too long")
        except NoiseError:
            self._failed = True
            raise
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        self._check_turn(writing=False)
        try:
            if len(message) > MAX_MESSAGE_LEN:
                raise NoiseError("handshake message too long")
            ss = self._ss
            rest = bytes(message)
            for token in XX[self._index]:
                if token == "e":
                    if len(rest) < DHLEN:
                        raise NoiseError("handshake message truncated")
                    self.re, rest = rest[:DHLEN], rest[DHLEN:]
                    ss.mix_hash(self.re)
                elif token == "s":
                    size = DHLEN + (TAGLEN if ss.cipher.has_key() else 0)
                    if len(rest) < size:
                        raise NoiseError("handshake message truncated")
                    self.rs = ss.decrypt_and_hash(rest[:size])
                    rest = rest[size:]
                else:
                    self._dh_token(token)
            payload = ss.decrypt_and_hash(rest)
        except NoiseError:
            self._failed = True
            self.rs = None
            raise
        self._advance()
        return payload

    # --- internals -----------------------------------------------------------------
    def _check_turn(self, *, writing: bool) -> None:
        if self._failed:
            raise NoiseError("handshake has failed")
        if self._index >= len(XX):
            raise NoiseError("handshake already complete")
        if self.my_turn_to_write != writing:
            raise NoiseError("not this side's turn")

    def _dh_token(self, token: str) -> None:
        e, s, re, rs = self._e, self._s, self.re, self.rs
        if token == "ee":
            pair, remote = e, re
        elif token == "es":
            pair, remote = (e, rs) if self.initiator else (s, re)
        elif token == "se":
            pair, remote = (s, re) if self.initiator else (e, rs)
        else:  # pragma: no cover - XX has no other tokens
            raise NoiseError(f"unknown token {token}")
        if pair is None or remote is None:
            raise NoiseError(f"{token} before its keys are known")
        self._ss.mix_key(pair.dh(remote))

    def _advance(self) -> None:
        self._index += 1
        if self._index == len(XX):
            self._split = self._ss.split()
            self._extra = hkdf(self._ss.ck, b"", 3)[2]


def pattern_messages() -> Sequence[tuple[str, ...]]:
    """The XX message patterns (for documentation and tests)."""
    return XX
