"""End to end: the installed `p2p-node` command, two `serve` processes, CLI commands.

Every command runs the real console script in its own process; nodes talk over real
WebSockets on 127.0.0.1. Output is parsed from ``--json``; exit codes are checked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from conftest import CliResult, ServeProcess, clean_env

MINER = textwrap.dedent(
    """\
    import json, os, signal, sys, time
    config = json.load(open(os.environ["P2P_MINER_CONFIG"]))
    print(f"pid {os.getpid()} config {json.dumps(config, sort_keys=True)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    n = 0
    while True:
        n += 1
        print(f"speed {1000 + n}.0 H/s accepted {n}", flush=True)
        time.sleep(0.1)
    """
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); /proc tells it apart (Linux)
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        try:
            return "State:\tZ" not in status.read_text()
        except OSError:
            return False
    return True


def wait_until(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def worker_dir(tmp_path: Path, name: str) -> Path:
    """A data dir whose config.toml offers miner type `fake` (a Python script)."""
    d = tmp_path / name
    d.mkdir()
    script = tmp_path / "fake_miner.py"
    script.write_text(MINER, encoding="utf-8")
    (d / "config.toml").write_text(
        textwrap.dedent(
            f"""\
            name = "{name}"
            [miners.fake]
            command = [{json.dumps(sys.executable)}, "-u", {json.dumps(str(script))}]
            stats_regex = 'speed (?P<hashrate>[\\d.]+) H/s accepted (?P<shares>\\d+)'
            stop_grace = 3
            """
        ),
        encoding="utf-8",
    )
    return d


def miner_pid(p2p_node: Callable[..., CliResult], client: str, peer: str, name: str) -> int:
    for _ in range(100):
        res = p2p_node("--data-dir", client, "logs", peer, name, "--lines", "1000", "--json")
        assert res.code == 0, res.err
        lines = res.json()["lines"]
        if lines and any(line.startswith("speed") for line in lines):
            return int(lines[0].split()[1])
        time.sleep(0.1)
    raise AssertionError("miner printed nothing")


def test_identity_contract(tmp_path: Path, p2p_node: Callable[..., CliResult]) -> None:
    d = str(tmp_path / "n")
    res = p2p_node("--data-dir", d, "identity", "show", "--json")
    assert res.code == 1 and "identity init" in res.err
    assert p2p_node("--data-dir", d, "identity", "init", "--name", "e2e").code == 0
    res = p2p_node("--data-dir", d, "identity", "show", "--json")
    ident = res.json()
    assert res.code == 0 and set(ident) == {"id", "name", "publicKey", "createdAt", "role"}
    assert ident["name"] == "e2e"
    # the same through the environment variable
    res = p2p_node("identity", "show", "--json", env=clean_env(P2P_NODE_DIR=d))
    assert res.json() == ident
    assert p2p_node("no-such-command").code == 2


def test_two_servers_and_every_client_command(
    tmp_path: Path,
    p2p_node: Callable[..., CliResult],
    p2p_serve: Callable[..., ServeProcess],
) -> None:
    a = p2p_serve(worker_dir(tmp_path, "alpha"))
    b = p2p_serve(worker_dir(tmp_path, "beta"), "--busy-poll-us", "100")  # every command below
    assert a.info["address"].startswith("ws://127.0.0.1:") and a.info["address"].endswith("/ws")
    assert set(a.info) == {"id", "publicKey", "address"}
    ident_a = p2p_node("--data-dir", str(a.data_dir), "identity", "show", "--json").json()
    assert ident_a["id"] == a.info["id"] and ident_a["publicKey"] == a.info["publicKey"]
    me = str(tmp_path / "me")

    # peers add: pinned key for alpha, trust on first use for beta; prints the id
    res = p2p_node(
        "--data-dir",
        me,
        "peers",
        "add",
        a.address,
        "--public-key",
        a.info["publicKey"],
        "--name",
        "alpha",
    )
    assert res.code == 0 and res.out.strip() == a.info["id"], res.err
    res = p2p_node("--data-dir", me, "peers", "add", b.address)
    assert res.code == 0 and res.out.strip() == b.info["id"], res.err
    peers = p2p_node("--data-dir", me, "peers", "list", "--json").json()["peers"]
    assert {p["id"]: p["publicKey"] for p in peers} == {
        a.info["id"]: a.info["publicKey"],
        b.info["id"]: b.info["publicKey"],
    }

    # ping by name, by id prefix, by address
    for ref in ("alpha", b.info["id"][:10], b.address):
        res = p2p_node("--data-dir", me, "ping", ref, "--json")
        assert res.code == 0, res.err
        assert res.json()["rttMs"] > 0

    # stats: one peer, then all
    stats = p2p_node("--data-dir", me, "stats", "alpha", "--json").json()
    assert stats["nodeId"] == a.info["id"] and stats["nodeName"] == "alpha"
    every = p2p_node("--data-dir", me, "stats", "--all", "--json")
    assert every.code == 0 and set(every.json()["stats"]) == {a.info["id"], b.info["id"]}
    assert every.json()["errors"] == {}

    # connecting is not commanding: a fresh worker refuses control, in one sentence, exit 4
    ours = p2p_node("--data-dir", me, "identity", "show", "--json").json()["publicKey"]
    res = p2p_node("--data-dir", me, "miner", "start", "alpha", "fake", "--config", "{}")
    assert res.code == 4, res.err
    assert f"on the worker run: p2p-node controllers add {ours}" in res.err
    assert wait_until(lambda: "authorization: 0 controllers trusted" in a.stderr())
    # the README's step: on each worker, authorize the controller's key; serve picks it up
    for srv in (a, b):
        res = p2p_node("--data-dir", str(srv.data_dir), "controllers", "add", ours)
        assert res.code == 0, res.err

    def authorized(ref: str) -> bool:
        probe = p2p_node("--data-dir", me, "logs", ref, "no-such-miner", "--json")
        return probe.code == 4 and "miner not found" in probe.json()["error"]

    assert wait_until(lambda: authorized("alpha"), 30) and wait_until(
        lambda: authorized(b.address), 30
    )

    # a real miner process on alpha: start, logs, stats, stop
    res = p2p_node(
        "--data-dir", me, "miner", "start", "alpha", "fake", "--config", '{"threads": 3}', "--json"
    )
    assert res.code == 0, res.err
    name = res.json()["minerName"]
    assert name == "fake"
    pid = miner_pid(p2p_node, me, "alpha", name)
    config_printed_by = time.monotonic()  # its first line is older than its "speed" lines
    assert pid_alive(pid)
    logs = p2p_node("--data-dir", me, "logs", "alpha", name, "--lines", "2", "--json").json()
    assert len(logs["lines"]) == 2 and all(line.startswith("speed") for line in logs["lines"])
    first = p2p_node("--data-dir", me, "logs", "alpha", name, "--lines", "1000", "--json")
    assert first.json()["lines"][0] == f'pid {pid} config {{"threads": 3}}'
    # "--since 1s" must leave the config line out: it is over a second old (the commands
    # above may take less than that on a fast machine)
    time.sleep(max(0.0, config_printed_by + 1.2 - time.monotonic()))
    recent = p2p_node("--data-dir", me, "logs", "alpha", name, "--since", "1s", "--json")
    assert recent.code == 0 and not any("config" in x for x in recent.json()["lines"])
    stats = p2p_node("--data-dir", me, "stats", "alpha", "--json").json()
    (m,) = stats["miners"]
    assert m["name"] == "fake" and m["hashrate"] > 1000
    res = p2p_node("--data-dir", me, "miner", "stop", "alpha", name, "--json")
    assert res.code == 0 and res.json()["stopped"] is True
    assert wait_until(lambda: not pid_alive(pid))

    # deploy: a profile JSON (encrypted on the fly) and an offline-built bundle
    profile = tmp_path / "pool.json"
    profile.write_text('{"pool": "pool.example:3333", "threads": 2}', encoding="utf-8")
    res = p2p_node("--data-dir", me, "deploy", b.info["id"], str(profile), "--json")
    assert res.code == 0 and res.json()["name"] == "pool", res.err
    saved = json.loads((b.data_dir / "profiles" / "pool.json").read_text())
    assert saved["pool"] == "pool.example:3333"
    bundle_file = tmp_path / "bundle.json"
    assert (
        p2p_node(
            "--data-dir",
            me,
            "bundle",
            "create-profile",
            str(profile),
            "--peer",
            "alpha",
            "--name",
            "prebuilt",
            "-o",
            str(bundle_file),
        ).code
        == 0
    )
    res = p2p_node("--data-dir", me, "deploy", "alpha", str(bundle_file), "--json")
    assert res.code == 0 and res.json()["name"] == "prebuilt", res.err
    assert (a.data_dir / "profiles" / "prebuilt.json").is_file()
    # a bundle encrypted for alpha cannot be opened by beta: remote error, exit 4
    res = p2p_node("--data-dir", me, "deploy", b.info["id"], str(bundle_file), "--json")
    assert res.code == 4 and res.json()["exitCode"] == 4

    # errors: unknown peer 2, remote error 4, usage 2
    assert p2p_node("--data-dir", me, "ping", "nobody").code == 2
    res = p2p_node("--data-dir", me, "logs", "alpha", "nosuch", "--json")
    assert res.code == 4 and "miner not found" in res.json()["error"]
    assert p2p_node("--data-dir", me, "miner", "start", "alpha").code == 2

    # a client command from a running server's own data dir (same identity) works too
    res = p2p_node("--data-dir", str(a.data_dir), "ping", b.address, "--json")
    assert res.code == 0 and res.json()["peer"] == b.info["id"], res.err

    # both servers stop cleanly on SIGTERM and printed exactly one stdout line
    assert a.terminate() == 0 and b.terminate() == 0
    assert len(a.stdout_lines) == 1 and len(b.stdout_lines) == 1


def test_sigterm_stops_serve_and_its_miners(
    tmp_path: Path,
    p2p_node: Callable[..., CliResult],
    p2p_serve: Callable[..., ServeProcess],
) -> None:
    me = str(tmp_path / "me")
    assert p2p_node("--data-dir", me, "identity", "init").code == 0
    ours = p2p_node("--data-dir", me, "identity", "show", "--json").json()["publicKey"]
    # one-off authorization for this run of serve
    w = p2p_serve(worker_dir(tmp_path, "worker"), "--controller", ours)
    assert wait_until(lambda: "authorization: 1 controller trusted" in w.stderr())
    assert p2p_node("--data-dir", me, "peers", "add", w.address, "--name", "w").code == 0
    names = []
    for _ in range(2):
        res = p2p_node("--data-dir", me, "miner", "start", "w", "fake", "--json")
        assert res.code == 0, res.err
        names.append(res.json()["minerName"])
    assert names == ["fake", "fake-2"]
    pids = [miner_pid(p2p_node, me, "w", n) for n in names]
    assert all(pid_alive(p) for p in pids)
    assert w.terminate() == 0, w.stderr()
    assert wait_until(lambda: not any(pid_alive(p) for p in pids)), "a miner outlived serve"
    # the registry was flushed on the way out: the client is known to the worker
    peers = json.loads((w.data_dir / "peers.json").read_text())
    me_id = p2p_node("--data-dir", me, "identity", "show", "--json").json()["id"]
    assert me_id in {p["id"] for p in peers}


def test_unreachable_peer_exits_3(tmp_path: Path, p2p_node: Callable[..., CliResult]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = p2p_node(
        "--data-dir",
        str(tmp_path / "me"),
        "--timeout",
        "3",
        "ping",
        f"ws://127.0.0.1:{port}/ws",
        "--json",
    )
    assert res.code == 3
    assert res.json()["exitCode"] == 3
    assert res.err.count("\n") == 1 and "p2p-node serve" in res.err


def test_serve_sigint_is_graceful(
    tmp_path: Path,
    p2p_node: Callable[..., CliResult],
    p2p_serve: Callable[..., ServeProcess],
) -> None:
    a = p2p_serve(tmp_path / "a", "--name", "a", "--log-format", "json")
    b = p2p_serve(tmp_path / "b", "--name", "b")
    assert p2p_node("--data-dir", str(a.data_dir), "peers", "add", b.address).code == 0
    a.proc.send_signal(signal.SIGINT)
    assert a.proc.wait(timeout=15) == 0
    # structured logs: every stderr line is one JSON object
    records = [json.loads(line) for line in a.stderr().splitlines() if line.strip()]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(r["msg"].startswith("node ") and r["msg"].endswith(" stopped") for r in records)
    assert b.terminate() == 0


def test_demo_in_a_sandbox(tmp_path: Path, p2p_node: Callable[..., CliResult]) -> None:
    """The demo exits 0 and writes nothing outside its temporary directory."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = clean_env(
        HOME=str(home),
        TMPDIR=str(tmp),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
    )
    res = p2p_node("demo", env=env)
    assert res.code == 0, res.err
    for step in range(1, 10):
        assert f"[{step}/9]" in res.out
    assert "log │ speed" in res.out and "deploy" in res.out.lower()
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []


