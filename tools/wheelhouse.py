"""Build the five p2p wheels into one directory (a wheelhouse) so any one package installs alone.

The packages depend on each other by name (p2p-identity needs p2p-ueps, ...) and are not on a
package index, so ``pip install ./packages/p2p-identity`` cannot find p2p-ueps. From a
wheelhouse pip finds the siblings by name::

    python tools/wheelhouse.py                      # the five wheels into dist/
    pip install --find-links dist p2p-identity      # p2p-ueps from dist/, the rest from the index

    python tools/wheelhouse.py --with-deps dist     # also every third-party dependency
    pip install --no-index --find-links dist p2p-identity   # offline: never asks an index

``--with-deps`` is also the way to be sure that no package of the same name on an index is
ever picked instead of ours. ``P2P_NO_EXTENSIONS=1`` builds a pure-Python p2p-ueps wheel
(otherwise its Cython extension is compiled when a C compiler is present).

Each package is copied to a temporary directory and built there, so the checkout is left
untouched (no ``build/`` or ``*.egg-info`` next to the sources).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("p2p-ueps", "p2p-identity", "p2p-transport", "p2p-peers", "p2p-controller")
# Build products and caches a checkout may hold; none belongs in a wheel's source.
_IGNORE = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.pyd", "_speedups.c", "tests"
)


def build(out: Path, *, with_deps: bool = False, quiet: bool = False) -> list[Path]:
    """Build the five wheels (and with ``with_deps`` their dependencies) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(out)]
    if quiet:
        pip.append("--quiet")
    with tempfile.TemporaryDirectory(prefix="p2p-wheelhouse-") as tmp:
        sources = []
        for name in PACKAGES:
            source = Path(tmp) / name
            shutil.copytree(ROOT / "packages" / name, source, ignore=_IGNORE)
            sources.append(str(source))
        subprocess.run([*pip, "--no-deps", *sources], check=True)
    if with_deps:
        subprocess.run(
            [*pip, "--find-links", str(out), *PACKAGES, "p2p-controller[metrics]"], check=True
        )
    return sorted(out.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wheelhouse.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "out", nargs="?", type=Path, default=ROOT / "dist", help="directory (default dist/)"
    )
    parser.add_argument(
        "--with-deps", action="store_true", help="also fetch or build every dependency's wheel"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="less pip output")
    args = parser.parse_args(argv)
    wheels = build(args.out, with_deps=args.with_deps, quiet=args.quiet)
    ours = [w for w in wheels if w.name.startswith("p2p_")]
    print(f"{len(ours)} p2p wheels ({len(wheels)} in all) in {args.out}:")
    for wheel in ours:
        print(f"  {wheel.name}")
    print(f"install one package: pip install --find-links {args.out} p2p-identity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
