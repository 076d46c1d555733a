"""The dispatcher's desk: a board of chosen boroughs, and a stream subscribed to just those.

Until the server filters the stream, "another borough's call does not appear" holds by
the page's own filtering; once it does, by both.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page, WebSocket, WebSocketRoute, expect

from tests.browser.conftest import PageFactory, screenshot, sign_in
from tests.conftest import call_body, wait_for

pytestmark = pytest.mark.browser

LIVE = 2000  # ms: how soon a change must reach the board
LAMBETH = (51.4613, -0.1156)  # Brixton
CAMDEN = (51.5390, -0.1426)  # Camden Town
EVENTS_SOCKET = re.compile(r"/ws/events(\?|$)")


async def borough_codes(http: Any) -> dict[str, str]:
    fc = (await http.as_("dispatcher", "GET", "/api/areas?level=borough")).json()
    return {f["properties"]["name"]: f["properties"]["code"] for f in fc["features"]}


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def record_call(http: Any, where: tuple[float, float], area_code: str) -> dict[str, Any]:
    r = await http.as_("handler", "POST", "/api/calls", json=call_body("THEFT", *where))
    assert r.status_code == 201, r.text
    incident = r.json()["incident"]
    assert incident["area_code"] == area_code, incident
    return incident


async def board_callsigns(page: Page) -> set[str]:
    return set(
        await page.locator("#units [data-unit]").evaluate_all(
            "(els) => els.map((e) => e.dataset.unit)"
        )
    )


async def test_a_desk_of_one_borough(open_page: PageFactory, http: Any) -> None:
    codes = await borough_codes(http)
    assert len(codes) == 33
    lambeth, camden = codes["Lambeth"], codes["Camden"]
    all_units = (await http.as_("dispatcher", "GET", "/api/units")).json()
    lambeth_units = {u["callsign"] for u in all_units if u["area_code"] in (lambeth, None)}
    assert 0 < len(lambeth_units) < len(all_units)

    page = await open_page()
    sockets: list[str] = []

    def opened(ws: WebSocket) -> None:
        if "/ws/events" in ws.url:
            sockets.append(ws.url)

    page.on("websocket", opened)
    await sign_in(page, "dispatcher")
    desk = page.locator("#desk")
    await expect(desk).to_have_text("Desk: All London ▾")
    assert sockets and "areas" not in query(sockets[-1])
    assert query(sockets[-1])["batch"] == ["1"]
    await expect(page.locator("#units [data-unit]")).to_have_count(len(all_units))

    # Keyboard only: open, type a borough, Enter ticks it, Enter on the empty search applies.
    await desk.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#desk-q")).to_be_focused()
    await expect(page.locator("#desk-list label[data-code]")).to_have_count(33)
    await page.keyboard.type("lamb")
    await expect(page.locator("#desk-list label[data-code]:visible")).to_have_count(1)
    await page.keyboard.press("Enter")
    await expect(page.locator(f"#desk-list input[value='{lambeth}']")).to_be_checked()
    await expect(page.locator("#desk-all")).not_to_be_checked()
    await page.keyboard.press("Enter")
    await expect(page.locator("#desk-pop")).to_be_hidden()
    await expect(desk).to_have_text("Desk: Lambeth ▾")
    await expect(desk).to_have_attribute("data-areas", lambeth)
    # Resubscribed with the desk, without a page load.
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert query(sockets[-1]).get("areas") == [lambeth], sockets
    assert "since" not in query(sockets[-1])  # afresh: a new filter has no seq to resume
    await expect(page.locator("#map")).to_have_attribute("data-desk", lambeth)
    await expect(page.locator("#units [data-unit]")).to_have_count(len(lambeth_units))
    assert await board_callsigns(page) == lambeth_units

    # Another borough's call first, then the desk's own: the stream is in seq order, so
    # once the second is on the board the first has been and gone.
    other = await record_call(http, CAMDEN, camden)
    mine = await record_call(http, LAMBETH, lambeth)
    await expect(page.locator(f"#queue tr[data-id='{mine['id']}']")).to_be_visible(timeout=LIVE)
    await expect(page.locator(f"#queue tr[data-id='{other['id']}']")).to_have_count(0)
    await expect(page.locator("#queue tbody tr")).to_have_count(1)
    await expect(page.locator("#map")).to_have_attribute("data-incident-markers", "1")
    assert await page.evaluate(f"window.__cadDispatcher.incidents.has({other['id']})") is False
    await screenshot(page, "desk")
    await page.screenshot(path="/tmp/desk.png")

    # The choice is this user's on this workstation: it survives a reload.
    before = len(sockets)
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(desk).to_have_attribute("data-areas", lambeth)
    await expect(desk).to_contain_text("Lambeth")
    assert len(sockets) > before and query(sockets[-1]).get("areas") == [lambeth]
    await expect(page.locator(f"#queue tr[data-id='{mine['id']}']")).to_be_visible()
    await expect(page.locator("#queue tbody tr")).to_have_count(1)
    await expect(page.locator("#units [data-unit]")).to_have_count(len(lambeth_units))

    # The open list, for a look at it.
    await desk.click()
    await expect(page.locator("#desk-pop")).to_be_visible()
    await page.screenshot(path="/tmp/desk-open.png")

    # All London: both calls, every unit, and a stream of everything.
    await page.locator("label.desk-all").click()
    await expect(page.locator(f"#desk-list input[value='{lambeth}']")).not_to_be_checked()
    await page.locator("#desk-apply").click()
    await expect(desk).to_have_text("Desk: All London ▾")
    await expect(page.locator(f"#queue tr[data-id='{other['id']}']")).to_be_visible()
    await expect(page.locator(f"#queue tr[data-id='{mine['id']}']")).to_be_visible()
    await expect(page.locator("#units [data-unit]")).to_have_count(len(all_units))
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert "areas" not in query(sockets[-1])
    saved = await page.evaluate("localStorage.getItem('cad.dispatcher.desk.dispatcher')")
    assert json.loads(saved)["areas"] == []


async def test_desk_of_several_and_escape(open_page: PageFactory, http: Any) -> None:
    codes = await borough_codes(http)
    page = await open_page("dispatcher")
    desk = page.locator("#desk")
    await desk.click()
    for name in ("Southwark", "Lambeth", "Camden", "Hackney"):
        await page.locator("#desk-q").fill(name[:4].lower())
        await page.locator("#desk-q").press("Enter")
    await expect(page.locator("#desk-picked")).to_have_text("4 boroughs")
    await page.locator("#desk-apply").click()
    await expect(desk).to_have_text("Desk: Camden, Hackney, Lambeth +1 ▾")
    await expect(desk).to_have_attribute(
        "title", "Desk: Camden, Hackney, Lambeth, Southwark. Click to change."
    )
    want = sorted(codes[n] for n in ("Southwark", "Lambeth", "Camden", "Hackney"))
    filt = await page.evaluate("window.__cadStream.filter")
    assert filt == {"areas": want, "grades": None, "kinds": None}
    # Esc leaves the desk as it was.
    await desk.click()
    await page.locator(f"#desk-list input[value='{codes['Camden']}']").uncheck()
    await page.keyboard.press("Escape")
    await expect(page.locator("#desk-pop")).to_be_hidden()
    await expect(desk).to_be_focused()
    await expect(desk).to_have_attribute("data-areas", ",".join(want))


async def test_batch_frames_each_event_once_in_order(open_page: PageFactory, http: Any) -> None:
    """The server's events arrive as batch frames, each batch also repeating the event
    before it: every event reaches the board once, in order, and the seq follows."""
    page = await open_page()
    last: list[dict[str, Any]] = []
    frames: list[int] = []

    async def batching(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            frame = json.loads(text)
            # The server may batch already (batch=1): what it sent, one event at a time.
            events = frame["events"] if frame.get("type") == "batch" else [frame]
            if not events or "seq" not in events[0]:  # hello, positions
                ws.send(text)
                return
            for ev in events:
                frames.append(ev["seq"])
                # Alternately a single event and a batch that repeats the one before it.
                if len(frames) % 2:
                    ws.send(json.dumps(ev))
                else:
                    ws.send(json.dumps({"type": "batch", "events": [*last, ev]}))
                last[:] = [ev]

        server.on_message(from_server)

    await page.route_web_socket(EVENTS_SOCKET, batching)
    await sign_in(page, "dispatcher")
    created = []
    for i in range(4):
        r = await http.as_(
            "handler", "POST", "/api/calls", json=call_body("THEFT", 51.45 + i / 100, -0.1)
        )
        created.append(r.json()["incident"]["id"])
    for incident_id in created:
        await expect(page.locator(f"#queue tr[data-id='{incident_id}']")).to_have_count(1)
    await expect(page.locator("#queue tbody tr")).to_have_count(len(created))

    async def caught_up() -> dict[str, int] | None:
        got = await page.evaluate(
            "({seq: window.__cadStream.lastSeq, n: window.__cadStream.received})"
        )
        return got if frames and got["seq"] == frames[-1] else None

    stream = await wait_for(caught_up)
    assert frames == sorted(set(frames))  # the server's own order, each event once
    assert stream["n"] == len(frames)  # the repeats were dropped


async def test_refused_filter_carries_on_unfiltered(open_page: PageFactory, http: Any) -> None:
    """A filter the server refuses (close 4422) falls back to the whole stream: the desk
    still shows only its boroughs, and nothing is missed."""
    codes = await borough_codes(http)
    page = await open_page()
    urls: list[str] = []

    async def refuse_areas(ws: WebSocketRoute) -> None:
        urls.append(ws.url)
        if "areas" in query(ws.url):
            await ws.close(code=4422, reason="areas: unknown borough")
            return
        ws.connect_to_server()

    await page.route_web_socket(EVENTS_SOCKET, refuse_areas)
    await page.add_init_script(
        "localStorage.setItem('cad.dispatcher.desk.dispatcher',"
        f" JSON.stringify({{areas: ['{codes['Lambeth']}'], names: {{}}}}))"
    )
    await sign_in(page, "dispatcher")
    await expect(page.locator("#desk")).to_have_text("Desk: Lambeth ▾")
    assert "areas" in query(urls[0]) and "areas" not in query(urls[-1])
    other = await record_call(http, CAMDEN, codes["Camden"])
    mine = await record_call(http, LAMBETH, codes["Lambeth"])
    await expect(page.locator(f"#queue tr[data-id='{mine['id']}']")).to_be_visible(timeout=LIVE)
    await expect(page.locator(f"#queue tr[data-id='{other['id']}']")).to_have_count(0)
