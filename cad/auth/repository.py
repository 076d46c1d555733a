from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

USER_COLUMNS = "id, username, password_hash, role, unit_id, disabled, must_change_password, demo"


async def get_by_username(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE username = $1",  # noqa: S608
        username,
    )


async def get_by_id(conn: asyncpg.Connection, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = $1",  # noqa: S608
        user_id,
    )


async def upsert_user(
    conn: asyncpg.Connection,
    username: str,
    password_hash: str,
    role: str,
    unit_id: int | None,
    *,
    demo: bool = False,
    must_change_password: bool = False,
) -> int:
    user_id: int = await conn.fetchval(
        """INSERT INTO users (username, password_hash, role, unit_id, demo, must_change_password)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (username) DO UPDATE
              SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,
                  unit_id = EXCLUDED.unit_id, disabled = false, demo = EXCLUDED.demo,
                  must_change_password = EXCLUDED.must_change_password, updated_at = now()
           RETURNING id""",
        username,
        password_hash,
        role,
        unit_id,
        demo,
        must_change_password,
    )
    return user_id


async def set_password(
    conn: asyncpg.Connection, user_id: int, password_hash: str, must_change: bool
) -> None:
    await conn.execute(
        """UPDATE users SET password_hash = $2, must_change_password = $3, updated_at = now()
            WHERE id = $1""",
        user_id,
        password_hash,
        must_change,
    )


async def unit_id_for_callsign(conn: asyncpg.Connection, callsign: str) -> int | None:
    value: int | None = await conn.fetchval("SELECT id FROM units WHERE callsign = $1", callsign)
    return value


# Sessions and their refresh tokens.


async def create_session(
    conn: asyncpg.Connection,
    session_id: UUID,
    user_id: int,
    ttl_s: int,
    address: str | None,
    user_agent: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO sessions (id, user_id, expires_at, address, user_agent)
           VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)""",
        session_id,
        user_id,
        float(ttl_s),
        address,
        user_agent,
    )


async def add_refresh_token(conn: asyncpg.Connection, token_hash: bytes, session_id: UUID) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        token_hash,
        session_id,
    )


async def spend_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    """Mark the token used, once: the row (with `reused`) for any known token, else None.

    The row lock on the token makes two concurrent uses of one token a use and a reuse,
    never two uses."""
    return await conn.fetchrow(
        """WITH tok AS (
               SELECT token_hash, session_id, used_at FROM refresh_tokens
                WHERE token_hash = $1 FOR UPDATE),
           spent AS (
               UPDATE refresh_tokens r SET used_at = now() FROM tok
                WHERE r.token_hash = tok.token_hash AND tok.used_at IS NULL
            RETURNING r.token_hash)
           SELECT tok.session_id, (tok.used_at IS NOT NULL) AS reused,
                  s.user_id, s.ended_at, s.ended_reason, (s.expires_at <= now()) AS expired
             FROM tok JOIN sessions s ON s.id = tok.session_id
             LEFT JOIN spent ON true""",
        token_hash,
    )


async def session_for_update(conn: asyncpg.Connection, session_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, user_id, ended_at, (expires_at <= now()) AS expired
             FROM sessions WHERE id = $1 FOR UPDATE""",
        session_id,
    )


async def touch_session(conn: asyncpg.Connection, session_id: UUID) -> None:
    await conn.execute("UPDATE sessions SET last_refresh_at = now() WHERE id = $1", session_id)


async def end_sessions(
    conn: asyncpg.Connection,
    reason: str,
    *,
    session_id: UUID | None = None,
    user_id: int | None = None,
    except_session: UUID | None = None,
) -> list[str]:
    """End one session, or every open session of a user; the ids of those it ended."""
    rows = await conn.fetch(
        """UPDATE sessions SET ended_at = now(), ended_reason = $1
            WHERE ended_at IS NULL
              AND ($2::uuid IS NULL OR id = $2)
              AND ($3::bigint IS NULL OR user_id = $3)
              AND ($4::uuid IS NULL OR id <> $4)
        RETURNING id""",
        reason,
        session_id,
        user_id,
        except_session,
    )
    return [str(r["id"]) for r in rows]


async def recently_ended(conn: asyncpg.Connection, within_s: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id::text AS id, ended_reason FROM sessions
            WHERE ended_at > now() - make_interval(secs => $1)""",
        float(within_s),
    )
    return rows


# Sign-in lockout.


async def lock_until(conn: asyncpg.Connection, key: str) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT until FROM signin_locks WHERE scope = 'account' AND key = $1 AND until > now()",
        key,
    )
    return value


async def lock(conn: asyncpg.Connection, key: str, lockout_s: int, failures: int) -> datetime:
    until: datetime = await conn.fetchval(
        """INSERT INTO signin_locks (scope, key, until, failures)
           VALUES ('account', $1, now() + make_interval(secs => $2), $3)
           ON CONFLICT (scope, key) DO UPDATE
              SET locked_at = now(), until = EXCLUDED.until, failures = EXCLUDED.failures
           RETURNING until""",
        key,
        float(lockout_s),
        failures,
    )
    return until


async def unlock(conn: asyncpg.Connection, key: str) -> bool:
    row = await conn.fetchrow(
        "DELETE FROM signin_locks WHERE scope = 'account' AND key = $1 RETURNING until > now()",
        key,
    )
    return bool(row and row[0])


async def take_expired_locks(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """DELETE FROM signin_locks WHERE until <= now() RETURNING key""",
    )
    return [r["key"] for r in rows]


async def recent_failures(
    conn: asyncpg.Connection, key: str, address: str | None, window_s: int
) -> tuple[int, int]:
    """Failures for a name (since its last success, unlock or lockout) and for an address,
    within the window: the count when Redis is not there to keep it."""
    row = await conn.fetchrow(
        """WITH since AS (
               SELECT greatest(now() - make_interval(secs => $3),
                               (SELECT max(at) FROM access_log
                                 WHERE lower(username) = $1
                                   AND ((action = 'signin' AND outcome = 'ok')
                                        OR action IN ('lockout', 'unlock')))) AS t)
           SELECT (SELECT count(*) FROM access_log, since
                    WHERE lower(username) = $1 AND action = 'signin' AND outcome = 'failure'
                      AND at > coalesce(since.t, now() - make_interval(secs => $3))) AS name,
                  (SELECT count(*) FROM access_log
                    WHERE address = $2 AND action = 'signin' AND outcome = 'failure'
                      AND at > now() - make_interval(secs => $3)) AS address""",
        key,
        address,
        float(window_s),
    )
    assert row is not None
    return int(row["name"]), int(row["address"])
