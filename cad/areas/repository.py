from __future__ import annotations

from typing import Any

import asyncpg


async def active_geojson(conn: asyncpg.Connection, level: str = "borough") -> dict[str, Any] | None:
    value: dict[str, Any] | None = await conn.fetchval(
        "SELECT geojson FROM area_sets WHERE active AND level = $1 ORDER BY id DESC LIMIT 1",
        level,
    )
    return value


async def replace_active(
    conn: asyncpg.Connection, source: str, geojson: dict[str, Any], level: str = "borough"
) -> int:
    await conn.execute("UPDATE area_sets SET active = false WHERE active AND level = $1", level)
    new_id: int = await conn.fetchval(
        "INSERT INTO area_sets (source, geojson, level) VALUES ($1, $2, $3) RETURNING id",
        source,
        geojson,
        level,
    )
    return new_id
