"""UEPS: the signed binary TLV wire format of the Lethean mesh, and its intent dispatcher.

``IMPLEMENTATION`` says which codec is live: ``"cython"`` (the compiled ``_speedups``
extension) or ``"python"`` (``_pure``, used when the extension is missing or when the
environment variable ``P2P_NO_EXTENSIONS=1`` is set at import time).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from p2p.ueps.errors import (
    DispatchError,
    IntegrityError,
    MalformedFrameError,
    MissingSignatureError,
    ThreatScoreExceeded,
    TruncatedFrameError,
    UEPSError,
    UnknownIntent,
    ValueTooLargeError,
)

if TYPE_CHECKING:
    from p2p.ueps._pure import (
        FrameReader,
        Header,
        HmacKey,
        PacketBuilder,
        ParsedPacket,
        build,
        hmac_sha256,
        keystream_xor,
        read_and_verify,
    )

    IMPLEMENTATION: str
else:
    _impl = None
    if os.environ.get("P2P_NO_EXTENSIONS", "") in ("", "0"):
        try:
            from p2p.ueps import _speedups as _impl
        except ImportError:  # no compiler at install time: the pure module serves
            _impl = None
    if _impl is None:
        from p2p.ueps import _pure as _impl

        IMPLEMENTATION = "python"
    else:
        IMPLEMENTATION = "cython"
    FrameReader = _impl.FrameReader
    HmacKey = _impl.HmacKey
    Header = _impl.Header
    PacketBuilder = _impl.PacketBuilder
    ParsedPacket = _impl.ParsedPacket
    build = _impl.build
    hmac_sha256 = _impl.hmac_sha256
    keystream_xor = _impl.keystream_xor
    read_and_verify = _impl.read_and_verify
    del _impl

from p2p.ueps._pure import (
    MAX_BYTES_BEFORE_PAYLOAD,
    MAX_FRAME_SIZE,
    MAX_TLVS_BEFORE_PAYLOAD,
)
from p2p.ueps._version import __version__
from p2p.ueps.dispatcher import (
    INTENT_COMPUTE,
    INTENT_CUSTOM,
    INTENT_HANDSHAKE,
    INTENT_REHAB,
    THREAT_SCORE_THRESHOLD,
    Dispatcher,
)

__all__ = [
    "IMPLEMENTATION",
    "INTENT_COMPUTE",
    "INTENT_CUSTOM",
    "INTENT_HANDSHAKE",
    "INTENT_REHAB",
    "MAX_BYTES_BEFORE_PAYLOAD",
    "MAX_FRAME_SIZE",
    "MAX_TLVS_BEFORE_PAYLOAD",
    "THREAT_SCORE_THRESHOLD",
    "DispatchError",
    "Dispatcher",
    "FrameReader",
    "Header",
    "HmacKey",
    "IntegrityError",
    "MalformedFrameError",
    "MissingSignatureError",
    "PacketBuilder",
    "ParsedPacket",
    "ThreatScoreExceeded",
    "TruncatedFrameError",
    "UEPSError",
    "UnknownIntent",
    "ValueTooLargeError",
    "__version__",
    "build",
    "hmac_sha256",
    "keystream_xor",
    "read_and_verify",
]
