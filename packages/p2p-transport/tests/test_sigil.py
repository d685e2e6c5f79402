"""The ChaChaPoly sigil: fixed-nonce vectors, backend agreement, tamper rejection."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p import ueps
from p2p.transport import sigil
from p2p.transport.sigil import SigilError
from p2p.ueps import keystream_xor

SPEC_KEY = "905f28def18eaac05ae6f12b2c3452744afaf626da1343d57b395b544e0519b6"
SPEC_PASSWORD = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.fixture(scope="module", autouse=True, params=["fused", "composed"])
def sigil_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs on both sigil paths: keystream + AEAD fused in the p2p.ueps
    extension, and composed in Python (the only one without the extension)."""
    if request.param == "fused" and not sigil.FUSED:
        pytest.skip("fused sigil path unavailable (no p2p.ueps extension)")
    with sigil._fused_path(request.param == "fused") as live:
        assert live == (request.param == "fused")
        yield request.param


def test_derive_key_spec_vector() -> None:
    assert sigil.derive_key(SPEC_PASSWORD).hex() == SPEC_KEY


def test_fixed_nonce_vectors(golden: dict[str, Any]) -> None:
    cases = golden["smsg"]["fixed_nonce"]
    assert cases
    for c in cases:
        key = sigil.derive_key(c["password"])
        assert key.hex() == c["key_hex"], c["name"]
        nonce = bytes.fromhex(c["nonce_hex"])
        pt = c["plaintext_json"].encode()
        assert keystream_xor(nonce, pt).hex() == c["obfuscated_hex"], c["name"]
        out = sigil.seal(key, pt, nonce=nonce)
        assert out.hex() == c["sigil_output_hex"], c["name"]
        assert sigil.open(key, out) == pt


