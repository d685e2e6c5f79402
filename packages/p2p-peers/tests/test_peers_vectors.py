"""Every case of the golden ``peer_selection`` section, through the public API."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from p2p.peers import InvalidPeerError, Peer, PeerError, PeerExistsError, PeerRegistry


@pytest.fixture
def section(golden: dict[str, Any]) -> dict[str, Any]:
    sec: dict[str, Any] = golden["peer_selection"]
    return sec


def _registry(tmp_path: Path, section: dict[str, Any]) -> PeerRegistry:
    reg = PeerRegistry(tmp_path / "peers.json", save_delay=3600)
    for p in section["peers"]:
        reg.add(
            Peer.from_dict(
                {
                    "id": p["id"],
                    "name": p["name"],
                    "pingMs": p["pingMs"],
                    "hops": p["hops"],
                    "geoKm": p["geoKm"],
                    "score": p["scoreInput"],
                }
            )
        )
    return reg


def _apply(reg: PeerRegistry, event: str) -> None:
    m = re.fullmatch(r"(\w+)\(([^)]*)\)(?: x(\d+))?", event)
    assert m is not None, event
    name, args, times = m.group(1), m.group(2).split(","), int(m.group(3) or 1)
    for _ in range(times):
        if name == "RecordFailure":
            assert reg.record_failure(args[0])
        elif name == "RecordTimeout":
            assert reg.record_timeout(args[0])
        elif name == "RecordSuccess":
            assert reg.record_success(args[0])
        elif name == "UpdateScore":
            reg.update_score(args[0], float(args[1]))
        elif name == "UpdateMetrics":
            kv = dict(a.split("=") for a in args[1:])
            reg.update_metrics(
                args[0], ping_ms=float(kv["ping"]), geo_km=float(kv["geo"]), hops=int(kv["hops"])
            )
        else:
            pytest.fail(f"unknown event {event}")


def _check(reg: PeerRegistry, want: dict[str, Any]) -> None:
    best = reg.select_optimal()
    assert best is not None and best.id == want["select_optimal"]
    assert [p.id for p in reg.select_nearest(5)] == want["select_nearest_5"]
    assert [p.id for p in reg.by_score()] == want["by_score"]
    for pid, score in want["scores"].items():
        got = reg.get(pid)
        assert got is not None and got.score == pytest.approx(score, abs=1e-9)


def test_initial_selection(tmp_path: Path, section: dict[str, Any]) -> None:
    reg = _registry(tmp_path, section)
    _check(reg, section["initial"])
    # the reference's score-0 -> 50 default applies to the peer added with score 0
    zero = [p for p in section["peers"] if p["scoreInput"] == 0]
    assert zero and all(reg.get(p["id"]).score == 50 for p in zero)  # type: ignore[union-attr]
    reg.close()


def test_selection_after_score_events(tmp_path: Path, section: dict[str, Any]) -> None:
    reg = _registry(tmp_path, section)
    for event in section["events"]:
        _apply(reg, event)
    _check(reg, section["after_events"])
    reg.close()


def test_distances_match_the_harness(tmp_path: Path, section: dict[str, Any]) -> None:
    from p2p.peers.index import distance, point

    reg = _registry(tmp_path, section)
    near = reg.select_nearest(5)
    got = [distance(point(p.ping_ms, p.hops, p.geo_km, p.score)) for p in near]
    assert got == pytest.approx(section["initial"]["select_nearest_5_distances_harness"])
    reg.close()


def test_add_errors(tmp_path: Path, section: dict[str, Any]) -> None:
    reg = _registry(tmp_path, section)
    dup = section["peers"][0]["id"]
    with pytest.raises(PeerExistsError, match="already exists"):
        reg.add(Peer.from_dict({"id": dup, "name": "x"}))
    with pytest.raises(InvalidPeerError, match="peer ID is required"):
        reg.add(Peer.from_dict({"id": "", "name": "x"}))
    assert "already exists" in section["add_errors"]["duplicate_id"]
    assert "peer ID is required" in section["add_errors"]["empty_id"]
    reg.close()


def test_name_validation(tmp_path: Path, section: dict[str, Any]) -> None:
    reg = PeerRegistry(tmp_path / "peers.json", save_delay=3600)
    for case in section["name_validation"]:
        pid = hashlib.md5(case["name"].encode()).hexdigest()
        if case["error"] is None:
            reg.add(Peer.from_dict({"id": pid, "name": case["name"]}))
            assert reg.get(pid) is not None
        else:
            with pytest.raises(PeerError) as err:
                reg.add(Peer.from_dict({"id": pid, "name": case["name"]}))
            # same message as the reference, minus its function-name prefix
            assert case["error"].endswith(str(err.value))
            assert reg.get(pid) is None
    reg.close()
