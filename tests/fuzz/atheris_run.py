"""Coverage-guided fuzzing of one target with atheris (libFuzzer), when it is installed.

    cd tests && nice -n 19 python -m fuzz.atheris_run TARGET -max_total_time=600 \\
        -artifact_prefix=fuzz/crashes/TARGET- fuzz/corpus/TARGET

The p2p packages are instrumented for coverage (the Cython UEPS module is native code, so
the ``ueps`` target instruments the pure reader it is compared against). The same target
functions and typed-error rules as the Hypothesis and mutation runs apply; a crash is an
uncaught exception, which libFuzzer reports and saves under ``-artifact_prefix``.
atheris is optional (``pip install atheris``; wheels exist for CPython 3.8-3.11 on Linux).
"""

from __future__ import annotations

import logging
import sys


def main() -> None:
    import atheris

    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    name = sys.argv.pop(1)
    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports(include=["p2p"]):
        import p2p.controller.bundles
        import p2p.identity
        import p2p.peers
        import p2p.transport.handshake
        import p2p.transport.smsg
        import p2p.ueps._pure  # noqa: F401

    from ._harness import execute
    from ._targets import all_targets

    target = all_targets()[name]

    def one(data: bytes) -> None:
        execute(target, data[: target.max_len])

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
