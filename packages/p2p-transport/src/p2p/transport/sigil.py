"""The ChaChaPoly sigil (Enchantrix ``crypto_sigil``): what SMSG frames and STIM bundles
encrypt with.

``seal`` = ``nonce(24) || XChaCha20-Poly1305-IETF(key, nonce, plaintext XOR keystream(nonce))
|| tag(16)``, no associated data, where the keystream is the Enchantrix pre-obfuscation
(``p2p.ueps.keystream_xor``). The key is SHA-256 of the UTF-8 password.

XChaCha20-Poly1305 is HChaCha20(key, N[:16]) as the subkey, then ChaCha20-Poly1305-IETF with
nonce ``00000000 || N[16:24]``. Three backends give identical bytes (checked by a self-test
at import and by the tests); the fastest available for the size is used (libsodium below
:data:`LARGE` bytes, OpenSSL from there on):

- ``"sodium"``: libsodium's ``crypto_aead_xchacha20poly1305_ietf_*`` called directly through
  PyNaCl's cffi module (no per-call wrapper work);
- ``"hchacha+cryptography"``: HChaCha20 from libsodium (the subkey a secretstream state
  derives from its header) and ``cryptography``'s ChaCha20Poly1305;
- ``"nacl"``: PyNaCl's public ``nacl.bindings`` wrapper (slowest, always there).

Below :data:`FUSED_LARGE` bytes, when the ``p2p.ueps`` Cython extension is live, :func:`seal` /
:func:`open` (and SMSG) go one step further: the extension does keystream and AEAD in one
call into one output buffer, calling the same libsodium through function pointers this
module takes from PyNaCl's cffi library and hands in at import (so the extension needs no
libsodium headers to build). :data:`FUSED` says whether that path is live; it is
self-tested against the composed path above and left off if the bytes differ.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import Callable, Iterator
from types import ModuleType

import nacl.bindings as _nb
import nacl.exceptions as _nacl_exc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from p2p.transport._native import speedups
from p2p.transport._random import random_bytes
from p2p.transport.errors import SigilError
from p2p.ueps import keystream_xor

try:
    from nacl._sodium import ffi as _ffi
    from nacl._sodium import lib as _lib
except ImportError:  # pragma: no cover - PyNaCl always ships its cffi module
    _ffi = _lib = None

__all__ = [
    "BACKEND",
    "BACKENDS",
    "FUSED",
    "FUSED_LARGE",
    "KEY_SIZE",
    "LARGE",
    "LARGE_BACKEND",
    "NONCE_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "SigilError",
    "derive_key",
    "open",
    "open_raw",
    "random_nonce",
    "seal",
    "seal_raw",
]

log = logging.getLogger(__name__)

KEY_SIZE = 32
NONCE_SIZE = 24
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
"""Bytes a sealed output adds to the plaintext (40)."""

_AeadSeal = Callable[[bytes, bytes, bytes], bytes]  # (key, nonce24, plaintext) -> ct||tag
_AeadOpen = Callable[[bytes, bytes, bytes], bytes]  # (key, nonce24, ct||tag) -> plaintext


class _UnauthenticError(Exception):
    """Internal: the AEAD rejected the input."""


def derive_key(password: str) -> bytes:
    """SHA-256 of the UTF-8 password (Borg/Enchantrix ``DeriveKey``)."""
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()


# --- backend: PyNaCl public wrapper -------------------------------------------------------


def _nacl_seal(key: bytes, nonce: bytes, pt: bytes) -> bytes:
    out: bytes = _nb.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, None, nonce, key)
    return out


def _nacl_open(key: bytes, nonce: bytes, ct: bytes) -> bytes:
    try:
        out: bytes = _nb.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, None, nonce, key)
    except _nacl_exc.CryptoError:
        raise _UnauthenticError from None
    return out


# --- backend: HChaCha20 (libsodium) + cryptography ChaCha20Poly1305 ------------------------

_ZERO4 = b"\x00\x00\x00\x00"


def _make_hchacha() -> Callable[[bytes, bytes], bytes] | None:
    """HChaCha20(key, nonce[:16]): a secretstream pull-state initialised with the 24-byte
    nonce as header holds exactly that subkey in its first 32 bytes (libsodium's documented
    state layout ``k[32] || nonce[12] || pad[8]``). Verified against RFC test data below."""
    if _lib is None:  # pragma: no cover
        return None
    ffi, lib = _ffi, _lib
    size = int(lib.crypto_secretstream_xchacha20poly1305_statebytes())
    if size < 32:  # pragma: no cover
        return None

    def hchacha(key: bytes, nonce: bytes) -> bytes:
        state = ffi.new("unsigned char[]", size)
        if lib.crypto_secretstream_xchacha20poly1305_init_pull(state, nonce, key) != 0:
            raise SigilError("HChaCha20 failed")  # pragma: no cover
        return bytes(ffi.buffer(state, 32))

    # draft-irtf-cfrg-xchacha-03 §2.2.1 test vector
    k = bytes(range(32))
    n = bytes.fromhex("000000090000004a0000000031415927") + bytes(8)
    want = "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    try:
        if hchacha(k, n).hex() != want:  # pragma: no cover
            return None
    except Exception:  # pragma: no cover - any surprise means: do not use this path
        return None
    return hchacha


_hchacha = _make_hchacha()


def _crypto_seal(key: bytes, nonce: bytes, pt: bytes) -> bytes:
    assert _hchacha is not None
    return ChaCha20Poly1305(_hchacha(key, nonce)).encrypt(_ZERO4 + nonce[16:], pt, None)


def _crypto_open(key: bytes, nonce: bytes, ct: bytes) -> bytes:
    assert _hchacha is not None
    try:
        return ChaCha20Poly1305(_hchacha(key, nonce)).decrypt(_ZERO4 + nonce[16:], ct, None)
    except InvalidTag:
        raise _UnauthenticError from None


# --- backend: libsodium AEAD called directly ----------------------------------------------


def _make_sodium() -> tuple[_AeadSeal, _AeadOpen] | None:
    if _lib is None:  # pragma: no cover
        return None
    ffi, lib = _ffi, _lib
    enc = lib.crypto_aead_xchacha20poly1305_ietf_encrypt
    dec = lib.crypto_aead_xchacha20poly1305_ietf_decrypt
    null = ffi.NULL
    new = ffi.new
    buf = ffi.buffer

    def seal_(key: bytes, nonce: bytes, pt: bytes) -> bytes:
        n = len(pt) + TAG_SIZE
        out = new("unsigned char[]", n)
        if enc(out, null, pt, len(pt), null, 0, null, nonce, key) != 0:
            raise SigilError("encryption failed")  # pragma: no cover
        return bytes(buf(out, n))

    def open_(key: bytes, nonce: bytes, ct: bytes) -> bytes:
        n = len(ct) - TAG_SIZE
        out = new("unsigned char[]", max(n, 1))
        if dec(out, null, null, ct, len(ct), null, 0, nonce, key) != 0:
            raise _UnauthenticError
        return bytes(buf(out, n))

    return seal_, open_


def _self_test(s: _AeadSeal, o: _AeadOpen) -> bool:
    k = bytes(range(32))
    n = bytes(range(64, 88))
    for pt in (b"", b"x", bytes(range(256)) * 3):
        try:
            ct = s(k, n, pt)
            if ct != _nacl_seal(k, n, pt) or o(k, n, ct) != pt:
                return False
            bad = bytearray(ct)
            bad[-1] ^= 1
            try:
                o(k, n, bytes(bad))
            except _UnauthenticError:
                continue
            return False
        except Exception:
            return False
    return True


BACKENDS: dict[str, tuple[_AeadSeal, _AeadOpen]] = {}
"""Every backend that passed the self-test, fastest first."""

_sodium = _make_sodium()
if _sodium is not None and _self_test(*_sodium):
    BACKENDS["sodium"] = _sodium
if _hchacha is not None and _self_test(_crypto_seal, _crypto_open):
    BACKENDS["hchacha+cryptography"] = (_crypto_seal, _crypto_open)
BACKENDS["nacl"] = (_nacl_seal, _nacl_open)

BACKEND: str = next(iter(BACKENDS))
"""The AEAD backend for inputs under :data:`LARGE` bytes (see the module docstring)."""
LARGE = 4096
"""From this many bytes OpenSSL's ChaCha20-Poly1305 (the ``hchacha+cryptography`` backend)
is faster than the libsodium build PyNaCl ships (~2x at 16-64 KiB here); below it the
per-call cost of building a ``ChaCha20Poly1305`` object makes libsodium faster."""
LARGE_BACKEND: str = "hchacha+cryptography" if "hchacha+cryptography" in BACKENDS else BACKEND
"""The AEAD backend for inputs of :data:`LARGE` bytes or more."""
_aead_seal_small, _aead_open_small = BACKENDS[BACKEND]
_aead_seal_large, _aead_open_large = BACKENDS[LARGE_BACKEND]


# --- fused path: keystream + libsodium AEAD in one call of the p2p.ueps extension --------

_FusedSeal = Callable[[bytes, bytes, bytes, bytes], bytes]  # (key, nonce, pt, prefix) -> out
_FusedOpen = Callable[[bytes, bytes, int], bytes]  # (key, data, offset) -> plaintext


def _speedups() -> ModuleType | None:
    """The ``p2p.ueps`` extension module when it is the live codec and knows the fused
    calls (an older build does not), else ``None``."""
    ext = speedups()
    if ext is None or not hasattr(ext, "install_xchacha20poly1305"):
        return None
    return ext


def _make_fused() -> tuple[_FusedSeal, _FusedOpen, type[Exception]] | None:
    ext = _speedups()
    if ext is None or _lib is None:
        return None
    ffi, lib = _ffi, _lib
    try:
        enc = int(
            ffi.cast("uintptr_t", ffi.addressof(lib, "crypto_aead_xchacha20poly1305_ietf_encrypt"))
        )
        dec = int(
            ffi.cast("uintptr_t", ffi.addressof(lib, "crypto_aead_xchacha20poly1305_ietf_decrypt"))
        )
    except (AttributeError, TypeError):  # pragma: no cover - a PyNaCl without the symbols
        return None
    ext.install_xchacha20poly1305(enc, dec, lib)
    fused: tuple[_FusedSeal, _FusedOpen, type[Exception]] = (
        ext.sigil_seal,
        ext.sigil_open,
        ext.SigilAuthError,
    )
    if not _fused_self_test(*fused):  # pragma: no cover - never seen; then do not use it
        ext.install_xchacha20poly1305(0, 0)
        log.warning("fused sigil self-test failed: using the composed path")
        return None
    return fused


def _fused_self_test(s: _FusedSeal, o: _FusedOpen, auth_error: type[Exception]) -> bool:
    """The fused calls give the composed path's bytes and refuse a flipped bit (sizes on
    both sides of the extension's release-the-GIL threshold)."""
    k = bytes(range(32))
    n = bytes(range(64, 88))
    for pt in (b"", b"x", bytes(range(256)) * 3, bytes(range(256)) * 12):
        try:
            out = s(k, n, pt, b"PFX")
            want = b"PFX" + n + _nacl_seal(k, n, keystream_xor(n, pt) if pt else b"")
            if out != want or o(k, out, 3) != pt:
                return False
            bad = bytearray(out)
            bad[-1] ^= 1
            try:
                o(k, bytes(bad), 3)
            except auth_error:
                continue
            return False
        except Exception:
            return False
    return True


