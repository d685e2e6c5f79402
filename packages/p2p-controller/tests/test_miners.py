"""ProcessMinerManager with real short-lived Python processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from p2p.controller.miners import (
    JsonFileStats,
    MinerError,
    MinerInstance,
    MinerManager,
    MinerNotFoundError,
    MinerSpec,
    ProcessMinerManager,
    RegexStats,
    UnknownMinerTypeError,
)


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def py(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-u", str(path), *args]


async def wait_for_line(miner: MinerInstance, text: str, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not any(text in line for line in miner.get_console_history_since(1000, None)):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_protocols_satisfied(tmp_path: Path) -> None:
    mgr = ProcessMinerManager({}, tmp_path)
    assert isinstance(mgr, MinerManager)


async def test_output_captured_and_exit_status(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        "hello.py",
        """
        import sys
        print("line one")
        print("to stderr", file=sys.stderr)
        print("line three")
        sys.exit(3)
        """,
    )
    mgr = ProcessMinerManager({"hello": MinerSpec(py(s))}, tmp_path / "run")
    miner = await mgr.start_miner("hello", {"k": 1})
    assert isinstance(miner, MinerInstance)
    assert miner.get_name() == "hello"
    assert miner.get_type() == "hello"
    assert await asyncio.wait_for(miner.wait(), 10) == 3
    lines = miner.get_console_history_since(100, None)
    # stdout and stderr are separate pipes: their relative order is not defined.
    assert [line for line in lines if line != "to stderr"] == ["line one", "line three"]
    assert "to stderr" in lines and len(lines) == 3
    assert len(miner.get_console_history_since(1, None)) == 1
    stats = miner.get_stats()
    assert stats["running"] is False
    assert stats["exitCode"] == 3
    # An exited miner stays visible until stopped.
    assert [m.get_name() for m in mgr.list_miners()] == ["hello"]
    await mgr.stop_miner("hello")
    assert mgr.list_miners() == []
    with pytest.raises(MinerNotFoundError):
        mgr.get_miner("hello")


async def test_config_passed_to_process(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        "cfg.py",
        """
        import json, os, sys
        cfg = json.load(open(sys.argv[1]))
        print("pool=" + cfg["pool"])
        print("env-same=" + str(os.environ["P2P_MINER_CONFIG"] == sys.argv[1]))
        print("name=" + os.environ["P2P_MINER_NAME"] + " extra=" + os.environ["EXTRA"])
        """,
    )
    spec = MinerSpec(py(s, "{config}"), env={"EXTRA": "yes"})
    mgr = ProcessMinerManager({"cfg": spec}, tmp_path / "run")
    miner = await mgr.start_miner("cfg", {"pool": "pool.example:3333"})
    assert await asyncio.wait_for(miner.wait(), 10) == 0
    lines = miner.get_console_history_since(10, None)
    assert lines == ["pool=pool.example:3333", "env-same=True", "name=cfg extra=yes"]


async def test_stop_terminates_and_reaps(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        "loop.py",
        """
        import time
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
        """,
    )
    mgr = ProcessMinerManager({"loop": MinerSpec(py(s))}, tmp_path / "run")
    miner = await mgr.start_miner("loop", None)
    await wait_for_line(miner, "ready")
    pid = miner.pid
    assert pid is not None and miner.running
    await mgr.stop_miner("loop")
    assert miner.exit_code == -15  # SIGTERM
    assert not pid_alive(pid)  # reaped, not a zombie


async def test_stop_kills_a_process_ignoring_sigterm(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        "stubborn.py",
        """
        import signal, time
        signal.signal(signal.SIGTERM, lambda *a: print("got TERM, ignoring", flush=True))
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
        """,
    )
    spec = MinerSpec(py(s), stop_grace=0.5)
    mgr = ProcessMinerManager({"stubborn": spec}, tmp_path / "run")
    miner = await mgr.start_miner("stubborn", None)
    await wait_for_line(miner, "ready")
    await mgr.stop_miner("stubborn")
    assert miner.exit_code == -9  # SIGKILL
    assert "got TERM, ignoring" in miner.get_console_history_since(10, None)
    assert miner.pid is not None and not pid_alive(miner.pid)


async def test_json_stats_file(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        "stats.py",
        """
        import json, os, sys, time
        doc = {"hashrate": 1234.5, "shares": 7, "rejected": 1, "pool": "p:1",
               "algorithm": "rx/0"}
        tmp = os.environ["P2P_MINER_STATS"] + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, os.environ["P2P_MINER_STATS"])
        print("written", flush=True)
        time.sleep(30)
        """,
    )
    spec = MinerSpec(py(s), stats=JsonFileStats())
    mgr = ProcessMinerManager({"st": spec}, tmp_path / "run")
    miner = await mgr.start_miner("st", {})
    await wait_for_line(miner, "written")
    stats = miner.get_stats()
    assert stats["hashrate"] == 1234.5
    assert stats["shares"] == 7 and stats["rejected"] == 1
    assert stats["pool"] == "p:1" and stats["algorithm"] == "rx/0"
    assert stats["running"] is True and stats["exitCode"] is None
    assert isinstance(stats["uptime"], int)
    await mgr.close()
    assert mgr.list_miners() == []


async def test_regex_stats(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        "speed.py",
        """
        print("speed 100.0 H/s accepted 1")
        print("unrelated")
        print("speed 250.5 H/s accepted 4")
        """,
    )
    spec = MinerSpec(
        py(s), stats=RegexStats(r"speed (?P<hashrate>[\d.]+) H/s accepted (?P<shares>\d+)")
    )
    mgr = ProcessMinerManager({"sp": spec}, tmp_path / "run")
    first = await mgr.start_miner("sp", {})
    await first.wait()
    assert first.get_stats()["hashrate"] == 250.5
    assert first.get_stats()["shares"] == 4
    # A new process starts from empty regex state.
    mgr2 = ProcessMinerManager(
        {"sp": MinerSpec([sys.executable, "-c", "pass"], stats=spec.stats)}, tmp_path / "run2"
    )
    second = await mgr2.start_miner("sp", {})
    await second.wait()
    assert second.get_stats()["hashrate"] == 0.0


async def test_ring_buffer_bounded_and_since(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        "many.py",
        """
        import sys, time
        for i in range(50):
            print(f"early {i}")
        sys.stdout.flush()
        time.sleep(0.3)
        for i in range(5):
            print(f"late {i}")
        """,
    )
    mgr = ProcessMinerManager({"m": MinerSpec(py(s), log_lines=20)}, tmp_path / "run")
    miner = await mgr.start_miner("m", {})
    await wait_for_line(miner, "early 49")
    mark = datetime.now().astimezone() + timedelta(milliseconds=100)
    await miner.wait()
    everything = miner.get_console_history_since(1000, None)
    assert len(everything) == 20
    assert everything[-1] == "late 4"
    assert miner.get_console_history_since(1000, mark) == [f"late {i}" for i in range(5)]
    assert miner.get_console_history_since(2, mark) == ["late 3", "late 4"]
    assert miner.get_console_history_since(0, None) == []


async def test_long_lines_truncated(tmp_path: Path) -> None:
    s = script(tmp_path, "long.py", 'print("x" * 200000)\nprint("after")\n')
    mgr = ProcessMinerManager({"l": MinerSpec(py(s))}, tmp_path / "run")
    miner = await mgr.start_miner("l", {})
    await miner.wait()
    lines = miner.get_console_history_since(10, None)
    assert lines[-1] == "after"
    assert all(len(line) <= 8192 for line in lines)
    assert lines[0] == "x" * 8192


async def test_concurrent_instances_get_distinct_names(tmp_path: Path) -> None:
    s = script(tmp_path, "sleep.py", "import time\nprint('up', flush=True)\ntime.sleep(30)\n")
    mgr = ProcessMinerManager({"s": MinerSpec(py(s), stop_grace=2)}, tmp_path / "run")
    a = await mgr.start_miner("s", {})
    b = await mgr.start_miner("s", {})
    assert (a.get_name(), b.get_name()) == ("s", "s-2")
    await mgr.close()
    assert not pid_alive(a.pid or 0) and not pid_alive(b.pid or 0)


async def test_errors(tmp_path: Path) -> None:
    mgr = ProcessMinerManager(
        {"missing": MinerSpec([str(tmp_path / "does-not-exist")])}, tmp_path / "run"
    )
    with pytest.raises(UnknownMinerTypeError, match="unknown miner type: nope"):
        await mgr.start_miner("nope", {})
    with pytest.raises(MinerError, match="failed to start missing"):
        await mgr.start_miner("missing", {})
    with pytest.raises(MinerNotFoundError, match="miner not found: ghost"):
        await mgr.stop_miner("ghost")
    with pytest.raises(MinerError):
        MinerSpec([])
    with pytest.raises(MinerError):
        MinerSpec(["x"], log_lines=0)
    with pytest.raises(MinerError):
        mgr.register("../evil", MinerSpec(["x"]))
    with pytest.raises(MinerError):
        mgr.register_binary("b", tmp_path / "nothing")


async def test_max_miners(tmp_path: Path) -> None:
    s = script(tmp_path, "sleep.py", "import time\ntime.sleep(30)\n")
    mgr = ProcessMinerManager({"s": MinerSpec(py(s), stop_grace=2)}, tmp_path / "run", max_miners=1)
    await mgr.start_miner("s", {})
    with pytest.raises(MinerError, match="too many miners"):
        await mgr.start_miner("s", {})
    await mgr.close()


async def test_register_binary_runs_executable(tmp_path: Path) -> None:
    exe = tmp_path / "fake-miner"
    exe.write_text(f"#!{sys.executable}\nprint('binary miner up')\n", encoding="utf-8")
    exe.chmod(0o755)
    mgr = ProcessMinerManager(run_dir=tmp_path / "run")
    mgr.register_binary("fake-miner", exe)
    assert mgr.types == ["fake-miner"]
    miner = await mgr.start_miner("fake-miner", {"a": 1})
    assert await miner.wait() == 0
    assert miner.get_console_history_since(5, None) == ["binary miner up"]
    assert json.loads((tmp_path / "run" / "fake-miner" / "config.json").read_text()) == {"a": 1}
