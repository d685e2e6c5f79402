"""Installing from scratch: one package alone from the wheelhouse, and the README's first line.

The README's Packages section promises ``python tools/wheelhouse.py`` then
``pip install --find-links dist p2p-identity``. This builds the wheelhouse into a temporary
directory and installs p2p-identity into a brand-new venv with the machine's ordinary pip
configuration (third-party dependencies come from the configured package index). The
p2p-ueps wheel is built pure (``P2P_NO_EXTENSIONS=1``) to keep the build short; the
extension build has its own tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a checkout may hold besides sources (build products, caches, editable-install data).
wheelhouse_ignore = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", "*.so", "_speedups.c"
)

pytestmark = pytest.mark.slow


def _run(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=cwd
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_one_package_installs_alone_from_the_wheelhouse(tmp_path: Path) -> None:
    wheels = tmp_path / "dist"
    env = {**os.environ, "P2P_NO_EXTENSIONS": "1"}
    script = str(ROOT / "tools" / "wheelhouse.py")
    built = _run([sys.executable, script, "-q", str(wheels)], env=env)
    names = sorted(p.name.split("-")[0] for p in wheels.glob("p2p_*.whl"))
    assert names == ["p2p_controller", "p2p_identity", "p2p_peers", "p2p_transport", "p2p_ueps"]
    assert "pip install --find-links" in built.stdout

    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--find-links", str(wheels), "p2p-identity"])

    listed = _run([str(python), "-m", "pip", "list", "--format", "freeze"]).stdout
    ours = sorted(line.split("==")[0] for line in listed.splitlines() if line.startswith("p2p"))
    assert ours == ["p2p-identity", "p2p-ueps"]  # the package and its one sibling, nothing else

    probe = (
        "import importlib.util, p2p.identity as i\n"
        "kp = i.KeyPair.generate()\n"
        "assert kp.node_id == i.node_id_from_public_key(kp.public_key_b64)\n"
        "assert importlib.util.find_spec('p2p.transport') is None\n"
        "print(i.__version__)\n"
    )
    shown = _run([str(python), "-c", probe], cwd=tmp_path)
    pyproject = (ROOT / "packages" / "p2p-identity" / "pyproject.toml").read_text()
    assert f'version = "{shown.stdout.strip()}"' in pyproject


def test_readme_first_command_in_a_brand_new_venv(tmp_path: Path) -> None:
    """The README's first line, as written, from a fresh copy of the packages."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    command = readme[readme.index("```sh") + 1]
    assert command.startswith("python3 -m venv .venv && ") and command.endswith("p2p-node demo")
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "packages", checkout / "packages", ignore=wheelhouse_ignore)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "P2P_NODE_DIR"}
    env.update(HOME=str(home))  # pip's cache and the demo's files stay in tmp
    done = _run(["bash", "-e", "-c", command], env=env, cwd=checkout)
    assert "Done in" in done.stdout, done.stdout
