"""Issue 13, finding 6: strangers cannot grow the persistent registry, nor take the
operator's names. 6 000 fresh identities from rotating 127.x addresses each handshake and
prove their key against a real node; peers.json ends within the learned-peer cap, the
operator's peer is still there, and its name still resolves to it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from p2p.controller.node import resolve_peer
from p2p.identity import KeyPair, node_id_from_public_key
from p2p.peers import Peer

from ._hold import loopback, stranger
from .conftest import report

STRANGERS = 6000
CAP = 1000  # NodeConfig.max_learned_peers default


async def test_six_thousand_strangers_stay_within_the_cap(make_node, tmp_path: Path) -> None:
    node = await make_node("reg", data_dir=tmp_path / "reg", transport={"max_conns": 200})
    pub = KeyPair.generate().public_key_b64
    mine = Peer(id=node_id_from_public_key(pub), name="worker-w", public_key=pub)
    node.registry.add(mine)
    uri = node.address
    done = 0
    failed: list[BaseException] = []

    async def worker(k: int, count: int) -> None:
        nonlocal done
        for j in range(count):
            i = k * count + j
            try:
                s = await stranger(uri, name="worker-w", source=loopback(i))
                await s.ping()
                await s.ws.close()
                done += 1
            except Exception as exc:  # counted; the test fails below if many do
                failed.append(exc)

    parallel = 24
    await asyncio.gather(*(worker(k, STRANGERS // parallel) for k in range(parallel)))
    assert done >= STRANGERS * 0.98, f"only {done} handshakes: {failed[:3]!r}"
    reg = node.registry
    await reg.flush()
    on_disk = json.loads(reg.path.read_bytes())
    report("hold_registry", strangers=done, peers_json_entries=len(on_disk))
    # the cap holds on disk and in memory; the rest were evicted, not silently kept
    assert len(on_disk) <= CAP + 1, f"{len(on_disk)} entries in peers.json"
    assert reg.max_learned == CAP
    assert len(reg.learned_ids()) == CAP, "proven strangers are registered up to the cap"
    assert reg.evictions >= done - CAP
    assert mine.id in {d["id"] for d in on_disk} and not reg.is_learned(mine.id)
    sidecar = set(json.loads(reg.path.with_name(reg.path.name + ".learned.json").read_bytes()))
    assert {d["id"] for d in on_disk} - sidecar == {mine.id}
    # every stranger claimed "worker-w": the operator's name still means the operator's peer
    assert node.resolve_peer("worker-w").id == mine.id
    assert resolve_peer(reg, "worker-w").id == mine.id