_fused = _make_fused()
_fused_seal: _FusedSeal | None = None if _fused is None else _fused[0]
_fused_open: _FusedOpen | None = None if _fused is None else _fused[1]
_FusedOpenMessage = Callable[[bytes, bytes, int, int], "tuple[str, ...] | bytes"]
_fused_open_message_ext: _FusedOpenMessage | None = (
    None if _fused is None else getattr(_speedups(), "sigil_open_message", None)
)
_fused_open_message: _FusedOpenMessage | None = _fused_open_message_ext
"""``(key, frame, offset, max_message)``: :func:`_open_at` and, for the plaintext Go
writes, the envelope's fields (``p2p.transport.frames``); the plaintext bytes otherwise."""
_FusedAuthError: type[Exception] = _UnauthenticError if _fused is None else _fused[2]
FUSED: bool = _fused is not None
"""Whether SMSG/sigil seal and open below :data:`FUSED_LARGE` bytes run fused in the
extension."""
FUSED_LARGE = 16 * 1024
"""From this many bytes the composed OpenSSL path beats the fused one (libsodium's
per-byte cost overtakes the saved call and allocation overhead: a tie at 16 KiB here,
fused ~1.1-1.2x faster at 4-8 KiB, OpenSSL ~1.1-1.7x faster at 32-64 KiB)."""
log.debug(
    "sigil AEAD backends: %s (< %d B), %s; fused below %d B: %s",
    *(BACKEND, LARGE, LARGE_BACKEND, FUSED_LARGE, FUSED),
)


