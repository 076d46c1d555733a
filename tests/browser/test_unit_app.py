"""The unit app (issue 16): installable, opens with no signal, keeps every press until the
server has it, and rings for a new job.

The unit user is `unit` (CW11). Jobs are E-grade thefts, which auto-dispatch leaves to a
person, assigned through the API as the dispatcher.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import PHONE, PageFactory, screenshot
from tests.conftest import Server, call_body, wait_for

pytestmark = pytest.mark.browser

LIVE = 2000  # ms: how soon a change must reach another console
RESEND = 8000  # ms: the outbox's first retry after a failure is 1 s; allow for a slow box


async def cw11(http: Any) -> dict[str, Any]:
    units = (await http.as_("dispatcher", "GET", "/api/units")).json()
    return next(u for u in units if u["callsign"] == "CW11")


async def job_for_cw11(http: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A theft at CW11's position, assigned to CW11: (unit, incident)."""
    unit = await cw11(http)
    r = await http.as_(
        "handler", "POST", "/api/calls", json=call_body("THEFT", unit["lat"], unit["lng"])
    )
    assert r.status_code == 201, r.text
    incident = r.json()["incident"]
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident['id']}/assignments",
        json={"unit_id": unit["id"]},
    )
    assert r.status_code == 201, r.text
    return unit, incident


async def detail(http: Any, incident_id: int) -> dict[str, Any]:
    r = await http.as_("dispatcher", "GET", f"/api/incidents/{incident_id}")
    assert r.status_code == 200, r.text
    return r.json()


def assignment_of(d: dict[str, Any], unit_id: int) -> dict[str, Any]:
    return next(a for a in d["assignments"] if a["unit_id"] == unit_id)


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


async def acknowledge_alert(unit: Page, http: Any, incident_id: int, unit_id: int) -> None:
    await unit.locator("#ack-job").click()
    await expect(unit.locator("#job-alert")).to_be_hidden()

    async def acknowledged() -> bool:
        a = assignment_of(await detail(http, incident_id), unit_id)
        return a["acknowledged_at"] is not None

    await wait_for(acknowledged)
    await expect(unit.locator("#outbox")).to_be_hidden()


async def test_installable_and_opens_with_no_signal(open_page: PageFactory, server: Server) -> None:
    unit = await open_page("unit", viewport=PHONE)
    href = await unit.locator("link[rel=manifest]").get_attribute("href")
    assert href == "/console/unit/manifest.webmanifest"
    r = await unit.request.get(href)
    assert r.ok and "json" in r.headers["content-type"], r.headers
    manifest = await r.json()
    assert manifest["start_url"] == "/console/unit/"
    assert manifest["scope"] == "/console/unit/"
    assert manifest["display"] == "standalone"
    assert manifest["name"] and manifest["short_name"]
    assert manifest["theme_color"].startswith("#") and manifest["background_color"].startswith("#")
    sizes = set()
    for icon in manifest["icons"]:
        got = await unit.request.get(icon["src"])
        assert got.ok and got.headers["content-type"] == "image/png", icon
        png = await got.body()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert icon["sizes"] == f"{width}x{height}"
        sizes.add(width)
    assert {192, 512} <= sizes

    scope = await unit.evaluate(
        "navigator.serviceWorker.ready.then((r) => new URL(r.scope).pathname)"
    )
    assert scope == "/console/unit/"
    await unit.context.set_offline(True)
    server.stop()  # no network at all: what loads comes from the device
    res = await unit.reload()
    assert res is not None and res.from_service_worker, "the page did not come from the worker"
    await expect(unit.locator("#callsign")).to_have_text("CW11")  # the last snapshot
    await expect(unit.locator("#conn")).to_have_attribute("data-state", "offline")
    await expect(unit.locator("#emergency-btn")).to_be_visible()
    # The API is never answered from the cache.
    api = await unit.evaluate("fetch('/api/units/me').then(() => 'answered', () => 'failed')")
    assert api == "failed"


async def test_presses_made_offline_arrive_once_in_order(open_page: PageFactory, http: Any) -> None:
    unit_row, job = await job_for_cw11(http)
    unit = await open_page("unit", viewport=PHONE)
    # A new job: the whole screen until acknowledged.
    alert = unit.locator("#job-alert")
    await expect(alert).to_be_visible()
    await expect(alert.locator("#ja-ref")).to_contain_text(job["ref"])
    await expect(alert.locator("#ja-type")).to_have_text("Theft")
    await expect(unit.locator("#buttons button")).to_have_count(0)
    assert await unit.evaluate("window.__cadSound.job") >= 1  # it rang
    await screenshot(unit, "unit-job-alert")
    await acknowledge_alert(unit, http, job["id"], unit_row["id"])
    assert assignment_of(await detail(http, job["id"]), unit_row["id"])["en_route_at"] is None

    await unit.context.set_offline(True)
    await unit.locator("button[data-status=en_route]").click()
    await unit.locator("button[data-status=on_scene]").click()
    waiting = unit.locator("#outbox-list li")
    await expect(waiting).to_have_count(2)
    await expect(waiting.nth(0)).to_contain_text("En route")
    await expect(waiting.nth(1)).to_contain_text("On scene")
    await expect(unit.locator("#outbox-state")).to_contain_text("No signal")
    await expect(unit.locator("#my-status")).to_have_text("on scene")  # as the officer left it
    pressed = [at(await li.get_attribute("data-pressed-at") or "") for li in await waiting.all()]
    await screenshot(unit, "unit-offline-queue")
    a = assignment_of(await detail(http, job["id"]), unit_row["id"])
    assert a["en_route_at"] is None, "sent while offline?"

    # Back online, the answer to the first send is lost: it goes again with the same key.
    lost: list[str] = []

    async def lose_first_answer(route: Route) -> None:
        res = await route.fetch()
        if not lost:
            lost.append(route.request.headers.get("idempotency-key", ""))
            await route.abort()
        else:
            await route.fulfill(response=res)

    await unit.route("**/api/units/*/status", lose_first_answer)
    await unit.context.set_offline(False)
    await expect(unit.locator("#outbox")).to_be_hidden(timeout=RESEND)
    assert lost and lost[0], "no Idempotency-Key on the queued press"

    d = await detail(http, job["id"])
    a = assignment_of(d, unit_row["id"])
    assert abs((at(a["en_route_at"]) - pressed[0]).total_seconds()) < 1
    assert abs((at(a["on_scene_at"]) - pressed[1]).total_seconds()) < 1
    moves = [
        e["data"]["to"]
        for e in d["timeline"]
        if e["type"] == "unit.status" and e["unit_id"] == unit_row["id"]
    ]
    assert moves == ["en_route", "on_scene"]  # once each, in the order pressed
    await expect(unit.locator("#my-status")).to_have_text("on scene")


