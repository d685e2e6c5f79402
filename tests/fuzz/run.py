"""Run the mutation engine on some or all targets and print the figures (long mode).

    cd tests && nice -n 19 python -m fuzz.run --seconds 600 [target ...] [--report out.jsonl]

Crash inputs are saved under ``fuzz/crashes/<target>/``; the exit status is 1 if any.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ._harness import fuzz_for
from ._targets import TARGET_NAMES, all_targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", default=list(TARGET_NAMES))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", help="append one JSON line per target to this file")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    targets = all_targets()
    crashed = False
    print(f"{'target':20} {'seconds':>8} {'inputs':>10} {'per s':>7} {'accepted':>9} crashes")
    for name in args.targets:
        stats = fuzz_for(targets[name], args.seconds, seed=args.seed)
        crashed |= bool(stats.crashes)
        rate = stats.inputs / stats.seconds if stats.seconds else 0.0
        print(
            f"{name:20} {stats.seconds:8.0f} {stats.inputs:10d} {rate:7.0f} "
            f"{stats.accepted:9d} {len(stats.crashes)}",
            flush=True,
        )
        for crash in stats.crashes:
            print(f"    {crash.digest}: {crash.error[:200]}", flush=True)
        if args.report:
            row = {
                "target": name,
                "seconds": round(stats.seconds, 1),
                "inputs": stats.inputs,
                "accepted": stats.accepted,
                "rejected": stats.rejected,
                "crashes": [c.error[:200] for c in stats.crashes],
                "kinds": stats.kinds,
            }
            with open(args.report, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