def test_readme_server_recipe_works_first_try(
    tmp_path: Path,
    p2p_node: Callable[..., CliResult],
    p2p_serve: Callable[..., ServeProcess],
) -> None:
    """README "The p2p-node command": the controller's key is authorized on the server
    before it serves; every control command then works on the first try."""
    me = str(tmp_path / "me")
    assert p2p_node("--data-dir", me, "identity", "init", "--name", "laptop").code == 0
    ours = p2p_node("--data-dir", me, "identity", "show", "--json").json()["publicKey"]
    server = worker_dir(tmp_path, "server-a")
    assert p2p_node("--data-dir", str(server), "identity", "init", "--name", "server-a").code == 0
    res = p2p_node("--data-dir", str(server), "controllers", "add", ours)
    assert res.code == 0 and ours in res.out, res.err
    srv = p2p_serve(server)
    assert wait_until(lambda: "authorization: 1 controller trusted" in srv.stderr())
    key = srv.info["publicKey"]
    res = p2p_node(
        "--data-dir", me, "peers", "add", srv.address, "--public-key", key, "--name", "server-a"
    )
    assert res.code == 0, res.err
    res = p2p_node("--data-dir", me, "miner", "start", "server-a", "fake", "--json")
    assert res.code == 0 and res.json()["minerName"] == "fake", res.err
    assert miner_pid(p2p_node, me, "server-a", "fake") > 0
    profile = tmp_path / "pool.json"
    profile.write_text('{"pool": "pool.example:3333"}', encoding="utf-8")
    assert p2p_node("--data-dir", me, "deploy", "server-a", str(profile)).code == 0
    assert p2p_node("--data-dir", me, "miner", "stop", "server-a", "fake").code == 0
    listing = p2p_node("--data-dir", str(server), "controllers", "list", "--json").json()
    assert [c["publicKey"] for c in listing["controllers"]] == [ours]


