"""Pure helpers of the `p2p-node` command: output formatting, time parsing, exit codes.

Nothing here touches the network or the event loop, so each rule (what exit code an error
means, how a table lines up, what ``--since 5m`` is) is tested on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import math
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from p2p.controller import controller as ctl
from p2p.controller.config import NodeConfigError
from p2p.controller.errors import BundleError
from p2p.controller.node import AmbiguousPeerError, UnknownPeerError
from p2p.identity.errors import CorruptIdentityError, IdentityError
from p2p.identity.text import safe_text
from p2p.peers import PeerError
from p2p.transport import (
    ConnectError,
    HandshakeError,
    HandshakeRejectedError,
    PinnedKeyMismatchError,
    ProtocolError,
    TransportError,
)
from websockets.exceptions import InvalidHandshake

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_REMOTE",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "MAX_SINCE_MS",
    "CliError",
    "classify",
    "connect_failure",
    "human_bytes",
    "human_duration",
    "parse_since",
    "print_json",
    "short_id",
    "shown",
    "shown_lines",
    "stats_dict",
    "stats_text",
    "table",
]

EXIT_OK = 0
#: A local failure: unreadable files, a corrupt identity, an unexpected error.
EXIT_ERROR = 1
#: Bad arguments, an unknown or ambiguous PEER, a bad config file.
EXIT_USAGE = 2
#: The peer could not be reached, the handshake failed, or it did not answer in time.
EXIT_UNREACHABLE = 3
#: The peer answered with an error (or a failed miner/deploy acknowledgement).
EXIT_REMOTE = 4

_MAX_SINCE_TEXT = 64
#: The latest ``--since`` accepted: 9999-12-31T23:59:59.999Z in Unix milliseconds (a
#: worker refuses larger values with a remote error; this says so before sending).
MAX_SINCE_MS = 253_402_300_799_999


class CliError(Exception):
    """An error the command reports as one sentence with a hint, and an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint

    def sentence(self) -> str:
        text = str(self)
        return f"{text}; {self.hint}" if self.hint else text


def print_json(obj: Any, out: TextIO) -> None:
    """One JSON object on one line (what ``--json`` promises)."""
    out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
    out.flush()


#: Longest remote value (name, type, id) shown in a table cell or a sentence.
MAX_SHOWN = 64


def shown(value: object, limit: int | None = MAX_SHOWN) -> str:
    """A value that may come from a peer, safe for the terminal (escaped, bounded)."""
    return safe_text(value, limit)


def shown_lines(text: str) -> str:
    """Our own multi-line text, each line made safe for the terminal: the last guard, for
    human output only (``--json`` stays exact). Remote values are bounded by `shown`
    where they are formatted; this only escapes what slipped through."""
    return "\n".join(safe_text(line, None) for line in text.split("\n"))


def short_id(peer_id: str, n: int = 12) -> str:
    peer_id = safe_text(peer_id, None)
    return peer_id[:n] + "…" if len(peer_id) > n else peer_id


def human_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces; numbers right-aligned."""
    cells = [[str(h) for h in headers]]
    numeric = [True] * len(headers)
    for row in rows:
        texts = []
        for i, value in enumerate(row):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                numeric[i] = False
            texts.append(shown(value, None) if isinstance(value, str) else str(value))
        cells.append(texts)
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r_i, row_texts in enumerate(cells):
        parts = []
        for i, text in enumerate(row_texts):
            right = numeric[i] and r_i > 0
            parts.append(text.rjust(widths[i]) if right else text.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


_REL = re.compile(r"^(\d{1,9})(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_since(text: str, *, now_ms: int | None = None) -> int:
    """``--since``: Unix milliseconds, an ISO 8601 time, or an age (``90s``, ``5m``, ``2h``)."""
    value = text.strip()
    if not value or len(value) > _MAX_SINCE_TEXT:
        raise CliError(
            f"--since {text!r} is not a time",
            EXIT_USAGE,
            "use Unix milliseconds, an ISO time or an age such as 5m",
        )
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    m = _REL.match(value)
    if m is not None:
        return max(0, now - int(m.group(1)) * _UNIT_MS[m.group(2)])
    if value.isdigit():
        return _since_in_range(int(value), text)
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.astimezone()  # local time, as a person typing it means
        ms = int(stamp.astimezone(timezone.utc).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        raise CliError(
            f"--since {text!r} is not a time",
            EXIT_USAGE,
            "use Unix milliseconds, an ISO time or an age such as 5m",
        ) from None
    return _since_in_range(ms, text)


def _since_in_range(ms: int, text: str) -> int:
    if not 0 <= ms <= MAX_SINCE_MS:
        raise CliError(
            f"--since {safe_text(text, _MAX_SINCE_TEXT)} is out of range (Unix milliseconds up "
            f"to {MAX_SINCE_MS}, the year 9999)",
            EXIT_USAGE,
            "use Unix milliseconds, an ISO time or an age such as 5m",
        )
    return ms


def stats_dict(stats: Any) -> dict[str, Any]:
    """A `stats` payload (dataclass, Payload or mapping) as the wire's JSON object."""
    to_json = getattr(stats, "to_json", None)
    if callable(to_json):
        doc = json.loads(to_json())
        if isinstance(doc, dict):
            return doc
    if isinstance(stats, Mapping):
        return dict(stats)
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    raise TypeError(f"not a stats payload: {type(stats).__name__}")


