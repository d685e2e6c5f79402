"""Which implementation ``p2p.ueps`` picks, and the native SHA-256 backends."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest


def _implementation(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("P2P_NO_EXTENSIONS", None)
    if env_value is not None:
        env["P2P_NO_EXTENSIONS"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", "import p2p.ueps as u; print(u.IMPLEMENTATION)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_env_switch_selects_pure() -> None:
    assert _implementation("1") == "python"


def test_default_is_cython_when_built() -> None:
    if os.environ.get("P2P_NO_EXTENSIONS", "") not in ("", "0"):
        pytest.skip("pure leg: the extension is deliberately not built")
    try:
        import p2p.ueps._speedups  # noqa: F401
    except ImportError:
        if os.environ.get("P2P_EXPECT_CYTHON") == "1":
            raise
        pytest.skip("extension not built")
    assert _implementation(None) == "cython"
    assert _implementation("0") == "cython"


def test_portable_and_accelerated_sha256_agree() -> None:
    sp = pytest.importorskip("p2p.ueps._speedups")
    data = [os.urandom(n) for n in (0, 55, 56, 64, 119, 120, 1000, 65_599)]
    try:
        for force in (True, False):
            sp._force_portable_sha256(force)
            for d in data:
                assert sp.sha256(d) == hashlib.sha256(d).digest()
    finally:
        sp._force_portable_sha256(False)
    assert sp.sha256_backend() in ("sha-ni", "portable")
