"""Cross-package fixtures: the installed `p2p-node` command, run in subprocesses.

`p2p_node` runs one CLI command and returns its result; `p2p_serve` starts
`p2p-node serve` processes, waits for their one JSON line and stops them with SIGTERM at
the end of the test (SIGKILL only if one does not stop, which fails the test).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Generous bound for one CLI command (each is a fresh interpreter: imports dominate).
COMMAND_TIMEOUT = 60.0
SERVE_START_TIMEOUT = 30.0
SERVE_STOP_TIMEOUT = 15.0


def p2p_node_command() -> list[str]:
    """The installed console script (the venv's, beside this interpreter, first)."""
    beside = Path(sys.executable).parent / "p2p-node"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("p2p-node")
    if found is None:
        pytest.fail("the p2p-node command is not installed (pip install ./packages/p2p-controller)")
    return [found]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "P2P_NODE_DIR"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        lines = [line for line in self.out.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one JSON line, got: {self.out!r} (stderr {self.err!r})"
        return json.loads(lines[0])


@pytest.fixture
def p2p_node() -> Callable[..., CliResult]:
    """``p2p_node(*args, env=None) -> CliResult`` running the real entry point."""
    exe = p2p_node_command()

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        proc = subprocess.run(
            [*exe, *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            env=env if env is not None else clean_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@dataclass
class ServeProcess:
    proc: subprocess.Popen[str]
    data_dir: Path
    info: dict[str, str]
    stdout_lines: list[str] = field(default_factory=list)
    stderr_path: Path | None = None

    @property
    def address(self) -> str:
        return self.info["address"]

    def terminate(self, timeout: float = SERVE_STOP_TIMEOUT) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""


@pytest.fixture
def p2p_serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """``p2p_serve(data_dir, *extra_args) -> ServeProcess`` once it printed its JSON line."""
    exe = p2p_node_command()
    started: list[ServeProcess] = []

    def start(data_dir: Path, *extra: str) -> ServeProcess:
        err_path = tmp_path / f"serve-{len(started)}.stderr"
        err_file = open(err_path, "w")  # noqa: SIM115 - closed by the child's exit
        proc = subprocess.Popen(
            [*exe, "--data-dir", str(data_dir), "serve", "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            text=True,
            env=clean_env(),
        )
        err_file.close()
        lines: list[str] = []
        got_line = threading.Event()

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                got_line.set()
            got_line.set()

        threading.Thread(target=reader, daemon=True).start()
        handle = ServeProcess(proc, data_dir, {}, lines, err_path)
        started.append(handle)
        if not got_line.wait(SERVE_START_TIMEOUT) or not lines:
            raise AssertionError(f"serve printed nothing; stderr:\n{handle.stderr()}")
        handle.info = json.loads(lines[0])
        return handle

    yield start
    for handle in started:
        if handle.proc.poll() is None:
            handle.proc.send_signal(signal.SIGTERM)
            try:
                handle.proc.wait(timeout=SERVE_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                handle.proc.kill()
                handle.proc.wait()
                raise AssertionError("p2p-node serve ignored SIGTERM") from None
