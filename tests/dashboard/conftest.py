"""Fixtures of the dashboard's browser tests: a live mesh in a thread, headless Chromium.

The mesh is real: a controller node serving the dashboard and worker nodes on 127.0.0.1,
each worker running the demo's miner script as a real child process (the only fake: a
"miner" that prints hashrate lines). It runs in its own thread and event loop, because
Selenium's calls block. The browser is Debian's chromium driven by chromedriver; without
them (or without selenium) the browser tests skip with a message saying what to install.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

MINER_TYPE = "demo-miner"
STATS_REGEX = r"speed (?P<hashrate>[\d.]+) H/s\s+accepted (?P<shares>\d+)"
#: Generous: a loaded 2-core machine runs the browser, three nodes and miners at once.
WAIT = 30.0
SKIP_BROWSER = (
    "dashboard browser tests need Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver) and selenium (pip install selenium)"
)


def artefacts_dir() -> Path:
    """Where screenshots go: $P2P_ARTEFACTS_DIR, else .artefacts/ at the repo root (ignored)."""
    env = os.environ.get("P2P_ARTEFACTS_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / ".artefacts"
    path = root / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


class LiveMesh:
    """A controller with the dashboard, and workers, in a background event loop."""

    def __init__(
        self,
        root: Path,
        workers: int = 2,
        *,
        authorize: bool = True,
        read_only: bool = False,
    ) -> None:
        self.root = root
        self.n_workers = workers
        self.authorize = authorize
        self.read_only = read_only
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.controller: Any = None
        self.workers: list[Any] = []
        self.dashboard: Any = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> LiveMesh:
        self.thread.start()
        self.call(self._start(), timeout=120)
        return self

    async def _start(self) -> None:
        from p2p.controller import Node, NodeConfig
        from p2p.controller.config import MinerConfig
        from p2p.controller.dashboard import Dashboard, DashboardConfig
        from p2p.controller.demo import MINER_SCRIPT

        script = self.root / "demo_miner.py"
        script.write_text(MINER_SCRIPT, encoding="utf-8")
        miner = MinerConfig(
            command=(sys.executable, "-u", str(script)), stats_regex=STATS_REGEX, stop_grace=3.0
        )
        worker_cfg = NodeConfig(listen="127.0.0.1:0", miners={MINER_TYPE: miner})
        self.controller = Node(
            self.root / "controller", config=NodeConfig(listen="127.0.0.1:0"), name="controller"
        )
        await self.controller.start()
        # A worker obeys only the controller keys it was given (issue 12): none unless authorized.
        controllers = (self.controller.identity.public_key,) if self.authorize else ()
        for i in range(1, self.n_workers + 1):
            w = Node(
                self.root / f"worker-{i}",
                config=worker_cfg,
                name=f"worker-{i}",
                controllers=controllers,
            )
            await w.start()
            self.workers.append(w)
            await self.controller.add_peer(w.address, public_key=w.identity.public_key)
        cfg = DashboardConfig(port=0, sample_interval=0.5, read_only=self.read_only)
        self.dashboard = Dashboard(self.controller, cfg)
        await self.dashboard.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            try:
                self.call(self._stop(), timeout=60)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(10)

    async def _stop(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.close()
        for node in [*self.workers, self.controller]:
            if node is not None:
                await node.close()

    @property
    def url(self) -> str:
        return str(self.dashboard.url)

    def page(self, path: str = "") -> str:
        return str(self.dashboard.base_url) + path.lstrip("/")


@dataclass
class Browser:
    """A Selenium Chrome driver; `console_errors()` returns the page's SEVERE log lines."""

    driver: Any
    seen: list[dict[str, Any]] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        entries = self.driver.get_log("browser")
        self.seen.extend(entries)
        return [e["message"] for e in entries if e.get("level") == "SEVERE"]


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    """One headless Chromium for the module (1280x800), or a skip saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(SKIP_BROWSER)
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(SKIP_BROWSER)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,800",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chrome: Any) -> Iterator[Browser]:
    b = Browser(chrome)
    chrome.set_window_size(1280, 800)
    chrome.get_log("browser")  # start each test with an empty console
    yield b
    chrome.delete_all_cookies()


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LiveMesh]:
    pytest.importorskip("aiohttp", reason="the dashboard needs p2p-controller[dashboard]")
    m = LiveMesh(tmp_path, workers=2)
    try:
        yield m.start()
    finally:
        m.stop()
