"""REHAB (0x30): pausing and resuming real miner processes, locally and over UEPS."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from p2p.controller.miners import MinerSpec, ProcessMiner, ProcessMinerManager
from p2p.controller.rehab import RehabCommand, RehabController, RehabError, parse_rehab
from p2p.transport import Transport, with_ueps
from p2p.ueps import INTENT_REHAB
from pytest_p2p.transport_fixtures import eventually

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP/SIGCONT and /proc")

SPIN = "import time\nwhile True:\n    time.sleep(0.02)\n"


def state(pid: int) -> str:
    """The process state letter from /proc/<pid>/stat ('T' = stopped)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


@pytest.fixture
async def miners(tmp_path: Path) -> AsyncIterator[ProcessMinerManager]:
    manager = ProcessMinerManager(
        {"spin": MinerSpec(command=[sys.executable, "-c", SPIN], stop_grace=2.0)},
        tmp_path / "run",
    )
    yield manager
    await manager.close()


async def _running(miners: ProcessMinerManager) -> ProcessMiner:
    miner = await miners.start_miner("spin", {})
    assert miner.pid is not None
    await eventually(lambda: state(miner.pid or 0) in "RS")
    return miner


def test_parse_rehab() -> None:
    assert parse_rehab(b"pause", 60) == RehabCommand("pause")
    assert parse_rehab(b" Pause:2.5\n", 60) == RehabCommand("pause", 2.5)
    assert parse_rehab(b"resume", 60) == RehabCommand("resume")
    for bad in (b"", b"stop", b"pause:", b"pause:0", b"pause:-1", b"pause:61", b"pause:nan"):
        with pytest.raises(RehabError):
            parse_rehab(bad, 60)
    with pytest.raises(RehabError):
        parse_rehab(b"\xff\xfe", 60)
    with pytest.raises(RehabError):
        parse_rehab(b"pause" + b" " * 64, 60)


async def test_pause_and_resume_real_process(miners: ProcessMinerManager) -> None:
    miner = await _running(miners)
    pid = miner.pid
    assert pid is not None
    rehab = RehabController(miners, default_pause=30)
    assert rehab.pause() == [miner.get_name()]
    await eventually(lambda: state(pid) == "T")
    assert rehab.paused == {miner.get_name(): pid}
    assert rehab.resume() == [miner.get_name()]
    await eventually(lambda: state(pid) in "RS")
    assert rehab.paused == {}


async def test_pause_ends_by_itself(miners: ProcessMinerManager) -> None:
    miner = await _running(miners)
    pid = miner.pid
    assert pid is not None
    rehab = RehabController(miners)
    rehab.apply(parse_rehab(b"pause:0.3", rehab.max_pause))
    await eventually(lambda: state(pid) == "T")
    await eventually(lambda: state(pid) in "RS", timeout=5.0)
    assert rehab.paused == {}


async def test_stop_after_pause_still_reaps(miners: ProcessMinerManager) -> None:
    miner = await _running(miners)
    rehab = RehabController(miners)
    rehab.pause(30)
    await eventually(lambda: state(miner.pid or 0) == "T")
    rehab.close()  # what a node does before stopping its miners
    await miners.stop_miner(miner.get_name())
    assert not miner.running


async def test_rehab_over_ueps(
    make_transport: Callable[..., Awaitable[Transport]], miners: ProcessMinerManager
) -> None:
    worker = await make_transport("worker", features=with_ueps())
    controller = await make_transport("controller", features=with_ueps())
    rehab = RehabController(miners, default_pause=30)
    worker.on_ueps(INTENT_REHAB, rehab.handle)
    conn = await controller.connect(worker.address)
    miner = await _running(miners)
    pid = miner.pid
    assert pid is not None

    await conn.send_ueps(INTENT_REHAB, b"pause")
    await eventually(lambda: state(pid) == "T")
    await conn.send_ueps(INTENT_REHAB, b"bogus")
    await conn.send_ueps(INTENT_REHAB, b"resume")
    await eventually(lambda: state(pid) in "RS")
    assert rehab.refused == 1
    rehab.close()


async def test_unauthorized_peer_cannot_pause(
    make_transport: Callable[..., Awaitable[Transport]], miners: ProcessMinerManager
) -> None:
    worker = await make_transport("worker", features=with_ueps())
    other = await make_transport("other", features=with_ueps())
    rehab = RehabController(miners, is_authorized=lambda peer_id: False)
    worker.on_ueps(INTENT_REHAB, rehab.handle)
    conn = await other.connect(worker.address)
    miner = await _running(miners)
    await conn.send_ueps(INTENT_REHAB, b"pause")
    await eventually(lambda: rehab.refused == 1)
    assert state(miner.pid or 0) in "RS" and rehab.paused == {}
