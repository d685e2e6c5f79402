"""`p2p-node peers list` shows each peer's protocol; `peers reset-protocol` lifts a 1.1 pin."""

from __future__ import annotations

import base64
from pathlib import Path

from p2p.identity import KeyPair, node_id_from_public_key
from p2p.peers import Peer, PeerRegistry
from pytest_p2p.cli import one_json
from pytest_p2p.cli import run_cli as run


def _peer(name: str, protocol: str) -> Peer:
    key = base64.b64encode(KeyPair.generate().public_bytes).decode()
    return Peer(
        id=node_id_from_public_key(key),
        name=name,
        public_key=key,
        address="127.0.0.1:9",
        protocol=protocol,
    )


def test_peers_list_protocol_and_reset(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    pinned, plain, unknown = _peer("pinned", "1.1"), _peer("plain", "1.0"), _peer("new", "")
    reg = PeerRegistry(d / "peers.json")
    for p in (pinned, plain, unknown):
        reg.add(p)
    reg.close()
    listing = one_json(run("--data-dir", str(d), "--json", "peers", "list")[1])
    protocols = {p["name"]: p["protocol"] for p in listing["peers"]}
    assert protocols == {"pinned": "1.1", "plain": "1.0", "new": "1.0"}
    code, table, _ = run("--data-dir", str(d), "peers", "list")
    assert code == 0 and "PROTOCOL" in table and "pinned" in table
    column = table.splitlines()[0].split().index("PROTOCOL")
    shown = {line.split()[1]: line.split()[column] for line in table.splitlines()[1:4]}
    assert shown == {"pinned": "1.1", "plain": "1.0", "new": "1.0"}
    code, out, _ = run("--data-dir", str(d), "--json", "peers", "reset-protocol", "pinned")
    assert code == 0 and one_json(out) == {"peer": pinned.id, "was": "1.1", "protocol": "1.0"}
    listing = one_json(run("--data-dir", str(d), "--json", "peers", "list")[1])
    assert {p["protocol"] for p in listing["peers"]} == {"1.0"}
    code, out, _ = run("--data-dir", str(d), "peers", "reset-protocol", "plain")
    assert code == 0 and "not pinned" in out
