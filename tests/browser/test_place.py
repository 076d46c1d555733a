"""Place in the consoles: the handler's postcode type-ahead, reverse lookup of map clicks,
the dispatcher's ward map and "go to" box, and a base tile layer served by the test itself.

Real data: the London postcodes and 2014 wards the server ships (SE1 7PB is in Bishop's
ward, Lambeth).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.async_api import Page, Request, expect

from cad.config import Settings
from tests.browser.conftest import PHONE, SCREENSHOTS, PageFactory, box_of, screenshot, sign_in
from tests.conftest import ROOT, Server, call_body, start_server

pytestmark = pytest.mark.browser

LIVE = 2000  # ms: how soon a change must reach another console
ATTRIBUTION = "Test tiles © Place test 2025"
DOCS_IMG = ROOT / "docs" / "img"
SE1_7PB = (51.50250, -0.11941)  # its Code-Point centroid (BNG 530625, 179850)
TILE_PATH = re.compile(r"^/(\d+)/(\d+)/(\d+)\.png$")
WARD_VIEW = (51.5005, -0.1185, 14)  # both banks at Westminster Bridge
WARD_MAP_CALLS = [
    ("SE1 7PB", "THEFT"),
    ("Waterloo Station", "BURGLARY"),
    ("SE1 7DR", "ASB"),
    ("SW1A 2AA", "ROBBERY"),
]


def address_call(address: str, incident_type: str) -> dict[str, Any]:
    body = call_body(incident_type, location_source="address")
    body["location"] = {"address": address}
    return body


def png_tile() -> bytes:
    """A 256x256 PNG: a pale street-map grey with darker 'blocks', so a screenshot shows it."""
    rows = []
    for y in range(256):
        row = bytearray([0])  # filter: none
        for x in range(256):
            street = x % 64 < 6 or y % 64 < 6
            row += bytes((236, 232, 224) if street else (214, 220, 226))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@dataclass
class TileServer:
    port: int
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{z}}/{{x}}/{{y}}.png"


@pytest.fixture
def tiles() -> Iterator[TileServer]:
    """A tiny tile server: the same PNG for any /{z}/{x}/{y}.png, counting what it serves."""
    body = png_tile()
    lock = threading.Lock()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not TILE_PATH.match(self.path):
                self.send_error(404)
                return
            with lock:
                seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    ts = TileServer(httpd.server_address[1], seen)
    yield ts
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def server(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Server]:
    """`cad serve` as in tests/conftest.py; a test that asks for `tiles` gets a base map."""
    env: dict[str, str] = {}
    if "tiles" in request.fixturenames:
        ts: TileServer = request.getfixturevalue("tiles")
        env = {"CAD_MAP_TILE_URL": ts.url, "CAD_MAP_ATTRIBUTION": ATTRIBUTION}
    srv = start_server(settings, **env)
    yield srv
    srv.stop()


def keep_for_docs(name: str) -> None:
    """CAD_UPDATE_DOCS_IMG=1 refreshes the README's copy; a plain run leaves the tree clean."""
    if os.environ.get("CAD_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCREENSHOTS / f"{name}.png", DOCS_IMG / f"{name}.png")


async def incident_by_ref(http: Any, ref: str) -> dict[str, Any]:
    r = await http.as_("dispatcher", "GET", "/api/incidents?status=open&limit=1000")
    found = next(i for i in r.json() if i["ref"] == ref)
    detail = await http.as_("dispatcher", "GET", f"/api/incidents/{found['id']}")
    assert detail.status_code == 200, detail.text
    return dict(detail.json())


async def wait_map_ready(page: Page) -> None:
    # Areas loaded and fitted: the map has its borough labels.
    await expect(page.locator("#map .area-label").first).to_be_attached()
    await expect(page.locator("#map[data-base-map]")).to_be_attached()


async def set_view(page: Page, lat: float, lng: float, zoom: float) -> None:
    # Asked again until it holds: a zoom animation the page started (selecting an incident
    # pans to it) ignores a setView made while it runs.
    await page.wait_for_function(
        """([lat, lng, z]) => {
            const m = window.__cadMap.map;
            m.setView([lat, lng], z, {animate: false});
            return Math.abs(m.getZoom() - z) < 0.01 && m.distance(m.getCenter(), [lat, lng]) < 2;
        }""",
        arg=[lat, lng, zoom],
    )


async def map_point(page: Page, lat: float, lng: float) -> tuple[float, float]:
    """Where on the page a point of the map is."""
    x, y = await page.evaluate(
        "([lat, lng]) => { const p = window.__cadMap.map.latLngToContainerPoint([lat, lng]);"
        " return [p.x, p.y]; }",
        [lat, lng],
    )
    box = await box_of(page.locator("#map"))
    return box["x"] + x, box["y"] + y


async def click_map_at(page: Page, lat: float, lng: float, zoom: int = 15) -> None:
    await set_view(page, lat, lng, zoom)
    await page.mouse.click(*await map_point(page, lat, lng))


async def test_handler_picks_a_postcode_and_every_console_shows_it(
    open_page: PageFactory, http: Any
) -> None:
    dispatcher = await open_page("dispatcher")
    handler = await open_page("handler")
    unit = await open_page("unit", viewport=PHONE)
    await wait_map_ready(handler)
    await expect(unit.locator("#no-job")).to_be_visible()

    await expect(handler.locator("#address")).to_be_focused()  # location is the first field
    # A partial postcode lists its units; the whole one narrows the list to itself.
    await handler.keyboard.type("se1 7p")
    listbox = handler.locator("[role=listbox]")
    await expect(listbox.locator("li[role=option]")).to_have_count(8)
    await expect(listbox.locator("li[role=option]").nth(1)).to_have_attribute(
        "data-label", re.compile(r"^SE1 7P[A-Z]$")
    )
    await handler.keyboard.press("ArrowDown")
    await handler.keyboard.press("ArrowDown")
    await expect(listbox.locator("li[aria-selected=true]")).to_have_count(1)
    await screenshot(handler, "handler-postcode")
    keep_for_docs("handler-postcode")
    await handler.keyboard.type("b")
    option = listbox.locator("li[role=option][data-label='SE1 7PB']")
    await expect(option).to_be_visible()
    await expect(listbox.locator("li[role=option]")).to_have_count(1)
    await expect(option).to_contain_text("Lambeth")
    await expect(option).to_contain_text("postcode")
    await handler.keyboard.press("ArrowDown")
    await expect(listbox.locator("li[aria-selected=true]")).to_have_attribute(
        "data-label", "SE1 7PB"
    )
    await handler.keyboard.press("Enter")

    await expect(listbox).to_be_hidden()
    await expect(handler.locator("#address")).to_have_value("SE1 7PB")
    line = handler.locator("#place-line")
    await expect(line).to_contain_text("SE1 7PB · Bishop's · Lambeth")
    await expect(line).to_contain_text(re.compile(r"±\d+ m"))
    await expect(handler.locator("#map")).to_have_attribute("data-pin", re.compile(r"^51\.50"))
    await expect(handler.locator("#map .pin-label")).to_contain_text("Lambeth")
    await expect(handler.locator("#caller-name")).to_be_focused()  # Enter moved on
    await screenshot(handler, "handler-postcode-picked")
    await handler.keyboard.type("Pat Caller")
    await handler.locator("#type-filter").focus()
    await handler.keyboard.type("theft")
    await handler.keyboard.press("Enter")
    await expect(handler.locator("#preview-body [data-grade]")).to_be_visible()
    await expect(handler.locator("#preview-body")).to_contain_text("Lambeth")
    await handler.keyboard.press("Control+Enter")
    ref_el = handler.locator("#result-ref")
    await expect(ref_el).to_be_visible()
    ref = await ref_el.inner_text()

    incident = await incident_by_ref(http, ref)
    assert incident["area"] == "Lambeth"
    assert incident["ward"] == "Bishop's"
    assert incident["address"] == "SE1 7PB"
    assert incident["address_line"] == "SE1 7PB · Bishop's · Lambeth"
    calls = incident["calls"]
    assert [c["location_source"] for c in calls] == ["address"]

    row = dispatcher.locator(f"#queue tr[data-ref='{ref}']")
    await expect(row).to_be_visible(timeout=LIVE)
    await expect(row).to_contain_text("SE1 7PB")
    await expect(row).to_contain_text("Lambeth")

    # The unit's phone shows the address line once the job is sent; its live updates are
    # applied from events, not by reading its view again for each one.
    units = (await http.as_("dispatcher", "GET", "/api/units")).json()
    cw11 = next(u for u in units if u["callsign"] == "CW11")
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident['id']}/assignments",
        json={"unit_id": cw11["id"]},
    )
    assert r.status_code == 201, r.text
    await expect(unit.locator("#job-ref")).to_contain_text(ref, timeout=LIVE)
    await expect(unit.locator("#job-where")).to_have_text("SE1 7PB · Bishop's · Lambeth")
    await expect(unit.locator("#job-areas")).to_have_text("Ward: Bishop's · Borough: Lambeth")
    await screenshot(unit, "unit-place")
    reads: list[str] = []

    def note(req: Request) -> None:
        if "/api/units/me" in req.url:
            reads.append(req.url)

    unit.on("request", note)
    await unit.locator("button[data-status=en_route]").click()
    await expect(unit.locator("#my-status")).to_have_text("en route")
    await expect(unit.locator("button[data-status=on_scene]")).to_be_visible()
    regrade = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident['id']}/grade",
        json={"grade": "S", "reason": "caller now reports a threat"},
    )
    assert regrade.status_code == 200, regrade.text
    await expect(unit.locator("#job-ref .grade")).to_have_text("S", timeout=LIVE)
    await expect(unit.locator("#job-where")).to_have_text("SE1 7PB · Bishop's · Lambeth")
    assert reads == []


