"""Fixtures of the reliability suites: live nodes on 127.0.0.1, real miners, figures.

``make_node(name, **kw)`` starts an in-process :class:`p2p.controller.node.Node` in its own
data directory, with short transport timeouts and a real subprocess miner type ``"sh"``.
``report(suite, **figures)`` prints figures and appends them (one JSON line) to the file
named by ``P2P_RELIABILITY_REPORT`` so docs/RELIABILITY.md can quote what a run produced.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_p2p.transport_fixtures import fast_transport_config

SOAK_SECONDS = float(os.environ.get("P2P_SOAK_SECONDS", "10"))
"""Load duration of the tests marked ``soak`` (10 s by default; ``tox -e soak`` runs only
them, with 600). The flood and the random-drop tests cap it at 10 and 8 s."""

MINER_SCRIPT = 'i=0; while :; do i=$((i+1)); echo "accepted $i speed 100.0 H/s"; sleep 0.5; done'
"""A real miner process: a shell loop printing a line every half second."""


def miner_specs() -> dict[str, Any]:
    from p2p.controller.miners import MinerSpec

    return {"sh": MinerSpec(command=["/bin/sh", "-c", MINER_SCRIPT], stop_grace=1.0)}


def report(suite: str, **figures: Any) -> None:
    row = {"suite": suite, "python": sys.version.split()[0], **figures}
    line = json.dumps(row, sort_keys=True, default=str)
    print(f"\nFIGURES {line}")
    path = os.environ.get("P2P_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def rss_kib() -> int:
    """Resident set size of this process (KiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[k]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await make_node(name, data_dir=None, transport=None, controller=None, **node_kw)``."""
    from p2p.controller.controller import ControllerConfig
    from p2p.controller.miners import ProcessMinerManager
    from p2p.controller.node import Node

    made: list[Any] = []

    async def make(
        name: str = "node",
        *,
        data_dir: Path | None = None,
        transport: dict[str, Any] | None = None,
        controller: dict[str, Any] | None = None,
        **node_kw: Any,
    ) -> Any:
        d = data_dir if data_dir is not None else tmp_path / f"{len(made)}-{name}"
        ccfg = {
            "stats_timeout": 5.0,
            "miner_timeout": 10.0,
            "logs_timeout": 5.0,
            "ping_timeout": 5.0,
            "connect_timeout": 5.0,
        }
        ccfg.update(controller or {})
        node_kw.setdefault("miners", ProcessMinerManager(miner_specs(), run_dir=d / "miners-run"))
        node = Node(
            d,
            name=name,
            listen="127.0.0.1:0",
            transport_config=fast_transport_config(**(transport or {})),
            controller_config=ControllerConfig(**ccfg),
            **node_kw,
        )
        await node.start()
        made.append(node)
        return node

    yield make
    for node in reversed(made):
        await node.close()
        close = getattr(node.miners, "close", None)
        if close is not None:
            await close()


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``cond`` until true (fails after ``timeout``)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what} not met within {timeout} s")
        import asyncio

        await asyncio.sleep(0.02)
