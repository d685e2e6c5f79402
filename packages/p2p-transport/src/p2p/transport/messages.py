"""go-p2p messages: the JSON envelope, the transport's own payloads, codes and helpers.

``Message.to_json()`` writes what Go's ``MarshalJSON`` writes (keys ``id, type, from, to,
ts, payload, replyTo``; compact; HTML escaping off; ``replyTo`` omitted when empty) and
``Message.from_json()`` accepts exactly what Go's ``json.Unmarshal`` accepts: keys matched
case-insensitively, the last duplicate wins, unknown keys ignored, ``ts`` an RFC 3339 string
(or null/missing = zero time), ``payload`` any JSON value kept raw (Go ``json.RawMessage``).
A decoded message re-encodes byte-identically (nanoseconds and offset of ``ts`` included).

Payloads are typed dataclasses (:class:`PingPayload`, ...) built on :class:`Payload` and
:class:`Field`. Each has ``to_json()`` and ``from_json()`` with Go's field order,
``omitempty`` rules and decoding rules (integers must be JSON integers, ``[]byte`` is padded
standard base64, ``null`` leaves the zero value). Only the payloads the transport speaks
itself live here (handshake, ping/pong, disconnect, error); the application payloads (stats,
miners, deploy, logs) live in ``p2p.controller.payloads``: the envelope names no payload
class (``Message.parse_payload(cls)`` takes the class).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import enum
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from p2p.identity import CHALLENGE_SIZE, GoTime, IdentityError, NodeIdentity, NodeRole
from p2p.identity.gojson import GoFields, go_float, go_string, marshal, orjson, to_utf8
from p2p.identity.gotime import canonical_unix_ns, format_utc, parse_canonical, parse_go_time
from p2p.transport._jsonscan import loads, scan_object, scan_string, scan_value
from p2p.transport._native import native
from p2p.transport._random import random_bytes
from p2p.transport.errors import MessageError, ProtocolError, ResponseError

__all__ = [
    "CHALLENGE_SIZE",
    "MAX_MESSAGE_SIZE",
    "MIN_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "TRANSPORT_PAYLOAD_TYPES",
    "DisconnectCode",
    "DisconnectPayload",
    "ErrorCode",
    "ErrorPayload",
    "Field",
    "HandshakeAckPayload",
    "HandshakePayload",
    "Message",
    "MessageError",
    "MessageType",
    "Payload",
    "PingPayload",
    "PongPayload",
    "ProtocolError",
    "ResponseError",
    "new_id",
    "parse_json",
    "parse_response",
    "validate_response",
]

PROTOCOL_VERSION = "1.0"
MIN_PROTOCOL_VERSION = "1.0"
SUPPORTED_PROTOCOL_VERSIONS: tuple[str, ...] = ("1.0",)

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Default bound on a message's JSON (the SMSG plaintext bound); Go's frames are ≤ 1 MiB."""

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_ZERO_TS = "0001-01-01T00:00:00Z"
_ZERO_NS = GoTime.zero().timestamp_ns()


class MessageType(str, enum.Enum):
    """The 15 message types of go-p2p. Unknown type strings still parse (as ``str``)."""

    HANDSHAKE = "handshake"
    HANDSHAKE_ACK = "handshake_ack"
    PING = "ping"
    PONG = "pong"
    DISCONNECT = "disconnect"
    GET_STATS = "get_stats"
    STATS = "stats"
    START_MINER = "start_miner"
    STOP_MINER = "stop_miner"
    MINER_ACK = "miner_ack"
    DEPLOY = "deploy"
    DEPLOY_ACK = "deploy_ack"
    GET_LOGS = "get_logs"
    LOGS = "logs"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


_TYPES: dict[str, MessageType] = {t.value: t for t in MessageType}


class ErrorCode(enum.IntEnum):
    """``code`` of an ``error`` payload. The Go worker only ever sends OPERATION_FAILED."""

    UNKNOWN = 1000
    INVALID_MESSAGE = 1001
    UNAUTHORIZED = 1002
    NOT_FOUND = 1003
    OPERATION_FAILED = 1004
    TIMEOUT = 1005


