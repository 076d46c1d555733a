"""Signing in routes each role to its console; every console shows its connection state."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PHONE, PageFactory

pytestmark = pytest.mark.browser

ROLES = [
    ("handler", "/console/handler/", "#call"),
    ("dispatcher", "/console/dispatcher/", "#queue"),
    ("supervisor", "/console/supervisor/", "#grades .tile"),
    ("admin", "/console/admin/", "#users tbody tr"),
]


async def test_each_role_lands_on_its_console(open_page: PageFactory) -> None:
    for username, path, marker in ROLES:
        page = await open_page(username)
        assert page.url.endswith(path), (username, page.url)
        await expect(page.locator(marker).first).to_be_visible()
        await expect(page.locator("#conn")).to_have_text("live")
    unit = await open_page("unit", viewport=PHONE)
    assert unit.url.endswith("/console/unit/")
    await expect(unit.locator("#callsign")).to_have_text("CW11")


async def test_wrong_password_and_no_session(open_page: PageFactory) -> None:
    page = await open_page()
    await page.goto("/console/dispatcher")  # no trailing slash, no session
    await page.wait_for_url("**/console/?next=*")
    await page.fill("#username", "dispatcher")
    await page.fill("#password", "wrong")
    await page.press("#password", "Enter")
    await expect(page.locator("#signin-error")).to_contain_text("Wrong username or password")
