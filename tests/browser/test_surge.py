"""The dispatcher's board applies events instead of refetching, and keeps up under a surge.

(a) each kind of change reaches the board from its event alone: no list is fetched again;
(b) the surge: 2,000 open, 5 consoles, >= 20 calls/s for 60 s, a unit assigned every second;
    every assignment must reach every board (a frozen board fails here; the 1 s / 100 ms
    targets are bench figures, bench/surge.py, not timed assertions);
(c) 10,000 open: the board renders them all as a virtual list that scrolls to the end, with
    true counts, filters and the keyboard.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from bench import surge
from cad.config import Settings
from tests.browser.conftest import SCREENSHOTS, PageFactory, screenshot
from tests.conftest import ARTIFACTS, Server, call_body

pytestmark = pytest.mark.browser

LIVE = 2000  # ms: how soon a change must reach the board (functional, not a speed target)
LIST_REFETCH = re.compile(
    r"/api/(incidents/open|incidents/summary|incidents\?|units$|units\?|alarms)"
)


async def new_call(http: Any, lat: float, lng: float, type_code: str = "THEFT", **kw: Any) -> Any:
    r = await http.as_("handler", "POST", "/api/calls", json=call_body(type_code, lat, lng, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def row(page: Page, incident_id: int) -> Any:
    return page.locator(f"#queue tr[data-id='{incident_id}']")


async def test_board_applies_every_change_from_its_event(open_page: PageFactory, http: Any) -> None:
    first = (await new_call(http, 51.50, -0.10))["incident"]
    page = await open_page("dispatcher")
    await expect(row(page, first["id"])).to_be_visible()
    await page.wait_for_function("() => window.__cadDispatcher.stats.snapshots === 1")

    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    units = {u["callsign"]: u for u in (await http.as_("dispatcher", "GET", "/api/units")).json()}
    cw11 = units["CW11"]
    board_cw11 = page.locator("#units [data-unit='CW11']")

    # created: the row appears with its place and true counts
    a = (await new_call(http, 51.4613, -0.1156))["incident"]
    b = (await new_call(http, 51.47, -0.12, "BURGLARY"))["incident"]
    await expect(row(page, a["id"])).to_be_visible(timeout=LIVE)
    await expect(row(page, b["id"])).to_be_visible(timeout=LIVE)
    await expect(row(page, a["id"]).locator(".addr")).not_to_be_empty()
    await expect(page.locator("#queue-count")).to_have_text("3")
    await expect(page.locator("#grade-filter [data-count=E]")).to_have_text("3")

    # graded
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{a['id']}/grade",
        json={"grade": "R", "reason": "no loss"},
    )
    assert r.status_code == 200, r.text
    await expect(row(page, a["id"]).locator(".grade")).to_have_text("R", timeout=LIVE)
    await expect(page.locator("#grade-filter [data-count=R]")).to_have_text("1")

    # assigned, then the unit's statuses
    r = await http.as_(
        "dispatcher", "POST", f"/api/incidents/{b['id']}/assignments", json={"unit_id": cw11["id"]}
    )
    assert r.status_code == 201, r.text
    await expect(row(page, b["id"]).locator("td").nth(4)).to_have_text("CW11", timeout=LIVE)
    await expect(row(page, b["id"]).locator(".chip")).to_have_text("dispatched")
    await expect(board_cw11).to_have_attribute("data-status", "dispatched")
    await expect(page.locator("#queue-counts [data-count=dispatched]")).to_have_text("1")
    for status in ("en_route", "on_scene"):
        r = await http.as_(
            "dispatcher",
            "POST",
            f"/api/units/{cw11['id']}/status",
            json={"status": status, "incident_id": b["id"]},
        )
        assert r.status_code == 200, r.text
        await expect(board_cw11).to_have_attribute("data-status", status, timeout=LIVE)
    await expect(row(page, b["id"]).locator(".chip")).to_have_text("on scene", timeout=LIVE)

    # closed: the row leaves, the unit is free again
    r = await http.as_(
        "dispatcher", "POST", f"/api/incidents/{b['id']}/close", json={"result_code": "ATTENDED"}
    )
    assert r.status_code == 200, r.text
    await expect(row(page, b["id"])).to_have_count(0, timeout=LIVE)
    await expect(page.locator("#units [data-group=available] [data-unit='CW11']")).to_be_visible()
    await expect(row(page, a["id"])).to_be_visible()

    # merged: one row goes, the other carries both calls; a linked call makes three
    c = (await new_call(http, 51.52, -0.08))["incident"]
    d = (await new_call(http, 51.5201, -0.0801))["incident"]
    await expect(row(page, d["id"])).to_be_visible(timeout=LIVE)
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{d['id']}/merge",
        json={"into_id": c["id"], "reason": "same theft"},
    )
    assert r.status_code == 200, r.text
    await expect(row(page, d["id"])).to_have_count(0, timeout=LIVE)
    await expect(row(page, c["id"]).locator(".calls")).to_have_text("×2")
    await new_call(http, 51.52, -0.08, link_to=c["id"])
    await expect(row(page, c["id"]).locator(".calls")).to_have_text("×3", timeout=LIVE)

    open_now = len((await http.as_("dispatcher", "GET", "/api/incidents/open")).json()["incidents"])
    await expect(page.locator("#queue-count")).to_have_text(str(open_now))
    await expect(page.locator("#map")).to_have_attribute("data-incident-markers", str(open_now))
    refetches = [u for u in seen if LIST_REFETCH.search(u)]
    print(f"\nrequests the board made while 8 kinds of change arrived: {seen}")
    assert refetches == [], f"the board refetched lists instead of applying events: {refetches}"
    stats = await page.evaluate("() => ({...window.__cadDispatcher.stats})")
    assert stats["snapshots"] == 1, stats


@pytest.mark.timeout(900)
async def test_surge_every_assignment_reaches_every_board(
    browser: Browser, server: Server, settings: Settings
) -> None:
    surge.PAGE_ERRORS.clear()
    shot = SCREENSHOTS / "dispatcher-surge.png"
    res = await surge.measure_surge(
        browser,
        server.url,
        settings.database_url,
        consoles=5,
        open_before=2000,
        rate=20.0,
        duration_s=60.0,
        screenshot=shot,
    )
    surge.write_json(ARTIFACTS / "surge.json", res)
    summary = {k: v for k, v in res.items() if k != "board_stats"}
    print("\nsurge:", json.dumps(summary, indent=1))
    assert res["open_before"] >= 2000
    calls = res["calls"]
    assert calls["statuses"] == {"201": calls["sent"]}, calls
    assert calls["sent"] >= 20 * 60 and calls["sent_per_s"] >= 20, calls
    assert res["assignments"] >= 50, res
    assert res["assign_statuses"] == {"201": res["assignments"]}, res["assign_statuses"]
    # Every assignment on every board; a bound only a frozen board misses (counted from the
    # API's answer: on a shared machine the server's own queue is not the board's doing).
    assert res["missing"] == 0, res
    assert res["after_ack_max_ms"] < 10_000, res
    # No per-event refetch: a console's requests during the minute stay a handful.
    assert max(res["requests_per_console"]) < 30, res["requests_per_console"]
    for st in res["board_stats"]:
        assert st["snapshots"] == 1, st  # no resync: the stream kept up
        assert st["eventsApplied"] >= calls["sent"], st
    assert surge.PAGE_ERRORS == []
    assert shot.exists()


@pytest.mark.timeout(600)
async def test_board_of_10000_open_renders_scrolls_and_filters(
    browser: Browser, open_page: PageFactory, server: Server, settings: Settings, http: Any
) -> None:
    res = await surge.measure_render(browser, server.url, settings.database_url, 10_000)
    print("\nrender at 10,000 open:", json.dumps(res))
    assert res["open"] >= 10_000
    assert res["scroll"]["shown"] == res["open"]
    assert res["scroll"]["last_row_is_last"], res
    assert res["scroll"]["rows_in_dom"] < 100, res  # virtualised: the window, not the list
    assert res["http_requests"] <= 10, res  # the snapshot in pages of 2,000, not per row

    page = await open_page("dispatcher")
    await page.wait_for_function(
        "() => window.__cadDispatcher.stats.snapshots > 0 && window.__cadDispatcher.incidents.size >= 10000"
    )
    total = f"{res['open']:,}"
    await expect(page.locator("#queue-count")).to_have_text(total)
    await expect(page.locator("#grade-filter [data-count=E]")).to_have_text(total)
    await expect(page.locator("#queue-counts [data-count=pending]")).to_have_text(total)

    # Urgency order: an Immediate call (15 min target) goes to the top of 10,000.
    knife = (
        await new_call(
            http, 51.5155, -0.0922, "KNIFE", risk={"weapons": True, "offender_present": True}
        )
    )["incident"]
    first = page.locator("#queue tbody tr").first
    await expect(first).to_have_attribute("data-id", str(knife["id"]), timeout=LIVE)

    # Keyboard: down from the first row, Enter selects; the selection survives redraws.
    await first.focus()
    await page.keyboard.press("ArrowDown")
    second_id = await page.evaluate("() => window.__cadDispatcher.view()[1].id")
    await expect(page.locator("#queue tr:focus")).to_have_attribute("data-id", str(second_id))
    await page.keyboard.press("Enter")
    await expect(page.locator("#detail h3")).to_have_attribute("data-incident-id", str(second_id))
    await new_call(http, 51.49, -0.2)
    await expect(row(page, second_id)).to_have_class(re.compile("selected"))

    # Filters: grade, status, area; appointments not due today fold away.
    await page.locator("#grade-filter input[value=E]").uncheck()
    await expect(page.locator("#queue tbody tr")).to_have_count(1)  # the knife (I) alone
    await page.locator("#grade-filter input[value=E]").check()
    # The engine sends a unit to the knife: the only dispatched incident.
    await expect(row(page, knife["id"]).locator(".chip")).to_have_text("dispatched", timeout=5000)
    await page.select_option("#status-filter", "dispatched")
    await expect(page.locator("#queue tbody tr")).to_have_count(1)
    await expect(first).to_have_attribute("data-id", str(knife["id"]))
    await page.select_option("#status-filter", "")
    await page.wait_for_function("() => window.__cadDispatcher.view().length > 10")
    area = await page.evaluate("() => window.__cadDispatcher.view()[5].area_code")
    await page.select_option("#area-filter", area)
    in_area = await page.evaluate(
        "(a) => [...window.__cadDispatcher.incidents.values()].filter((i) => i.area_code === a).length",
        area,
    )
    await expect(page.locator("#queue-shown")).to_have_text(f"{in_area:,} shown")
    await page.select_option("#area-filter", "")
    await expect(page.locator("#queue-shown")).to_have_text("")  # unfiltered again
    fold = page.locator("#queue-fold")
    await expect(fold).to_contain_text("appointments later")
    later = int(re.sub(r"\D", "", (await fold.inner_text()).split("appointments")[0]))
    assert 0 < later <= res["open"] + 1  # the backlog and the theft: E, not due today
    await fold.click()
    await expect(fold).to_have_attribute("aria-expanded", "false")
    shown = await page.evaluate("() => window.__cadDispatcher.view().length")
    assert shown == res["open"] + 2 - later
    await expect(page.locator("#queue tbody tr")).to_have_count(shown)  # the knife alone
    await fold.click()
    await expect(fold).to_have_attribute("aria-expanded", "true")
    await screenshot(page, "dispatcher-10000")
