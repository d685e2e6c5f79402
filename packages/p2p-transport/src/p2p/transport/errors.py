"""The p2p.transport exception hierarchy: one base, one class per thing that can go wrong.

Messages say what was wrong with the input (sizes, field names), never key material.

The hierarchy::

    TransportError
    ├── AdmissionError
    ├── ConfigError  (also ValueError)
    ├── ConnectError
    ├── ConnectionClosedError
    │   └── OutboundOverflowError
    ├── HandshakeError
    │   ├── ChallengeError
    │   ├── HandshakeMalformedError
    │   ├── HandshakeRejectedError
    │   ├── DowngradeError
    │   ├── IdentityBindingError
    │   ├── NoiseError
    │   └── PinnedKeyMismatchError
    ├── MessageError  (also ValueError)
    │   └── ResponseError
    ├── NotConnectedError
    ├── NotRunningError
    ├── PeerRefusedError  (also p2p.ueps.UEPSError)
    ├── ProtocolError
    ├── RateLimitExceededError
    ├── SendTimeoutError
    ├── SigilError
    ├── SmsgError
    │   ├── SmsgDecryptError
    │   ├── SmsgFormatError
    │   ├── SmsgHeaderError
    │   └── SmsgValueError  (also ValueError)
    ├── TooManyUndecryptableError
    ├── TrixError
    ├── UepsNotEnabledError  (also p2p.ueps.UEPSError)
    ├── UepsNotNegotiatedError  (also p2p.ueps.UEPSError)
    └── UepsSessionError  (also p2p.ueps.UEPSError)
"""

from __future__ import annotations

from p2p.ueps import UEPSError

__all__ = [
    "AdmissionError",
    "ChallengeError",
    "ConfigError",
    "ConnectError",
    "ConnectionClosedError",
    "DowngradeError",
    "HandshakeError",
    "HandshakeMalformedError",
    "HandshakeRejectedError",
    "IdentityBindingError",
    "MessageError",
    "NoiseError",
    "NotConnectedError",
    "NotRunningError",
    "OutboundOverflowError",
    "PeerRefusedError",
    "PinnedKeyMismatchError",
    "ProtocolError",
    "RateLimitExceededError",
    "ResponseError",
    "SendTimeoutError",
    "SigilError",
    "SmsgDecryptError",
    "SmsgError",
    "SmsgFormatError",
    "SmsgHeaderError",
    "SmsgValueError",
    "TooManyUndecryptableError",
    "TransportError",
    "TrixError",
    "UepsNotEnabledError",
    "UepsNotNegotiatedError",
    "UepsSessionError",
]


class TransportError(Exception):
    """Base class for every error raised by ``p2p.transport``."""


class TrixError(TransportError):
    """A TRIX container is malformed: magic, version, header length or header JSON."""


class SigilError(TransportError):
    """The ChaChaPoly sigil could not seal or open: bad key/nonce size, short input,
    or authentication failure (wrong key or tampered bytes)."""


class SmsgError(TransportError):
    """Base class for SMSG frame errors; a receiver drops the frame and keeps the link."""


class SmsgHeaderError(SmsgError):
    """The container around the ciphertext is wrong: not SMSG, wrong version, header too
    long, header not a JSON object, frame too large, or a checksum mismatch."""


class SmsgDecryptError(SmsgError):
    """Authentication failed (wrong password or tampered frame) or the payload is shorter
    than nonce + tag."""


class SmsgFormatError(SmsgError):
    """The decrypted plaintext is not an SMSG message: bad JSON, bad v2 framing, unknown or
    oversized compression, missing body."""


class SmsgValueError(SmsgError, ValueError):
    """An argument is unusable: empty body or password, wrong nonce size, oversized body."""


class MessageError(TransportError, ValueError):
    """A message envelope or payload could not be decoded or encoded the way Go does."""


class ProtocolError(TransportError):
    """The remote peer answered with an ``error`` message (Go ``ProtocolError``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"remote error ({code}): {message}")
        self.code = code
        self.message = message


class ResponseError(MessageError):
    """A response is not the one expected (nil, or of the wrong type); Go's
    ``ValidateResponse`` errors other than a remote ``error`` message."""


class NotRunningError(TransportError):
    """The transport is not started (or already stopped)."""


class NotConnectedError(TransportError):
    """No connection to ``peer_id``."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"peer {peer_id} not connected")
        self.peer_id = peer_id


