"""`p2p-node ueps send` and the demo's UEPS steps, as functions the CLI and demo call.

Wiring (in ``cli.build_parser``, after the other commands)::

    add_ueps_subcommand(add, common)

and ``"ueps": cmd_ueps`` in ``_COMMANDS``. The demo calls :func:`demo_ueps_steps` with the
two nodes' transports (``node.transport``): UEPS goes through their front door,
``transport.on_ueps`` and ``conn.send_ueps``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from p2p.controller._cli_output import EXIT_USAGE, CliError
from p2p.identity import safe_text
from p2p.transport import BoundPacket, PeerConnection, Transport
from p2p.ueps import INTENT_COMPUTE, INTENT_CUSTOM, INTENT_REHAB

__all__ = [
    "add_ueps_subcommand",
    "cmd_ueps",
    "demo_ueps_steps",
    "parse_intent",
    "sha256_compute_handler",
]

log = logging.getLogger(__name__)

MAX_CLI_COUNT = 100_000


def parse_intent(text: str) -> int:
    """An intent byte from ``0x20``, ``32`` or a name (compute, rehab, custom)."""
    names = {"compute": INTENT_COMPUTE, "rehab": INTENT_REHAB, "custom": INTENT_CUSTOM}
    value = names.get(text.strip().lower())
    if value is None:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an intent: {text!r}") from None
    if not 0 <= value <= 0xFF or value == 0x01:
        raise argparse.ArgumentTypeError("intent must be 0x00..0xFF, not 0x01 (setup)")
    return value


def _threat(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError("threat score must be 0..65535")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_CLI_COUNT:
        raise argparse.ArgumentTypeError(f"count must be 1..{MAX_CLI_COUNT}")
    return value


def add_ueps_subcommand(
    add: Callable[..., argparse.ArgumentParser], common: argparse.ArgumentParser | None = None
) -> argparse.ArgumentParser:
    """Add ``ueps send PEER --intent 0x20 --payload TEXT`` using the CLI's ``add`` helper."""
    parents = [common] if common is not None else []
    ueps = add("ueps", "send session-bound UEPS frames to a peer that speaks ueps/1")
    usub = ueps.add_subparsers(dest="action", metavar="ACTION")
    usub.required = True
    send = usub.add_parser(
        "send",
        parents=parents,
        help="send UEPS frame(s) to PEER",
        description="Send UEPS frame(s) to PEER (an id, a name, or host:port). The peer must "
        "have advertised ueps/1 in its handshake (Go nodes never do).",
    )
    send.add_argument("peer", metavar="PEER", help="peer id, name or address")
    send.add_argument(
        "--intent", type=parse_intent, default=INTENT_COMPUTE, help="0x20 (default), rehab, ..."
    )
    payload = send.add_mutually_exclusive_group()
    payload.add_argument("--payload", metavar="TEXT", default="", help="payload as UTF-8 text")
    payload.add_argument("--payload-hex", metavar="HEX", help="payload as hex bytes")
    send.add_argument("--threat-score", type=_threat, default=0, metavar="N", help="0..65535")
    send.add_argument("--count", type=_count, default=1, metavar="N", help="frames to send")
    return ueps


class _UepsNode(Protocol):
    async def connect(self, ref: str) -> tuple[Any, PeerConnection]: ...
    async def send_ueps(
        self, peer_id: str, intent_id: int, payload: bytes, *, threat_score: int = 0
    ) -> None: ...


class _Ctx(Protocol):
    args: argparse.Namespace

    def say(self, text: str) -> None: ...
    def emit(self, obj: Any) -> None: ...
    def client(self) -> contextlib.AbstractAsyncContextManager[Any]: ...


def _payload(args: argparse.Namespace) -> bytes:
    if getattr(args, "payload_hex", None) is not None:
        try:
            data = bytes.fromhex(args.payload_hex)
        except ValueError:
            raise CliError(
                f"--payload-hex {safe_text(args.payload_hex, 40)} is not hex",
                EXIT_USAGE,
                "give pairs of hex digits, e.g. --payload-hex 00ff10",
            ) from None
    else:
        data = str(args.payload).encode("utf-8")
    if len(data) > 0xFFFF:
        raise CliError(f"the payload is {len(data)} bytes: at most 65535 fit", EXIT_USAGE)
    return data


