"""peers.json and its allowlist sidecar on disk: default path, load, atomic write.

The only module here that touches files. Writes are temp file + fsync + rename (+ fsync of
the directory), so a crash at any instant leaves either the old or the new file. A file that
cannot be read is never silently dropped: a byte-exact copy is kept beside it
(``peers.json.corrupt-<UTC timestamp>``) and the problem is reported as
CorruptPeersFileError.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from p2p.identity import atomicfile, default_config_path
from p2p.peers.errors import CorruptPeersFileError, InvalidPeerError, PeerStoreError
from p2p.peers.peer import Peer

__all__ = [
    "LoadResult",
    "allowlist_path",
    "default_peers_path",
    "encode_allowlist",
    "encode_learned",
    "encode_peers",
    "learned_path",
    "load_allowlist",
    "load_learned",
    "load_peers",
    "write_atomic",
]

log = logging.getLogger(__name__)

#: Peers serialised per json.dumps call: keeps each GIL-holding C call short.
_CHUNK = 1000


def default_peers_path() -> Path:
    """Where a Go node keeps peers.json: ``$XDG_CONFIG_HOME/lethean-desktop/peers.json``
    on Linux, ``~/Library/Application Support/…`` on macOS, ``%LOCALAPPDATA%\\…`` on Windows."""
    return default_config_path().parent / "peers.json"  # beside the identity's node.json


def allowlist_path(peers_path: Path) -> Path:
    """The sidecar the reference keeps the allowlist in: ``peers.json.allowlist.json``."""
    return peers_path.with_name(peers_path.name + ".allowlist.json")


def learned_path(peers_path: Path) -> Path:
    """Our sidecar of learned (network-registered) ids: ``peers.json.learned.json``; Go
    neither reads nor writes it, so peers.json keeps Go's exact format."""
    return peers_path.with_name(peers_path.name + ".learned.json")


@dataclass
class LoadResult:
    """Peers read from a file, plus the problem found (if any) and what was kept."""

    peers: list[Peer] = field(default_factory=list)
    error: CorruptPeersFileError | None = None


def _backup(path: Path, data: bytes | None) -> Path | None:
    """Keep a byte-exact copy of a bad file beside it; None if that fails too."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 0
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        if data is None:
            shutil.copyfile(path, dest)
        else:
            write_atomic(dest, [data])
    except OSError as e:
        log.error("could not keep a copy of bad file %s: %s", path, e)
        return None
    return dest


def _corrupt(
    path: Path, reason: str, data: bytes | None, skipped: int = 0
) -> CorruptPeersFileError:
    err = CorruptPeersFileError(path, reason, _backup(path, data), skipped)
    log.error("%s", err)
    return err


def load_peers(path: Path, *, max_bytes: int, max_peers: int) -> LoadResult:
    """Read peers.json as the Go node writes it. Missing file or top-level ``null`` ⇒ empty.

    Bad entries (``null``, wrong types, empty id, over ``max_peers``) are skipped and the
    rest kept; an unreadable file yields no peers. Either way the result carries a
    CorruptPeersFileError and a copy of the file is kept. Later duplicates win (as in Go).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return LoadResult()
    except OSError as e:
        raise PeerStoreError(f"{path}: {e}") from e
    if size > max_bytes:
        return LoadResult(error=_corrupt(path, f"file is {size} bytes, limit {max_bytes}", None))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LoadResult()
    except OSError as e:
        raise PeerStoreError(f"{path}: {e}") from e
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: deep nesting
        return LoadResult(error=_corrupt(path, f"not valid JSON ({e})", data))
    if doc is None:
        return LoadResult()
    if not isinstance(doc, list):
        return LoadResult(error=_corrupt(path, "top level is not a JSON array", data))
    by_id: dict[str, Peer] = {}
    skipped = 0
    first_problem = ""
    for i, item in enumerate(doc):
        try:
            if item is None:
                raise InvalidPeerError("null entry")
            peer = Peer.from_dict(item)
            if not peer.id:
                raise InvalidPeerError("empty id")
            if peer.id not in by_id and len(by_id) >= max_peers:
                raise InvalidPeerError(f"more than max_peers={max_peers} peers")
        except InvalidPeerError as e:
            skipped += 1
            first_problem = first_problem or f"entry {i}: {e}"
            continue
        by_id.pop(peer.id, None)  # later duplicates win, and take the later position
        by_id[peer.id] = peer
    result = LoadResult(peers=list(by_id.values()))
    if skipped:
        reason = f"{skipped} of {len(doc)} entries skipped (first: {first_problem})"
        result.error = _corrupt(path, reason, data, skipped)
    return result


