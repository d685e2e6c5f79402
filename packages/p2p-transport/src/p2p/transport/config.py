"""Every limit of the transport in one validated, immutable object.

The first block mirrors the Go reference's ``DefaultTransportConfig`` and its hard-coded
timeouts; the second holds what this port adds (rate limiting knobs, bounded dedup, replay
window, per-IP handshake limits, write timeouts, handler bounds); the last group bounds the
memory one connection can hold and who gets a socket (the admission table). Each value is a
security parameter: bounded, positive, documented in the package README.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from p2p.transport.errors import (
    ConfigError,
)

__all__ = ["DEFAULT_LISTEN_PORT", "ConfigError", "TransportConfig", "parse_listen_addr"]

DEFAULT_LISTEN_PORT = 9091
FEATURE_1_1 = "p2p/1.1"
"""Same as ``handshake.FEATURE_1_1`` (spelled here to keep this module import-free)."""
MIB = 1 << 20


def parse_listen_addr(addr: str) -> tuple[str, int]:
    """Split a Go-style listen address (``":9091"``, ``"host:port"``, ``"[::1]:port"``)."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError("listen_addr", f"expected [host]:port, got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if port > 65535:
        raise ConfigError("listen_addr", f"port {port} out of range")
    return (host or "0.0.0.0", port)


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Limits and endpoints of one :class:`~p2p.transport.Transport` (seconds, bytes, counts).

    ``listen_addr`` (Go form, e.g. ``":9091"``) may be given instead of
    ``listen_host``/``listen_port``; after construction it always reflects them.
    """

    # --- the reference's knobs (DefaultTransportConfig + hard-coded values) ---
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_LISTEN_PORT
    listen_addr: str | None = None
    ws_path: str = "/ws"
    max_conns: int = 100
    """Established *inbound* connections, probation included (Go's MaxConns). Our own dials
    never take these slots: they have ``max_outbound_conns``."""
    max_outbound_conns: int = 1024
    """Connections we dial, counted from the start of the dial; a dial beyond it fails at
    once with :class:`~p2p.transport.ConnectError` ("outbound budget full")."""
    max_message_size: int = MIB
    ping_interval: float = 30.0
    pong_timeout: float = 10.0
    handshake_timeout: float = 10.0
    """Listener: the HTTP upgrade, then one deadline for its whole exchange (hello in, ack
    out, 1.1's third message in). Dialler: the wait for the ack (and 1.1's third message
    out); its TCP connect and upgrade have ``connect_timeout``."""
    connect_timeout: float = 10.0
    send_timeout: float = 10.0
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    tls_ca_path: str | None = None
    """Client side: a CA bundle or a server certificate to trust for ``wss`` dials."""
    dedup_ttl: float = 300.0
    rate_burst: int = 100
    rate_refill_per_s: float = 50.0
    # --- what this port adds ---
    dedup_max_entries: int = 100_000
    ts_window: float | None = 300.0
    """Drop messages whose ``ts`` is further than this from now (``None``: never check)."""
    max_handshake_message_size: int = 64 * 1024
    max_handshakes_per_ip: int = 8
    """Concurrent in-handshake inbound connections from one source: one address prefix
    (``ipv4_prefix_len``/``ipv6_prefix_len``, by default one IPv4 address or IPv6 /64); the
    new-handshake bucket below is keyed the same way."""
    handshake_burst_per_ip: int = 20
    handshake_refill_per_ip_s: float = 5.0
    max_tracked_ips: int = 4096
    handshake_turn_budget: float = 0.005
    """Seconds of one event-loop turn that handshake steps (ours and inbound) may use; the
    rest wait for the next turn, so a fleet connecting at once stalls timers and traffic
    for about two budgets, not for every ready handshake (``p2p.transport.pacing``).
    0 turns pacing off."""
    max_undecryptable_in_a_row: int = 32
    handler_concurrency: int = 32
    """Async handler invocations running at once per connection."""
    handler_queue_size: int = 1024
    """Messages waiting for a handler slot per connection before drops (reason ``overload``)."""
    broadcast_timeout: float = 10.0
    close_timeout: float = 2.0
    answer_pings: bool = True
    """The transport answers every ``ping`` with a ``pong`` itself (turn off if a Worker does)."""
    features: tuple[str, ...] = field(default_factory=tuple)
    """Extra handshake ``features`` to advertise (e.g. ``("ueps/1",)``); empty: field not sent.
    ``"p2p/1.1"`` offers protocol 1.1 (Noise XX; Go peers ignore it and keep 1.0)."""
    # -- protocol 1.1 (issue 16)
    protocol_1_1: bool | None = None
    """Offer protocol 1.1: ``True`` adds ``"p2p/1.1"`` to ``features``, ``False`` never
    offers it (removes it), ``None`` leaves it to ``features`` (a bare Transport: off unless
    listed; a ``p2p.controller.Node``: on)."""
    require_1_1: bool = False
    """Refuse protocol 1.0 both ways (all-Python fleets); implies ``"p2p/1.1"`` in
    ``features``. Off by default, so Go peers connect."""
    rekey_after_messages: int = 1 << 20
    """Protocol 1.1: each direction's key is replaced (Noise REKEY, §11.3) after this many
    messages; both sides count the same frames, so no message announces it."""
    # -- identity/replay (hold the line)
    replay_max_ids_per_peer: int = 4096
    """Message ids remembered per peer (public key); past it the lowest ts is forgotten and
    becomes that peer's floor (ts at or below it are refused). ``dedup_max_entries`` caps the
    sum over all peers; ids live until their ``ts + ts_window`` (or arrival + ``dedup_ttl``
    with ``ts_window=None``)."""
    replay_max_peers: int = 16384
    """Peers with a replay table; past it the table with the oldest newest-ts is dropped and
    that ts becomes the floor of every peer without a table."""
    max_rate_limited: int = 200
    """A connection with more rate-limited frames than this within ``rate_limited_window``
    is closed ("rate limit exceeded")."""
    rate_limited_window: float = 10.0
    # -- memory and admission (hold the line)
    write_limit: int = 64 * 1024
    """High-water mark of a socket's write buffer: a send waits for the buffer to drain
    below it (low-water: a quarter)."""
    max_outbound_bytes: int = 4 * MIB
    """Bytes buffered for one established connection (ours and the library's, e.g. pongs to
    WebSocket pings); a connection past it is closed (``outbound overflow``)."""
    max_handshake_outbound_bytes: int = 64 * 1024
    """The same bound before the handshake completes (we only send the ack then)."""
    recv_queue_frames: int = 4
    """Messages queued per connection before the socket stops being read (it resumes at a
    quarter)."""
    max_inflight_bytes: int = 2 * MIB
    """Wire bytes of one connection's messages whose async handlers are queued or running;
    above it the connection's reads pause until handlers finish (back-pressure)."""
    max_pending_handshakes: int = 64
    """Inbound sockets between the HTTP upgrade and the end of the handshake, all sources
    (separate from ``max_conns``); when full, a newcomer evicts the oldest pending socket of
    the address prefix holding the most, or is refused (503) if its own prefix holds as many."""
    max_conns_per_prefix: int = 32
    """Established inbound connections of unknown peers from one address prefix."""
    known_reserve_fraction: float = 0.1
    """Share of ``max_conns`` (rounded down) that only known peers (the gate's optional
    ``is_peer_known``) and our own dials may take."""
    ipv4_prefix_len: int = 32
    """IPv4 prefix length that makes one source for the per-prefix limits (32: per address)."""
    ipv6_prefix_len: int = 64
    """IPv6 prefix length that makes one source (64: one subnet, what one host usually has)."""

    def __post_init__(self) -> None:
        if self.listen_addr is not None:
            host, port = parse_listen_addr(self.listen_addr)
            object.__setattr__(self, "listen_host", host)
            object.__setattr__(self, "listen_port", port)
        if not 0 <= self.listen_port <= 65535:
            raise ConfigError("listen_port", f"{self.listen_port} out of range 0..65535")
        host = self.listen_host
        shown = f"[{host}]" if ":" in host else host
        object.__setattr__(self, "listen_addr", f"{shown}:{self.listen_port}")
        if not self.ws_path.startswith("/"):
            raise ConfigError("ws_path", "must start with '/'")
        for name in (
            "max_conns",
            "max_outbound_conns",
            "max_handshakes_per_ip",
            "handshake_burst_per_ip",
            "max_tracked_ips",
            "max_undecryptable_in_a_row",
            "handler_concurrency",
            "handler_queue_size",
            "rate_burst",
            "dedup_max_entries",
            "recv_queue_frames",
            "max_pending_handshakes",
            "max_conns_per_prefix",
        ):
            _positive_int(name, getattr(self, name))
        _positive_int("write_limit", self.write_limit, upper=64 * MIB)
        _positive_int("max_outbound_bytes", self.max_outbound_bytes, upper=1024 * MIB)
        _positive_int(
            "max_handshake_outbound_bytes", self.max_handshake_outbound_bytes, upper=1024 * MIB
        )
        _positive_int("max_inflight_bytes", self.max_inflight_bytes, upper=1024 * MIB)
        if self.max_outbound_bytes < self.write_limit + self.max_message_size:
            raise ConfigError(
                "max_outbound_bytes",
                f"must be at least write_limit + max_message_size "
                f"({self.write_limit + self.max_message_size}), got {self.max_outbound_bytes}",
            )
        if self.recv_queue_frames > 1024:
            raise ConfigError("recv_queue_frames", f"must be <= 1024, got {self.recv_queue_frames}")
        frac = self.known_reserve_fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac < 1:
            raise ConfigError("known_reserve_fraction", f"must be in [0, 1), got {frac!r}")
        _positive_int("ipv4_prefix_len", self.ipv4_prefix_len, upper=32)
        _positive_int("ipv6_prefix_len", self.ipv6_prefix_len, upper=128)
        _positive_int("max_message_size", self.max_message_size, upper=256 * MIB)
        _positive_int(
            "max_handshake_message_size", self.max_handshake_message_size, upper=256 * MIB
        )
        for name in (
            "ping_interval",
            "pong_timeout",
            "handshake_timeout",
            "connect_timeout",
            "send_timeout",
            "dedup_ttl",
            "broadcast_timeout",
            "close_timeout",
        ):
            _positive_float(name, getattr(self, name))
        for name in ("rate_refill_per_s", "handshake_refill_per_ip_s"):
            _positive_float(name, getattr(self, name), upper=1e9, unit="per second")
        if self.ts_window is not None:
            _positive_float("ts_window", self.ts_window)
        budget = self.handshake_turn_budget
        if isinstance(budget, bool) or budget != 0:
            _positive_float("handshake_turn_budget", budget, upper=1.0)
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            raise ConfigError("tls_cert_path", "tls_cert_path and tls_key_path go together")
        object.__setattr__(self, "features", tuple(self.features))
        if not isinstance(self.require_1_1, bool):
            raise ConfigError("require_1_1", f"must be a bool, got {self.require_1_1!r}")
        if self.protocol_1_1 is not None and not isinstance(self.protocol_1_1, bool):
            raise ConfigError("protocol_1_1", f"must be a bool or None, got {self.protocol_1_1!r}")
        if self.protocol_1_1 is False:
            if self.require_1_1:
                raise ConfigError(
                    "require_1_1", "cannot require protocol 1.1 with protocol_1_1=False"
                )
            object.__setattr__(
                self, "features", tuple(f for f in self.features if f != FEATURE_1_1)
            )
        elif (self.require_1_1 or self.protocol_1_1) and FEATURE_1_1 not in self.features:
            object.__setattr__(self, "features", (*self.features, FEATURE_1_1))
        _positive_int("rekey_after_messages", self.rekey_after_messages, upper=1 << 40)
        for feat in self.features:
            if not isinstance(feat, str) or not feat or len(feat) > 64:
                raise ConfigError("features", f"bad feature name {feat!r}")
        # -- identity/replay (hold the line)
        for name in ("replay_max_ids_per_peer", "replay_max_peers", "max_rate_limited"):
            _positive_int(name, getattr(self, name), upper=10_000_000)
        _positive_float("rate_limited_window", self.rate_limited_window, upper=3600.0)

    @property
    def tls_enabled(self) -> bool:
        """Whether the server side speaks TLS (both cert and key configured)."""
        return self.tls_cert_path is not None and self.tls_key_path is not None

    @property
    def handshake_size_limit(self) -> int:
        """Largest handshake message accepted: the smaller of the two size limits."""
        return min(self.max_handshake_message_size, self.max_message_size)

    @property
    def known_reserve(self) -> int:
        """Established slots kept for known peers: ``floor(max_conns * known_reserve_fraction)``."""
        return int(self.max_conns * self.known_reserve_fraction)

    @property
    def idle_timeout(self) -> float:
        """Silence after which a peer is dropped: ``ping_interval + pong_timeout`` (Go: 40 s)."""
        return self.ping_interval + self.pong_timeout

    def replace(self, **changes: object) -> TransportConfig:
        """A copy with some fields changed (validated again)."""
        if "listen_host" in changes or "listen_port" in changes:
            changes.setdefault("listen_addr", None)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _positive_int(name: str, value: object, *, upper: int = 1 << 31) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= upper:
        raise ConfigError(name, f"must be an int in 1..{upper}, got {value!r}")


def _positive_float(
    name: str, value: object, *, upper: float = 7 * 86400.0, unit: str = "seconds"
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number ({unit}), got {value!r}")
    if not math.isfinite(value) or not 0 < value <= upper:
        raise ConfigError(name, f"must be in (0, {upper:g}] {unit}, got {value!r}")
