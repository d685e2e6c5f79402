"""p2p.transport: what a Lethean node says on the wire after the TCP connection exists.

Layers, bottom up: ``trix`` (the TRIX container), ``sigil`` (XChaCha20-Poly1305 with the
Enchantrix pre-obfuscation), ``smsg`` (the encrypted transport frame), ``messages`` (the JSON
envelope and the transport's own payloads), ``frames`` (Message <-> encrypted frame in one
call), then the handshake state machines and the WebSocket shell.
"""

from __future__ import annotations

from p2p.transport._version import __version__
from p2p.transport.aio.busypoll import MAX_BUSY_POLL_US
from p2p.transport.aio.busypoll import run as run_busy_poll
from p2p.transport.config import ConfigError, TransportConfig
from p2p.transport.connection import (
    ConnectionClosedError,
    MessageHandler,
    OutboundOverflowError,
    PeerConnection,
    SendTimeoutError,
    with_timeout,
)
from p2p.transport.errors import (
    MessageError,
    PeerRefusedError,
    ProtocolError,
    ResponseError,
    SigilError,
    SmsgError,
    TransportError,
    TrixError,
    UepsNotEnabledError,
    UepsNotNegotiatedError,
    UepsSessionError,
)
from p2p.transport.frames import FrameCodec, open_message, seal_message
from p2p.transport.gate import AllowlistGate, OpenGate, PeerGate
from p2p.transport.handshake import (
    FEATURE_1_1,
    DowngradeError,
    HandshakeError,
    HandshakeInitiator,
    HandshakeRejectedError,
    HandshakeResponder,
    HandshakeResult,
    NoiseError,
    PinnedKeyMismatchError,
    offers_1_1,
    with_1_1,
)
from p2p.transport.limits import DropReason
from p2p.transport.messages import (
    TRANSPORT_PAYLOAD_TYPES,
    DisconnectCode,
    DisconnectPayload,
    ErrorCode,
    ErrorPayload,
    Field,
    Message,
    MessageType,
    Payload,
    PingPayload,
    PongPayload,
    parse_json,
    parse_response,
    validate_response,
)
from p2p.transport.protocol import PeerProtocol
from p2p.transport.secure_session import SecureSession
from p2p.transport.smsg import password_for_secret
from p2p.transport.transport import (
    BroadcastResult,
    ConnectError,
    IdentityProvider,
    NotConnectedError,
    NotRunningError,
    Transport,
)
from p2p.transport.ueps_channel import FEATURE_UEPS, UepsConfig, UepsSession, with_ueps
from p2p.transport.ueps_frames import BoundPacket
from p2p.transport.ueps_service import PeerDispatcher, PeerPacketHandler, UepsHub

__all__ = [
    "FEATURE_1_1",
    "FEATURE_UEPS",
    "MAX_BUSY_POLL_US",
    "TRANSPORT_PAYLOAD_TYPES",
    "AllowlistGate",
    "BoundPacket",
    "BroadcastResult",
    "ConfigError",
    "ConnectError",
    "ConnectionClosedError",
    "DisconnectCode",
    "DisconnectPayload",
    "DowngradeError",
    "DropReason",
    "ErrorCode",
    "ErrorPayload",
    "Field",
    "FrameCodec",
    "HandshakeError",
    "HandshakeInitiator",
    "HandshakeRejectedError",
    "HandshakeResponder",
    "HandshakeResult",
    "IdentityProvider",
    "Message",
    "MessageError",
    "MessageHandler",
    "MessageType",
    "NoiseError",
    "NotConnectedError",
    "NotRunningError",
    "OpenGate",
    "OutboundOverflowError",
    "Payload",
    "PeerConnection",
    "PeerDispatcher",
    "PeerGate",
    "PeerPacketHandler",
    "PeerProtocol",
    "PeerRefusedError",
    "PingPayload",
    "PinnedKeyMismatchError",
    "PongPayload",
    "ProtocolError",
    "ResponseError",
    "SecureSession",
    "SendTimeoutError",
    "SigilError",
    "SmsgError",
    "Transport",
    "TransportConfig",
    "TransportError",
    "TrixError",
    "UepsConfig",
    "UepsHub",
    "UepsNotEnabledError",
    "UepsNotNegotiatedError",
    "UepsSession",
    "UepsSessionError",
    "__version__",
    "offers_1_1",
    "open_message",
    "parse_json",
    "parse_response",
    "password_for_secret",
    "run_busy_poll",
    "seal_message",
    "validate_response",
    "with_1_1",
    "with_timeout",
    "with_ueps",
]
