"""(f) A call costs the same at the thousandth: intake with 0 and with 50,000 incidents in
the last hour, in the same run, on the same server and database.

The backlog is inserted straight into PostgreSQL (open, pending, created within the last
hour, spread over London) with auto-dispatch off, so what is measured is the request path:
the duplicate search, reverse lookup and inserts, not the engine planning 50,000 jobs.
Also reports the rows the duplicate search reads (EXPLAIN ANALYZE) at each size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from cad.incidents.repository import NEARBY_OPEN_INCIDENTS

BACKLOG = 50_000


async def insert_backlog(url: str, n: int) -> None:
    """n open incidents created over the last hour at random London points."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO incidents (ref, type_code, grade, grade_rule, status, lat, lng,
                   description, call_received_at, call_answered_at, created_at, target_at)
               SELECT 'BENCH ' || g, 'ASB', 'E', 'bench', 'pending',
                      51.30 + random() * 0.38, -0.50 + random() * 0.80, 'bench backlog',
                      t, t, t, t + interval '48 hours'
               FROM generate_series(1, $1) g,
                    LATERAL (SELECT now() - random() * interval '55 minutes' AS t) w""",
            n,
        )
        # Settle the table as a live one is (autovacuum would otherwise run during the
        # measurement that follows a bulk insert).
        await conn.execute("VACUUM ANALYZE incidents")
    finally:
        await conn.close()


async def duplicate_search_rows(url: str) -> dict[str, Any]:
    """Rows the duplicate search reads for a call in central London, from EXPLAIN."""
    conn = await asyncpg.connect(url)
    try:
        plan_json = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + NEARBY_OPEN_INCIDENTS,
            51.5007,
            -0.1246,
            0.0045,
            0.0072,
            # asyncpg wants a datetime for $5: let PostgreSQL compute it instead.
            await conn.fetchval("SELECT now() - interval '1 hour'"),
            "07700 900123",
        )
    finally:
        await conn.close()
    plan = json.loads(plan_json)[0]
    read = 0
    uses_index = False

    def walk(node: dict[str, Any]) -> None:
        nonlocal read, uses_index
        if node.get("Relation Name") == "incidents":
            read += int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))
        uses_index = uses_index or node.get("Index Name") == "incidents_near_idx"
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return {"rows_read": read, "uses_index": uses_index, "ms": plan.get("Execution Time")}


def run(
    db_url: str,
    intake_once: Callable[[], dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """intake_once() measures intake against a server on db_url (auto-dispatch off)."""
    out: dict[str, Any] = {"backlog": BACKLOG}
    out["empty"] = intake_once()
    out["empty_search"] = asyncio.run(duplicate_search_rows(db_url))
    asyncio.run(insert_backlog(db_url, BACKLOG))
    out["full"] = intake_once()
    out["full_search"] = asyncio.run(duplicate_search_rows(db_url))
    return out
