"""Browser fixtures: one headless Debian Chromium per run, a fresh context per page.

Browsers are never downloaded: Playwright drives the system's /usr/bin/chromium. Every
page a test opens is watched for Content-Security-Policy violations: one fails the test.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FloatRect,
    Locator,
    Page,
    async_playwright,
)

from tests.conftest import ARTIFACTS, PASSWORDS, Server, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = ARTIFACTS / "screenshots"

PageFactory = Callable[..., Awaitable[Page]]

# Runs before any page script, in every frame and popup of the context. The event carries
# what was refused and where; the console message below covers what fires no event.
_CSP_WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = e.sourceFile ? ` at ${e.sourceFile}:${e.lineNumber}` : "";
  window.__cadCspViolation(
    `${e.effectiveDirective} refused ${e.blockedURI || "(inline)"} on ${e.documentURI}${where}`
  );
});
"""


async def watch_csp(ctx: BrowserContext, seen: list[str]) -> None:
    """Record into ``seen`` every CSP violation in any page, frame or popup of ``ctx``."""

    def on_violation(text: str) -> None:
        seen.append(text)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error" and "Content Security Policy" in msg.text:
            seen.append(f"console: {msg.text}")

    await ctx.expose_function("__cadCspViolation", on_violation)
    await ctx.add_init_script(_CSP_WATCH)
    ctx.on("console", on_console)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


@pytest.fixture
async def open_page(browser: Browser, server: Server) -> AsyncIterator[PageFactory]:
    """Open a page in its own context (own sessionStorage), signed in as ``username``."""
    contexts = []
    errors: list[str] = []
    violations: list[str] = []

    async def factory(username: str | None = None, viewport: dict[str, int] = DESKTOP) -> Page:
        ctx = await browser.new_context(viewport=viewport, base_url=server.url)
        contexts.append(ctx)
        await watch_csp(ctx, violations)
        page = await ctx.new_page()
        page.set_default_timeout(5000)
        page.on("pageerror", lambda exc: errors.append(f"{username}: {exc}"))
        if username is not None:
            await sign_in(page, username)
        return page

    yield factory
    for ctx in contexts:
        await ctx.close()
    assert not errors, f"uncaught errors in the consoles: {errors}"
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


async def sign_in(page: Page, username: str) -> None:
    await page.goto("/console/")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORDS[username])
    await page.press("#password", "Enter")
    await page.wait_for_url("**/console/*/")
    await page.locator("#conn[data-state=live]").wait_for()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[Any]:
    """An HTTP client to the server with per-user tokens: ``await http.as_(user, method, url)``."""
    client = httpx.AsyncClient(base_url=server.url, timeout=10)
    tokens: dict[str, str] = {}

    class Http:
        async def as_(self, username: str, method: str, url: str, **kw: Any) -> httpx.Response:
            if username not in tokens:
                r = await client.post(
                    "/api/auth/token",
                    data={"username": username, "password": PASSWORDS[username]},
                )
                r.raise_for_status()
                tokens[username] = r.json()["access_token"]
            headers = {"Authorization": f"Bearer {tokens[username]}", **kw.pop("headers", {})}
            return await client.request(method, url, headers=headers, **kw)

    yield Http()
    await client.aclose()


async def box_of(locator: Locator) -> FloatRect:
    """The element's box once it has one. The consoles redraw a card whole when an event
    arrives, so the element a locator found may be replaced before it is measured, and
    Playwright then answers None where a moment later there is a box."""
    box: FloatRect = await wait_for(locator.bounding_box)
    return box


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
