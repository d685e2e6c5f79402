"""Who gets a socket, and who keeps it after the handshake: a sans-I/O admission table.

No sockets, no clock of its own: the transport feeds events with ``now`` and acts on the
verdicts. A connection is any hashable key (the transport uses its websockets connection).

Rules (the table ``_TRANSITIONS`` below is the state machine; these say why):

1. Three budgets. ``max_pending_handshakes`` counts inbound sockets between the HTTP
   upgrade and the end of the handshake; ``max_conns`` counts established *inbound*
   connections (probation included); ``max_outbound_conns`` counts our own dials, from the
   moment a dial starts. A crowd of silent upgrades can fill the first, never the second;
   a controller holding many outbound connections never refuses an inbound one for it,
   and peers dialling in never stop it from dialling out.
2. A *source* is an address prefix (IPv4 /``ipv4_prefix_len``, IPv6 /``ipv6_prefix_len``;
   IPv4-mapped IPv6 counts as IPv4). Per source: at most ``max_pending_per_prefix``
   pending sockets (429), a token bucket of new upgrades (429), and at most
   ``max_conns_per_prefix`` established connections of peers that are not known.
3. Before the hello nobody is known: all a socket has is its source. So when the pending
   budget is full, the newcomer takes the slot of the *oldest* pending socket of the
   *heaviest* source (the one holding the most pending slots), unless its own source holds
   as many (then 503). A flood from a few prefixes therefore evicts itself; an honest
   handshake (milliseconds) is only at risk when ``max_pending_handshakes`` sockets from
   sources at least as light as its own arrive while it is pending.
4. Upgrades are refused (503 ``Too many connections``, Go's answer) only when every
   inbound slot is taken. After the hello, a peer that is not known may take at most
   ``max_conns - reserve`` slots (``reserve`` is kept for known peers) and
   ``max_conns_per_prefix`` per source. "Known" is what the gate says about the *claimed*
   identity, which protocol 1.0 does not prove: an impostor claiming known identities gets
   at most one connection (plus one on probation) per identity it names.
5. A second connection for a peer that already has one (replacement or probation) is
   admitted over the totals: it adds at most one socket per connected peer.
6. A dial is refused (``outbound_full``) when ``max_outbound_conns`` dials are in progress
   or established; it counts as a known connection of its source prefix, never against an
   inbound budget. ``outbound_established`` without a prior ``dial_requested`` (a dial
   nobody reserved) is admitted over the budget but counted.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from p2p.transport._prefix import ipv4_prefix
from p2p.transport.errors import (
    AdmissionError,
)
from p2p.transport.limits import KeyedBuckets

if TYPE_CHECKING:
    from p2p.transport.config import TransportConfig

__all__ = [
    "TOO_MANY_CONNECTIONS",
    "Admission",
    "AdmissionError",
    "AdmissionLimits",
    "Admit",
    "ConnState",
    "Event",
    "Refuse",
    "address_prefix",
]

TOO_MANY_CONNECTIONS = "Too many connections\n"


class ConnState(enum.Enum):
    NEW = "new"
    PENDING = "pending"
    DIALLING = "dialling"
    ESTABLISHED = "established"
    CLOSED = "closed"


class Event(enum.Enum):
    UPGRADE_REQUESTED = "upgrade_requested"
    DIAL_REQUESTED = "dial_requested"
    HANDSHAKE_DONE = "handshake_done"
    OUTBOUND_ESTABLISHED = "outbound_established"
    CLOSED = "closed"


# (state, event) -> state on success; a refusal or an eviction always leads to CLOSED.
_TRANSITIONS: dict[tuple[ConnState, Event], ConnState] = {
    (ConnState.NEW, Event.UPGRADE_REQUESTED): ConnState.PENDING,
    (ConnState.NEW, Event.OUTBOUND_ESTABLISHED): ConnState.ESTABLISHED,
    (ConnState.NEW, Event.DIAL_REQUESTED): ConnState.DIALLING,
    (ConnState.DIALLING, Event.OUTBOUND_ESTABLISHED): ConnState.ESTABLISHED,
    (ConnState.DIALLING, Event.CLOSED): ConnState.CLOSED,
    (ConnState.PENDING, Event.HANDSHAKE_DONE): ConnState.ESTABLISHED,
    (ConnState.PENDING, Event.CLOSED): ConnState.CLOSED,
    (ConnState.ESTABLISHED, Event.CLOSED): ConnState.CLOSED,
    (ConnState.NEW, Event.CLOSED): ConnState.CLOSED,  # closing twice / unknown: no-op
}


@dataclass(frozen=True, slots=True)
class Admit:
    """Go ahead; first close the ``evict`` connections (their slots were given away)."""

    evict: tuple[Hashable, ...] = ()


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse: ``status`` and ``body`` for an HTTP answer (before the upgrade), ``reason``
    for a handshake reject ack (after the hello), ``counter`` names the statistic."""

    status: int
    body: str
    counter: str
    reason: str = ""


