"""UEPS through a transport's front door with REHAB, the `ueps send` command and the demo's
UEPS steps."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from p2p.controller.miners import MinerSpec, ProcessMinerManager
from p2p.controller.rehab import RehabController
from p2p.controller.ueps_cli import (
    add_ueps_subcommand,
    cmd_ueps,
    demo_ueps_steps,
    parse_intent,
)
from p2p.transport import (
    FEATURE_UEPS,
    BoundPacket,
    PeerConnection,
    Transport,
    UepsNotNegotiatedError,
    with_ueps,
)
from p2p.ueps import INTENT_COMPUTE, INTENT_REHAB
from pytest_p2p.transport_fixtures import eventually, fast_transport_config

SPIN = "import time\nwhile True:\n    time.sleep(0.02)\n"


def state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


class MiniNode:
    """A transport shaped like Node for the CLI (connect, send_ueps)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def connect(self, ref: str) -> tuple[None, PeerConnection]:
        return None, await self.transport.connect(ref)

    async def send_ueps(
        self, peer_id: str, intent_id: int, payload: bytes, *, threat_score: int = 0
    ) -> None:
        await self.transport.send_ueps(peer_id, intent_id, payload, threat_score=threat_score)


Made = tuple[Transport, "RehabController | None"]


@pytest.fixture
async def ueps_transport(
    make_node_manager: Callable[[str], Any],
) -> AsyncIterator[Callable[..., Awaitable[Made]]]:
    """A started transport advertising ueps/1, with REHAB on ``miners`` (as Node does)."""
    made: list[Made] = []

    async def make(name: str, miners: ProcessMinerManager | None = None) -> Made:
        config = fast_transport_config(features=with_ueps())
        transport = Transport(make_node_manager(name), None, config)
        rehab = None
        if miners is not None:
            rehab = RehabController(miners)
            transport.on_ueps(INTENT_REHAB, rehab.handle)
        await transport.start()
        made.append((transport, rehab))
        return transport, rehab

    yield make
    for transport, rehab in made:
        await transport.stop()
        if rehab is not None:
            rehab.close()


def test_with_ueps_is_idempotent() -> None:
    cfg = fast_transport_config(features=with_ueps(with_ueps(("x",))))
    assert cfg.features == ("x", FEATURE_UEPS)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP and /proc")
async def test_rehab_over_the_front_door_and_close_resumes(
    ueps_transport: Callable[..., Awaitable[Made]], tmp_path: Path
) -> None:
    miners = ProcessMinerManager(
        {"spin": MinerSpec(command=[sys.executable, "-c", SPIN], stop_grace=2.0)}, tmp_path
    )
    try:
        worker, rehab = await ueps_transport("worker", miners)
        controller, _ = await ueps_transport("controller")
        assert worker.ueps.dispatcher.handlers().keys() == {INTENT_REHAB}
        assert rehab is not None
        miner = await miners.start_miner("spin", {})
        pid = miner.pid
        assert pid is not None
        conn = await controller.connect(worker.address)
        await conn.send_ueps(INTENT_REHAB, b"pause:30")
        await eventually(lambda: state(pid) == "T")
        rehab.close()  # node shutdown order: resume before stopping miners
        await eventually(lambda: state(pid) in "RS")
    finally:
        await miners.close()


async def test_demo_ueps_steps(
    ueps_transport: Callable[..., Awaitable[Made]],
) -> None:
    a, _ = await ueps_transport("controller")
    b, _ = await ueps_transport("worker")
    conn = await a.connect(b.address)
    lines: list[str] = []
    counters = await demo_ueps_steps(a, b, conn.peer_id, lines.append)
    assert counters["threat"] == 1 and counters["integrity"] == 1 and counters["replay"] == 1
    assert counters["accepted"] == 3
    text = "\n".join(lines)
    assert "routed" in text and "sha256:" in text and "replayed" in text and "tampered" in text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2p-node")
    sub = parser.add_subparsers(dest="command")

    def add(name: str, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, **kw)

    add_ueps_subcommand(add)
    return parser


def test_ueps_send_arguments() -> None:
    args = _parser().parse_args(["ueps", "send", "peer-a", "--intent", "0x20", "--payload", "hi"])
    assert (args.command, args.action, args.peer, args.intent, args.payload) == (
        "ueps",
        "send",
        "peer-a",
        0x20,
        "hi",
    )
    args = _parser().parse_args(["ueps", "send", "p", "--intent", "rehab", "--payload-hex", "00ff"])
    assert args.intent == INTENT_REHAB and args.payload_hex == "00ff" and args.count == 1
    for bad in (["--intent", "0x01"], ["--intent", "256"], ["--threat-score", "70000"]):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            _parser().parse_args(["ueps", "send", "p", *bad])
    assert parse_intent("custom") == 0xFF and parse_intent("48") == 0x30


class Ctx:
    """The CLI context's surface, over a real transport."""

    def __init__(self, args: argparse.Namespace, node: MiniNode) -> None:
        self.args = args
        self.node = node
        self.said: list[str] = []
        self.emitted: list[Any] = []

    def say(self, text: str) -> None:
        self.said.append(text)

    def emit(self, obj: Any) -> None:
        self.emitted.append(obj)

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[MiniNode]:
        yield self.node


async def test_cmd_ueps_sends_frames(
    ueps_transport: Callable[..., Awaitable[Made]],
) -> None:
    server, _ = await ueps_transport("server")
    client, _ = await ueps_transport("client")
    got: list[BoundPacket] = []
    server.on_ueps(INTENT_COMPUTE, lambda conn, pk: got.append(pk))
    args = _parser().parse_args(
        ["ueps", "send", server.address, "--payload", "work", "--count", "3", "--threat-score", "7"]
    )
    ctx = Ctx(args, MiniNode(client))
    assert await cmd_ueps(ctx) == 0
    await eventually(lambda: len(got) == 3)
    assert [(p.payload, p.threat_score, p.counter) for p in got] == [
        (b"work", 7, 1),
        (b"work", 7, 2),
        (b"work", 7, 3),
    ]
    assert ctx.emitted[0]["written"] == 3 and ctx.emitted[0]["confirmed"] is False
    assert "wrote 3 UEPS frame(s)" in ctx.said[0] and "not confirmed" in ctx.said[0]


async def test_cmd_ueps_refuses_a_peer_without_ueps(
    ueps_transport: Callable[..., Awaitable[Made]],
    make_transport: Callable[..., Awaitable[Transport]],
) -> None:
    plain = await make_transport("go-like")
    client, _ = await ueps_transport("client")
    args = _parser().parse_args(["ueps", "send", plain.address, "--payload", "x"])
    with pytest.raises(UepsNotNegotiatedError):
        await cmd_ueps(Ctx(args, MiniNode(client)))