async def test_map_click_and_aml_read_back_as_near_a_postcode(
    open_page: PageFactory, http: Any
) -> None:
    handler = await open_page("handler")
    await wait_map_ready(handler)
    await click_map_at(handler, *SE1_7PB)
    line = handler.locator("#place-line")
    await expect(line).to_have_attribute("data-kind", "near")
    await expect(line).to_contain_text(re.compile(r"^near SE1 7\w\w · Bishop's · Lambeth"))
    await expect(handler.locator("#source")).to_have_value("map")
    assert (await handler.locator("#lat").input_value()).startswith("51.50")
    await expect(handler.locator("#address")).to_have_value("")

    # Typing a place after a map click replaces the point; AML coordinates replace the place.
    await handler.locator("#address").fill("Waterloo")
    await expect(handler.locator("#lat")).to_have_value("")
    await expect(line).to_be_empty()
    # Esc in the open list closes the list only; the next Esc starts a new call.
    listbox = handler.locator("[role=listbox]")
    await expect(listbox.locator("[data-label='Waterloo Station']")).to_be_visible()
    await handler.keyboard.press("Escape")
    await expect(listbox).to_be_hidden()
    await expect(handler.locator("#address")).to_have_value("Waterloo")
    await handler.keyboard.press("Escape")
    await expect(handler.locator("#address")).to_have_value("")
    await expect(handler.locator("#address")).to_be_focused()
    await handler.locator("#lat").fill("51.50322")
    await handler.locator("#lng").fill("-0.11328")
    await expect(handler.locator("#address")).to_have_value("")
    await expect(line).to_contain_text(re.compile(r"^near SE1 \w+ · .+ · Lambeth"))
    await expect(handler.locator("#source")).to_have_value("aml")

    await handler.locator("#type-filter").fill("theft")
    await handler.locator("#type-filter").press("Enter")
    await handler.keyboard.press("Control+Enter")
    ref = await handler.locator("#result-ref").inner_text()
    incident = await incident_by_ref(http, ref)
    assert incident["address_line"].startswith("near SE1 ")
    assert incident["area"] == "Lambeth"


