"""The handshake as two sans-I/O state machines (TRANSPORT.md §3).

Rules of this module:

1. No sockets, no clocks, no randomness you cannot inject: the initiator takes its
   challenge as an argument (default: fresh CSPRNG bytes), messages carry whatever ``ts``
   the envelope layer stamps, and secrets come from a callable (usually
   ``NodeManager.derive_shared_secret``).
2. Input is the raw TEXT frame (``str``/``bytes``) or a parsed ``Message``; output is a
   ``Message`` to send (or nothing) plus a verdict. The caller owns the connection.
3. The wire shape is the Go reference's: ``handshake`` {identity, challenge, version} and
   ``handshake_ack`` {identity, challengeResponse, accepted, reason}; an optional extra
   ``features`` list (ignored by Go) is only sent when configured.
4. Fixes that need no wire change (TRANSPORT.md §10): identities whose ``id`` is not derived
   from ``publicKey`` are refused on both sides; an initiator that knows the peer's key
   refuses an ack carrying another; challenges must be exactly 32 bytes.

Responder verdicts, in the reference's order: not JSON / not a ``handshake`` / bad payload
→ close without reply; unsupported version → reject ack; undecodable key → close without
reply; id not bound to key → reject ack; not allowed by the gate → reject ack
(``"peer not authorized"``); challenge not 32 bytes → reject ack; else accept.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2p.identity import (
    CHALLENGE_SIZE,
    IdentityError,
    NodeIdentity,
    check_identity_binding,
    generate_challenge,
    node_id_from_public_key,
    sign_challenge,
    verify_challenge,
)
from p2p.transport import envelope
from p2p.transport.errors import (
    ChallengeError,
    HandshakeError,
    HandshakeMalformedError,
    HandshakeRejectedError,
    IdentityBindingError,
    PinnedKeyMismatchError,
)
from p2p.transport.messages import (
    PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
    HandshakeAckPayload,
    HandshakePayload,
    MessageError,
    Payload,
)

if TYPE_CHECKING:
    from p2p.transport.messages import Message

__all__ = [
    "CHALLENGE_SIZE",
    "PROTOCOL_VERSION",
    "REASON_NOT_AUTHORIZED",
    "REASON_SELF",
    "SUPPORTED_VERSIONS",
    "ChallengeError",
    "HandshakeError",
    "HandshakeInitiator",
    "HandshakeMalformedError",
    "HandshakeRejectedError",
    "HandshakeResponder",
    "HandshakeResult",
    "IdentityBindingError",
    "PinnedKeyMismatchError",
    "ResponderDecision",
    "State",
    "version_reject_reason",
]

SUPPORTED_VERSIONS = SUPPORTED_PROTOCOL_VERSIONS
REASON_NOT_AUTHORIZED = "peer not authorized"
REASON_ID_MISMATCH = "identity id does not match public key"
REASON_BAD_CHALLENGE = f"challenge must be {CHALLENGE_SIZE} bytes"
REASON_SELF = "identity is this node's own"
MAX_FEATURES = 32
MAX_FEATURE_LEN = 64

SecretDeriver = Callable[[str], bytes]
"""``derive(peer_public_key_b64) -> 32-byte shared secret`` (raises on a bad key)."""
AllowPolicy = Callable[[str, str], bool]
"""``allowed(peer_id, public_key_b64) -> bool`` (the gate's ``is_peer_allowed``)."""


def version_reject_reason(version: str, supported: Sequence[str] = SUPPORTED_VERSIONS) -> str:
    """The reference's text: ``incompatible protocol version 2.0, supported: [1.0]``."""
    return f"incompatible protocol version {version}, supported: [{' '.join(supported)}]"


class State(enum.Enum):
    """Where a handshake machine is; transitions only go down this list."""

    IDLE = "idle"
    AWAITING = "awaiting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """An authenticated peer: who it is, the shared secret, what it advertises."""

    peer: NodeIdentity
    secret: bytes
    version: str = PROTOCOL_VERSION
    features: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never show the secret
        return f"HandshakeResult(peer={self.peer.id!r}, features={self.features!r})"


@dataclass(frozen=True, slots=True)
class ResponderDecision:
    """What the responder does with a handshake: send ``reply`` (if any), then keep the
    connection iff ``result`` is set; otherwise close it (``error`` says why)."""

    reply: Message | None
    result: HandshakeResult | None
    error: HandshakeError | None

    @property
    def accepted(self) -> bool:
        return self.result is not None


def _features(payload_text: str | None) -> tuple[str, ...]:
    """The optional ``features`` list (a later-issue extension Go ignores), bounded."""
    if not payload_text or '"features"' not in payload_text:
        return ()
    try:
        raw = json.loads(payload_text).get("features")
    except (ValueError, AttributeError, RecursionError):
        return ()
    if not isinstance(raw, list):
        return ()
    return tuple(f for f in raw[:MAX_FEATURES] if isinstance(f, str) and len(f) <= MAX_FEATURE_LEN)


def _with_features(payload: Payload, features: tuple[str, ...]) -> str:
    """The payload's Go JSON, plus ``"features":[...]`` at the end when there are any."""
    text = payload.to_json().decode("utf-8")
    if not features:
        return text
    return f'{text[:-1]},"features":{json.dumps(list(features), separators=(",", ":"))}}}'


def _message(type_: str, from_: str, to: str, payload_text: str) -> Message:
    message = envelope.new_message(type_, from_, to, None)
    message.payload = payload_text
    return message


def _bound(identity: NodeIdentity) -> None:
    try:
        check_identity_binding(identity)
    except IdentityError as exc:
        raise IdentityBindingError(str(exc)) from None


class HandshakeInitiator:
    """The dialing side: ``hello()`` gives the message to send, ``receive_ack()`` the verdict."""

    def __init__(
        self,
        identity: NodeIdentity,
        derive_secret: SecretDeriver,
        *,
        expected_peer_id: str = "",
        expected_public_key: str | None = None,
        challenge: bytes | None = None,
        version: str = PROTOCOL_VERSION,
        features: Sequence[str] = (),
    ) -> None:
        self.identity = identity
        self._derive = derive_secret
        self.expected_public_key = expected_public_key
        if expected_public_key is not None and not expected_peer_id:
            try:
                expected_peer_id = node_id_from_public_key(expected_public_key)
            except IdentityError as exc:
                raise PinnedKeyMismatchError(f"expected public key is invalid: {exc}") from None
        self.expected_peer_id = expected_peer_id
        self.challenge = generate_challenge() if challenge is None else bytes(challenge)
        if len(self.challenge) != CHALLENGE_SIZE:
            raise ChallengeError(REASON_BAD_CHALLENGE)
        self.version = version
        self.features = tuple(features)
        self.state = State.IDLE
        self.result: HandshakeResult | None = None

    def hello(self) -> Message:
        """The ``handshake`` message (send it as a TEXT frame)."""
        if self.state is not State.IDLE:
            raise HandshakeError(f"hello() in state {self.state.value}")
        payload = HandshakePayload(self.identity, self.challenge, self.version)
        self.state = State.AWAITING
        return _message(
            envelope.HANDSHAKE,
            self.identity.id,
            self.expected_peer_id,
            _with_features(payload, self.features),
        )

    def receive_ack(self, data: str | bytes | Message) -> HandshakeResult:
        """Judge the responder's reply; raises a :class:`HandshakeError` subclass on failure."""
        if self.state is not State.AWAITING:
            raise HandshakeError(f"receive_ack() in state {self.state.value}")
        try:
            result = self._judge(data)
        except HandshakeError:
            self.state = State.FAILED
            raise
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            self.state = State.FAILED
            raise HandshakeMalformedError(f"unusable handshake_ack: {type(exc).__name__}") from exc
        self.state = State.DONE
        self.result = result
        return result

    def _judge(self, data: str | bytes | Message) -> HandshakeResult:
        message = envelope.as_message(data, HandshakeMalformedError)
        if message.type != envelope.HANDSHAKE_ACK:
            raise HandshakeMalformedError(f"expected handshake_ack, got {message.type}")
        try:
            ack = HandshakeAckPayload.from_json(message.payload)
        except MessageError as exc:
            raise HandshakeMalformedError(f"bad handshake_ack payload: {exc}") from None
        if not ack.accepted:
            raise HandshakeRejectedError(ack.reason)
        peer = ack.identity
        _bound(peer)
        if self.expected_public_key is not None and peer.public_key != self.expected_public_key:
            raise PinnedKeyMismatchError(
                f"peer {peer.id} answered with a public key other than the pinned one"
            )
        if peer.public_key == self.identity.public_key or peer.id == self.identity.id:
            raise IdentityBindingError("the peer answered with this node's own identity")
        try:
            secret = self._derive(peer.public_key)
        except IdentityError as exc:
            raise IdentityBindingError(f"cannot derive a secret with the peer: {exc}") from None
        if not ack.challenge_response:
            raise ChallengeError("no challenge response in handshake_ack")
        if not verify_challenge(self.challenge, ack.challenge_response, secret):
            raise ChallengeError("challenge response is wrong")
        return HandshakeResult(peer, secret, self.version, _features(message.payload))


class HandshakeResponder:
    """The listening side: ``receive_hello()`` gives the ack to send and the verdict."""

    def __init__(
        self,
        identity: NodeIdentity,
        derive_secret: SecretDeriver,
        is_allowed: AllowPolicy,
        *,
        supported_versions: Sequence[str] = SUPPORTED_VERSIONS,
        features: Sequence[str] = (),
    ) -> None:
        self.identity = identity
        self._derive = derive_secret
        self._allowed = is_allowed
        self.supported_versions = tuple(supported_versions)
        self.features = tuple(features)
        self.state = State.AWAITING
        self.result: HandshakeResult | None = None

    def receive_hello(self, data: str | bytes | Message) -> ResponderDecision:
        """Judge the initiator's ``handshake``; never raises for bad input."""
        if self.state is not State.AWAITING:
            raise HandshakeError(f"receive_hello() in state {self.state.value}")
        try:
            decision = self._decide(data)
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            # belt and braces: no input may crash the responder (fuzzing found one)
            error = HandshakeMalformedError(f"unusable handshake: {type(exc).__name__}")
            decision = ResponderDecision(None, None, error)
        self.state = State.DONE if decision.accepted else State.FAILED
        self.result = decision.result
        return decision

    def _reject(self, to: str, reason: str, error: HandshakeError) -> ResponderDecision:
        payload = HandshakeAckPayload(self.identity, b"", False, reason)
        reply = _message(envelope.HANDSHAKE_ACK, self.identity.id, to, _with_features(payload, ()))
        return ResponderDecision(reply, None, error)

    def _decide(self, data: str | bytes | Message) -> ResponderDecision:
        try:
            message = envelope.as_message(data, HandshakeMalformedError)
            if message.type != envelope.HANDSHAKE:
                raise HandshakeMalformedError(
                    f"expected handshake, got {message.type or 'nothing'}"
                )
            try:
                hello = HandshakePayload.from_json(message.payload)
            except MessageError as exc:
                raise HandshakeMalformedError(f"bad handshake payload: {exc}") from None
        except HandshakeMalformedError as exc:
            return ResponderDecision(None, None, exc)
        peer = hello.identity
        if hello.version not in self.supported_versions:
            reason = version_reject_reason(hello.version, self.supported_versions)
            return self._reject(peer.id, reason, HandshakeMalformedError(reason))
        try:
            secret = self._derive(peer.public_key)
        except IdentityError as exc:
            return ResponderDecision(None, None, IdentityBindingError(f"bad public key: {exc}"))
        try:
            _bound(peer)
        except IdentityBindingError as exc:
            return self._reject(peer.id, REASON_ID_MISMATCH, exc)
        if peer.id == self.identity.id or peer.public_key == self.identity.public_key:
            # someone claiming to be this node: never a peer (it would be registered as us)
            return self._reject(peer.id, REASON_SELF, HandshakeError(REASON_SELF))
        if not self._allowed(peer.id, peer.public_key):
            return self._reject(
                peer.id, REASON_NOT_AUTHORIZED, HandshakeError(REASON_NOT_AUTHORIZED)
            )
        challenge = hello.challenge or b""  # Go decodes null into an empty []byte
        if len(challenge) != CHALLENGE_SIZE:
            return self._reject(peer.id, REASON_BAD_CHALLENGE, ChallengeError(REASON_BAD_CHALLENGE))
        ack = HandshakeAckPayload(self.identity, sign_challenge(challenge, secret), True)
        reply = _message(
            envelope.HANDSHAKE_ACK, self.identity.id, peer.id, _with_features(ack, self.features)
        )
        result = HandshakeResult(peer, secret, hello.version, _features(message.payload))
        return ResponderDecision(reply, result, None)
