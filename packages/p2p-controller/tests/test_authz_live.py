"""Authorization on live nodes: real sockets on 127.0.0.1, real miner processes, real files.

For every operation: an unauthorized controller is refused (1002, `UnauthorizedError`) and
nothing changes on the worker; once its key is granted the same call succeeds. Also: the
key decides, not the id or name; revocation reaches a connected controller; deploys never
replace, stay within quotas, and garbage is refused with nothing written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from p2p.controller import Node, NodeConfig, UnauthorizedError
from p2p.controller.authz import Capability
from p2p.controller.bundles import (
    Bundle,
    create_miner_bundle,
    create_profile_bundle,
)
from p2p.controller.config import MinerConfig
from p2p.controller.controller import DeployFailedError
from p2p.controller.controllers_file import save_controllers
from p2p.controller.deploy_guard import DeployLimits
from p2p.transport import envelope, smsg
from p2p.transport.errors import ProtocolError
from p2p.transport.handshake import HandshakeInitiator
from p2p.ueps import INTENT_REHAB
from pytest_p2p.transport_fixtures import body
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

LOOPBACK = NodeConfig(listen="127.0.0.1:0")
SPIN = "import time\nprint('spinning', flush=True)\nwhile True: time.sleep(0.05)\n"


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for `cond` (generous timeout for a loaded machine; no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def worker_config(**kw: Any) -> NodeConfig:
    spin = MinerConfig(command=(sys.executable, "-u", "-c", SPIN), stop_grace=2.0)
    return NodeConfig(listen="127.0.0.1:0", miners={"spin": spin}, **kw)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


def proc_state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await pair(**worker_node_kw) -> (controller, worker)``, connected, nothing granted."""
    made: list[Node] = []

    async def make(controller_config: NodeConfig = LOOPBACK, **kw: Any) -> tuple[Node, Node]:
        kw.setdefault("config", worker_config())
        worker = Node(tmp_path / "worker", name="worker", **kw)
        controller = Node(tmp_path / "controller", config=controller_config, name="controller")
        for node in (worker, controller):
            await node.start()
            made.append(node)
        await controller.add_peer(worker.address, public_key=worker.identity.public_key)
        return controller, worker

    yield make
    for node in reversed(made):
        await node.close()


def _bundle_files(worker: Node) -> set[Path]:
    return files_under(worker.paths.root / "lethean-desktop") | files_under(worker.paths.profiles)


async def test_every_operation_refused_then_allowed(pair: Any, tmp_path: Path) -> None:
    controller, worker = await pair()
    ctl = controller.controller
    ours = controller.identity.public_key
    binary = tmp_path / "tiny-miner"
    binary.write_text("#!/bin/sh\necho deployed miner up\nexec sleep 30\n", encoding="utf-8")
    password = await ctl.bundle_password(worker.id)
    profile = create_profile_bundle(b'{"id": "pool-a", "pool": "p:1"}', "pool-a", password)
    miner_bundle = create_miner_bundle(binary, None, "tiny", password)
    # a miner the operator started locally (what a stranger would stop or read)
    assert worker.miners is not None
    local = await worker.miners.start_miner("spin", {})  # type: ignore[misc]
    before = _bundle_files(worker)

    # observing is open by default
    assert (await ctl.get_remote_stats(worker.id)).node_id == worker.id
    assert await ctl.ping_peer(worker.id) > 0
    operations = {
        "start_miner": lambda: ctl.start_remote_miner(worker.id, "spin", config={}),
        "stop_miner": lambda: ctl.stop_remote_miner(worker.id, local.get_name()),
        "get_logs": lambda: ctl.get_remote_logs(worker.id, local.get_name(), 10),
        "deploy profile": lambda: ctl.deploy(worker.id, profile),
        "deploy miner": lambda: ctl.deploy(worker.id, miner_bundle),
    }
    for what, call in operations.items():
        with pytest.raises(UnauthorizedError) as info:
            await call()
        exc = info.value
        assert exc.capability is Capability.CONTROL and exc.public_key == ours, what
        assert exc.peer_id == worker.id
        assert str(exc) == (
            f"worker ({worker.id[:12]}) refused: this controller is not authorized to control "
            f"it; on the worker run: p2p-node controllers add {ours}"
        )
    # nothing changed: one miner (the operator's, still running), no file, no profile
    assert [m.get_name() for m in worker.miners.list_miners()] == [local.get_name()]
    assert local.running  # type: ignore[attr-defined]
    assert _bundle_files(worker) == before
    assert worker.worker.refused == len(operations)

    worker.policy.grant(ours)
    assert await ctl.deploy(worker.id, profile) == "pool-a"
    assert await ctl.deploy(worker.id, miner_bundle) == "tiny"
    name = await ctl.start_remote_miner(worker.id, "tiny", config={})

    async def first_line() -> list[str]:
        return await ctl.get_remote_logs(worker.id, name, 10)

    lines: list[str] = []
    for _ in range(500):
        lines = await first_line()
        if lines:
            break
        await asyncio.sleep(0.02)
    assert lines == ["deployed miner up"]
    await ctl.stop_remote_miner(worker.id, name)
    await ctl.stop_remote_miner(worker.id, local.get_name())
    assert worker.miners.list_miners() == []


