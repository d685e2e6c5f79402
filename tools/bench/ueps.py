"""UEPS codec benchmark: ns per frame for Cython vs pure vs the SHA-256 floor, and the
keystream XOR throughput, all measured in one run (ratios, not absolute claims).

    python tools/bench/ueps.py [--quick]

The floor is (SHA-256 blocks the HMAC must process with a cached keyed state) x (ns per block
measured from hashlib.sha256 over 1 MiB in this run). Go figures were measured on the
project's 2-core reference machine with the Go reference (issue 2).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import timeit
from collections.abc import Callable

from p2p.ueps import _pure

try:
    from p2p.ueps import _speedups
except ImportError:  # pragma: no cover - reported in the output
    _speedups = None  # type: ignore[assignment]

SIZES = (64, 1024, 16 * 1024, 65_535)
GO_MARSHAL = {64: 2080, 1024: 3430, 16 * 1024: 19_200, 65_535: 75_600}
GO_READ = {64: 2180, 1024: 3580, 16 * 1024: 20_400, 65_535: 70_200}


def best_ns(fn: Callable[[], object], quick: bool) -> float:
    """Best-of-N per-call time in ns, with the loop count sized to ~20 ms per repeat."""
    t = timeit.Timer(fn)
    n, _ = t.autorange()
    n = max(1, n // (4 if quick else 1))
    return min(t.repeat(repeat=3 if quick else 7, number=n)) / n * 1e9


def sha_block_ns(quick: bool) -> float:
    data = os.urandom(1 << 20)
    return best_ns(lambda: hashlib.sha256(data).digest(), quick) / ((1 << 20) // 64)


def hmac_blocks(payload_len: int) -> int:
    """Compression calls for one frame's HMAC with the key blocks already absorbed."""
    inner = (21 + payload_len + 9 + 63) // 64
    return inner + 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats (CI smoke run)")
    quick = ap.parse_args().quick
    secret = os.urandom(32)
    block = sha_block_ns(quick)
    backend = _speedups.sha256_backend() if _speedups else "n/a"
    print(
        f"python {sys.version.split()[0]}, SHA-256 floor {block:.1f} ns/block (hashlib, 1 MiB),"
        f" native backend: {backend}"
    )
    print()
    hdr = (
        f"{'op':<16}{'payload':>8}{'cython ns':>11}{'pure ns':>10}{'floor ns':>10}"
        f"{'go ns':>9}{'cy/floor':>10}{'go/cy':>8}{'pure/cy':>9}"
    )
    print(hdr)
    print("-" * len(hdr))
    for op in ("marshal_and_sign", "read_and_verify"):
        for size in SIZES:
            payload = os.urandom(size)
            frame = _pure.build(0x20, payload, secret)
            res = {}
            for name, mod in (("cython", _speedups), ("pure", _pure)):
                if mod is None:
                    res[name] = float("nan")
                    continue
                if op == "marshal_and_sign":
                    b = mod.PacketBuilder(0x20, payload)
                    res[name] = best_ns(lambda b=b: b.marshal_and_sign(secret), quick)
                else:
                    res[name] = best_ns(lambda m=mod, f=frame: m.read_and_verify(f, secret), quick)
            floor = hmac_blocks(size) * block
            go = (GO_MARSHAL if op == "marshal_and_sign" else GO_READ)[size]
            cy = res["cython"]
            print(
                f"{op:<16}{size:>8}{cy:>11.0f}{res['pure']:>10.0f}{floor:>10.0f}{go:>9}"
                f"{cy / floor:>10.2f}{go / cy:>8.1f}{res['pure'] / cy:>9.1f}"
            )
    print()
    print(
        f"{'keystream_xor':<16}{'bytes':>8}{'cython MB/s':>13}{'pure MB/s':>11}"
        f"{'floor MB/s':>12}{'floor/cy':>10}"
    )
    nonce = os.urandom(24)
    floor_mbs = 32 / block * 1e3
    for size in (1024, 65_536):
        data = os.urandom(size)
        rates = {}
        for name, mod in (("cython", _speedups), ("pure", _pure)):
            if mod is None:
                rates[name] = float("nan")
                continue
            ns = best_ns(lambda m=mod, d=data: m.keystream_xor(nonce, d), quick)
            rates[name] = size / ns * 1e3
        print(
            f"{'':<16}{size:>8}{rates['cython']:>13.0f}{rates['pure']:>11.0f}"
            f"{floor_mbs:>12.0f}{floor_mbs / rates['cython']:>10.2f}"
        )


if __name__ == "__main__":
    main()