class DisconnectCode(enum.IntEnum):
    """``code`` of a ``disconnect`` payload (not WebSocket close codes). Go sends SHUTDOWN."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    TIMEOUT = 1003
    SHUTDOWN = 1004


def _kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "object" if isinstance(v, dict) else "array"


# --- payload field codecs ------------------------------------------------------------------

_Dec = Callable[[Any, str], Any]
_Enc = Callable[[Any], str]


def _dec_str(v: Any, name: str) -> str:
    if type(v) is not str:
        raise MessageError(f"cannot unmarshal {_kind(v)} into field {name} of type string")
    return v


def _dec_int(v: Any, name: str) -> int:
    if type(v) is not int or not _INT64_MIN <= v <= _INT64_MAX:
        raise MessageError(f"cannot unmarshal {_kind(v)} {str(v)[:32]} into int field {name}")
    return v


def _dec_float(v: Any, name: str) -> float:
    if type(v) not in (int, float):
        raise MessageError(f"cannot unmarshal {_kind(v)} into float field {name}")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if math.isinf(f):
        raise MessageError(f"number out of float64 range in field {name}")
    return f


def _dec_bool(v: Any, name: str) -> bool:
    if type(v) is not bool:
        raise MessageError(f"cannot unmarshal {_kind(v)} into field {name} of type bool")
    return v


def _dec_bytes(v: Any, name: str) -> bytes:
    s = _dec_str(v, name)
    if "\r" in s or "\n" in s:  # Go's base64 decoder skips CR and LF
        s = s.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise MessageError(f"field {name} is not padded standard base64") from None


def _dec_strlist(v: Any, name: str) -> list[str]:
    if not isinstance(v, list):
        raise MessageError(f"cannot unmarshal {_kind(v)} into field {name} of type []string")
    return ["" if x is None else _dec_str(x, name) for x in v]


def _dec_identity(v: Any, name: str) -> NodeIdentity:
    if not isinstance(v, dict):
        raise MessageError(f"cannot unmarshal {_kind(v)} into field {name} (NodeIdentity)")
    try:
        return NodeIdentity.from_dict(v)
    except (IdentityError, ValueError) as e:
        raise MessageError(f"field {name}: {e}") from None


def _dec_structs(v: Any, name: str, item: type[Payload]) -> list[Payload]:
    if not isinstance(v, list):
        raise MessageError(f"cannot unmarshal {_kind(v)} into field {name}")
    return [item() if x is None else item._from_value(x) for x in v]


def _dec_unbound(v: Any, name: str) -> Any:
    raise MessageError(f"field {name}: a structs field needs its item class")


def _enc_str(v: str) -> str:
    return go_string(v, html=False)


def _enc_bool(v: bool) -> str:
    return "true" if v else "false"


def _enc_bytes(v: bytes | None) -> str:
    return "null" if v is None else '"' + base64.b64encode(v).decode("ascii") + '"'


def _enc_strlist(v: list[str] | None) -> str:
    return "null" if v is None else "[" + ",".join(_enc_str(x) for x in v) + "]"


def _enc_identity(v: NodeIdentity) -> str:
    role = v.role.value if isinstance(v.role, NodeRole) else v.role
    try:
        created = v.created_at.format()
    except (IdentityError, ValueError) as e:
        raise MessageError(f"identity createdAt: {e}") from None
    return (
        f'{{"id":{_enc_str(v.id)},"name":{_enc_str(v.name)},'
        f'"publicKey":{_enc_str(v.public_key)},"createdAt":"{created}","role":{_enc_str(role)}}}'
    )


def _enc_structs(v: list[Payload] | None) -> str:
    return "null" if v is None else "[" + ",".join(m._encode() for m in v) + "]"


def _enc_raw(v: str | None) -> str:
    return "null" if v is None else v


_CODECS: dict[str, tuple[_Dec, _Enc]] = {
    "str": (_dec_str, _enc_str),
    "int": (_dec_int, str),
    "float": (_dec_float, go_float),
    "bool": (_dec_bool, _enc_bool),
    "bytes": (_dec_bytes, _enc_bytes),
    "strlist": (_dec_strlist, _enc_strlist),
    "identity": (_dec_identity, _enc_identity),
    "structs": (_dec_unbound, _enc_structs),  # Field.decode passes the item class
}
_NULL_RESETS = frozenset(("bytes", "strlist", "structs"))  # Go: null into a slice gives nil


@dataclass(frozen=True, slots=True)
class Field:
    """One JSON field of a :class:`Payload`: attribute, Go key, codec kind (``str int float
    bool bytes strlist identity raw structs``), ``omitempty``; ``item`` is the element
    class of a ``structs`` field (a Go slice of structs)."""

    attr: str
    key: str
    kind: str
    omitempty: bool = False
    item: type[Payload] | None = None

    def decode(self, value: Any) -> Any:
        """A non-null JSON value converted for this field (:class:`MessageError` if Go
        would refuse it)."""
        if self.item is not None:
            return _dec_structs(value, self.key, self.item)
        return _CODECS[self.kind][0](value, self.key)


P = TypeVar("P", bound="Payload")


class Payload:
    """Base of the typed payloads: Go-compatible ``to_json`` / ``from_json``.

    Subclasses are dataclasses listing their JSON fields in ``_FIELDS`` in Go's order.
    """

    __slots__ = ()
    _FIELDS: ClassVar[tuple[Field, ...]] = ()
    _BY_KEY: ClassVar[GoFields[Field]] = GoFields(())
    _PLAN: ClassVar[tuple[tuple[str, str, type | None, bool, _Enc], ...] | None] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._BY_KEY = GoFields((f.key, f) for f in cls._FIELDS)
        cls._PLAN = _encode_plan(cls._FIELDS)

    def _encode(self) -> str:
        plan = self._PLAN
        if plan is not None and _fragment is not None:
            out = _encode_fast(self, plan)
            if out is not None:
                return out
        return self._encode_slow()

    def _encode_slow(self) -> str:
        """:meth:`_encode` with the stdlib quoting (the fast path's twin)."""
        parts = []
        for f in self._FIELDS:
            v = getattr(self, f.attr)
            if f.omitempty and not v:
                continue
            enc = _enc_raw(v) if f.kind == "raw" else _CODECS[f.kind][1](v)
            parts.append(f'"{f.key}":{enc}')
        return "{" + ",".join(parts) + "}"

    def to_json(self) -> bytes:
        """The payload JSON as Go marshals it (with HTML escaping off, as go-p2p does)."""
        return to_utf8(self._encode())

    @classmethod
    def from_json(cls: type[P], data: str | bytes | None) -> P:
        """Decode like Go's ``json.Unmarshal`` into the struct; ``None`` (no payload) and
        ``null`` give the zero value. :class:`MessageError` on anything Go refuses."""
        obj = cls()
        if data is None:
            return obj
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        if len(text) > MAX_MESSAGE_SIZE:
            raise MessageError(f"payload larger than {MAX_MESSAGE_SIZE} bytes")
        try:
            members = scan_object(text)
        except (ValueError, RecursionError) as e:
            raise MessageError(f"cannot decode {cls.__name__}: {e}") from None
        for key, value, start, end in members or ():
            f = cls._BY_KEY[key]
            if f is None:
                continue
            if f.kind == "raw":
                setattr(obj, f.attr, _compact(text[start:end]))
            elif value is None:
                if f.kind in _NULL_RESETS:
                    setattr(obj, f.attr, None)
            else:
                setattr(obj, f.attr, f.decode(value))
        return obj

    @classmethod
    def _from_value(cls: type[P], value: Any) -> P:
        """From an already-parsed JSON object (nested structs); raw fields unsupported."""
        if not isinstance(value, dict):
            raise MessageError(f"cannot unmarshal {_kind(value)} into {cls.__name__}")
        obj = cls()
        for key, v in value.items():
            f = cls._BY_KEY[key]
            if f is None:
                continue
            if v is None:
                if f.kind in _NULL_RESETS:
                    setattr(obj, f.attr, None)
            else:
                setattr(obj, f.attr, f.decode(v))
        return obj


# A field whose value is exactly this class goes to orjson as is (same bytes as its codec:
# Go quoting with HTML off, decimal int, true/false); any other value is its codec's text
# as a raw fragment.
_PLAIN_KIND: dict[str, type] = {"str": str, "int": int, "bool": bool}
_fragment: Any = getattr(orjson, "Fragment", None)


def _encode_plan(
    fields: tuple[Field, ...],
) -> tuple[tuple[str, str, type | None, bool, _Enc], ...] | None:
    """Per field ``(attr, key, plain class, omitempty, codec)`` for :func:`_encode_fast`;
    ``None`` (slow path only) if a key needs escaping (the slow path writes keys raw)."""
    plan = []
    for f in fields:
        if json.dumps(f.key, ensure_ascii=False) != f'"{f.key}"':
            return None
        enc = _enc_raw if f.kind == "raw" else _CODECS[f.kind][1]
        plan.append((f.attr, f.key, _PLAIN_KIND.get(f.kind), f.omitempty, enc))
    return tuple(plan)


def _encode_fast(
    obj: Payload, plan: tuple[tuple[str, str, type | None, bool, _Enc], ...]
) -> str | None:
    """orjson writes the fields in order: Go's bytes except U+2028/U+2029 (orjson leaves
    them raw) and lone surrogates and ints beyond 64 bits (orjson refuses them); ``None``
    sends those to :meth:`Payload._encode_slow`."""
    d: dict[str, Any] = {}
    for attr, key, plain, omit, enc in plan:
        v = getattr(obj, attr)
        if omit and not v:
            continue
        d[key] = v if v.__class__ is plain else _fragment(enc(v))
    try:
        out: bytes = orjson.dumps(d)
    except orjson.JSONEncodeError:
        return None
    if not out.isascii() and (b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out):
        return None
    return out.decode()


def _zero_identity() -> NodeIdentity:
    return NodeIdentity(id="", name="", public_key="", created_at=GoTime.zero(), role="")


@dataclass(slots=True)
class HandshakePayload(Payload):
    """``handshake`` (initiator → responder, plain text frame)."""

    identity: NodeIdentity = field(default_factory=_zero_identity)
    challenge: bytes = b""
    version: str = ""
    _FIELDS = (
        Field("identity", "identity", "identity"),
        Field("challenge", "challenge", "bytes", True),
        Field("version", "version", "str"),
    )


@dataclass(slots=True)
class HandshakeAckPayload(Payload):
    """``handshake_ack`` (responder → initiator, plain text frame)."""

    identity: NodeIdentity = field(default_factory=_zero_identity)
    challenge_response: bytes = b""
    accepted: bool = False
    reason: str = ""
    _FIELDS = (
        Field("identity", "identity", "identity"),
        Field("challenge_response", "challengeResponse", "bytes", True),
        Field("accepted", "accepted", "bool"),
        Field("reason", "reason", "str", True),
    )


@dataclass(slots=True)
class PingPayload(Payload):
    """``ping``: ``sent_at`` in Unix milliseconds."""

    sent_at: int = 0
    _FIELDS = (Field("sent_at", "sentAt", "int"),)


@dataclass(slots=True)
class PongPayload(Payload):
    """``pong``: the ping's ``sent_at`` echoed and our ``received_at`` (Unix ms)."""

    sent_at: int = 0
    received_at: int = 0
    _FIELDS = (Field("sent_at", "sentAt", "int"), Field("received_at", "receivedAt", "int"))


@dataclass(slots=True)
class DisconnectPayload(Payload):
    """``disconnect``: Go sends ``("server shutdown", 1004)`` and never acts on one."""

    reason: str = ""
    code: int = 0
    _FIELDS = (Field("reason", "reason", "str"), Field("code", "code", "int"))


@dataclass(slots=True)
class ErrorPayload(Payload):
    """``error`` reply: an :class:`ErrorCode`, the message and optional details."""

    code: int = 0
    message: str = ""
    details: str = ""
    _FIELDS = (
        Field("code", "code", "int"),
        Field("message", "message", "str"),
        Field("details", "details", "str", True),
    )


TRANSPORT_PAYLOAD_TYPES: dict[MessageType, type[Payload] | None] = {
    MessageType.HANDSHAKE: HandshakePayload,
    MessageType.HANDSHAKE_ACK: HandshakeAckPayload,
    MessageType.PING: PingPayload,
    MessageType.PONG: PongPayload,
    MessageType.DISCONNECT: DisconnectPayload,
    MessageType.ERROR: ErrorPayload,
}
"""The payload class of each message type the transport itself speaks. Application
payloads (stats, miners, deploy, logs) belong to the layer that handles them: see
``p2p.controller.payloads.PAYLOAD_TYPES``."""

# --- raw JSON helpers -----------------------------------------------------------------------

_WS_OR_STRING = re.compile(r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)


# Insignificant whitespace in valid JSON always touches a structural character or a quote
# (or is a tab/newline, which strings cannot hold raw); strings rarely trip this check, and
# when they do, the exact compaction below runs and changes nothing inside them.
_MAYBE_INSIGNIFICANT = re.compile(r'[\t\n\r]|[{}\[\],:"] | [{}\[\],:"]')


def _compact(raw: str) -> str:
    """Go's ``json.Compact`` (HTML escaping off) of valid JSON: drop insignificant space."""
    if " " not in raw and "\n" not in raw and "\t" not in raw and "\r" not in raw:
        return raw
    raw = raw.strip(" \t\n\r")
    if _MAYBE_INSIGNIFICANT.search(raw) is None:
        return raw
    return _WS_OR_STRING.sub(lambda m: m.group(1) or "", raw)


def _payload_text(payload: Payload | Any) -> str | None:
    if payload is None:
        return None
    if isinstance(payload, Payload):
        return payload._encode()
    try:
        return marshal(payload, html=False)
    except (TypeError, ValueError) as e:
        raise MessageError(f"cannot marshal payload: {e}") from None


# --- the envelope ---------------------------------------------------------------------------

_ENVELOPE: GoFields[int] = GoFields(
    (("id", 0), ("type", 1), ("from", 2), ("to", 3), ("ts", 4), ("payload", 5), ("replyTo", 6))
)


_TS_CANONICAL = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{0,8}[1-9])?"
    r"(?:Z|[+-](?!00:00)(?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def _set_ts(msg: Message, raw: str) -> None:
    """Validate the raw ``ts`` text as Go would and store it (GoTime built lazily)."""
    if _TS_CANONICAL.fullmatch(raw) is not None and raw[8:10] <= "28":
        msg._ts, msg._ts_text = None, raw  # already exactly what Go would write
        return
    parsed = parse_go_time(raw)
    if parsed is None:
        raise MessageError(f"ts {raw[:64]!r} is not an RFC 3339 time")
    msg._ts = GoTime(parsed[0], parsed[1], parsed[2])
    msg._ts_text = raw if parsed[3] else None