Verdict = Admit | Refuse


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    max_conns: int = 100
    max_outbound: int = 1024
    max_pending: int = 64
    max_pending_per_prefix: int = 8
    max_conns_per_prefix: int = 32
    reserve: int = 10
    ipv4_prefix_len: int = 32
    ipv6_prefix_len: int = 64
    burst_per_prefix: int = 20
    refill_per_prefix_s: float = 5.0
    max_tracked_prefixes: int = 4096

    @classmethod
    def from_config(cls, cfg: TransportConfig) -> AdmissionLimits:
        return cls(
            max_conns=cfg.max_conns,
            max_outbound=cfg.max_outbound_conns,
            max_pending=cfg.max_pending_handshakes,
            max_pending_per_prefix=cfg.max_handshakes_per_ip,
            max_conns_per_prefix=cfg.max_conns_per_prefix,
            reserve=cfg.known_reserve,
            ipv4_prefix_len=cfg.ipv4_prefix_len,
            ipv6_prefix_len=cfg.ipv6_prefix_len,
            burst_per_prefix=cfg.handshake_burst_per_ip,
            refill_per_prefix_s=cfg.handshake_refill_per_ip_s,
            max_tracked_prefixes=cfg.max_tracked_ips,
        )


def address_prefix(host: str, ipv4_len: int = 32, ipv6_len: int = 64) -> str:
    """The source a host belongs to, e.g. ``"10.1.2.3/32"`` or ``"2001:db8::/64"``.

    IPv4-mapped IPv6 addresses count as IPv4; anything unparsable is its own source.
    """
    fast = ipv4_prefix(host, ipv4_len)
    if fast is not None:
        return fast
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    length = ipv4_len if addr.version == 4 else ipv6_len
    return str(ipaddress.ip_network((addr, length), strict=False))


@dataclass(slots=True)
class _Conn:
    state: ConnState
    prefix: str
    known: bool = False
    outbound: bool = False


@dataclass(slots=True)
class _Source:
    pending: OrderedDict[Hashable, int] = field(default_factory=OrderedDict)  # key -> arrival
    established: int = 0
    established_unknown: int = 0


