"""The dashboard in a real browser (headless Chromium) against a live mesh on 127.0.0.1.

Every check waits on a condition with a generous timeout: the page updates from
server-sent events, one sampling round every 0.5 s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import MINER_TYPE, WAIT, Browser, LiveMesh, artefacts_dir

pytest.importorskip("aiohttp", reason="the dashboard needs p2p-controller[dashboard]")
pytest.importorskip("selenium", reason="the browser tests need selenium")

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def wait_for(driver: Any, condition: Any, what: str, timeout: float = WAIT) -> Any:
    def safe(d: Any) -> Any:
        try:
            return condition(d)
        except StaleElementReferenceException:  # re-rendered between find and read
            return False

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(safe, f"timed out: {what}")


def texts(driver: Any, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def open_fleet(browser: Browser, mesh: LiveMesh) -> Any:
    d = browser.driver
    d.get(mesh.url)
    # the token in the URL became a cookie and left the address bar
    wait_for(d, lambda d: "token=" not in d.current_url, "the token leaves the URL")
    return d


def test_fleet_view_lists_the_workers_live(browser: Browser, mesh: LiveMesh) -> None:
    d = open_fleet(browser, mesh)
    for w in mesh.workers:
        wait_for(
            d,
            lambda d, w=w: (
                "connected" in d.find_element(By.CSS_SELECTOR, f'tr[data-peer="{w.id}"]').text
            ),
            f"{w.identity.name} listed as connected",
        )
    first = f'tr[data-peer="{mesh.workers[0].id}"]'
    row = wait_for(d, lambda d: d.find_element(By.CSS_SELECTOR, first).text, "row text")
    assert "worker-1" in row and "ws · ueps/1" in row  # rows are re-rendered: read at once
    # a miner started elsewhere (the CLI, another controller) shows up without a reload
    ctl = mesh.controller.controller
    for w in mesh.workers:
        mesh.call(ctl.start_remote_miner(w.id, MINER_TYPE, config={"threads": 2}))
    wait_for(
        d,
        lambda d: all(
            d.find_elements(By.CSS_SELECTOR, f'tr[data-peer="{w.id}"] li[data-miner]')
            for w in mesh.workers
        ),
        "both miners in the fleet table",
    )
    wait_for(
        d,
        lambda d: (
            float(
                d.find_element(
                    By.CSS_SELECTOR, '#chart-fleet li[data-series="fleet"]'
                ).get_attribute("data-latest")
                or 0
            )
            > 0
        ),
        "fleet hashrate on the chart",
    )
    wait_for(
        d,
        lambda d: (
            int(
                d.find_element(By.CSS_SELECTOR, "#chart-fleet path[data-series]").get_attribute(
                    "data-points"
                )
            )
            >= 4
        ),
        "a few points of history",
    )
    totals = d.find_element(By.ID, "totals").text
    assert "Miners running\n2" in totals
    assert d.find_elements(By.CSS_SELECTOR, "#chart-ping path[data-series]")
    d.save_screenshot(str(artefacts_dir() / "fleet-1280x800.png"))
    d.set_window_size(390, 844)  # a phone
    wait_for(d, lambda d: d.find_element(By.ID, "peers").is_displayed(), "phone layout")
    d.save_screenshot(str(artefacts_dir() / "fleet-phone.png"))
    assert browser.console_errors() == []


def test_miner_started_from_the_page_logs_charts_and_stops(
    browser: Browser, mesh: LiveMesh
) -> None:
    d = open_fleet(browser, mesh)
    worker = mesh.workers[1]
    d.get(mesh.page(f"/worker/{worker.id}"))
    wait_for(d, lambda d: d.find_element(By.ID, "worker-title").text == "worker-2", "the page")
    d.find_element(By.ID, "start-type").send_keys(MINER_TYPE)
    d.find_element(By.ID, "start-config").send_keys('{"threads": 3}')
    d.find_element(By.ID, "start-button").click()
    wait_for(d, lambda d: "Started miner" in d.find_element(By.ID, "notice").text, "notice")
    name = d.find_element(By.ID, "notice").text.removeprefix("Started miner ").rstrip(".")
    wait_for(
        d,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#miners tr[data-miner="{name}"]'),
        "the miner row",
    )
    key = f"hashrate:{worker.id}"
    wait_for(
        d,
        lambda d: (
            float(
                d.find_element(
                    By.CSS_SELECTOR, f'#chart-worker li[data-series="{key}"]'
                ).get_attribute("data-latest")
                or 0
            )
            > 1000
        ),  # three threads at ~950 H/s each
        "the miner's hashrate on the chart",
    )
    wait_for(
        d,
        lambda d: "speed" in d.find_element(By.CSS_SELECTOR, f'pre[data-log="{name}"]').text,
        "its log lines",
    )
    log_text = d.find_element(By.CSS_SELECTOR, f'pre[data-log="{name}"]').text
    assert "demo-miner starting with 3 threads" in log_text
    d.save_screenshot(str(artefacts_dir() / "worker-1280x800.png"))
    d.find_element(By.CSS_SELECTOR, f'button[data-stop="{name}"]').click()
    wait_for(d, lambda d: "Stopped miner" in d.find_element(By.ID, "notice").text, "stop notice")
    wait_for(
        d,
        lambda d: not d.find_elements(By.CSS_SELECTOR, f'#miners tr[data-miner="{name}"]'),
        "the miner row gone",
    )
    stats = mesh.call(mesh.controller.controller.get_remote_stats(worker.id))
    assert not stats.miners  # really stopped on the worker
    assert browser.console_errors() == []


def test_profile_deployed_from_an_upload(browser: Browser, mesh: LiveMesh, tmp_path: Path) -> None:
    d = open_fleet(browser, mesh)
    worker = mesh.workers[0]
    profile = {"id": "fast", "name": "Fast", "minerType": MINER_TYPE, "config": {"threads": 4}}
    path = tmp_path / "fast.json"
    path.write_text(json.dumps(profile), encoding="utf-8")
    d.get(mesh.page(f"/worker/{worker.id}"))
    wait_for(d, lambda d: d.find_element(By.ID, "worker-title").text == "worker-1", "the page")
    d.find_element(By.ID, "deploy-file").send_keys(str(path))
    d.find_element(By.ID, "deploy-button").click()
    wait_for(d, lambda d: "Deployed profile" in d.find_element(By.ID, "notice").text, "notice")
    assert worker.profiles.get_profile("fast") == profile
    # a broken upload is refused with a sentence, not a stack trace
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    d.find_element(By.ID, "deploy-file").send_keys(str(bad))
    d.find_element(By.ID, "deploy-button").click()
    wait_for(d, lambda d: "not valid JSON" in d.find_element(By.ID, "error").text, "error")
    errors = browser.console_errors()
    # the browser reports the refused upload's HTTP 400 itself; nothing else may appear
    assert [e for e in errors if "400" not in e] == []


def test_read_only_dashboard_offers_no_action(browser: Browser, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    mesh = LiveMesh(tmp_path, workers=1, read_only=True).start()
    try:
        d = open_fleet(browser, mesh)
        worker = mesh.workers[0]
        d.get(mesh.page(f"/worker/{worker.id}"))
        wait_for(d, lambda d: d.find_element(By.ID, "worker-title").text == "worker-1", "page")
        assert not d.find_elements(By.ID, "start-form")
        assert not d.find_elements(By.ID, "deploy-form")
        assert "read-only" in d.find_element(By.ID, "main").text
        assert browser.console_errors() == []
    finally:
        mesh.stop()


def test_unauthorized_controllers_action_shows_the_refusal(
    browser: Browser, tmp_path: Path
) -> None:
    pytest.importorskip("p2p.controller.authz")  # issue 12: runs once authorization is in
    from p2p.controller import UnauthorizedError  # type: ignore[attr-defined]

    # default workers authorize no controller key: start_miner must be refused
    mesh = LiveMesh(tmp_path, workers=1, authorize=False).start()
    try:
        worker = mesh.workers[0]
        ctl = mesh.controller.controller

        async def cli_sentence() -> str:
            try:
                await ctl.start_remote_miner(worker.id, MINER_TYPE, None, {})
            except UnauthorizedError as exc:
                return str(exc)
            raise AssertionError("the worker obeyed an unauthorized controller")

        expected = mesh.call(cli_sentence())
        d = open_fleet(browser, mesh)
        d.get(mesh.page(f"/worker/{worker.id}"))
        wait_for(d, lambda d: d.find_element(By.ID, "worker-title").text == "worker-1", "page")
        d.find_element(By.ID, "start-type").send_keys(MINER_TYPE)
        d.find_element(By.ID, "start-button").click()
        wait_for(d, lambda d: d.find_element(By.ID, "error").text, "the refusal")
        assert d.find_element(By.ID, "error").text == expected
        assert mesh.controller.identity.public_key in expected
        stats = mesh.call(ctl.get_remote_stats(worker.id))
        assert not stats.miners
    finally:
        mesh.stop()
