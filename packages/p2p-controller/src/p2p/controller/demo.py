"""`p2p-node demo`: a live three-node mesh on 127.0.0.1, explained step by step.

One controller and two workers run in this process, each a full `Node` with its own
identity and files in one temporary directory, on ephemeral loopback ports. Every step is
real: X25519 handshakes, encrypted WebSocket messages, a miner *process* (a small Python
script that prints hashrate lines) started and stopped through the mesh, an encrypted
profile bundle deployed. The temporary directory is removed at the end and every process
the demo started has exited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from p2p.controller.bundles import create_profile_bundle
from p2p.controller.config import MinerConfig, NodeConfig
from p2p.controller.controller import UnauthorizedError
from p2p.controller.node import Node
from p2p.controller.ueps_cli import demo_ueps_steps

if TYPE_CHECKING:
    from p2p.controller.dashboard.settings import DashboardConfig

__all__ = ["MINER_SCRIPT", "run_demo"]

#: The demo "miner": prints a hashrate line a few times a second until SIGTERM.
MINER_SCRIPT = textwrap.dedent(
    """\
    import json, os, random, signal, sys, time
    config = json.load(open(os.environ["P2P_MINER_CONFIG"]))
    threads = int(config.get("threads", 2)) if isinstance(config, dict) else 2
    stop = False
    def on_term(signum, frame):
        global stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    print(f"demo-miner starting with {threads} threads (config {config})", flush=True)
    shares = 0
    while not stop:
        time.sleep(0.25)
        shares += random.random() < 0.5
        rate = 950.0 * threads + random.uniform(-40, 40)
        print(f"speed {rate:.1f} H/s  accepted {shares}", flush=True)
    print("demo-miner: SIGTERM received, exiting cleanly", flush=True)
    """
)

_STATS_RE = r"speed (?P<hashrate>[\d.]+) H/s\s+accepted (?P<shares>\d+)"
_DEADLINE = 18.0


@dataclass
class _Style:
    color: bool

    def step(self, n: int, total: int, text: str) -> str:
        head = f"[{n}/{total}] {text}"
        return f"\n\033[1;36m{head}\033[0m" if self.color else f"\n{head}"

    def ok(self, text: str) -> str:
        return f"      \033[32m✓\033[0m {text}" if self.color else f"      ✓ {text}"

    def dim(self, text: str) -> str:
        return f"\033[2m{text}\033[0m" if self.color else text


class _JsonStory:
    """The demo's lines grouped by step, for ``p2p-node --json demo``: one object at the
    end, ``{"ok": true, "seconds": S, "steps": [{"step": N, "title": T, "lines": [...]}]}``
    (the lines before step 1 are step 0, "intro")."""

    _HEAD = re.compile(r"^\[(\d+)/\d+\] (.*)$")

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = [{"step": 0, "title": "intro", "lines": []}]

    def say(self, text: str = "") -> None:
        for raw in text.split("\n"):
            line = raw.strip()
            if not line:
                continue
            m = self._HEAD.match(line)
            if m is not None:
                self.steps.append({"step": int(m.group(1)), "title": m.group(2), "lines": []})
            else:
                self.steps[-1]["lines"].append(line.removeprefix("✓ "))


async def run_demo(
    out: TextIO | None = None,
    *,
    color: bool = False,
    as_json: bool = False,
    dashboard: DashboardConfig | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the demo, writing the story to `out`; returns 0 (an exception means failure).

    With `as_json` the story is printed at the end as one JSON object (see `_JsonStory`).
    With `dashboard`, the controller serves the fleet dashboard from the first step, and
    after the story the mesh keeps running, a miner on each worker, until `stop` is set.
    """
    stream = out if out is not None else sys.stdout
    style = _Style(color and not as_json)
    started = time.monotonic()
    story = _JsonStory() if as_json else None

    def say(text: str = "") -> None:
        if story is not None:
            story.say(text)
            return
        stream.write(text + "\n")
        stream.flush()

    with tempfile.TemporaryDirectory(prefix="p2p-demo-") as tmp:
        root = Path(tmp)
        if dashboard is None:
            await asyncio.wait_for(_story(root, say, style), timeout=_DEADLINE)
        else:
            await _story(root, say, style, dashboard, stop if stop is not None else asyncio.Event())
        say("")
        say(style.ok(f"temporary directory {root} removed; no process left running"))
    say(f"\nDone in {time.monotonic() - started:.1f} s. Run a real node:")
    say("  p2p-node --data-dir ./node-a serve --listen 0.0.0.0:9091")
    say("  p2p-node --data-dir ./me identity init        # prints the controller's public key")
    say("  p2p-node --data-dir ./node-a controllers add KEY   # on the server: trust that key")
    say("  p2p-node --data-dir ./me peers add ws://SERVER:9091/ws --name server-a")
    say("  p2p-node --data-dir ./me stats server-a")
    if story is not None:
        doc = {"ok": True, "seconds": round(time.monotonic() - started, 3), "steps": story.steps}
        stream.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        stream.flush()
    return 0


