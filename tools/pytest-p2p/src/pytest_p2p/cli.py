"""Run the ``p2p-node`` CLI in-process, the way its tests do."""

from __future__ import annotations

import io
import json
from typing import Any

__all__ = ["one_json", "run_cli"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``p2p-node ARGV...`` in this process: ``(exit code, stdout, stderr)``."""
    from p2p.controller.cli import main  # the plugin loads in envs without the controller

    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def one_json(text: str) -> Any:
    """The single JSON document a ``--json`` command printed (blank lines aside)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return json.loads(lines[0])