def load_allowlist(path: Path, *, max_bytes: int) -> tuple[set[str], CorruptPeersFileError | None]:
    """Read the allowlist sidecar (JSON array of key strings; empty strings skipped)."""
    try:
        if path.stat().st_size > max_bytes:
            return set(), _corrupt(path, f"allowlist larger than {max_bytes} bytes", None)
        data = path.read_bytes()
    except FileNotFoundError:
        return set(), None
    except OSError as e:
        raise PeerStoreError(f"{path}: {e}") from e
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return set(), _corrupt(path, f"allowlist is not valid JSON ({e})", data)
    if doc is None:
        return set(), None
    if not isinstance(doc, list):
        return set(), _corrupt(path, "allowlist is not a JSON array", data)
    keys = {k for k in doc if isinstance(k, str) and k}
    bad = sum(1 for k in doc if not isinstance(k, str))
    if bad:
        return keys, _corrupt(path, f"{bad} allowlist entries are not strings", data, bad)
    return keys, None


def load_learned(path: Path, *, max_bytes: int) -> set[str] | None:
    """The learned-ids sidecar (JSON array of id strings); missing ⇒ empty. Too large or
    unreadable ⇒ None (logged): callers then treat those peers as the operator's, so
    nothing is evicted by mistake."""
    try:
        if path.stat().st_size > max_bytes:
            log.error("%s larger than %d bytes: ignored", path, max_bytes)
            return None
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    except OSError as e:
        raise PeerStoreError(f"{path}: {e}") from e
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        log.error("%s is not valid JSON (%s): ignored", path, e)
        return None
    if not isinstance(doc, list):
        log.error("%s is not a JSON array: ignored", path)
        return None
    return {i for i in doc if isinstance(i, str) and i}


def encode_learned(ids: Iterable[str]) -> bytes:
    """The learned-ids sidecar: sorted, one id a line."""
    return json.dumps(sorted(ids), indent=0).encode("utf-8")


def encode_peers(peers: Sequence[Peer]) -> Iterator[bytes]:
    """peers.json bytes as Go's MarshalIndent writes them (``null`` when empty), in chunks
    so a large registry never holds the GIL in one long call."""
    if not peers:
        yield b"null"
        return
    yield b"[\n"
    for start in range(0, len(peers), _CHUNK):
        text = json.dumps(
            [p.to_dict() for p in peers[start : start + _CHUNK]], indent=2, ensure_ascii=False
        )
        if start:
            yield b",\n"
        yield text[2:-2].encode("utf-8")  # strip the chunk's own "[\n" and "\n]"
    yield b"\n]"


def encode_allowlist(keys: Iterable[str]) -> bytes:
    """The sidecar: the keys sorted, 2-space indent."""
    return json.dumps(sorted(keys), indent=2).encode("utf-8")


def write_atomic(path: Path, chunks: Iterable[bytes], mode: int = 0o644) -> None:
    """Write via a temp file + fsync + rename + directory fsync
    (:func:`p2p.identity.atomicfile.write_atomic`). Raises PeerStoreError."""
    try:
        atomicfile.write_atomic(path, chunks, mode)
    except OSError as e:
        raise PeerStoreError(f"could not write {path}: {e}") from e
