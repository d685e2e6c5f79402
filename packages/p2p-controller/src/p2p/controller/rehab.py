"""The REHAB (0x30, "pause execution") UEPS intent: pause and resume the running miners.

Payload (UTF-8 text, at most 64 bytes, surrounding whitespace and case ignored):

- ``pause``            stop every running miner (SIGSTOP to its process group) for
                       ``default_pause`` seconds, then resume it automatically;
- ``pause:<seconds>``  the same for ``<seconds>`` (a number in (0, ``max_pause``]);
- ``resume``           continue the paused miners now (SIGCONT).

A second ``pause`` while paused extends (or shortens) the timer and also pauses miners
started since. Anything else is refused (logged, counted, no effect). Every pause ends by
itself: the timer is the guarantee that a lost ``resume`` never leaves miners frozen.

Processes are found through the MinerManager: miners that expose ``pid`` and ``running``
(as :class:`~p2p.controller.miners.ProcessMiner` does; it starts each miner in its own
session, so its pid is its process group). A miner whose pid changed since the pause (it
was restarted) is not signalled on resume.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from p2p.controller.errors import (
    RehabError,
)
from p2p.identity.text import safe_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from p2p.controller.miners import MinerManager
    from p2p.transport import BoundPacket, PeerConnection

__all__ = [
    "MAX_REHAB_PAYLOAD",
    "RehabCommand",
    "RehabController",
    "RehabError",
    "parse_rehab",
]

log = logging.getLogger(__name__)

MAX_REHAB_PAYLOAD = 64


@dataclass(frozen=True, slots=True)
class RehabCommand:
    """``action`` is ``"pause"`` (for ``seconds``, ``None`` = the default) or ``"resume"``."""

    action: str
    seconds: float | None = None


def parse_rehab(payload: bytes, max_pause: float) -> RehabCommand:
    """Parse a REHAB payload (see the module docstring); raises :class:`RehabError`."""
    if len(payload) > MAX_REHAB_PAYLOAD:
        raise RehabError(f"REHAB payload longer than {MAX_REHAB_PAYLOAD} bytes")
    try:
        text = payload.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        raise RehabError("REHAB payload is not ASCII text") from None
    if text == "resume":
        return RehabCommand("resume")
    if text == "pause":
        return RehabCommand("pause")
    verb, sep, arg = text.partition(":")
    if verb == "pause" and sep:
        try:
            seconds = float(arg)
        except ValueError:
            raise RehabError(f"bad pause duration {arg!r}") from None
        if not math.isfinite(seconds) or not 0 < seconds <= max_pause:
            raise RehabError(f"pause duration must be in (0, {max_pause:g}] s")
        return RehabCommand("pause", seconds)
    raise RehabError("unknown REHAB command (expected pause, pause:<seconds> or resume)")


@runtime_checkable
class _Process(Protocol):
    def get_name(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def running(self) -> bool: ...


class RehabController:
    """Pauses/resumes a MinerManager's processes; :meth:`handle` is the UEPS handler."""

    def __init__(
        self,
        miners: MinerManager,
        *,
        default_pause: float = 60.0,
        max_pause: float = 3600.0,
        is_authorized: Callable[[str], bool] | None = None,
    ) -> None:
        """`is_authorized(public_key)` decides by the key the sender proved in the
        handshake (``Policy.allows(key, Capability.CONTROL)``); None allows everyone."""
        if not 0 < max_pause <= 86400 or not 0 < default_pause <= max_pause:
            raise RehabError("need 0 < default_pause <= max_pause <= 86400")
        self.miners = miners
        self.default_pause = default_pause
        self.max_pause = max_pause
        self._authorized = is_authorized
        self._paused: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.refused = 0

    @property
    def paused(self) -> dict[str, int]:
        """Paused miners: name -> pid."""
        return dict(self._paused)

    def handle(self, conn: PeerConnection, packet: BoundPacket) -> None:
        """The REHAB intent handler: ``dispatcher.register(INTENT_REHAB, rehab.handle)``."""
        peer_id = conn.peer_id
        if self._authorized is not None and not self._authorized(conn.identity.public_key):
            self.refused += 1
            log.warning("REHAB from %s refused: its key is not granted control", peer_id)
            return
        try:
            command = parse_rehab(packet.payload, self.max_pause)
        except RehabError as exc:
            self.refused += 1
            log.warning("REHAB from %s refused: %s", peer_id, safe_text(exc))
            return
        log.info("REHAB %s from %s", command.action, peer_id)
        self.apply(command)

    def apply(self, command: RehabCommand) -> None:
        """Carry out a parsed command (also usable without a network)."""
        if command.action == "resume":
            self.resume()
        else:
            self.pause(command.seconds)

    def pause(self, seconds: float | None = None) -> list[str]:
        """SIGSTOP every running miner; resume them after ``seconds`` (default pause)."""
        duration = self.default_pause if seconds is None else seconds
        if not 0 < duration <= self.max_pause:
            raise RehabError(f"pause duration must be in (0, {self.max_pause:g}] s")
        stopped: list[str] = []
        for miner in self.miners.list_miners():
            if not isinstance(miner, _Process) or not miner.running or miner.pid is None:
                continue
            name = miner.get_name()
            if name in self._paused:
                continue
            if _signal_group(miner.pid, signal.SIGSTOP):
                self._paused[name] = miner.pid
                stopped.append(name)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(duration, self.resume)
        log.info("paused %d miner(s) for %.1f s", len(stopped), duration)
        return stopped

    def resume(self) -> list[str]:
        """SIGCONT the miners this controller paused (still the same processes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        current = {
            m.get_name(): m.pid
            for m in self.miners.list_miners()
            if isinstance(m, _Process) and m.running
        }
        resumed: list[str] = []
        for name, pid in self._paused.items():
            if current.get(name) == pid and _signal_group(pid, signal.SIGCONT):
                resumed.append(name)
        self._paused.clear()
        if resumed:
            log.info("resumed %d miner(s)", len(resumed))
        return resumed

    def close(self) -> None:
        """Resume everything and drop the timer (call before stopping the miners)."""
        self.resume()


def _signal_group(pid: int, sig: signal.Signals) -> bool:
    """Signal the process group led by ``pid`` (falls back to the process alone)."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError) as exc:
            log.info("cannot signal miner pid %d: %s", pid, exc)
            return False