async def cmd_ueps(ctx: _Ctx) -> int:
    """``p2p-node ueps send``: connect, wait for the UEPS session, send, report."""
    a = ctx.args
    data = _payload(a)
    node: _UepsNode
    async with ctx.client() as node:
        peer, conn = await node.connect(a.peer)
        for _ in range(a.count):
            await node.send_ueps(conn.peer_id, a.intent, data, threat_score=a.threat_score)
    name = getattr(peer, "name", "") if peer is not None else ""
    label = f"{safe_text(name)} ({conn.peer_id[:12]}…)" if name else conn.peer_id
    # UEPS has no receipt, and a receiver silently drops intents it has no handler for:
    # say what we know (written to the session), never "delivered" (issue 15).
    ctx.say(
        f"wrote {a.count} UEPS frame(s) to {label}: intent 0x{a.intent:02x}, "
        f"{len(data)} B payload, threat score {a.threat_score} (delivery not confirmed)"
    )
    note = getattr(ctx, "note", None)
    if callable(note):
        note(unconfirmed_warning(a.intent))
    ctx.emit(
        {
            "peer": conn.peer_id,
            "intent": a.intent,
            "payloadBytes": len(data),
            "threatScore": a.threat_score,
            "written": a.count,
            "confirmed": False,
        }
    )
    return 0


#: Intents a plain `p2p-node serve` routes (REHAB); anything else needs an application
#: that registered a handler on the receiving node.
SERVE_INTENTS = {INTENT_REHAB: "rehab"}


def unconfirmed_warning(intent: int) -> str:
    """The stderr note of `ueps send`: what the sender cannot know."""
    if intent in SERVE_INTENTS:
        return (
            f"note: UEPS has no receipt; a p2p-node serve handles 0x{intent:02x} "
            f"({SERVE_INTENTS[intent]}) and drops it if this node may not control it"
        )
    return (
        f"warning: UEPS has no receipt, and a p2p-node serve has no handler for intent "
        f"0x{intent:02x} (it routes only 0x30 rehab): unless an application on the peer "
        "registered one, the peer drops these frames"
    )


def sha256_compute_handler(
    reply_intent: int = INTENT_CUSTOM,
) -> Callable[[PeerConnection, BoundPacket], Awaitable[None]]:
    """An example COMPUTE (0x20) handler: answers each job with ``sha256:<hex>`` of it.

    ``transport.on_ueps(INTENT_COMPUTE, sha256_compute_handler())``. Real applications put
    their own work here; the handler runs in the connection's bounded handler pool, so a
    slow job never stalls the peer's reads. The answer goes back on the same connection.
    """

    async def handle(conn: PeerConnection, packet: BoundPacket) -> None:
        digest = await asyncio.to_thread(hashlib.sha256, packet.payload)
        answer = b"sha256:" + digest.hexdigest().encode()
        await conn.send_ueps(reply_intent, answer)

    return handle


async def demo_ueps_steps(
    sender: Transport, receiver: Transport, peer_id: str, say: Callable[[str], None]
) -> dict[str, int]:
    """The demo's UEPS story: a routed COMPUTE frame (answered), a dropped high-threat
    frame, a rejected tampered frame and a rejected replay. ``peer_id`` is the receiver's
    id as the sender knows it. Returns the receiver's counters for the sender."""
    own = sender.node_manager.identity
    sender_id = own.id if own is not None else ""
    answers: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
    receiver.on_ueps(INTENT_COMPUTE, sha256_compute_handler())

    def on_answer(conn: PeerConnection, packet: BoundPacket) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            answers.put_nowait(packet.payload)

    sender.on_ueps(INTENT_CUSTOM, on_answer)
    session = await sender.ueps.wait_ready(peer_id)
    conn = sender.connection(peer_id)
    assert conn is not None

    await conn.send_ueps(INTENT_COMPUTE, b"block template 42")
    answer = await asyncio.wait_for(answers.get(), 5.0)
    say(f"COMPUTE frame (0x20, 17 B) routed to the handler; it answered {answer.decode()[:23]}…")

    # the rejections below are the point of the demo: their warning lines would be noise
    with _quiet("p2p.ueps.dispatcher", "p2p.transport.ueps_service"):
        await conn.send_ueps(INTENT_COMPUTE, b"suspicious job", threat_score=60_000)
        frame = bytearray(session.seal(INTENT_COMPUTE, b"pay 10 LTHN"))
        replay = bytes(frame)
        frame[-1] ^= 0x01
        await conn.send_raw(bytes(frame))  # tampered: one payload bit flipped
        await conn.send_raw(replay)  # the genuine frame, once...
        await conn.send_raw(replay)  # ...and replayed
        await conn.send_ueps(INTENT_COMPUTE, b"last")  # in order again: routed
        await asyncio.wait_for(answers.get(), 5.0)
        await asyncio.wait_for(answers.get(), 5.0)
    counters = receiver.ueps.peer_counters(sender_id)
    say(f"threat score 60000 > 50000: dropped before routing (threat drops: {counters['threat']})")
    say(f"tampered frame: HMAC mismatch, rejected (integrity: {counters['integrity']})")
    say(f"replayed frame: counter not above the last, rejected (replay: {counters['replay']})")
    score = receiver.ueps.threats.score(sender_id)
    limit = receiver.ueps.threats.threshold
    say(f"sender's threat score now {score:.0f} (the breaker trips above {limit:.0f})")
    return counters


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise these loggers' levels to ERROR for the duration (expected warnings)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
