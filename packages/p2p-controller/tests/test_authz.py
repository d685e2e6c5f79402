"""The sans-I/O authorization pieces: Policy, capabilities, the refusal reply, deploy rules,
bundle validation, the controllers file. No sockets."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from p2p.controller import bundles
from p2p.controller.authz import (
    Capability,
    ObserveRule,
    Policy,
    PolicyError,
    normalise_key,
    required_capability,
)
from p2p.controller.config import NodeConfig, NodeConfigError
from p2p.controller.controllers_file import (
    ControllersFileSync,
    load_controllers,
    save_controllers,
)
from p2p.controller.deploy_guard import DeployLimits, DeployRefusedError, Usage, check_quota
from p2p.controller.miners import MinerSpec, ProcessMinerManager
from p2p.controller.worker import MAX_ECHO, Worker, clip
from p2p.identity import NodeManager
from p2p.transport.errors import ProtocolError
from p2p.transport.messages import Message, MessageType, validate_response

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()
KEY_C = base64.b64encode(bytes(range(2, 34))).decode()
SECRET = bytes(range(32))
PASSWORD = base64.b64encode(SECRET).decode()

REQUESTS = {
    MessageType.PING: {"sentAt": 1},
    MessageType.GET_STATS: None,
    MessageType.GET_LOGS: {"minerName": "x", "lines": 5},
    MessageType.START_MINER: {"minerType": "sh", "config": {}},
    MessageType.STOP_MINER: {"minerName": "sh"},
    MessageType.DEPLOY: {"type": "profile", "data": None, "checksum": "", "name": "p"},
}


def test_default_policy_observe_for_all_control_for_none() -> None:
    policy = Policy()
    assert policy.observe is ObserveRule.CONNECTED
    for key in (KEY_A, KEY_B):
        assert policy.allows(key, Capability.OBSERVE)
        assert not policy.allows(key, Capability.CONTROL)
    assert not policy.allows("", Capability.OBSERVE)  # no proven key, nothing
    assert policy.controllers == frozenset()


def test_controllers_fixed_and_granted() -> None:
    policy = Policy([KEY_A])
    assert policy.allows(KEY_A, Capability.CONTROL) and policy.allows(KEY_A, Capability.OBSERVE)
    assert not policy.allows(KEY_B, Capability.CONTROL)
    assert policy.grant(KEY_B) == KEY_B and policy.allows(KEY_B, Capability.CONTROL)
    assert policy.controllers == {KEY_A, KEY_B}
    assert policy.revoke(KEY_B) and not policy.allows(KEY_B, Capability.CONTROL)
    assert not policy.revoke(KEY_A)  # a configured key is not revoked at run time
    assert policy.allows(KEY_A, Capability.CONTROL)
    policy.set_granted([KEY_C])
    assert policy.granted == {KEY_C} and policy.fixed == {KEY_A}


def test_observe_controllers_only() -> None:
    policy = Policy([KEY_A], observe="controllers")
    assert policy.allows(KEY_A, Capability.OBSERVE)
    assert not policy.allows(KEY_B, Capability.OBSERVE)


def test_keys_are_validated_and_canonical() -> None:
    assert normalise_key(f"  {KEY_A} ") == KEY_A
    for bad in ("", "not base64!", base64.b64encode(b"short").decode(), 42, "A" * 500):
        with pytest.raises(PolicyError):
            normalise_key(bad)
    with pytest.raises(PolicyError):
        Policy(["nope"])
    with pytest.raises(PolicyError):
        Policy(observe="everyone")


def test_replacement_needs_control_too() -> None:
    assert Policy([KEY_A], allow_replace=[KEY_A]).may_replace(KEY_A)
    assert not Policy([KEY_A]).may_replace(KEY_A)
    assert not Policy(allow_replace=[KEY_B]).may_replace(KEY_B)


def test_required_capability_of_every_request() -> None:
    assert required_capability(MessageType.PING) is Capability.OBSERVE
    assert required_capability("get_stats") is Capability.OBSERVE
    for t in ("get_logs", "start_miner", "stop_miner", "deploy"):
        assert required_capability(MessageType(t)) is Capability.CONTROL
    for t in ("pong", "stats", "error", "handshake", "nonsense", 7):
        assert required_capability(t) is None


def test_table_round_trip_and_errors() -> None:
    table = {"controllers": [KEY_B, KEY_A], "observe": "controllers", "allow_replace": [KEY_A]}
    policy = Policy.from_table(table)
    assert policy.to_table() == {
        "controllers": sorted([KEY_A, KEY_B]),
        "observe": "controllers",
        "allow_replace": [KEY_A],
    }
    assert Policy.from_table(policy.to_table()).to_table() == policy.to_table()
    for bad in ({"controlers": []}, {"controllers": KEY_A}, {"observe": "all"}):
        with pytest.raises(PolicyError):
            Policy.from_table(bad)


def test_node_config_authorization_and_deploy_tables() -> None:
    cfg = NodeConfig.from_mapping(
        {
            "authorization": {"controllers": [KEY_A], "allow_replace": [KEY_A]},
            "deploy": {"max_miners": 2, "max_profiles": 3},
        }
    )
    assert cfg.controllers == (KEY_A,) and cfg.policy().may_replace(KEY_A)
    assert cfg.deploy.max_miners == 2 and cfg.deploy.max_profiles == 3
    assert NodeConfig().policy().controllers == frozenset()  # the default trusts no one
    assert NodeConfig().deploy == DeployLimits()
    with pytest.raises(NodeConfigError, match="authorization"):
        NodeConfig.from_mapping({"authorization": {"controllers": ["junk"]}})
    with pytest.raises(NodeConfigError, match="deploy"):
        NodeConfig.from_mapping({"deploy": {"max_miners": -1}})
    with pytest.raises(NodeConfigError, match="deploy"):
        NodeConfig.from_mapping({"deploy": {"max_minerz": 1}})


def test_quota_rule() -> None:
    check_quota("miner", Usage(1, 10), Usage(1, 10), max_count=2, max_bytes=20)
    with pytest.raises(DeployRefusedError, match="quota exceeded: 3 deployed miners, limit 2"):
        check_quota("miner", Usage(2, 10), Usage(1, 1), max_count=2, max_bytes=100)
    with pytest.raises(DeployRefusedError, match="would take 21 bytes, limit 20"):
        check_quota("profile", Usage(1, 10), Usage(1, 11), max_count=5, max_bytes=20)
    # replacing frees what it replaces
    check_quota(
        "miner", Usage(2, 20), Usage(1, 10), max_count=2, max_bytes=20, replacing=Usage(1, 10)
    )


def test_clip() -> None:
    assert clip("short") == "short"
    long = "x" * 700_000
    assert len(clip(long)) == MAX_ECHO and clip(long).endswith("…")
    assert clip(ValueError("y" * 500), 10) == "y" * 9 + "…"


# --- the refusal on the wire --------------------------------------------------------------------


@pytest.fixture
def node(make_node_manager: Callable[[str], NodeManager]) -> NodeManager:
    return make_node_manager("worker")


def _request(node: NodeManager, type_: MessageType, payload: object) -> Message:
    msg = Message.new(type_, "c0ffee" * 5 + "00", node.require_identity().id, None)
    if payload is not None:
        msg.payload = json.dumps(payload)
    return msg


@pytest.mark.parametrize("type_", list(REQUESTS))
async def test_refusal_is_a_go_style_1002_error(
    type_: MessageType, node: NodeManager, tmp_path: Path
) -> None:
    miners = ProcessMinerManager({"sh": MinerSpec(["/bin/sh", "-c", "sleep 30"])}, tmp_path)
    policy = Policy([KEY_A], observe="controllers")  # KEY_B may do nothing at all
    worker = Worker(node, None, miners, None, data_dir=tmp_path / "data", policy=policy)
    req = _request(node, type_, REQUESTS[type_])
    reply = await worker.handle(req, shared_secret=SECRET, public_key=KEY_B)
    assert reply is not None
    # MESSAGES.md §1 envelope (key order), §3 error payload, §5 codes: 1002 unauthorized
    doc = json.loads(reply.to_json())
    assert list(doc) == ["id", "type", "from", "to", "ts", "payload", "replyTo"]
    assert doc["type"] == "error" and doc["replyTo"] == req.id
    assert doc["from"] == node.require_identity().id and doc["to"] == req.from_
    assert list(doc["payload"]) == ["code", "message"]  # details omitted when empty
    assert doc["payload"]["code"] == 1002
    message = doc["payload"]["message"]
    assert message.startswith("unauthorized: ")
    assert f"p2p-node controllers add {KEY_B}" in message
    # what a Go controller shows (ValidateResponse, MESSAGES.md §6)
    with pytest.raises(ProtocolError) as info:
        validate_response(reply, MessageType.PONG)
    assert str(info.value).startswith("remote error (1002): unauthorized: ")
    assert worker.refused == 1
    assert miners.list_miners() == [] and not (tmp_path / "data").exists()
    await miners.close()


async def test_no_key_no_service(node: NodeManager) -> None:
    worker = Worker(node)
    reply = await worker.handle(_request(node, MessageType.GET_STATS, None))
    assert reply is not None and json.loads(reply.to_json())["payload"]["code"] == 1002


async def test_remote_strings_are_clipped_in_replies(node: NodeManager, tmp_path: Path) -> None:
    miners = ProcessMinerManager({}, tmp_path)
    worker = Worker(node, None, miners, None, policy=Policy([KEY_A]))
    huge = "m" * 700_000
    for type_, payload in (
        (MessageType.GET_LOGS, {"minerName": huge, "lines": 1}),
        (MessageType.STOP_MINER, {"minerName": huge}),
        (MessageType.START_MINER, {"minerType": huge, "config": {}}),
        (MessageType.START_MINER, {"minerType": "x", "profileId": huge}),
        (MessageType.DEPLOY, {"type": huge, "data": None, "checksum": "", "name": "n"}),
        (MessageType.DEPLOY, {"type": "miner", "data": None, "checksum": "", "name": huge}),
    ):
        reply = await worker.handle(_request(node, type_, payload), public_key=KEY_A)
        assert reply is not None
        assert len(reply.to_json()) < 2048, type_


# --- bundle validation --------------------------------------------------------------------------


def _miner_stim(tmp_path: Path, content: bytes, profile: bytes | None = None) -> bytes:
    exe = tmp_path / "bin"
    exe.write_bytes(content)
    return bundles.create_miner_bundle(exe, profile, "m", PASSWORD).data


def test_profile_json_validation() -> None:
    assert bundles.validate_profile_json(b'{"id": "p1", "pool": "x"}')["id"] == "p1"
    for bad, why in (
        (b"[1, 2]", "JSON object"),
        (b"not json", "not valid JSON"),
        (b'{"id": "../x"}', "safe name"),
        (b'{"minerType": 3}', "minerType"),
        (bundles.DEFAULT_TIM_CONFIG, "no profile"),
    ):
        with pytest.raises(bundles.BundleFormatError, match=why):
            bundles.validate_profile_json(bad)


def test_bundle_shape_without_password(tmp_path: Path) -> None:
    stim = _miner_stim(tmp_path, b"#!/bin/sh\necho hi\n")
    bundles.check_bundle_shape(bundles.Bundle.create("miner", "m", stim))
    bundles.check_bundle_shape(bundles.Bundle.create("profile", "p", b'{"a": 1}'))
    garbage = os.urandom(4096)
    for bundle in (
        bundles.Bundle.create("miner", "m", garbage),  # random bytes
        bundles.Bundle.create("miner", "m", stim[: len(stim) // 2][:12]),  # truncated framing
        bundles.Bundle.create("miner", "m", b'{"id": "p"}'),  # a profile labelled miner
        bundles.Bundle.create("profile", "p", garbage),
    ):
        with pytest.raises(bundles.BundleError):
            bundles.check_bundle_shape(bundle)
    with pytest.raises(bundles.ChecksumMismatchError):
        bundles.check_bundle_shape(bundles.Bundle("miner", "m", stim, "00" * 32))


def test_inspect_miner_and_profile_bundles(tmp_path: Path) -> None:
    good = bundles.Bundle.create("miner", "m", _miner_stim(tmp_path, b"\x7fELF" + bytes(60)))
    contents = bundles.inspect_miner_bundle(good, PASSWORD)
    assert contents.files == 1 and contents.total_size == 64 and contents.profile is None
    random_binary = bundles.Bundle.create("miner", "m", _miner_stim(tmp_path, os.urandom(64)))
    with pytest.raises(bundles.BundleFormatError, match="not a program"):
        bundles.inspect_miner_bundle(random_binary, PASSWORD)
    bad_profile = bundles.Bundle.create(
        "miner", "m", _miner_stim(tmp_path, b"#!/bin/sh\n", b'{"id": "../../x"}')
    )
    with pytest.raises(bundles.BundleFormatError, match="safe name"):
        bundles.inspect_miner_bundle(bad_profile, PASSWORD)
    # mislabelled: a miner STIM sent as a profile, a profile STIM sent as a miner
    as_profile = bundles.Bundle.create("profile", "m", good.data)
    with pytest.raises(bundles.BundleError):
        bundles.inspect_profile_bundle(as_profile, PASSWORD)
    profile = bundles.create_profile_bundle(b'{"id": "p"}', "p", PASSWORD)
    raw, doc = bundles.inspect_profile_bundle(profile, PASSWORD)
    assert doc == {"id": "p"} and raw == b'{"id": "p"}'
    as_miner = bundles.Bundle.create("miner", "p", profile.data)
    with pytest.raises(bundles.BundleFormatError, match="no regular file"):
        bundles.inspect_miner_bundle(as_miner, PASSWORD)
    with pytest.raises(bundles.BundleDecryptError):
        bundles.inspect_miner_bundle(good, "another password")


def test_per_bundle_limits_from_deploy_limits(tmp_path: Path) -> None:
    limits = DeployLimits(max_miner_bytes=1024).extract_limits()
    big = bundles.Bundle.create("miner", "m", _miner_stim(tmp_path, b"#!" + bytes(4096)))
    with pytest.raises(bundles.ArchiveLimitError):
        bundles.inspect_miner_bundle(big, PASSWORD, limits=limits)


# --- the controllers file -----------------------------------------------------------------------


def test_controllers_file_round_trip_and_sync(tmp_path: Path) -> None:
    path = tmp_path / "d" / "controllers.json"
    assert load_controllers(path) == []
    save_controllers(path, [KEY_A, KEY_A, KEY_B])
    assert load_controllers(path) == [KEY_A, KEY_B]
    assert [p.name for p in path.parent.iterdir()] == ["controllers.json"]  # no temp left
    policy = Policy([KEY_C])
    sync = ControllersFileSync(policy, path, interval=0.05)
    assert sync.poll() and policy.controllers == {KEY_A, KEY_B, KEY_C}
    assert not sync.poll()  # unchanged file: one stat, nothing read
    save_controllers(path, [KEY_B])
    assert sync.poll() and not policy.allows(KEY_A, Capability.CONTROL)
    path.write_text("{not json", encoding="utf-8")
    assert not sync.poll() and policy.granted == {KEY_B}  # a broken file is not adopted
    path.write_text(json.dumps(["junk"]), encoding="utf-8")
    with pytest.raises(PolicyError):
        load_controllers(path)
    path.unlink()
    assert sync.poll() and policy.granted == frozenset()
