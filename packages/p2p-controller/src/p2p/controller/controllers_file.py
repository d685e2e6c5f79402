"""The controllers file: keys granted ``control`` by ``p2p-node controllers add``.

``DIR/controllers.json`` holds a JSON array of base64 X25519 keys, written atomically
(temp file, fsync, rename, directory fsync) like the identity and peers files. A running
``serve`` re-reads it when its (mtime, size) changes (`ControllersFileSync`), as it does
for the allowlist; a malformed file is logged and not adopted (the previous keys stay).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from p2p.controller.authz import MAX_CONTROLLERS, Policy, PolicyError, normalise_key
from p2p.identity.atomicfile import write_atomic

__all__ = [
    "MAX_CONTROLLERS_FILE",
    "ControllersFileSync",
    "load_controllers",
    "save_controllers",
]

log = logging.getLogger(__name__)

#: A controllers file larger than this is refused (10 000 keys are ~500 KB).
MAX_CONTROLLERS_FILE = 1 << 20


def load_controllers(path: Path) -> list[str]:
    """The keys in `path` (empty if it does not exist); `PolicyError` if malformed."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONTROLLERS_FILE + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONTROLLERS_FILE:
        raise PolicyError(f"{path}: larger than {MAX_CONTROLLERS_FILE} bytes")
    try:
        doc = json.loads(raw) if raw.strip() else []
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PolicyError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, list):
        raise PolicyError(f"{path}: not a JSON array of keys")
    if len(doc) > MAX_CONTROLLERS:
        raise PolicyError(f"{path}: more than {MAX_CONTROLLERS} keys")
    keys: list[str] = []
    for item in doc:
        key = normalise_key(item)
        if key not in keys:
            keys.append(key)
    return keys


def save_controllers(path: Path, keys: list[str]) -> None:
    """Write `keys` (validated) to `path` atomically."""
    clean: list[str] = []
    for key in keys:
        k = normalise_key(key)
        if k not in clean:
            clean.append(k)
    data = (json.dumps(clean, indent=2) + "\n").encode("ascii")
    write_atomic(path, data, 0o600, dir_mode=0o777)


def _sig(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class ControllersFileSync:
    """Keep `policy`'s granted keys equal to what `path` says (poll by stat)."""

    def __init__(self, policy: Policy, path: Path, *, interval: float = 2.0) -> None:
        if not 0.01 <= interval <= 3600:
            raise ValueError("interval must be in [0.01, 3600] seconds")
        self.policy = policy
        self.path = path
        self.interval = interval
        self._sig: tuple[int, int] | str | None = "unread"

    def poll(self) -> bool:
        """One check; True if the policy's granted keys changed."""
        sig = _sig(self.path)
        if sig == self._sig:
            return False
        self._sig = sig
        try:
            keys = load_controllers(self.path)
        except PolicyError as exc:
            log.warning("controllers file not adopted: %s", exc)
            return False
        if frozenset(keys) == self.policy.granted:
            return False
        self.policy.set_granted(keys)
        log.info("controllers reloaded from %s: %d key(s)", self.path, len(keys))
        return True

    async def run(self) -> None:
        """Poll until cancelled (errors are logged, never fatal)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self.poll)
            except Exception:
                log.exception("syncing the controllers file failed")
