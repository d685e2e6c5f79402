"""A flooding peer in its own process: handshake with a node, then send SMSG frames as
fast as asked (default 10 000/s) for some seconds; print one JSON line of figures. A node
closes a connection that keeps exceeding its rate limit: the flooder then reconnects.

    python _flooder.py ws://127.0.0.1:PORT/ws SECONDS [RATE]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path


async def main(uri: str, seconds: float, rate: int) -> dict[str, float]:
    from p2p.identity import NodeManager
    from p2p.transport import envelope, smsg
    from p2p.transport.handshake import HandshakeInitiator
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    with tempfile.TemporaryDirectory() as d:
        manager = NodeManager(Path(d) / "k", Path(d) / "n.json")
        identity = manager.generate("flooder")

        async def dial() -> tuple[object, list[bytes]]:
            ws = await connect(uri, compression=None, ping_interval=None, proxy=None, max_size=None)
            initiator = HandshakeInitiator(identity, manager.derive_shared_secret)
            await ws.send(envelope.to_text(initiator.hello()))
            result = initiator.receive_ack(await ws.recv())
            password = smsg.password_for_secret(result.secret)
            frames = []
            for _ in range(4000):  # distinct ids: every frame is a real, fresh message
                msg = envelope.new_message("get_stats", identity.id, result.peer.id, None)
                msg.id = str(uuid.uuid4())
                frames.append(smsg.encrypt(msg.to_json().decode(), password))
            return ws, frames

        ws, frames = await dial()
        sent = 0
        closed = 0
        start = time.monotonic()
        end = start + seconds
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        next_tick = start
        while time.monotonic() < end:
            try:
                for _ in range(per_tick):
                    await ws.send(frames[sent % len(frames)])  # type: ignore[attr-defined]
                    sent += 1
            except (ConnectionClosed, OSError):
                closed += 1
                await asyncio.sleep(0.2)
                try:
                    ws, frames = await dial()
                except Exception:
                    await asyncio.sleep(0.5)
                continue
            next_tick += tick
            delay = next_tick - time.monotonic()
            await asyncio.sleep(delay if delay > 0 else 0)
        elapsed = time.monotonic() - start
        ws.transport.abort()  # type: ignore[attr-defined]
        return {
            "sent": sent,
            "seconds": round(elapsed, 2),
            "rate": round(sent / elapsed),
            "closed": closed,
        }


if __name__ == "__main__":
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    print(json.dumps(asyncio.run(main(sys.argv[1], float(sys.argv[2]), rate))), flush=True)
