"""The fused sigil entry points of the extension before anyone installs an AEAD.

p2p-ueps has no libsodium of its own: ``p2p.transport.sigil`` hands in function pointers.
These checks run in a fresh interpreter so no transport import has installed them yet.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SCRIPT = """
from p2p.ueps import _speedups as ext
assert not ext.sigil_fused_available()
for call in (lambda: ext.sigil_seal(bytes(32), bytes(24), b"x"),
             lambda: ext.sigil_open(bytes(32), bytes(40))):
    try:
        call()
    except RuntimeError as e:
        assert "no XChaCha20-Poly1305" in str(e), e
    else:
        raise SystemExit("fused call ran without an AEAD")
for enc, dec in ((1, 0), (0, 1)):
    try:
        ext.install_xchacha20poly1305(enc, dec)
    except ValueError:
        pass
    else:
        raise SystemExit("half an AEAD was accepted")
ext.install_xchacha20poly1305(0, 0)
assert not ext.sigil_fused_available()
print("ok")
"""


def test_fused_calls_refuse_to_run_without_an_installed_aead() -> None:
    if os.environ.get("P2P_NO_EXTENSIONS", "") not in ("", "0"):
        pytest.skip("extensions disabled")
    try:
        from p2p.ueps import _speedups  # noqa: F401
    except ImportError:
        pytest.skip("Cython extension not built")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
