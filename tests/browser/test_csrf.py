"""A page elsewhere cannot act with a signed-in console's cookies, by form, fetch or
WebSocket. Two attackers: another port of the console's host is another origin of the
same site, so the SameSite=Strict cookies do go along and only the Origin and
X-CSRF-Token checks stand in the way; another host name (localhost for 127.0.0.1) is
another site, whose requests arrive without the cookies at all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from playwright.async_api import Page, Response, expect

from tests.browser.conftest import PageFactory, screenshot
from tests.browser.elsewhere import Elsewhere as Attacker
from tests.conftest import Server, call_body

pytestmark = pytest.mark.browser

SESSION_COOKIES = {"cad_access", "cad_refresh", "cad_csrf"}

# The body a text/plain form sends is `name=value`: this name and value make it JSON.
JSON_SHAPED_FIELD = {'{"text":"csrf","x":"': '"}'}

# A typeless Blob sends no Content-Type, so the request needs no preflight and is sent;
# no-cors leaves the answer opaque to the page, not the request unsent. (FastAPI's strict
# content type would answer 422 to such a body: the 403 is what shows the CSRF check.)
FETCH_REMARK = """async ([url, body]) => {
  await fetch(url, { method: "POST", mode: "no-cors", credentials: "include",
                     body: new Blob([body]) });
}"""

# Resolves with what the server does first: a frame (it let the socket in) or a close.
OPEN_SOCKET = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onmessage = (e) => { resolve(`admitted: ${String(e.data).slice(0, 30)}`); ws.close(); };
  ws.onclose = (e) => resolve(e.code);
})"""


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    site = Attacker()
    yield site
    site.close()


def auto_submit(action: str, fields: dict[str, str], enctype: str = "") -> bytes:
    inputs = "".join(f"<input type=hidden name='{k}' value='{v}'>" for k, v in fields.items())
    enc = f' enctype="{enctype}"' if enctype else ""
    return (
        "<!doctype html><title>win a prize</title>"
        f'<form method="post" action="{action}"{enc}>{inputs}</form>'
        "<script>document.forms[0].submit()</script>"
    ).encode()


async def remarks_of(http: Any, incident: int) -> list[str]:
    r = await http.as_("dispatcher", "GET", f"/api/incidents/{incident}")
    assert r.status_code == 200, r.text
    return [e["data"]["text"] for e in r.json()["timeline"] if e["type"] == "incident.remark"]


async def session_cookies(page: Page) -> set[str]:
    return {c["name"] for c in await page.context.cookies()} & SESSION_COOKIES


async def attack(page: Page, url: str, action: Any) -> Response:
    """Run ``action`` and return the API's answer to the request it makes to ``url``."""
    async with page.expect_response(lambda r: r.url == url) as answer:
        await action()
    return await answer.value


async def test_pages_elsewhere_cannot_act_with_the_console_session(
    open_page: PageFactory, server: Server, http: Any, attacker: Attacker
) -> None:
    console = await open_page("dispatcher")
    created = await http.as_("handler", "POST", "/api/calls", json=call_body())
    assert created.status_code == 201, created.text
    incident = created.json()["incident"]["id"]
    detail = f"{server.url}/api/incidents/{incident}"
    remarks = f"{detail}/remarks"
    signout = f"{server.url}/api/auth/signout"
    attacker.pages["/remark"] = auto_submit(remarks, JSON_SHAPED_FIELD, "text/plain")
    attacker.pages["/signout"] = auto_submit(signout, {})
    attacker.pages["/link"] = f"<script>location.assign('{detail}')</script>".encode()
    assert await session_cookies(console) == SESSION_COOKIES

    # Same context: the console's cookies are in the jar for every one of these requests.
    evil = await console.context.new_page()
    evil.set_default_timeout(5000)

    # Same site: the cookies go along (shown on the forms' requests), so each refusal is
    # the CSRF check's (403 csrf), not a missing session's (401).
    for path, url in (("/remark", remarks), ("/signout", signout)):
        res = await attack(evil, url, partial(evil.goto, attacker.same_site + path))
        cookie = (await res.request.all_headers()).get("cookie", "")
        assert "cad_access=" in cookie, (path, cookie)
        assert res.status == 403, (path, res.status, await res.text())
        assert (await res.json())["reason"] == "csrf", path
        assert await session_cookies(console) == SESSION_COOKIES, path
    await evil.goto(attacker.same_site + "/")
    res = await attack(
        evil, remarks, lambda: evil.evaluate(FETCH_REMARK, [remarks, json.dumps({"text": "csrf"})])
    )
    assert res.status == 403, res.status

    # Another site: SameSite=Strict keeps the cookies home, even on a top-level link
    # (which Lax would let through with the session).
    for path, url in (("/remark", remarks), ("/link", detail)):
        res = await attack(evil, url, partial(evil.goto, attacker.cross_site + path))
        assert "cookie" not in await res.request.all_headers(), path
        assert res.status == 401, (path, res.status, await res.text())
    await evil.goto(attacker.cross_site + "/")
    res = await attack(
        evil, remarks, lambda: evil.evaluate(FETCH_REMARK, [remarks, json.dumps({"text": "csrf"})])
    )
    assert res.status == 401, res.status
    # Signing out is open to anyone (there may be nothing to end), so a cookieless form
    # is answered, but it ends nothing and, being a top-level navigation whose answer
    # the browser may set (or delete) Strict cookies from, must not clear the session.
    res = await attack(evil, signout, lambda: evil.goto(attacker.cross_site + "/signout"))
    assert "cookie" not in await res.request.all_headers()
    assert res.status in (200, 401, 403), res.status
    if res.status == 200:
        assert (await res.json())["ended"] is False
    assert "set-cookie" not in await res.all_headers()
    assert await session_cookies(console) == SESSION_COOKIES
    await evil.close()

    # Nothing changed, and the console is signed in and can still write (the same
    # remark route, from its own origin with the token, so the refusals were not a
    # wrong URL or body).
    assert await remarks_of(http, incident) == []
    await console.reload()
    await console.locator("#conn[data-state=live]").wait_for()
    await expect(console.locator(f"#queue tr[data-id='{incident}']")).to_be_visible()
    assert console.url == f"{server.url}/console/dispatcher/"
    await console.evaluate(
        """async (url) => {
          const { post } = await import("/console/js/api.js");
          await post(url, { text: "from the console" });
        }""",
        f"/api/incidents/{incident}/remarks",
    )
    assert await remarks_of(http, incident) == ["from the console"]
    await screenshot(console, "csrf-after-attack")


async def test_pages_elsewhere_cannot_open_the_event_stream(
    open_page: PageFactory, server: Server, attacker: Attacker
) -> None:
    console = await open_page("dispatcher")
    stream = server.url.replace("http://", "ws://") + "/ws/events"
    # The control: from the console's own origin the same script is let in by the cookie.
    assert str(await console.evaluate(OPEN_SOCKET, stream)).startswith('admitted: {"type":"hello"')
    evil = await console.context.new_page()
    # Same site: the cookie would go with the handshake; only the Origin check refuses.
    await evil.goto(attacker.same_site + "/")
    assert await evil.evaluate(OPEN_SOCKET, stream) == 4403
    # Another site: refused by Origin, and it would carry no cookie either.
    await evil.goto(attacker.cross_site + "/")
    assert await evil.evaluate(OPEN_SOCKET, stream) in (4401, 4403)
    await evil.close()