async def test_unresolvable_place_names_the_reason_and_offers_suggestions(
    open_page: PageFactory,
) -> None:
    handler = await open_page("handler")
    await handler.locator("#address").fill("SE1 7PX")  # no such postcode; its neighbours exist
    await handler.locator("#type-filter").fill("theft")
    await handler.locator("#type-filter").press("Enter")
    await expect(handler.locator("#preview-body .field-error")).to_contain_text("SE1 7PX")
    suggestion = handler.locator("#place-suggest button[data-suggest]").first
    await expect(suggestion).to_contain_text(re.compile(r"^SE1 7P\w$"))
    label = await suggestion.inner_text()
    await suggestion.click()
    await expect(handler.locator("#address")).to_have_value(label)
    await expect(handler.locator("#place-line")).to_contain_text(f"{label} · ")
    await expect(handler.locator("#preview-body [data-grade]")).to_be_visible()


async def test_tile_layer_is_drawn_under_the_vectors(
    open_page: PageFactory, tiles: TileServer, http: Any
) -> None:
    cfg = (await http.as_("unit", "GET", "/api/map-config")).json()
    assert cfg == {"tile_url": tiles.url, "attribution": ATTRIBUTION, "max_zoom": 19}
    incidents_by_address = {}
    for address, kind in WARD_MAP_CALLS:
        r = await http.as_("handler", "POST", "/api/calls", json=address_call(address, kind))
        assert r.status_code == 201, r.text
        incidents_by_address[address] = r.json()["incident"]

    dispatcher = await open_page("dispatcher")
    await wait_map_ready(dispatcher)
    await expect(dispatcher.locator("#map")).to_have_attribute("data-base-map", "tiles")
    await expect(dispatcher.locator("#map img.leaflet-tile-loaded").first).to_be_visible()
    assert tiles.requests, "the tile server was never asked"
    assert all(TILE_PATH.match(p) for p in tiles.requests)
    await expect(dispatcher.locator("#map .leaflet-control-attribution")).to_have_text(ATTRIBUTION)
    # Tiles live in the tile pane, below the overlay pane that holds the vectors.
    panes = await dispatcher.evaluate(
        "(() => { const m = window.__cadMap.map;"
        " return [+getComputedStyle(m.getPane('tilePane')).zIndex,"
        " +getComputedStyle(m.getPane('overlayPane')).zIndex]; })()"
    )
    assert panes[0] < panes[1]

    # Zoomed in: ward boundaries and names appear (fetched on first need).
    await expect(dispatcher.locator("#map .ward-label")).to_have_count(0)
    await set_view(dispatcher, *SE1_7PB, 15)
    await expect(dispatcher.locator("#map .ward-label", has_text="Bishop's")).to_be_visible()
    await expect(dispatcher.locator("#map")).to_have_attribute("data-wards", "630")
    await expect(dispatcher.locator("#map img.leaflet-tile-loaded").first).to_be_visible()
    # The selected incident's detail and its map tooltip read like an address.
    await dispatcher.locator("#queue tr", has_text="SE1 7PB").click()
    await expect(dispatcher.locator("#detail")).to_contain_text("SE1 7PB · Bishop's · Lambeth")
    await set_view(dispatcher, *WARD_VIEW)
    await expect(dispatcher.locator("#map")).to_have_attribute(
        "data-incident-markers", str(len(WARD_MAP_CALLS))
    )
    await dispatcher.mouse.move(*await map_point(dispatcher, *SE1_7PB))
    tooltip = dispatcher.locator("#map .leaflet-tooltip", has_text="SE1 7PB · Bishop's · Lambeth")
    await expect(tooltip).to_be_visible()
    await dispatcher.wait_for_function("() => !window.__cadMap.tiles.isLoading()")
    await screenshot(dispatcher, "dispatcher-wards")
    keep_for_docs("dispatcher-wards")
    # Markers stay clickable over the boundaries, whichever canvas came first.
    waterloo = incidents_by_address["Waterloo Station"]
    await dispatcher.mouse.click(*await map_point(dispatcher, waterloo["lat"], waterloo["lng"]))
    await expect(dispatcher.locator("#detail")).to_contain_text(waterloo["ref"])
    # Zoomed out again: ward names go.
    await set_view(dispatcher, *SE1_7PB, 11)
    await expect(dispatcher.locator("#map .ward-label")).to_have_count(0)


