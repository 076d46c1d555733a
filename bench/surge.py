"""(g) The dispatcher's board under a surge, measured in a real browser (Chromium).

A steady stream of E-grade calls (THEFT: the engine stays out) arrives at `rate` calls/s for
`duration_s` while `consoles` dispatcher consoles are open on a board that already holds
`open_before` open incidents. Every `assign_every_s` a unit is assigned to one of those
incidents through the API; each console records (in the page, with a MutationObserver on
the unit board) when that unit shows as dispatched to that incident. Reported: the
assignment-to-board latency per console (p50/p99/max, from the moment the request was
sent, and from its answer), the longest main-thread task (PerformanceObserver 'longtask'),
HTTP requests each console made during the stream, and the board's own counters
(window.__cadDispatcher.stats).

Also: the time the board takes to render n open incidents (the queue: sort, filter,
counts and the visible window), e.g. 100 as a baseline for 10,000.

Used by tests/browser/test_surge.py (functional bounds only) and by `make bench` (figures).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Browser, Page, ViewportSize

from cad.seed import DEMO_USERS
from gis.areas import AreaSet
from loadtests.sources import percentile, random_london_point

PASSWORDS = {u.username: u.password for u in DEMO_USERS}
SURGE_TYPE = "THEFT"  # graded E with no risk: nobody but the test assigns it
DESKTOP: ViewportSize = {"width": 1366, "height": 768}
CHROMIUM = "/usr/bin/chromium"
PAGE_ERRORS: list[str] = []  # uncaught errors in any console this module opened

# Installed before any page script: long tasks from the first moment, kept with wall-clock
# times so they can be matched to the stream's minute.
INIT_JS = """
window.__surge = { longtasks: [], seen: {}, want: {} };
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      window.__surge.longtasks.push({ at: performance.timeOrigin + e.startTime, ms: e.duration });
    }
  }).observe({ type: "longtask", buffered: true });
} catch (e) { window.__surge.noLongtask = String(e); }
"""

# What the dispatcher sees: the unit board row for the callsign, dispatched to the incident.
WATCH_JS = """
(want) => {
  const S = window.__surge;
  Object.assign(S.want, want);
  const check = () => {
    for (const [callsign, incidentId] of Object.entries(S.want)) {
      if (S.seen[callsign]) continue;
      const el = document.querySelector(
        `#units [data-unit="${CSS.escape(callsign)}"][data-status="dispatched"]`);
      if (el && el.dataset.incident === String(incidentId)) S.seen[callsign] = Date.now();
    }
  };
  S.check = check;
  new MutationObserver(check).observe(document.querySelector("#units"),
    { childList: true, subtree: true, attributes: true });
  check();
}
"""


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


async def insert_open(db_url: str, n: int, seed: int = 18) -> None:
    """n open, pending E-grade incidents over London (straight into PostgreSQL: a board's
    backlog, not an intake measurement), each with its call, area and address line."""
    if n <= 0:
        return
    rng = random.Random(seed)
    areas = AreaSet.london_default()
    rows: list[tuple[str, float, float, str, str, float]] = []
    tag = uuid.uuid4().hex[:4].upper()
    while len(rows) < n:
        lat, lng = random_london_point(rng)
        area = areas.area_for(lat, lng)
        if area is None:
            continue
        # E targets are 48 h: under 24 h ago keeps every backlog target past the end of
        # today at any hour, so what the board folds does not depend on the clock.
        hours_ago = rng.uniform(0.0, 23.5)
        rows.append(
            (
                f"SRG {len(rows) + 1}/{tag}",
                lat,
                lng,
                area.code,
                f"near {area.name}",
                hours_ago,
            )
        )
    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            await conn.execute(
                """
                WITH src AS (
                    SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::text[],
                                         $5::text[], $6::float8[])
                        AS s(ref, lat, lng, area_code, address_line, hours_ago)
                ), inc AS (
                    INSERT INTO incidents (ref, type_code, grade, grade_rule, status, lat, lng,
                        area_code, address_line, description, call_received_at,
                        call_answered_at, created_at, target_at)
                    SELECT ref, $7, 'E', 'bench', 'pending', lat, lng, area_code, address_line,
                        'surge backlog', t, t, t, t + interval '48 hours'
                    FROM src, LATERAL (SELECT now() - hours_ago * interval '1 hour' AS t) w
                    RETURNING id, lat, lng, area_code, created_at
                )
                INSERT INTO calls (incident_id, outcome, location_source, lat, lng, area_code,
                    type_code, description, received_at, answered_at, created_at)
                SELECT id, 'incident_created', 'aml', lat, lng, area_code, $7, 'surge backlog',
                    created_at, created_at, created_at
                FROM inc
                """,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
                [r[5] for r in rows],
                SURGE_TYPE,
            )
        await conn.execute("ANALYZE incidents")
    finally:
        await conn.close()


async def open_count(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM incidents WHERE status <> 'closed'"))
    finally:
        await conn.close()


async def ensure_open(db_url: str, n: int) -> int:
    """Top the board up to n open incidents; returns how many are open."""
    have = await open_count(db_url)
    if have < n:
        await insert_open(db_url, n - have, seed=n)
    return await open_count(db_url)


async def open_console(browser: Browser, base_url: str, username: str = "dispatcher") -> Page:
    """A dispatcher console in its own browser context, signed in, board loaded."""
    ctx = await browser.new_context(viewport=DESKTOP, base_url=base_url)
    await ctx.add_init_script(INIT_JS)
    page = await ctx.new_page()
    page.set_default_timeout(30000)
    page.on("pageerror", lambda exc: PAGE_ERRORS.append(str(exc)))
    await page.goto("/console/")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORDS[username])
    await page.press("#password", "Enter")
    await page.wait_for_url("**/console/dispatcher/")
    await page.locator("#conn[data-state=live]").wait_for()
    await wait_board(page)
    return page


async def wait_board(page: Page, at_least: int = 0, timeout_s: float = 60.0) -> dict[str, Any]:
    """Until the board's snapshot is in and drawn (and holds at least `at_least`)."""
    await page.wait_for_function(
        """(n) => { const d = window.__cadDispatcher;
             return d && d.stats.snapshots > 0 && d.incidents.size >= n
                    && d.stats.firstQueueMs !== null; }""",
        arg=at_least,
        timeout=timeout_s * 1000,
    )
    stats: dict[str, Any] = await page.evaluate("() => ({...window.__cadDispatcher.stats})")
    return stats


