"""Per-connection state after the handshake, sans-I/O: frames in, verdicts out.

A :class:`Session` turns each inbound WebSocket data frame into one of: a decrypted
:class:`Message` for the handlers, a raw non-SMSG binary frame for the raw hook, or a
drop with a counted reason. It applies the reference's order (activity, rate limit,
decrypt, dedup) plus this port's replay window on ``ts``. Time is passed in.

An inbound session starts *unproven* (protocol 1.0 never makes the initiator prove its
key): until a frame decrypts under the shared secret and is neither stale nor a replay,
non-SMSG frames are not routed (the first small one is held for the raw hook, since a
peer's UEPS setup frame may arrive before its first message) and everything else counts
against this connection alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from p2p.identity import LimitedLogger, safe_text
from p2p.transport.config import TransportConfig
from p2p.transport.errors import (
    RateLimitExceededError,
    TooManyUndecryptableError,
    TransportError,
)
from p2p.transport.events import MessageReceived, RawFrameReceived
from p2p.transport.frames import FrameCodec
from p2p.transport.limits import DropCounters, DropReason, ReplayGuard, TokenBucket
from p2p.transport.smsg import MAGIC as SMSG_MAGIC

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.messages import Message

__all__ = [
    "MAX_HELD_RAW_FRAME",
    "SMSG_MAGIC",
    "Delivery",
    "RateLimitExceededError",
    "RawFrame",
    "Session",
    "TooManyUndecryptableError",
]

log = logging.getLogger(__name__)
#: per-frame lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)

MAX_HELD_RAW_FRAME = 512
"""Largest non-SMSG frame an unproven session keeps for after the proof (a UEPS setup
frame is about 70 bytes); one frame at most."""


Delivery = MessageReceived
"""A decrypted, fresh, first-seen message (``message``, wire ``size``)."""
RawFrame = RawFrameReceived
"""A binary frame that is not an SMSG container (e.g. UEPS), for the raw-frame hook."""


class Session:
    """Everything one authenticated connection remembers between frames."""

    __slots__ = (
        "_bucket",
        "_codec",
        "_config",
        "_excess",
        "_excess_since",
        "_peer_key",
        "_replay",
        "_ts_window",
        "bytes_in",
        "bytes_out",
        "drops",
        "frames_in",
        "held_raw",
        "last_activity",
        "last_drop",
        "messages_in",
        "messages_out",
        "own_id",
        "peer",
        "proven",
        "raw_frames_enabled",
        "undecryptable_in_a_row",
    )

    def __init__(
        self,
        peer: NodeIdentity,
        secret: bytes,
        config: TransportConfig,
        replay: ReplayGuard,
        now: float,
        *,
        drops_parent: DropCounters | None = None,
        own_id: str = "",
        proven: bool = True,
    ) -> None:
        self.peer = peer
        self.own_id = own_id
        self._codec = FrameCodec(
            secret, max_frame=config.max_message_size, max_message=config.max_message_size
        )
        self._config = config
        self._ts_window = config.ts_window
        self._replay = replay
        self._peer_key = peer.public_key
        #: whether a frame has shown that the peer holds its key (outbound: the handshake)
        self.proven = proven
        #: the one non-SMSG frame an unproven session keeps for the raw hook (see module doc)
        self.held_raw: bytes | None = None
        #: why :meth:`receive` last returned ``None`` (``None``: the frame was held)
        self.last_drop: DropReason | None = None
        self._excess = 0
        self._excess_since = now
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

    def receive(
        self, data: bytes | str, now: float, wall_now: float
    ) -> MessageReceived | RawFrameReceived | None:
        """Judge one inbound data frame; ``None`` means dropped (counted, reason in
        :attr:`last_drop`) or, unproven, held for the raw hook (``last_drop`` is ``None``).

        ``now`` is the monotonic clock (activity, rate limit), ``wall_now`` Unix seconds
        (the ``ts`` window and the replay tables, which keep an id until its ``ts`` leaves
        the window). Raises :class:`TooManyUndecryptableError` once
        the configured run of bad frames is reached, :class:`RateLimitExceededError` once
        more than ``max_rate_limited`` frames were rate-limited within
        ``rate_limited_window`` seconds.
        """
        if not self._admit(data, now):
            return None
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        if self.raw_frames_enabled and not raw.startswith(SMSG_MAGIC):
            if self.proven:
                self.undecryptable_in_a_row = 0
                return RawFrameReceived(raw)
            if self.held_raw is None and len(raw) <= MAX_HELD_RAW_FRAME:
                self.held_raw = raw  # kept, yet it proves nothing: it counts like the rest
                self.last_drop = None
            else:
                self._drop(DropReason.UNPROVEN)
            self._proves_nothing(None)
            return None
        try:
            message = self._codec.open(raw)
        except TransportError as exc:
            self._drop(DropReason.DECRYPT)
            _flood.debug(
                "undecryptable frame",
                "undecryptable frame from %s: %s",
                self.peer.id,
                type(exc).__name__,
            )
            self._proves_nothing(exc)
            return None
        if self.proven:
            self.undecryptable_in_a_row = 0
        window = self._ts_window
        stamp = wall_now  # no ts check: ids are remembered from arrival for ``dedup_ttl``
        if window is not None:
            ns = message.ts_unix_ns()  # envelope.ts_seconds, inlined: this is the hot path
            if ns is not None:
                stamp = ns / 1e9
                skew = wall_now - stamp  # abs(skew) > window, without the call
            if ns is None or skew > window or skew < -window:
                self._stale(message)
                return None
        # One key serves both directions, so a frame we sent can be reflected back to us:
        # a message must come from this connection's peer and, when addressed, to us
        # (Go always fills both). TRANSPORT.md §10 #5.
        if message.from_ != self.peer.id or (
            self.own_id and message.to and message.to != self.own_id
        ):
            self._drop(DropReason.MISADDRESSED)
            _flood.info(
                "misaddressed message",
                "misaddressed message from %s (from=%s to=%s): dropping",
                self.peer.id,
                safe_text(message.from_),
                safe_text(message.to),
            )
            self._proves_nothing(None)
            return None
        if not self._replay.check_and_mark(self._peer_key, message.id, stamp, wall_now):
            self._drop(DropReason.DEDUP)
            self._proves_nothing(None)
            return None
        # decrypted, fresh, ours and never seen: only the key holder can make this frame
        self.undecryptable_in_a_row = 0
        self.proven = True
        self.messages_in += 1
        return MessageReceived(message, len(data))

    def _admit(self, data: bytes | str, now: float) -> bool:
        """Count one inbound frame and charge it to the rate limit (1.0 and 1.1 alike):
        ``False`` means dropped as rate-limited (and may raise, see :meth:`receive`)."""
        self.frames_in += 1
        self.bytes_in += len(data)
        self.last_activity = now
        if self._bucket.allow(now):
            return True
        self._drop(DropReason.RATE)
        _flood.warning("rate-limited frame", "rate limit: dropping frame from %s", self.peer.id)
        self._count_excess(now)
        return False

    def _stale(self, message: Message) -> None:
        """Drop a message whose ``ts`` is missing or outside the window."""
        self._drop(DropReason.STALE_TS)
        _flood.info(
            "stale ts", "stale ts from %s: dropping %s", self.peer.id, safe_text(message.id)
        )
        self._proves_nothing(None)

    def _drop(self, reason: DropReason) -> None:
        self.last_drop = reason
        self.drops.add(reason)

    def _proves_nothing(self, cause: Exception | None) -> None:
        """Count one frame that did not decrypt (or, while unproven, did not prove the key);
        raise once the run is too long. A proven session only counts undecryptable ones."""
        if self.proven and cause is None:
            return
        self.undecryptable_in_a_row += 1
        if self.undecryptable_in_a_row >= self._config.max_undecryptable_in_a_row:
            raise TooManyUndecryptableError(self.peer.id, self.undecryptable_in_a_row) from cause

    def _count_excess(self, now: float) -> None:
        cfg = self._config
        if now - self._excess_since > cfg.rate_limited_window:
            self._excess_since = now
            self._excess = 0
        self._excess += 1
        if self._excess > cfg.max_rate_limited:
            raise RateLimitExceededError(self.peer.id, self._excess, cfg.rate_limited_window)

    def seal(self, message: Message) -> bytes:
        """Encrypt ``message`` into one SMSG container for this peer."""
        frame = self._codec.seal(message)
        self.messages_out += 1
        self.bytes_out += len(frame)
        return frame

    def seal_unsent(self, message: Message) -> bytes:
        """Encrypt without counting (for a frame that may never be written)."""
        return self._codec.seal(message)
