"""The dashboard in a real browser (headless Chromium) against a live mesh on 127.0.0.1.

Every check waits on a condition with a generous timeout: the page updates from
server-sent events, one sampling round every 0.5 s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from p2p.controller import UnauthorizedError

from .conftest import MINER_TYPE, WAIT, Browser, LiveMesh, artefacts_dir

pytest.importorskip("aiohttp", reason="the dashboard needs p2p-controller[dashboard]")
pytest.importorskip("selenium", reason="the browser tests need selenium")

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

Locator = tuple[str, str]


def wait_for(driver: Any, condition: Any, what: str, timeout: float = WAIT) -> Any:
    """Poll `condition(driver)` until it is truthy and return that value.

    The page re-renders rows, charts and totals on every server-sent event, so a condition
    must locate its elements afresh on each poll; an element replaced between finding and
    reading it (stale) or not rendered yet (missing) means "not yet", never a failure.
    """

    def fresh(d: Any) -> Any:
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=(NoSuchElementException,)
    )
    return wait.until(fresh, f"timed out: {what}")


def text_when(driver: Any, locator: Locator, check: Any, what: str) -> str:
    """The element's text once `check(text)` holds, read in the same poll that checked it."""

    def ready(d: Any) -> tuple[str] | bool:
        text = d.find_element(*locator).text
        return (text,) if check(text) else False

    result: tuple[str] = wait_for(driver, ready, what)
    return result[0]


def number_when(driver: Any, css: str, attribute: str, check: Any, what: str) -> float:
    """A numeric attribute (e.g. a chart's ``data-latest``) once `check(value)` holds."""

    def ready(d: Any) -> tuple[float] | bool:
        raw = d.find_element(By.CSS_SELECTOR, css).get_attribute(attribute)
        if raw in (None, ""):
            return False
        value = float(raw)
        return (value,) if check(value) else False

    result: tuple[float] = wait_for(driver, ready, what)
    return result[0]


def act(driver: Any, locator: Locator, what: str, *keys: str) -> None:
    """Click the element (or type `keys` into it), found afresh until the action lands.

    A stale element raises before the action reaches the page, so retrying never acts twice.
    """

    def done(d: Any) -> bool:
        element = d.find_element(*locator)
        if keys:
            element.send_keys(*keys)
        else:
            element.click()
        return True

    wait_for(driver, done, what)


def open_fleet(browser: Browser, mesh: LiveMesh) -> Any:
    d = browser.driver
    d.get(mesh.url)
    # the token in the URL became a cookie and left the address bar
    wait_for(d, lambda d: "token=" not in d.current_url, "the token leaves the URL")
    return d


def open_worker(d: Any, mesh: LiveMesh, worker: Any) -> None:
    d.get(mesh.page(f"/worker/{worker.id}"))
    name = worker.identity.name
    text_when(d, (By.ID, "worker-title"), lambda t: t == name, f"the page of {name}")


def test_fleet_view_lists_the_workers_live(browser: Browser, mesh: LiveMesh) -> None:
    d = open_fleet(browser, mesh)
    for w in mesh.workers:
        text_when(
            d,
            (By.CSS_SELECTOR, f'tr[data-peer="{w.id}"]'),
            lambda t: "connected" in t,
            f"{w.identity.name} listed as connected",
        )
    text_when(
        d,
        (By.CSS_SELECTOR, f'tr[data-peer="{mesh.workers[0].id}"]'),
        lambda t: "worker-1" in t and "ws · ueps/1" in t,
        "worker-1's row names it and its protocol",
    )
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
    number_when(
        d,
        '#chart-fleet li[data-series="fleet"]',
        "data-latest",
        lambda v: v > 0,
        "fleet hashrate on the chart",
    )
    number_when(
        d,
        "#chart-fleet path[data-series]",
        "data-points",
        lambda v: v >= 4,
        "a few points of history",
    )
    text_when(d, (By.ID, "totals"), lambda t: "Miners running\n2" in t, "totals: 2 miners")
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
    open_worker(d, mesh, worker)
    act(d, (By.ID, "start-type"), "type the miner type", MINER_TYPE)
    act(d, (By.ID, "start-config"), "type the config", '{"threads": 3}')
    act(d, (By.ID, "start-button"), "click Start miner")
    notice = text_when(d, (By.ID, "notice"), lambda t: "Started miner" in t, "start notice")
    name = notice.removeprefix("Started miner ").rstrip(".")
    wait_for(
        d,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#miners tr[data-miner="{name}"]'),
        "the miner row",
    )
    number_when(
        d,
        f'#chart-worker li[data-series="hashrate:{worker.id}"]',
        "data-latest",
        lambda v: v > 1000,  # three threads at ~950 H/s each
        "the miner's hashrate on the chart",
    )
    log_text = text_when(
        d, (By.CSS_SELECTOR, f'pre[data-log="{name}"]'), lambda t: "speed" in t, "its log lines"
    )
    assert "demo-miner starting with 3 threads" in log_text
    d.save_screenshot(str(artefacts_dir() / "worker-1280x800.png"))
    # the row (and its Stop button) is re-rendered on every event: act() finds it afresh
    act(d, (By.CSS_SELECTOR, f'button[data-stop="{name}"]'), "click Stop")
    text_when(d, (By.ID, "notice"), lambda t: "Stopped miner" in t, "stop notice")
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
    open_worker(d, mesh, worker)
    act(d, (By.ID, "deploy-file"), "choose the profile file", str(path))
    act(d, (By.ID, "deploy-button"), "click Deploy profile")
    text_when(d, (By.ID, "notice"), lambda t: "Deployed profile" in t, "deploy notice")
    assert worker.profiles.get_profile("fast") == profile
    # a broken upload is refused with a sentence, not a stack trace
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    act(d, (By.ID, "deploy-file"), "choose the broken file", str(bad))
    act(d, (By.ID, "deploy-button"), "click Deploy profile again")
    text_when(d, (By.ID, "error"), lambda t: "not valid JSON" in t, "the refusal of bad JSON")
    errors = browser.console_errors()
    # the browser reports the refused upload's HTTP 400 itself; nothing else may appear
    assert [e for e in errors if "400" not in e] == []


def test_read_only_dashboard_offers_no_action(browser: Browser, tmp_path: Path) -> None:
    mesh = LiveMesh(tmp_path, workers=1, read_only=True).start()
    try:
        d = open_fleet(browser, mesh)
        open_worker(d, mesh, mesh.workers[0])
        assert not d.find_elements(By.ID, "start-form")
        assert not d.find_elements(By.ID, "deploy-form")
        assert "read-only" in d.find_element(By.ID, "main").text
        assert browser.console_errors() == []
    finally:
        mesh.stop()


def test_unauthorized_controllers_action_shows_the_refusal(
    browser: Browser, tmp_path: Path
) -> None:
    # the workers authorize no controller key: start_miner must be refused (error 1002)
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
        assert mesh.controller.identity.public_key in expected
        d = open_fleet(browser, mesh)
        open_worker(d, mesh, worker)
        act(d, (By.ID, "start-type"), "type the miner type", MINER_TYPE)
        act(d, (By.ID, "start-button"), "click Start miner")
        shown = text_when(d, (By.ID, "error"), bool, "the refusal")
        assert shown == expected
        stats = mesh.call(ctl.get_remote_stats(worker.id))
        assert not stats.miners
    finally:
        mesh.stop()
