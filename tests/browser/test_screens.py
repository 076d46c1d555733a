"""A screenshot of each console with some live data, for people to look at."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PHONE, PageFactory, screenshot
from tests.conftest import call_body

pytestmark = pytest.mark.browser

CALLS = [
    ("KNIFE", 51.5155, -0.0922, {"weapons": True, "offender_present": True}),
    ("THEFT", 51.4613, -0.1156, {}),
    ("HATE_CRIME", 51.5462, -0.1030, {}),
    ("BURGLARY", 51.4500, -0.0200, {}),
    ("DRUGS", 51.5400, -0.2000, {}),
]


async def test_screenshots(open_page: PageFactory, http) -> None:
    refs = []
    for type_code, lat, lng, risk in CALLS:
        r = await http.as_(
            "handler", "POST", "/api/calls", json=call_body(type_code, lat, lng, risk=risk)
        )
        assert r.status_code == 201, r.text
        refs.append(r.json()["incident"])
    cw11 = next(
        u
        for u in (await http.as_("dispatcher", "GET", "/api/units")).json()
        if u["callsign"] == "CW11"
    )
    theft = refs[1]
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{theft['id']}/assignments",
        json={"unit_id": cw11["id"]},
    )
    assert r.status_code == 201, r.text

    handler = await open_page("handler")
    await handler.fill("#caller-name", "Jo Bloggs")
    await handler.fill("#caller-phone", "07700 900123")
    await handler.fill("#lat", "51.5155")
    await handler.fill("#lng", "-0.0922")
    await handler.fill("#type-filter", "knife")
    await handler.press("#type-filter", "Enter")
    await expect(handler.locator("#preview-body [data-grade]")).to_have_attribute("data-grade", "I")
    await screenshot(handler, "handler")

    dispatcher = await open_page("dispatcher")
    await expect(dispatcher.locator("#queue tbody tr")).to_have_count(len(CALLS))
    await dispatcher.locator(f"#queue tr[data-id='{refs[3]['id']}']").click()
    await expect(dispatcher.locator("#recs button[data-assign]").first).to_be_visible()
    await screenshot(dispatcher, "dispatcher")

    supervisor = await open_page("supervisor")
    await expect(supervisor.locator("[data-grade=I] [data-kpi=count]")).not_to_have_text("0")
    await screenshot(supervisor, "supervisor")

    unit = await open_page("unit", viewport=PHONE)
    await expect(unit.locator("#job-ref")).to_contain_text(theft["ref"])
    await screenshot(unit, "unit")
