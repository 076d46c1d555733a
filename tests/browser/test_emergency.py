"""The officer's emergency button (issue 16), end to end: a deliberate press on the unit
app, units sent, a blocking alarm on the dispatcher and supervisor consoles until someone
acknowledges it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, Request, expect

from tests.browser.conftest import PHONE, PageFactory, box_of, screenshot
from tests.browser.test_unit_app import job_for_cw11
from tests.conftest import call_body, wait_for

pytestmark = pytest.mark.browser

LIVE = 2000  # ms: how soon a change must reach another console
SENT = "EMERGENCY SENT — help is coming"


async def open_emergencies(http: Any) -> list[dict[str, Any]]:
    r = await http.as_("dispatcher", "GET", "/api/alarms")
    assert r.status_code == 200, r.text
    return [a for a in r.json() if a["kind"] == "officer_emergency"]


async def hold(page: Page, selector: str) -> None:
    """Press and keep the button down until the page says the emergency went."""
    box = await box_of(page.locator(selector))
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    try:
        # The fill shows the hold running.
        await expect(page.locator(selector)).to_have_class(re.compile(r"\bholding\b"))
        await expect(page.locator("#emergency")).to_be_visible(timeout=5000)
    finally:
        await page.mouse.up()


async def test_hold_raises_help_and_a_blocking_alarm(open_page: PageFactory, http: Any) -> None:
    dispatcher = await open_page("dispatcher")
    supervisor = await open_page("supervisor")
    unit = await open_page("unit", viewport=PHONE)
    button = unit.locator("#emergency-btn")

    # One tap only says how; two taps far apart are two single taps.
    await button.click()
    await expect(unit.locator("#emergency-hint")).to_have_text("press again to send")
    await expect(unit.locator("#emergency-hint")).to_have_text("hold 2 s or press twice")
    await button.click()
    await expect(unit.locator("#emergency-hint")).to_have_text("press again to send")
    assert await unit.evaluate("window.__cadUnit.outbox.size") == 0
    assert await open_emergencies(http) == []

    await hold(unit, "#emergency-btn")
    await expect(unit.locator("#em-title")).to_have_text(SENT, timeout=LIVE)
    await expect(unit.locator("#em-units strong")).to_have_count(3)
    await expect(unit.locator("#em-pos")).to_contain_text("old at the press")
    await screenshot(unit, "unit-emergency")

    [alarm] = await open_emergencies(http)
    incident = (
        await http.as_("dispatcher", "GET", f"/api/incidents/{alarm['incident_id']}")
    ).json()
    assert incident["grade"] == "I"
    helpers = [a for a in incident["assignments"] if a["unit_id"] != alarm["unit_id"]]
    assert len(helpers) == 3

    for console in (dispatcher, supervisor):
        modal = console.locator("#emergency-alarm")
        await expect(modal).to_be_visible(timeout=LIVE)
        await expect(modal.locator(".ea-callsign")).to_have_text("CW11")
        await expect(modal.locator(".ea-ref")).to_have_text(incident["ref"])
        await expect(modal.locator(".ea-age")).to_be_visible()
        await console.keyboard.press("Escape")  # not a way out
        await expect(modal).to_be_visible()
    assert await dispatcher.locator("main").evaluate("m => m.inert")
    await screenshot(dispatcher, "dispatcher-emergency")

    await dispatcher.locator("#emergency-alarm button[data-ack]").click()
    await expect(dispatcher.locator("#emergency-alarm")).to_be_hidden()
    # Someone else took it: gone from the supervisor's console too, and the officer knows.
    await expect(supervisor.locator("#emergency-alarm")).to_be_hidden(timeout=LIVE)
    await expect(unit.locator("#em-ack")).to_contain_text("dispatcher", timeout=LIVE)
    assert await open_emergencies(http) == []


async def test_a_dispatcher_opening_the_console_sees_an_open_emergency(
    open_page: PageFactory, http: Any
) -> None:
    me = (await http.as_("unit", "GET", "/api/units/me")).json()
    r = await http.as_(
        "unit",
        "POST",
        f"/api/units/{me['id']}/emergency",
        json={},
        headers={"Idempotency-Key": "e-1"},
    )
    assert r.status_code == 201, r.text
    dispatcher = await open_page("dispatcher")
    modal = dispatcher.locator("#emergency-alarm")
    await expect(modal).to_be_visible()
    await expect(modal.locator(".ea-callsign")).to_have_text("CW11")
    await expect(modal.locator(".ea-ref")).to_have_text(r.json()["ref"])


async def test_offline_emergency_goes_first_and_can_be_cancelled(
    open_page: PageFactory, http: Any
) -> None:
    unit_row, job = await job_for_cw11(http)
    unit = await open_page("unit", viewport=PHONE)
    # The acknowledgement goes through the outbox too: wait for the server's answer, or
    # it may still be queued when the signal goes and be sent after the emergency.
    async with unit.expect_response(lambda r: r.url.endswith("/acknowledge")) as answered:
        await unit.locator("#ack-job").click()
    assert (await answered.value).ok
    await expect(unit.locator("#job-alert")).to_be_hidden()
    await expect(unit.locator("#outbox-list li")).to_have_count(0)

    await unit.context.set_offline(True)
    await unit.locator("button[data-status=en_route]").click()
    await expect(unit.locator("#outbox-list li")).to_have_count(1)
    # Pressed twice: that is deliberate too.
    await unit.locator("#emergency-btn").click()
    await unit.locator("#emergency-btn").click()
    await expect(unit.locator("#em-title")).to_have_text("EMERGENCY — NOT SENT YET")
    await expect(unit.locator("#outbox-list li").first).to_have_attribute("data-kind", "emergency")

    sent: list[str] = []

    def note(req: Request) -> None:
        if req.method == "POST" and "/api/units/" in req.url:
            sent.append(req.url.rsplit("/", 1)[1])

    async def both_sent() -> bool:
        return len(sent) >= 2

    unit.on("request", note)
    await unit.context.set_offline(False)
    await expect(unit.locator("#em-title")).to_have_text(SENT, timeout=8000)
    await wait_for(both_sent)
    assert sent[:2] == ["emergency", "status"], sent  # ahead of the older press
    # The emergency took the officer off the theft: the older press is refused, and said so.
    refused = unit.locator("#refused-list li[data-kind=status]")
    await expect(refused.locator(".reason")).to_have_text(
        f"unit CW11 is not assigned to incident {job['id']}"
    )
    [alarm] = await open_emergencies(http)

    await unit.locator("#em-cancel").click()
    await unit.fill("#em-reason", "pressed by mistake")
    await unit.locator("#em-cancel-confirm").click()
    await expect(unit.locator("#emergency")).to_be_hidden()
    await expect(unit.locator("#emergency-btn")).to_be_visible()

    async def cancel_remarked() -> bool:
        r = await http.as_("dispatcher", "GET", f"/api/incidents/{alarm['incident_id']}")
        return any(
            "pressed by mistake" in (e["data"].get("text") or "")
            for e in r.json()["timeline"]
            if e["type"] == "incident.remark"
        )

    assert await wait_for(cancel_remarked)


async def test_dispatcher_hears_an_i_grade_call_unless_muted(
    open_page: PageFactory, http: Any
) -> None:
    dispatcher = await open_page("dispatcher")
    knife = call_body("KNIFE", 51.5155, -0.0922, risk={"weapons": True, "offender_present": True})

    async def cues(kind: str) -> int:
        return int(await dispatcher.evaluate(f"window.__cadSound.{kind} || 0"))

    async def new_call() -> str:
        r = await http.as_("handler", "POST", "/api/calls", json=knife)
        assert r.status_code == 201 and r.json()["incident"]["grade"] == "I", r.text
        ref = r.json()["incident"]["ref"]
        await expect(dispatcher.locator(f"#queue tr[data-ref='{ref}']")).to_be_visible(timeout=LIVE)
        return ref

    await new_call()
    assert await cues("urgent") == 1

    mute = dispatcher.locator("#mute")
    await expect(mute).to_have_attribute("aria-pressed", "false")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    assert await dispatcher.evaluate("localStorage.getItem('cad.mute.dispatcher')") == "1"
    await dispatcher.reload()  # remembered for this user
    await dispatcher.locator("#conn[data-state=live]").wait_for()
    await expect(dispatcher.locator("#mute")).to_have_attribute("aria-pressed", "true")
    await new_call()
    assert await cues("urgent") == 0 and await cues("muted") == 1