# What Go writes, when no string needs an escape and ts is canonical: one regex match pins
# id, type, from, to and ts in place; the payload then runs to the closing brace or to a
# trailing replyTo member, and must be exactly one JSON value.
_PLAIN = r'([^"\\\x00-\x1f]*)'
_GO_HEAD = re.compile(
    r'\{"id":"'
    + _PLAIN
    + r'","type":"'
    + _PLAIN
    + r'","from":"'
    + _PLAIN
    + r'","to":"'
    + _PLAIN
    + r'","ts":"('
    + _TS_CANONICAL.pattern
    + r')","payload":'
)
_PLAIN_STR = re.compile(r'[^"\\\x00-\x1f]*')
_REPLY_TO = ',"replyTo":"'


def _one_value_impls() -> dict[str, Callable[[str, int, int], bool]]:
    """``one_value(text, start, end)``: ``text[start:end]`` is exactly one JSON value.
    ``"scan"`` is the stdlib C scanner; ``"orjson"`` (when installed) is faster, strict
    RFC 8259 like Go, and where it refuses what Go takes (lone surrogate escapes, absurd
    depth) the caller's slower path decides. Both are kept so tests can hold them equal."""

    def one_value_scan(text: str, start: int, end: int) -> bool:
        try:
            return bool(scan_value(text, start)[1] == end)
        except (ValueError, StopIteration, RecursionError):
            return False

    impls: dict[str, Callable[[str, int, int], bool]] = {"scan": one_value_scan}
    if orjson is not None:
        loads, error = orjson.loads, orjson.JSONDecodeError

        def one_value_orjson(text: str, start: int, end: int) -> bool:
            raw = text[start:end]
            if not raw or raw[0] in " \t\n\r" or raw[-1] in " \t\n\r":
                return False
            try:
                loads(raw)
            except error:
                return False
            return True

        impls["orjson"] = one_value_orjson
    return impls