async def test_observe_can_be_limited_to_controllers(pair: Any) -> None:
    controller, worker = await pair(config=worker_config(observe="controllers"))
    with pytest.raises(UnauthorizedError) as info:
        await controller.controller.get_remote_stats(worker.id)
    assert info.value.capability is Capability.OBSERVE
    assert "not authorized to observe it" in str(info.value)
    worker.policy.grant(controller.identity.public_key)
    assert (await controller.controller.get_remote_stats(worker.id)).node_id == worker.id


async def test_authorization_follows_the_key_not_the_id_or_name(
    pair: Any, tmp_path: Path, raw_peer: Any, make_node_manager: Callable[[str], Any]
) -> None:
    controller, worker = await pair()
    worker.policy.grant(controller.identity.public_key)
    assert worker.miners is not None
    # an impostor with the controller's name (and its own key) is refused
    impostor = Node(tmp_path / "impostor", config=LOOPBACK, name="controller")
    async with impostor:
        await impostor.add_peer(worker.address)
        with pytest.raises(UnauthorizedError):
            await impostor.controller.start_remote_miner(worker.id, "spin", config={})
    # a peer claiming the controller's id in the handshake with another key is not let in
    liar = make_node_manager("liar")
    fake = dataclasses.replace(liar.require_identity(), id=controller.id)
    hello = envelope.to_text(HandshakeInitiator(fake, liar.derive_shared_secret).hello())
    async with connect(f"ws://{worker.transport.address}/ws", compression=None, proxy=None) as ws:
        await ws.send(hello)
        try:
            reply: Any = await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            reply = None
    if reply is not None:
        assert json.loads(reply)["payload"]["accepted"] is False
    # one with its own identity that writes the controller's id as `from`: dropped unread
    raw = await raw_peer(worker.transport)
    spoofed = body("start_miner", controller.id, raw.server_id, {"minerType": "spin", "config": {}})
    await raw.ws.send(smsg.encrypt(spoofed, raw.password))
    await until(lambda: worker.transport.drops["misaddressed"] >= 1)
    # and with its own id: refused by its key, answered with 1002
    await raw.ws.send(raw.frame("start_miner", {"minerType": "spin", "config": {}}))
    answer = await raw.recv_type("error", timeout=10)
    assert answer["payload"]["code"] == 1002
    assert worker.miners.list_miners() == []


async def test_revocation_reaches_a_connected_controller(tmp_path: Path) -> None:
    cfg = worker_config()
    async with (
        Node(tmp_path / "w", config=cfg, name="w", watch_files=True, watch_interval=0.05) as worker,
        Node(tmp_path / "c", config=LOOPBACK, name="c") as controller,
    ):
        ours = controller.identity.public_key
        await controller.add_peer(worker.address)
        conn = controller.transport.connection(worker.id)
        # what `p2p-node controllers add` writes; the running worker re-reads it
        save_controllers(worker.paths.controllers, [ours])
        await until(lambda: worker.policy.allows(ours, Capability.CONTROL))
        name = await controller.controller.start_remote_miner(worker.id, "spin", config={})
        save_controllers(worker.paths.controllers, [])  # `controllers remove`
        await until(lambda: not worker.policy.allows(ours, Capability.CONTROL))
        with pytest.raises(UnauthorizedError):
            await controller.controller.stop_remote_miner(worker.id, name)
        assert controller.transport.connection(worker.id) is conn  # same live connection
        assert worker.miners is not None and len(worker.miners.list_miners()) == 1


async def test_rehab_from_an_unauthorized_peer_does_not_pause(pair: Any) -> None:
    controller, worker = await pair()
    assert worker.miners is not None
    miner = await worker.miners.start_miner("spin", {})  # type: ignore[misc]
    pid = miner.pid  # type: ignore[attr-defined]
    rehab = worker.rehab
    assert rehab is not None and pid is not None
    await controller.send_ueps(worker.id, INTENT_REHAB, b"pause:30")
    await until(lambda: rehab.refused == 1)
    assert proc_state(pid) in "RS" and rehab.paused == {}
    worker.policy.grant(controller.identity.public_key)
    await controller.send_ueps(worker.id, INTENT_REHAB, b"pause:30")
    await until(lambda: proc_state(pid) == "T")
    await controller.send_ueps(worker.id, INTENT_REHAB, b"resume")
    await until(lambda: proc_state(pid) in "RS")


