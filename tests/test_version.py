"""Every package says its version, single-sourced from its pyproject.toml, and the CLI too."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["ueps", "identity", "transport", "peers", "controller"]


def _pyproject_version(name: str) -> str:
    text = (ROOT / "packages" / f"p2p-{name}" / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert match, f"no version in p2p-{name}'s pyproject.toml"
    return match.group(1)


@pytest.mark.parametrize("name", PACKAGES)
def test_package_version_is_the_pyproject_version(name: str) -> None:
    module = importlib.import_module(f"p2p.{name}")
    assert module.__version__ == _pyproject_version(name)
    assert "__version__" in module.__all__


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_version_flag_and_module_alias(how: str) -> None:
    script = Path(sys.executable).with_name("p2p-node")
    prefix = [str(script)] if how == "console script" else [sys.executable, "-m", "p2p.controller"]
    done = subprocess.run(
        [*prefix, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"p2p-node {_pyproject_version('controller')}"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2p.controller", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_module_alias_runs_the_same_command(tmp_path: Path) -> None:
    """``python -m p2p.controller`` is p2p-node: same parser, same exit codes."""
    data = str(tmp_path / "node")
    done = _run("--data-dir", data, "identity", "init", "--name", "alias")
    assert done.returncode == 0, done.stderr
    shown = _run("--data-dir", data, "--json", "identity", "show")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "alias"
    assert _run("--data-dir", data, "nosuchcommand").returncode == 2


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_shell_completion_script(shell: str, tmp_path: Path) -> None:
    """``p2p-node --print-completion SHELL`` (shtab) prints a script the shell accepts."""
    done = _run("--print-completion", shell)
    assert done.returncode == 0, done.stderr
    for word in ("serve", "peers", "miner", "--data-dir"):
        assert word in done.stdout
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed: the script was printed but not syntax-checked")
    script = tmp_path / f"p2p-node.{shell}"
    script.write_text(done.stdout, encoding="utf-8")
    checked = subprocess.run(
        [shell, "-n", str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stderr
