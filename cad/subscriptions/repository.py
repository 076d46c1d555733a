from __future__ import annotations

import asyncpg

_COLUMNS = """s.id, s.name, s.url, s.areas, s.grades, s.types, s.created_at, s.created_by,
              s.ended_at, s.cursor_seq, s.last_delivered_at, s.last_error, s.last_error_at,
              s.delivered"""


async def create(
    conn: asyncpg.Connection,
    name: str,
    url: str,
    secret: str,
    areas: list[str],
    grades: list[str],
    types: list[str],
    by: str,
) -> int:
    # From now on: the cursor starts at the head of the log.
    sub_id: int = await conn.fetchval(
        """INSERT INTO subscriptions (name, url, secret, areas, grades, types, created_by,
                                      cursor_seq)
           VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT coalesce(max(seq), 0) FROM events))
           RETURNING id""",
        name,
        url,
        secret,
        areas,
        grades,
        types,
        by,
    )
    return sub_id


async def with_stats(conn: asyncpg.Connection, sub_id: int | None) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_COLUMNS},
                   (SELECT count(*) FROM deliveries d
                     WHERE d.subscription_id = s.id AND d.delivered_at IS NULL) AS pending,
                   (SELECT min(d.event_at) FROM deliveries d
                     WHERE d.subscription_id = s.id AND d.delivered_at IS NULL) AS oldest_pending,
                   (SELECT coalesce(max(seq), 0) FROM events) - s.cursor_seq AS events_behind
              FROM subscriptions s
             WHERE ($1::bigint IS NULL OR s.id = $1)
             ORDER BY s.id""",  # noqa: S608
        sub_id,
    )
    return rows


async def end(conn: asyncpg.Connection, sub_id: int) -> bool:
    done = await conn.fetchval(
        "UPDATE subscriptions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL RETURNING id",
        sub_id,
    )
    return done is not None


async def active_ids(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch("SELECT id FROM subscriptions WHERE ended_at IS NULL ORDER BY id")
    return [r["id"] for r in rows]


async def lock(conn: asyncpg.Connection, sub_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, url, secret, areas, grades, types, cursor_seq, ended_at
             FROM subscriptions WHERE id = $1 FOR UPDATE""",
        sub_id,
    )


async def get_target(conn: asyncpg.Connection, sub_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, url, secret, ended_at FROM subscriptions WHERE id = $1", sub_id
    )


async def incidents_matching(
    conn: asyncpg.Connection,
    incident_ids: list[int],
    areas: list[str],
    grades: list[str],
    types: list[str],
) -> set[int]:
    rows = await conn.fetch(
        """SELECT id FROM incidents WHERE id = ANY($1::bigint[])
              AND (cardinality($2::text[]) = 0 OR area_code = ANY($2))
              AND (cardinality($3::text[]) = 0 OR grade = ANY($3))
              AND (cardinality($4::text[]) = 0 OR type_code = ANY($4))""",
        incident_ids,
        areas,
        grades,
        types,
    )
    return {r["id"] for r in rows}


async def add_delivery(
    conn: asyncpg.Connection, sub_id: int, incident_id: int, seq: int, at: object, body: bytes
) -> None:
    await conn.execute(
        """INSERT INTO deliveries (subscription_id, incident_id, event_seq, event_at, body)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        sub_id,
        incident_id,
        seq,
        at,
        body,
    )


async def advance(conn: asyncpg.Connection, sub_id: int, seq: int) -> None:
    await conn.execute("UPDATE subscriptions SET cursor_seq = $2 WHERE id = $1", sub_id, seq)


async def due(conn: asyncpg.Connection, sub_id: int, limit: int) -> list[asyncpg.Record]:
    """Per incident, its oldest undelivered change, if its retry time has come: a later
    change of an incident never overtakes an earlier one."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, incident_id, event_seq, event_at, body, attempts FROM (
               SELECT DISTINCT ON (incident_id) id, incident_id, event_seq, event_at, body,
                      attempts, next_attempt_at
                 FROM deliveries
                WHERE subscription_id = $1 AND delivered_at IS NULL
                ORDER BY incident_id, event_seq) d
            WHERE d.next_attempt_at <= now()
            ORDER BY d.event_seq LIMIT $2""",
        sub_id,
        limit,
    )
    return rows


async def delivered(conn: asyncpg.Connection, delivery_id: int, sub_id: int, status: int) -> None:
    await conn.execute(
        # The document is dropped once delivered (the row stays, as the record of what
        # was sent when): kept, bodies would grow by gigabytes a day at a busy desk.
        """UPDATE deliveries SET delivered_at = now(), attempts = attempts + 1,
                  last_status = $2, body = ''::bytea WHERE id = $1""",
        delivery_id,
        status,
    )
    await conn.execute(
        """UPDATE subscriptions SET delivered = delivered + 1, last_delivered_at = now()
            WHERE id = $1""",
        sub_id,
    )


async def failed(
    conn: asyncpg.Connection,
    delivery_id: int,
    sub_id: int,
    status: int | None,
    error: str,
    retry_in_s: float,
) -> None:
    await conn.execute(
        """UPDATE deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
                  next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1""",
        delivery_id,
        status,
        error,
        retry_in_s,
    )
    await conn.execute(
        "UPDATE subscriptions SET last_error = $2, last_error_at = now() WHERE id = $1",
        sub_id,
        error,
    )
