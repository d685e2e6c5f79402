"""`p2p-node serve --dashboard` and `p2p-node demo --dashboard` as real processes, and the
sampler facing a worker that stops answering (a `serve` process frozen with SIGSTOP)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the dashboard needs p2p-controller[dashboard]")


def p2p_node() -> list[str]:
    """The venv's console script, beside this interpreter."""
    return [str(Path(sys.executable).parent / "p2p-node")]


def get(url: str, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_serve_prints_the_dashboard_url_in_its_json_line(tmp_path: Path, p2p_serve: Any) -> None:
    node = p2p_serve(tmp_path / "a", "--dashboard", "127.0.0.1:0")
    url = node.info["dashboard"]
    assert url.startswith("http://127.0.0.1:") and "?token=" in url
    assert set(node.info) == {"id", "publicKey", "address", "dashboard"}
    base, _, token = url.partition("?token=")
    assert get(base + "api/state")[0] == 401
    assert get(base + "api/state?token=wrong")[0] == 403
    status, state = get(base + "api/state", Authorization=f"Bearer {token}")
    assert status == 200 and state["node"]["id"] == node.info["id"]
    deadline = time.monotonic() + 30
    while "dashboard: open" not in node.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"dashboard: open {url}" in node.stderr()
    assert node.terminate() == 0


def test_the_dashboard_table_in_config_toml_turns_it_on_read_only(
    tmp_path: Path, p2p_serve: Any
) -> None:
    d = tmp_path / "b"
    d.mkdir()
    (d / "config.toml").write_text(
        '[dashboard]\nlisten = "127.0.0.1:0"\nread_only = true\n', encoding="utf-8"
    )
    node = p2p_serve(d)
    base, _, token = node.info["dashboard"].partition("?token=")
    status, session = get(base + "api/session", Authorization=f"Bearer {token}")
    assert status == 200 and session["readOnly"] is True
    assert node.terminate() == 0


def test_demo_keeps_the_mesh_running_with_the_dashboard_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [*p2p_node(), "demo", "--no-color", "--dashboard", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "P2P_NODE_DIR"},
        stdin=subprocess.DEVNULL,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(90), "".join(lines)
        url = next(w for line in lines for w in line.split() if w.startswith("http://127.0.0.1:"))
        base, _, token = url.partition("?token=")
        # Both miners were started just before "Ctrl-C stops"; a sampling round can catch
        # them before their first "speed" line (hashrate still 0), so wait for both two
        # miners and a hashrate, not for the miner count alone.
        deadline = time.monotonic() + 60
        while True:
            status, state = get(base + "api/state", Authorization=f"Bearer {token}")
            assert status == 200
            totals = state["totals"]
            if totals["miners"] == 2 and totals["hashrate"] > 0:
                break
            assert time.monotonic() < deadline, json.dumps(totals)
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    assert "fleet dashboard: http://127.0.0.1:" in text
    assert "no process left running" in text


async def test_a_worker_that_stops_answering_becomes_an_error_and_a_gap(
    tmp_path: Path, p2p_serve: Any
) -> None:
    from p2p.controller import ControllerConfig, Node, NodeConfig
    from p2p.controller.dashboard.monitor import FleetMonitor
    from p2p.controller.dashboard.settings import DashboardConfig

    alive = p2p_serve(tmp_path / "alive", "--name", "alive")
    frozen = p2p_serve(tmp_path / "frozen", "--name", "frozen")
    quick = ControllerConfig(stats_timeout=1.0, ping_timeout=1.0, connect_timeout=2.0)
    async with Node(
        tmp_path / "ctl", config=NodeConfig(listen="127.0.0.1:0"), controller_config=quick
    ) as ctl:
        for w in (alive, frozen):
            await ctl.add_peer(w.address, public_key=w.info["publicKey"])
        monitor = FleetMonitor(ctl, DashboardConfig(sample_interval=0.5, dial_interval=0))
        first = await monitor.sample_once()
        assert set(first.workers) == {alive.info["id"], frozen.info["id"]}
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        try:
            second = await asyncio.wait_for(monitor.sample_once(), 30)
        finally:
            os.kill(frozen.proc.pid, signal.SIGCONT)
        fid = frozen.info["id"]
        assert set(second.workers) == {alive.info["id"]}
        assert "timeout" in second.errors[fid]
        assert fid not in second.pings
        assert [v for _, v in monitor.history.series(f"hashrate:{fid}")] == [0.0, None]
        row = next(p for p in monitor.view()["peers"] if p["id"] == fid)
        assert row["hashrate"] is None and "timeout" in row["error"]
