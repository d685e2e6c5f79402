"""`p2p-node` in-process: argument parsing, config, output, exit codes, and client commands
against a real node serving on 127.0.0.1 in a background thread."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from p2p.controller import Node, NodeConfig, NodeConfigError, bundles
from p2p.controller import controller as ctl
from p2p.controller._cli_output import (
    EXIT_ERROR,
    EXIT_REMOTE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    classify,
    human_bytes,
    human_duration,
    parse_since,
    table,
)
from p2p.controller.authz import Capability
from p2p.controller.bundles import Bundle, extract_profile_bundle
from p2p.controller.config import MinerConfig, parse_host_port
from p2p.controller.node import AmbiguousPeerError, UnknownPeerError
from p2p.identity import NodeManager
from p2p.transport import ConnectError
from p2p.transport.errors import ProtocolError
from pytest_p2p.cli import one_json
from pytest_p2p.cli import run_cli as run

# --- arguments and usage ----------------------------------------------------------------------


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run()[0] == EXIT_USAGE
    assert run("frobnicate")[0] == EXIT_USAGE
    assert run("ping")[0] == EXIT_USAGE
    assert run("logs", "peer", "miner", "--lines", "0")[0] == EXIT_USAGE
    assert run("--timeout", "-1", "ping", "x")[0] == EXIT_USAGE
    code, _, err = run("--data-dir", str(tmp_path), "stats", "somepeer", "--all")
    assert code == EXIT_USAGE and "not both" in err
    assert run("--help")[0] == 0
    for bad in ("-1", "1001", "nan", "fast"):
        code, _, err = run("--data-dir", str(tmp_path), "serve", "--busy-poll-us", bad)
        assert code == EXIT_USAGE and "--busy-poll-us" in err, bad


def test_identity_init_show_contract(tmp_path: Path) -> None:
    d = str(tmp_path / "node")
    code, out, err = run("--data-dir", d, "identity", "show")
    assert code == EXIT_ERROR and "identity init" in err and out == ""
    code, out, _ = run("--data-dir", d, "identity", "init", "--name", "n1", "--json")
    assert code == 0
    created = one_json(out)
    code, out, _ = run("--data-dir", d, "identity", "show", "--json")
    shown = one_json(out)
    assert code == 0 and shown == created
    assert set(shown) == {"id", "name", "publicKey", "createdAt", "role"}
    assert shown["name"] == "n1" and shown["role"] == "dual"
    # init again keeps it; --force replaces it
    assert one_json(run("--data-dir", d, "identity", "init", "--json")[1])["id"] == shown["id"]
    forced = one_json(run("--data-dir", d, "identity", "init", "--force", "--json")[1])
    assert forced["id"] != shown["id"] and forced["name"] == "n1"
    # human output names the key file under the data dir
    code, out, _ = run("--data-dir", d, "identity", "show")
    assert code == 0 and str(Path(d) / "node" / "private.key") in out


def test_corrupt_identity_is_reported_and_replaced_only_on_request(tmp_path: Path) -> None:
    d = tmp_path / "node"
    assert run("--data-dir", str(d), "identity", "init", "--name", "keep")[0] == 0
    (d / "node.json").write_text("{ not json", encoding="utf-8")
    for argv in (("identity", "show"), ("identity", "init"), ("ping", "x")):
        code, _, err = run("--data-dir", str(d), *argv)
        assert code == EXIT_ERROR and "identity init --force" in err, argv
    code, out, _ = run("--data-dir", str(d), "identity", "init", "--force", "--json")
    assert code == 0 and one_json(out)["name"] == "lethean-node"
    assert sorted(p.name for p in d.iterdir() if p.name.endswith(".corrupt")) == [
        "node.json.corrupt"
    ]


def test_data_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_NODE_DIR", str(tmp_path / "envdir"))
    assert run("identity", "init")[0] == 0
    assert (tmp_path / "envdir" / "node.json").is_file()


# --- config -----------------------------------------------------------------------------------

FULL_TOML = """
name = "server-a"
listen = "127.0.0.1:0"
auth_mode = "allowlist"
allowlist = ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
profile_dir = "profiles-here"
log_format = "json"
log_level = "debug"