async def test_a_queued_press_the_server_refuses_is_shown(
    open_page: PageFactory, http: Any
) -> None:
    unit_row, job = await job_for_cw11(http)
    unit = await open_page("unit", viewport=PHONE)
    await acknowledge_alert(unit, http, job["id"], unit_row["id"])
    await unit.context.set_offline(True)
    await unit.locator("button[data-status=en_route]").click()
    await expect(unit.locator("#outbox-list li")).to_have_count(1)
    # Meanwhile control takes the unit off the job.
    r = await http.as_(
        "dispatcher", "POST", f"/api/units/{unit_row['id']}/status", json={"status": "available"}
    )
    assert r.status_code == 200, r.text
    await unit.context.set_offline(False)
    refused = unit.locator("#refused-list li")
    await expect(refused).to_have_count(1, timeout=RESEND)
    await expect(refused).to_contain_text("En route")
    await expect(refused.locator(".reason")).to_have_text(
        f"unit CW11 is not assigned to incident {job['id']}"
    )
    await expect(unit.locator("#outbox-list li")).to_have_count(0)
    await expect(unit.locator("#no-job")).to_be_visible()  # read again: what is true now
    await refused.locator("button").click()
    await expect(unit.locator("#outbox")).to_be_hidden()


async def test_job_view_shows_the_other_units_and_a_route(
    open_page: PageFactory, http: Any
) -> None:
    unit_row, job = await job_for_cw11(http)
    units = (await http.as_("dispatcher", "GET", "/api/units?status=available")).json()
    other = next(u for u in units if u["id"] != unit_row["id"])
    unit = await open_page("unit", viewport=PHONE)
    await acknowledge_alert(unit, http, job["id"], unit_row["id"])
    await expect(unit.locator("#job-units")).to_contain_text("No other unit sent")
    r = await http.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{job['id']}/assignments",
        json={"unit_id": other["id"]},
    )
    assert r.status_code == 201, r.text
    row = unit.locator(f"#job-units li[data-callsign='{other['callsign']}']")
    await expect(row).to_have_attribute("data-status", "dispatched", timeout=LIVE)
    r = await http.as_(
        "dispatcher", "POST", f"/api/units/{other['id']}/status", json={"status": "en_route"}
    )
    assert r.status_code == 200, r.text
    await expect(row).to_have_attribute("data-status", "en_route", timeout=LIVE)
    nav = unit.locator("#job-nav")
    href = await nav.get_attribute("href") or ""
    assert href.startswith("https://www.google.com/maps/dir/?api=1&destination=")
    lat, lng = href.split("destination=")[1].replace("%2C", ",").split(",")
    assert abs(float(lat) - unit_row["lat"]) < 1e-5 and abs(float(lng) - unit_row["lng"]) < 1e-5
    assert await nav.get_attribute("target") == "_blank"
    assert await nav.get_attribute("rel") == "noopener"
    # A remark from the job goes on the incident's record.
    await unit.fill("#remark-text", "suspect seen running towards the station")
    await unit.press("#remark-text", "Enter")

    async def remarks() -> list[str]:
        d = await detail(http, job["id"])
        return [e["data"].get("text") for e in d["timeline"] if e["type"] == "incident.remark"]

    assert await wait_for(remarks) == ["suspect seen running towards the station"]
    await expect(unit.locator("#outbox")).to_be_hidden()


async def test_a_position_taken_offline_is_sent_when_the_signal_returns(
    open_page: PageFactory, http: Any, server: Server
) -> None:
    unit = await open_page("unit", viewport=PHONE)
    await unit.context.grant_permissions(["geolocation"], origin=server.url)
    await unit.context.set_geolocation({"latitude": 51.5025, "longitude": -0.1194})
    await unit.context.set_offline(True)
    await unit.check("#share")
    await expect(unit.locator("#outbox-list li[data-kind=position]")).to_have_count(1)
    assert abs((await cw11(http))["lat"] - 51.5025) > 1e-4
    await unit.context.set_offline(False)
    await expect(unit.locator("#pos-state")).to_contain_text("Position sent", timeout=RESEND)
    now = await cw11(http)
    assert abs(now["lat"] - 51.5025) < 1e-6 and abs(now["lng"] + 0.1194) < 1e-6
