"""What a connection's protocol object reports: the events of
:class:`~p2p.transport.protocol.PeerProtocol` (and the verdicts of
:class:`~p2p.transport.session.Session`, which are the same objects).

Plain slotted classes, not frozen dataclasses: one is built for every message on the hot
path, and a frozen dataclass costs several times as much to build. Treat them as
read-only. The I/O shell tells them apart with ``type(event) is ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from p2p.transport.limits import DropReason
    from p2p.transport.messages import Message

__all__ = [
    "PROVEN",
    "CloseRequested",
    "Dropped",
    "Event",
    "MessageReceived",
    "PingDue",
    "Proven",
    "RawFrameReceived",
    "ReplyDue",
    "WriteStalled",
]


@dataclass(slots=True)
class MessageReceived:
    """A decrypted, fresh, first-seen message from the peer, for the handlers.

    ``size`` is its wire size (what a handler working on it pins in memory)."""

    message: Message
    size: int


@dataclass(slots=True)
class RawFrameReceived:
    """A binary frame that is not an SMSG container (e.g. UEPS), for the raw-frame route.

    ``held`` marks the frame kept while the connection was unproven, released by the
    proof: deliver it only if the connection is still open."""

    data: bytes
    held: bool = False


@dataclass(slots=True)
class Dropped:
    """A frame that reached nobody (already counted in the session's drop counters)."""

    reason: DropReason


@dataclass(slots=True)
class Proven:
    """The peer has just shown it holds its key: the connection leaves probation."""


PROVEN: Final = Proven()


@dataclass(slots=True)
class ReplyDue:
    """Send ``message`` back to the peer now (the ``pong`` to its ``ping``)."""

    message: Message


@dataclass(slots=True)
class CloseRequested:
    """The connection must end.

    ``code`` set: send an encrypted ``disconnect`` with ``reason`` and that code first;
    ``None``: close without one. ``cause`` names the transport's ``closed_for`` counter
    (``""``: none), ``detail`` says why for the log."""

    reason: str
    cause: str
    detail: str
    code: int | None = None


@dataclass(slots=True)
class WriteStalled:
    """Bytes have waited ``send_timeout`` without the socket taking any: drop the socket."""

    waited: float


@dataclass(slots=True)
class PingDue:
    """A keepalive ping is due (``last_sent``: when the previous one went, for ordering)."""

    last_sent: float


Event = (
    MessageReceived
    | RawFrameReceived
    | Dropped
    | Proven
    | ReplyDue
    | CloseRequested
    | WriteStalled
    | PingDue
)