class Admission:
    """The admission table of one listening transport (see the module rules)."""

    def __init__(self, limits: AdmissionLimits | None = None) -> None:
        self.limits = limits if limits is not None else AdmissionLimits()
        lim = self.limits
        self._conns: dict[Hashable, _Conn] = {}
        self._pending: dict[Hashable, None] = {}
        self._arrivals = 0
        self._sources: dict[str, _Source] = {}
        self._established = 0  # inbound only
        self._established_unknown = 0
        self._outbound = 0  # dialling or established
        self._buckets = KeyedBuckets(
            lim.burst_per_prefix, lim.refill_per_prefix_s, lim.max_tracked_prefixes
        )

    # --- queries --------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def established(self) -> int:
        """Established inbound connections (what ``max_conns`` bounds)."""
        return self._established

    @property
    def outbound(self) -> int:
        """Our dials in progress or established (what ``max_outbound`` bounds)."""
        return self._outbound

    def state(self, key: Hashable) -> ConnState:
        conn = self._conns.get(key)
        return conn.state if conn is not None else ConnState.NEW

    def prefix_of(self, host: str) -> str:
        return address_prefix(host, self.limits.ipv4_prefix_len, self.limits.ipv6_prefix_len)

    def pending_from(self, prefix: str) -> int:
        source = self._sources.get(prefix)
        return len(source.pending) if source else 0

    def established_from(self, prefix: str) -> int:
        source = self._sources.get(prefix)
        return source.established if source else 0

    # --- events ---------------------------------------------------------------------
    def upgrade_requested(self, key: Hashable, host: str, now: float) -> Verdict:
        """An inbound HTTP upgrade from ``host``: admit it as a pending handshake or refuse."""
        self._check(key, Event.UPGRADE_REQUESTED)
        lim = self.limits
        prefix = self.prefix_of(host)
        if self._established >= lim.max_conns:
            return Refuse(503, TOO_MANY_CONNECTIONS, "max_conns")
        if self.pending_from(prefix) >= lim.max_pending_per_prefix:
            return Refuse(429, "Too many pending handshakes\n", "ip_concurrent")
        if not self._buckets.allow(prefix, now):
            return Refuse(429, "Too many handshakes\n", "ip_rate")
        evict: tuple[Hashable, ...] = ()
        if len(self._pending) >= lim.max_pending:
            victim = self._eviction_victim(prefix)
            if victim is None:
                return Refuse(503, "Too many pending handshakes\n", "pending_full")
            self.closed(victim)
            evict = (victim,)
        self._conns[key] = _Conn(ConnState.PENDING, prefix)
        self._pending[key] = None
        self._arrivals += 1
        self._source(prefix).pending[key] = self._arrivals
        return Admit(evict)

    def handshake_done(self, key: Hashable, *, known: bool, duplicate: bool = False) -> Verdict:
        """The hello of pending ``key`` was accepted: may it become an established connection?

        ``known``: the gate knows the claimed identity; ``duplicate``: that identity already
        has a connection here. A refusal closes ``key`` (send a reject ack, then close).
        """
        self._check(key, Event.HANDSHAKE_DONE)
        lim = self.limits
        conn = self._conns[key]
        source = self._source(conn.prefix)
        refusal: Refuse | None = None
        if not duplicate:
            if self._established >= lim.max_conns:
                refusal = Refuse(503, TOO_MANY_CONNECTIONS, "max_conns", "too many connections")
            elif not known and self._established_unknown >= lim.max_conns - lim.reserve:
                refusal = Refuse(503, TOO_MANY_CONNECTIONS, "reserved", "too many connections")
            elif not known and source.established_unknown >= lim.max_conns_per_prefix:
                refusal = Refuse(
                    503, TOO_MANY_CONNECTIONS, "prefix_conns", "too many connections from here"
                )
        if refusal is not None:
            self.closed(key)
            return refusal
        self._unpend(key, conn)
        self._mark_established(conn, known)
        return Admit()

    def dial_requested(self, key: Hashable) -> Verdict:
        """We are about to dial: reserve an outbound slot (rule 6) or refuse."""
        self._check(key, Event.DIAL_REQUESTED)
        if self._outbound >= self.limits.max_outbound:
            return Refuse(503, TOO_MANY_CONNECTIONS, "outbound_full", "outbound budget full")
        self._conns[key] = _Conn(ConnState.DIALLING, "", known=True, outbound=True)
        self._outbound += 1
        return Admit()

    def outbound_established(self, key: Hashable, host: str) -> None:
        """A connection we dialled completed its handshake (counts as known, outbound)."""
        self._check(key, Event.OUTBOUND_ESTABLISHED)
        conn = self._conns.get(key)
        if conn is None:
            conn = self._conns[key] = _Conn(ConnState.NEW, "", known=True, outbound=True)
            self._outbound += 1
        conn.prefix = self.prefix_of(host)
        conn.state = ConnState.ESTABLISHED
        self._source(conn.prefix).established += 1

    def closed(self, key: Hashable) -> None:
        """``key`` is gone (any state; closing twice is harmless)."""
        conn = self._conns.pop(key, None)
        if conn is None:
            return
        if conn.outbound:
            self._outbound -= 1
            if conn.state is ConnState.ESTABLISHED:
                self._drop_source_count(conn.prefix)
            conn.state = ConnState.CLOSED
            return
        source = self._sources[conn.prefix]
        if conn.state is ConnState.PENDING:
            self._unpend(key, conn)
        elif conn.state is ConnState.ESTABLISHED:
            self._established -= 1
            source.established -= 1
            if not conn.known:
                self._established_unknown -= 1
                source.established_unknown -= 1
        conn.state = ConnState.CLOSED
        if not source.pending and not source.established:
            del self._sources[conn.prefix]

    # --- internals ------------------------------------------------------------------
    def _drop_source_count(self, prefix: str) -> None:
        source = self._sources[prefix]
        source.established -= 1
        if not source.pending and not source.established:
            del self._sources[prefix]

    def _check(self, key: Hashable, event: Event) -> None:
        state = self.state(key)
        if (state, event) not in _TRANSITIONS:
            raise AdmissionError(f"{event.value} for a connection in state {state.value}")

    def _source(self, prefix: str) -> _Source:
        source = self._sources.get(prefix)
        if source is None:
            source = self._sources[prefix] = _Source()
        return source

    def _unpend(self, key: Hashable, conn: _Conn) -> None:
        self._pending.pop(key, None)
        self._sources[conn.prefix].pending.pop(key, None)

    def _mark_established(self, conn: _Conn, known: bool) -> None:
        conn.state = ConnState.ESTABLISHED
        conn.known = known
        source = self._source(conn.prefix)
        self._established += 1
        source.established += 1
        if not known:
            self._established_unknown += 1
            source.established_unknown += 1

    def _eviction_victim(self, newcomer: str) -> Hashable | None:
        """The oldest pending socket of the heaviest source, if heavier than ``newcomer``'s."""
        own = self.pending_from(newcomer)
        heaviest: _Source | None = None
        for source in self._sources.values():
            if not source.pending:
                continue
            if heaviest is None or len(source.pending) > len(heaviest.pending):
                heaviest = source
            elif len(source.pending) == len(heaviest.pending) and _oldest(source) < _oldest(
                heaviest
            ):
                heaviest = source  # equal weight: the one whose oldest socket came first
        if heaviest is None or len(heaviest.pending) <= own:
            return None
        return next(iter(heaviest.pending))


def _oldest(source: _Source) -> int:
    return next(iter(source.pending.values()))
