"""Issue 13, findings 9 and 7 over real sockets: a flood of tiny bad frames gives a bounded
number of log lines, remote strings never reach a log line raw (no forged lines, no
terminal escapes), and a zstd bomb in one frame never inflates past the plaintext cap."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from ._hold import stranger
from .conftest import report

FORGED = "1.0\n2026-12-01 00:00:00 CRITICAL p2p: forged line\x1b[2J\x1b]0;owned\x07\r\u202e"


class _Count(logging.Handler):
    """Every record of the p2p loggers, formatted (what an operator's log file gets)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def p2p_logs():
    handler = _Count()
    logger = logging.getLogger("p2p")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


async def test_junk_frame_flood_gives_bounded_log_output(make_node, p2p_logs) -> None:
    """7-byte binary frames as fast as the socket takes them, from a peer that offered
    ueps/1: today one WARNING per rate-limited frame (x13 amplification); held: a few
    lines per kind and minute plus a summary."""
    node = await make_node("flooded")
    s = await stranger(node.address, features=("ueps/1",))
    await s.ping()
    p2p_logs.records.clear()
    sent = 0
    started = time.monotonic()
    try:
        while sent < 20_000 and time.monotonic() - started < 20:
            await s.ws.send(b"\x00junk!\x00")  # 7 bytes
            sent += 1
            if sent % 500 == 0:
                await asyncio.sleep(0)  # let the node read
    except ConnectionClosed:
        pass  # closing a peer that keeps exceeding its limit is fine too
    await asyncio.sleep(0.5)  # let the node judge what it has read
    await s.ws.close()
    elapsed = time.monotonic() - started
    records = list(p2p_logs.records)
    text_bytes = sum(len(r.getMessage()) + 40 for r in records)
    report(
        "hold_logs",
        frames_sent=sent,
        seconds=round(elapsed, 2),
        log_records=len(records),
        log_bytes=text_bytes,
        amplification=round(text_bytes / max(1, sent * 7), 3),
    )
    assert sent >= 1000 or records, "the flood did not run"
    # bounded whatever the traffic: a few kinds x (burst + a summary) per minute
    assert len(records) <= 60, [r.getMessage() for r in records[:20]]
    assert text_bytes <= sent * 7, "more log bytes than the attacker sent"


async def test_remote_strings_never_reach_a_log_line_raw(make_node, p2p_logs) -> None:
    """A handshake whose version forges a log line and drives the terminal; the node
    refuses it and logs the reason escaped and bounded."""
    node = await make_node("forged")
    with pytest.raises(Exception):
        await stranger(node.address, version=FORGED + "x" * 5000)
    await asyncio.sleep(0.2)
    messages = [r.getMessage() for r in p2p_logs.records]
    assert any("refused" in m for m in messages), messages
    for m in messages:
        assert m.isprintable(), repr(m)
        assert len(m) < 2000, len(m)
    assert any("\\x1b[2J" in m for m in messages)  # shown, escaped


_SERVE_BOMB = r"""
import asyncio, json, sys, zstandard
from p2p.transport import sigil, trix
sys.path.insert(0, sys.argv[2])
from _hold import stranger

async def main():
    s = await stranger(sys.argv[1])
    await s.ping()
    plain = b'{"body":"' + b"a" * (int(sys.argv[3]) << 20) + b'","timestamp":1}'
    bomb = zstandard.ZstdCompressor(level=3).compress(plain)
    del plain
    header = {"algorithm": "chacha20poly1305", "version": "1.0", "compression": "zstd"}
    frame = trix.encode(b"SMSG", header, sigil.seal(sigil.derive_key(s.password), bomb))
    await s.ws.send(frame)
    print(json.dumps({"frame": len(frame)}), flush=True)
    await s.ping()  # the node is still there and still answers
    print(json.dumps({"pong": True}), flush=True)

asyncio.run(main())
"""


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_zstd_bomb_frame_is_bounded_on_a_live_node(tmp_path: Path) -> None:
    """One ~40 KiB frame that inflates to 512 MiB, sent to a `p2p-node serve` process
    after a real handshake: its peak RSS stays far below what inflating it would take."""
    pytest.importorskip("zstandard", reason="the zstd extra (p2p-transport[zstd]) is not installed")
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the node's peak RSS")
    exe = Path(sys.executable).with_name("p2p-node")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    serve = subprocess.Popen(
        [str(exe), "--data-dir", str(tmp_path / "n"), "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert serve.stdout is not None
        info = json.loads(serve.stdout.readline())
        before = _peak_rss_kib(serve.pid)
        attacker = subprocess.run(
            [sys.executable, "-c", _SERVE_BOMB, info["address"], str(Path(__file__).parent), "512"],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert attacker.returncode == 0, attacker.stderr[-2000:]
        assert '"pong": true' in attacker.stdout
        after = _peak_rss_kib(serve.pid)
        report("hold_zstd", peak_rss_before_kib=before, peak_rss_after_kib=after)
        assert after - before < 128 * 1024, f"peak RSS grew by {after - before} KiB"
        assert serve.poll() is None
    finally:
        serve.terminate()
        serve.wait(20)
