"""p2p.identity benchmark: key agreement and challenge signing, with their floors, in one run.

    python tools/bench/identity.py [--quick]

Floors are the bare library calls our functions wrap: cryptography's X25519 exchange plus
hashlib SHA-256 for the shared secret, and ``hmac.digest`` for the challenge HMAC. The
ratio column is ours / floor, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
import timeit
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from p2p import ueps
from p2p.identity import (
    KeyPair,
    NodeIdentity,
    generate_challenge,
    node_id_from_public_key,
    sign_challenge,
    verify_challenge,
)


def best_ns(fns: list[Callable[[], object]], quick: bool) -> list[float]:
    """Best-of-N per-call ns for each function, repeats interleaved so that load from other
    processes on this shared machine hits ours and the floor alike."""
    timers = [timeit.Timer(fn) for fn in fns]
    loops = [max(1, t.autorange()[0] // (4 if quick else 1)) for t in timers]
    best = [float("inf")] * len(fns)
    for _ in range(3 if quick else 9):
        for i, (t, n) in enumerate(zip(timers, loops, strict=True)):
            best[i] = min(best[i], t.timeit(number=n) / n * 1e9)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    quick = ap.parse_args().quick

    a, b = KeyPair.generate(), KeyPair.generate()
    peer_b64 = b.public_key_b64
    sk = X25519PrivateKey.from_private_bytes(a.private_bytes)
    secret = a.derive_shared_secret(peer_b64)
    key = ueps.HmacKey(secret)
    ch = generate_challenge()
    resp = sign_challenge(ch, secret)
    ident = NodeIdentity.create(a, "bench-node")
    ident_json = ident.to_json()

    def floor_derive() -> bytes:
        pub = X25519PublicKey.from_public_bytes(b.public_bytes)
        return hashlib.sha256(sk.exchange(pub)).digest()

    rows: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
        ("derive_shared_secret(b64)", lambda: a.derive_shared_secret(peer_b64), floor_derive),
        (
            "sign_challenge(ch, secret)",
            lambda: sign_challenge(ch, secret),
            lambda: hmac.digest(secret, ch, "sha256"),
        ),
        (
            "sign_challenge(ch, HmacKey)",
            lambda: sign_challenge(ch, key),
            lambda: hmac.digest(secret, ch, "sha256"),
        ),
        (
            "verify_challenge(.., secret)",
            lambda: verify_challenge(ch, resp, secret),
            lambda: hmac.compare_digest(hmac.digest(secret, ch, "sha256"), resp),
        ),
        (
            "verify_challenge(.., HmacKey)",
            lambda: verify_challenge(ch, resp, key),
            lambda: hmac.compare_digest(hmac.digest(secret, ch, "sha256"), resp),
        ),
        (
            "node_id_from_public_key(b64)",
            lambda: node_id_from_public_key(peer_b64),
            lambda: hashlib.sha256(b.public_bytes).digest()[:16].hex(),  # noqa: PLW0108
        ),
        ("KeyPair.generate()", KeyPair.generate, X25519PrivateKey.generate),
        ("NodeIdentity.to_json()", ident.to_json, None),
        ("NodeIdentity.from_json()", lambda: NodeIdentity.from_json(ident_json), None),
    ]
    print(f"python {sys.version.split()[0]}, p2p.ueps implementation: {ueps.IMPLEMENTATION}")
    print()
    print(f"| {'operation':<30} | {'ours µs':>8} | {'floor µs':>8} | {'ratio':>5} |")
    print(f"|{'-' * 32}|{'-' * 10}:|{'-' * 10}:|{'-' * 6}:|")
    for name, ours, floor in rows:
        if floor is None:
            t = best_ns([ours], quick)[0] / 1000
            print(f"| {name:<30} | {t:8.2f} | {'-':>8} | {'-':>5} |")
            continue
        t, f = (x / 1000 for x in best_ns([ours, floor], quick))
        print(f"| {name:<30} | {t:8.2f} | {f:8.2f} | {t / f:5.2f} |")


if __name__ == "__main__":
    main()
