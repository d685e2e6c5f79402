"""Message <-> encrypted frame in one call: what the transport does for every data message.

A link's frames are SMSG containers whose body is the Message JSON, under the password
``base64(shared_secret)``. :class:`FrameCodec` keeps that password's key for one link so the
hot path does no per-frame base64 or key derivation (SMSG's per-password key cache holds 256:
fewer than a controller's links).

:meth:`FrameCodec.open` of a frame in the shape Go writes (fixed SMSG header, the body
and the envelope as Go marshals them) is one call into the ``p2p.ueps`` extension when it
is live: AEAD, keystream, the SMSG body and the envelope, with no JSON pass in Python.
Any other frame, or no extension, takes ``smsg.decrypt`` + ``Message.from_json``, which
give the same answers (tests/test_fast_paths.py holds them equal).
"""

from __future__ import annotations

from p2p.transport import sigil, smsg
from p2p.transport.errors import SmsgDecryptError
from p2p.transport.messages import MAX_MESSAGE_SIZE, Message, _from_fields

__all__ = ["FrameCodec", "open_message", "seal_message"]

_GO_PREFIX = smsg._PREFIX
_HDR_END = smsg._HDR_END
_FUSED_MIN = _HDR_END + sigil.OVERHEAD
_FUSED_END = _HDR_END + sigil.FUSED_LARGE + sigil.OVERHEAD  # where sigil stops fusing


class FrameCodec:
    """Seals and opens the data frames of one link (one shared secret).

    ``open`` raises :class:`~p2p.transport.errors.SmsgError` for a frame that does not
    decrypt and :class:`~p2p.transport.errors.MessageError` for a body that is not a
    message; both are :class:`~p2p.transport.errors.TransportError` and mean: drop the
    frame, keep the connection (what Go does).
    """

    __slots__ = ("_key", "max_frame", "max_message")

    def __init__(
        self,
        secret: bytes,
        *,
        max_frame: int = smsg.DEFAULT_MAX_FRAME,
        max_message: int = MAX_MESSAGE_SIZE,
    ) -> None:
        if len(secret) == 0:
            raise ValueError("shared secret must not be empty")
        self._key = sigil.derive_key(smsg.password_for_secret(secret))
        self.max_frame = max_frame
        self.max_message = max_message

    def seal(
        self, msg: Message, *, nonce: bytes | None = None, timestamp: int | None = None
    ) -> bytes:
        """One SMSG frame carrying ``msg`` (fresh nonce, timestamp now unless given)."""
        body = msg.to_json_text()
        return smsg.seal_with_key(
            body, self._key, nonce=nonce, timestamp=timestamp, max_frame=self.max_frame
        )

    def open(self, data: bytes) -> Message:
        """The message inside one SMSG frame."""
        fused = sigil._fused_open_message
        if (
            fused is not None
            and data.__class__ is bytes
            and _FUSED_MIN <= len(data) < _FUSED_END
            and len(data) <= self.max_frame
            and data.startswith(_GO_PREFIX)
        ):
            try:
                got = fused(self._key, data, _HDR_END, self.max_message)
            except sigil._FusedAuthError:
                raise SmsgDecryptError("decryption failed (wrong password?)") from None
            if got.__class__ is tuple:
                return _from_fields(got)  # type: ignore[arg-type]
            body = smsg._parse_plaintext(got).body  # type: ignore[arg-type]
            return Message.from_json(body, max_size=self.max_message)
        m = smsg.open_with_key(
            data, self._key, max_frame=self.max_frame, max_plaintext=self.max_message
        )
        return Message.from_json(m.body, max_size=self.max_message)

    def __repr__(self) -> str:  # never show the password
        return f"FrameCodec(max_frame={self.max_frame}, max_message={self.max_message})"


def seal_message(
    msg: Message, secret: bytes, *, nonce: bytes | None = None, timestamp: int | None = None
) -> bytes:
    """``msg`` encrypted for the link whose shared secret is ``secret``."""
    return FrameCodec(secret).seal(msg, nonce=nonce, timestamp=timestamp)


def open_message(data: bytes, secret: bytes) -> Message:
    """The message in a frame from the link whose shared secret is ``secret``."""
    return FrameCodec(secret).open(data)
