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

Protocol 1.1 (SECURITY.md "protocol 1.1"; Go never offers it and gets exactly 1.0): both
sides list ``p2p/1.1`` in ``features`` and a ``noise`` field carries the Noise XX messages:
the hello ``-> e``, the ack ``<- e, ee, s, es``, then a third initiator message
``handshake_finish`` ``-> s, se`` before any application traffic. The Noise prologue is the
hello payload without its ``noise`` field (identity, challenge, version and the
initiator's features), the ack's second-message payload is SHA-256 of the ack payload without
its ``noise`` field (the responder's features and identity): changing either in flight fails
the handshake. The static keys are the nodes' X25519 identity keys and must be those of the
hello/ack identities. An initiator that offers 1.1 marks its 32-byte challenge (first half
random, second half a hash of the first): a responder of ours that supports 1.1 and sees that
mark on a hello without the offer knows the offer was stripped and refuses. A responder
treats a 1.1 connection as that peer only after the third message.

Responder verdicts, in the reference's order: not JSON / not a ``handshake`` / bad payload
→ close without reply; unsupported version → reject ack; undecodable key → close without
reply; id not bound to key → reject ack; not allowed by the gate → reject ack
(``"peer not authorized"``); challenge not 32 bytes → reject ack; else accept.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2p.identity import (
    CHALLENGE_SIZE,
    IdentityError,
    NodeIdentity,
    check_identity_binding,
    decode_public_key,
    generate_challenge,
    node_id_from_public_key,
    sign_challenge,
    verify_challenge,
)
from p2p.identity.gojson import orjson
from p2p.transport import envelope
from p2p.transport.errors import (
    ChallengeError,
    DowngradeError,
    HandshakeError,
    HandshakeMalformedError,
    HandshakeRejectedError,
    IdentityBindingError,
    NoiseError,
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
from p2p.transport.noise import CipherState, HandshakeState, KeyPair

if TYPE_CHECKING:
    from p2p.transport.messages import Message

__all__ = [
    "CHALLENGE_SIZE",
    "FEATURE_1_1",
    "HANDSHAKE_FINISH",
    "PROTOCOL_1_0",
    "PROTOCOL_1_1",
    "PROTOCOL_VERSION",
    "REASON_NOT_AUTHORIZED",
    "REASON_SELF",
    "SUPPORTED_VERSIONS",
    "ChallengeError",
    "DowngradeError",
    "HandshakeError",
    "HandshakeInitiator",
    "HandshakeMalformedError",
    "HandshakeRejectedError",
    "HandshakeResponder",
    "HandshakeResult",
    "IdentityBindingError",
    "NoiseError",
    "PinnedKeyMismatchError",
    "ResponderDecision",
    "State",
    "offers_1_1",
    "version_reject_reason",
    "with_1_1",
]

SUPPORTED_VERSIONS = SUPPORTED_PROTOCOL_VERSIONS
REASON_NOT_AUTHORIZED = "peer not authorized"
REASON_ID_MISMATCH = "identity id does not match public key"
REASON_BAD_CHALLENGE = f"challenge must be {CHALLENGE_SIZE} bytes"
REASON_SELF = "identity is this node's own"
MAX_FEATURES = 32
MAX_FEATURE_LEN = 64

FEATURE_1_1 = "p2p/1.1"
"""The ``features`` entry that offers protocol 1.1 (Noise XX); Go never sends it."""
PROTOCOL_1_0 = "1.0"
PROTOCOL_1_1 = "1.1"
HANDSHAKE_FINISH = "handshake_finish"
"""Envelope type of the third 1.1 handshake message (``-> s, se``); only ours send it."""
NOISE_PROLOGUE = b"lethean-p2p/1.1 hello\n"
"""Prefix of the Noise prologue; the hello payload without ``noise`` follows."""
MAX_NOISE_FIELD = 256
"""Longest ``noise`` field (base64) accepted; the largest XX message here is 128 bytes."""
_OFFER_TAG = b"lethean-p2p/1.1 offer"
_NOISE_KEY = ',"noise":"'
_FINISH_BODY = '{"protocol":"1.1"}'
REASON_STRIPPED = "protocol 1.1 offer was stripped from the hello"
REASON_REQUIRED = "protocol 1.1 required"
REASON_PINNED = "peer is pinned to protocol 1.1"
REASON_NOISE = "protocol 1.1 handshake failed"

PinPolicy = Callable[[str], bool]
"""``pinned(public_key_b64) -> bool``: has this key spoken 1.1 with us (1.0 refused)?"""
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
    protocol: str = PROTOCOL_1_0
    """``"1.0"`` (Go's) or ``"1.1"`` (Noise XX; ``send``/``receive`` are then set)."""
    send: CipherState | None = None
    """1.1: the transport CipherState for what this side sends."""
    receive: CipherState | None = None
    """1.1: the transport CipherState for what this side receives."""
    handshake_hash: bytes = b""
    """1.1: the Noise handshake hash ``h`` (the same on both sides; channel binding)."""
    ueps_key: bytes = b""
    """1.1: the UEPS channel's HMAC key, a third key of the Noise key schedule (forward
    secret; replaces the static secret for UEPS between 1.1 peers)."""

    def __repr__(self) -> str:  # never show the secret
        return (
            f"HandshakeResult(peer={self.peer.id!r}, protocol={self.protocol!r}, "
            f"features={self.features!r})"
        )


@dataclass(frozen=True, slots=True)
class ResponderDecision:
    """What the responder does with a handshake: send ``reply`` (if any), then keep the
    connection iff ``result`` is set; otherwise close it (``error`` says why)."""

    reply: Message | None
    result: HandshakeResult | None
    error: HandshakeError | None
    claimed: NodeIdentity | None = None
    """1.1: the identity the hello claims while the third message is awaited (``result``
    is then ``None`` and :attr:`awaiting_finish` true)."""

    @property
    def accepted(self) -> bool:
        return self.result is not None

    @property
    def awaiting_finish(self) -> bool:
        """1.1: the ack is to be sent, then :meth:`HandshakeResponder.receive_finish`."""
        return self.result is None and self.error is None and self.claimed is not None

    @property
    def peer(self) -> NodeIdentity | None:
        """Who the hello names (proven for 1.0 only by later traffic, for 1.1 by message 3)."""
        return self.result.peer if self.result is not None else self.claimed


def offers_1_1(features: Sequence[str]) -> bool:
    """Whether a ``features`` list offers protocol 1.1."""
    return FEATURE_1_1 in tuple(features)


def with_1_1(features: Sequence[str] = ()) -> tuple[str, ...]:
    """``features`` plus ``p2p/1.1`` (once): advertise protocol 1.1 (Go ignores it)."""
    feats = tuple(features)
    return feats if FEATURE_1_1 in feats else (*feats, FEATURE_1_1)


def _offer_mark(random_half: bytes) -> bytes:
    return hashlib.sha256(_OFFER_TAG + random_half).digest()[:16]


def marked_challenge(challenge: bytes) -> bytes:
    """The 1.1 initiator's challenge: its first 16 bytes, then a hash of them (so a
    responder of ours can tell a hello whose 1.1 offer was stripped)."""
    return challenge[:16] + _offer_mark(challenge[:16])


def challenge_marks_offer(challenge: bytes) -> bool:
    """Was this challenge made by an initiator that offered 1.1 (chance 2**-128 otherwise)?"""
    return len(challenge) == CHALLENGE_SIZE and hmac.compare_digest(
        challenge[16:], _offer_mark(challenge[:16])
    )


def _noise_split(payload_text: str | None) -> tuple[str, bytes] | None:
    """``(payload without its noise field, the noise message)`` or ``None`` when the payload
    carries no well-formed trailing ``"noise":"<base64>"`` field."""
    if not payload_text or not payload_text.endswith('"}'):
        return None
    at = payload_text.rfind(_NOISE_KEY)
    if at < 0:
        return None
    field = payload_text[at + len(_NOISE_KEY) : -2]
    if not field or len(field) > MAX_NOISE_FIELD:
        return None
    try:
        raw = base64.b64decode(field.encode("ascii"), validate=True)
        parsed = json.loads(payload_text)
    except (ValueError, binascii.Error, UnicodeEncodeError, RecursionError):
        return None
    if not isinstance(parsed, dict) or parsed.get("noise") != field:
        return None  # the trailing text was not the object's own noise field
    return payload_text[:at] + "}", raw


def _with_noise(payload_text: str, message: bytes) -> str:
    return f'{payload_text[:-1]}{_NOISE_KEY}{base64.b64encode(message).decode("ascii")}"}}'


def _noise_static(static_key: bytes | None) -> KeyPair | None:
    if static_key is None:
        return None
    try:
        return KeyPair(bytes(static_key))
    except (NoiseError, ValueError):
        raise NoiseError("the node's static key is not a 32-byte X25519 key") from None


def _features(payload_text: str | None) -> tuple[str, ...]:
    """The optional ``features`` list (a later-issue extension Go ignores), bounded."""
    if not payload_text or '"features"' not in payload_text:
        return ()
    raw = None
    if orjson is not None:
        try:
            raw = orjson.loads(payload_text).get("features")
        except (ValueError, AttributeError):
            raw = None  # what orjson refuses (lone surrogates, NaN, huge ints): json decides
    if raw is None:
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
    return f"{text[:-1]},{_features_field(features)}}}"


@functools.lru_cache(maxsize=64)
def _features_field(features: tuple[str, ...]) -> str:
    """``"features":[...]`` (a node's own list: a handful of distinct values per process)."""
    return f'"features":{json.dumps(list(features), separators=(",", ":"))}'


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
        static_key: bytes | None = None,
        require_1_1: bool = False,
        pinned: PinPolicy | None = None,
        noise_ephemeral: bytes | None = None,
    ) -> None:
        self.identity = identity
        self._derive = derive_secret
        self._static = _noise_static(static_key)
        #: injected Noise ephemeral private key (test vectors, fuzz seeds); default fresh
        self._ephemeral = _noise_static(noise_ephemeral)
        self.require_1_1 = require_1_1
        self._pinned = pinned
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
        #: whether the hello offers protocol 1.1 (``p2p/1.1`` listed and a static key given)
        self.offers_1_1 = offers_1_1(self.features) and self._static is not None
        if require_1_1 and not self.offers_1_1:
            raise DowngradeError("require_1_1 needs p2p/1.1 in features and a static key")
        if self.offers_1_1:
            self.challenge = marked_challenge(self.challenge)
        self._noise: HandshakeState | None = None
        self.state = State.IDLE
        self.result: HandshakeResult | None = None
        #: 1.1: the third handshake message, to send right after :meth:`receive_ack`
        self.finish: Message | None = None

    def hello(self) -> Message:
        """The ``handshake`` message (send it as a TEXT frame)."""
        if self.state is not State.IDLE:
            raise HandshakeError(f"hello() in state {self.state.value}")
        payload = HandshakePayload(self.identity, self.challenge, self.version)
        text = _with_features(payload, self.features)
        if self.offers_1_1:
            assert self._static is not None
            self._noise = HandshakeState(
                True,
                self._static,
                prologue=NOISE_PROLOGUE + text.encode(),
                ephemeral=self._ephemeral,
            )
            text = _with_noise(text, self._noise.write_message(b""))
        self.state = State.AWAITING
        return _message(envelope.HANDSHAKE, self.identity.id, self.expected_peer_id, text)

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
        features = _features(message.payload)
        noise = _noise_split(message.payload) if self.offers_1_1 else None
        if noise is not None and offers_1_1(features):
            return self._finish_1_1(
                peer, secret=secret, features=features, bound_ack=noise[0], noise_message=noise[1]
            )
        # a protocol 1.0 answer
        if self.offers_1_1 and (offers_1_1(features) or noise is not None):
            raise DowngradeError("the ack half-answers the protocol 1.1 offer")
        if self.require_1_1:
            raise DowngradeError(f"peer answered protocol 1.0: {REASON_REQUIRED}")
        if self._is_pinned(peer.public_key):
            raise DowngradeError(f"peer answered protocol 1.0: {REASON_PINNED}")
        return HandshakeResult(peer, secret, self.version, features)

    def _is_pinned(self, public_key: str) -> bool:
        return self._pinned is not None and bool(self._pinned(public_key))

    def _finish_1_1(
        self,
        peer: NodeIdentity,
        *,
        secret: bytes,
        features: tuple[str, ...],
        bound_ack: str,
        noise_message: bytes,
    ) -> HandshakeResult:
        hs = self._noise
        assert hs is not None
        try:
            bound = hs.read_message(noise_message)
        except NoiseError as exc:
            raise NoiseError(f"{REASON_NOISE}: ack: {exc.reason}") from None
        if not hmac.compare_digest(bound, hashlib.sha256(bound_ack.encode()).digest()):
            raise NoiseError(f"{REASON_NOISE}: the ack was altered in flight")
        if hs.remote_static != decode_public_key(peer.public_key):
            raise IdentityBindingError("the ack's Noise static key is not its identity's key")
        third = hs.write_message(b"")
        self.finish = _message(
            HANDSHAKE_FINISH, self.identity.id, peer.id, _with_noise(_FINISH_BODY, third)
        )
        send, receive = hs.split()
        return HandshakeResult(
            peer,
            secret,
            self.version,
            features,
            PROTOCOL_1_1,
            send,
            receive,
            hs.handshake_hash,
            hs.extra_key,
        )


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
        static_key: bytes | None = None,
        require_1_1: bool = False,
        pinned: PinPolicy | None = None,
        noise_ephemeral: bytes | None = None,
    ) -> None:
        self.identity = identity
        self._derive = derive_secret
        self._allowed = is_allowed
        self._ephemeral = _noise_static(noise_ephemeral)
        self.supported_versions = tuple(supported_versions)
        self.features = tuple(features)
        self._static = _noise_static(static_key)
        #: whether this side answers 1.1 offers (``p2p/1.1`` listed and a static key given)
        self.supports_1_1 = offers_1_1(self.features) and self._static is not None
        if require_1_1 and not self.supports_1_1:
            raise DowngradeError("require_1_1 needs p2p/1.1 in features and a static key")
        self.require_1_1 = require_1_1
        self._pinned = pinned
        self._noise: HandshakeState | None = None
        self._pending: HandshakeResult | None = None
        self.state = State.AWAITING
        self.result: HandshakeResult | None = None

    def receive_hello(self, data: str | bytes | Message) -> ResponderDecision:
        """Judge the initiator's ``handshake``; never raises for bad input."""
        if self.state is not State.AWAITING or self._pending is not None:
            raise HandshakeError(f"receive_hello() in state {self.state.value}")
        try:
            decision = self._decide(data)
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            # belt and braces: no input may crash the responder (fuzzing found one)
            error = HandshakeMalformedError(f"unusable handshake: {type(exc).__name__}")
            decision = ResponderDecision(None, None, error)
        if decision.awaiting_finish:
            self.state = State.AWAITING  # now for the third message
        else:
            self.state = State.DONE if decision.accepted else State.FAILED
        self.result = decision.result
        return decision

    @property
    def awaiting_finish(self) -> bool:
        """1.1: the ack went out; :meth:`receive_finish` must judge the third message."""
        return self._pending is not None and self.state is State.AWAITING

    def receive_finish(self, data: str | bytes | Message) -> ResponderDecision:
        """Judge the initiator's third 1.1 message (``-> s, se``); never raises for bad
        input. Only an accepted decision here makes the connection the peer's."""
        pending = self._pending
        if pending is None or self.state is not State.AWAITING:
            raise HandshakeError(f"receive_finish() in state {self.state.value}")
        self._pending = None
        try:
            result = self._judge_finish(data, pending)
        except HandshakeError as exc:
            decision = ResponderDecision(None, None, exc)
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            error = HandshakeMalformedError(f"unusable handshake_finish: {type(exc).__name__}")
            decision = ResponderDecision(None, None, error)
        else:
            decision = ResponderDecision(None, result, None)
        self.state = State.DONE if decision.accepted else State.FAILED
        self.result = decision.result
        return decision

    def _judge_finish(
        self, data: str | bytes | Message, pending: HandshakeResult
    ) -> HandshakeResult:
        message = envelope.as_message(data, HandshakeMalformedError)
        if message.type != HANDSHAKE_FINISH:
            raise HandshakeMalformedError(f"expected {HANDSHAKE_FINISH}, got {message.type}")
        noise = _noise_split(message.payload)
        if noise is None:
            raise HandshakeMalformedError(f"{HANDSHAKE_FINISH} without a noise message")
        hs = self._noise
        assert hs is not None
        try:
            hs.read_message(noise[1])
        except NoiseError as exc:
            raise NoiseError(f"{REASON_NOISE}: finish: {exc.reason}") from None
        if hs.remote_static != decode_public_key(pending.peer.public_key):
            raise IdentityBindingError("the Noise static key is not the hello identity's key")
        send, receive = hs.split()
        return HandshakeResult(
            pending.peer,
            pending.secret,
            pending.version,
            pending.features,
            PROTOCOL_1_1,
            send,
            receive,
            hs.handshake_hash,
            hs.extra_key,
        )

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
        features = _features(message.payload)
        ack = HandshakeAckPayload(self.identity, sign_challenge(challenge, secret), True)
        if self.supports_1_1:
            noise = _noise_split(message.payload) if offers_1_1(features) else None
            if noise is not None:
                return self._answer_1_1(
                    peer,
                    secret=secret,
                    version=hello.version,
                    features=features,
                    ack=ack,
                    noise=noise,
                )
            refusal = self._refuse_1_0(peer.public_key, challenge, features)
            if refusal:
                return self._reject(peer.id, refusal, DowngradeError(refusal))
        # a 1.0 answer never lists p2p/1.1: a peer that did not offer it (Go) gets the ack
        # it got before 1.1 existed
        plain = tuple(f for f in self.features if f != FEATURE_1_1)
        reply = _message(
            envelope.HANDSHAKE_ACK, self.identity.id, peer.id, _with_features(ack, plain)
        )
        result = HandshakeResult(peer, secret, hello.version, features)
        return ResponderDecision(reply, result, None)

    def _refuse_1_0(self, public_key: str, challenge: bytes, features: tuple[str, ...]) -> str:
        """Why a hello that does not (validly) offer 1.1 is refused, or ``""``."""
        if offers_1_1(features):
            return f"{REASON_NOISE}: the hello's noise field is missing or malformed"
        if challenge_marks_offer(challenge):
            return REASON_STRIPPED
        if self.require_1_1:
            return REASON_REQUIRED
        if self._pinned is not None and self._pinned(public_key):
            return REASON_PINNED
        return ""

    def _answer_1_1(
        self,
        peer: NodeIdentity,
        *,
        secret: bytes,
        version: str,
        features: tuple[str, ...],
        ack: HandshakeAckPayload,
        noise: tuple[str, bytes],
    ) -> ResponderDecision:
        bound_hello, first = noise
        assert self._static is not None
        hs = HandshakeState(
            False,
            self._static,
            prologue=NOISE_PROLOGUE + bound_hello.encode(),
            ephemeral=self._ephemeral,
        )
        try:
            hs.read_message(first)
            ack_text = _with_features(ack, self.features)
            second = hs.write_message(hashlib.sha256(ack_text.encode()).digest())
        except NoiseError as exc:
            reason = f"{REASON_NOISE}: hello: {exc.reason}"
            return self._reject(peer.id, reason, NoiseError(reason))
        self._noise = hs
        self._pending = HandshakeResult(peer, secret, version, features)
        reply = _message(
            envelope.HANDSHAKE_ACK, self.identity.id, peer.id, _with_noise(ack_text, second)
        )
        return ResponderDecision(reply, None, None, claimed=peer)
