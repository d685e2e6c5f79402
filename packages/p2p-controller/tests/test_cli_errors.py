"""Issue 15: every error of `p2p-node` is one clear sentence with the README's exit code
(0 ok, 1 local failure, 2 usage, 3 unreachable/timeout, 4 the peer answered with an error),
and the behaviour fixes (stats default, deploy name, ueps send, data dir, lock, revoke,
logs --follow).

Real nodes on 127.0.0.1 (a background-thread node, or `p2p-node` subprocesses); nothing is
ever sent outside 127.0.0.0/8 (no host name is resolved).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from p2p.controller import Node, NodeConfig, NodeConfigError
from p2p.controller._cli_output import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REMOTE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    classify,
)
from p2p.controller._datalock import DataDirLock
from p2p.controller.cli import new_log_lines
from p2p.controller.config import MinerConfig
from p2p.controller.miners import CommonMinerStats
from p2p.transport import ConnectError
from pytest_p2p.cli import run_cli as run

CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]+(Error|Exception)\b|gaierror|InvalidMessage")


def one_sentence(err: str) -> str:
    """The last stderr line: the error sentence; checked for what must never be there."""
    assert "Traceback" not in err and "unexpected" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("p2p-node: "), err
    assert CLASS_NAME.search(last) is None, last
    return last


def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_proc(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2p.controller", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


MINER = textwrap.dedent(
    """\
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    n = 0
    while True:
        n += 1
        print(f"line {n} speed 10s/60s/15m {1000 + n}.5 n/a n/a H/s accepted ({n}/1)", flush=True)
        time.sleep(0.05)
    """
)


class Served:
    """A node serving on 127.0.0.1 in a background thread (its own event loop)."""

    def __init__(self, data_dir: Path, config: NodeConfig | None = None) -> None:
        self.data_dir = data_dir
        self.config = config if config is not None else NodeConfig(listen="127.0.0.1:0")
        self.info: dict[str, str] = {}
        self.node: Node | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        node = Node(self.data_dir, config=self.config, watch_files=True, watch_interval=0.05)
        async with node:
            self.node = node
            self.info = node.info()
            self._ready.set()
            await self._stop.wait()

    def start(self) -> Served:
        self._thread.start()
        assert self._ready.wait(30)
        if self.error is not None:
            raise self.error
        return self

    def call(self, coro: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def nodes() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in reversed(started):
        s.stop()


def identity(d: Path) -> dict[str, Any]:
    code, out, _ = run("--data-dir", str(d), "identity", "init", "--json")
    assert code == 0
    doc: dict[str, Any] = json.loads(out)
    return doc


def worker(tmp_path: Path, nodes: list[Served], controller_key: str, **cfg: Any) -> Served:
    script = tmp_path / "miner.py"
    script.write_text(MINER, encoding="utf-8")
    miners = {"fake": MinerConfig((sys.executable, "-u", str(script)), stop_grace=3.0)}
    config = NodeConfig(
        listen="127.0.0.1:0", name="wk", miners=miners, controllers=(controller_key,), **cfg
    )
    served = Served(tmp_path / "worker", config).start()
    nodes.append(served)
    return served


# --- errors: one sentence, the right exit code ---------------------------------------------------


def test_usage_errors_are_sentences_and_exit_2(tmp_path: Path) -> None:
    d = str(tmp_path / "c")
    cases = [
        (("ueps", "send", "ws://127.0.0.1:1/ws", "--payload-hex", "zz"), "is not hex"),
        (("peers", "add", "ws://127.0.0.1:99999/ws"), "port in 1..65535"),
        (("peers", "add", "127.0.0.1:0"), "port in 1..65535"),
        (("peers", "add", "http://127.0.0.1:1/ws"), "uses http://, not ws:// or wss://"),
        (("ping", "http://127.0.0.1:1/ws"), "uses http://"),
        (
            ("peers", "add", "ws://127.0.0.1:1/ws", "--public-key", "not base64!!"),
            "--public-key not base64!! is not a base64 X25519 public key",
        ),
        (
            ("logs", "ws://127.0.0.1:1/ws", "m", "--since", "99999999999999999999999"),
            "is out of range",
        ),
        (("serve", "--listen", "999.1.1.1:19097"), "'999.1.1.1' is not a valid IPv4 address"),
        (("serve", "--metrics", "999.1.1.1:9100"), "--metrics"),
    ]
    for argv, expected in cases:
        code, _out, err = run("--data-dir", d, *argv)
        sentence = one_sentence(err)
        assert code == EXIT_USAGE, (argv, err)
        assert expected in sentence, (argv, sentence)
        assert "peers allow" not in sentence
    # nothing was created or sent: a usage error comes before the identity
    assert not (tmp_path / "c").exists()


def test_json_covers_usage_errors(tmp_path: Path) -> None:
    for argv in (
        ("--json", "logs", "wa", "fake", "--lines", "abc"),
        ("--json", "nosuchcommand"),
        ("logs", "wa", "fake", "--json", "--lines", "abc"),
    ):
        code, out, err = run(*argv)
        assert code == EXIT_USAGE
        doc = json.loads(out)
        assert set(doc) == {"error", "hint", "exitCode"} and doc["exitCode"] == EXIT_USAGE
        assert "--help" in doc["hint"]
    code, out, err = run("--json", "nosuchcommand")
    assert "invalid choice: 'nosuchcommand'" in json.loads(out)["error"]
    # without --json: argparse's usage line, then one sentence
    code, out, err = run("logs", "wa", "fake", "--lines", "abc")
    assert code == EXIT_USAGE and out == ""
    assert one_sentence(err).startswith("p2p-node: argument --lines/-n: 'abc' is not")


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / "config.toml").write_text('[tls]\ncert = "nope.pem"\nkey = "k.pem"\n', encoding="utf-8")
    code, _, err = run("--data-dir", str(d), "serve", "--listen", "127.0.0.1:0")
    sentence = one_sentence(err)
    assert code == EXIT_USAGE and "tls.cert" in sentence and "nope.pem" in sentence
    code, _, err = run(
        "--data-dir", str(tmp_path / "t"), "serve", "--tls-cert", "x.pem", "--tls-key", "y"
    )
    assert code == EXIT_USAGE and "--tls-cert" in one_sentence(err)


def test_miner_command_string_is_split_at_load_time() -> None:
    m = MinerConfig.from_table("x", {"command": "python3 miner.py --pool 'a b'"})
    assert m.command == ("python3", "miner.py", "--pool", "a b")
    with pytest.raises(NodeConfigError, match=r"miners\.x\.command"):
        MinerConfig.from_table("x", {"command": "python3 'unclosed"})


def test_connect_failures_are_four_sentences(tmp_path: Path, nodes: list[Served]) -> None:
    d = tmp_path / "c"
    me = identity(d)
    # 1. unreachable: nothing listens
    port = free_port()
    code, _, err = run("--data-dir", str(d), "ping", f"ws://127.0.0.1:{port}/ws")
    refused = one_sentence(err)
    assert code == EXIT_UNREACHABLE and "nothing listens at" in refused
    # 2. timeout: a socket that accepts and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"ws://127.0.0.1:{silent.getsockname()[1]}/ws"
        code, out, err = run("--data-dir", str(d), "--timeout", "1", "--json", "ping", addr)
    timeout = one_sentence(err)
    assert code == EXIT_UNREACHABLE and "did not answer in time" in timeout
    assert json.loads(out)["exitCode"] == EXIT_UNREACHABLE
    # 3. refusal: an allowlist node that does not know us
    strict = Served(
        tmp_path / "strict", NodeConfig(listen="127.0.0.1:0", auth_mode="allowlist")
    ).start()
    nodes.append(strict)
    code, _, err = run("--data-dir", str(d), "peers", "add", strict.info["address"])
    refusal = one_sentence(err)
    assert code == EXIT_UNREACHABLE and "refused the handshake: peer not authorized" in refusal
    assert "peers allow" in refusal
    # 4. pinned key mismatch: the node answers with another key than the one given
    open_node = Served(tmp_path / "open").start()
    nodes.append(open_node)
    code, _, err = run(
        "--data-dir",
        str(d),
        "peers",
        "add",
        open_node.info["address"],
        "--public-key",
        me["publicKey"],
    )
    mismatch = one_sentence(err)
    assert code == EXIT_UNREACHABLE and "another public key than the one pinned" in mismatch
    sentences = {s.partition("; ")[0].split(": ", 1)[1] for s in (refused, timeout, refusal)}
    hints = {s.partition("; ")[2] for s in (refused, timeout, refusal, mismatch)}
    assert len(sentences) == 3 and len(hints) == 4


def test_a_non_websocket_answer_is_named(tmp_path: Path) -> None:
    """A server that answers the upgrade with garbage: not "InvalidMessage", a sentence."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]

        def answer() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        code, _, err = run(
            "--data-dir", str(tmp_path / "c"), "--timeout", "5", "ping", f"ws://127.0.0.1:{port}/ws"
        )
        thread.join(10)
    assert code == EXIT_UNREACHABLE
    assert "did not speak WebSocket" in one_sentence(err)


