"""Run the outside conformance checker (../shared/tools/check_vectors.py) on every section.

The checker calls exactly the public names the issues fix, so this is the outside view of
the contract each package's own vector tests check from inside. It lives beside the
repository (in ``../shared``) on development and CI machines; elsewhere these tests skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKER = Path(os.environ.get("P2P_CHECK_VECTORS", ROOT.parent / "shared/tools/check_vectors.py"))
SECTIONS = ["ueps", "identity", "smsg", "messages", "peers", "bundles"]


@pytest.mark.parametrize("section", SECTIONS)
def test_section_passes_outside_checker(section: str, golden_path: Path) -> None:
    if not CHECKER.is_file():
        pytest.skip(f"outside checker not present at {CHECKER}")
    env = dict(os.environ)
    if section == "ueps" and env.get("P2P_NO_EXTENSIONS", "") not in ("", "0"):
        pytest.skip("the checker requires the Cython implementation")
    out = subprocess.run(
        [sys.executable, str(CHECKER), section, str(golden_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, f"{section}: {last}\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"
    assert last.startswith(f"{section}: ") and last.endswith(" pass")
