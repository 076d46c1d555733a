"""End-to-end console flows against a real `cad serve` (leader running auto-dispatch).

E-grade types (THEFT) are used where a person assigns, since the engine dispatches I and
S grades by itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import PHONE, PageFactory
from tests.conftest import call_body

pytestmark = pytest.mark.browser

LIVE = 2000  # ms: how soon a change must reach another console


async def unit_by_callsign(http: Any, callsign: str) -> dict[str, Any]:
    units = (await http.as_("dispatcher", "GET", "/api/units")).json()
    return next(u for u in units if u["callsign"] == callsign)


async def open_incident_count(http: Any) -> int:
    r = await http.as_("dispatcher", "GET", "/api/incidents?status=open&limit=1000")
    return len(r.json())


async def type_call(page: Page, lat: float, lng: float, type_filter: str) -> None:
    """Enter a call with the keyboard only, from the caller-name field."""
    # The catalogue loads with the page: typing a filter before it is in picks nothing.
    await expect(page.locator("#type option").first).to_be_attached()
    await page.locator("#caller-name").focus()
    await page.keyboard.type("Sam Caller")
    await page.keyboard.press("Tab")
    await page.keyboard.type("07700 900456")
    await page.keyboard.press("Tab")
    await page.keyboard.type(f"{lat:.5f}")
    await page.keyboard.press("Tab")
    await page.keyboard.type(f"{lng:.5f}")
    await page.locator("#type-filter").focus()
    await page.keyboard.type(type_filter)
    await page.keyboard.press("Enter")  # picks the first match, moves on to the risks
    await page.locator("#description").focus()
    await page.keyboard.type("bicycle taken from outside the shop")
    await expect(page.locator("#preview-body [data-grade]")).to_be_visible()
    await page.keyboard.press("Control+Enter")


async def test_call_to_dispatch_to_unit_and_back(open_page: PageFactory, http: Any) -> None:
    cw11 = await unit_by_callsign(http, "CW11")
    dispatcher = await open_page("dispatcher")
    handler = await open_page("handler")
    unit = await open_page("unit", viewport=PHONE)
    await expect(unit.locator("#no-job")).to_be_visible()

    # A place the server cannot resolve: the error sits next to the address field.
    await handler.locator("#address").fill("zzqx nowhere at all")
    await handler.locator("#type-filter").fill("theft")
    await handler.locator("#type-filter").press("Enter")
    await handler.keyboard.press("Control+Enter")
    await expect(handler.locator("[data-field='location.address'] .field-error")).to_contain_text(
        "could not resolve"
    )
    # Esc closes the place list if its search answered meanwhile; the next Esc resets.
    await handler.keyboard.press("Escape")
    if await handler.locator("#type-filter").input_value():
        await handler.keyboard.press("Escape")
    await expect(handler.locator("#type-filter")).to_have_value("")

    # Typed at CW11's own position, so CW11 is the nearest recommendation.
    await type_call(handler, cw11["lat"], cw11["lng"], "theft")
    ref_el = handler.locator("#result-ref")
    await expect(ref_el).to_be_visible()
    ref = await ref_el.inner_text()
    await expect(handler.locator("#result-body .grade")).to_have_text("E")

    row = dispatcher.locator(f"#queue tr[data-ref='{ref}']")
    await expect(row).to_be_visible(timeout=LIVE)
    await expect(dispatcher.locator("#map")).to_have_attribute(
        "data-incident-markers", str(await open_incident_count(http)), timeout=LIVE
    )

    await row.click()
    assign = dispatcher.locator("#recs tr[data-callsign='CW11'] button[data-assign]")
    await expect(assign).to_be_visible()
    await assign.click()
    await expect(row.locator("td").nth(4)).to_have_text("CW11", timeout=LIVE)

    await expect(unit.locator("#job-ref")).to_contain_text(ref, timeout=LIVE)
    await expect(unit.locator("#my-status")).to_have_text("dispatched")

    cw11_on_board = dispatcher.locator("#units [data-unit='CW11']")
    await unit.locator("button[data-status=en_route]").click()
    await expect(cw11_on_board).to_have_attribute("data-status", "en_route", timeout=LIVE)
    await unit.locator("button[data-status=on_scene]").click()
    await expect(row.locator(".chip")).to_have_text("on scene", timeout=LIVE)
    await expect(cw11_on_board).to_have_attribute("data-status", "on_scene")
    await unit.locator("button[data-status=available]").click()  # "Clear"
    # The last unit clearing closes the incident: it leaves the queue.
    await expect(row).to_have_count(0, timeout=LIVE)
    await expect(
        dispatcher.locator("#units [data-group=available] [data-unit='CW11']")
    ).to_be_visible()
    await expect(unit.locator("#no-job")).to_be_visible()
    await expect(unit.locator("button[data-status=unavailable]")).to_be_visible()


async def test_assign_conflict_offers_the_next_unit(open_page: PageFactory, http: Any) -> None:
    r = await http.as_("handler", "POST", "/api/calls", json=call_body("THEFT", 51.4613, -0.1156))
    incident = r.json()["incident"]
    other = await http.as_(
        "handler", "POST", "/api/calls", json=call_body("BURGLARY", 51.47, -0.12)
    )
    other_id = other.json()["incident"]["id"]

    dispatcher = await open_page("dispatcher")
    await dispatcher.locator(f"#queue tr[data-id='{incident['id']}']").click()
    first = dispatcher.locator("#recs button[data-first]")
    await expect(first).to_be_visible()
    taken_id = int(await first.get_attribute("data-assign") or 0)

    raced: list[int] = []

    async def someone_else_first(route: Route) -> None:
        # Another dispatcher takes the same unit a moment before this click lands.
        if raced:
            await route.continue_()
            return
        raced.append(taken_id)
        taken = await http.as_(
            "dispatcher",
            "POST",
            f"/api/incidents/{other_id}/assignments",
            json={"unit_id": taken_id},
        )
        assert taken.status_code == 201, taken.text
        await route.continue_()

    await dispatcher.route("**/api/incidents/*/assignments", someone_else_first)
    await first.click()
    box = dispatcher.locator("#conflict")
    await expect(box).to_contain_text("not available")
    nxt = box.locator("#assign-next")
    next_callsign = (await nxt.inner_text()).removeprefix("Assign ").strip()
    await nxt.click()
    await expect(dispatcher.locator("#detail")).to_contain_text(next_callsign)
    await expect(box).to_have_count(0)
    detail = (await http.as_("dispatcher", "GET", f"/api/incidents/{incident['id']}")).json()
    assert [a["callsign"] for a in detail["assignments"]] == [next_callsign]


async def test_supervisor_kpis_follow_calls(open_page: PageFactory, http: Any) -> None:
    page = await open_page("supervisor")
    e_count = page.locator("[data-grade=E] [data-kpi=count]")
    await expect(e_count).to_have_text("0")
    await expect(page.locator("[data-kpi=pending]")).to_have_text("0")
    for lat in (51.50, 51.52):
        r = await http.as_("handler", "POST", "/api/calls", json=call_body("THEFT", lat, -0.1))
        assert r.status_code == 201
    await expect(e_count).to_have_text("2", timeout=LIVE)
    await expect(page.locator("[data-kpi=pending]")).to_have_text("2")
    await expect(page.locator("#chart svg")).to_have_attribute("data-total", "2")
    await expect(page.locator("[data-kpi=answering]")).to_have_text("100%")


async def test_socket_loss_resumes_with_nothing_missed(open_page: PageFactory, http: Any) -> None:
    page = await open_page("dispatcher")
    r = await http.as_("handler", "POST", "/api/calls", json=call_body("THEFT", 51.50, -0.10))
    await expect(page.locator(f"#queue tr[data-id='{r.json()['incident']['id']}']")).to_be_visible()

    # Cut the network so the page cannot reconnect at once, then close its socket.
    await page.context.set_offline(True)
    await page.evaluate("window.__cadStream.ws.close()")
    await expect(page.locator("#conn")).not_to_have_text("live")
    created = []
    for i in range(3):
        r = await http.as_(
            "handler", "POST", "/api/calls", json=call_body("THEFT", 51.45 + i / 100, -0.05)
        )
        created.append(r.json()["incident"]["id"])
    await page.context.set_offline(False)

    await expect(page.locator("#conn")).to_have_text("live", timeout=5000)
    for incident_id in created:
        await expect(page.locator(f"#queue tr[data-id='{incident_id}']")).to_have_count(1)
    head = (await http.as_("dispatcher", "GET", "/api/events?since=0&limit=5000")).json()[
        "last_seq"
    ]
    stream = await page.evaluate(
        "({seq: window.__cadStream.lastSeq, url: window.__cadStream.lastUrl})"
    )
    assert stream["seq"] == head
    assert "since=" in stream["url"]  # resumed from its last seq, not from "now"
    await expect(page.locator("#queue tbody tr")).to_have_count(await open_incident_count(http))


async def test_handler_links_a_duplicate_with_one_key(open_page: PageFactory, http: Any) -> None:
    r = await http.as_("handler", "POST", "/api/calls", json=call_body("THEFT", 51.49, -0.14))
    first = r.json()["incident"]
    handler = await open_page("handler")
    await handler.locator("#lat").fill("51.49001")
    await handler.locator("#lng").fill("-0.14001")
    await handler.locator("#type-filter").fill("theft")
    await handler.locator("#type-filter").press("Enter")
    await expect(handler.locator("#dups button[data-link]")).to_have_attribute(
        "data-link", str(first["id"])
    )
    await handler.keyboard.press("Alt+1")
    await expect(handler.locator("#result-body")).to_contain_text(f"Linked to {first['ref']}")
    detail = (await http.as_("dispatcher", "GET", f"/api/incidents/{first['id']}")).json()
    assert [c["outcome"] for c in detail["calls"]] == ["incident_created", "attached"]
    assert await open_incident_count(http) == 1