@contextlib.contextmanager
def _fused_path(on: bool) -> Iterator[bool]:
    """Tests and benchmarks: run the block on the fused (when available) or the composed
    path; yields whether the fused path is live inside it."""
    global _fused_seal, _fused_open, _fused_open_message
    saved = _fused_seal, _fused_open, _fused_open_message
    if on and _fused is not None:
        _fused_seal, _fused_open = _fused[0], _fused[1]
        _fused_open_message = _fused_open_message_ext
    else:
        _fused_seal = _fused_open = _fused_open_message = None
    try:
        yield _fused_seal is not None
    finally:
        _fused_seal, _fused_open, _fused_open_message = saved


def _aead_seal(key: bytes, nonce: bytes, pt: bytes) -> bytes:
    fn = _aead_seal_small if len(pt) < LARGE else _aead_seal_large
    return fn(key, nonce, pt)


def _aead_open(key: bytes, nonce: bytes, ct: bytes) -> bytes:
    fn = _aead_open_small if len(ct) < LARGE + TAG_SIZE else _aead_open_large
    return fn(key, nonce, ct)


def _check(key: bytes, nonce: bytes | None) -> None:
    if len(key) != KEY_SIZE:
        raise SigilError(f"key must be {KEY_SIZE} bytes, got {len(key)}")
    if nonce is not None and len(nonce) != NONCE_SIZE:
        raise SigilError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")