async def test_go_to_box_jumps_to_a_postcode(open_page: PageFactory) -> None:
    dispatcher = await open_page("dispatcher")
    await wait_map_ready(dispatcher)
    box = dispatcher.locator("#map #map-goto")
    await box.focus()
    await dispatcher.keyboard.type("sw1a 2aa")
    await expect(dispatcher.locator("#map [role=option][data-label='SW1A 2AA']")).to_be_visible()
    await dispatcher.keyboard.press("Enter")
    await expect(dispatcher.locator("#map")).to_have_attribute("data-goto", "SW1A 2AA")
    # A function, not an expression: Playwright polls an expression with eval(), which the
    # consoles' CSP refuses.
    await dispatcher.wait_for_function(
        "() => { const m = window.__cadMap.map, c = m.getCenter();"
        " return Math.round(m.getZoom()) >= 16 && m.distance(c, [51.5035, -0.1276]) < 300; }"
    )
    await expect(dispatcher.locator("#map .pin-label")).to_contain_text("Westminster")
    await expect(dispatcher.locator("#map .ward-label").first).to_be_visible()
    # Esc in the open list closes only the list.
    await box.fill("")
    await dispatcher.keyboard.type("waterloo")
    await expect(dispatcher.locator("#map [role=listbox]")).to_be_visible()
    await dispatcher.keyboard.press("Escape")
    await expect(dispatcher.locator("#map [role=listbox]")).to_be_hidden()
    await expect(box).to_have_value("waterloo")


async def test_without_a_tile_url_the_map_stays_offline(
    open_page: PageFactory, server: Server, http: Any
) -> None:
    cfg = (await http.as_("handler", "GET", "/api/map-config")).json()
    assert cfg["tile_url"] is None
    elsewhere: list[str] = []
    page = await open_page()

    def note(req: Request) -> None:
        if not req.url.startswith((server.url, "data:", "blob:")):
            elsewhere.append(req.url)

    page.on("request", note)
    await sign_in(page, "dispatcher")
    await wait_map_ready(page)
    await expect(page.locator("#map")).to_have_attribute("data-base-map", "offline")
    await set_view(page, *SE1_7PB, 15)
    await expect(page.locator("#map .ward-label").first).to_be_visible()
    await expect(page.locator("#map .leaflet-tile")).to_have_count(0)
    await expect(page.locator("#map .leaflet-control-attribution")).to_have_count(0)
    assert elsewhere == []