def test_unresolvable_host_is_its_own_sentence() -> None:
    # no lookup is made: the ConnectError a failed resolution raises, classified
    exc = ConnectError("ws://no-such-host.example:1/ws", "gaierror")
    exc.__cause__ = socket.gaierror(-2, "Name or service not known")
    failure = classify(exc)
    assert failure.code == EXIT_UNREACHABLE
    assert str(failure) == "cannot resolve the host of ws://no-such-host.example:1/ws"


def test_unknown_error_has_no_class_name() -> None:
    failure = classify(KeyError("boom"))
    assert failure.code == EXIT_ERROR and "unexpected" not in failure.sentence()
    assert "KeyError" not in failure.sentence()


def test_miner_start_unknown_type_lists_the_known_ones(tmp_path: Path, nodes: list[Served]) -> None:
    d = tmp_path / "c"
    me = identity(d)
    wk = worker(tmp_path, nodes, me["publicKey"])
    code, _, err = run("--data-dir", str(d), "miner", "start", wk.info["address"], "nosuchtype")
    sentence = one_sentence(err)
    assert code == EXIT_REMOTE
    assert "unknown miner type: nosuchtype (this worker knows: fake)" in sentence


def test_busy_ports_name_the_right_flag(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = cli_proc(
            "--data-dir",
            str(tmp_path / "m"),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            f"127.0.0.1:{port}",
        )
        assert res.returncode == EXIT_ERROR, res.stderr
        assert f"cannot listen on 127.0.0.1:{port} (--metrics): the address is in use" in (
            one_sentence(res.stderr)
        )
        res = cli_proc("--data-dir", str(tmp_path / "l"), "serve", "--listen", f"127.0.0.1:{port}")
        assert res.returncode == EXIT_ERROR
        assert "(--listen): the address is in use" in one_sentence(res.stderr)


def test_json_demo_prints_one_object() -> None:
    code, out, _ = run("--json", "demo")
    assert code == EXIT_OK
    doc = json.loads(out)
    assert doc["ok"] is True and [s["step"] for s in doc["steps"]] == list(range(10))
    assert all(isinstance(s["title"], str) and s["lines"] for s in doc["steps"])


# --- behaviour that misled ------------------------------------------------------------------------


def test_common_miner_stats_formats() -> None:
    stats = CommonMinerStats()
    stats.feed_line("[2026-01-01] miner speed 10s/60s/15m 1001.5 998.0 n/a H/s max 1100 H/s")
    assert stats.read(Path()) == {"hashrate": 1001.5}
    stats.feed_line("speed 10s/60s/15m n/a 12.0 n/a H/s")  # 10 s not known yet: the next
    assert stats.read(Path())["hashrate"] == 12.0
    stats.feed_line("Total: 2.5 kH/s")
    assert stats.read(Path())["hashrate"] == 2500.0
    stats.feed_line("cpu accepted (12/3) diff 1000 (45 ms)")
    assert stats.read(Path()) == {"hashrate": 2500.0, "shares": 12, "rejected": 3}
    stats.feed_line("nothing to see here")
    assert stats.read(Path())["shares"] == 12
    assert MinerConfig(("m",)).spec().stats is not None  # the default for every miner type


def test_stats_reads_hashrate_by_default_and_miner_stats_flag(
    tmp_path: Path, nodes: list[Served]
) -> None:
    d = tmp_path / "c"
    me = identity(d)
    wk = worker(tmp_path, nodes, me["publicKey"])
    addr = wk.info["address"]
    code, out, _ = run("--data-dir", str(d), "--json", "miner", "start", addr, "fake")
    assert code == 0
    name = json.loads(out)["minerName"]

    def hashrate() -> float:
        code, out, _ = run("--data-dir", str(d), "--json", "stats", addr)
        assert code == 0
        miners = json.loads(out)["miners"]
        return float(miners[0]["hashrate"]) if miners else 0.0

    assert wait_until(lambda: hashrate() > 1000)
    assert run("--data-dir", str(d), "miner", "stop", addr, name)[0] == 0
    # --miner-stats TYPE=REGEX sets stats_regex for a --miner type
    from p2p.controller.cli import _Ctx, _serve_config, build_parser
    from p2p.controller.miners import RegexStats

    args = build_parser().parse_args(
        [
            "--data-dir",
            str(tmp_path / "flags"),
            "serve",
            "--miner",
            "x=python3 m.py",
            "--miner-stats",
            r"x=rate (?P<hashrate>\d+)",
        ]
    )
    spec = _serve_config(_Ctx(args, io.StringIO(), io.StringIO())).miners["x"].spec()
    assert isinstance(spec.stats, RegexStats) and spec.stats.pattern.pattern.startswith("rate")
    args = build_parser().parse_args(["serve", "--miner-stats", "nope=x"])
    with pytest.raises(NodeConfigError, match="no miner type 'nope'"):
        _serve_config(_Ctx(args, io.StringIO(), io.StringIO()))


def test_deploy_reports_the_stored_profile_id(tmp_path: Path, nodes: list[Served]) -> None:
    d = tmp_path / "c"
    me = identity(d)
    wk = worker(tmp_path, nodes, me["publicKey"])
    pool = tmp_path / "pool.json"
    pool.write_text('{"id": "pool1", "pool": "stratum+tcp://127.0.0.1:3333"}', encoding="utf-8")
    code, out, _ = run("--data-dir", str(d), "--json", "deploy", wk.info["address"], str(pool))
    assert code == 0 and json.loads(out)["name"] == "pool1"
    pool2 = tmp_path / "pool-b.json"
    pool2.write_text('{"id": "pool2", "pool": "stratum+tcp://127.0.0.1:3333"}', encoding="utf-8")
    code, out, err = run("--data-dir", str(d), "deploy", wk.info["address"], str(pool2))
    assert code == 0 and "'pool2'" in out and "--profile pool2" in err
    # the name reported is the one the worker takes
    code, out, _ = run(
        "--data-dir", str(d), "--json", "miner", "start", wk.info["address"], "fake",
        "--profile", "pool1",
    )  # fmt: skip
    assert code == 0, out
    run("--data-dir", str(d), "miner", "stop", wk.info["address"], json.loads(out)["minerName"])


def test_ueps_send_does_not_claim_delivery(tmp_path: Path, nodes: list[Served]) -> None:
    srv = Served(tmp_path / "srv").start()
    nodes.append(srv)
    code, out, err = run(
        "--data-dir", str(tmp_path / "c"), "ueps", "send", srv.info["address"], "--intent", "0x20"
    )
    assert code == 0
    assert out.startswith("wrote 1 UEPS frame(s)") and "delivery not confirmed" in out
    assert "sent" not in out
    assert "no handler for intent 0x20" in err and "drops these frames" in err
    code, out, _ = run(
        "--data-dir", str(tmp_path / "c"), "--json", "ueps", "send", srv.info["address"]
    )
    doc = json.loads(out)
    assert doc["written"] == 1 and doc["confirmed"] is False and "sent" not in doc


def test_a_fresh_data_dir_is_said_on_stderr(tmp_path: Path, nodes: list[Served]) -> None:
    srv = Served(tmp_path / "srv").start()
    nodes.append(srv)
    typo = tmp_path / "typo"
    code, _, err = run("--data-dir", str(typo), "ping", srv.info["address"])
    assert code == 0 and f"no identity in {typo}: created a new one" in err
    code, _, err = run("--data-dir", str(typo), "ping", srv.info["address"])
    assert code == 0 and "created a new one" not in err


def test_two_serves_on_one_data_dir(tmp_path: Path) -> None:
    d = tmp_path / "n"
    lock = DataDirLock(d / "serve.lock")
    lock.acquire()  # as a running serve holds it
    try:
        res = cli_proc("--data-dir", str(d), "serve", "--listen", "127.0.0.1:0")
    finally:
        lock.release()
    assert res.returncode == EXIT_ERROR
    assert one_sentence(res.stderr) == (
        f"p2p-node: {d} is in use by another p2p-node serve (pid {os.getpid()}); "
        "stop it first, or give this node its own --data-dir"
    )
    assert res.stdout == ""


def test_revoke_drops_the_peer_and_keeps_it_out(tmp_path: Path, nodes: list[Served]) -> None:
    strict = Served(
        tmp_path / "strict", NodeConfig(listen="127.0.0.1:0", auth_mode="allowlist")
    ).start()
    nodes.append(strict)
    client = Served(tmp_path / "client").start()
    nodes.append(client)
    assert client.node is not None and strict.node is not None
    key = client.info["publicKey"]
    srv = str(strict.data_dir)
    assert run("--data-dir", srv, "peers", "allow", key)[0] == 0
    assert wait_until(lambda: key in strict.node.registry.allowed_public_keys())  # type: ignore[union-attr]
    client.call(client.node.add_peer(strict.info["address"]))
    cid = client.info["id"]
    assert wait_until(lambda: strict.node.transport.connection(cid) is not None)
    assert strict.node.registry.get(cid) is not None  # it connected once: a record admits it
    code, out, _err = run("--data-dir", srv, "--json", "peers", "revoke", key)
    assert code == 0 and json.loads(out)["publicKey"] == key
    # the running serve drops the live connection and forgets the record
    assert wait_until(lambda: strict.node.transport.connection(cid) is None)
    assert wait_until(lambda: strict.node.registry.get(cid) is None)
    with pytest.raises(ConnectError) as refused:
        client.call(client.node.transport.connect(strict.info["address"]))
    assert "not authorized" in str(refused.value)


def test_new_log_lines_overlap() -> None:
    assert new_log_lines([], ["a", "b"]) == ["a", "b"]
    assert new_log_lines(["a", "b", "c"], ["b", "c", "d"]) == ["d"]
    assert new_log_lines(["a", "b"], ["a", "b"]) == []
    assert new_log_lines(["x"], ["y", "z"]) == ["y", "z"]


def test_logs_follow_prints_new_lines_until_interrupted(
    tmp_path: Path, nodes: list[Served]
) -> None:
    d = tmp_path / "c"
    me = identity(d)
    wk = worker(tmp_path, nodes, me["publicKey"])
    addr = wk.info["address"]
    _code, out, _ = run("--data-dir", str(d), "--json", "miner", "start", addr, "fake")
    name = json.loads(out)["minerName"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p.controller", "--data-dir", str(d), "logs", addr, name,
         "--follow", "--interval", "0.2", "--lines", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    seen: list[int] = []
    try:
        assert proc.stdout is not None
        while len(seen) < 40:
            line = proc.stdout.readline()
            assert line, "logs --follow stopped early"
            seen.append(int(line.split()[1]))
        proc.send_signal(signal.SIGINT)
        _rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    # in order, no duplicates, no gaps (the miner prints 20 lines a second, polls are 0.2 s)
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    run("--data-dir", str(d), "miner", "stop", addr, name)
