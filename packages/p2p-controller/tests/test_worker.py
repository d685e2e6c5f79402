"""Worker.handle: every request type, success and error paths, without sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from p2p.controller import bundles
from p2p.controller.authz import Policy
from p2p.controller.miners import JsonFileStats, MinerSpec, ProcessMinerManager
from p2p.controller.payloads import DeployPayload
from p2p.controller.profiles import DirectoryProfileManager
from p2p.controller.worker import Worker
from p2p.identity import NodeManager
from p2p.transport.messages import Message, MessageType

CONTROLLER_ID = "3a9d0b593887c6b9bdb320dd8c6168aa"
#: the requests' sender: the key it proved in the handshake, granted control below
CONTROLLER_KEY = base64.b64encode(bytes(range(100, 132))).decode()
POLICY = Policy([CONTROLLER_KEY])
SECRET = bytes(range(32))
PASSWORD = base64.b64encode(SECRET).decode()


def _deploy_json(bundle: bundles.Bundle) -> bytes:
    """The ``deploy`` payload a controller sends for ``bundle`` (as Controller.deploy does)."""
    return DeployPayload(bundle.type.value, bundle.data, bundle.checksum, bundle.name).to_json()


@pytest.fixture
def node(make_node_manager: Callable[[str], NodeManager]) -> NodeManager:
    return make_node_manager("worker-node")


@pytest.fixture
def miners(tmp_path: Path) -> ProcessMinerManager:
    script = tmp_path / "miner.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys, time
            cfg = json.load(open(os.environ["P2P_MINER_CONFIG"]))
            print("config " + json.dumps(cfg, sort_keys=True), flush=True)
            with open(os.environ["P2P_MINER_STATS"] + ".tmp", "w") as fh:
                json.dump({"hashrate": 99.5, "shares": 7.0, "rejected": 2,
                           "uptime": 1e30, "pool": "pool:1", "algorithm": 5}, fh)
            os.replace(os.environ["P2P_MINER_STATS"] + ".tmp", os.environ["P2P_MINER_STATS"])
            print("stats written", flush=True)
            time.sleep(60)
            """
        )
    )
    spec = MinerSpec([sys.executable, "-u", str(script)], stats=JsonFileStats(), stop_grace=2)
    return ProcessMinerManager({"xmrig": spec}, tmp_path / "run")


@pytest.fixture
def profiles(tmp_path: Path) -> DirectoryProfileManager:
    return DirectoryProfileManager(tmp_path / "profiles")


@pytest.fixture
async def worker(
    node: NodeManager,
    miners: ProcessMinerManager,
    profiles: DirectoryProfileManager,
    tmp_path: Path,
) -> Any:
    w = Worker(node, None, miners, profiles, data_dir=tmp_path / "data", policy=POLICY)
    yield w
    await miners.close()


def request(node: NodeManager, type_: MessageType | str, payload: Any) -> Message:
    assert node.identity is not None
    msg = Message.new(type_, CONTROLLER_ID, node.identity.id, None)
    if payload is not None:
        msg.payload = payload if isinstance(payload, str) else json.dumps(payload)
    return msg


async def ask(w: Worker, node: NodeManager, type_: MessageType | str, payload: Any) -> Message:
    req = request(node, type_, payload)
    reply = await w.handle(req, shared_secret=SECRET, public_key=CONTROLLER_KEY)
    assert reply is not None
    assert reply.reply_to == req.id
    assert reply.to == CONTROLLER_ID
    return reply


def body(reply: Message) -> Any:
    return reply.payload_value()


def error_text(reply: Message) -> str:
    assert reply.type == MessageType.ERROR
    payload = body(reply)
    assert payload["code"] == 1004
    text: str = payload["message"]
    return text


async def wait_line(w: Worker, name: str, text: str) -> None:
    assert w.miners is not None
    miner = w.miners.get_miner(name)
    for _ in range(500):
        if any(text in line for line in miner.get_console_history_since(100, None)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} never logged")


async def test_ping(worker: Worker, node: NodeManager) -> None:
    reply = await ask(worker, node, MessageType.PING, {"sentAt": 1735787045123})
    assert reply.type == MessageType.PONG
    pong = body(reply)
    assert pong["sentAt"] == 1735787045123
    assert abs(pong["receivedAt"] - __import__("time").time() * 1000) < 60_000
    assert node.identity is not None and reply.from_ == node.identity.id


async def test_ping_bad_payload(worker: Worker, node: NodeManager) -> None:
    reply = await ask(worker, node, MessageType.PING, {"sentAt": "soon"})
    assert error_text(reply).startswith("Worker.handlePing: invalid payload: ")
    assert node.identity is not None and reply.from_ == node.identity.id