[tls]
cert = "cert.pem"
key = "/abs/key.pem"

[transport]
max_conns = 7
ping_interval = 15.0

[miners.xmrig]
command = ["/usr/bin/xmrig", "--config", "{config}"]
stats_regex = 'speed (?P<hashrate>[\\d.]+)'
env = { A = "1" }
stop_grace = 2
"""


def test_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "node.toml"
    path.parent.mkdir()
    key_file = tmp_path / "abs" / "key.pem"  # TLS files must exist when the config loads
    key_file.parent.mkdir()
    key_file.write_text("k", encoding="utf-8")
    (path.parent / "cert.pem").write_text("c", encoding="utf-8")
    path.write_text(FULL_TOML.replace("/abs/key.pem", str(key_file)), encoding="utf-8")
    cfg = NodeConfig.from_file(path)
    assert (
        cfg.name == "server-a"
        and cfg.auth_mode == "allowlist"
        and cfg.allowlist == ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",)
    )
    assert cfg.profile_dir == path.parent / "profiles-here"  # relative to the file
    assert cfg.tls_cert == path.parent / "cert.pem" and cfg.tls_key == key_file
    assert cfg.log_format == "json" and cfg.log_level == "debug"
    miner = cfg.miners["xmrig"]
    assert miner.command == ("/usr/bin/xmrig", "--config", "{config}")
    assert miner.env == {"A": "1"} and miner.stop_grace == 2.0
    spec = miner.spec()
    assert list(spec.command) == list(miner.command) and spec.stats is not None
    tcfg = NodeConfig(listen="127.0.0.1:0", transport={"max_conns": 7}).transport_config()
    assert tcfg.max_conns == 7 and tcfg.listen_host == "127.0.0.1" and tcfg.listen_port == 0
    # flags override the file, None means "not given"
    over = cfg.replace(listen="127.0.0.1:5555", name=None)
    assert over.listen == "127.0.0.1:5555" and over.name == "server-a"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1", "file"),
        ('auth_mode = "closed"', "auth_mode"),
        ('listen = "nowhere"', "listen"),
        ('listen = "1.2.3.4:99999"', "listen"),
        ("allowlist = [1]", "allowlist"),
        ('allowlist = ["AAAA"]', "allowlist"),
        ('[tls]\ncert = "c"', "tls.cert"),  # the file does not exist
        ("[transport]\nno_such_knob = 1", "transport"),
        ("[miners.x]\ncommand = []", "miners.x.command"),
        ('[miners.x]\ncommand = ["a"]\nlog_lines = 0', "miners.x.log_lines"),
        ('[miners.x]\ncommand = ["a"]\nstats_regex = "("', "miners.x.stats_regex"),
        ('[miners.x]\ncommand = ["a"]\nsurprise = 1', "miners.x"),
        ("this is not toml", None),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, key: str | None) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NodeConfigError) as err:
        NodeConfig.from_file(path)
    if key is not None:
        assert err.value.key == key


def test_transport_values_are_validated_by_the_transport() -> None:
    cfg = NodeConfig(listen="127.0.0.1:0", transport={"max_conns": 0})
    with pytest.raises(NodeConfigError, match="max_conns"):
        cfg.transport_config()


def test_serve_refuses_a_bad_config_before_listening(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('auth_mode = "sometimes"', encoding="utf-8")
    code, out, err = run("--data-dir", str(tmp_path / "d"), "serve", "--config", str(bad))
    assert code == EXIT_USAGE and out == "" and "auth_mode" in err
    code, _, err = run("--data-dir", str(tmp_path / "d"), "serve", "--miner", "noequals")
    assert code == EXIT_USAGE and "TYPE=COMMAND" in err
    # the data dir's config.toml is read by default
    (tmp_path / "d").mkdir(exist_ok=True)
    (tmp_path / "d" / "config.toml").write_text('listen = "x"', encoding="utf-8")
    assert run("--data-dir", str(tmp_path / "d"), "serve")[0] == EXIT_USAGE


def test_host_port_forms() -> None:
    assert parse_host_port(":9091") == ("0.0.0.0", 9091)
    assert parse_host_port("[::1]:80") == ("::1", 80)
    assert parse_host_port("ws://h:1/ws") == ("h", 1)
    with pytest.raises(NodeConfigError):
        parse_host_port("http://h:1")
    with pytest.raises(NodeConfigError):
        MinerConfig.from_table("t", {"command": "x", "env": {"a": 1}})


# --- output helpers ---------------------------------------------------------------------------


def test_parse_since_forms() -> None:
    now = 1_700_000_000_000
    assert parse_since("5m", now_ms=now) == now - 300_000
    assert parse_since("250ms", now_ms=now) == now - 250
    assert parse_since("1700000000123", now_ms=now) == 1_700_000_000_123
    assert parse_since("2023-11-14T22:13:20Z", now_ms=now) == 1_700_000_000_000
    assert parse_since("2023-11-14T22:13:20+00:00", now_ms=now) == 1_700_000_000_000
    for bad in ("", "yesterday", "5y", "9" * 100):
        with pytest.raises(CliError) as err:
            parse_since(bad, now_ms=now)
        assert err.value.code == EXIT_USAGE


def test_table_and_units() -> None:
    text = table(("NAME", "N"), [("a", 1), ("long-name", 100)])
    assert text.splitlines() == ["NAME       N", "a            1", "long-name  100"]
    assert human_duration(59) == "59s" and human_duration(61) == "1m01s"
    assert human_duration(7200) == "2h00m" and human_duration(90000) == "1d01h"
    assert human_bytes(10) == "10 B" and human_bytes(2048) == "2.0 KiB"


def test_exit_code_of_each_failure() -> None:
    cases: list[tuple[BaseException, int]] = [
        (UnknownPeerError("x"), EXIT_USAGE),
        (AmbiguousPeerError("a", ["a1", "a2"]), EXIT_USAGE),
        (NodeConfigError("listen", "bad"), EXIT_USAGE),
        (ctl.PeerNotFoundError("x"), EXIT_USAGE),
        (ConnectError("ws://h:1/ws", "refused"), EXIT_UNREACHABLE),
        (ctl.RequestTimeout("p", "ping", 5.0), EXIT_UNREACHABLE),
        (ctl.ConnectionLostError("p"), EXIT_UNREACHABLE),
        (ProtocolError(1004, "nope"), EXIT_REMOTE),
        (ctl.MinerCommandError("miner start failed: x"), EXIT_REMOTE),
        (ctl.DeployFailedError("deploy failed: x"), EXIT_REMOTE),
        (FileNotFoundError(2, "No such file", "f"), EXIT_ERROR),
        (OSError(errno.EADDRINUSE, "address already in use"), EXIT_ERROR),
        (RuntimeError("boom"), EXIT_ERROR),
    ]
    for exc, code in cases:
        failure = classify(exc)
        assert failure.code == code, exc
        sentence = failure.sentence()
        assert sentence and "\n" not in sentence
    assert "--listen" in classify(OSError(errno.EADDRINUSE, "address already in use")).sentence()


# --- peers and bundles without a network ------------------------------------------------------


def test_peers_allow_revoke_raw_keys(tmp_path: Path) -> None:
    d = str(tmp_path / "d")
    key = base64.b64encode(bytes(range(32))).decode()
    assert run("--data-dir", d, "peers", "allow", key)[0] == 0
    listing = one_json(run("--data-dir", d, "peers", "list", "--json")[1])
    assert listing == {"peers": [], "allowlist": [key]}
    assert (tmp_path / "d" / "peers.json.allowlist.json").is_file()
    assert run("--data-dir", d, "peers", "revoke", key)[0] == 0
    assert one_json(run("--data-dir", d, "peers", "list", "--json")[1])["allowlist"] == []
    code, _, err = run("--data-dir", d, "peers", "allow", "not-a-key")
    assert code == EXIT_USAGE and "peers list" in err
    code, out, err = run("--data-dir", d, "--json", "peers", "remove", "nobody")
    assert code == EXIT_USAGE and one_json(out)["exitCode"] == EXIT_USAGE


def test_bundle_create_offline(tmp_path: Path) -> None:
    d = str(tmp_path / "d")
    profile = tmp_path / "p1.json"
    profile.write_text('{"id": "p1", "threads": 2}', encoding="utf-8")
    out_file = tmp_path / "p1.bundle.json"
    code, out, _ = run(
        "--data-dir",
        d,
        "--json",
        "bundle",
        "create-profile",
        str(profile),
        "--password",
        "pw",
        "-o",
        str(out_file),
    )
    assert code == 0 and one_json(out)["name"] == "p1"
    bundle = Bundle.from_json(out_file.read_bytes())
    assert json.loads(extract_profile_bundle(bundle, "pw")) == {"id": "p1", "threads": 2}
    # to stdout, unencrypted
    code, out, _ = run("--data-dir", d, "bundle", "create-profile", str(profile), "--unencrypted")
    assert code == 0 and Bundle.from_json(out.encode()).data == profile.read_bytes()
    # a miner bundle
    binary = tmp_path / "miner.sh"
    binary.write_bytes(b"#!/bin/sh\necho hi\n")
    code, out, _ = run(
        "--data-dir",
        d,
        "bundle",
        "create-miner",
        str(binary),
        "--password",
        "pw",
        "--profile",
        str(profile),
    )
    assert code == 0 and str(Bundle.from_json(out.encode()).type) == "miner"
    # usage errors: nobody to encrypt for, unknown peer, bad JSON
    assert run("--data-dir", d, "bundle", "create-profile", str(profile))[0] == EXIT_USAGE
    assert (
        run("--data-dir", d, "bundle", "create-profile", str(profile), "--peer", "who")[0]
        == EXIT_USAGE
    )
    profile.write_text("{not json", encoding="utf-8")
    assert (
        run("--data-dir", d, "bundle", "create-profile", str(profile), "--password", "x")[0]
        == EXIT_USAGE
    )


# --- client commands against a node served in a background thread -----------------------------


class _Served:
    def __init__(self, data_dir: Path, config: NodeConfig | None = None) -> None:
        self.data_dir = data_dir
        self.config = config if config is not None else NodeConfig(listen="127.0.0.1:0")
        self.info: dict[str, str] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None
        self.node: Node | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        node = Node(
            self.data_dir, config=self.config, name="srv", watch_files=True, watch_interval=0.05
        )
        async with node:
            self.node = node
            self.info = node.info()
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(20)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[_Served]:
    node = _Served(tmp_path / "served")
    node.start()
    yield node
    node.stop()


def test_client_commands_against_a_node(tmp_path: Path, served: _Served) -> None:
    d = str(tmp_path / "client")
    info = served.info
    code, out, err = run(
        "--data-dir",
        d,
        "peers",
        "add",
        info["address"],
        "--public-key",
        info["publicKey"],
        "--name",
        "srv-a",
    )
    assert code == 0 and out.strip() == info["id"] and "key pinned" in err
    code, out, _ = run("--data-dir", d, "ping", "srv-a", "--json")
    pong = one_json(out)
    assert code == 0 and pong["peer"] == info["id"] and pong["rttMs"] > 0
    code, out, _ = run("--data-dir", d, "stats", info["id"][:8], "--json")
    stats = one_json(out)
    assert code == 0 and stats["nodeId"] == info["id"] and stats["nodeName"] == "srv"
    code, out, _ = run("--data-dir", d, "stats", "--all", "--json")
    assert code == 0 and list(one_json(out)["stats"]) == [info["id"]]
    # observing is open, controlling is not: refused in one sentence naming our key, exit 4
    profile = tmp_path / "p9.json"
    profile.write_text('{"threads": 9}', encoding="utf-8")
    ours = one_json(run("--data-dir", d, "identity", "show", "--json")[1])["publicKey"]
    code, out, err = run("--data-dir", d, "deploy", "srv-a", str(profile))
    assert code == EXIT_REMOTE
    last = err.strip().splitlines()[-1]
    assert last == (
        f"p2p-node: srv ({info['id'][:12]}) refused: this controller is not authorized to "
        f"control it; on the worker run: p2p-node controllers add {ours}"
    )
    assert not (served.data_dir / "profiles" / "p9.json").exists()
    # the operator authorizes our key on the worker; the running node picks it up
    srv = str(served.data_dir)
    code, out, _ = run("--data-dir", srv, "controllers", "add", ours, "--json")
    assert code == 0 and one_json(out)["publicKey"] == ours
    node = served.node
    assert node is not None
    deadline = time.monotonic() + 20
    while not node.policy.allows(ours, Capability.CONTROL) and time.monotonic() < deadline:
        time.sleep(0.05)
    listing = one_json(run("--data-dir", srv, "controllers", "list", "--json")[1])
    assert listing["controllers"] == [
        {"publicKey": ours, "source": "controllers.json", "peer": None}
    ]
    # deploy a plain profile JSON: the CLI encrypts it for this peer on the fly
    code, out, _ = run("--data-dir", d, "deploy", "srv-a", str(profile), "--json")
    assert code == 0 and one_json(out)["name"] == "p9"
    saved = json.loads((served.data_dir / "profiles" / "p9.json").read_text())
    assert saved == {"threads": 9, "id": "p9"}
    # a bundle built offline for this peer deploys as-is
    bundle_file = tmp_path / "b.json"
    assert (
        run(
            "--data-dir",
            d,
            "bundle",
            "create-profile",
            str(profile),
            "--peer",
            "srv-a",
            "--name",
            "offline",
            "-o",
            str(bundle_file),
        )[0]
        == 0
    )
    assert run("--data-dir", d, "deploy", "srv-a", str(bundle_file))[0] == 0
    assert (served.data_dir / "profiles" / "offline.json").is_file()
    # a miner binary: bundled and encrypted on the fly, then startable as its name
    binary = tmp_path / "hello-miner"
    binary.write_text("#!/bin/sh\necho hello from the deployed miner\nexec sleep 30\n")
    code, out, err = run("--data-dir", d, "deploy", "srv-a", str(binary), "--json")
    assert code == 0 and one_json(out)["type"] == "miner", err
    code, out, err = run("--data-dir", d, "miner", "start", "srv-a", "hello-miner", "--json")
    assert code == 0 and one_json(out)["minerName"] == "hello-miner", err
    for _ in range(100):
        code, out, _ = run("--data-dir", d, "logs", "srv-a", "hello-miner", "--json")
        if one_json(out)["lines"]:
            break
        time.sleep(0.05)
    assert one_json(out)["lines"] == ["hello from the deployed miner"]
    assert run("--data-dir", d, "miner", "stop", "srv-a", "hello-miner")[0] == 0
    # remote errors exit 4, in one sentence
    code, out, err = run("--data-dir", d, "logs", "srv-a", "nosuchminer", "--json")
    assert code == EXIT_REMOTE and "miner not found" in one_json(out)["error"]
    code, _, err = run("--data-dir", d, "miner", "start", "srv-a", "nosuchtype")
    assert code == EXIT_REMOTE and "unknown miner type" in err
    # listing shows the peer, its ping and the pinned key
    listing = one_json(run("--data-dir", d, "peers", "list", "--json")[1])
    (peer,) = listing["peers"]
    assert peer["name"] == "srv-a" and peer["publicKey"] == info["publicKey"]
    assert peer["pingMs"] > 0
    # remove it: PEER by name
    assert run("--data-dir", d, "peers", "remove", "srv-a")[0] == 0
    assert one_json(run("--data-dir", d, "peers", "list", "--json")[1])["peers"] == []


def test_unreachable_peer_exits_3(tmp_path: Path, served: _Served) -> None:
    d = str(tmp_path / "client")
    assert run("--data-dir", d, "peers", "add", served.info["address"], "--name", "s")[0] == 0
    served.stop()
    code, out, err = run("--data-dir", d, "--timeout", "2", "--json", "ping", "s")
    assert code == EXIT_UNREACHABLE and one_json(out)["exitCode"] == EXIT_UNREACHABLE
    assert "nothing listens at" in err or "in time" in err
    wrong_key = base64.b64encode(bytes(32)).decode()
    code, _, _ = run(
        "--data-dir", d, "peers", "add", "ws://127.0.0.1:1/ws", "--public-key", wrong_key
    )
    assert code == EXIT_UNREACHABLE


def test_demo_runs_in_process() -> None:
    code, out, _ = run("demo", "--no-color")
    assert code == 0
    for marker in ("[1/9]", "[2/9]", "[6/9]", "log │ speed", "[8/9]", "[9/9]", "removed"):
        assert marker in out
    assert "COMPUTE frame" in out and "replayed frame" in out and "tampered frame" in out
    assert out.count("protocol 1.1,") == 2  # both connections (issue 16)


def test_client_trusts_the_ca_from_config_toml(tmp_path: Path) -> None:
    from pytest_p2p.tls import self_signed

    cert, key = self_signed(tmp_path)
    node = _Served(tmp_path / "tls", NodeConfig(listen="127.0.0.1:0", tls_cert=cert, tls_key=key))
    node.start()
    try:
        address = node.info["address"]
        assert address.startswith("wss://")
        d = tmp_path / "client"
        code, _, err = run("--data-dir", str(d), "--timeout", "5", "ping", address)
        assert code == EXIT_UNREACHABLE, err  # the self-signed certificate is not trusted
        d.mkdir(exist_ok=True)
        (d / "config.toml").write_text(f'[tls]\nca = "{cert}"\n', encoding="utf-8")
        code, out, err = run("--data-dir", str(d), "ping", address, "--json")
        assert code == 0, err
        assert one_json(out)["peer"] == node.info["id"]
    finally:
        node.stop()


def test_deploy_refuses_garbage_locally(tmp_path: Path, served: _Served) -> None:
    """`p2p-node deploy` checks the file before sending: random bytes are not a miner, a
    truncated or mislabelled bundle is not deployable; exit 2 and the worker is untouched."""
    d = str(tmp_path / "client")
    info = served.info
    assert run("--data-dir", d, "peers", "add", info["address"], "--name", "srv")[0] == 0
    ours = one_json(run("--data-dir", d, "identity", "show", "--json")[1])["publicKey"]
    node = served.node
    assert node is not None
    node.policy.grant(ours)  # authorized: only the file's contents can be refused
    manager = NodeManager(
        tmp_path / "client" / "node" / "private.key", tmp_path / "client" / "node.json"
    )
    password = base64.b64encode(manager.derive_shared_secret(info["publicKey"])).decode()
    script = tmp_path / "real-miner"
    script.write_text("#!/bin/sh\necho real\n", encoding="utf-8")
    miner = bundles.create_miner_bundle(script, None, "real", password)
    noise = os.urandom(4096)
    cases: dict[str, tuple[bytes, str]] = {
        "noise.bin": (noise, "neither a bundle, a profile JSON nor a program"),
        "truncated.json": (miner.to_json()[:-40], "not valid JSON (truncated?)"),
        "truncated-data.json": (
            bundles.Bundle(miner.type, "td", miner.data[:-100], miner.checksum).to_json(),
            "checksum mismatch",
        ),
        "labelled-profile.json": (
            bundles.Bundle.create("profile", "lp", miner.data).to_json(),
            "carries files",
        ),
        "random-miner.json": (bundles.Bundle.create("miner", "rm", noise).to_json(), "STIM"),
        "array.json": (b"[1, 2, 3]", "not a profile"),
    }
    worker_files = set(served.data_dir.rglob("*"))
    for name, (content, why) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        code, _out, err = run("--data-dir", d, "deploy", "srv", str(path))
        assert code == EXIT_USAGE, (name, err)
        assert why in err, (name, err)
    assert {p for p in served.data_dir.rglob("*") if p.suffix != ".tmp"} <= worker_files
    # the real thing still deploys
    code, out, err = run("--data-dir", d, "deploy", "srv", str(script), "--json")
    assert code == 0 and one_json(out)["name"] == "real-miner", err