async def test_deploys_never_replace_what_exists(pair: Any, tmp_path: Path) -> None:
    controller, worker = await pair()
    ctl = controller.controller
    worker.policy.grant(controller.identity.public_key)
    evil = tmp_path / "spin"
    evil.write_text("#!/bin/sh\necho stranger binary\n", encoding="utf-8")
    password = await ctl.bundle_password(worker.id)
    # a miner named like the operator's configured type
    with pytest.raises(ProtocolError) as info:
        await ctl.deploy(worker.id, create_miner_bundle(evil, None, "spin", password))
    assert "miner 'spin' already exists" in str(info.value)
    assert "configured by the operator" in str(info.value)
    assert not (worker.paths.root / "lethean-desktop" / "miners" / "spin").exists()
    # the operator's `spin` still runs the operator's command
    name = await ctl.start_remote_miner(worker.id, "spin", config={})
    for _ in range(500):
        if await ctl.get_remote_logs(worker.id, name, 5):
            break
        await asyncio.sleep(0.02)
    assert await ctl.get_remote_logs(worker.id, name, 1) == ["spinning"]
    await ctl.stop_remote_miner(worker.id, name)
    # a profile with an existing id (the operator's)
    assert worker.profiles is not None
    worker.profiles.save_profile({"id": "main", "pool": "operator-pool:3333"})
    hijack = create_profile_bundle(b'{"id": "main", "pool": "evil:1"}', "x", password)
    with pytest.raises(ProtocolError, match="profile 'main' already exists"):
        await ctl.deploy(worker.id, hijack)
    # also when it rides along in a miner bundle
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\necho other\n", encoding="utf-8")
    riding = create_miner_bundle(other, b'{"id": "main", "pool": "evil:1"}', "other", password)
    with pytest.raises(ProtocolError, match="profile 'main' already exists"):
        await ctl.deploy(worker.id, riding)
    assert not (worker.paths.root / "lethean-desktop" / "miners" / "other").exists()
    assert worker.profiles.get_profile("main")["pool"] == "operator-pool:3333"
    # a deployed miner is not replaced by a later deploy either
    assert await ctl.deploy(worker.id, create_miner_bundle(other, None, "mine", password))
    with pytest.raises(ProtocolError, match="deployed earlier"):
        await ctl.deploy(worker.id, create_miner_bundle(evil, None, "mine", password))


async def test_replacement_when_the_config_allows_it(pair: Any, tmp_path: Path) -> None:
    ctl_key_holder: dict[str, str] = {}
    # the worker's config names the controller in allow_replace; its key is known only
    # after it exists, so make the controller's identity first
    from p2p.identity import load_or_create

    manager = load_or_create(
        tmp_path / "controller" / "node" / "private.key", tmp_path / "controller" / "node.json"
    )
    ctl_key_holder["key"] = manager.require_identity().public_key
    key = ctl_key_holder["key"]
    cfg = worker_config(controllers=(key,), allow_replace=(key,))
    controller, worker = await pair(config=cfg)
    ctl = controller.controller
    password = await ctl.bundle_password(worker.id)
    assert worker.profiles is not None
    worker.profiles.save_profile({"id": "main", "pool": "old:1"})
    new = create_profile_bundle(b'{"id": "main", "pool": "new:1"}', "main", password)
    assert await ctl.deploy(worker.id, new) == "main"
    assert worker.profiles.get_profile("main")["pool"] == "new:1"
    binary = tmp_path / "spin"
    binary.write_text("#!/bin/sh\necho replaced\nexec sleep 30\n", encoding="utf-8")
    assert await ctl.deploy(worker.id, create_miner_bundle(binary, None, "spin", password))
    name = await ctl.start_remote_miner(worker.id, "spin", config={})
    for _ in range(500):
        if await ctl.get_remote_logs(worker.id, name, 5):
            break
        await asyncio.sleep(0.02)
    assert await ctl.get_remote_logs(worker.id, name, 1) == ["replaced"]