def seal_raw(key: bytes, nonce: bytes, plaintext: bytes, *, backend: str | None = None) -> bytes:
    """XChaCha20-Poly1305 only (no pre-obfuscation): ``ciphertext || tag``."""
    _check(key, nonce)
    fn = _aead_seal if backend is None else BACKENDS[backend][0]
    return fn(bytes(key), bytes(nonce), bytes(plaintext))


def open_raw(key: bytes, nonce: bytes, sealed: bytes, *, backend: str | None = None) -> bytes:
    """Inverse of :func:`seal_raw`; :class:`SigilError` on a short input or a bad tag."""
    _check(key, nonce)
    if len(sealed) < TAG_SIZE:
        raise SigilError(f"sealed data of {len(sealed)} bytes is shorter than the tag")
    fn = _aead_open if backend is None else BACKENDS[backend][1]
    try:
        return fn(bytes(key), bytes(nonce), bytes(sealed))
    except _UnauthenticError:
        raise SigilError("authentication failed (wrong key or tampered data)") from None


random_nonce: Callable[[], bytes] = functools.partial(random_bytes, NONCE_SIZE)
"""A fresh random 24-byte nonce."""


def _seal_ct(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """``ciphertext || tag`` of the obfuscated plaintext (no checks, no nonce prefix)."""
    if not plaintext:
        return _aead_seal_small(key, nonce, b"")
    fn = _aead_seal_small if len(plaintext) < LARGE else _aead_seal_large
    return fn(key, nonce, keystream_xor(nonce, plaintext))


def _seal_prefixed(key: bytes, nonce: bytes, plaintext: bytes, prefix: bytes = b"") -> bytes:
    """``prefix || nonce || ciphertext || tag`` (no checks): one allocation on the fused
    path, the composed path otherwise."""
    fused = _fused_seal
    if fused is not None and len(plaintext) < FUSED_LARGE:
        return fused(key, nonce, plaintext, prefix)
    return b"".join((prefix, nonce, _seal_ct(key, nonce, plaintext)))


def _seal(key: bytes, plaintext: bytes, nonce: bytes | None) -> bytes:
    """:func:`seal` without argument checks (callers pass a 32-byte key, 24-byte nonce)."""
    if nonce is None:
        nonce = random_bytes(NONCE_SIZE)
    return _seal_prefixed(key, nonce, plaintext)


def _open_at(key: bytes, data: bytes, offset: int) -> bytes:
    """:func:`open` of ``data[offset:]`` without argument checks (``data`` is bytes with at
    least 40 bytes from ``offset``); the fused path reads it in place."""
    fused = _fused_open
    if fused is not None and len(data) - offset < FUSED_LARGE + OVERHEAD:
        try:
            return fused(key, data, offset)
        except _FusedAuthError:
            raise SigilError("authentication failed (wrong key or tampered data)") from None
    return _open(key, data[offset:] if offset else data)


def _open(key: bytes, data: bytes) -> bytes:
    """:func:`open` without argument checks (``data`` is bytes of at least 40), composed."""
    nonce = data[:NONCE_SIZE]
    try:
        ct = data[NONCE_SIZE:]
        fn = _aead_open_small if len(ct) < LARGE + TAG_SIZE else _aead_open_large
        obf = fn(key, nonce, ct)
    except _UnauthenticError:
        raise SigilError("authentication failed (wrong key or tampered data)") from None
    return keystream_xor(nonce, obf) if obf else b""


def seal(key: bytes, plaintext: bytes, *, nonce: bytes | None = None) -> bytes:
    """``nonce || XChaCha20-Poly1305(key, nonce, plaintext XOR keystream(nonce)) || tag``.
    A fresh random 24-byte nonce unless one is given (tests and vectors only)."""
    _check(key, nonce)
    return _seal(bytes(key), bytes(plaintext), None if nonce is None else bytes(nonce))


def open(key: bytes, data: bytes) -> bytes:
    """Inverse of :func:`seal`. :class:`SigilError` if ``data`` is shorter than 40 bytes or
    does not authenticate under ``key``."""
    _check(key, None)
    if len(data) < OVERHEAD:
        raise SigilError(f"sealed data of {len(data)} bytes is shorter than nonce + tag")
    return _open_at(bytes(key), bytes(data), 0)