async def test_ignored_types(worker: Worker, node: NodeManager) -> None:
    for t in ("pong", "stats", "miner_ack", "logs", "error", "disconnect", "whatever"):
        assert await worker.handle(request(node, t, {})) is None


async def test_stats_empty(worker: Worker, node: NodeManager) -> None:
    reply = await ask(worker, node, MessageType.GET_STATS, None)
    assert reply.type == MessageType.STATS
    stats = body(reply)
    assert node.identity is not None
    assert stats == {
        "nodeId": node.identity.id,
        "nodeName": "worker-node",
        "miners": [],
        "uptime": stats["uptime"],
    }
    assert reply.payload is not None and '"miners":[]' in reply.payload


async def test_start_stats_logs_stop(worker: Worker, node: NodeManager) -> None:
    reply = await ask(
        worker, node, MessageType.START_MINER, {"minerType": "xmrig", "config": {"pool": "a"}}
    )
    assert body(reply) == {"success": True, "minerName": "xmrig"}
    await wait_line(worker, "xmrig", "stats written")

    stats = body(await ask(worker, node, MessageType.GET_STATS, None))
    (item,) = stats["miners"]
    # JSON floats that are whole numbers count; out-of-range and wrong types are skipped.
    assert item["name"] == "xmrig" and item["type"] == "xmrig"
    assert item["hashrate"] == 99.5
    assert item["shares"] == 7 and item["rejected"] == 2
    assert item["pool"] == "pool:1" and item["algorithm"] == ""
    assert "cpuThreads" not in item

    logs = body(await ask(worker, node, MessageType.GET_LOGS, {"minerName": "xmrig", "lines": 1}))
    assert logs == {"minerName": "xmrig", "lines": ["stats written"], "hasMore": True}
    logs = body(await ask(worker, node, MessageType.GET_LOGS, {"minerName": "xmrig", "lines": 0}))
    assert logs["lines"] == ['config {"pool": "a"}', "stats written"]
    assert logs["hasMore"] is False
    future_ms = int((__import__("time").time() + 3600) * 1000)
    logs = body(
        await ask(
            worker,
            node,
            MessageType.GET_LOGS,
            {"minerName": "xmrig", "lines": 10, "since": future_ms},
        )
    )
    assert logs["lines"] == []

    reply = await ask(worker, node, MessageType.STOP_MINER, {"minerName": "xmrig"})
    assert body(reply) == {"success": True, "minerName": "xmrig"}
    reply = await ask(worker, node, MessageType.STOP_MINER, {"minerName": "xmrig"})
    assert body(reply) == {
        "success": False,
        "minerName": "xmrig",
        "error": "miner not found: xmrig",
    }


async def test_get_logs_unknown_miner_matches_go(
    worker: Worker, node: NodeManager, golden: dict[str, Any]
) -> None:
    reply = await ask(worker, node, MessageType.GET_LOGS, {"minerName": "x", "lines": 5})
    go = json.loads(golden["messages"]["error_message"])
    assert reply.payload is not None
    assert json.loads(reply.payload) == go["payload"]
    assert reply.payload == json.dumps(go["payload"], separators=(",", ":"))


async def test_start_miner_errors(worker: Worker, node: NodeManager) -> None:
    reply = await ask(worker, node, MessageType.START_MINER, {"minerType": ""})
    assert error_text(reply) == "Worker.handleStartMiner: miner type is required"
    reply = await ask(worker, node, MessageType.START_MINER, {"minerType": "xmrig"})
    assert error_text(reply) == "Worker.handleStartMiner: profile not found: "
    reply = await ask(
        worker, node, MessageType.START_MINER, {"minerType": "xmrig", "profileId": "nope"}
    )
    assert error_text(reply) == "Worker.handleStartMiner: profile not found: nope"
    reply = await ask(
        worker, node, MessageType.START_MINER, {"minerType": "cpuminer", "config": {}}
    )
    assert body(reply) == {
        "success": False,
        "error": "unknown miner type: cpuminer (this worker knows: xmrig)",
    }
    reply = await ask(worker, node, MessageType.START_MINER, {"minerType": 5})
    assert error_text(reply).startswith("Worker.handleStartMiner: invalid payload: ")


async def test_null_config_uses_profile(
    worker: Worker, node: NodeManager, profiles: DirectoryProfileManager
) -> None:
    profiles.save_profile({"id": "main", "pool": "from-profile"})
    reply = await ask(
        worker,
        node,
        MessageType.START_MINER,
        {"minerType": "xmrig", "profileId": "main", "config": None},
    )
    assert body(reply)["success"] is True
    await wait_line(worker, "xmrig", "config ")
    assert worker.miners is not None
    lines = worker.miners.get_miner("xmrig").get_console_history_since(10, None)
    assert lines[0] == 'config {"id": "main", "pool": "from-profile"}'