_ONE_VALUE = _one_value_impls()
_one_value = _ONE_VALUE.get("orjson", _ONE_VALUE["scan"])


def _from_go_json(text: str) -> Message | None:
    """Fast path for exactly what Go writes (keys in Go's order, compact); ``None`` sends
    anything else to the general decoder (which gives the same answers)."""
    m = _GO_HEAD.match(text)
    if m is None or text[m.start(5) + 8 : m.start(5) + 10] > "28":
        return _from_go_json_scan(text)
    p0 = m.end()
    last = len(text) - 1
    if text[last] != "}":
        return None
    end, reply_to = last, ""
    if text[last - 1] == '"':
        k = text.rfind(_REPLY_TO, p0)
        if k >= 0 and _PLAIN_STR.fullmatch(text, k + 12, last - 1) is not None:
            end, reply_to = k, text[k + 12 : last - 1]
    if not _one_value(text, p0, end):
        return _from_go_json_scan(text)
    msg = Message.__new__(Message)
    id_, typ, msg.from_, msg.to, ts = m.groups()
    msg.id, msg.reply_to = id_, reply_to
    msg.payload = _compact(text[p0:end])
    msg.type = _TYPES.get(typ, typ)
    msg._ts, msg._ts_text = None, ts
    return msg


def _from_go_json_scan(text: str) -> Message | None:
    """:func:`_from_go_json` for strings with escapes: every member is pinned in place by
    the C scanner, so duplicates or extra keys cannot slip through."""
    if not text.startswith('{"id":"'):
        return None
    try:
        id_, i = scan_string(text, 7, True)
        if not text.startswith(',"type":"', i):
            return None
        typ, i = scan_string(text, i + 9, True)
        if not text.startswith(',"from":"', i):
            return None
        frm, i = scan_string(text, i + 9, True)
        if not text.startswith(',"to":"', i):
            return None
        to, i = scan_string(text, i + 7, True)
        if not text.startswith(',"ts":"', i):
            return None
        t0 = i + 7
        _, i = scan_string(text, t0, True)
        raw_ts = text[t0 : i - 1]
        if not text.startswith(',"payload":', i):
            return None
        p0 = i + 11
        _, i = scan_value(text, p0)
        raw = text[p0:i]
        last = len(text) - 1
        reply_to = ""
        if i != last:
            if not text.startswith(',"replyTo":"', i):
                return None
            reply_to, i = scan_string(text, i + 12, True)
            if i != last:
                return None
        if text[last] != "}":
            return None
    except (ValueError, StopIteration, RecursionError):
        return None
    msg = Message.__new__(Message)
    msg.id, msg.from_, msg.to, msg.reply_to = id_, frm, to, reply_to
    msg.payload = _compact(raw)
    msg.type = _TYPES.get(typ, typ)
    _set_ts(msg, raw_ts)
    return msg


