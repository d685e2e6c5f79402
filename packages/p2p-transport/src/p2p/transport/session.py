"""Per-connection state after the handshake, sans-I/O: frames in, verdicts out.

A :class:`Session` turns each inbound WebSocket data frame into one of: a decrypted
:class:`Message` for the handlers, a raw non-SMSG binary frame for the raw hook, or a
drop with a counted reason. It applies the reference's order (activity, rate limit,
decrypt, dedup) plus this port's replay window on ``ts``. Time is passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2p.identity import LimitedLogger, safe_text
from p2p.transport import envelope
from p2p.transport.config import TransportConfig
from p2p.transport.errors import TransportError
from p2p.transport.frames import FrameCodec
from p2p.transport.limits import DedupTable, DropCounters, DropReason, TokenBucket

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.messages import Message

__all__ = ["SMSG_MAGIC", "Delivery", "RawFrame", "Session", "TooManyUndecryptableError"]

log = logging.getLogger(__name__)
#: per-frame lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)

SMSG_MAGIC = b"SMSG"


class TooManyUndecryptableError(TransportError):
    """The peer sent ``count`` undecryptable frames in a row: it should be disconnected."""

    def __init__(self, peer_id: str, count: int) -> None:
        super().__init__(f"peer {peer_id} sent {count} undecryptable frames in a row")
        self.peer_id = peer_id
        self.count = count


@dataclass(frozen=True, slots=True)
class Delivery:
    """A decrypted, fresh, first-seen message."""

    message: Message


@dataclass(frozen=True, slots=True)
class RawFrame:
    """A binary frame that is not an SMSG container (e.g. UEPS), for the raw-frame hook."""

    data: bytes


class Session:
    """Everything one authenticated connection remembers between frames."""

    __slots__ = (
        "_bucket",
        "_codec",
        "_config",
        "_dedup",
        "bytes_in",
        "bytes_out",
        "drops",
        "frames_in",
        "last_activity",
        "messages_in",
        "messages_out",
        "own_id",
        "peer",
        "raw_frames_enabled",
        "undecryptable_in_a_row",
    )

    def __init__(
        self,
        peer: NodeIdentity,
        secret: bytes,
        config: TransportConfig,
        dedup: DedupTable,
        now: float,
        *,
        drops_parent: DropCounters | None = None,
        own_id: str = "",
    ) -> None:
        self.peer = peer
        self.own_id = own_id
        self._codec = FrameCodec(
            secret, max_frame=config.max_message_size, max_message=config.max_message_size
        )
        self._config = config
        self._dedup = dedup
        self._bucket = TokenBucket(config.rate_burst, config.rate_refill_per_s, now)
        self.drops = DropCounters(drops_parent)
        self.last_activity = now
        self.undecryptable_in_a_row = 0
        self.frames_in = 0
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.raw_frames_enabled = False

    def receive(self, data: bytes | str, now: float, wall_now: float) -> Delivery | RawFrame | None:
        """Judge one inbound data frame; ``None`` means dropped (and counted).

        ``now`` is the monotonic clock (activity, rate limit, dedup), ``wall_now`` Unix
        seconds (the replay window on ``ts``). Raises :class:`TooManyUndecryptableError` once
        the configured run of bad frames is reached.
        """
        self.frames_in += 1
        self.bytes_in += len(data)
        self.last_activity = now
        if not self._bucket.allow(now):
            self.drops.add(DropReason.RATE)
            _flood.warning("rate-limited frame", "rate limit: dropping frame from %s", self.peer.id)
            return None
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        if self.raw_frames_enabled and not raw.startswith(SMSG_MAGIC):
            self.undecryptable_in_a_row = 0
            return RawFrame(raw)
        try:
            message = self._codec.open(raw)
        except TransportError as exc:
            self.drops.add(DropReason.DECRYPT)
            self.undecryptable_in_a_row += 1
            _flood.debug(
                "undecryptable frame",
                "undecryptable frame from %s: %s",
                self.peer.id,
                type(exc).__name__,
            )
            if self.undecryptable_in_a_row >= self._config.max_undecryptable_in_a_row:
                raise TooManyUndecryptableError(self.peer.id, self.undecryptable_in_a_row) from exc
            return None
        self.undecryptable_in_a_row = 0
        window = self._config.ts_window
        if window is not None:
            sent = envelope.ts_seconds(message)
            if sent is None or abs(wall_now - sent) > window:
                self.drops.add(DropReason.STALE_TS)
                _flood.info(
                    "stale ts", "stale ts from %s: dropping %s", self.peer.id, safe_text(message.id)
                )
                return None
        # One key serves both directions, so a frame we sent can be reflected back to us:
        # a message must come from this connection's peer and, when addressed, to us
        # (Go always fills both). TRANSPORT.md §10 #5.
        if message.from_ != self.peer.id or (
            self.own_id and message.to and message.to != self.own_id
        ):
            self.drops.add(DropReason.MISADDRESSED)
            _flood.info(
                "misaddressed message",
                "misaddressed message from %s (from=%s to=%s): dropping",
                self.peer.id,
                safe_text(message.from_),
                safe_text(message.to),
            )
            return None
        if not self._dedup.check_and_mark(message.id, now):
            self.drops.add(DropReason.DEDUP)
            return None
        self.messages_in += 1
        return Delivery(message)

    def seal(self, message: Message) -> bytes:
        """Encrypt ``message`` into one SMSG container for this peer."""
        frame = self._codec.seal(message)
        self.messages_out += 1
        self.bytes_out += len(frame)
        return frame

    def seal_unsent(self, message: Message) -> bytes:
        """Encrypt without counting (for a frame that may never be written)."""
        return self._codec.seal(message)
