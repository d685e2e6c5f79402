"""Sans-I/O access checks of the dashboard: access token, CSRF token, Origin, method.

Every request needs the access token: ``?token=`` on the first visit (which sets an
HttpOnly, SameSite=Strict cookie), then the cookie, or an ``Authorization: Bearer``
header for tools. State-changing requests must also be ``POST``, carry the CSRF token in
the ``X-CSRF-Token`` header, and come from our own origin (a browser always sends
``Origin`` on a cross-site POST; a forged or foreign one is refused). Read-only mode
refuses them all. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "AccessGuard",
    "Decision",
    "new_token",
]

COOKIE = "p2p_dashboard"
CSRF_HEADER = "X-CSRF-Token"
#: Longest token accepted from a request (ours are 43 characters).
MAX_TOKEN = 256


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Decision:
    """``status`` 0 means allowed; otherwise the HTTP status and a short reason."""

    status: int = 0
    reason: str = ""
    #: the request authenticated with ``?token=`` (the server sets the cookie)
    via_query: bool = False

    @property
    def allowed(self) -> bool:
        return self.status == 0


def _same(given: str | None, expected: str) -> bool:
    if not given or len(given) > MAX_TOKEN:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class AccessGuard:
    """Decides, from a request's method, headers, cookie and query, whether it may run."""

    def __init__(
        self, token: str | None = None, csrf: str | None = None, *, read_only: bool = False
    ) -> None:
        self.token = token or new_token()
        self.csrf = csrf or new_token()
        self.read_only = read_only

    def authenticate(
        self,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
        query: Mapping[str, str],
    ) -> Decision:
        """401 without any token, 403 with a wrong one."""
        auth = headers.get("Authorization", "")
        candidates = [
            query.get("token"),
            cookies.get(COOKIE),
            auth[7:].strip() if auth[:7].lower() == "bearer " else None,
        ]
        given = [c for c in candidates if c]
        if not given:
            return Decision(401, "access token required: open the URL the node printed")
        for i, candidate in enumerate(candidates):
            if candidate and _same(candidate, self.token):
                return Decision(via_query=i == 0)
        return Decision(403, "wrong access token")

    def check_origin(self, headers: Mapping[str, str], scheme: str) -> Decision:
        """A browser's ``Origin`` (or ``Referer``) must be this server's own origin."""
        host = headers.get("Host", "")
        origin = headers.get("Origin")
        if origin is None:
            referer = headers.get("Referer")
            if referer:
                parts = urlsplit(referer)
                origin = f"{parts.scheme}://{parts.netloc}"
        if origin is None:
            fetch_site = headers.get("Sec-Fetch-Site")
            if fetch_site is not None and fetch_site not in ("same-origin", "none"):
                return Decision(403, "cross-site request refused")
            return Decision()  # not a browser (curl with the token and CSRF header)
        if not host or origin.lower() != f"{scheme}://{host}".lower():
            return Decision(403, "request from another origin refused")
        return Decision()

    def check_action(
        self,
        method: str,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
        query: Mapping[str, str],
        *,
        scheme: str = "http",
    ) -> Decision:
        """A state-changing request: token, then POST, read-only, Origin and CSRF."""
        auth = self.authenticate(headers, cookies, query)
        if not auth.allowed:
            return auth
        if method != "POST":
            return Decision(405, "actions need POST")
        if self.read_only:
            return Decision(403, "this dashboard is read-only")
        origin = self.check_origin(headers, scheme)
        if not origin.allowed:
            return origin
        if not _same(headers.get(CSRF_HEADER), self.csrf):
            return Decision(403, "missing or wrong CSRF token")
        return Decision()
