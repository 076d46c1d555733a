"""The consoles' session cookies and the CSRF check that comes with them.

A console holds no token a script can read: the access token and the refresh token are
HttpOnly, SameSite=Strict cookies (the refresh one sent only to /api/auth). A request
authenticated by cookie that changes anything must also carry the readable `cad_csrf`
cookie's value in X-CSRF-Token (double submit) and, when the browser says where it
comes from, come from this origin. API clients send bearer tokens and need neither.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import HTTPConnection
from starlette.responses import Response

from cad.errors import Forbidden

ACCESS_COOKIE = "cad_access"
REFRESH_COOKIE = "cad_refresh"
CSRF_COOKIE = "cad_csrf"
CSRF_HEADER = "x-csrf-token"
REFRESH_PATH = "/api/auth"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_secure(conn: HTTPConnection, forced: bool | None) -> bool:
    return forced if forced is not None else conn.url.scheme in ("https", "wss")


def set_session_cookies(
    response: Response,
    access: str,
    refresh: str,
    access_ttl_s: int,
    session_ttl_s: int,
    secure: bool,
) -> None:
    for name, value, max_age, path, httponly in (
        (ACCESS_COOKIE, access, access_ttl_s, "/", True),
        (REFRESH_COOKIE, refresh, session_ttl_s, REFRESH_PATH, True),
        (CSRF_COOKIE, secrets.token_urlsafe(24), session_ttl_s, "/", False),
    ):
        response.set_cookie(
            name, value, max_age=max_age, path=path, httponly=httponly, secure=secure,
            samesite="strict",
        )  # fmt: skip


def clear_session_cookies(response: Response, secure: bool) -> None:
    for name, path in ((ACCESS_COOKIE, "/"), (REFRESH_COOKIE, REFRESH_PATH), (CSRF_COOKIE, "/")):
        response.delete_cookie(name, path=path, secure=secure, httponly=name != CSRF_COOKIE,
                               samesite="strict")  # fmt: skip


def same_origin(conn: HTTPConnection) -> bool:
    """True unless the browser names another origin (no Origin header: not a browser's
    cross-site request, which always carries one for POST and WebSocket)."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = conn.headers.get("host", "")
    scheme = "https" if conn.url.scheme in ("https", "wss") else "http"
    return origin in (f"{scheme}://{host}", f"http://{host}", f"https://{host}")


def check_csrf(conn: HTTPConnection) -> None:
    if not same_origin(conn):
        raise Forbidden("cross-origin request refused", reason="csrf")
    sent = conn.headers.get(CSRF_HEADER, "")
    expected = conn.cookies.get(CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden(
            "missing or wrong X-CSRF-Token: a console request must echo the cad_csrf cookie",
            reason="csrf",
        )
