"""Browser security headers on every HTTP response: API, consoles, /docs (pure ASGI).

The consoles keep a bearer token in sessionStorage, so any script that runs on this origin
can act as the signed-in officer. The Content-Security-Policy is what keeps foreign script
out: the pages load scripts and styles only from this origin and have no inline code.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Features no console uses, denied so that injected or framed content cannot ask for them.
_DENIED_FEATURES = (
    "accelerometer",
    "camera",
    "display-capture",
    "gyroscope",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "usb",
)
# The unit app shares the officer's position; no other page may ask for it.
_GEOLOCATION_PATH = "/console/unit"


def tile_origin(template: str | None) -> str | None:
    """The CSP source for a Leaflet tile URL template, or None when it needs none.

    Only scheme://host[:port] matters; a ``{s}`` (or any placeholder) in the first host label
    becomes a CSP wildcard, ``https://{s}.tile.example.org/{z}/{x}/{y}.png`` →
    ``https://*.tile.example.org``. A template on this origin (a path) needs no source.
    """
    if not template:
        return None
    parts = urlsplit(template)
    if not parts.scheme and not parts.netloc:
        return None
    if parts.scheme not in ("http", "https", ""):
        raise ValueError(f"CAD_MAP_TILE_URL: scheme {parts.scheme!r} is not http or https")
    if not parts.hostname or parts.username is not None:
        raise ValueError("CAD_MAP_TILE_URL: needs a host (and no user:password@)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("CAD_MAP_TILE_URL: the port is not a number") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    first, _, rest = host.partition(".")
    if "{" in first and rest and "{" not in rest:
        host = f"*.{rest}"
    elif "{" in host:
        raise ValueError("CAD_MAP_TILE_URL: a placeholder may stand only in the first host label")
    origin = f"{host}:{port}" if port is not None else host
    # No scheme ("//host/…"): Leaflet takes the page's, and so does a scheme-less source.
    return f"{parts.scheme}://{origin}" if parts.scheme else origin


def content_security_policy(tile_source: str | None = None) -> str:
    img = "'self' data:" + (f" {tile_source}" if tile_source else "")
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        # Swagger UI's stylesheet inlines its icons as data: images.
        "img-src": img,
        # CSP Level 3 'self' also matches ws:/wss: to this host and port (the event stream).
        "connect-src": "'self'",
        "font-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def permissions_policy(geolocation: bool) -> str:
    features = {name: "()" for name in _DENIED_FEATURES}
    features["geolocation"] = "(self)" if geolocation else "()"
    return ", ".join(f"{name}={allow}" for name, allow in sorted(features.items()))


Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class BrowserHeaders:
    """The headers, encoded once at app creation; per request only a path test is left."""

    common: Headers
    unit_app: Headers
    hsts: Headers

    @classmethod
    def build(cls, map_tile_url: str | None, hsts_seconds: int) -> BrowserHeaders:
        base = (
            (b"content-security-policy", content_security_policy(tile_origin(map_tile_url))),
            (b"x-content-type-options", "nosniff"),
            # Incident ids sit in console URLs; they are not for the tile server's logs.
            (b"referrer-policy", "no-referrer"),
            # For browsers that predate frame-ancestors.
            (b"x-frame-options", "DENY"),
        )

        def encode(extra: str) -> Headers:
            pairs = (*base, (b"permissions-policy", extra))
            return tuple((name, value.encode("latin-1")) for name, value in pairs)

        hsts: Headers = ()
        if hsts_seconds > 0:
            hsts = ((b"strict-transport-security", f"max-age={hsts_seconds}".encode()),)
        return cls(encode(permissions_policy(False)), encode(permissions_policy(True)), hsts)

    def for_request(self, scope: Scope) -> Headers:
        path: str = scope.get("path", "")
        unit_app = path == _GEOLOCATION_PATH or path.startswith(_GEOLOCATION_PATH + "/")
        headers = self.unit_app if unit_app else self.common
        # Sent over plain HTTP the header is ignored by browsers and could be forged in
        # transit; uvicorn sets the scheme from X-Forwarded-Proto only for trusted proxies.
        if self.hsts and scope.get("scheme") == "https":
            headers = (*headers, *self.hsts)
        return headers


class SecurityHeadersMiddleware:
    """Adds the headers to every HTTP response; a header the route set itself is kept."""

    def __init__(self, app: ASGIApp, headers: BrowserHeaders) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers.for_request(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