@pytest.mark.parametrize("backend", list(sigil.BACKENDS))
@pytest.mark.parametrize("size", [0, 1, 63, 64, 1024, 70_000])
def test_backends_agree_with_libsodium(backend: str, size: int) -> None:
    key, nonce, pt = os.urandom(32), os.urandom(24), os.urandom(size)
    want = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, None, nonce, key)
    got = sigil.seal_raw(key, nonce, pt, backend=backend)
    assert got == want
    assert sigil.open_raw(key, nonce, got, backend=backend) == pt
    bad = bytearray(got)
    bad[size // 2] ^= 0x80
    with pytest.raises(SigilError, match="authentication"):
        sigil.open_raw(key, nonce, bytes(bad), backend=backend)


def test_fast_backend_is_live() -> None:
    assert sigil.BACKEND in ("sodium", "hchacha+cryptography")


def test_random_nonce_and_roundtrip() -> None:
    key = sigil.derive_key("pw")
    a, b = sigil.seal(key, b"same"), sigil.seal(key, b"same")
    assert a != b and len(a) == 4 + sigil.OVERHEAD
    assert sigil.open(key, a) == sigil.open(key, b) == b"same"


def test_empty_plaintext() -> None:
    key = sigil.derive_key("pw")
    out = sigil.seal(key, b"", nonce=bytes(24))
    assert len(out) == 40 and sigil.open(key, out) == b""


def test_wrong_key_and_tamper() -> None:
    out = sigil.seal(sigil.derive_key("a"), b"hello")
    with pytest.raises(SigilError):
        sigil.open(sigil.derive_key("b"), out)
    for i in (0, 23, 24, len(out) - 1):
        bad = bytearray(out)
        bad[i] ^= 1
        with pytest.raises(SigilError):
            sigil.open(sigil.derive_key("a"), bytes(bad))


@pytest.mark.parametrize(
    ("key", "nonce", "data"),
    [(b"k" * 31, None, b"x" * 40), (b"k" * 32, b"n" * 23, None), (b"k" * 32, None, b"x" * 39)],
)
def test_bad_sizes(key: bytes, nonce: bytes | None, data: bytes | None) -> None:
    with pytest.raises(SigilError):
        if data is None:
            sigil.seal(key, b"x", nonce=nonce)
        else:
            sigil.open(key, data)


@settings(max_examples=50)
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_sigil_error(data: bytes) -> None:
    with contextlib.suppress(SigilError):
        sigil.open(bytes(32), data)


def test_nonces_unique_across_threads() -> None:
    import threading

    got: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [sigil.random_nonce() for _ in range(2000)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as much as CPython allows
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert len(got) == 8000 and len(set(got)) == 8000
    assert all(len(n) == sigil.NONCE_SIZE for n in got)


def test_forked_child_never_repeats_parent_nonces() -> None:
    sigil.random_nonce()  # make sure the parent holds a partly used pool
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the nonces it would use
        try:
            os.write(w, b"".join(sigil.random_nonce() for _ in range(8)))
        finally:
            os._exit(0)
    os.close(w)
    child = b""
    while chunk := os.read(r, 4096):
        child += chunk
    os.close(r)
    os.waitpid(pid, 0)
    parent = b"".join(sigil.random_nonce() for _ in range(8))
    assert len(child) == 8 * 24
    kids = {child[i : i + 24] for i in range(0, len(child), 24)}
    assert kids.isdisjoint({parent[i : i + 24] for i in range(0, len(parent), 24)})


def test_random_bytes_sizes_and_uniqueness() -> None:
    from p2p.transport._random import random_bytes

    assert len(random_bytes(1)) == 1 and len(random_bytes(32)) == 32
    assert len(random_bytes(4097)) == 4097  # beyond a slot: straight from os.urandom
    many = [random_bytes(16) for _ in range(1000)]  # crosses several refills
    assert len(set(many)) == 1000
    for n in (0, -1):
        with pytest.raises(ValueError):
            random_bytes(n)


@pytest.mark.parametrize(
    "size",
    sorted(
        {sigil.LARGE - 1, sigil.LARGE, sigil.LARGE + 1, 3 * sigil.LARGE}
        | {sigil.FUSED_LARGE - 1, sigil.FUSED_LARGE, sigil.FUSED_LARGE + 1}
    ),
)
def test_size_dispatch_boundary(size: int) -> None:
    key, nonce, pt = os.urandom(32), os.urandom(24), os.urandom(size)
    want = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        keystream_xor(nonce, pt), None, nonce, key
    )
    out = sigil.seal(key, pt, nonce=nonce)
    assert out == nonce + want
    assert sigil.seal_raw(
        key, nonce, pt
    ) == nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, None, nonce, key)
    assert sigil.open(key, out) == pt
    bad = bytearray(out)
    bad[-size // 2] ^= 4
    with pytest.raises(SigilError):
        sigil.open(key, bytes(bad))


# --- the fused path against the composed one --------------------------------------------------


def test_fused_path_is_live_with_the_extension() -> None:
    """With the Cython codec live, SMSG must not silently fall back to the slower path."""
    assert (ueps.IMPLEMENTATION == "cython") == sigil.FUSED


def _composed(key: bytes, nonce: bytes, pt: bytes) -> bytes:
    obf = keystream_xor(nonce, pt) if pt else b""
    return nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(obf, None, nonce, key)


@settings(max_examples=300, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=24, max_size=24),
    pt=st.binary(max_size=5000),
    prefix=st.binary(max_size=80),
)
def test_prefixed_seal_and_open_at_match_the_composed_bytes(
    key: bytes, nonce: bytes, pt: bytes, prefix: bytes
) -> None:
    sealed = sigil._seal_prefixed(key, nonce, pt, prefix)
    assert sealed == prefix + _composed(key, nonce, pt)
    assert sigil._open_at(key, sealed, len(prefix)) == pt
    bad = bytearray(sealed)
    bad[len(prefix) + len(bad[len(prefix) :]) // 2] ^= 1
    with pytest.raises(SigilError, match="authentication"):
        sigil._open_at(key, bytes(bad), len(prefix))


def test_fused_calls_refuse_bad_arguments() -> None:
    if not sigil.FUSED:
        pytest.skip("no p2p.ueps extension")
    from p2p.ueps import _speedups as ext  # type: ignore[attr-defined]

    key, nonce = os.urandom(32), os.urandom(24)
    with pytest.raises(ValueError):
        ext.sigil_seal(key[:31], nonce, b"x")
    with pytest.raises(ValueError):
        ext.sigil_seal(key, nonce[:23], b"x")
    with pytest.raises(ValueError):
        ext.sigil_open(key[:31], bytes(40))
    sealed = ext.sigil_seal(key, nonce, b"", b"ab")
    assert len(sealed) == 2 + sigil.OVERHEAD
    assert ext.sigil_open(key, sealed, 2) == b""
    for offset in (-1, 3, len(sealed) + 1):
        with pytest.raises(ValueError):
            ext.sigil_open(key, sealed, offset)
    with pytest.raises(ext.SigilAuthError):
        ext.sigil_open(os.urandom(32), sealed, 2)
    with pytest.raises(ValueError):
        ext.install_xchacha20poly1305(1, 0)
