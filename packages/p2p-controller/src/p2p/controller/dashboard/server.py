"""The dashboard's HTTP shell: aiohttp in the node's event loop.

Routes (all need the access token, see `security`):

- ``GET /`` and ``GET /worker/<peer id>``: the page (static HTML, CSS, JS; no CDN);
- ``GET /api/session``: the CSRF token and read-only flag the page needs;
- ``GET /api/state``, ``GET /api/history``: the fleet view and the ring buffer;
- ``GET /api/events``: server-sent events, one ``state`` event per sampling round;
- ``GET /api/logs?peer=&miner=&since=``: a miner's log tail (``get_logs`` with ``since``);
- ``POST /api/miner/start``, ``POST /api/miner/stop``, ``POST /api/deploy``: actions, through
  the same `Controller` operations (and the worker's authorization) as the CLI.

A refused action answers with the sentence the CLI prints for the same error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web
from p2p.controller import UnauthorizedError, bundles
from p2p.controller._cli_output import classify
from p2p.controller.dashboard.monitor import FleetMonitor, clip
from p2p.controller.dashboard.security import COOKIE, AccessGuard
from p2p.controller.dashboard.settings import DashboardConfig
from p2p.controller.errors import ControllerError
from p2p.controller.profiles import sanitise_name

if TYPE_CHECKING:
    from p2p.controller.node import Node

__all__ = ["Dashboard", "refusal_sentence"]

log = logging.getLogger(__name__)

_STATIC = {
    "app.js": "text/javascript",
    "charts.js": "text/javascript",
    "app.css": "text/css",
}
_PEER_ID = re.compile(r"[0-9a-fA-F]{1,128}")
_KEEPALIVE = 15.0
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refusal_sentence(exc: BaseException) -> str:
    """What the page shows for a failed action: the worker's refusal as the CLI words it."""
    if isinstance(exc, UnauthorizedError):  # one sentence naming the key to authorize
        return str(exc)
    return str(classify(exc))


def _static(name: str) -> bytes:
    return (resources.files("p2p.controller.dashboard") / "static" / name).read_bytes()


class _BadRequest(Exception):
    pass


