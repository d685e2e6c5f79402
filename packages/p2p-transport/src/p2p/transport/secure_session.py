"""The session of a protocol 1.1 connection, sans-I/O: the 1.0 envelope inside Noise ciphers.

After the Noise XX handshake (``handshake.py``) each side holds two CipherStates, one per
direction. A data frame is::

    b"P2PN" || ChaChaPoly(k_direction, n, ad=b"P2PN", message JSON)

with ``n`` the direction's counter (Noise §5.1). WebSocket delivers frames in order and
exactly once, so both ends agree on ``n`` without sending it, and:

- a **replayed** frame (sent again later) meets a later nonce and fails;
- a **reordered** frame meets the wrong nonce and fails (and consumes none: the genuine
  stream still opens);
- a **reflected** frame (ours, sent back) meets the other direction's key and fails;
- a frame from **another session** meets other keys (fresh ephemerals per connection).

So the replay tables and the ``ts`` window of 1.0 are not needed here (they still guard 1.0
peers); the ``from``/``to`` check stays as a cheap belt. Each direction replaces its key
(Noise REKEY, §11.3) after ``TransportConfig.rekey_after_messages`` frames: both sides count
the same frames, so nothing on the wire announces it. A frame the rate limit drops is
still opened (then dropped): the peer sealed it with the next nonce, and skipping it
would make every later frame fail to open.

Frames must be written in the order :meth:`SecureSession.seal` made them (the connection's
send path seals and writes with no await between). :meth:`seal_unsent` advances the nonce
too: use it only for a last frame before closing (the ``disconnect``).

Binary frames without the ``P2PN`` prefix are raw frames (UEPS) when the raw hook is set,
as for 1.0; UEPS frames keep their own session-bound HMAC, keyed for 1.1 connections with
:attr:`SecureSession.ueps_key` (a third key of the Noise key schedule) instead of the 1.0
static secret (SECURITY.md). Envelopes may exceed Noise's 65535-byte message limit: WebSocket frames
carry their own length and ChaChaPoly has no such bound.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from p2p.identity import LimitedLogger, safe_text
from p2p.transport.errors import MessageError, NoiseError
from p2p.transport.events import MessageReceived, RawFrameReceived
from p2p.transport.limits import DropCounters, DropReason, ReplayGuard
from p2p.transport.messages import Message
from p2p.transport.session import Session

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.config import TransportConfig
    from p2p.transport.noise import CipherState

__all__ = ["FRAME_MAGIC", "SecureSession"]

log = logging.getLogger(__name__)
_flood = LimitedLogger(log)

FRAME_MAGIC = b"P2PN"
"""First bytes of every protocol 1.1 data frame (also the AEAD's associated data)."""


class SecureSession(Session):
    """A :class:`~p2p.transport.session.Session` whose frames are Noise transport messages.

    Same interface (``receive``, ``seal``, ``seal_unsent``, counters, ``drops``, ``proven``);
    always proven: the initiator proved its key in the handshake's third message.
    """

    __slots__ = (
        "_receive",
        "_rekey_after",
        "_send",
        "frames_opened",
        "frames_sealed",
        "ueps_key",
    )

    def __init__(
        self,
        peer: NodeIdentity,
        secret: bytes,
        config: TransportConfig,
        replay: ReplayGuard,
        now: float,
        *,
        send: CipherState,
        receive: CipherState,
        ueps_key: bytes = b"",
        drops_parent: DropCounters | None = None,
        own_id: str = "",
    ) -> None:
        super().__init__(
            peer, secret, config, replay, now, drops_parent=drops_parent, own_id=own_id
        )
        if not (send.has_key() and receive.has_key()):
            raise NoiseError("a 1.1 session needs keyed cipher states")
        self._send = send
        self._receive = receive
        self._rekey_after = config.rekey_after_messages
        #: the UEPS channel's HMAC key on this connection (from the Noise key schedule)
        self.ueps_key = ueps_key
        #: AEAD frames sealed / opened so far (the rekey schedule counts these)
        self.frames_sealed = 0
        self.frames_opened = 0

    @property
    def protocol(self) -> str:
        return "1.1"

    def receive(
        self, data: bytes | str, now: float, wall_now: float
    ) -> MessageReceived | RawFrameReceived | None:
        """Judge one inbound frame; ``None`` means dropped (and counted). Raises
        :class:`~p2p.transport.errors.TooManyUndecryptableError` /
        :class:`~p2p.transport.errors.RateLimitExceededError` as 1.0 does."""
        if not self._admit(data, now):
            # Dropped, yet the peer sealed it with the next nonce: open it anyway so the
            # counters stay in step (else every later frame would fail). What a flood costs
            # here is bounded: ``max_rate_limited`` such frames per window, then the close.
            if not isinstance(data, str) and data.startswith(FRAME_MAGIC):
                with contextlib.suppress(NoiseError):  # not the next one: consumes nothing
                    self._open(data)
            return None
        if isinstance(data, str):
            self._drop(DropReason.DECRYPT)  # a 1.1 peer sends no text after the handshake
            self._proves_nothing(NoiseError("text frame on a 1.1 connection"))
            return None
        if not data.startswith(FRAME_MAGIC):
            if self.raw_frames_enabled:
                return RawFrameReceived(bytes(data))
            self._drop(DropReason.DECRYPT)
            self._proves_nothing(NoiseError("frame without the 1.1 prefix"))
            return None
        try:
            body = self._open(data)
        except NoiseError as exc:
            # replayed, reordered, reflected, forged or from another session: the nonce or
            # the key does not match; the nonce is not consumed
            self._drop(DropReason.DECRYPT)
            _flood.debug("undecryptable 1.1 frame", "undecryptable 1.1 frame from %s", self.peer.id)
            self._proves_nothing(exc)
            return None
        self.undecryptable_in_a_row = 0
        try:
            message = Message.from_json(body, max_size=self._config.max_message_size)
        except (MessageError, ValueError) as exc:
            self._drop(DropReason.DECRYPT)
            _flood.info("bad 1.1 body", "1.1 frame from %s is not a message: %r", self.peer.id, exc)
            return None
        if message.from_ != self.peer.id or (
            self.own_id and message.to and message.to != self.own_id
        ):
            self._drop(DropReason.MISADDRESSED)
            _flood.info(
                "misaddressed message",
                "misaddressed 1.1 message from %s (from=%s to=%s): dropping",
                self.peer.id,
                safe_text(message.from_),
                safe_text(message.to),
            )
            return None
        self.messages_in += 1
        return MessageReceived(message, len(data))

    def _open(self, data: bytes) -> bytes:
        """Decrypt one ``P2PN`` frame with the next nonce and advance the rekey schedule;
        raises :class:`NoiseError` (and consumes nothing) if it does not open."""
        body = self._receive.decrypt_with_ad(FRAME_MAGIC, bytes(data[len(FRAME_MAGIC) :]))
        self.frames_opened += 1
        if self.frames_opened % self._rekey_after == 0:
            self._receive.rekey()
        return body

    def _seal(self, message: Message) -> bytes:
        body = message.to_json_text().encode("utf-8")
        frame = FRAME_MAGIC + self._send.encrypt_with_ad(FRAME_MAGIC, body)
        self.frames_sealed += 1
        if self.frames_sealed % self._rekey_after == 0:
            self._send.rekey()
        return frame

    def seal(self, message: Message) -> bytes:
        """Encrypt ``message`` as the next frame of this direction (write it next)."""
        frame = self._seal(message)
        self.messages_out += 1
        self.bytes_out += len(frame)
        return frame

    def seal_unsent(self, message: Message) -> bytes:
        """Encrypt without counting traffic; it still takes the next nonce (see module doc)."""
        return self._seal(message)