def test_second_serve_on_one_data_dir_names_the_first(
    tmp_path: Path, p2p_node: Callable[..., CliResult], p2p_serve: Callable[..., ServeProcess]
) -> None:
    d = tmp_path / "n"
    first = p2p_serve(d)
    res = p2p_node("--data-dir", str(d), "serve", "--listen", "127.0.0.1:0")
    assert res.code == 1 and res.out == ""
    assert res.err.strip().splitlines()[-1] == (
        f"p2p-node: {d} is in use by another p2p-node serve (pid {first.proc.pid}); "
        "stop it first, or give this node its own --data-dir"
    )
    assert first.proc.poll() is None  # the first one is untouched
    assert first.terminate() == 0
    # the lock went with the process: a new serve on that dir starts
    again = p2p_serve(d)
    assert again.terminate() == 0


def test_revoked_peer_cannot_come_back(
    tmp_path: Path, p2p_node: Callable[..., CliResult], p2p_serve: Callable[..., ServeProcess]
) -> None:
    srv = tmp_path / "srv"
    me = str(tmp_path / "me")
    assert p2p_node("--data-dir", me, "identity", "init").code == 0
    key = p2p_node("--data-dir", me, "identity", "show", "--json").json()["publicKey"]
    server = p2p_serve(srv, "--auth", "allowlist")
    assert p2p_node("--data-dir", str(srv), "peers", "allow", key).code == 0
    assert wait_until(lambda: p2p_node("--data-dir", me, "ping", server.address).code == 0)
    # connected once: the server holds a record of our key, which alone would admit us
    assert p2p_node("--data-dir", str(srv), "peers", "revoke", key).code == 0
    assert server.terminate() == 0  # and across a restart of the server
    server = p2p_serve(srv, "--auth", "allowlist")
    res = p2p_node("--data-dir", me, "ping", server.address)
    assert res.code == 3
    assert "refused the handshake: peer not authorized" in res.err
