from __future__ import annotations

from typing import Any

import asyncpg


async def active_geojson(conn: asyncpg.Connection) -> dict[str, Any] | None:
    value: dict[str, Any] | None = await conn.fetchval(
        "SELECT geojson FROM area_sets WHERE active ORDER BY id DESC LIMIT 1"
    )
    return value


async def replace_active(conn: asyncpg.Connection, source: str, geojson: dict[str, Any]) -> int:
    await conn.execute("UPDATE area_sets SET active = false WHERE active")
    new_id: int = await conn.fetchval(
        "INSERT INTO area_sets (source, geojson) VALUES ($1, $2) RETURNING id", source, geojson
    )
    return new_id