def stats_text(local_name: str, stats: Mapping[str, Any]) -> str:
    """A person's view of one worker's stats (`local_name`: what we call that peer)."""
    raw_name = str(stats.get("nodeName") or "?")
    name = shown(raw_name)
    node_id = str(stats.get("nodeId") or "")
    uptime = _number(stats.get("uptime"))
    head = f"{name} ({short_id(node_id)})  up {human_duration(uptime)}"
    if local_name and local_name != raw_name:
        head = f"{shown(local_name)} = {head}"
    miners = stats.get("miners") or []
    if not miners:
        return f"{head}\n  no miners running"
    rows = []
    for m in miners:
        rows.append(
            (
                shown(m.get("name", "")),
                shown(m.get("type", "")),
                f"{_number(m.get('hashrate')):.1f} H/s",
                int(_number(m.get("shares"))),
                int(_number(m.get("rejected"))),
                human_duration(_number(m.get("uptime"))),
            )
        )
    body = table(("MINER", "TYPE", "HASHRATE", "SHARES", "REJECTED", "UPTIME"), rows)
    return head + "\n" + "\n".join("  " + line for line in body.splitlines())


def _number(value: object) -> float:
    """A numeric stats field as a finite float (0 for anything else a peer sent)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    try:
        f = float(value)
    except OverflowError:
        return 0.0
    return f if math.isfinite(f) else 0.0


def classify(exc: BaseException) -> CliError:
    """Map any exception from a command to its exit code and one clear sentence."""
    if isinstance(exc, CliError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, UnknownPeerError):
        return CliError(
            text,
            EXIT_USAGE,
            "run `p2p-node peers list`, or give an address such as ws://HOST:PORT/ws",
        )
    if isinstance(exc, AmbiguousPeerError):
        return CliError(text, EXIT_USAGE, "give more characters of the id, or the full id")
    if isinstance(exc, NodeConfigError):
        return CliError(text, EXIT_USAGE, "fix the value in the config file or the flag")
    if isinstance(exc, ctl.PeerNotFoundError):
        return CliError(text, EXIT_USAGE, "add it first with `p2p-node peers add ADDRESS`")
    if isinstance(exc, ctl.UnauthorizedError):
        return CliError(text, EXIT_REMOTE)
    if isinstance(exc, ProtocolError):
        return CliError(f"the peer answered with an error: {text}", EXIT_REMOTE)
    if isinstance(exc, (ctl.MinerCommandError, ctl.DeployFailedError, ctl.UnexpectedResponseError)):
        return CliError(f"the peer refused: {text}", EXIT_REMOTE)
    dial = next((c for c in _causes(exc) if isinstance(c, ConnectError)), None)
    if dial is not None:  # also under the Controller's RequestError("connect to … failed")
        return connect_failure(dial)
    if isinstance(exc, ctl.RequestError) and text.endswith("timed out"):
        return CliError(
            f"{text}: the peer did not answer in time",
            EXIT_UNREACHABLE,
            "check that the peer is up and not firewalled, or raise --timeout",
        )
    if isinstance(exc, (ctl.RequestTimeout, TimeoutError)):
        return CliError(
            f"no answer in time ({text})",
            EXIT_UNREACHABLE,
            "check that the peer runs `p2p-node serve`, or raise --timeout",
        )
    if isinstance(exc, (ctl.RequestError, TransportError, ConnectionError)):
        return CliError(
            f"peer unreachable: {text}",
            EXIT_UNREACHABLE,
            "check the address and that the peer runs `p2p-node serve`",
        )
    if isinstance(exc, BundleError):
        return CliError(f"bundle problem: {text}", EXIT_USAGE)
    if isinstance(exc, PeerError):
        return CliError(text, EXIT_USAGE)
    if isinstance(exc, CorruptIdentityError):
        return CliError(
            f"identity files are unusable: {text}",
            EXIT_ERROR,
            "restore them from a backup, or run `p2p-node identity init --force` for a new "
            "identity (the old files are kept with a .corrupt suffix)",
        )
    if isinstance(exc, IdentityError):
        return CliError(
            f"identity problem: {text}",
            EXIT_ERROR,
            "check --data-dir, or run `p2p-node identity init`",
        )
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return CliError(
                f"the listen address is in use ({exc.strerror or text})",
                EXIT_ERROR,
                "pick another --listen port or stop what uses it",
            )
        where = f": {exc.filename}" if exc.filename else ""
        return CliError(f"{exc.strerror or text}{where}", EXIT_ERROR)
    return CliError(
        f"the command failed: {text}",
        EXIT_ERROR,
        "run again with -v and report the log if it persists",
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the chain of exceptions that caused it (bounded: cycles are possible)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 8 and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def connect_failure(exc: ConnectError) -> CliError:
    """A failed dial as one of four sentences: refused by the peer, the pinned key did not
    match, no answer in time, or the address could not be reached (each with its hint)."""
    where = safe_text(exc.address, 200)
    for cause in _causes(exc)[1:]:
        if isinstance(cause, HandshakeRejectedError):
            reason = safe_text(cause.remote_reason, 200)
            return CliError(
                f"{where} refused the handshake: {reason}",
                EXIT_UNREACHABLE,
                "the peer does not accept this node: ask its operator to run "
                "`p2p-node peers allow KEY` with this node's key (`p2p-node identity show`)",
            )
        if isinstance(cause, PinnedKeyMismatchError):
            return CliError(
                f"{where} answered with another public key than the one pinned for it",
                EXIT_UNREACHABLE,
                "check --public-key (or the key stored by `peers add`); if the peer really got "
                "a new key, `p2p-node peers remove PEER` and add it again",
            )
        if isinstance(cause, HandshakeError):
            return CliError(
                f"the handshake with {where} failed: {safe_text(cause.reason, 200)}",
                EXIT_UNREACHABLE,
                "check that the address is a p2p-node (or Go p2p) endpoint",
            )
        if isinstance(cause, (TimeoutError, asyncio.TimeoutError)):
            return CliError(
                f"{where} did not answer in time",
                EXIT_UNREACHABLE,
                "check that the peer is up and not firewalled, or raise --timeout",
            )
        if isinstance(cause, socket.gaierror):
            return CliError(
                f"cannot resolve the host of {where}",
                EXIT_UNREACHABLE,
                "check the host name in the address",
            )
        if isinstance(cause, ssl.SSLError):
            return CliError(
                f"the TLS connection to {where} failed ({safe_text(cause.reason or cause, 120)})",
                EXIT_UNREACHABLE,
                "check the certificate, or [tls] ca in config.toml for a private CA",
            )
        if isinstance(cause, ConnectionRefusedError):
            return CliError(
                f"nothing listens at {where} (connection refused)",
                EXIT_UNREACHABLE,
                "check the address and that the peer runs `p2p-node serve`",
            )
        if isinstance(cause, OSError):
            return CliError(
                f"cannot reach {where} ({safe_text(cause.strerror or cause, 120)})",
                EXIT_UNREACHABLE,
                "check the address and the network",
            )
        if isinstance(cause, InvalidHandshake):
            return CliError(
                f"{where} did not speak WebSocket ({safe_text(cause, 120)})",
                EXIT_UNREACHABLE,
                "check the address: a p2p-node listens on ws://HOST:PORT/ws",
            )
    reason = safe_text(exc.reason, 200)
    if reason.startswith("HTTP "):
        return CliError(
            f"{where} answered {reason} instead of upgrading to WebSocket",
            EXIT_UNREACHABLE,
            "check the path (a p2p-node listens on /ws)",
        )
    return CliError(
        f"cannot reach {where} ({reason})",
        EXIT_UNREACHABLE,
        "check the address and that the peer runs `p2p-node serve`",
    )