async def _story(
    root: Path,
    say: object,
    style: _Style,
    dashboard: DashboardConfig | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    assert callable(say)
    dash: Any = None
    total = 9
    script = root / "demo_miner.py"
    script.write_text(MINER_SCRIPT, encoding="utf-8")
    # The workers' miner type, as a `[miners.demo-miner]` table in config.toml would give it;
    # each Node owns its miner manager, so closing the node stops the miner whatever happens.
    miner = MinerConfig(
        command=(sys.executable, "-u", str(script)), stats_regex=_STATS_RE, stop_grace=3.0
    )
    worker_cfg = NodeConfig(listen="127.0.0.1:0", miners={"demo-miner": miner})

    say("p2p-node demo: a live, encrypted Lethean P2P mesh on this machine.")
    say(style.dim("A controller drives workers: it asks for stats, starts and stops miners,"))
    say(style.dim("reads their logs and deploys profiles. Every node here is a real one:"))
    say(style.dim(f"three on 127.0.0.1, all files in {root} (removed at the end)."))

    say(style.step(1, total, "Start three nodes: each makes an X25519 identity and listens"))
    loopback = NodeConfig(listen="127.0.0.1:0")
    controller = Node(root / "controller", config=loopback, name="controller")
    workers = [Node(root / f"worker-{i}", config=worker_cfg, name=f"worker-{i}") for i in (1, 2)]
    nodes = [controller, *workers]
    try:
        for node in nodes:
            await node.start()
            say(f"      {node.identity.name:<11} id {node.id[:12]}…  {node.address}")
        if dashboard is not None:
            from p2p.controller.dashboard.launch import start_dashboard  # noqa: PLC0415

            dash = await start_dashboard(
                controller, dashboard.replace(sample_interval=1.0), fall_back_to_free_port=True
            )
            say(style.ok(f"fleet dashboard: {dash.url}"))

        say(style.step(2, total, "Handshakes, then authorization: who may connect vs command"))
        say(style.dim("      our nodes speak protocol 1.1: a Noise XX handshake proves both keys"))
        say(style.dim("      and gives per-connection ChaChaPoly keys (forward secrecy); Go"))
        say(style.dim("      peers get 1.0: challenge-response and SMSG (X25519 static secret)"))
        for w in workers:
            t0 = time.monotonic()
            peer = await controller.add_peer(w.address, public_key=w.identity.public_key)
            ms = (time.monotonic() - t0) * 1000
            proto = controller.transport.protocols.get(peer.id, "1.0")
            say(
                style.ok(
                    f"{peer.name:<9} key pinned and verified, protocol {proto}, "
                    f"session up in {ms:.1f} ms"
                )
            )
        say(style.dim("      connecting is not commanding: a fresh worker lets no one control it"))
        quiet = logging.getLogger("p2p.controller.worker")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # the refusal's warning line is the point, not noise
        try:
            await controller.controller.start_remote_miner(workers[0].id, "demo-miner", config={})
        except UnauthorizedError as exc:
            say(style.ok(f"refused (error 1002): {str(exc).partition(';')[0]}"))
        else:  # pragma: no cover - the demo would be showing a hole
            raise AssertionError("an unauthorized controller started a miner")
        finally:
            quiet.setLevel(level)
        key = controller.identity.public_key
        say(style.dim(f"      each worker authorizes the controller's key {key[:16]}…"))
        say(style.dim("      (what `p2p-node controllers add KEY` does on a real worker)"))
        for w in workers:
            w.policy.grant(key)
        say(style.ok("both workers grant `control` to the controller; others may only observe"))

        say(style.step(3, total, "Ping round-trip times (three each)"))
        ctl = controller.controller
        for w in workers:
            rtts = [await ctl.ping_peer(w.id) for _ in range(3)]
            shown = "  ".join(f"{r:.2f} ms" for r in rtts)
            say(f"      {w.identity.name:<9} {shown}")

        say(style.step(4, total, "Peer selection: the best peer by ping, hops, distance, score"))
        say(style.dim("      (a KD-tree over those four metrics; score is a 0-100 reputation)"))
        ranked = controller.registry.select_nearest(2)
        for i, p in enumerate(ranked):
            mark = "  → chosen" if i == 0 else ""
            say(f"      {p.name:<9} ping {p.ping_ms:6.2f} ms  score {p.score:5.1f}{mark}")
        chosen = ranked[0]

        say(style.step(5, total, "Stats from every connected worker (concurrently)"))
        all_stats = await ctl.get_all_stats()
        for pid in sorted(all_stats, key=lambda k: all_stats[k].node_name):
            s = all_stats[pid]
            count = len(s.miners or [])
            say(f"      {s.node_name:<9} up {s.uptime} s, {count} miner(s) running")

        say(style.step(6, total, f"Start a real miner process on {chosen.name} and read its log"))
        name = await ctl.start_remote_miner(chosen.id, "demo-miner", config={"threads": 2})
        say(style.ok(f"miner {name!r} started (a child process of {chosen.name})"))
        seen = 0
        since_ms = 0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and seen < 6:
            await asyncio.sleep(0.3)
            asked_at = time.time_ns() // 1_000_000
            lines = await ctl.get_remote_logs(chosen.id, name, 50, since_ms or None)
            since_ms = asked_at
            for line in lines:
                seen += 1
                say(f"      {style.dim('log │')} {line}")
        stats = await ctl.get_remote_stats(chosen.id)
        for m in stats.miners or []:
            say(style.ok(f"stats: {m.name} at {m.hashrate:.1f} H/s, {m.shares} shares accepted"))

        other = next(w for w in workers if w.id != chosen.id)
        say(style.step(7, total, f"Deploy an encrypted profile bundle to {other.identity.name}"))
        only = f"only {other.identity.name} can open it: the password comes from the pair's"
        say(style.dim(f"      ({only} shared secret)"))
        profile = {
            "id": "demo-profile",
            "name": "Demo profile",
            "minerType": "demo-miner",
            "config": {"threads": 4},
        }
        password = await ctl.bundle_password(other.id)
        bundle = create_profile_bundle(json.dumps(profile).encode(), "demo-profile", password)
        say(
            f"      bundle 'demo-profile': STIM container, {len(bundle.data)} bytes, "
            f"sha256 {bundle.checksum[:16]}…"
        )
        deployed = await ctl.deploy(other.id, bundle)
        saved = other.profiles.get_profile(deployed) if other.profiles is not None else None
        say(
            style.ok(
                f"{other.identity.name} decrypted and stored profile {deployed!r}: "
                f"{json.dumps(saved)}"
            )
        )

        say(style.step(8, total, f"UEPS frames to {chosen.name}, bound to the session"))
        say(
            style.dim(
                "      (TLV frames signed with HMAC-SHA256 under the shared secret, session id + "
                "counter; only between nodes that advertised ueps/1)"
            )
        )
        chosen_node = next(w for w in workers if w.id == chosen.id)
        await demo_ueps_steps(
            controller.transport,
            chosen_node.transport,
            chosen.id,
            lambda text: say(style.ok(text)),
        )

        say(style.step(9, total, "Stop the miner and shut everything down"))
        await ctl.stop_remote_miner(chosen.id, name)
        say(style.ok(f"miner {name!r} stopped (SIGTERM, exited, reaped)"))
        if dash is not None and stop is not None:
            for w in workers:
                await ctl.start_remote_miner(w.id, "demo-miner", config={"threads": 2})
            say("")
            say(style.ok(f"the mesh keeps running, a miner on each worker; open {dash.url}"))
            say(style.dim("      Ctrl-C stops everything"))
            await stop.wait()
    finally:
        if dash is not None:
            await dash.close()
        for node in reversed(nodes):
            await node.close()
    say(style.ok("nodes said goodbye (disconnect 1004), peers files flushed, ports closed"))