_Fields = tuple[str, str, str, str, str, str, str]
_native_fields: Callable[[bytes, int], _Fields | None] | None = native("go_envelope_fields")
"""The extension's parser of exactly what Go writes (ASCII, compact, plain strings,
canonical ``ts``, a strictly valid payload): ``(id, type, from, to, ts, payload,
replyTo)``, or ``None`` for anything else, which the Python decoders then judge. It may
refuse more than they do, never accept what they refuse (tests/test_fast_paths.py)."""


def _from_fields(fields: _Fields) -> Message:
    """The message of :data:`_native_fields`' answer (nothing left to check)."""
    msg = Message.__new__(Message)
    msg.id, typ, msg.from_, msg.to, ts, msg.payload, msg.reply_to = fields
    msg.type = _TYPES.get(typ, typ)
    msg._ts = None
    msg._ts_text = ts
    return msg


def parse_json(text: str) -> Any:
    """Plain JSON with Go's grammar (no NaN/Infinity literals): a raw payload field's
    value, e.g. ``start_miner``'s ``config``."""
    return loads(text)


def new_id() -> str:
    """A random UUIDv4 in canonical form, as Go's ``uuid.New().String()``."""
    h = random_bytes(16).hex()
    # version nibble 4; variant bits 10xx: keep the low two bits of the random nibble
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class Message:
    """A go-p2p message envelope (Go ``node.Message``).

    ``payload`` is the payload's raw JSON text (``None`` when absent; both encode as
    ``null``); use :meth:`parse_payload` / :meth:`decode_payload` for typed access and
    :meth:`new` / :meth:`reply` to build messages with a fresh id and timestamp.
    """

    __slots__ = (
        "_ts",
        "_ts_text",
        "from_",
        "id",
        "payload",
        "reply_to",
        "to",
        "type",
    )

    id: str
    type: MessageType | str
    from_: str
    to: str
    payload: str | None
    reply_to: str

    def __init__(
        self,
        *,
        id: str = "",
        type: MessageType | str = "",
        from_: str = "",
        to: str = "",
        ts: GoTime | None = None,
        payload: str | None = None,
        reply_to: str = "",
    ) -> None:
        self.id = id
        self.type = _TYPES.get(type, type) if type.__class__ is str else type
        self.from_ = from_
        self.to = to
        self._ts: GoTime | None = ts
        self._ts_text: str | None = None  # Go's text of ts when known; ts then built lazily
        self.payload = payload
        self.reply_to = reply_to

    # ts is kept as validated text until someone asks for the GoTime (saves ~2 µs a message)
    @property
    def ts(self) -> GoTime:
        """The timestamp (zero time when the message had none)."""
        ts = self._ts
        if ts is None:
            text = self._ts_text
            ts = GoTime.zero() if text is None else GoTime(*parse_canonical(text))
            self._ts = ts
        return ts

    @ts.setter
    def ts(self, value: GoTime) -> None:
        self._ts = value
        self._ts_text = None

    def ts_unix_ns(self) -> int | None:
        """``ts`` as nanoseconds since the Unix epoch, ``None`` for the zero time (no
        ``ts``), without building the :class:`GoTime` (what a ts window check needs)."""
        ts = self._ts
        if ts is None:
            text = self._ts_text
            if text is None:
                return None
            ns = canonical_unix_ns(text)
        else:
            ns = ts.timestamp_ns()
        return None if ns == _ZERO_NS else ns

    # -- construction -----------------------------------------------------------------

    @classmethod
    def new(
        cls,
        type: MessageType | str,
        from_: str,
        to: str = "",
        payload: Payload | Any = None,
        *,
        reply_to: str = "",
    ) -> Message:
        """A fresh message (Go ``NewMessage``): random UUIDv4 ``id``, ``ts`` = now (UTC).
        ``payload`` is a :class:`Payload`, any JSON-able value, or ``None`` (null)."""
        msg = cls.__new__(cls)  # every slot set here: no keyword-argument __init__ per message
        msg.id = new_id()
        msg.type = _TYPES.get(type, type) if type.__class__ is str else type
        msg.from_ = from_
        msg.to = to
        msg.payload = None if payload is None else _payload_text(payload)
        msg.reply_to = reply_to
        sec, nsec = divmod(time.time_ns(), 1_000_000_000)
        msg._ts = None
        msg._ts_text = format_utc(sec, nsec)  # the GoTime is built only if someone asks
        return msg

    def reply(self, type: MessageType | str, payload: Payload | Any = None) -> Message:
        """Go ``Message.Reply``: new id and ts, ``from`` = this message's ``to``, ``to`` =
        its ``from``, ``replyTo`` = its ``id``."""
        return Message.new(type, self.to, self.from_, payload, reply_to=self.id)

    def error_reply(self, from_: str, code: int, message: str, details: str = "") -> Message:
        """An ``error`` reply as the Go worker sends it (``from`` = the worker's own ID)."""
        return Message.new(
            MessageType.ERROR,
            from_,
            self.from_,
            ErrorPayload(int(code), message, details),
            reply_to=self.id,
        )

    # -- JSON -------------------------------------------------------------------------

    def to_json(self) -> bytes:
        """The JSON Go's ``MarshalJSON`` writes for this message (no trailing newline)."""
        out = _to_json_fast(self)
        return to_utf8(self._to_json_text()) if out is None else out

    def to_json_text(self) -> str:
        """:meth:`to_json` as text (what an SMSG body holds)."""
        out = _to_json_fast(self)
        return self._to_json_text() if out is None else out.decode()

    def _to_json_text(self) -> str:
        """:meth:`to_json_text` with the stdlib quoting (the fast path's twin)."""
        ts = self._ts_text
        if ts is None:
            if self._ts is None:
                ts = _ZERO_TS
            else:
                try:
                    ts = self.ts.format()
                except (IdentityError, ValueError) as e:
                    raise MessageError(f"cannot marshal ts: {e}") from None
        p = self.payload
        typ = self.type
        out = (
            f'{{"id":{go_string(self.id, html=False)},'
            f'"type":{go_string(typ.value if isinstance(typ, MessageType) else typ, html=False)},'
            f'"from":{go_string(self.from_, html=False)},"to":{go_string(self.to, html=False)},'
            f'"ts":"{ts}","payload":{"null" if p is None else p}'
        )
        if self.reply_to:
            return out + f',"replyTo":{go_string(self.reply_to, html=False)}}}'
        return out + "}"

    @classmethod
    def from_json(
        cls, data: str | bytes | bytearray | memoryview, *, max_size: int = MAX_MESSAGE_SIZE
    ) -> Message:
        """Decode with Go's ``json.Unmarshal`` rules into ``node.Message``.

        :class:`MessageError` for everything Go refuses: not one JSON value, not an object
        (``null`` is fine: the zero message), a field of the wrong JSON type, a ``ts`` that
        is not RFC 3339 with ``T`` and a zone; and for input over ``max_size`` bytes.
        """
        if data.__class__ is bytes and _native_fields is not None:
            fields = _native_fields(data, max_size)
            if fields is not None:
                return _from_fields(fields)
        if len(data) > max_size:
            raise MessageError(f"message of {len(data)} bytes exceeds {max_size}")
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        fast = _from_go_json(text)
        if fast is not None:
            return fast
        try:
            members = scan_object(text)
        except (ValueError, RecursionError) as e:
            raise MessageError(f"invalid message JSON: {e}") from None
        msg = cls.__new__(cls)
        msg.id = msg.from_ = msg.to = msg.reply_to = ""
        msg.type = ""
        msg.payload = None
        msg._ts = msg._ts_text = None
        for key, value, start, end in members or ():
            idx = _ENVELOPE[key]
            if idx is None:
                continue
            if idx == 5:
                msg.payload = _compact(text[start:end])
                continue
            if value is None:
                continue
            if value.__class__ is not str:
                name = "replyTo" if idx == 6 else key
                raise MessageError(f"cannot unmarshal {_kind(value)} into Message.{name}")
            if idx == 0:
                msg.id = value
            elif idx == 1:
                msg.type = _TYPES.get(value, value)
            elif idx == 2:
                msg.from_ = value
            elif idx == 3:
                msg.to = value
            elif idx == 4:
                # Go parses the raw text between the quotes: escapes are not decoded
                _set_ts(msg, text[start + 1 : end - 1])
            else:
                msg.reply_to = value
        return msg

    # -- payload access ---------------------------------------------------------------

    def parse_payload(self, cls: builtins.type[P]) -> P:
        """The payload decoded into ``cls`` (Go ``ParsePayload``: no payload → zero value)."""
        return cls.from_json(self.payload)

    def decode_payload(
        self, types: Mapping[MessageType, builtins.type[Payload] | None] = TRANSPORT_PAYLOAD_TYPES
    ) -> Payload | None:
        """The payload as the class ``types`` gives for this type (``None`` for types it
        maps to ``None`` or does not know). The envelope knows no payload classes itself."""
        cls = types.get(self.type) if isinstance(self.type, MessageType) else None
        return None if cls is None else cls.from_json(self.payload)

    def payload_value(self) -> Any:
        """The payload parsed as plain JSON (``None`` when absent or null)."""
        return None if self.payload is None else loads(self.payload)

    # -- dunder -----------------------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        payload = "null" if self.payload is None else self.payload  # both marshal as null
        return (self.id, str(self.type), self.from_, self.to, self.ts, payload, self.reply_to)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Message(id={self.id!r}, type={str(self.type)!r}, from_={self.from_!r}, "
            f"to={self.to!r}, ts={self.ts}, reply_to={self.reply_to!r})"
        )


