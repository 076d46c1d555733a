"""Retrieval in the consoles: history and warning markers while a call is taken, the
marker banner on the unit's phone and in the dispatcher's detail, and the search page.

Real data: SE1 7PB (Bishop's ward, Lambeth) from the postcodes the server ships. Test data
goes in through the API as the people who would enter it: markers as a supervisor, calls
as a handler, assignments as a dispatcher.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE, PageFactory, box_of, screenshot
from tests.browser.test_place import keep_for_docs
from tests.conftest import call_body

pytestmark = pytest.mark.browser

LIVE = 2000  # ms: how soon a change must reach another console
SE1_7PB = (51.50250, -0.11941)  # the postcode's centroid
PHONE_NO = "07700 900123"
MARKER_TEXT = "Licensed shotgun holder in flat 3: ask for it to be secured before entry"
EARLIER = "window smashed next door, a crossbow seen on the balcony"


async def add_marker(http: Any) -> dict[str, Any]:
    r = await http.as_(
        "supervisor",
        "POST",
        "/api/markers",
        json={
            "category": "firearms",
            "text": MARKER_TEXT,
            "lat": SE1_7PB[0],
            "lng": SE1_7PB[1],
            "radius_m": 40,
            "review_at": "2027-03-01",
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def add_call(
    http: Any,
    incident_type: str,
    description: str,
    name: str = "Jane Smith",
    phone: str = PHONE_NO,
) -> dict[str, Any]:
    body = call_body(incident_type, *SE1_7PB, description=description)
    body["caller"] = {"name": name, "phone": phone}
    r = await http.as_("handler", "POST", "/api/calls", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json()["incident"])


async def close(http: Any, incident_id: int, result_code: str, remarks: str) -> None:
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident_id}/close",
        json={"result_code": result_code, "remarks": remarks},
    )
    assert r.status_code == 200, r.text


async def an_earlier_incident(http: Any) -> dict[str, Any]:
    """Criminal damage at SE1 7PB reported from Jane Smith's phone, closed with advice. An
    E grade: the engine leaves it alone (I and S grades are dispatched by themselves)."""
    inc = await add_call(http, "CRIMINAL_DAMAGE", EARLIER)
    await close(http, inc["id"], "ADVICE_GIVEN", "words of advice to both parties")
    return inc


async def available(http: Any, callsign: str) -> dict[str, Any]:
    units = (await http.as_("dispatcher", "GET", "/api/units")).json()
    unit = next(u for u in units if u["callsign"] == callsign)
    if unit["status"] != "available":
        r = await http.as_(
            "dispatcher", "POST", f"/api/units/{unit['id']}/status", json={"status": "available"}
        )
        assert r.status_code == 200, r.text
    return dict(unit)


async def pick_postcode(page: Page, postcode: str) -> None:
    await page.locator("#address").focus()
    await page.keyboard.type(postcode.lower())
    option = page.locator(f"[role=listbox] li[role=option][data-label='{postcode}']")
    await expect(option).to_be_visible()
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("[role=listbox] li[aria-selected=true]")).to_have_attribute(
        "data-label", postcode
    )
    await page.keyboard.press("Enter")
    await expect(page.locator("#address")).to_have_value(postcode)


async def test_handler_sees_history_and_markers_before_submitting(
    open_page: PageFactory, http: Any
) -> None:
    marker = await add_marker(http)
    open_one = await add_call(
        http, "THEFT", "phone snatched", name="Ali Other", phone="07700 900777"
    )
    earlier = await an_earlier_incident(http)  # the newest: first in the history
    handler = await open_page("handler", viewport=DESKTOP)
    await expect(handler.locator("#type option").first).to_be_attached()

    await pick_postcode(handler, "SE1 7PB")
    await expect(handler.locator("#caller-name")).to_be_focused()
    await handler.keyboard.press("Tab")  # the name stays empty: the caller has not said
    await handler.keyboard.type(PHONE_NO)
    await handler.locator("#type-filter").focus()
    await handler.keyboard.type("theft")
    await handler.keyboard.press("Enter")
    await expect(handler.locator("#preview-body [data-grade]")).to_be_visible()

    # History here and from this phone, beside the duplicates list.
    history = handler.locator("#history")
    await expect(handler.locator("#history-line")).to_contain_text("previous incident")
    await expect(handler.locator("#caller-line")).to_contain_text("this phone")
    item = history.locator(f"button[data-open-incident='{earlier['id']}']").first
    await expect(item).to_contain_text(earlier["ref"])
    await expect(item).to_contain_text("Criminal damage")
    await expect(item).to_contain_text("ADVICE GIVEN")
    await expect(item.locator("kbd")).to_have_text("Alt+Shift+1")
    await expect(handler.locator(f"#dups button[data-link='{open_one['id']}']")).to_be_visible()
    dups = await box_of(handler.locator("#dups"))
    hist = await box_of(history)
    assert hist["x"] >= dups["x"] + dups["width"], "history sits beside the duplicates"

    # The marker: a banner above the submit button, before anything is submitted.
    banner = handler.locator("#marker-banner")
    await expect(banner).to_be_visible()
    entry = banner.locator(f"li[data-marker-id='{marker['id']}']")
    await expect(entry).to_contain_text("Firearms")
    await expect(entry).to_contain_text(MARKER_TEXT)
    await expect(entry).to_contain_text("within 40 m")
    banner_box = await box_of(banner)
    submit_box = await box_of(handler.locator("#submit"))
    assert banner_box["y"] + banner_box["height"] <= submit_box["y"]

    # The name last given from this phone is offered, never filled.
    await expect(handler.locator("#caller-offer")).to_contain_text("Last gave name: Jane Smith")
    await expect(handler.locator("#caller-name")).to_have_value("")
    await screenshot(handler, "handler-history")
    keep_for_docs("handler-history")

    # One key opens the earlier incident over the form; Esc closes only that.
    await handler.keyboard.press("Alt+Shift+Digit1")
    dialog = handler.locator("#inc-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".inc-ref")).to_have_text(earlier["ref"])
    await expect(dialog.locator(".timeline")).to_contain_text("Closed ADVICE_GIVEN")
    await expect(dialog).to_contain_text(EARLIER)
    await handler.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(handler.locator("#address")).to_have_value("SE1 7PB")

    await handler.keyboard.press("Alt+n")
    await expect(handler.locator("#caller-name")).to_have_value("Jane Smith")
    await expect(handler.locator("#caller-offer")).to_be_empty()
    await handler.keyboard.press("Control+Enter")
    ref = await handler.locator("#result-ref").inner_text()
    await expect(handler.locator("#marker-banner")).to_have_count(0)  # a new call starts clean

    found = (await http.as_("dispatcher", "GET", f"/api/search?q={ref}")).json()
    new_id = found["reference"]["id"]
    detail = (await http.as_("dispatcher", "GET", f"/api/incidents/{new_id}")).json()
    assert [m["id"] for m in detail["markers"]] == [marker["id"]]
    assert detail["calls"][0]["caller_name"] == "Jane Smith"


async def test_unit_and_dispatcher_see_the_marker_of_the_job(
    open_page: PageFactory, http: Any
) -> None:
    marker = await add_marker(http)
    await an_earlier_incident(http)
    job = await add_call(http, "THEFT", "bicycle taken from the hallway", name="Sam Other")
    cw11 = await available(http, "CW11")
    unit = await open_page("unit", viewport=PHONE)
    await expect(unit.locator("#no-job")).to_be_visible()
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{job['id']}/assignments",
        json={"unit_id": cw11["id"]},
    )
    assert r.status_code == 201, r.text

    await expect(unit.locator("#job-ref")).to_contain_text(job["ref"], timeout=LIVE)
    banner = unit.locator("#job-markers")
    await expect(banner).to_be_visible()
    await expect(banner.locator(f"li[data-marker-id='{marker['id']}']")).to_contain_text("Firearms")
    await expect(banner).to_contain_text(MARKER_TEXT)
    await expect(banner).to_contain_text("officer safety")
    # The first thing on the job card, on screen without scrolling, in large type.
    first = await unit.locator("#job > *").first.get_attribute("id")
    assert first == "job-markers"
    box = await box_of(banner)
    assert box["y"] + box["height"] <= PHONE["height"]
    size = await banner.locator(".mb-cat").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 20
    await expect(unit.locator("#job-history")).to_contain_text("previous incident")
    await screenshot(unit, "unit-marker")
    keep_for_docs("unit-marker")

    dispatcher = await open_page("dispatcher")
    await dispatcher.locator(f"#queue tr[data-ref='{job['ref']}']").click()
    await expect(dispatcher.locator("#detail-markers")).to_contain_text(MARKER_TEXT)
    await expect(dispatcher.locator("#detail-history")).to_contain_text("previous incident")


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


async def test_search_finds_by_reference_and_text_and_shows_the_record(
    open_page: PageFactory, http: Any
) -> None:
    earlier = await an_earlier_incident(http)
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{earlier['id']}/remarks",
        json={"text": "occupier known to keep the crossbow indoors"},
    )
    assert r.status_code == 201, r.text
    other = await add_call(http, "THEFT", "bicycle taken from the hallway", phone="07700 900999")

    dispatcher = await open_page("dispatcher")
    # The top bar's box opens the search page in its own tab; a reference goes straight
    # to its incident.
    loose_ref = earlier["ref"].replace("CAD ", "").lower()
    await dispatcher.locator("#topbar-q").fill(loose_ref)
    async with dispatcher.context.expect_page() as opened:
        await dispatcher.locator("#topbar-q").press("Enter")
    page = await opened.value
    await page.wait_for_url("**/console/search/**")
    panel = page.locator("#panel")
    await expect(panel.locator(".inc-ref")).to_have_text(earlier["ref"])
    await expect(page.locator("#q")).to_have_value(loose_ref)
    assert query_of(page)["id"] == [str(earlier["id"])]
    await expect(page.locator("a.result").first).to_have_attribute("data-matched", "reference")

    # Text: the words that matched are marked, each part as text.
    await page.locator("#q").fill("crossbow")
    await page.locator("#q").press("Enter")
    await expect(panel).to_be_hidden()
    await expect(page.locator("#q")).to_be_focused()  # typing on is the next thing
    result = page.locator(f"a.result[data-id='{earlier['id']}']")
    await expect(result).to_be_visible()
    await expect(page.locator(f"a.result[data-id='{other['id']}']")).to_have_count(0)
    await expect(result.locator(".r-ref")).to_have_text(earlier["ref"])
    await expect(result.locator(".r-snippet mark").first).to_have_text(re.compile("crossbow", re.I))
    await expect(result.locator(".grade")).to_have_text(earlier["grade"])
    await expect(result.locator(".r-where")).to_contain_text("Lambeth")
    await expect(result).to_contain_text("closed")
    assert query_of(page)["q"] == ["crossbow"]

    # Enter on a focused result opens its record with the timeline.
    await page.locator("#q").press("ArrowDown")
    await expect(result).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(panel.locator(".inc-ref")).to_have_text(earlier["ref"])
    timeline = panel.locator(".timeline")
    await expect(timeline.locator("li[data-type='incident.created']")).to_have_count(1)
    await expect(timeline).to_contain_text("occupier known to keep the crossbow indoors")
    await expect(timeline).to_contain_text("Closed ADVICE_GIVEN")
    await expect(panel.locator(".inc-calls")).to_contain_text("Jane Smith")
    assert query_of(page)["id"] == [str(earlier["id"])]
    await screenshot(page, "search")
    keep_for_docs("search")

    # A filter narrows it and goes into the URL; Back returns to the search before.
    await page.locator("#f-type").select_option("THEFT")
    await page.locator("#q").press("Enter")
    await expect(page.locator("#results-empty")).to_have_text("Nothing found.")
    assert query_of(page)["type"] == ["THEFT"]
    await page.go_back()
    await expect(page.locator("#f-type")).to_have_value("")
    await expect(result).to_be_visible()

    # The link reloads as it was: the query, the results and the open incident.
    await page.reload()
    await expect(page.locator("#q")).to_have_value("crossbow")
    await expect(panel.locator(".inc-ref")).to_have_text(earlier["ref"])
    await expect(page.locator(f"a.result[data-id='{earlier['id']}']")).to_have_attribute(
        "aria-current", "true"
    )

    # Days on the desk's clock become a half-open range of instants: yesterday to today
    # (included) holds what was just recorded.
    yesterday, today = await page.evaluate(
        """() => { const f = (d) => d.toLocaleDateString("sv-SE");
            const t = new Date(); const y = new Date(t); y.setDate(t.getDate() - 1);
            return [f(y), f(t)]; }"""
    )
    await page.locator("#f-from").fill(yesterday)
    await page.locator("#f-to").fill(today)
    await page.locator("#q").press("Enter")
    await expect(page.locator("#results a.result")).to_have_count(1)
    await expect(page.locator(f"a.result[data-id='{earlier['id']}']")).to_be_visible()
    sent = query_of(page)
    assert sent["from"][0].endswith("Z") and sent["to"][0].endswith("Z")
    assert sent["from"][0] < sent["to"][0]
