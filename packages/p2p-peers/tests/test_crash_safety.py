"""Crash safety: SIGKILL a process mutating the registry at random moments; every time, the
file left behind loads cleanly and equals a state the registry really had."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from p2p.peers import PeerRegistry
from peers_crash_schedule import FIRST_STEP, Model, State, step

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and SIGKILL"
)

TRIALS = 60


def _file_state(path: Path) -> State:
    doc = json.loads(path.read_bytes())
    return {
        d["id"]: (float(d["pingMs"]), int(d["hops"]), float(d["geoKm"]), float(d["score"]))
        for d in doc or []
    }


def _consistent(state: State) -> int | None:
    """The step after which the registry held exactly ``state``, or None."""
    odd = [v[0] for k, v in state.items() if int(k[1:]) % 2]
    progress = int(max(odd)) if odd else 0
    model = Model()
    i = FIRST_STEP - 1
    while i < progress:
        i += 1
        step(i, model)
    while True:
        if model.state == state:
            return i
        i += 1
        if i % 2:  # an odd step would have raised the largest odd-peer ping
            return None
        step(i, model)


def test_sigkill_at_random_moments_leaves_a_consistent_file(tmp_path: Path) -> None:
    here = Path(__file__).parent
    server = subprocess.Popen(
        [sys.executable, str(here / "peers_crash_child.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=here,
    )
    assert server.stdin is not None and server.stdout is not None
    rng = random.Random()
    steps_seen = []
    try:
        assert server.stdout.readline().strip() == "ready"
        for trial in range(TRIALS):
            path = tmp_path / f"t{trial}" / "peers.json"
            server.stdin.write(f"{path}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            time.sleep(rng.uniform(0.0, 0.1))
            os.kill(pid, signal.SIGKILL)
            server.stdin.write("reap\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "reaped"

            reg = PeerRegistry(path)  # must load, with nothing to complain about
            assert reg.load_error is None
            state = _file_state(path)
            held = {p.id: (p.ping_ms, p.hops, p.geo_km, p.score) for p in reg.peers()}
            assert held == state
            at = _consistent(state)
            assert at is not None, f"trial {trial}: file matches no state the child had"
            steps_seen.append(at)
    finally:
        server.kill()
        server.wait()
    # the kills landed at many different moments, not all before the first mutation
    assert len(set(steps_seen)) >= 5 and max(steps_seen) > FIRST_STEP + 100
