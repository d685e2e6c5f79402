"""Adopt what other processes write to a running node's peers.json and allowlist.

`p2p-node peers add|remove|allow|revoke` run as separate processes on the same data dir
as a running `serve`. Without this, serve would never see those changes, and its next
save would write its own view over them. `RegistryFileSync.poll()` is one cheap check
(two ``stat`` calls); only when a file's (mtime, size) changed is it read and merged:

- allowlist: the file wins (serve writes it at once on its own changes, so a difference
  can only come from another writer);
- peers: records new to the file are added (as learned peers if the learned sidecar lists
  them, else as the operator's); name/address/key edited in the file since we last read it
  are applied; a learned peer the sidecar no longer lists was adopted by the operator;
  records that vanished from the file since we last read it are removed unless currently
  connected.

Two writers can still race (a CLI command that loaded the file before serve's last save
writes an older view); the window is the command's run time, about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from p2p.peers import PeerError, PeerRegistry, allowlist_path
from p2p.peers.store import learned_path, load_allowlist, load_learned, load_peers

__all__ = ["RegistryFileSync"]

log = logging.getLogger(__name__)

MAX_PEERS_FILE = 2 << 30
MAX_ALLOWLIST_FILE = 64 << 20
MAX_PEERS = 1_000_000
MAX_LEARNED_FILE = 256 << 20

_Sig = tuple[int, int] | None
_Fields = tuple[str, str, str]


def _sig(path: Path) -> _Sig:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class RegistryFileSync:
    """Poll `registry`'s files and merge changes made by other processes."""

    def __init__(
        self,
        registry: PeerRegistry,
        *,
        interval: float = 2.0,
        on_revoke: Callable[[frozenset[str]], Awaitable[None]] | None = None,
    ) -> None:
        if not 0.01 <= interval <= 3600:
            raise ValueError("interval must be in [0.01, 3600] seconds")
        self.registry = registry
        self.interval = interval
        self._peers_path = registry.path
        self._allow_path = allowlist_path(registry.path)
        self._peers_sig = _sig(self._peers_path)
        self._allow_sig = _sig(self._allow_path)
        #: what peers.json held when last read (the registry was just loaded from it)
        self._in_file: dict[str, _Fields] = {p.id: _fields(p) for p in registry.peers()}
        #: called with the keys another process removed from the allowlist (`peers revoke`)
        self._on_revoke = on_revoke
        self._revoked: set[str] = set()

    async def run(self) -> None:
        """Poll until cancelled (errors are logged, never fatal)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync_once()
            except Exception:
                log.exception("syncing the peers files failed")

    async def sync_once(self) -> None:
        """One poll, then the revoke callback for keys it found removed (also run once
        more at shutdown, so a `peers revoke` just before a stop is not overwritten)."""
        await asyncio.to_thread(self.poll)
        revoked, self._revoked = frozenset(self._revoked), set()
        if revoked and self._on_revoke is not None:
            await self._on_revoke(revoked)

    def poll(self) -> bool:
        """One check; True if the registry was changed from the files."""
        changed = False
        sig = _sig(self._allow_path)
        if sig != self._allow_sig:
            self._allow_sig = sig
            changed |= self._merge_allowlist()
        sig = _sig(self._peers_path)
        if sig != self._peers_sig:
            self._peers_sig = sig
            changed |= self._merge_peers()
        return changed

    def _merge_allowlist(self) -> bool:
        keys, error = load_allowlist(self._allow_path, max_bytes=MAX_ALLOWLIST_FILE)
        if error is not None:
            log.warning("allowlist file not adopted: %s", error)
            return False
        current = set(self.registry.allowed_public_keys())
        if keys == current:
            return False
        for key in sorted(keys - current):
            with contextlib.suppress(PeerError):
                self.registry.allow_public_key(key)
        for key in sorted(current - keys):
            self.registry.revoke_public_key(key)
            self._revoked.add(key)
        log.info("allowlist reloaded from %s: %d keys", self._allow_path, len(keys))
        return True

    def _merge_peers(self) -> bool:
        result = load_peers(self._peers_path, max_bytes=MAX_PEERS_FILE, max_peers=MAX_PEERS)
        if result.error is not None:
            log.warning("peers file not adopted: %s", result.error)
            return False
        registry = self.registry
        learned = load_learned(learned_path(self._peers_path), max_bytes=MAX_LEARNED_FILE)
        before = self._in_file
        now = {p.id: _fields(p) for p in result.peers}
        changed = False
        for peer in result.peers:
            held = registry.get(peer.id)
            if held is None:
                if peer.id in before:
                    continue  # it was on file and we dropped it since: not new
                with contextlib.suppress(PeerError):
                    registry.add(peer, learned=learned is not None and peer.id in learned)
                    changed = True
                    log.info("peer %s added by another process", peer.id)
                continue
            if learned is not None and peer.id not in learned and registry.adopt(peer.id):
                changed = True
                log.info("peer %s adopted by another process", peer.id)
            if now[peer.id] != _fields(held) and now[peer.id] != before.get(peer.id):
                held.name, held.address, held.public_key = now[peer.id]
                with contextlib.suppress(PeerError):
                    registry.update(held)
                    changed = True
        for pid in set(before) - set(now):
            held = registry.get(pid)
            if held is not None and not held.connected:
                with contextlib.suppress(PeerError):
                    registry.remove(pid)
                    changed = True
                    log.info("peer %s removed by another process", pid)
        self._in_file = now
        return changed


def _fields(peer: object) -> _Fields:
    return (
        str(getattr(peer, "name", "")),
        str(getattr(peer, "address", "")),
        str(getattr(peer, "public_key", "")),
    )
