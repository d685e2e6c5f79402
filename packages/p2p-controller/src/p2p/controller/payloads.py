"""The controller's application payloads: what a controller and a worker say to each other
about stats, miners, deploys and logs, each with Go's field order, ``omitempty`` and decoding
rules (built on :class:`p2p.transport.Payload` and :class:`p2p.transport.Field`).

The transport keeps the envelope and the payloads it speaks itself (handshake, ping/pong,
disconnect, error); :data:`PAYLOAD_TYPES` maps every go-p2p message type to its payload
class, for ``Message.decode_payload(PAYLOAD_TYPES)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2p.transport import (
    TRANSPORT_PAYLOAD_TYPES,
    Field,
    MessageType,
    Payload,
    parse_json,
)

try:  # optional (CPython wheels): without it every payload takes the generic decoder
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the no-orjson environment
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "PAYLOAD_TYPES",
    "DeployAckPayload",
    "DeployPayload",
    "GetLogsPayload",
    "LogsPayload",
    "MinerAckPayload",
    "MinerStatsItem",
    "StartMinerPayload",
    "StatsPayload",
    "StopMinerPayload",
]


@dataclass(slots=True)
class MinerStatsItem(Payload):
    """One miner in a ``stats`` reply (hashrate float, uptime seconds)."""

    name: str = ""
    type: str = ""
    hashrate: float = 0.0
    shares: int = 0
    rejected: int = 0
    uptime: int = 0
    pool: str = ""
    algorithm: str = ""
    cpu_threads: int = 0
    _FIELDS = (
        Field("name", "name", "str"),
        Field("type", "type", "str"),
        Field("hashrate", "hashrate", "float"),
        Field("shares", "shares", "int"),
        Field("rejected", "rejected", "int"),
        Field("uptime", "uptime", "int"),
        Field("pool", "pool", "str"),
        Field("algorithm", "algorithm", "str"),
        Field("cpu_threads", "cpuThreads", "int", True),
    )


@dataclass(slots=True)
class StatsPayload(Payload):
    """``stats`` reply. Go always sends ``miners`` as an array; its zero value is null.

    Decoding takes a fast path (:func:`_decode_canonical`) when the text is exactly
    what orjson would write for it, as our workers send it; anything else goes to the
    generic Go-compatible decoder, so the result (or error) is the same either way.
    """

    node_id: str = ""
    node_name: str = ""
    miners: list[MinerStatsItem] | None = None
    uptime: int = 0
    _FIELDS = (
        Field("node_id", "nodeId", "str"),
        Field("node_name", "nodeName", "str"),
        Field("miners", "miners", "structs", item=MinerStatsItem),
        Field("uptime", "uptime", "int"),
    )

    @classmethod
    def from_json(cls, data: str | bytes | None) -> StatsPayload:
        if data is not None and cls is StatsPayload:
            fast = _decode_canonical(data)
            if fast is not None:
                return fast
        return super(StatsPayload, cls).from_json(data)


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
#: Above this the generic decoder decides (its size bound included).
_FAST_MAX_BYTES = 1 << 20


def _decode_canonical(data: str | bytes) -> StatsPayload | None:
    """A ``stats`` payload decoded with orjson, or ``None`` to use the generic decoder.

    Taken only when re-encoding the parsed object gives back the exact bytes received:
    then there are no duplicate keys, no whitespace and no escapes the two decoders
    could read differently; and only when every key is a field's exact Go name and every
    value has the field's exact JSON type (int64 range for ints). In every such case
    the generic decoder gives an equal payload (tests/test_payloads.py checks both).
    """
    if _orjson is None or len(data) > _FAST_MAX_BYTES:
        return None
    try:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        obj = _orjson.loads(raw)
        if type(obj) is not dict or _orjson.dumps(obj) != raw:
            return None
    except (ValueError, TypeError):  # orjson's errors are ValueError/TypeError subclasses
        return None
    if not obj.keys() <= _STATS_KEYS:
        return None  # unknown, or a case-folded match: the generic decoder's rules
    out = StatsPayload()
    # Go: null leaves a field alone, except a slice (nil)
    v = obj.get("nodeId")
    if v is not None:
        if type(v) is not str:
            return None
        out.node_id = v
    v = obj.get("nodeName")
    if v is not None:
        if type(v) is not str:
            return None
        out.node_name = v
    v = obj.get("uptime")
    if v is not None:
        if type(v) is not int or not _INT64_MIN <= v <= _INT64_MAX:
            return None
        out.uptime = v
    if "miners" in obj:
        v = obj["miners"]
        if v is not None:
            if type(v) is not list:
                return None
            miners = []
            for item in v:
                if item is None:
                    miners.append(MinerStatsItem())
                    continue
                if type(item) is not dict:
                    return None
                miner = _fill(MinerStatsItem(), item, _MINER_PLAN)
                if miner is None:
                    return None
                miners.append(miner)
            v = miners
        out.miners = v
    return out


def _fill(
    obj: MinerStatsItem, values: dict[str, Any], plan: dict[str, tuple[str, str]]
) -> MinerStatsItem | None:
    """Set `obj`'s flat fields (str, int, float) from a parsed JSON object as Go would,
    or ``None`` (give up) on any key or value the fast path does not handle exactly."""
    for key, value in values.items():
        spec = plan.get(key)
        if spec is None:
            return None
        if value is None:
            continue  # Go: null leaves a non-slice field alone
        attr, kind = spec
        vt = type(value)
        if kind == "str":
            if vt is not str:
                return None
        elif kind == "int":
            if vt is not int or not _INT64_MIN <= value <= _INT64_MAX:
                return None
        elif kind == "float":
            if vt is int:
                setattr(obj, attr, float(value))
                continue
            if vt is not float:
                return None
        else:
            return None
        setattr(obj, attr, value)
    return obj


def _plan(cls: type[Payload]) -> dict[str, tuple[str, str]]:
    return {f.key: (f.attr, f.kind) for f in cls._FIELDS}


_MINER_PLAN = _plan(MinerStatsItem)
_STATS_KEYS = frozenset(f.key for f in StatsPayload._FIELDS)


@dataclass(slots=True)
class StartMinerPayload(Payload):
    """``start_miner``. ``config`` is raw JSON text (Go ``json.RawMessage``), or None."""

    miner_type: str = ""
    profile_id: str = ""
    config: str | None = None
    _FIELDS = (
        Field("miner_type", "minerType", "str"),
        Field("profile_id", "profileId", "str", True),
        Field("config", "config", "raw", True),
    )

    def config_value(self) -> Any:
        """``config`` parsed (``None`` when absent)."""
        return None if self.config is None else parse_json(self.config)


@dataclass(slots=True)
class StopMinerPayload(Payload):
    """``stop_miner``."""

    miner_name: str = ""
    _FIELDS = (Field("miner_name", "minerName", "str"),)


@dataclass(slots=True)
class MinerAckPayload(Payload):
    """``miner_ack`` reply to start/stop."""

    success: bool = False
    miner_name: str = ""
    error: str = ""
    _FIELDS = (
        Field("success", "success", "bool"),
        Field("miner_name", "minerName", "str", True),
        Field("error", "error", "str", True),
    )


@dataclass(slots=True)
class DeployPayload(Payload):
    """``deploy``: a bundle; ``data`` is bytes (base64 on the wire, null when None)."""

    type: str = ""
    data: bytes | None = None
    checksum: str = ""
    name: str = ""
    _FIELDS = (
        Field("type", "type", "str"),
        Field("data", "data", "bytes"),
        Field("checksum", "checksum", "str"),
        Field("name", "name", "str"),
    )


@dataclass(slots=True)
class DeployAckPayload(Payload):
    """``deploy_ack`` reply."""

    success: bool = False
    name: str = ""
    error: str = ""
    _FIELDS = (
        Field("success", "success", "bool"),
        Field("name", "name", "str", True),
        Field("error", "error", "str", True),
    )


@dataclass(slots=True)
class GetLogsPayload(Payload):
    """``get_logs``: ``since`` is Unix **milliseconds** (0 = omitted)."""

    miner_name: str = ""
    lines: int = 0
    since: int = 0
    _FIELDS = (
        Field("miner_name", "minerName", "str"),
        Field("lines", "lines", "int"),
        Field("since", "since", "int", True),
    )


@dataclass(slots=True)
class LogsPayload(Payload):
    """``logs`` reply; Go may send ``"lines":null`` (``lines is None``)."""

    miner_name: str = ""
    lines: list[str] | None = None
    has_more: bool = False
    _FIELDS = (
        Field("miner_name", "minerName", "str"),
        Field("lines", "lines", "strlist"),
        Field("has_more", "hasMore", "bool"),
    )


PAYLOAD_TYPES: dict[MessageType, type[Payload] | None] = {
    **TRANSPORT_PAYLOAD_TYPES,
    MessageType.GET_STATS: None,
    MessageType.STATS: StatsPayload,
    MessageType.START_MINER: StartMinerPayload,
    MessageType.STOP_MINER: StopMinerPayload,
    MessageType.MINER_ACK: MinerAckPayload,
    MessageType.DEPLOY: DeployPayload,
    MessageType.DEPLOY_ACK: DeployAckPayload,
    MessageType.GET_LOGS: GetLogsPayload,
    MessageType.LOGS: LogsPayload,
}
"""The payload class of each go-p2p message type (``None``: Go sends ``null``)."""
