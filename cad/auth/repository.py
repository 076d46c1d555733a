from __future__ import annotations

import asyncpg


async def get_by_username(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, username, password_hash, role, unit_id, disabled FROM users WHERE username = $1",
        username,
    )


async def upsert_user(
    conn: asyncpg.Connection, username: str, password_hash: str, role: str, unit_id: int | None
) -> int:
    user_id: int = await conn.fetchval(
        """INSERT INTO users (username, password_hash, role, unit_id)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (username) DO UPDATE
              SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,
                  unit_id = EXCLUDED.unit_id, disabled = false
           RETURNING id""",
        username,
        password_hash,
        role,
        unit_id,
    )
    return user_id


async def unit_id_for_callsign(conn: asyncpg.Connection, callsign: str) -> int | None:
    value: int | None = await conn.fetchval("SELECT id FROM units WHERE callsign = $1", callsign)
    return value
