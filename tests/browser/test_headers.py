"""The browser enforces the security headers: no foreign page can frame a console, the
violation watcher every browser test relies on does see a refused inline style, and the
API page (/docs, Swagger UI from this origin) renders under the same strict policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import PHONE, PageFactory, watch_csp
from tests.browser.elsewhere import Elsewhere
from tests.conftest import Server, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture
def attacker(server: Server) -> Iterator[Elsewhere]:
    # A page that frames the console and, as a control, a page of its own: the control
    # shows frames do load here, so the console's absence is the policy at work.
    target = f"{server.url}/console/"
    site = Elsewhere(
        {
            "/": (
                "<!doctype html><title>elsewhere</title>"
                f'<iframe name="console" src="{target}"></iframe>'
                '<iframe name="own" src="/own.html"></iframe>'
            ).encode(),
            "/own.html": b'<!doctype html><p id="own">framed fine</p>',
        }
    )
    yield site
    site.close()


async def test_another_origin_cannot_frame_the_console(
    browser: Browser, server: Server, attacker: Elsewhere
) -> None:
    # Not open_page: this page is meant to trip the policy, and its refusal is asserted.
    ctx = await browser.new_context()
    seen: list[str] = []
    try:
        await watch_csp(ctx, seen)
        page = await ctx.new_page()
        await page.goto(attacker.same_site + "/")
        own = page.frame(name="own")
        assert own is not None
        await expect(own.locator("#own")).to_have_text("framed fine")

        async def refused() -> bool:
            return any("frame-ancestors" in s for s in seen)

        await wait_for(refused, timeout=5)
        framed = page.frame(name="console")
        assert framed is not None
        assert not framed.url.startswith(server.url), framed.url
        assert await framed.locator("#username").count() == 0
    finally:
        await ctx.close()


async def test_the_watcher_sees_a_refused_inline_style(browser: Browser, server: Server) -> None:
    """The suite-wide CSP check is not a formality: markup with a style attribute, as an
    innerHTML template might carry, is refused and recorded."""
    ctx = await browser.new_context(base_url=server.url)
    seen: list[str] = []
    try:
        await watch_csp(ctx, seen)
        page = await ctx.new_page()
        await page.goto("/console/")
        await page.evaluate(
            "document.body.insertAdjacentHTML('beforeend',"
            ' \'<p id="inj" style="color: rgb(255, 0, 0)">x</p>\')'
        )

        async def recorded() -> bool:
            return any("style-src" in s for s in seen)

        await wait_for(recorded, timeout=5)
        colour = await page.eval_on_selector("#inj", "el => getComputedStyle(el).color")
        assert colour != "rgb(255, 0, 0)"
    finally:
        await ctx.close()


async def test_api_docs_render_from_this_origin(open_page: PageFactory, server: Server) -> None:
    page = await open_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    await page.goto("/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("999 CAD")
    await expect(page.locator(".opblock").first).to_be_visible()
    assert await page.locator(".opblock").count() >= 37
    assert not outside, outside


GEOLOCATE = """() => new Promise((resolve) => navigator.geolocation.getCurrentPosition(
  (p) => resolve(`fix ${p.coords.latitude.toFixed(3)}`),
  (e) => resolve(`error ${e.code}`),
  { timeout: 3000 },
))"""


async def test_only_the_unit_app_may_ask_for_the_position(
    open_page: PageFactory, server: Server
) -> None:
    """Permission granted to the whole origin, as a device's browser might: the unit app
    gets a fix and sends it; any other page is refused by Permissions-Policy."""
    unit = await open_page("unit", viewport=PHONE)
    await unit.context.grant_permissions(["geolocation"], origin=server.url)
    await unit.context.set_geolocation({"latitude": 51.5025, "longitude": -0.1194})
    assert await unit.evaluate(GEOLOCATE) == "fix 51.502"
    await unit.check("#share")
    await expect(unit.locator("#pos-state")).to_contain_text("Position sent")
    other = await unit.context.new_page()
    for path in ("/console/", "/console/dispatcher/", "/docs"):
        await other.goto(path)
        assert await other.evaluate(GEOLOCATE) == "error 1", path  # PERMISSION_DENIED
