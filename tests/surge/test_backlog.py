"""A call costs the same at the thousandth: the per-call lookups are bounded by indexes,
and the board reads open incidents in pages with true counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.backlog import insert_backlog
from cad.incidents.repository import NEARBY_OPEN_INCIDENTS
from tests.conftest import Api, call_body

BACKLOG = 50_000
CENTRAL = (51.5007, -0.1246)
BOX = (0.0045, 0.0072)  # the duplicate search's 500 m box at London's latitude


async def _plan(conn: asyncpg.Connection) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(hours=1)
    raw = await conn.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + NEARBY_OPEN_INCIDENTS,
        *CENTRAL,
        *BOX,
        since,
        "07700 900123",
    )
    return dict(json.loads(raw)[0]["Plan"])


def _incident_scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if node.get("Relation Name") == "incidents" else []
    for child in node.get("Plans", []):
        found.extend(_incident_scans(child))
    return found


def _index_names(node: dict[str, Any]) -> set[str]:
    names = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        names |= _index_names(child)
    return names


def _rows_read(plan: dict[str, Any]) -> int:
    return sum(
        int(n.get("Actual Rows", 0)) + int(n.get("Rows Removed by Filter", 0))
        + int(n.get("Rows Removed by Index Recheck", 0))
        for n in _incident_scans(plan)
    )  # fmt: skip


async def test_duplicate_search_reads_a_bounded_number_of_rows(db_url: str) -> None:
    await insert_backlog(db_url, BACKLOG)
    conn = await asyncpg.connect(db_url)
    try:
        in_window = await conn.fetchval(
            "SELECT count(*) FROM incidents WHERE created_at > now() - interval '1 hour'"
        )
        assert in_window >= BACKLOG
        plan = await _plan(conn)
        assert "incidents_near_idx" in _index_names(plan), plan
        bounded = _rows_read(plan)
        # ~1 km² of 1,570: a few dozen rows, whatever the backlog.
        assert bounded <= 500, (bounded, plan)

        # Without the index the same query reads the whole window: the bound is the index's.
        async with conn.transaction():
            await conn.execute("DROP INDEX incidents_near_idx")
            unbounded = _rows_read(await _plan(conn))
            assert unbounded > 20 * max(bounded, 1), (unbounded, bounded)
            raise_rollback = True
            if raise_rollback:
                await conn.execute("ROLLBACK")
                await conn.execute("BEGIN")
        print(
            f"duplicate search rows read with {BACKLOG:,} recent: {bounded} (no index: {unbounded})"
        )
    finally:
        await conn.close()


async def test_intake_finds_duplicates_among_a_large_backlog(api: Api, db_url: str) -> None:
    await insert_backlog(db_url, 5_000)
    first = await api.as_("handler", "POST", "/api/calls", json=call_body("BURGLARY"))
    assert first.status_code == 201, first.text
    again = await api.as_(
        "handler", "POST", "/api/calls", json=call_body("BURGLARY", lat=51.5076, lng=-0.1276)
    )
    assert again.status_code == 201
    dups = [d["id"] for d in again.json()["possible_duplicates"]]
    assert first.json()["incident"]["id"] in dups


async def _open_ids(conn: asyncpg.Connection) -> set[int]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM incidents WHERE status <> 'closed'")}


async def test_open_board_pages_cover_every_open_incident_once(api: Api) -> None:
    for i in range(23):
        r = await api.as_(
            "handler",
            "POST",
            "/api/calls",
            json=call_body(["BURGLARY", "ASB", "THEFT"][i % 3], lat=51.45 + i * 0.005),
        )
        assert r.status_code == 201, r.text
    closed = r.json()["incident"]["id"]
    c = await api.as_(
        "dispatcher", "POST", f"/api/incidents/{closed}/close", json={"result_code": "NFA"}
    )
    assert c.status_code == 200, c.text

    seen: list[int] = []
    after = 0
    pages = 0
    counts = None
    while True:
        page = await api.as_("dispatcher", "GET", f"/api/incidents/open?after_id={after}&limit=5")
        assert page.status_code == 200, page.text
        body = page.json()
        if after == 0:
            counts = body["counts"]
        seen.extend(i["id"] for i in body["incidents"])
        assert all(i["status"] != "closed" for i in body["incidents"])
        pages += 1
        if body["next_after_id"] is None:
            break
        after = body["next_after_id"]
    async with api.tx() as conn:
        expected = await _open_ids(conn)
    assert len(seen) == len(set(seen)) and set(seen) == expected and closed not in seen
    assert pages >= 4
    assert counts is not None and counts["open"] == len(expected)
    assert sum(counts["by_grade"].values()) == len(expected)
    summary = (await api.as_("supervisor", "GET", "/api/incidents/summary")).json()
    assert summary["open"] == len(expected)
    assert summary["by_status"]["pending"] + summary["by_status"]["dispatched"] + summary[
        "by_status"
    ]["on_scene"] == len(expected)


async def test_open_board_refuses_bad_paging(api: Api) -> None:
    for q in ("after_id=-1", "limit=0", "limit=5001", "after_id=x"):
        r = await api.as_("dispatcher", "GET", f"/api/incidents/open?{q}")
        assert r.status_code == 422, (q, r.text)
        assert r.json()["errors"][0]["field"] in ("after_id", "limit")
