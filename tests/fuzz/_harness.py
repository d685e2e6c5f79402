"""A small coverage-blind mutation fuzzer: corpus in, mutated inputs out, crashes kept.

Hypothesis drives the short CI runs (it shrinks what it finds); this engine drives the long
runs (``P2P_FUZZ_SECONDS``), where raw throughput matters more than shrinking. Both feed
the same targets (``_targets.py``), so a crash found by either replays the same way.

A *crash* is any exception a target does not declare as its typed rejection, or a broken
invariant (``AssertionError``). Crash inputs are written to ``crashes/<target>/`` and are
meant to be moved into ``corpus/<target>/`` once fixed, where every run replays them.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"

MAX_INPUT = 256 * 1024
"""Mutations never grow an input beyond this (targets bound their own sizes too)."""

INTERESTING_8 = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x06, 0x05, 0x20, 0x30)
INTERESTING_16 = (0, 1, 2, 31, 32, 33, 0x7FFF, 0x8000, 0xFFFF, 0xFFFE)
INTERESTING_32 = (0, 1, 0x30, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFC, 1 << 24)
INTERESTING_JSON: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1e308,
    2**63,
    -(2**63) - 1,
    2**64,
    "",
    "\u0000",
    "\ud7ff\uffff",
    "../../etc/passwd",
    "a" * 70,
    "A" * 5000,
    "AAAA",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "2026-01-01T00:00:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999+23:59",
    [],
    {},
    [None],
    {"a": [[[[[[[[[[]]]]]]]]]]},
)


@dataclass(frozen=True)
class Target:
    """One fuzz target: ``run(data)`` may raise only ``allowed`` (its typed rejections)."""

    name: str
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]
    json_aware: bool = False
    """Inputs are JSON text: add structure-aware mutations (replace any value)."""
    max_len: int = MAX_INPUT


@dataclass
class Crash:
    target: str
    data: bytes
    error: str
    trace: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]


@dataclass
class RunStats:
    target: str
    seconds: float = 0.0
    inputs: int = 0
    rejected: int = 0
    """Inputs the target refused with one of its typed errors."""
    accepted: int = 0
    crashes: list[Crash] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    """Typed rejections by exception class name (shows which checks the inputs reached)."""


def load_corpus(name: str) -> list[bytes]:
    """The seed inputs of target ``name`` (sorted by file name, so runs are reproducible)."""
    directory = CORPUS / name
    if not directory.is_dir():
        return []
    return [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()]


KNOWN_BUGS: dict[str, list[tuple[type[BaseException], str]]] = {
    # target -> (exception type, message) of a crash whose fix belongs to another package;
    # each has an xfail(strict=True) test in test_regressions.py. Remove the entry with the
    # marker once fixed, so the fuzzers report it again if it comes back.
}


def execute(target: Target, data: bytes) -> str | None:
    """Run one input. Returns the typed rejection's class name, ``None`` if accepted.

    Anything else propagates: that is a crash (unless listed in ``KNOWN_BUGS``, reported
    as ``"known:<type>"``).
    """
    try:
        target.run(data)
    except target.allowed as exc:
        return type(exc).__name__
    except Exception as exc:
        for kind, text in KNOWN_BUGS.get(target.name, ()):
            if isinstance(exc, kind) and text in str(exc):
                return f"known:{kind.__name__}"
        raise
    return None


# --- mutations ----------------------------------------------------------------------------


def _flip_bit(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    if b:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)


def _set_byte(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    if b:
        b[rng.randrange(len(b))] = rng.choice((*INTERESTING_8, rng.randrange(256)))


def _set_u16(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    if len(b) >= 2:
        i = rng.randrange(len(b) - 1)
        b[i : i + 2] = rng.choice(INTERESTING_16).to_bytes(2, "big")


def _set_u32(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    if len(b) >= 4:
        i = rng.randrange(len(b) - 3)
        b[i : i + 4] = rng.choice(INTERESTING_32).to_bytes(4, "big")


def _insert(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    i = rng.randrange(len(b) + 1)
    n = rng.choice((1, 1, 2, 4, 8, 64, 1024))
    fill = rng.choice((None, 0, 0xFF, ord("A"), ord("{"), ord("[")))
    chunk = rng.randbytes(n) if fill is None else bytes([fill]) * n
    b[i:i] = chunk


def _delete(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    if b:
        i = rng.randrange(len(b))
        del b[i : i + rng.choice((1, 1, 2, 4, 16, 256))]


def _duplicate(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    if b:
        i = rng.randrange(len(b))
        j = min(len(b), i + rng.randrange(1, 64))
        k = rng.randrange(len(b) + 1)
        b[k:k] = b[i:j] * rng.choice((1, 2, 8))


def _truncate(rng: random.Random, b: bytearray, _c: list[bytes]) -> None:
    if b:
        del b[rng.randrange(len(b)) :]


def _splice(rng: random.Random, b: bytearray, corpus: list[bytes]) -> None:
    if corpus:
        other = rng.choice(corpus)
        if other:
            i = rng.randrange(len(b) + 1)
            j = rng.randrange(len(other))
            b[i:] = other[j:]


BYTE_MUTATORS = (
    _flip_bit,
    _flip_bit,
    _set_byte,
    _set_byte,
    _set_u16,
    _set_u32,
    _insert,
    _delete,
    _duplicate,
    _truncate,
    _splice,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return doc


def json_field_mutations(doc: Any) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, replacement) pair for every field of ``doc`` (systematic, not random)."""
    for path in _paths(doc):
        for value in INTERESTING_JSON:
            yield path, value