async def test_quotas_refuse_and_leave_nothing_behind(pair: Any, tmp_path: Path) -> None:
    limits = DeployLimits(max_miners=2, max_miner_bytes=4096, max_profiles=2)
    controller, worker = await pair(config=worker_config(deploy=limits))
    ctl = controller.controller
    worker.policy.grant(controller.identity.public_key)
    password = await ctl.bundle_password(worker.id)
    binary = tmp_path / "m"
    binary.write_text("#!/bin/sh\necho m\n", encoding="utf-8")
    for n in (1, 2):
        assert await ctl.deploy(worker.id, create_miner_bundle(binary, None, f"m{n}", password))
    root = worker.paths.root / "lethean-desktop" / "miners"
    before = files_under(root)
    with pytest.raises(ProtocolError, match="quota exceeded: 3 deployed miners, limit 2"):
        await ctl.deploy(worker.id, create_miner_bundle(binary, None, "m3", password))
    assert files_under(root) == before  # no partial files, no temp directory
    big = tmp_path / "big"
    big.write_bytes(b"#!/bin/sh\n" + b"#" * 8192)
    with pytest.raises(ProtocolError, match="exceeds maximum"):
        await ctl.deploy(worker.id, create_miner_bundle(big, None, "big", password))
    assert files_under(root) == before
    for n in (1, 2):
        doc = json.dumps({"id": f"p{n}"}).encode()
        assert await ctl.deploy(worker.id, create_profile_bundle(doc, f"p{n}", password))
    assert worker.profiles is not None
    profiles_before = files_under(worker.paths.profiles)
    with pytest.raises(ProtocolError, match="quota exceeded: 3 deployed profiles, limit 2"):
        await ctl.deploy(worker.id, create_profile_bundle(b'{"id": "p3"}', "p3", password))
    assert files_under(worker.paths.profiles) == profiles_before


async def test_garbage_truncated_and_mislabelled_bundles_are_refused(
    pair: Any, tmp_path: Path
) -> None:
    controller, worker = await pair()
    ctl = controller.controller
    worker.policy.grant(controller.identity.public_key)
    password = await ctl.bundle_password(worker.id)
    noise = tmp_path / "noise"
    noise.write_bytes(os.urandom(2048))
    script = tmp_path / "ok"
    script.write_text("#!/bin/sh\necho ok\n", encoding="utf-8")
    good_miner = create_miner_bundle(script, None, "ok", password)
    good_profile = create_profile_bundle(b'{"id": "fine"}', "fine", password)
    cases = {
        "random bytes as a miner": Bundle.create("miner", "g1", os.urandom(4096)),
        "random bytes as a profile": Bundle.create("profile", "g2", os.urandom(4096)),
        "truncated miner": Bundle.create("miner", "g3", good_miner.data[:-100]),
        "truncated profile": Bundle.create("profile", "g4", good_profile.data[:-50]),
        "a miner labelled profile": Bundle.create("profile", "g5", good_miner.data),
        "a profile labelled miner": Bundle.create("miner", "g6", good_profile.data),
        "random bytes in a valid STIM": create_miner_bundle(noise, None, "g7", password),
    }
    before = _bundle_files(worker)
    for what, bundle in cases.items():
        with pytest.raises((ProtocolError, DeployFailedError)):
            await ctl.deploy(worker.id, bundle)
        assert _bundle_files(worker) == before, what
    assert await ctl.ping_peer(worker.id) > 0


async def test_a_hundred_deploys_from_one_connection_stay_bounded(
    pair: Any, tmp_path: Path
) -> None:
    """The issue's disk-filling run: 100 miner deploys from a stranger store nothing; from an
    authorized controller, only `max_miners` (8 by default) are kept."""
    # 200 requests back to back: lift the per-connection rate limit (not what is tested)
    fast = {"rate_burst": 10_000, "rate_refill_per_s": 10_000.0}
    controller, worker = await pair(
        config=worker_config(transport=fast),
        controller_config=NodeConfig(listen="127.0.0.1:0", transport=fast),
    )
    ctl = controller.controller
    binary = tmp_path / "m"
    binary.write_bytes(b"#!/bin/sh\n" + os.urandom(32 * 1024).hex().encode())
    password = await ctl.bundle_password(worker.id)
    root = worker.paths.root / "lethean-desktop" / "miners"
    made = [create_miner_bundle(binary, None, f"m{i}", password) for i in range(100)]
    for bundle in made:
        with pytest.raises(UnauthorizedError):
            await ctl.deploy(worker.id, bundle)
    assert files_under(root) == set()
    worker.policy.grant(controller.identity.public_key)
    ok = refused = 0
    for bundle in made:
        try:
            await ctl.deploy(worker.id, bundle)
            ok += 1
        except ProtocolError as exc:
            assert "quota exceeded" in str(exc)
            refused += 1
    limit = DeployLimits().max_miners
    assert (ok, refused) == (limit, 100 - limit)
    assert len([p for p in files_under(root) if p.is_file()]) == limit


async def test_an_interrupted_deploy_is_cleaned_up_at_start(tmp_path: Path) -> None:
    stale = tmp_path / "w" / "lethean-desktop" / "miners" / ".deploy-x-0123456789ab"
    stale.mkdir(parents=True)
    (stale / "x").write_bytes(b"#!/bin/sh\n")
    (stale / "x").chmod(0o755)
    async with Node(tmp_path / "w", config=LOOPBACK) as node:
        assert not stale.exists()
        assert node.miners is not None
        assert all(not t.startswith(".") for t in getattr(node.miners, "types", []))
