"""An application's COMPUTE (0x20) handler over the live UEPS channel.

    python packages/p2p-transport/examples/ueps_compute.py

Two nodes on 127.0.0.1 in one process (identities in a temporary directory). The worker
registers a COMPUTE handler that does the "work" (here: find a nonce whose SHA-256 with the
job starts with a zero byte) in a thread and answers with a CUSTOM (0xFF) frame; the
controller sends three jobs and prints the answers. The handler is ``async``: it runs in
the connection's bounded handler pool, so a slow job never stalls the peer's reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

from p2p.identity import NodeManager
from p2p.transport import BoundPacket, PeerConnection, Transport, TransportConfig, with_ueps
from p2p.ueps import INTENT_COMPUTE, INTENT_CUSTOM


def solve(job: bytes, limit: int = 1 << 20) -> int:
    """The smallest nonce with SHA-256(job ‖ nonce) starting with a zero byte."""
    for nonce in range(limit):
        if hashlib.sha256(job + nonce.to_bytes(8, "big")).digest()[0] == 0:
            return nonce
    raise ValueError("no nonce found")


def node(root: Path, name: str) -> Transport:
    manager = NodeManager(key_path=root / name / "private.key", config_path=root / name / "n.json")
    manager.generate(name)
    config = TransportConfig(listen_host="127.0.0.1", listen_port=0, features=with_ueps())
    return Transport(manager, None, config)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        worker, controller = node(Path(tmp), "worker"), node(Path(tmp), "controller")

        async def compute(conn: PeerConnection, packet: BoundPacket) -> None:
            nonce = await asyncio.to_thread(solve, packet.payload)
            await conn.send_ueps(INTENT_CUSTOM, packet.payload + b"=%d" % nonce)  # answer back

        answers: asyncio.Queue[bytes] = asyncio.Queue()
        worker.on_ueps(INTENT_COMPUTE, compute)
        controller.on_ueps(INTENT_CUSTOM, lambda conn, p: answers.put_nowait(p.payload))
        await worker.start()
        await controller.start()
        try:
            conn = await controller.connect(worker.address)
            for job in (b"job-1", b"job-2", b"job-3"):
                await conn.send_ueps(INTENT_COMPUTE, job)
            for _ in range(3):
                print("answer:", (await asyncio.wait_for(answers.get(), 10)).decode())
            print("worker counters:", worker.ueps.counters)
        finally:
            await controller.stop()
            await worker.stop()


if __name__ == "__main__":
    asyncio.run(main())