class ConnectError(TransportError):
    """Dialing ``address`` failed; ``reason`` says why: the HTTP status and body of a
    refused upgrade (``HTTP 503 Too many connections``), the errno of a socket error
    (``EMFILE (Too many open files)``), a timeout, a handshake refusal, or our own
    ``outbound budget full``. The original exception is ``__cause__``."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"connect to {address} failed: {reason}")
        self.address = address
        self.reason = reason


class ConnectionClosedError(TransportError):
    """The connection to ``peer_id`` is closed; nothing was sent."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"connection to peer {peer_id} is closed")
        self.peer_id = peer_id


class OutboundOverflowError(ConnectionClosedError):
    """Bytes waiting to be sent to ``peer_id`` passed ``limit``: the connection was closed."""

    def __init__(self, peer_id: str, limit: int) -> None:
        TransportError.__init__(
            self, f"connection to peer {peer_id} closed: over {limit} bytes waiting to be sent"
        )
        self.peer_id = peer_id
        self.limit = limit


class SendTimeoutError(TransportError):
    """A write to ``peer_id`` did not finish within ``timeout`` seconds (connection dropped)."""

    def __init__(self, peer_id: str, timeout: float) -> None:
        super().__init__(f"send to peer {peer_id} timed out after {timeout:g} s")
        self.peer_id = peer_id
        self.timeout = timeout


class HandshakeError(TransportError):
    """The handshake failed; ``reason`` is safe to log (no key material)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandshakeMalformedError(HandshakeError):
    """The peer's handshake message is not JSON, not the expected type, or lacks fields."""


class HandshakeRejectedError(HandshakeError):
    """The responder answered ``accepted: false`` with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"handshake rejected: {reason}")
        self.remote_reason = reason


class IdentityBindingError(HandshakeError):
    """The peer's identity has an ``id`` not derived from its ``publicKey`` (or a bad key)."""


class PinnedKeyMismatchError(HandshakeError):
    """The ack carries a public key other than the one we expected for this peer."""


class NoiseError(HandshakeError):
    """A protocol 1.1 (Noise XX) step failed: bad length, bad tag, bad key, out of turn."""


class DowngradeError(HandshakeError):
    """Protocol 1.0 refused: the peer is pinned to 1.1, ``require_1_1`` is set, or the
    1.1 offer was stripped on the way."""


class ChallengeError(HandshakeError):
    """The challenge response is missing or wrong, or the challenge is not 32 bytes."""


class AdmissionError(TransportError):
    """An event that is not allowed in the connection's state (a bug in the caller)."""


class TooManyUndecryptableError(TransportError):
    """The peer sent ``count`` undecryptable frames in a row: it should be disconnected."""

    def __init__(self, peer_id: str, count: int) -> None:
        super().__init__(f"peer {peer_id} sent {count} undecryptable frames in a row")
        self.peer_id = peer_id
        self.count = count


class RateLimitExceededError(TransportError):
    """The peer had ``count`` frames rate-limited within ``window`` seconds: disconnect it."""

    def __init__(self, peer_id: str, count: int, window: float) -> None:
        super().__init__(
            f"peer {peer_id} exceeded its rate limit {count} times within {window:g} s"
        )
        self.peer_id = peer_id
        self.count = count
        self.window = window


class UepsNotNegotiatedError(TransportError, UEPSError):
    """``peer_id`` did not advertise ``ueps/1`` (e.g. a Go node): UEPS is never sent to it."""

    def __init__(self, peer_id: str) -> None:
        from p2p.transport.ueps_channel import FEATURE_UEPS  # noqa: PLC0415 (imports errors)

        super().__init__(f"peer {peer_id} does not speak {FEATURE_UEPS}")
        self.peer_id = peer_id


class UepsSessionError(TransportError, UEPSError):
    """The session cannot carry the frame (not set up yet, closed, or counter exhausted)."""


class UepsNotEnabledError(TransportError, UEPSError):
    """The transport's config does not advertise ``ueps/1``."""


class PeerRefusedError(TransportError, UEPSError):
    """``peer_id`` tripped the threat breaker and is refused for ``seconds`` more."""

    def __init__(self, peer_id: str, seconds: float) -> None:
        super().__init__(f"peer {peer_id} refused for {seconds:.0f} s more (UEPS threat)")
        self.peer_id = peer_id
        self.seconds = seconds


class ConfigError(TransportError, ValueError):
    """A ``TransportConfig`` field (or another setting, named by ``owner``) is out of range."""

    def __init__(self, field_name: str, problem: str, *, owner: str = "TransportConfig") -> None:
        super().__init__(f"{owner}.{field_name}: {problem}")
        self.field_name = field_name
        self.problem = problem
