"""Run every benchmark in tools/bench, one after another: ``python tools/bench/run.py [--quick]``.

Each script prints its own table with ratios measured in the same run; this only sequences
them (``tox -e bench``). ``--only NAME`` runs a single one (e.g. ``--only ueps``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["ueps", "identity", "smsg", "transport", "ueps_mesh", "controller", "peers", "fleet"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    ap.add_argument("--only", choices=ORDER, action="append", help="run just these")
    args = ap.parse_args()
    failed = []
    for name in args.only or ORDER:
        print(f"\n===== {name} =====", flush=True)
        start = time.monotonic()
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick else [])
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(name)
        print(f"({name}: {time.monotonic() - start:.0f} s)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
