"""The README's controller/worker example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def example_code() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Controller and worker", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python example in the Controller and worker section"
    return match.group(1)


def test_readme_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example_code(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith("ping ") and out[0].endswith(" ms")
    assert out[1:] == [
        "deployed main",
        "logs ['mining on pool.example:3333']",
        "miner demo demo 1234.5 H/s 3 shares pool.example:3333",
        "peers answering 1 failed {}",
        "logs ['hello from a deployed miner']",
    ]
