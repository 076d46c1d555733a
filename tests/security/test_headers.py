"""Browser security headers on every response: each operation of openapi.json, each console
page and file, /docs, and the answers no route writes (404, 405, 413, 500). The browser
side (framing refused, no violation in any console flow) is tests/browser/test_headers.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cad.app import STATIC_DIR, create_app
from cad.config import Settings
from cad.security_headers import content_security_policy, tile_origin
from tests.conftest import Api, Server, make_settings, start_server

TILES = "https://{s}.tiles.example.org:8443/{z}/{x}/{y}.png"
GEO_DENIED = "geolocation=()"
GEO_SELF = "geolocation=(self)"


def console_pages() -> list[str]:
    pages = ["/console/"]
    for d in sorted(STATIC_DIR.iterdir()):
        if d.is_dir() and (d / "index.html").is_file():
            pages.append(f"/console/{d.name}/")
    return pages


def assert_headers(r: httpx.Response, label: str, geolocation: bool = False) -> None:
    h = r.headers
    csp = h.get("content-security-policy", "")
    assert "default-src 'self'" in csp, (label, r.status_code, csp)
    assert "frame-ancestors 'none'" in csp, (label, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (label, csp)
    assert h.get("x-content-type-options") == "nosniff", label
    assert h.get("referrer-policy") == "no-referrer", label
    assert h.get("x-frame-options") == "DENY", label
    pp = h.get("permissions-policy", "")
    assert (GEO_SELF if geolocation else GEO_DENIED) in pp, (label, pp)
    assert "camera=()" in pp and "microphone=()" in pp, (label, pp)
    assert "strict-transport-security" not in h, label


@pytest.fixture
async def bare(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A client to the same app without the contract hook: the sweep sends bodies the
    document refuses on purpose, and only the headers are under test here."""
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_every_operation_carries_the_headers(api: Api, bare: httpx.AsyncClient) -> None:
    spec = (await bare.get("/openapi.json")).json()
    auth = await api.headers("admin")
    statuses: set[int] = set()
    swept = 0
    for path, ops in spec["paths"].items():
        url = path
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    url = url.replace("{" + p["name"] + "}", "1")
        for method in ops:
            kw: dict[str, Any] = {} if method == "get" else {"json": {}}
            for headers in (auth, {}):  # signed in, and the 401 a stranger gets
                r = await bare.request(method.upper(), url, headers=headers, **kw)
                assert_headers(r, f"{method.upper()} {path}")
                statuses.add(r.status_code)
            swept += 1
    assert swept >= 37, swept
    # The sweep reached successes and refusals alike, not one kind of answer only.
    assert {200, 401, 422} <= statuses, statuses


async def test_consoles_docs_and_framework_answers_carry_the_headers(
    bare: httpx.AsyncClient,
) -> None:
    pages = console_pages()
    assert {"/console/unit/", "/console/dispatcher/", "/console/docs/"} <= set(pages), pages
    for url in pages:
        r = await bare.get(url)
        assert r.status_code == 200, url
        assert_headers(r, url, geolocation=url == "/console/unit/")
    other = {
        "/": 307,
        "/docs": 200,
        "/openapi.json": 200,
        "/console/js/api.js": 200,
        "/console/css/console.css": 200,
        "/console/vendor/leaflet/leaflet.js": 200,
        "/console/unit": 307,
        "/console/no-such-file.js": 404,
        "/api/no-such-route": 404,
    }
    for url, status in other.items():
        r = await bare.get(url)
        assert r.status_code == status, (url, r.status_code)
        assert_headers(r, url, geolocation=url == "/console/unit")
    assert_headers(await bare.delete("/api/calls"), "DELETE /api/calls (405)")
    too_big = await bare.post("/api/calls", content=b"x" * (300 * 1024))
    assert too_big.status_code == 413
    assert_headers(too_big, "413")