def _make_to_json_fast() -> Callable[[Message], bytes | None]:
    """orjson writes the envelope in insertion order with the payload as a raw fragment:
    Go's bytes (HTML escaping off) except for U+2028/U+2029, which Go always escapes, and
    lone surrogates, which orjson refuses; ``None`` sends those (and a message whose ts is
    only a GoTime) to :meth:`Message._to_json_text`. ``type`` goes in as is: orjson
    writes an enum member as its value and a ``str`` subclass as its text, both what the
    slow path writes."""
    fragment = getattr(orjson, "Fragment", None)
    if fragment is None:
        return lambda _msg: None
    dumps, error = orjson.dumps, orjson.JSONEncodeError

    def to_json_fast(msg: Message) -> bytes | None:
        ts = msg._ts_text
        if ts is None:
            return None
        p = msg.payload
        d = {
            "id": msg.id,
            "type": msg.type,  # orjson writes a MessageType as its value (no Enum.value call)
            "from": msg.from_,
            "to": msg.to,
            "ts": ts,
            "payload": None if p is None else fragment(p),
        }
        if msg.reply_to:
            d["replyTo"] = msg.reply_to
        try:
            out: bytes = dumps(d)
        except error:
            return None
        # U+2028/U+2029; isascii is one C pass, a 3-byte substring search costs ~1 µs
        if not out.isascii() and (b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out):
            return None
        return out

    return to_json_fast


