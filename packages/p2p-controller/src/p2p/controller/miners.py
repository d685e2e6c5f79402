"""Miners: the protocols a Worker drives, and a real process-backed implementation.

`MinerManager` / `MinerInstance` mirror go-p2p's worker interfaces (CONTROLLER_WORKER.md §2)
in Python spelling. `ProcessMinerManager` runs one configured command line per miner type as
an asyncio subprocess, keeps its output as timestamped log lines in a bounded ring buffer,
and reads hashrate/shares from an optional stats source (a JSON file the process rewrites, or
output lines matching a regex). Stopping is SIGTERM to the process group, then SIGKILL after a
grace period, then reaping the child: a stopped miner never lingers as a zombie.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import os
import re
import signal
import tempfile
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from p2p.controller.errors import (
    MinerError,
    MinerNotFoundError,
    UnknownMinerTypeError,
)

log = logging.getLogger(__name__)

__all__ = [
    "CommonMinerStats",
    "DeployTarget",
    "JsonFileStats",
    "MinerError",
    "MinerInstance",
    "MinerManager",
    "MinerNotFoundError",
    "MinerSpec",
    "ProcessMiner",
    "ProcessMinerManager",
    "RegexStats",
    "StatsSource",
    "UnknownMinerTypeError",
]

#: Bounds (security parameters): a peer may ask us to start miners and read logs.
MAX_MINERS = 64
MAX_LOG_LINES = 100_000
MAX_LINE_BYTES = 8192
MAX_STATS_FILE_BYTES = 1 << 20
MAX_STOP_GRACE = 60.0
_READ_CHUNK = 65536
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# --------------------------------------------------------------------------------------------
# Protocols (go-p2p node/worker.go interfaces)


@runtime_checkable
class MinerInstance(Protocol):
    """One running (or finished) miner, as the Worker sees it."""

    def get_name(self) -> str: ...

    def get_type(self) -> str: ...

    def get_stats(self) -> Any:
        """Current stats; a mapping is reported field by field. Raises on failure."""
        ...

    def get_console_history_since(self, lines: int, since: datetime | None) -> list[str]:
        """At most `lines` most recent output lines, only those at or after `since`."""
        ...


@runtime_checkable
class MinerManager(Protocol):
    """Starts and stops miners; the Worker's only way to touch them.

    `start_miner` / `stop_miner` may be plain or ``async`` methods (the Worker awaits
    whatever is awaitable); failures are exceptions, whose text goes back to the controller.
    """

    def start_miner(
        self, miner_type: str, config: Any
    ) -> MinerInstance | Awaitable[MinerInstance]: ...

    def stop_miner(self, name: str) -> Awaitable[None] | None: ...

    def list_miners(self) -> Sequence[MinerInstance]: ...

    def get_miner(self, name: str) -> MinerInstance:
        """The miner called `name`; raises (any exception) when there is none."""
        ...


@runtime_checkable
class DeployTarget(Protocol):
    """Optional extra of a MinerManager: accept a deployed miner binary as a new type."""

    def register_binary(self, miner_type: str, path: Path) -> None: ...


# --------------------------------------------------------------------------------------------
# Stats sources


class StatsSource(Protocol):
    """Where a process-backed miner's hashrate/shares come from."""

    def feed_line(self, line: str) -> None:
        """See one output line (stdout or stderr)."""
        ...

    def read(self, run_dir: Path) -> dict[str, Any]:
        """The latest known stats fields (may be empty)."""
        ...

    def fresh(self) -> StatsSource:
        """A new, empty source of the same kind for a new process."""
        ...


