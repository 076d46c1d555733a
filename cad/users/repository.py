from __future__ import annotations

import asyncpg

_SELECT = """SELECT u.id, u.username, u.role, u.unit_id, un.callsign AS unit_callsign,
                    u.disabled, u.must_change_password, u.demo, u.created_at, u.updated_at,
                    (SELECT count(*) FROM sessions s
                      WHERE s.user_id = u.id AND s.ended_at IS NULL AND s.expires_at > now())
                        AS open_sessions,
                    (SELECT l.until FROM signin_locks l
                      WHERE l.scope = 'account' AND l.key = lower(u.username)
                        AND l.until > now()) AS locked_until
               FROM users u LEFT JOIN units un ON un.id = u.unit_id"""


async def list_users(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(f"{_SELECT} ORDER BY u.username")
    return rows


async def get_user(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_SELECT} WHERE u.username = $1", username)


async def lock_user(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, username, role, unit_id, disabled FROM users WHERE username = $1 FOR UPDATE",
        username,
    )


async def exists(conn: asyncpg.Connection, username: str) -> bool:
    return bool(
        await conn.fetchval("SELECT 1 FROM users WHERE lower(username) = lower($1)", username)
    )


async def update_user(
    conn: asyncpg.Connection,
    user_id: int,
    *,
    disabled: bool,
    role: str,
    unit_id: int | None,
) -> None:
    await conn.execute(
        """UPDATE users SET disabled = $2, role = $3, unit_id = $4, updated_at = now()
            WHERE id = $1""",
        user_id,
        disabled,
        role,
        unit_id,
    )