class Dashboard:
    """``dash = Dashboard(node, config); await dash.start(); print(dash.url)``."""

    def __init__(
        self,
        node: Node,
        config: DashboardConfig | None = None,
        *,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.config = config if config is not None else DashboardConfig()
        self.guard = AccessGuard(token, read_only=self.config.read_only)
        self.monitor = FleetMonitor(node, self.config, clock=clock)
        self._runner: web.AppRunner | None = None
        self._port = self.config.port
        self._streams: set[asyncio.Task[Any]] = set()
        #: updates a slow stream skipped (it got the newer state instead)
        self.stream_drops = 0
        self._pages = {name: _static(name) for name in ("index.html", *_STATIC)}

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        app = web.Application(
            middlewares=[self._middleware], client_max_size=cfg.max_upload + 16 * 1024
        )
        r = app.router
        r.add_get("/", self._page)
        r.add_get("/worker/{peer}", self._page)
        r.add_get("/static/{name}", self._asset)
        r.add_get("/api/session", self._session)
        r.add_get("/api/state", self._state)
        r.add_get("/api/history", self._history)
        r.add_get("/api/events", self._events)
        r.add_get("/api/logs", self._logs)
        r.add_route("*", "/api/miner/start", self._action(self._start_miner))
        r.add_route("*", "/api/miner/stop", self._action(self._stop_miner))
        r.add_route("*", "/api/deploy", self._action(self._deploy))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        context = None
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key))
        site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or ()
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        warning = cfg.insecure_warning()
        if warning is not None:
            log.warning("%s", warning)
        self.monitor.start()
        log.info("dashboard listening on %s (read-only: %s)", self.base_url, cfg.read_only)

    async def close(self) -> None:
        await self.monitor.close()
        for task in list(self._streams):  # live streams never end by themselves
            task.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Dashboard:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{host}:{self._port}/"

    @property
    def url(self) -> str:
        """The URL to open: it carries the access token (as Jupyter's does)."""
        return f"{self.base_url}?token={self.guard.token}"

    # -- plumbing ----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        decision = self.guard.authenticate(request.headers, request.cookies, request.query)
        if not decision.allowed:
            response: web.StreamResponse = web.json_response(
                {"error": decision.reason}, status=decision.status
            )
        elif decision.via_query and request.method == "GET" and request.path[:5] != "/api/":
            # Swap the token in the URL for a cookie, and drop it from the address bar.
            response = web.Response(status=302, headers={"Location": request.path})
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = web.json_response({"error": exc.reason}, status=exc.status)
        if decision.allowed and decision.via_query:
            response.set_cookie(
                COOKIE,
                self.guard.token,
                httponly=True,
                samesite="Strict",
                secure=self.config.tls,
                path="/",
            )
        if not response.prepared:
            response.headers.update(_SECURITY_HEADERS)
        return response

    def _action(self, run: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            decision = self.guard.check_action(
                request.method,
                request.headers,
                request.cookies,
                request.query,
                scheme="https" if self.config.tls else "http",
            )
            if not decision.allowed:
                headers = {"Allow": "POST"} if decision.status == 405 else None
                return web.json_response(
                    {"error": decision.reason}, status=decision.status, headers=headers
                )
            try:
                result = await run(request)
            except _BadRequest as exc:
                return web.json_response({"error": str(exc)}, status=400)
            except (ControllerError, OSError) as exc:
                log.info("dashboard action %s refused: %s", request.path, clip(exc, 200))
                return web.json_response({"error": refusal_sentence(exc)}, status=502)
            self.monitor.poke()
            return web.json_response({"ok": True, **result})

        return handler

    def _peer(self, value: object) -> str:
        text = str(value or "")
        if not _PEER_ID.fullmatch(text):
            raise _BadRequest("peer must be a peer id")
        if self.node.registry.get(text) is None:
            raise _BadRequest(f"no known peer {text[:16]}")
        return text

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            doc = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest("the body must be a JSON object") from None
        if not isinstance(doc, dict):
            raise _BadRequest("the body must be a JSON object")
        return doc

    # -- pages -------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self._pages["index.html"], content_type="text/html")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = _STATIC.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        return web.Response(body=self._pages[name], content_type=kind)

    async def _session(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "csrf": self.guard.csrf,
                "readOnly": self.config.read_only,
                "interval": self.config.sample_interval,
                "history": self.config.history,
                "logLines": self.config.log_lines,
            }
        )

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.monitor.view())

    async def _history(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.monitor.history.to_json())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self._streams) >= self.config.max_streams:
            raise web.HTTPServiceUnavailable(reason="too many live streams open")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=4)

        def push(event: dict[str, Any]) -> None:
            if queue.full():  # a slow tab gets the newest state, not a backlog
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                    self.stream_drops += 1
            queue.put_nowait(event)

        response = web.StreamResponse(
            headers={**_SECURITY_HEADERS, "Content-Type": "text/event-stream"}
        )
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        unsubscribe = self.monitor.subscribe(push)
        try:
            await response.prepare(request)
            first = {"state": self.monitor.view(), "point": None}
            await response.write(_sse("state", first))
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), _KEEPALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(_sse("state", event))
        except ConnectionError:  # the tab went away
            pass
        finally:
            unsubscribe()
            self._streams.discard(task)
        return response

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            peer = self._peer(q.get("peer"))
            miner = q.get("miner", "")
            if not miner or len(miner) > 256:
                raise _BadRequest("miner must be a miner name")
            since_text = q.get("since", "0")
            if not since_text.isdigit() or len(since_text) > 16:
                raise _BadRequest("since must be Unix milliseconds")
        except _BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)
        asked_at = int(time.time() * 1000)
        try:
            lines = await self.node.controller.get_remote_logs(
                peer, miner, self.config.log_lines, int(since_text) or None
            )
        except (ControllerError, OSError) as exc:
            return web.json_response({"error": refusal_sentence(exc)}, status=502)
        shown = [clip(line, 1000) for line in lines[-self.config.log_lines :]]
        return web.json_response({"lines": shown, "at": asked_at})

    # -- actions -----------------------------------------------------------------------

    async def _start_miner(self, request: web.Request) -> dict[str, Any]:
        doc = await self._json_body(request)
        peer = self._peer(doc.get("peer"))
        miner_type = doc.get("type")
        if not isinstance(miner_type, str) or not 0 < len(miner_type) <= 64:
            raise _BadRequest("type must be a miner type")
        profile = doc.get("profile") or None
        if profile is not None and (not isinstance(profile, str) or len(profile) > 256):
            raise _BadRequest("profile must be a profile id")
        config = doc.get("config")
        if isinstance(config, str):
            if config.strip():
                try:
                    config = json.loads(config)
                except ValueError as exc:
                    raise _BadRequest(f"config is not valid JSON: {exc}") from None
            else:
                config = None
        if config is None and profile is None:
            config = {}  # as `p2p-node miner start` does
        name = await self.node.controller.start_remote_miner(peer, miner_type, profile, config)
        return {"minerName": name}

    async def _stop_miner(self, request: web.Request) -> dict[str, Any]:
        doc = await self._json_body(request)
        peer = self._peer(doc.get("peer"))
        miner = doc.get("miner")
        if not isinstance(miner, str) or not 0 < len(miner) <= 256:
            raise _BadRequest("miner must be a miner name")
        await self.node.controller.stop_remote_miner(peer, miner)
        return {"minerName": miner}

    async def _deploy(self, request: web.Request) -> dict[str, Any]:
        """A profile JSON uploaded as ``multipart/form-data`` (fields peer, name, file)."""
        try:
            form = await request.post()
        except (ValueError, web.HTTPException) as exc:
            raise _BadRequest(f"the upload could not be read: {exc}") from None
        peer = self._peer(form.get("peer"))
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise _BadRequest("choose a profile JSON file")
        raw = upload.file.read(self.config.max_upload + 1)
        if len(raw) > self.config.max_upload:
            raise _BadRequest(f"the profile is larger than {self.config.max_upload} bytes")
        try:
            profile = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(f"the file is not valid JSON: {exc}") from None
        if not isinstance(profile, dict):
            raise _BadRequest("the profile must be a JSON object")
        given = form.get("name")
        stem = (upload.filename or "profile").rsplit(".", 1)[0]
        name = sanitise_name(str(given) if isinstance(given, str) and given.strip() else stem)
        controller = self.node.controller
        password = await controller.bundle_password(peer)
        bundle = bundles.create_profile_bundle(raw, name, password)
        deployed = await controller.deploy(peer, bundle)
        return {"name": deployed or name}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {body}\n\n".encode()
