from __future__ import annotations

from datetime import datetime

import asyncpg


async def incidents_since(conn: asyncpg.Connection, since: datetime) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT grade, status, created_at, target_at, first_assigned_at, first_on_scene_at,
                  closed_at, call_received_at
           FROM incidents WHERE created_at >= $1 AND merged_into IS NULL""",
        since,
    )
    return rows


async def calls_since(conn: asyncpg.Connection, since: datetime) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT received_at, answered_at FROM calls WHERE received_at >= $1", since
    )
    return rows


async def units_by_status(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM units GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def pending_count(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("SELECT count(*) FROM incidents WHERE status = 'pending'")
    return value