_to_json_fast = _make_to_json_fast()


# --- response validation (Go protocol.go) ----------------------------------------------------


def validate_response(resp: Message | None, expected: MessageType | str) -> None:
    """Go ``ValidateResponse``: :class:`ResponseError` for a missing or mistyped response,
    :class:`ProtocolError` (code, message) for an ``error`` reply."""
    if resp is None:
        raise ResponseError("ResponseHandler.ValidateResponse: nil response")
    if resp.type == MessageType.ERROR:
        try:
            err = ErrorPayload.from_json(resp.payload)
        except MessageError:
            raise ProtocolError(ErrorCode.UNKNOWN, "unable to parse error response") from None
        raise ProtocolError(err.code, err.message)
    if resp.type != expected:
        raise ResponseError(
            "ResponseHandler.ValidateResponse: unexpected response type: "
            f"expected {expected}, got {resp.type}"
        )


def parse_response(
    resp: Message | None, expected: MessageType | str, cls: type[P] | None = None
) -> P | None:
    """Go ``ParseResponse``: validate, then decode the payload into ``cls`` (if given)."""
    validate_response(resp, expected)
    if cls is None:
        return None
    assert resp is not None
    try:
        return cls.from_json(resp.payload)
    except MessageError as e:
        raise MessageError(
            f"ResponseHandler.ParseResponse: failed to parse {expected} payload: {e}"
        ) from None
