"""Intent routing with the threat circuit breaker (Go ``node/dispatcher.go``).

Order of checks, as in the reference: a packet whose threat score is strictly above
``THREAT_SCORE_THRESHOLD`` is refused before its intent is looked up; then the one handler
registered for the intent (re-registering replaces it) gets the packet.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from p2p.ueps.errors import ThreatScoreExceeded, UEPSError, UnknownIntent

log = logging.getLogger(__name__)

THREAT_SCORE_THRESHOLD = 50_000
INTENT_HANDSHAKE = 0x01
INTENT_COMPUTE = 0x20
INTENT_REHAB = 0x30
INTENT_CUSTOM = 0xFF


class _HeaderLike(Protocol):
    @property
    def intent_id(self) -> int: ...
    @property
    def threat_score(self) -> int: ...


class PacketLike(Protocol):
    """What the dispatcher needs of a packet: a header with intent and threat score."""

    @property
    def header(self) -> _HeaderLike: ...


Handler = Callable[[Any], Any]
"""A handler takes the packet; it may be a plain function or a coroutine function."""


class Dispatcher:
    """Routes verified packets to one handler per intent, refusing high-threat packets."""

    def __init__(self, threshold: int = THREAT_SCORE_THRESHOLD, *, log_drops: bool = True) -> None:
        """``log_drops=False``: refused packets raise without a WARNING each (for callers
        that count and rate-limit their own log lines, such as a network service)."""
        if not 0 <= threshold <= 0xFFFF:
            raise ValueError(f"threshold must be 0..65535, got {threshold}")
        self.threshold = threshold
        self.log_drops = log_drops
        self._handlers: dict[int, Handler] = {}
        self._lock = threading.Lock()

    def register(self, intent_id: int, handler: Handler) -> None:
        """Route ``intent_id`` (0..255) to ``handler``, replacing any earlier handler."""
        if not 0 <= intent_id <= 0xFF:
            raise ValueError(f"intent_id must be 0..255, got {intent_id}")
        with self._lock:
            self._handlers[intent_id] = handler

    def unregister(self, intent_id: int) -> None:
        """Remove the handler for ``intent_id`` if there is one."""
        with self._lock:
            self._handlers.pop(intent_id, None)

    def handlers(self) -> dict[int, Handler]:
        """A snapshot of the intent → handler table."""
        with self._lock:
            return dict(self._handlers)

    def route(self, packet: PacketLike) -> Handler:
        """Apply the breaker and the intent lookup; return the handler to call."""
        if packet is None:
            raise UEPSError("nil packet")
        hdr = packet.header
        if hdr.threat_score > self.threshold:
            if self.log_drops:
                log.warning(
                    "packet rejected: threat score %d exceeds safety threshold (%d), intent 0x%02x",
                    hdr.threat_score,
                    self.threshold,
                    hdr.intent_id,
                )
            raise ThreatScoreExceeded(
                f"packet rejected: threat score exceeds safety threshold ({self.threshold})"
            )
        handler = self._handlers.get(hdr.intent_id)
        if handler is None:
            if self.log_drops:
                log.warning("packet dropped: unknown intent 0x%02x", hdr.intent_id)
            raise UnknownIntent(f"packet dropped: unknown intent 0x{hdr.intent_id:02x}")
        return handler

    def dispatch(self, packet: PacketLike) -> Any:
        """Route and call the handler; returns its result (a coroutine for async handlers,
        which the caller awaits). Breaker and lookup errors are raised synchronously."""
        return self.route(packet)(packet)

    async def dispatch_async(self, packet: PacketLike) -> Any:
        """Route, call, and await the handler's result if it is awaitable."""
        result = self.route(packet)(packet)
        if inspect.isawaitable(result):
            awaited: Awaitable[Any] = result
            return await awaited
        return result
