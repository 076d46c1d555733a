from __future__ import annotations

from typing import Any

import asyncpg


async def claim(
    conn: asyncpg.Connection, user_id: int, key: str, route: str, request_hash: str
) -> bool:
    """True if this transaction now owns the key. A concurrent owner makes this wait for
    its commit (then False) or rollback (then True): retries never run twice."""
    value = await conn.fetchval(
        """INSERT INTO idempotency_keys (user_id, key, route, request_hash, status_code, response)
           VALUES ($1, $2, $3, $4, 0, 'null') ON CONFLICT DO NOTHING RETURNING 1""",
        user_id,
        key,
        route,
        request_hash,
    )
    return value is not None


async def stored(conn: asyncpg.Connection, user_id: int, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT route, request_hash, status_code, response FROM idempotency_keys
           WHERE user_id = $1 AND key = $2""",
        user_id,
        key,
    )
    return row


async def save(
    conn: asyncpg.Connection, user_id: int, key: str, status_code: int, response: Any
) -> None:
    await conn.execute(
        """UPDATE idempotency_keys SET status_code = $3, response = $4
           WHERE user_id = $1 AND key = $2""",
        user_id,
        key,
        status_code,
        response,
    )