async def test_no_managers(node: NodeManager) -> None:
    w = Worker(node, policy=POLICY)
    for t, p in (
        (MessageType.START_MINER, {"minerType": "x"}),
        (MessageType.STOP_MINER, {"minerName": "x"}),
        (MessageType.GET_LOGS, {"minerName": "x"}),
    ):
        assert error_text(await ask(w, node, t, p)) == "node: miner manager not configured"
    miners = ProcessMinerManager({})
    w = Worker(node, None, miners, policy=POLICY)
    reply = await ask(w, node, MessageType.START_MINER, {"minerType": "x"})
    assert (
        error_text(reply)
        == "Worker.handleStartMiner: no config provided and no profile manager configured"
    )
    reply = await ask(w, node, MessageType.DEPLOY, {"type": "profile", "name": "p", "data": None})
    assert error_text(reply) == "Worker.handleDeploy: profile manager not configured"


async def test_deploy_rejects_bad_type_and_name(worker: Worker, node: NodeManager) -> None:
    reply = await ask(worker, node, MessageType.DEPLOY, {"type": "rootkit", "name": "x"})
    assert error_text(reply) == "Worker.handleDeploy: unknown bundle type: rootkit"
    bundle = bundles.create_profile_bundle(b'{"id":"x"}', "../../escape", PASSWORD)
    payload = json.loads(_deploy_json(bundle))
    for bad in ("../../escape", "a/b", "..", ""):
        payload["name"] = bad
        reply = await ask(worker, node, MessageType.DEPLOY, payload)
        assert error_text(reply).startswith("Worker.handleDeploy: invalid bundle name")
    assert not (worker.data_dir).exists()


async def test_deploy_profile(
    worker: Worker, node: NodeManager, profiles: DirectoryProfileManager
) -> None:
    bundle = bundles.create_profile_bundle(b'{"pool": "deployed"}', "deployed", PASSWORD)
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(bundle)))
    assert reply.type == MessageType.DEPLOY_ACK
    assert body(reply) == {"success": True, "name": "deployed"}
    assert profiles.get_profile("deployed") == {"pool": "deployed", "id": "deployed"}

    plain = bundles.create_profile_bundle_unencrypted(b'{"id": "plain", "a": 1}', "p2")
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(plain)))
    # the ack names the id the profile is stored under (what `--profile` takes), not "p2"
    assert body(reply) == {"success": True, "name": "plain"}
    assert profiles.get_profile("plain") == {"id": "plain", "a": 1}


async def test_deploy_profile_failures(worker: Worker, node: NodeManager) -> None:
    wrong = bundles.create_profile_bundle(b'{"a": 1}', "w", "not-the-password")
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(wrong)))
    assert error_text(reply).startswith("Worker.handleDeploy: failed to extract profile bundle: ")
    payload = json.loads(_deploy_json(wrong))
    payload["checksum"] = "0" * 64
    reply = await ask(worker, node, MessageType.DEPLOY, payload)
    assert error_text(reply).endswith("checksum mismatch - bundle may be corrupted")
    not_json = bundles.create_profile_bundle(b"not json", "nj", PASSWORD)
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(not_json)))
    assert error_text(reply).startswith(
        "Worker.handleDeploy: failed to extract profile bundle: profile is not valid JSON"
    )
    # validated before anything is stored: an unsafe id is refused with an error reply
    bad_id = bundles.create_profile_bundle(b'{"id": "../x"}', "bad", PASSWORD)
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(bad_id)))
    assert "profile id '../x' is not a safe name" in error_text(reply)


async def test_deploy_miner_then_start_by_type(
    worker: Worker, node: NodeManager, profiles: DirectoryProfileManager, tmp_path: Path
) -> None:
    exe = tmp_path / "src" / "tiny-miner"
    exe.parent.mkdir()
    exe.write_text(f"#!{sys.executable}\nprint('tiny miner hashing', flush=True)\n")
    bundle = bundles.create_miner_bundle(exe, None, "tiny", PASSWORD)
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(bundle)))
    assert body(reply) == {"success": True, "name": "tiny"}
    installed = worker.data_dir / "lethean-desktop" / "miners" / "tiny" / "tiny-miner"
    assert installed.read_bytes() == exe.read_bytes()
    assert os.access(installed, os.X_OK)
    assert profiles.list_profiles() == []  # no bogus Borg-default profile

    reply = await ask(worker, node, MessageType.START_MINER, {"minerType": "tiny", "config": {}})
    assert body(reply) == {"success": True, "minerName": "tiny"}
    await wait_line(worker, "tiny", "tiny miner hashing")


