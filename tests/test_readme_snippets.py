"""Every Python and shell snippet in every README runs as written.

The READMEs are the root README.md and packages/*/README.md. Rules (also in the README's
Development section):

- A fenced block whose info string is ``python`` runs as a script (``python FILE``); one
  whose info string is ``sh`` or ``bash`` runs under ``bash -e -o pipefail``. Blocks with
  another info string (``toml``, ``json``, ``ini``) or none (sample output) are not run.
- Each block runs alone, in its own empty temporary directory (its working directory), with
  ``HOME``, ``XDG_*`` and ``TMPDIR`` inside that directory, ``$P2P_NODE_DIR`` unset, and
  this Python's ``bin`` directory first on ``PATH`` (so ``python`` and ``p2p-node`` are
  the ones under test). It must exit 0 within the timeout.
- A comment ``# prints: TEXT`` in a Python block means TEXT must appear in its output.
- ``<!-- snippet: serves -->`` on the line before a block: the block is a server. It must
  print a line and still be running; it is then stopped with SIGINT and must exit.
- ``<!-- snippet: skip REASON -->`` on the line before a block: not run, for REASON
  (a block that needs another machine, a server's paths, or installs software). Kept few.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("packages/*/README.md"))]
RUN_TIMEOUT = 180.0
SERVE_TIMEOUT = 60.0
MAX_SKIPPED = 6

_FENCE = re.compile(r"^```([\w+-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*snippet:\s*(\w+)\s*(.*?)\s*-->\s*$")
_PRINTS = re.compile(r"#\s*prints:\s*(.+?)\s*$", re.MULTILINE)
LANGUAGES = {"python": "python", "sh": "sh", "bash": "sh"}


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str  # "python" or "sh"
    code: str
    marker: str | None  # "skip" / "serves" / None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract(path: Path) -> list[Snippet]:
    """The runnable-language blocks of one Markdown file, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        language = LANGUAGES.get(fence.group(1))
        if language is not None:
            marker, reason = None, ""
            previous = lines[i - 1] if i > 0 else ""
            if m := _MARKER.match(previous):
                marker, reason = m.group(1), m.group(2)
            code = "\n".join(lines[i + 1 : end]) + "\n"
            found.append(Snippet(path, i + 1, language, code, marker, reason))
        i = end + 1
    return found


SNIPPETS = [s for readme in READMES for s in extract(readme)]


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "P2P_NODE_DIR"}
    for name in ("home", "config", "data", "cache", "state", "tmp"):
        (base / name).mkdir()
    env.update(
        HOME=str(base / "home"),
        XDG_CONFIG_HOME=str(base / "config"),
        XDG_DATA_HOME=str(base / "data"),
        XDG_CACHE_HOME=str(base / "cache"),
        XDG_STATE_HOME=str(base / "state"),
        TMPDIR=str(base / "tmp"),
        PYTHONUNBUFFERED="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


def _argv(snippet: Snippet, work: Path) -> list[str]:
    script = work / ("snippet.py" if snippet.language == "python" else "snippet.sh")
    script.write_text(snippet.code, encoding="utf-8")
    if snippet.language == "python":
        return [sys.executable, str(script)]
    return ["bash", "-e", "-o", "pipefail", str(script)]


def _serve(argv: list[str], work: Path, env: dict[str, str]) -> str:
    """Start a server snippet, wait for its first line, check it still runs, then Ctrl-C it
    (SIGINT to its whole process group, as a terminal does, so a shell's child gets it)."""
    proc = subprocess.Popen(
        argv,
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(SERVE_TIMEOUT)
        first = proc.stdout.readline() if ready else ""
        assert first.strip(), f"the server printed nothing in {SERVE_TIMEOUT} s"
        assert proc.poll() is None, f"the server exited ({proc.returncode}) after {first!r}"
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=SERVE_TIMEOUT)
        return first
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    if snippet.marker == "skip":
        pytest.skip(f"{snippet.id}: {snippet.reason}")
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path)
    argv = _argv(snippet, work)
    if snippet.marker == "serves":
        _serve(argv, work, env)
        return
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=work, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert done.returncode == 0, (
        f"{snippet.id} exited {done.returncode} after {time.monotonic() - started:.1f} s\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    for expected in _PRINTS.findall(snippet.code) if snippet.language == "python" else []:
        assert expected in done.stdout, f"{snippet.id}: {expected!r} not in {done.stdout!r}"


def test_the_rules_hold() -> None:
    """Markers are known and explained, skips stay few, and the READMEs have snippets."""
    assert len(SNIPPETS) >= 15
    for s in SNIPPETS:
        assert s.marker in (None, "skip", "serves"), f"{s.id}: unknown marker {s.marker!r}"
        if s.marker == "skip":
            assert len(s.reason.split()) >= 3, f"{s.id}: a skip needs a reason"
    skipped = [s.id for s in SNIPPETS if s.marker == "skip"]
    assert len(skipped) <= MAX_SKIPPED, f"too many skipped snippets: {skipped}"
    assert sum(s.language == "python" and s.marker is None for s in SNIPPETS) >= 8


def test_markers_sit_right_before_a_block() -> None:
    """A marker elsewhere (a blank line between it and the fence) would silently not apply."""
    for readme in READMES:
        lines = readme.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if _MARKER.match(line):
                following = lines[n + 1] if n + 1 < len(lines) else ""
                assert _FENCE.match(following), f"{readme.name}:{n + 1}: marker not before a block"
