"""The descriptor table is grown once, at start (p2p.transport.aio.fdtable).

Each case runs in a fresh interpreter: a process's table never shrinks, so the test
process itself cannot show a growth twice. Linux reports the table's size as ``FDSize``
in ``/proc/self/status``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads FDSize from Linux's /proc"
)

PRELUDE = """
import json, os, resource
from p2p.transport.aio import reserve_fd_table

def fd_size():
    for line in open("/proc/self/status"):
        if line.startswith("FDSize:"):
            return int(line.split()[1])

def open_fds():
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))
"""


def run(body: str) -> dict[str, object]:
    code = PRELUDE + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_reserving_grows_the_table_in_one_step_and_leaves_no_descriptor_open() -> None:
    got = run(
        """
        before_size, before_fds = fd_size(), open_fds()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(3000, soft)
        n = reserve_fd_table(want)
        print(json.dumps({"before": before_size, "after": fd_size(), "n": n, "want": want,
                          "leaked": sorted(set(open_fds()) - set(before_fds))}))
        """
    )
    assert got["n"] == got["want"]
    assert isinstance(got["after"], int) and isinstance(got["want"], int)
    assert got["after"] >= got["want"]
    assert got["leaked"] == []


def test_the_soft_descriptor_limit_caps_the_reservation() -> None:
    got = run(
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        n = reserve_fd_table(100_000)
        print(json.dumps({"n": n, "size": fd_size()}))
        """
    )
    assert got["n"] == 512
    assert isinstance(got["size"], int) and got["size"] >= 512


def test_an_open_descriptor_in_the_way_is_never_replaced() -> None:
    got = run(
        """
        import stat
        read_end, _write_end = os.pipe()  # not /dev/null: a replacement would show
        os.dup2(read_end, 1999)  # something the process holds exactly where we reserve
        n = reserve_fd_table(2000)
        print(json.dumps({"n": n, "still_open": stat.S_ISFIFO(os.fstat(1999).st_mode),
                          "size": fd_size()}))
        """
    )
    assert got["n"] == 2000
    assert got["still_open"] is True
    assert isinstance(got["size"], int) and got["size"] >= 2000


def test_asking_again_for_less_or_nothing_does_nothing() -> None:
    got = run(
        """
        first = reserve_fd_table(1500)
        size = fd_size()
        print(json.dumps({"first": first, "again": reserve_fd_table(600),
                          "zero": reserve_fd_table(0), "negative": reserve_fd_table(-5),
                          "same_size": fd_size() == size}))
        """
    )
    assert got == {"first": 1500, "again": 1500, "zero": 0, "negative": 0, "same_size": True}


def test_a_started_transport_has_room_for_its_connection_budgets() -> None:
    got = run(
        """
        import asyncio
        from p2p.transport import Transport, TransportConfig
        import tempfile
        from p2p.identity import NodeManager

        async def main():
            with tempfile.TemporaryDirectory() as d:
                nm = NodeManager(key_path=d + "/private.key", config_path=d + "/node.json")
                nm.generate("fd")
                cfg = TransportConfig(listen_host="127.0.0.1", listen_port=0, max_conns=900,
                                      max_outbound_conns=900, max_pending_handshakes=100)
                before = fd_size()
                t = Transport(nm, config=cfg)
                await t.start()
                try:
                    return before, fd_size()
                finally:
                    await t.stop()

        before, after = asyncio.run(main())
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        print(json.dumps({"before": before, "after": after, "want": min(soft, 1964)}))
        """
    )
    assert isinstance(got["after"], int) and isinstance(got["want"], int)
    assert got["after"] >= got["want"]
