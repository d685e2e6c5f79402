"""A short, real UEPS walk-through: ``python -m p2p.ueps.demo``.

Builds and signs frames for several intents, feeds them to a stream reader in awkward
chunks, routes them through the dispatcher (including one the threat breaker stops), and
shows a tampered frame being refused.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TextIO

from p2p import ueps


def main(out: TextIO | None = None) -> int:
    """Run the demo, writing to ``out`` (stdout by default). Returns the exit status."""
    stream = out if out is not None else sys.stdout

    def say(text: str) -> None:
        print(text, file=stream)

    secret = os.urandom(32)
    say(f"p2p.ueps demo — implementation: {ueps.IMPLEMENTATION}")
    frames = [
        ueps.build(ueps.INTENT_HANDSHAKE, b"hello", secret),
        ueps.build(ueps.INTENT_COMPUTE, b'{"job": "hash", "n": 42}', secret),
        ueps.build(ueps.INTENT_COMPUTE, b"from a noisy peer", secret, threat_score=60_000),
        ueps.build(ueps.INTENT_CUSTOM, os.urandom(1000), secret),
    ]
    for f in frames:
        p = ueps.read_and_verify(f, secret)
        say(
            f"  built frame: intent 0x{p.header.intent_id:02x}, threat {p.header.threat_score}, "
            f"{len(f)} bytes, HMAC {f[24:32].hex()}…"
        )

    wire = b"".join(frames)
    reader = ueps.FrameReader(secret)
    packets = []
    for i in range(0, len(wire), 17):  # a stream cut every 17 bytes
        packets.extend(reader.feed(wire[i : i + 17]))
    say(f"stream of {len(wire)} bytes in 17-byte chunks -> {len(packets)} verified packets")

    results: list[str] = []
    dispatcher = ueps.Dispatcher()
    dispatcher.register(ueps.INTENT_HANDSHAKE, lambda p: results.append(f"handshake {p.payload!r}"))

    async def compute(p: ueps.ParsedPacket) -> None:
        await asyncio.sleep(0)
        results.append(f"compute job {p.payload.decode()}")

    dispatcher.register(ueps.INTENT_COMPUTE, compute)

    async def route_all() -> None:
        for p in packets:
            try:
                await dispatcher.dispatch_async(p)
            except ueps.ThreatScoreExceeded as e:
                results.append(f"dropped (threat {p.header.threat_score}): {e}")
            except ueps.UnknownIntent as e:
                results.append(f"dropped: {e}")

    asyncio.run(route_all())
    for r in results:
        say(f"  dispatch: {r}")

    tampered = bytearray(frames[1])
    tampered[-3] ^= 0x01
    try:
        ueps.read_and_verify(bytes(tampered), secret)
    except ueps.IntegrityError as e:
        say(f"tampered frame refused: {e}")
    else:
        say("ERROR: tampered frame was accepted")
        return 1
    try:
        ueps.read_and_verify(frames[0], os.urandom(32))
    except ueps.IntegrityError:
        say("frame under the wrong secret refused")
    else:
        return 1
    say("done.")
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    raise SystemExit(main())
