"""Dashboard access: token (401/403), CSRF and Origin on actions, GET cannot change state,
the live-update stream needs the token, read-only mode. Sans-I/O guard first, then the
real server on 127.0.0.1 with a real worker node behind it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from p2p.controller import Node, NodeConfig
from p2p.controller.config import MinerConfig
from p2p.controller.dashboard.security import COOKIE, CSRF_HEADER, AccessGuard

aiohttp = pytest.importorskip("aiohttp", reason="the dashboard needs p2p-controller[dashboard]")

from p2p.controller.dashboard import Dashboard, DashboardConfig  # noqa: E402

LOOPBACK = NodeConfig(listen="127.0.0.1:0")
MINER = """\
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    print("speed 100.0 H/s accepted 1", flush=True)
    time.sleep(0.2)
"""

# -- the guard, without sockets ---------------------------------------------------------


def test_token_missing_is_401_wrong_is_403_right_passes() -> None:
    g = AccessGuard("tok-1", "csrf-1")
    assert g.authenticate({}, {}, {}).status == 401
    assert g.authenticate({}, {}, {"token": "nope"}).status == 403
    assert g.authenticate({}, {COOKIE: "nope"}, {}).status == 403
    assert g.authenticate({"Authorization": "Bearer nope"}, {}, {}).status == 403
    assert g.authenticate({}, {}, {"token": "x" * 10_000}).status == 403
    via_query = g.authenticate({}, {}, {"token": "tok-1"})
    assert via_query.allowed and via_query.via_query
    cookie = g.authenticate({}, {COOKIE: "tok-1"}, {})
    assert cookie.allowed and not cookie.via_query
    assert g.authenticate({"Authorization": "bearer tok-1"}, {}, {}).allowed
    # a wrong cookie next to a right query token: the right one wins
    assert g.authenticate({}, {COOKIE: "old"}, {"token": "tok-1"}).allowed


def test_actions_need_post_csrf_and_our_origin() -> None:
    g = AccessGuard("tok", "csrf")
    ok_headers = {"Host": "127.0.0.1:9092", "Origin": "http://127.0.0.1:9092", CSRF_HEADER: "csrf"}
    cookie = {COOKIE: "tok"}
    assert g.check_action("POST", ok_headers, cookie, {}).allowed
    assert g.check_action("POST", ok_headers, {}, {}).status == 401  # token first
    assert g.check_action("GET", ok_headers, cookie, {}).status == 405
    no_csrf = {k: v for k, v in ok_headers.items() if k != CSRF_HEADER}
    assert g.check_action("POST", no_csrf, cookie, {}).status == 403
    assert g.check_action("POST", {**ok_headers, CSRF_HEADER: "guess"}, cookie, {}).status == 403
    forged = {**ok_headers, "Origin": "http://evil.example"}
    assert g.check_action("POST", forged, cookie, {}).status == 403
    assert g.check_action("POST", {**ok_headers, "Origin": "null"}, cookie, {}).status == 403
    referer = {**no_csrf, "Referer": "http://evil.example/x", CSRF_HEADER: "csrf"}
    del referer["Origin"]
    assert g.check_action("POST", referer, cookie, {}).status == 403
    cross = {"Host": "127.0.0.1:9092", "Sec-Fetch-Site": "cross-site", CSRF_HEADER: "csrf"}
    assert g.check_action("POST", cross, cookie, {}).status == 403
    tool = {"Host": "127.0.0.1:9092", CSRF_HEADER: "csrf"}  # curl: no Origin at all
    assert g.check_action("POST", tool, cookie, {}).allowed
    # https origins do not pass for http and the reverse
    assert g.check_action("POST", ok_headers, cookie, {}, scheme="https").status == 403


def test_read_only_refuses_every_action() -> None:
    g = AccessGuard("tok", "csrf", read_only=True)
    headers = {"Host": "h:1", "Origin": "http://h:1", CSRF_HEADER: "csrf"}
    d = g.check_action("POST", headers, {COOKIE: "tok"}, {})
    assert d.status == 403 and "read-only" in d.reason
    assert g.authenticate({}, {COOKIE: "tok"}, {}).allowed  # looking is still fine


def test_tokens_are_random_and_long() -> None:
    a, b = AccessGuard(), AccessGuard()
    assert a.token not in (b.token, a.csrf)
    assert len(a.token) >= 40


# -- the real server --------------------------------------------------------------------


@dataclass
class Live:
    ctl: Node
    worker: Node
    dash: Dashboard

    @property
    def base(self) -> str:
        return self.dash.base_url

    def session(self, **kw: Any) -> Any:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kw)


async def start_live(tmp_path: Path, *, read_only: bool = False) -> Live:
    script = tmp_path / "miner.py"
    script.write_text(MINER, encoding="utf-8")
    wcfg = NodeConfig(
        listen="127.0.0.1:0",
        miners={"fake": MinerConfig(command=(sys.executable, "-u", str(script)))},
    )
    ctl = Node(tmp_path / "ctl", config=LOOPBACK, name="ctl")
    await ctl.start()
    import inspect

    extra: dict[str, Any] = {}
    if "controllers" in inspect.signature(Node.__init__).parameters:
        extra["controllers"] = (ctl.identity.public_key,)
    worker = Node(tmp_path / "w", config=wcfg, name="w", **extra)
    await worker.start()
    await ctl.add_peer(worker.address)
    dash = Dashboard(ctl, DashboardConfig(port=0, sample_interval=0.5, read_only=read_only))
    await dash.start()
    return Live(ctl, worker, dash)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    lv = await start_live(tmp_path)
    try:
        yield lv
    finally:
        await lv.dash.close()
        await lv.worker.close()
        await lv.ctl.close()


async def login(lv: Live, session: Any) -> str:
    """Open the printed URL like a browser; returns the CSRF token."""
    async with session.get(lv.dash.url, allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    async with session.get(lv.base + "api/session") as r:
        assert r.status == 200
        return str((await r.json())["csrf"])


async def test_every_endpoint_refuses_a_request_without_the_token(live: Live) -> None:
    async with live.session() as s:
        for path in ("", "worker/ab", "static/app.js", "api/state", "api/history", "api/events"):
            async with s.get(live.base + path) as r:
                assert r.status == 401, path
                assert "token" in (await r.json())["error"]
            async with s.get(live.base + path, params={"token": "wrong"}) as r:
                assert r.status == 403, path
        async with s.post(live.base + "api/miner/start", json={}) as r:
            assert r.status == 401


async def test_the_event_stream_with_the_token_sends_state(live: Live) -> None:
    async with live.session() as s:
        await login(live, s)
        async with s.get(live.base + "api/events") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            first = await r.content.readline()
            assert first == b"event: state\n"
            data = await r.content.readline()
            assert data.startswith(b"data: {") and live.worker.id.encode() in data


async def test_get_cannot_change_state_and_post_needs_csrf_and_origin(live: Live) -> None:
    body = {"peer": live.worker.id, "type": "fake"}
    async with live.session() as s:
        csrf = await login(live, s)
        async with s.get(live.base + "api/miner/start", params=body) as r:
            assert r.status == 405 and r.headers["Allow"] == "POST"
        async with s.post(live.base + "api/miner/start", json=body) as r:
            assert r.status == 403 and "CSRF" in (await r.json())["error"]
        forged = {CSRF_HEADER: csrf, "Origin": "http://evil.example"}
        async with s.post(live.base + "api/miner/start", json=body, headers=forged) as r:
            assert r.status == 403 and "origin" in (await r.json())["error"]
        stats = await live.ctl.controller.get_remote_stats(live.worker.id)
        assert not stats.miners  # nothing above started anything
        origin = live.base.rstrip("/")
        good = {CSRF_HEADER: csrf, "Origin": origin}
        async with s.post(live.base + "api/miner/start", json=body, headers=good) as r:
            assert r.status == 200, await r.text()
            name = (await r.json())["minerName"]
        stats = await live.ctl.controller.get_remote_stats(live.worker.id)
        assert [m.name for m in stats.miners or []] == [name]
        bad = {"peer": live.worker.id, "type": "no-such-miner"}
        async with s.post(live.base + "api/miner/start", json=bad, headers=good) as r:
            assert r.status == 502
            assert "no-such-miner" in (await r.json())["error"]
        async with s.post(live.base + "api/miner/stop", json={"peer": "zz"}, headers=good) as r:
            assert r.status == 400
        stop = {"peer": live.worker.id, "miner": name}
        async with s.post(live.base + "api/miner/stop", json=stop, headers=good) as r:
            assert r.status == 200
        # the page's security headers
        async with s.get(live.base) as r:
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"


async def test_read_only_mode_refuses_actions_over_http(tmp_path: Path) -> None:
    lv = await start_live(tmp_path, read_only=True)
    try:
        async with lv.session() as s:
            csrf = await login(lv, s)
            async with s.get(lv.base + "api/session") as r:
                assert (await r.json())["readOnly"] is True
            headers = {CSRF_HEADER: csrf, "Origin": lv.base.rstrip("/")}
            body = {"peer": lv.worker.id, "type": "fake"}
            async with s.post(lv.base + "api/miner/start", json=body, headers=headers) as r:
                assert r.status == 403 and "read-only" in (await r.json())["error"]
        stats = await lv.ctl.controller.get_remote_stats(lv.worker.id)
        assert not stats.miners
    finally:
        await lv.dash.close()
        await lv.worker.close()
        await lv.ctl.close()