async def test_the_docs_page_has_no_inline_script_and_no_cdn(bare: httpx.AsyncClient) -> None:
    html = (await bare.get("/docs")).text
    assert "<script>" not in html and "style=" not in html
    assert "http" not in html, "the API page loads something from another origin"


async def test_an_unexpected_error_carries_the_headers(api: Api, bare: httpx.AsyncClient) -> None:
    """The catch-all handler answers from Starlette's outermost layer, outside any
    add_middleware; the headers are added outside even that."""

    async def boom() -> None:
        raise RuntimeError("boom")

    api.app.add_api_route("/boom", boom, include_in_schema=False)
    r = await bare.get("/boom")
    assert r.status_code == 500, r.text
    assert_headers(r, "500")


async def test_console_html_has_no_inline_code() -> None:
    """What the CSP would refuse, caught before a browser does: inline scripts, styles,
    style attributes and on* handlers in the pages, style attributes in JS templates."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.I)
    found = []
    for f in STATIC_DIR.rglob("*"):
        if "vendor" in f.parts or f.suffix not in (".html", ".js"):
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if inline.search(line):
                found.append(f"{f.relative_to(STATIC_DIR)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_tile_origin_from_the_template() -> None:
    assert tile_origin(TILES) == "https://*.tiles.example.org:8443"
    assert tile_origin("http://127.0.0.1:8123/{z}/{x}/{y}.png") == "http://127.0.0.1:8123"
    assert tile_origin("//tiles.example.org/{z}/{x}/{y}.png") == "tiles.example.org"
    assert tile_origin("/tiles/{z}/{x}/{y}.png") is None  # this origin: 'self' covers it
    assert tile_origin(None) is None
    for bad in ("ftp://tiles.example.org/{z}", "https://a.{s}.example.org/", "https:///x"):
        with pytest.raises(ValueError):
            tile_origin(bad)
    with pytest.raises(ValueError, match="CAD_MAP_TILE_URL"):
        Settings(map_tile_url="https://tiles.{s}.example.org/{z}/{x}/{y}.png")


def _app_client(base_url: str, **overrides: Any) -> httpx.AsyncClient:
    # Header tests that touch no route needing state: no lifespan, no database.
    app = create_app(make_settings("postgresql://unused/none", "unused", **overrides))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def test_csp_names_the_tile_server_when_one_is_configured() -> None:
    async with _app_client("http://test", map_tile_url=TILES) as client:
        csp = (await client.get("/console/dispatcher/")).headers["content-security-policy"]
    assert csp == content_security_policy("https://*.tiles.example.org:8443")
    assert "img-src 'self' data: https://*.tiles.example.org:8443;" in csp
    async with _app_client("http://test") as client:
        csp = (await client.get("/console/dispatcher/")).headers["content-security-policy"]
    assert "img-src 'self' data:;" in csp


async def test_hsts_only_when_configured_and_over_https() -> None:
    cases = [("https://test", 31536000, True), ("http://test", 31536000, False)]
    cases.append(("https://test", 0, False))
    for base_url, seconds, expected in cases:
        async with _app_client(base_url, hsts_seconds=seconds) as client:
            for url in ("/console/", "/openapi.json"):
                hsts = (await client.get(url)).headers.get("strict-transport-security")
                assert hsts == ("max-age=31536000" if expected else None), (base_url, seconds)


async def test_hsts_behind_a_trusted_proxy(settings: Settings) -> None:
    """`cad serve` (uvicorn) takes the scheme from X-Forwarded-Proto when the proxy is one
    it trusts (FORWARDED_ALLOW_IPS, default 127.0.0.1), so TLS ended at the proxy counts."""
    server: Server = start_server(settings, name="hsts", CAD_HSTS_SECONDS="600")
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            plain = await client.get("/healthz")
            proxied = await client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in plain.headers
        assert proxied.headers.get("strict-transport-security") == "max-age=600"
    finally:
        server.stop()