@dataclass(frozen=True)
class JsonFileStats:
    """Stats from a JSON object file the miner rewrites.

    `path` is relative to the miner's run directory (absolute paths are used as-is). The
    miner learns the full path from the ``P2P_MINER_STATS`` environment variable or the
    ``{stats}`` placeholder in its command line.
    """

    path: str = "stats.json"

    def feed_line(self, line: str) -> None:
        return None

    def resolve(self, run_dir: Path) -> Path:
        p = Path(self.path)
        return p if p.is_absolute() else run_dir / p

    def read(self, run_dir: Path) -> dict[str, Any]:
        target = self.resolve(run_dir)
        try:
            with open(target, "rb") as fh:
                raw = fh.read(MAX_STATS_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        if len(raw) > MAX_STATS_FILE_BYTES:
            raise MinerError(f"stats file too large: {target}")
        try:
            doc = json.loads(raw)
        except ValueError as exc:  # a half-written file: report nothing this time
            log.debug("unreadable stats file %s: %s", target, exc)
            return {}
        return dict(doc) if isinstance(doc, dict) else {}

    def fresh(self) -> JsonFileStats:
        return self


class RegexStats:
    """Stats from output lines matching a regex with named groups.

    Recognised group names: hashrate, shares, rejected, pool, algorithm. The most recent
    match of each group wins, e.g. ``r"speed (?P<hashrate>[\\d.]+) H/s"``.
    """

    _NUMERIC = {"hashrate": float, "shares": int, "rejected": int}
    _TEXT = ("pool", "algorithm")

    def __init__(self, pattern: str | re.Pattern[str]) -> None:
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self._latest: dict[str, Any] = {}

    def feed_line(self, line: str) -> None:
        m = self.pattern.search(line)
        if m is None:
            return
        for key, value in m.groupdict().items():
            if value is None:
                continue
            if key in self._NUMERIC:
                with contextlib.suppress(ValueError):
                    num = float(value)
                    self._latest[key] = num if key == "hashrate" else int(num)
            elif key in self._TEXT:
                self._latest[key] = value

    def read(self, run_dir: Path) -> dict[str, Any]:
        return dict(self._latest)

    def fresh(self) -> RegexStats:
        return RegexStats(self.pattern)


class CommonMinerStats:
    """The default stats source of a miner type with no ``stats_regex``/``stats_json``:
    reads the common output line formats, the most recent value winning.

    - xmrig's ``speed 10s/60s/15m 1001.2 998.0 n/a H/s`` (the first number given: 10 s);
    - any ``N H/s`` (also ``kH/s``, ``MH/s``, ``GH/s``, scaled to H/s);
    - xmrig's ``accepted (12/1)``: 12 shares accepted, 1 rejected.

    Anything else is left alone (hashrate stays 0): set ``stats_regex`` for other formats.
    """

    _XMRIG_SPEED = re.compile(r"speed\s+\S+/\S+/\S+\s+(.*?)\s*([kMG]?)H/s", re.IGNORECASE)
    _SPEED = re.compile(r"(\d+(?:\.\d+)?)\s*([kMG]?)H/s", re.IGNORECASE)
    _ACCEPTED = re.compile(r"accepted\s*\((\d{1,18})/(\d{1,18})\)", re.IGNORECASE)
    _SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
    #: Longest line looked at (the regexes are linear; this bounds the work per line).
    MAX_LINE = 4096

    def __init__(self) -> None:
        self._latest: dict[str, Any] = {}

    def feed_line(self, line: str) -> None:
        line = line[: self.MAX_LINE]
        rate: float | None = None
        m = self._XMRIG_SPEED.search(line)
        if m is not None:
            for word in m.group(1).split():
                with contextlib.suppress(ValueError):
                    rate = float(word) * self._SCALE[m.group(2).lower()]
                    break
        else:
            m = self._SPEED.search(line)
            if m is not None:
                rate = float(m.group(1)) * self._SCALE[m.group(2).lower()]
        if rate is not None and math.isfinite(rate):
            self._latest["hashrate"] = rate
        a = self._ACCEPTED.search(line)
        if a is not None:
            self._latest["shares"] = int(a.group(1))
            self._latest["rejected"] = int(a.group(2))

    def read(self, run_dir: Path) -> dict[str, Any]:
        return dict(self._latest)

    def fresh(self) -> CommonMinerStats:
        return CommonMinerStats()


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class MinerSpec:
    """How to run one miner type.

    `command` is the argv; ``{config}``, ``{stats}``, ``{name}`` and ``{run_dir}`` in its
    items are replaced per start. The start config (profile JSON) is written to
    ``<run_dir>/config.json`` and also passed as ``P2P_MINER_CONFIG``.
    """

    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    inherit_env: bool = True
    cwd: Path | None = None
    stats: StatsSource | None = None
    log_lines: int = 1000
    stop_grace: float = 5.0

    def __post_init__(self) -> None:
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise MinerError("miner command must be a non-empty list of strings")
        if not 1 <= self.log_lines <= MAX_LOG_LINES:
            raise MinerError(f"log_lines must be in 1..{MAX_LOG_LINES}")
        if not 0.0 <= self.stop_grace <= MAX_STOP_GRACE:
            raise MinerError(f"stop_grace must be in 0..{MAX_STOP_GRACE} s")


# --------------------------------------------------------------------------------------------
# Process-backed miner


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ProcessMiner:
    """One spawned miner process: its output ring buffer, stats and lifetime."""

    def __init__(
        self, name: str, miner_type: str, spec: MinerSpec, run_dir: Path, config: Any
    ) -> None:
        self._name = name
        self._type = miner_type
        self.spec = spec
        self.run_dir = run_dir
        self.config = config
        self._stats = spec.stats.fresh() if spec.stats is not None else None
        self._logs: collections.deque[tuple[int, str]] = collections.deque(maxlen=spec.log_lines)
        self._proc: asyncio.subprocess.Process | None = None
        self._started_mono = 0.0
        self._ended_mono: float | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._exited = asyncio.Event()
        self.started_at: datetime | None = None

    # -- MinerInstance ---------------------------------------------------------------------

    def get_name(self) -> str:
        return self._name

    def get_type(self) -> str:
        return self._type

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._exited.is_set()

    @property
    def exit_code(self) -> int | None:
        """Exit status once finished (negative = killed by that signal), else None."""
        return self._proc.returncode if self._exited.is_set() and self._proc else None

    def uptime(self) -> float:
        """Seconds the process has been (or was) running."""
        if self._proc is None:
            return 0.0
        end = self._ended_mono if self._ended_mono is not None else time.monotonic()
        return max(0.0, end - self._started_mono)

    def get_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "hashrate": 0.0,
            "shares": 0,
            "rejected": 0,
            "pool": "",
            "algorithm": "",
        }
        if self._stats is not None:
            stats.update(self._stats.read(self.run_dir))
        stats["uptime"] = int(self.uptime())
        stats["running"] = self.running
        stats["exitCode"] = self.exit_code
        stats["pid"] = self.pid
        return stats

    def get_console_history_since(self, lines: int, since: datetime | None) -> list[str]:
        if lines <= 0:
            return []
        since_ms = int(since.timestamp() * 1000) if since is not None else None
        picked: list[str] = []
        for ts, text in reversed(self._logs):
            if since_ms is not None and ts < since_ms:
                break
            picked.append(text)
            if len(picked) >= lines:
                break
        picked.reverse()
        return picked

    def log_entries(self) -> list[tuple[int, str]]:
        """All buffered (Unix ms, line) pairs, oldest first."""
        return list(self._logs)

    async def wait(self) -> int:
        """Wait for the process to exit and all its output to be captured."""
        await self._exited.wait()
        assert self._proc is not None and self._proc.returncode is not None
        return self._proc.returncode

    # -- lifecycle -------------------------------------------------------------------------

    def _argv_and_env(self) -> tuple[list[str], dict[str, str]]:
        config_path = self.run_dir / "config.json"
        stats_path = (
            self._stats.resolve(self.run_dir)
            if isinstance(self._stats, JsonFileStats)
            else self.run_dir / "stats.json"
        )
        subs = {
            "{config}": str(config_path),
            "{stats}": str(stats_path),
            "{name}": self._name,
            "{run_dir}": str(self.run_dir),
        }
        argv = []
        for template in self.spec.command:
            arg = template
            for key, value in subs.items():
                arg = arg.replace(key, value)
            argv.append(arg)
        env = dict(os.environ) if self.spec.inherit_env else {}
        env.update(self.spec.env)
        env["P2P_MINER_CONFIG"] = str(config_path)
        env["P2P_MINER_STATS"] = str(stats_path)
        env["P2P_MINER_NAME"] = self._name
        return argv, env

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(self.config), encoding="utf-8")
        argv, env = self._argv_and_env()
        cwd = self.spec.cwd if self.spec.cwd is not None else self.run_dir
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(cwd),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise MinerError(f"failed to start {self._type}: {exc.strerror or exc}") from exc
        self._started_mono = time.monotonic()
        self.started_at = datetime.now().astimezone()
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self._proc.stdout)),
            asyncio.create_task(self._read(self._proc.stderr)),
        ]
        self._reaper = asyncio.create_task(self._reap())
        log.info("miner %s (%s) started, pid %d", self._name, self._type, self._proc.pid)

    def _add_line(self, raw: bytes) -> None:
        text = raw[:MAX_LINE_BYTES].decode("utf-8", "replace").rstrip("\r")
        self._logs.append((_now_ms(), text))
        if self._stats is not None:
            try:
                self._stats.feed_line(text)
            except Exception:  # a stats parser must never kill log capture
                log.exception("stats source failed on a line of %s", self._name)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        buf = b""
        truncated = False
        while True:
            chunk = await stream.read(_READ_CHUNK)
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for line in complete:
                if truncated:
                    truncated = False
                    continue
                self._add_line(line)
            if len(buf) > MAX_LINE_BYTES:  # an endless line: keep its head, drop the rest
                self._add_line(buf)
                buf = b""
                truncated = True
        if buf and not truncated:
            self._add_line(buf)

    async def _reap(self) -> None:
        assert self._proc is not None
        code = await self._proc.wait()
        self._ended_mono = time.monotonic()
        # A grandchild may still hold the pipes open; don't wait forever for EOF.
        _done, pending = await asyncio.wait(self._readers, timeout=1.0)
        for task in pending:
            task.cancel()
        self._exited.set()
        log.info("miner %s exited with status %d", self._name, code)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    async def stop(self, grace: float | None = None) -> int:
        """SIGTERM, SIGKILL after the grace period, reap; returns the exit status."""
        if self._proc is None:
            raise MinerError(f"miner {self._name} was never started")
        grace = self.spec.stop_grace if grace is None else grace
        if not self._exited.is_set():
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._exited.wait(), timeout=grace)
            except asyncio.TimeoutError:
                log.warning("miner %s ignored SIGTERM for %.1f s, killing", self._name, grace)
                self._signal(signal.SIGKILL)
                await self._exited.wait()
        return await self.wait()


