from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

COLUMNS = "id, at, action, outcome, username, user_id, address, user_agent, target, detail"


async def insert(
    conn: asyncpg.Connection,
    action: str,
    outcome: str,
    *,
    username: str | None,
    user_id: int | None,
    address: str | None,
    user_agent: str | None,
    target: str | None,
    detail: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO access_log
               (action, outcome, username, user_id, address, user_agent, target, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        action,
        outcome,
        username,
        user_id,
        address,
        user_agent,
        target,
        detail,
    )


async def search(
    conn: asyncpg.Connection,
    *,
    username: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    # Newest first; `before_id` pages back through the record.
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {COLUMNS} FROM access_log
             WHERE ($1::text IS NULL OR lower(username) = lower($1) OR target = $1)
               AND ($2::text IS NULL OR action = $2)
               AND ($3::timestamptz IS NULL OR at >= $3)
               AND ($4::timestamptz IS NULL OR at < $4)
               AND ($5::bigint IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6""",  # noqa: S608
        username,
        action,
        since,
        until,
        before_id,
        limit,
    )
    return rows
