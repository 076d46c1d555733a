"""(f) A call costs the same at the thousandth: intake with 0 and with 50,000 incidents in
the last hour, in the same run, on two databases alike but for the backlog, in
alternating rounds.

The backlog is inserted straight into PostgreSQL (open, pending, created within the last
hour, spread over London) with auto-dispatch off, so what is measured is the request path:
the duplicate search, reverse lookup and inserts, not the engine planning 50,000 jobs.
Also reports the rows the duplicate search reads (EXPLAIN ANALYZE) at each size.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from bench.loadgen import median_index
from cad.incidents.repository import NEARBY_OPEN_INCIDENTS

BACKLOG = 50_000
ROUNDS = 3


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
    empty_url: str,
    start_server: Callable[[str, str], Any],
    intake_once: Callable[[Any], dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Intake (auto-dispatch off) with the backlog and without, in alternating rounds,
    each on a server of its own on a fresh copy of its database (``start_server(template,
    label)``): one round each side, as this used to be, gave 0.73 to 1.21 from run to run
    on the same code; three on two databases that each round filled further compared a
    backlog with a database that, by the second round, held 12,000-16,000 incidents of
    its own, clustered where the calls are."""
    out: dict[str, Any] = {"backlog": BACKLOG}
    asyncio.run(insert_backlog(db_url, BACKLOG))
    runs: dict[str, list[dict[str, Any]]] = {"empty": [], "full": []}
    sides = (("empty", empty_url), ("full", db_url))
    for i in range(ROUNDS):
        for name, template in sides if i % 2 == 0 else sides[::-1]:
            server = start_server(template, "round")
            try:
                runs[name].append(intake_once(server))
            finally:
                server.stop()
            log(f"backlog: intake round {i + 1}, {name}: {runs[name][-1]}")
    # Each round's pair ran back to back, so its ratio sees the same neighbours (the host
    # drifts from round to round); the table takes the median round, as (a) does.
    out["ratios"] = [
        round(f["rate_per_s"] / e["rate_per_s"], 3)
        for f, e in zip(runs["full"], runs["empty"], strict=True)
    ]
    median = median_index(out["ratios"])
    for name in ("empty", "full"):
        out[name] = {
            **runs[name][median],
            "rounds_rate_per_s": [r["rate_per_s"] for r in runs[name]],
        }
    out["empty_search"] = asyncio.run(duplicate_search_rows(empty_url))
    out["full_search"] = asyncio.run(duplicate_search_rows(db_url))
    return out