# --------------------------------------------------------------------------------------------
# Manager


class ProcessMinerManager:
    """A MinerManager that runs each miner type's configured command as a subprocess.

    Miner names are the type for the first instance and ``<type>-2``, ``<type>-3``... for
    concurrent ones. A miner that exits on its own stays listed (with its logs and exit
    status) until it is stopped or its name is reused.
    """

    def __init__(
        self,
        specs: Mapping[str, MinerSpec] | None = None,
        run_dir: Path | str | None = None,
        *,
        max_miners: int = MAX_MINERS,
    ) -> None:
        if not 1 <= max_miners <= 10_000:
            raise MinerError("max_miners must be in 1..10000")
        self._specs: dict[str, MinerSpec] = {}
        for miner_type, spec in (specs or {}).items():
            self.register(miner_type, spec)
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self._miners: dict[str, ProcessMiner] = {}
        self._max = max_miners
        self._lock = asyncio.Lock()

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            self._run_dir = Path(tempfile.mkdtemp(prefix="p2p-miners-"))
        return self._run_dir

    @property
    def types(self) -> list[str]:
        return sorted(self._specs)

    def register(self, miner_type: str, spec: MinerSpec) -> None:
        """Make `miner_type` runnable with `spec` (replacing an earlier registration)."""
        if not _NAME_RE.match(miner_type):
            raise MinerError(f"invalid miner type: {miner_type!r}")
        self._specs[miner_type] = spec

    def register_binary(
        self, miner_type: str, path: Path, args: Sequence[str] = (), **spec_fields: Any
    ) -> None:
        """Make a deployed miner executable runnable as `miner_type`."""
        resolved = Path(path).resolve()
        if not resolved.is_file():
            raise MinerError(f"miner binary not found: {resolved}")
        self.register(miner_type, MinerSpec(command=[str(resolved), *args], **spec_fields))

    def _free_name(self, miner_type: str) -> str:
        candidate, n = miner_type, 1
        while candidate in self._miners and self._miners[candidate].running:
            n += 1
            candidate = f"{miner_type}-{n}"
        return candidate

    async def start_miner(self, miner_type: str, config: Any) -> ProcessMiner:
        spec = self._specs.get(miner_type)
        if spec is None:
            raise UnknownMinerTypeError(miner_type, self.types)
        async with self._lock:
            if sum(m.running for m in self._miners.values()) >= self._max:
                raise MinerError(f"too many miners running (max {self._max})")
            name = self._free_name(miner_type)
            miner = ProcessMiner(name, miner_type, spec, self.run_dir / name, config)
            await miner.start()
            self._miners[name] = miner
        return miner

    async def stop_miner(self, name: str) -> None:
        miner = self._miners.get(name)
        if miner is None:
            raise MinerNotFoundError(name)
        await miner.stop()
        if self._miners.get(name) is miner:
            del self._miners[name]

    def list_miners(self) -> list[MinerInstance]:
        return list(self._miners.values())

    def get_miner(self, name: str) -> ProcessMiner:
        miner = self._miners.get(name)
        if miner is None:
            raise MinerNotFoundError(name)
        return miner

    async def close(self) -> None:
        """Stop every miner concurrently (used on node shutdown)."""
        names = list(self._miners)
        results = await asyncio.gather(
            *(self.stop_miner(name) for name in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, MinerError):
                log.warning("stopping miner %s failed: %r", name, result)
