"""peers.json on disk: Go format, debounced atomic saves, corrupt files kept and reported,
the allowlist sidecar, the default location, and saves that never block the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
from p2p.peers import (
    AuthMode,
    CorruptPeersFileError,
    Peer,
    PeerRegistry,
    PeerStoreError,
    default_peers_path,
)
from peers_testing import make_ident
from test_peer import GO_PEERS_JSON


def _wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        time.sleep(0.01)


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


def test_changes_are_debounced_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    reg = PeerRegistry(path, save_delay=3600)
    reg.add(Peer(id="a", ping_ms=1.5))
    reg.update_metrics("a", 2.0, 3.0, 4)
    assert not path.exists() and reg.dirty  # nothing written before the timer fires
    reg.close()
    assert not reg.dirty
    doc = json.loads(path.read_bytes())
    assert [(d["id"], d["pingMs"], d["geoKm"], d["hops"]) for d in doc] == [("a", 2, 3, 4)]
    assert not (tmp_path / "peers.json.tmp").exists()
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o600 == 0o600 and not mode & 0o133  # 0644 before umask, as Go


def test_timer_writes_the_then_current_state(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    reg = PeerRegistry(path, save_delay=0.05)
    reg.add(Peer(id="a"))
    _wait_for(path.exists)
    _wait_for(lambda: not reg.dirty)
    reg.add(Peer(id="b"))
    reg.remove("a")
    _wait_for(lambda: [d["id"] for d in json.loads(path.read_bytes())] == ["b"])
    reg.close()


def test_round_trip_through_disk(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    reg = PeerRegistry(path, save_delay=3600)
    for i in range(20):
        reg.add(Peer(id=f"p{i:02d}", name=f"peer-{i}", ping_ms=i * 1.5, hops=i, score=i + 0.25))
    reg.set_connected("p03", True)
    reg.record_failure("p10")
    before = [p.to_dict() for p in reg.peers()]
    best = [p.id for p in reg.select_nearest(5)]
    reg.close()
    again = PeerRegistry(path)
    assert again.load_error is None
    assert [p.to_dict() for p in again.peers()] == before
    assert again.connected_peers() == []  # runtime state is not persisted
    assert [p.id for p in again.select_nearest(5)] == best
    again.close()


def test_go_written_file_loads_as_is_and_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(GO_PEERS_JSON)
    reg = PeerRegistry(path)
    assert reg.load_error is None and reg.count == 2
    alpha = reg.get("aaa8fff703b50b2297f4f6e13508f724")
    assert alpha is not None and alpha.address == "10.0.0.1:9091" and alpha.score == 50
    reg.close()
    assert path.read_bytes() == GO_PEERS_JSON  # nothing changed, nothing rewritten
    reg2 = PeerRegistry(path)
    reg2.record_success("aaa8fff703b50b2297f4f6e13508f724")
    reg2.close()
    # rewritten by us: still the Go layout, timestamps with their nanoseconds and offsets
    text = path.read_text()
    assert text.startswith('[\n  {\n    "id": ') and not text.endswith("\n")
    assert '"addedAt": "2026-11-27T14:34:11.458922911+01:00"' in text


def test_top_level_null_is_an_empty_registry(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(b"null")
    reg = PeerRegistry(path)
    assert reg.count == 0 and reg.load_error is None and _backups(path) == []
    reg.close()


def test_null_entries_are_skipped_reported_and_the_file_kept(tmp_path: Path) -> None:
    """A `null` element crashes the Go node; here it is skipped, the good entries are kept,
    and the original file is copied aside before anything overwrites it."""
    path = tmp_path / "peers.json"
    raw = b'[null, {"id": "a", "name": "x", "pingMs": 3}, {"id": "b", "hops": "many"}, null]'
    path.write_bytes(raw)
    reg = PeerRegistry(path, save_delay=3600)
    assert [p.id for p in reg.peers()] == ["a"]
    err = reg.load_error
    assert isinstance(err, CorruptPeersFileError)
    assert err.skipped == 3 and "null entry" in str(err) and err.path == path
    assert err.backup_path is not None and err.backup_path.read_bytes() == raw
    assert _backups(path) == [err.backup_path]
    reg.close()  # the repaired state replaces the bad file; the copy stays
    assert [d["id"] for d in json.loads(path.read_bytes())] == ["a"]
    assert err.backup_path.read_bytes() == raw


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"id": "a"}', b"\xff\xfe[]", b'[{"id": "a"}'], ids=str
)
def test_corrupt_file_gives_a_clear_error_and_a_copy(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(raw)
    reg = PeerRegistry(path, save_delay=3600)
    assert reg.count == 0
    assert isinstance(reg.load_error, CorruptPeersFileError)
    assert str(path) in str(reg.load_error) and "copy kept" in str(reg.load_error)
    assert reg.load_error.backup_path is not None
    assert reg.load_error.backup_path.read_bytes() == raw
    reg.close()
    with pytest.raises(CorruptPeersFileError):
        path.write_bytes(raw)
        PeerRegistry(path, strict=True)
    assert len(_backups(path)) == 2


def test_file_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(b"[" + b" " * 2000 + b"]")
    reg = PeerRegistry(path, max_file_bytes=1000)
    assert reg.load_error is not None and "limit" in reg.load_error.reason
    reg.close()


def test_allowlist_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    keys = sorted(make_ident().public_key for _ in range(3))
    reg = PeerRegistry(path, save_delay=3600, auth_mode=AuthMode.ALLOWLIST)
    for k in reversed(keys):
        reg.allow_public_key(k)  # written at once, not debounced
    side = tmp_path / "peers.json.allowlist.json"
    assert side.read_text() == json.dumps(keys, indent=2)
    reg.revoke_public_key(keys[0])
    assert json.loads(side.read_text()) == keys[1:]
    reg.close()
    again = PeerRegistry(path)
    assert again.allowed_public_keys() == keys[1:]
    assert again.auth_mode is AuthMode.OPEN  # the mode is not persisted (reference)
    again.close()


def test_corrupt_allowlist_starts_empty_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    side = tmp_path / "peers.json.allowlist.json"
    side.write_bytes(b"[broken")
    reg = PeerRegistry(path)
    assert reg.allowed_public_keys() == []
    assert reg.load_error is not None and reg.load_error.path == side
    assert _backups(side)[0].read_bytes() == b"[broken"
    reg.close()
    side.write_bytes(b'["k1", "", "k2"]')
    assert PeerRegistry(path).allowed_public_keys() == ["k1", "k2"]  # empty strings skipped


@pytest.mark.skipif(sys.platform != "linux", reason="XDG layout is the Linux one")
def test_default_path_is_the_go_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_peers_path() == tmp_path / "lethean-desktop" / "peers.json"
    reg = PeerRegistry(save_delay=3600)
    assert reg.path == tmp_path / "lethean-desktop" / "peers.json"
    reg.add(Peer(id="a"))
    reg.close()
    assert reg.path.exists()


def test_save_errors_are_typed_and_retried(tmp_path: Path) -> None:
    where = tmp_path / "dir"
    reg = PeerRegistry(where / "peers.json", save_delay=3600)
    reg.add(Peer(id="a"))
    where.write_text("now a file")  # the directory was never created: make it impossible
    with pytest.raises(PeerStoreError):
        reg.save()
    assert reg.dirty  # still pending: a later save retries
    with pytest.raises(PeerStoreError):
        reg.close()
    where.unlink()
    reg.close()
    assert [d["id"] for d in json.loads((where / "peers.json").read_bytes())] == ["a"]
    with pytest.raises(PeerStoreError):  # unreadable location: typed error, not OSError
        PeerRegistry(tmp_path / "dir" / "peers.json" / "x")


def test_in_memory_registry_writes_nothing(tmp_path: Path) -> None:
    reg = PeerRegistry(tmp_path / "peers.json", persist=False)
    reg.add(Peer(id="a"))
    reg.allow_public_key("k")
    reg.close()
    assert list(tmp_path.iterdir()) == []


def test_mutations_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    reg = PeerRegistry(path, save_delay=0.001)

    def worker(t: int) -> None:
        for i in range(200):
            reg.add(Peer(id=f"t{t}-{i}", ping_ms=float(i)))
            reg.update_metrics(f"t{t}-{i}", 1.0, 2.0, 3)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    reg.close()
    assert len(json.loads(path.read_bytes())) == 800
    assert PeerRegistry(path).count == 800


async def test_flush_of_a_large_registry_does_not_block_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    reg = PeerRegistry(path, save_delay=3600)
    for i in range(30_000):
        reg.add(Peer(id=f"{i:032x}", name="n", ping_ms=float(i)))
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    beat = asyncio.create_task(heartbeat())
    await reg.flush()  # serialise + write happen in a worker thread
    stop.set()
    await beat
    assert ticks > 1  # the loop kept running while the file was written
    assert len(json.loads(path.read_bytes())) == 30_000
    await reg.aclose()


async def test_open_loads_in_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(GO_PEERS_JSON)
    reg = await PeerRegistry.open(path, save_delay=3600)
    assert reg.count == 2
    await reg.aclose()


def test_close_then_keep_using(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    reg = PeerRegistry(path, save_delay=3600)
    reg.add(Peer(id="a"))
    reg.close()
    reg.add(Peer(id="b"))  # still works; close() again writes it
    reg.close()
    assert sorted(d["id"] for d in json.loads(path.read_bytes())) == ["a", "b"]
    assert os.listdir(tmp_path) == ["peers.json"]
