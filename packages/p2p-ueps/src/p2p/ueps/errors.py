"""The UEPS exception hierarchy: one base, one class per verdict the reader can give.

The hierarchy::

    UEPSError
    ├── DispatchError
    │   ├── ThreatScoreExceeded
    │   └── UnknownIntent
    ├── IntegrityError
    ├── MalformedFrameError
    ├── MissingSignatureError
    ├── TruncatedFrameError
    └── ValueTooLargeError
"""

from __future__ import annotations


class UEPSError(Exception):
    """Base class for every error raised by ``p2p.ueps``."""


class IntegrityError(UEPSError):
    """The frame's HMAC does not match (tampered, wrong key or wrong-length HMAC)."""


class MissingSignatureError(UEPSError):
    """The frame has no HMAC TLV before its payload, or an empty one."""


class TruncatedFrameError(UEPSError):
    """The input ended before a complete frame (the reference's EOF / unexpected EOF)."""


class MalformedFrameError(UEPSError):
    """The frame is structurally invalid (short header value, over the TLV caps)."""


class ValueTooLargeError(UEPSError):
    """A value does not fit a 2-byte TLV length (payload longer than 65 535 bytes)."""


class DispatchError(UEPSError):
    """Base class for dispatcher verdicts."""


class ThreatScoreExceeded(DispatchError):
    """The packet's threat score is strictly above ``THREAT_SCORE_THRESHOLD``."""


class UnknownIntent(DispatchError):
    """No handler is registered for the packet's intent."""