def mutate_json_field(doc: Any, path: tuple[Any, ...], value: Any) -> bytes:
    """``doc`` with the field at ``path`` replaced by ``value``, as compact JSON bytes."""
    copy = json.loads(json.dumps(doc))
    return json.dumps(_replace(copy, path, value), separators=(",", ":")).encode()


def _json_mutation(rng: random.Random, data: bytes) -> bytes | None:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    paths = list(_paths(doc))
    path = rng.choice(paths)
    op = rng.randrange(4)
    if op == 0 and path and isinstance(doc, dict | list):
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        new = doc
    elif op == 1:
        new = _replace(doc, path, rng.choice(INTERESTING_JSON))
    elif op == 2:
        # a nested document one level down (the envelope's payload is itself parsed)
        sub = rng.choice(INTERESTING_JSON)
        new = _replace(doc, path, {"identity": sub, "challenge": sub, "version": sub})
    else:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        leaf = parent[path[-1]] if path else doc
        if isinstance(leaf, str) and leaf:
            chars = list(leaf)
            chars[rng.randrange(len(chars))] = chr(rng.choice((0, 0x22, 0x5C, 0x7F, 0xFFFD)))
            new = _replace(doc, path, "".join(chars))
        else:
            new = _replace(doc, path, rng.choice(INTERESTING_JSON))
    return json.dumps(new, separators=(",", ":"), ensure_ascii=rng.random() < 0.5).encode()


def mutate(
    rng: random.Random, data: bytes, corpus: list[bytes], *, json_aware: bool, max_len: int
) -> bytes:
    """One to a few stacked mutations of ``data``."""
    if json_aware and rng.random() < 0.5:
        out = _json_mutation(rng, data)
        if out is not None:
            if rng.random() < 0.3:
                b = bytearray(out)
                rng.choice(BYTE_MUTATORS)(rng, b, corpus)
                out = bytes(b)
            return out[:max_len]
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        rng.choice(BYTE_MUTATORS)(rng, b, corpus)
    return bytes(b[:max_len])


# --- the long-run loop --------------------------------------------------------------------


def fuzz_for(target: Target, seconds: float, *, seed: int = 0, save: bool = True) -> RunStats:
    """Mutate the corpus of ``target`` for ``seconds``; crashes are recorded, not raised."""
    rng = random.Random(seed)
    corpus = load_corpus(target.name) or [b""]
    pool = list(corpus)
    stats = RunStats(target.name)
    seen_crashes: set[str] = set()
    start = time.monotonic()
    deadline = start + seconds
    # every seed first, unmutated
    queue: list[bytes] = list(corpus)
    while True:
        if queue:
            data = queue.pop()
        else:
            if stats.inputs % 64 == 0 and time.monotonic() >= deadline:
                break
            parent = rng.choice(pool)
            data = mutate(rng, parent, pool, json_aware=target.json_aware, max_len=target.max_len)
        stats.inputs += 1
        try:
            kind = execute(target, data)
        except Exception as exc:  # a crash: keep it and go on
            key = f"{type(exc).__name__}:{_where(exc)}"
            if key not in seen_crashes:
                seen_crashes.add(key)
                crash = Crash(target.name, data, f"{type(exc).__name__}: {exc}"[:500], "")
                crash.trace = traceback.format_exc(limit=8)
                stats.crashes.append(crash)
                if save:
                    save_crash(crash)
            continue
        if kind is None:
            stats.accepted += 1
            # accepted inputs are structurally interesting: keep a bounded few as parents
            if len(pool) < 256 and rng.random() < 0.05:
                pool.append(data)
        else:
            stats.rejected += 1
            stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
            if len(pool) < 256 and stats.kinds[kind] <= 2:
                pool.append(data)  # the first inputs reaching a new check become parents
    stats.seconds = time.monotonic() - start
    return stats


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return "?"
    return f"{last.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{last.tb_lineno}"


def save_crash(crash: Crash) -> Path:
    directory = CRASHES / crash.target
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"crash-{crash.digest}.bin"
    path.write_bytes(crash.data)
    (directory / f"crash-{crash.digest}.txt").write_text(f"{crash.error}\n\n{crash.trace}")
    return path