async def test_deploy_miner_with_profile(
    worker: Worker, node: NodeManager, profiles: DirectoryProfileManager, tmp_path: Path
) -> None:
    exe = tmp_path / "m"
    exe.write_text(f"#!{sys.executable}\nprint('m')\n")
    bundle = bundles.create_miner_bundle(exe, b'{"pool": "bundled"}', "withprof", PASSWORD)
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(bundle)))
    assert body(reply) == {"success": True, "name": "withprof"}
    assert profiles.get_profile("withprof") == {"pool": "bundled", "id": "withprof"}
    wrong = bundles.create_miner_bundle(exe, None, "wrongpw", "other")
    reply = await ask(worker, node, MessageType.DEPLOY, json.loads(_deploy_json(wrong)))
    assert error_text(reply).startswith("Worker.handleDeploy: failed to extract miner bundle: ")


async def test_deploy_without_secret(worker: Worker, node: NodeManager) -> None:
    bundle = bundles.create_profile_bundle(b"{}", "p", PASSWORD)
    req = request(node, MessageType.DEPLOY, _deploy_json(bundle).decode())
    reply = await worker.handle(req, public_key=CONTROLLER_KEY)
    assert reply is not None
    assert error_text(reply) == "Worker.handleDeploy: no shared secret for this connection"


async def test_logs_reply_fits_one_message(node: NodeManager, tmp_path: Path) -> None:
    script = tmp_path / "chatty.py"
    script.write_text("for i in range(200):\n    print(f'{i:04d}' + 'x' * 8000)\n")
    miners = ProcessMinerManager({"chatty": MinerSpec([sys.executable, str(script)])}, tmp_path)
    w = Worker(node, None, miners, policy=POLICY)
    miner = await miners.start_miner("chatty", {})
    await miner.wait()
    reply = await ask(w, node, MessageType.GET_LOGS, {"minerName": "chatty", "lines": 1000})
    assert reply.payload is not None and len(reply.payload) < 800 * 1024
    logs = body(reply)
    assert logs["hasMore"] is True
    assert 80 < len(logs["lines"]) < 200
    assert logs["lines"][-1].startswith("0199")  # the newest lines are the ones kept
    await miners.close()


class PopenMiner:
    """A minimal synchronous MinerInstance: a subprocess whose output goes to a file."""

    def __init__(self, name: str, out: Path, config: Any) -> None:
        self.name, self.out = name, out
        with open(out, "wb") as fh:
            code = f"print('sync miner', {json.dumps(config)!r})"
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=fh)

    def get_name(self) -> str:
        return self.name

    def get_type(self) -> str:
        return "popen"

    def get_stats(self) -> Any:
        return {"hashrate": 1, "shares": 2}

    def get_console_history_since(self, lines: int, since: Any) -> list[str]:
        return self.out.read_text().splitlines()[-lines:]


class PopenMinerManager:
    """A synchronous MinerManager (plain methods): the Worker must accept it too."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.miners: dict[str, PopenMiner] = {}

    def start_miner(self, miner_type: str, config: Any) -> PopenMiner:
        if miner_type != "popen":
            raise ValueError(f"no such type {miner_type}")
        miner = PopenMiner("popen-1", self.directory / "out.txt", config)
        self.miners[miner.name] = miner
        return miner

    def stop_miner(self, name: str) -> None:
        miner = self.miners.pop(name)
        miner.proc.terminate()
        miner.proc.wait()

    def list_miners(self) -> list[PopenMiner]:
        return list(self.miners.values())

    def get_miner(self, name: str) -> PopenMiner:
        return self.miners[name]


async def test_synchronous_miner_manager(node: NodeManager, tmp_path: Path) -> None:
    manager = PopenMinerManager(tmp_path)
    w = Worker(node, None, manager, policy=POLICY)
    reply = await ask(w, node, MessageType.START_MINER, {"minerType": "popen", "config": [1]})
    assert body(reply) == {"success": True, "minerName": "popen-1"}
    manager.miners["popen-1"].proc.wait()
    logs = body(await ask(w, node, MessageType.GET_LOGS, {"minerName": "popen-1", "lines": 5}))
    assert logs["lines"] == ["sync miner [1]"]
    stats = body(await ask(w, node, MessageType.GET_STATS, None))
    assert stats["miners"][0]["hashrate"] == 1.0 and stats["miners"][0]["shares"] == 2
    reply = await ask(w, node, MessageType.START_MINER, {"minerType": "other", "config": {}})
    assert body(reply) == {"success": False, "error": "no such type other"}
    reply = await ask(w, node, MessageType.STOP_MINER, {"minerName": "popen-1"})
    assert body(reply) == {"success": True, "minerName": "popen-1"}