async def _token(client: httpx.AsyncClient, username: str) -> str:
    r = await client.post(
        "/api/auth/token", data={"username": username, "password": PASSWORDS[username]}
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


async def _stream_calls(
    client: httpx.AsyncClient, token: str, rate: float, duration_s: float, seed: int
) -> dict[str, Any]:
    """POST calls on a fixed schedule (not closed-loop): a slow answer does not slow the
    stream, as callers do not wait for each other."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    n = int(rate * duration_s)
    start = time.monotonic()

    async def one() -> None:
        lat, lng = random_london_point(rng)
        body = {
            "caller": {"name": "Surge caller", "phone": "07700 900000"},
            "location": {"lat": lat, "lng": lng},
            "location_source": "aml",
            "incident_type": SURGE_TYPE,
            "description": "surge: bicycle taken",
            "risk": {},
        }
        t0 = time.monotonic()
        key = "not sent"
        idem = {**headers, "Idempotency-Key": uuid.uuid4().hex}
        # A keep-alive connection the server closed just as it was reused fails in transit;
        # the same Idempotency-Key makes sending again safe (one call, one incident).
        for _ in range(3):
            try:
                r = await client.post("/api/calls", json=body, headers=idem)
                key = str(r.status_code)
                break
            except httpx.TransportError as exc:
                key = type(exc).__name__
        latencies.append((time.monotonic() - t0) * 1000)
        statuses[key] = statuses.get(key, 0) + 1

    tasks = []
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    sending = time.monotonic() - start
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    return {
        "sent": n,
        "statuses": statuses,
        "sent_per_s": round(n / max(sending, 1e-9), 1) if n > 1 else None,
        "rate_per_s": round(n / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
    }


async def measure_surge(
    browser: Browser,
    base_url: str,
    db_url: str,
    *,
    consoles: int = 5,
    open_before: int = 2000,
    rate: float = 20.0,
    duration_s: float = 60.0,
    assign_every_s: float = 1.0,
    screenshot: Path | None = None,
    seed: int = 18,
) -> dict[str, Any]:
    """The surge described in the module docstring; returns the measurements."""
    open_now = await ensure_open(db_url, open_before)
    pages = [await open_console(browser, base_url) for _ in range(consoles)]
    out: dict[str, Any] = {
        "consoles": consoles,
        "open_before": open_now,
        "rate_target_per_s": rate,
        "duration_s": duration_s,
    }
    async with httpx.AsyncClient(
        base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=64)
    ) as client:
        handler = await _token(client, "handler")
        dispatcher = await _token(client, "dispatcher")
        auth = {"Authorization": f"Bearer {dispatcher}"}
        units = (await client.get("/api/units", headers=auth)).json()
        free = sorted(
            (u for u in units if u["status"] == "available" and u["unit_type"] == "response_car"),
            key=lambda u: u["callsign"],
        )
        board = await pages[0].evaluate(
            """() => [...window.__cadDispatcher.incidents.values()]
                   .filter((i) => i.status === 'pending' && i.grade === 'E').map((i) => i.id)"""
        )
        rng = random.Random(seed)
        rng.shuffle(board)
        n_assign = min(int(duration_s / assign_every_s) - 1, len(free), len(board))
        plan = [(free[k]["id"], free[k]["callsign"], board[k]) for k in range(n_assign)]
        want = {callsign: incident for _, callsign, incident in plan}
        for page in pages:
            await page.evaluate(WATCH_JS, want)

        requests = [0] * consoles
        counting = [False]

        def counter(k: int) -> Any:
            def on_request(_req: Any) -> None:
                if counting[0]:
                    requests[k] += 1

            return on_request

        for k, page in enumerate(pages):
            page.on("request", counter(k))

        sent_at: dict[str, float] = {}
        acked_at: dict[str, float] = {}
        assign_status: dict[str, int] = {}
        post_ms: list[float] = []

        async def assign_all() -> None:
            start = time.monotonic()
            for k, (unit_id, callsign, incident_id) in enumerate(plan):
                delay = start + (k + 0.5) * assign_every_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[callsign] = time.time() * 1000
                t0 = time.monotonic()
                r = await client.post(
                    f"/api/incidents/{incident_id}/assignments",
                    json={"unit_id": unit_id},
                    headers=auth,
                )
                post_ms.append((time.monotonic() - t0) * 1000)
                acked_at[callsign] = time.time() * 1000
                assign_status[str(r.status_code)] = assign_status.get(str(r.status_code), 0) + 1

        async def shot() -> None:
            if screenshot is None:
                return
            await asyncio.sleep(duration_s * 0.75)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            await pages[0].screenshot(path=str(screenshot))

        window_start = time.time() * 1000
        counting[0] = True
        calls, _, _ = await asyncio.gather(
            _stream_calls(client, handler, rate, duration_s, seed), assign_all(), shot()
        )
        counting[0] = False
        window_end = time.time() * 1000

    # Every assignment on every board (or the bound runs out: a frozen board fails).
    deadline = time.monotonic() + 15
    seen: list[dict[str, float]] = []
    while True:
        seen = [await p.evaluate("() => ({...window.__surge.seen})") for p in pages]
        if all(len(s) >= len(plan) for s in seen) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    latencies: list[float] = []
    after_ack: list[float] = []  # from the API's answer: the board's part, not the server's
    missing = 0
    per_console = []
    for s in seen:
        mine = []
        for _, callsign, _ in plan:
            if callsign in s and callsign in sent_at:
                mine.append(s[callsign] - sent_at[callsign])
                after_ack.append(max(0.0, s[callsign] - acked_at[callsign]))
            else:
                missing += 1
        latencies += mine
        per_console.append(
            {"p50_ms": _ms(percentile(mine, 50)), "p99_ms": _ms(percentile(mine, 99))}
        )
    longest = 0.0
    over_100 = 0
    board_stats = []
    for page in pages:
        tasks = await page.evaluate("() => window.__surge.longtasks")
        during = [t["ms"] for t in tasks if window_start <= t["at"] <= window_end]
        longest = max([longest, *during])
        over_100 += sum(1 for ms in during if ms > 100)
        board_stats.append(await page.evaluate("() => ({...window.__cadDispatcher.stats})"))
    minute = 60.0 / max(1e-9, (window_end - window_start) / 1000)
    out.update(
        calls=calls,
        assignments=len(plan),
        assign_statuses=assign_status,
        assign_post_p50_ms=_ms(percentile(post_ms, 50)),
        assign_post_p99_ms=_ms(percentile(post_ms, 99)),
        appeared=len(latencies),
        expected=len(plan) * consoles,
        missing=missing,
        p50_ms=_ms(percentile(latencies, 50)),
        p99_ms=_ms(percentile(latencies, 99)),
        max_ms=_ms(max(latencies) if latencies else None),
        after_ack_p50_ms=_ms(percentile(after_ack, 50)),
        after_ack_p99_ms=_ms(percentile(after_ack, 99)),
        after_ack_max_ms=_ms(max(after_ack) if after_ack else None),
        per_console=per_console,
        longest_task_ms=_ms(longest),
        long_tasks_over_100ms=over_100,
        requests_per_console=requests,
        requests_per_console_per_min=[round(r * minute, 1) for r in requests],
        board_stats=board_stats,
    )
    for page in pages:
        await page.context.close()
    return out


async def measure_render(browser: Browser, base_url: str, db_url: str, n: int) -> dict[str, Any]:
    """Open a board holding n open incidents: how long the queue takes to render, whether
    scrolling to the far end draws the last rows, and what a scroll step costs."""
    open_now = await ensure_open(db_url, n)
    page = await open_console(browser, base_url)
    try:
        stats = await wait_board(page, at_least=n)
        scroll = await page.evaluate(
            """async () => {
                const sc = document.querySelector('#queue-scroll');
                const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
                const steps = [];
                for (let k = 1; k <= 20; k++) {
                    const t0 = performance.now();
                    sc.scrollTop = (sc.scrollHeight - sc.clientHeight) * k / 20;
                    await frame(); await frame();
                    steps.push(performance.now() - t0);
                }
                const view = window.__cadDispatcher.view();
                const rows = document.querySelectorAll('#queue tbody tr[data-id]');
                const last = rows[rows.length - 1];
                return { steps_ms_max: Math.max(...steps),
                         last_row_is_last: !!last && Number(last.dataset.id) === view[view.length - 1].id,
                         rows_in_dom: rows.length, shown: view.length };
            }"""
        )
        final = await page.evaluate("() => ({...window.__cadDispatcher.stats})")
    finally:
        await page.context.close()
    return {
        "open": open_now,
        "first_queue_ms": stats["firstQueueMs"],
        "snapshot_ms": stats["snapshotMs"],
        "queue_ms_max": final["queueMsMax"],
        "render_ms_max": final["renderMsMax"],
        "http_requests": final["httpRequests"],
        "scroll": scroll,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


async def _run(db_url: str, base_url: str, quick: bool, screenshot: Path | None) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            out: dict[str, Any] = {}
            # The baseline first, on a nearly empty board, then the surge, then the big board.
            out["render_100"] = await measure_render(browser, base_url, db_url, 100)
            out["surge"] = await measure_surge(
                browser,
                base_url,
                db_url,
                duration_s=20.0 if quick else 60.0,
                screenshot=screenshot,
            )
            out["render_10000"] = await measure_render(browser, base_url, db_url, 10_000)
            return out
        finally:
            await browser.close()


def run(
    db_url: str, base_url: str, quick: bool = False, screenshot: Path | None = None
) -> dict[str, Any]:
    """The bench's phase: a server on db_url (migrated, seeded, nothing open yet) at base_url."""
    if not Path(CHROMIUM).exists():
        return {"error": f"{CHROMIUM} is missing: apt-get install -y chromium"}
    return asyncio.run(_run(db_url, base_url, quick, screenshot))
