"""Accounts in the consoles: the admin page, a first sign-in with a temporary password,
disabling a signed-in user, the access log, and a console outliving its access token."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, PageFactory, screenshot, sign_in, watch_csp
from tests.conftest import Server, Settings, call_body, start_server, wait_for

pytestmark = pytest.mark.browser

SHORT_TTL_S = 10  # the shortest access token the server accepts (CAD_JWT_TTL_S)
TEMPORARY = "amber kettle harbour 42"
OWN = "lantern over the quiet river"
# Far from UTC, so a time filter that forgot the zone misses by half a day.
ZONE = "Pacific/Auckland"


@pytest.fixture
def short_tokens() -> int:
    return SHORT_TTL_S


@pytest.fixture
def server(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Server]:
    """`cad serve` as in tests/conftest.py; a test that asks for `short_tokens` gets access
    tokens that live SHORT_TTL_S seconds."""
    env = {}
    if "short_tokens" in request.fixturenames:
        env["CAD_JWT_TTL_S"] = str(request.getfixturevalue("short_tokens"))
    srv = start_server(settings, **env)
    yield srv
    srv.stop()


@pytest.fixture
async def zoned_page(browser: Browser, server: Server) -> AsyncIterator[Any]:
    """Like open_page, for a browser whose clock is in ZONE."""
    contexts = []
    errors: list[str] = []
    violations: list[str] = []

    async def factory(username: str) -> Page:
        ctx = await browser.new_context(viewport=DESKTOP, base_url=server.url, timezone_id=ZONE)
        contexts.append(ctx)
        await watch_csp(ctx, violations)
        page = await ctx.new_page()
        page.set_default_timeout(5000)
        page.on("pageerror", lambda exc: errors.append(f"{username}: {exc}"))
        await sign_in(page, username)
        return page

    yield factory
    for ctx in contexts:
        await ctx.close()
    assert not errors, f"uncaught errors in the consoles: {errors}"
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


def user_row(page: Page, username: str) -> Any:
    return page.locator(f"#users tbody tr[data-username='{username}']")


async def add_user_by_api(http: Any, username: str, role: str = "dispatcher") -> None:
    r = await http.as_(
        "admin",
        "POST",
        "/api/users",
        json={"username": username, "role": role, "password": TEMPORARY},
    )
    assert r.status_code == 201, r.text


async def test_admin_adds_a_user_who_chooses_a_password(open_page: PageFactory) -> None:
    admin = await open_page("admin")
    assert admin.url.endswith("/console/admin/"), admin.url
    await expect(user_row(admin, "dispatcher")).to_be_visible()
    # An admin's nav reaches the other consoles and the access log.
    for label, href in [
        ("Dispatch", "/console/dispatcher/"),
        ("KPIs", "/console/supervisor/"),
        ("Access log", "/console/supervisor/access.html"),
    ]:
        await expect(admin.locator(".topnav a", has_text=label)).to_have_attribute("href", href)
    await expect(admin.locator(".topnav a[aria-current=page]")).to_have_text("Users")

    # The callsign is asked for only when the role is unit.
    await expect(admin.locator("#add-unit")).to_be_hidden()
    await admin.select_option("#add-role", "unit")
    await expect(admin.locator("#add-unit")).to_be_visible()
    await admin.select_option("#add-role", "dispatcher")
    await expect(admin.locator("#add-unit")).to_be_hidden()

    await admin.fill("#add-username", "newdisp")
    await admin.fill("#add-password", "short")
    await admin.click("#add-user button[type=submit]")
    password_field = admin.locator("#add-user [data-field=password]")
    await expect(password_field.locator(".field-error")).to_have_text("at least 12 characters")
    await expect(password_field).to_have_class("field invalid")
    await expect(user_row(admin, "newdisp")).to_have_count(0)
    await admin.fill("#add-password", "password1234")
    await admin.click("#add-user button[type=submit]")
    await expect(password_field.locator(".field-error")).to_contain_text("too common")

    await admin.fill("#add-password", TEMPORARY)
    await admin.click("#add-user button[type=submit]")
    row = user_row(admin, "newdisp")
    await expect(row).to_be_visible()
    await expect(password_field.locator(".field-error")).to_have_text("")
    await expect(admin.locator("#add-ok")).to_contain_text("Added newdisp")
    await expect(row.locator("[data-col=role]")).to_have_text("Dispatcher")
    await expect(row.locator("[data-status=must-change]")).to_be_visible()
    await expect(row.locator("[data-col=sessions]")).to_have_text("0")
    await expect(admin.locator("#add-username")).to_have_value("")

    # The same name again: 409, said next to the username.
    await admin.fill("#add-username", "newdisp")
    await admin.fill("#add-password", TEMPORARY)
    await admin.click("#add-user button[type=submit]")
    await expect(admin.locator("#add-user [data-field=username] .field-error")).to_contain_text(
        "already exists"
    )
    await screenshot(admin, "admin-users")

    page = await open_page()
    await page.goto("/console/")
    await page.fill("#username", "newdisp")
    await page.fill("#password", TEMPORARY)
    await page.press("#password", "Enter")
    await expect(page.locator("#change")).to_be_visible()
    await expect(page.locator("#signin")).to_be_hidden()
    await page.fill("#new-password", OWN)
    await page.fill("#new-password-2", OWN)
    await screenshot(page, "signin-change-password")
    await page.press("#new-password-2", "Enter")
    await page.wait_for_url("**/console/dispatcher/")
    await expect(page.locator("#conn")).to_have_text("live")

    await admin.click("#refresh")
    await expect(row.locator("[data-col=sessions]")).to_have_text("1")
    await expect(row.locator("[data-status=must-change]")).to_have_count(0)


async def test_disabling_a_signed_in_user_ends_their_console(
    open_page: PageFactory, http: Any
) -> None:
    dispatcher = await open_page("dispatcher")
    admin = await open_page("admin")
    row = user_row(admin, "dispatcher")
    await expect(row.locator("[data-col=sessions]")).not_to_have_text("0")

    await row.locator("button[data-action=disable]").click()
    await dispatcher.wait_for_url("**/console/?*", timeout=5000)
    await expect(dispatcher.locator("#signin-note")).to_contain_text("Your session ended")
    await expect(dispatcher.locator("#signin-note")).to_contain_text("account disabled")
    await expect(row.locator("[data-status=disabled]")).to_be_visible()
    await expect(row.locator(".row-note")).to_contain_text("Disabled")
    await expect(row.locator("[data-col=sessions]")).to_have_text("0")
    await dispatcher.fill("#username", "dispatcher")
    await dispatcher.fill("#password", "dispatcher-999")
    await dispatcher.press("#password", "Enter")
    await expect(dispatcher.locator("#signin-error")).to_contain_text("Wrong username or password")

    await row.locator("button[data-action=enable]").click()
    await expect(row.locator("[data-status=active]")).to_be_visible()

    # A reset is typed in a form under the row; the server's reason shows there.
    await row.locator("button[data-action=password]").click()
    editor = admin.locator("tr.editor[data-editor-for='dispatcher']")
    await expect(admin.locator("#reset-password")).to_be_focused()
    await admin.fill("#reset-password", "123456789012")
    await admin.press("#reset-password", "Enter")
    await expect(editor.locator("[data-field=password] .field-error")).not_to_be_empty()
    await admin.fill("#reset-password", TEMPORARY)
    await admin.press("#reset-password", "Enter")
    await expect(editor).to_have_count(0)
    await expect(row.locator("[data-status=must-change]")).to_be_visible()
    await expect(row.locator(".row-note")).to_contain_text("Password reset")

    # Role and unit: a unit needs a callsign; the admin may not demote themself (409).
    await row.locator("button[data-action=role]").click()
    await admin.select_option("#edit-role", "unit")
    await admin.click("tr.editor button[type=submit]")
    await expect(editor.locator("[data-field=unit_callsign] .field-error")).to_contain_text(
        "callsign"
    )
    await admin.fill("#edit-unit", "CW12")
    await admin.click("tr.editor button[type=submit]")
    await expect(row.locator("[data-col=role]")).to_have_text("Unit")
    await expect(row.locator("[data-col=unit]")).to_have_text("CW12")
    me = user_row(admin, "admin")
    await expect(me.locator("button[data-action=disable]")).to_be_disabled()
    await me.locator("button[data-action=role]").click()
    await admin.select_option("#edit-role", "dispatcher")
    await admin.click("tr.editor button[type=submit]")
    await expect(admin.locator("tr.editor .form-error")).to_contain_text("cannot disable or demote")
    await admin.click("tr.editor button[data-action=cancel]")
    await expect(admin.locator("tr.editor")).to_have_count(0)

    # End sessions; lift a lockout after five wrong passwords.
    supervisor = await open_page("supervisor")
    sup_row = user_row(admin, "supervisor")
    await admin.click("#refresh")
    await sup_row.locator("button[data-action=end]").click()
    await supervisor.wait_for_url("**/console/?*", timeout=5000)
    await expect(sup_row.locator(".row-note")).to_contain_text("1 session ended")
    async with httpx.AsyncClient(base_url=admin.url.split("/console")[0]) as client:
        for _ in range(5):
            await client.post("/api/auth/token", data={"username": "handler", "password": "nope"})
        locked = await client.post(
            "/api/auth/token", data={"username": "handler", "password": "handler-999"}
        )
        assert locked.status_code == 429, locked.text
        handler_row = user_row(admin, "handler")
        await admin.click("#refresh")
        await expect(handler_row.locator("[data-status=locked]")).to_contain_text("locked until")
        await handler_row.locator("button[data-action=unlock]").click()
        await expect(handler_row.locator(".row-note")).to_have_text("Unlocked.")
        await expect(handler_row.locator("[data-status=locked]")).to_have_count(0)
        await expect(handler_row.locator("button[data-action=unlock]")).to_have_count(0)
        again = await client.post(
            "/api/auth/token", data={"username": "handler", "password": "handler-999"}
        )
        assert again.status_code == 200, again.text


async def test_supervisor_filters_the_access_log(
    zoned_page: Any, http: Any, server: Server
) -> None:
    await add_user_by_api(http, "newsup")
    async with httpx.AsyncClient(base_url=server.url) as client:
        wrong = await client.post("/api/auth/token", data={"username": "newsup", "password": "x"})
        assert wrong.status_code == 401
        first = await client.post(
            "/api/auth/token", data={"username": "newsup", "password": TEMPORARY}
        )
        assert first.status_code == 403 and first.json()["reason"] == "password_change_required"
        changed = await client.post(
            "/api/auth/password",
            json={"username": "newsup", "current_password": TEMPORARY, "new_password": OWN},
        )
        assert changed.status_code == 200, changed.text
    r = await http.as_("supervisor", "GET", "/api/access-log?username=newsup")
    expected = r.json()["entries"]
    # Added, a wrong password, refused (change required), changed, signed in.
    assert [e["action"] for e in expected] == [
        "signin",
        "password_change",
        "signin",
        "signin",
        "user.add",
    ], expected

    page = await zoned_page("supervisor")
    await page.locator(".topnav a", has_text="Access log").click()
    await page.wait_for_url("**/console/supervisor/access.html")
    await expect(page.locator("#access-log tbody tr").first).to_be_visible()
    await page.fill("#f-user", "newsup")
    await page.press("#f-user", "Enter")
    rows = page.locator("#access-log tbody tr")
    await expect(rows).to_have_count(len(expected))
    ids = [int(x) for x in await rows.evaluate_all("rs => rs.map(r => r.dataset.id)")]
    assert ids == [e["id"] for e in expected], "newest first, the same entries as the API"
    signed_in = page.locator("#access-log tbody tr[data-action=signin][data-outcome=ok]")
    await expect(signed_in).to_have_count(1)
    await expect(signed_in.locator("td.detail")).to_contain_text("password_change")
    await expect(page.locator("#access-log tbody tr[data-outcome=failure]")).to_have_count(1)
    await expect(page.locator("#access-log tbody tr[data-outcome=refused]")).to_contain_text(
        "password_change_required"
    )
    await expect(page.locator("#older")).to_be_hidden()
    await screenshot(page, "access-log")

    await page.select_option("#f-action", "signin")
    await expect(rows).to_have_count(3)
    assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.action)")) == {"signin"}

    # From / To are the browser's local time (ZONE), sent as instants with their zone.
    zone = ZoneInfo(ZONE)
    oldest = datetime.fromisoformat(expected[-1]["at"]).astimezone(zone)
    newest = datetime.fromisoformat(expected[0]["at"]).astimezone(zone)

    def local(t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M")

    await page.select_option("#f-action", "")
    await page.fill("#f-since", local(oldest - timedelta(minutes=1)))
    await page.fill("#f-until", local(newest + timedelta(minutes=2)))
    await page.press("#f-user", "Enter")
    await expect(rows).to_have_count(len(expected))
    await page.fill("#f-since", "")
    await page.fill("#f-until", local(oldest - timedelta(minutes=1)))
    await page.press("#f-user", "Enter")
    await expect(page.locator("#access-empty")).to_be_visible()
    await expect(rows).to_have_count(0)
    await page.fill("#f-since", local(newest + timedelta(minutes=2)))
    await page.press("#f-user", "Enter")
    await expect(page.locator("#access-error")).to_contain_text("To must be after From")

    # Paging back with next_before_id: two at a time, no entry twice, to the end.
    await page.goto("/console/supervisor/access.html?username=newsup&limit=2")
    await expect(rows).to_have_count(2)
    for count in (4, 5):
        await page.click("#older")
        await expect(rows).to_have_count(count)
    await expect(page.locator("#older")).to_be_hidden()
    ids = [int(x) for x in await rows.evaluate_all("rs => rs.map(r => r.dataset.id)")]
    assert ids == [e["id"] for e in expected]


def token_expiry(token: str) -> float:
    payload = token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


async def test_console_outlives_its_access_token(
    open_page: PageFactory, server: Server, short_tokens: int
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await client.post(
            "/api/auth/token", data={"username": "handler", "password": "handler-999"}
        )
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        made = await client.post(
            "/api/calls", json=call_body("THEFT"), headers={**headers, "Idempotency-Key": "ttl-1"}
        )
        assert made.status_code == 201, made.text
    incident = made.json()["incident"]

    page = await open_page("dispatcher")
    refreshes: list[int] = []
    page.on(
        "response",
        lambda res: refreshes.append(res.status) if res.url.endswith("/api/auth/refresh") else None,
    )
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    first = cookies["cad_access"]
    assert token_expiry(first) - datetime.now().timestamp() <= short_tokens + 1

    async def expired() -> bool:
        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await client.get("/api/units", headers={"Authorization": f"Bearer {first}"})
        return r.status_code == 401

    await wait_for(expired, timeout=short_tokens + 10, interval=0.5)

    # The board still answers: opening an incident refreshes the session on the way.
    await page.locator(f"#queue tr[data-id='{incident['id']}']").click()
    await expect(page.locator("#detail")).to_contain_text(incident["ref"])
    assert page.url.endswith("/console/dispatcher/"), page.url
    assert 200 in refreshes, refreshes
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert cookies.get("cad_access") not in (None, first)
    await expect(page.locator("#conn")).to_have_text("live")
