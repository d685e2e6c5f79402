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
    """``stats`` reply. Go always sends ``miners`` as an array; its zero value is null."""

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
