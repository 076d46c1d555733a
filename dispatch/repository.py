"""All of dispatch's SQL. Every function takes the caller's connection (and transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def list_units(
    conn: asyncpg.Connection, status: str | None = None, areas: list[str] | None = None
) -> list[asyncpg.Record]:
    """Units by callsign; with ``areas`` (a desk's boroughs), those based there, those on
    a job there, and those based nowhere: as the event stream's areas filter has them."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT u.id, u.callsign, u.unit_type, u.capabilities, u.home_station, u.area_code,
    u.status, u.lat, u.lng, u.position_at, u.status_at, a.incident_id, a.id AS assignment_id, i.grade AS incident_grade,
                   i.ref AS incident_ref
            FROM units u
            LEFT JOIN assignments a
                   ON a.unit_id = u.id AND a.status IN ('dispatched','en_route','on_scene')
            LEFT JOIN incidents i ON i.id = a.incident_id
            WHERE ($1::text IS NULL OR u.status = $1)
              AND ($2::text[] IS NULL OR u.area_code IS NULL OR u.area_code = ANY($2)
                   OR i.area_code = ANY($2))
            ORDER BY u.callsign""",
        status,
        areas,
    )
    return rows


async def get_unit(conn: asyncpg.Connection, unit_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT u.id, u.callsign, u.unit_type, u.capabilities, u.home_station, u.area_code,
    u.status, u.lat, u.lng, u.position_at, u.status_at FROM units u WHERE u.id = $1""",
        unit_id,
    )
    return row


async def lock_unit(conn: asyncpg.Connection, unit_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT u.id, u.callsign, u.unit_type, u.capabilities, u.home_station, u.area_code,
    u.status, u.lat, u.lng, u.position_at, u.status_at FROM units u WHERE u.id = $1 FOR UPDATE""",
        unit_id,
    )
    return row


async def lock_incident(conn: asyncpg.Connection, incident_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT id, ref, type_code, grade, status, lat, lng, first_assigned_at,
                  first_on_scene_at, closed_at
           FROM incidents WHERE id = $1 FOR UPDATE""",
        incident_id,
    )
    return row


async def take_available_unit(conn: asyncpg.Connection, unit_id: int) -> asyncpg.Record | None:
    """The single conditional UPDATE that makes "one unit, one job" hold under any race."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE units SET status = 'dispatched', status_at = now()
           WHERE id = $1 AND status = 'available'
           RETURNING id, callsign, unit_type, capabilities, status_at, lat, lng, position_at""",
        unit_id,
    )
    return row


async def take_unit_for_divert(
    conn: asyncpg.Connection, unit_id: int, from_assignment_id: int
) -> asyncpg.Record | None:
    """Take a unit off another job only if it still holds exactly that job, not on scene."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE units u SET status = 'dispatched', status_at = now()
           FROM assignments a
           WHERE u.id = $1 AND a.id = $2 AND a.unit_id = u.id
             AND a.status IN ('dispatched','en_route') AND u.status IN ('dispatched','en_route')
           RETURNING u.id, u.callsign, u.unit_type, u.capabilities, u.status_at, u.lat, u.lng,
                     u.position_at""",
        unit_id,
        from_assignment_id,
    )
    return row


async def insert_assignment(
    conn: asyncpg.Connection, incident_id: int, unit_id: int, auto: bool, actor: str
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        """INSERT INTO assignments (incident_id, unit_id, auto, assigned_by)
           VALUES ($1, $2, $3, $4)
           RETURNING id, incident_id, unit_id, status, auto, dispatched_at""",
        incident_id,
        unit_id,
        auto,
        actor,
    )
    return row


async def open_assignment_for_unit(conn: asyncpg.Connection, unit_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT a.id, a.incident_id, a.status, a.dispatched_at, a.acknowledged_at,
                  i.grade, i.ref
           FROM assignments a JOIN incidents i ON i.id = a.incident_id
           WHERE a.unit_id = $1 AND a.status IN ('dispatched','en_route','on_scene')""",
        unit_id,
    )
    return row


async def open_assignments_for_incident(
    conn: asyncpg.Connection, incident_id: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT a.id, a.unit_id, a.status, u.capabilities, u.callsign
           FROM assignments a JOIN units u ON u.id = a.unit_id
           WHERE a.incident_id = $1 AND a.status IN ('dispatched','en_route','on_scene')
           ORDER BY a.id""",
        incident_id,
    )
    return rows


async def update_assignment(
    conn: asyncpg.Connection,
    assignment_id: int,
    status: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> asyncpg.Record:
    # Each timestamp is set once, on the first move into its state. `at` is when the
    # officer pressed the button, if that was earlier than now (a change sent late).
    row: asyncpg.Record = await conn.fetchrow(
        """UPDATE assignments SET
               status = $2,
               acknowledged_at = CASE WHEN $2 IN ('en_route','on_scene')
                                      THEN coalesce(acknowledged_at, $4, now())
                                      ELSE acknowledged_at END,
               en_route_at = CASE WHEN $2 = 'en_route' THEN coalesce(en_route_at, $4, now())
                                  ELSE en_route_at END,
               on_scene_at = CASE WHEN $2 = 'on_scene' THEN coalesce(on_scene_at, $4, now())
                                  ELSE on_scene_at END,
               cleared_at = CASE WHEN $2 IN ('cleared','cancelled') THEN coalesce($4, now())
                                 ELSE cleared_at END,
               cleared_reason = coalesce($3, cleared_reason)
           WHERE id = $1
           RETURNING id, incident_id, unit_id, status, dispatched_at, acknowledged_at,
                     en_route_at, on_scene_at, cleared_at""",
        assignment_id,
        status,
        reason,
        at,
    )
    return row


async def acknowledge_assignment(
    conn: asyncpg.Connection, assignment_id: int, at: datetime | None
) -> datetime | None:
    """Set the first acknowledgement (phase two of a dispatch); None if already set."""
    value: datetime | None = await conn.fetchval(
        """UPDATE assignments SET acknowledged_at = coalesce($2, now())
            WHERE id = $1 AND acknowledged_at IS NULL RETURNING acknowledged_at""",
        assignment_id,
        at,
    )
    return value


async def set_unit_status(conn: asyncpg.Connection, unit_id: int, status: str) -> datetime:
    at: datetime = await conn.fetchval(
        "UPDATE units SET status = $2, status_at = now() WHERE id = $1 RETURNING status_at",
        unit_id,
        status,
    )
    return at


async def set_incident_status(
    conn: asyncpg.Connection, incident_id: int, status: str
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        """UPDATE incidents SET status = $2, updated_at = now(),
               first_assigned_at = CASE WHEN $2 IN ('dispatched','on_scene')
                                        THEN coalesce(first_assigned_at, now())
                                        ELSE first_assigned_at END,
               first_on_scene_at = CASE WHEN $2 = 'on_scene'
                                        THEN coalesce(first_on_scene_at, now())
                                        ELSE first_on_scene_at END
           WHERE id = $1
           RETURNING id, status, first_assigned_at, first_on_scene_at""",
        incident_id,
        status,
    )
    return row


async def close_incident(
    conn: asyncpg.Connection, incident_id: int, result_code: str
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        """UPDATE incidents SET status = 'closed', closed_at = now(), result_code = $2,
               updated_at = now()
           WHERE id = $1 RETURNING id, status, closed_at, result_code""",
        incident_id,
        result_code,
    )
    return row


async def record_positions(
    conn: asyncpg.Connection,
    ids: list[int],
    lats: list[float],
    lngs: list[float],
    ats: list[datetime],
) -> list[int]:
    """Bulk AVL; a report older than the one held is ignored (out-of-order delivery)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """UPDATE units u SET lat = v.lat, lng = v.lng, position_at = v.at
           FROM unnest($1::bigint[], $2::float8[], $3::float8[], $4::timestamptz[])
                AS v(id, lat, lng, at)
           WHERE u.id = v.id AND (u.position_at IS NULL OR u.position_at <= v.at)
           RETURNING u.id""",
        ids,
        lats,
        lngs,
        ats,
    )
    return [r["id"] for r in rows]


async def existing_unit_ids(conn: asyncpg.Connection, ids: list[int]) -> set[int]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id FROM units WHERE id = ANY($1::bigint[])", ids
    )
    return {r["id"] for r in rows}


async def pending_queue(
    conn: asyncpg.Connection, grades: list[str], limit: int = 500
) -> list[asyncpg.Record]:
    """Open incidents of auto-dispatched grades, most urgent first, then oldest.

    Each grade's oldest come off incidents_queue_idx, so a pass reads ``limit`` incidents
    however many are waiting, and only their assignments."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id, i.ref, i.type_code, i.grade, i.status, i.lat, i.lng, i.created_at,
                  coalesce(a.unit_ids, '{}') AS unit_ids
           FROM unnest($1::text[]) WITH ORDINALITY AS g(grade, rank)
           CROSS JOIN LATERAL (
               SELECT q.id, q.ref, q.type_code, q.grade, q.status, q.lat, q.lng, q.created_at
               FROM incidents q
               WHERE q.grade = g.grade AND q.merged_into IS NULL
                 AND q.status IN ('pending', 'dispatched', 'on_scene')
               ORDER BY q.created_at, q.id
               LIMIT $2) i
           LEFT JOIN LATERAL (
               SELECT array_agg(x.unit_id) AS unit_ids
               FROM assignments x
               WHERE x.incident_id = i.id AND x.status IN ('dispatched','en_route','on_scene')
           ) a ON true
           ORDER BY g.rank, i.created_at, i.id
           LIMIT $2""",
        grades,
        limit,
    )
    return rows


# Each id looked up by its key (LATERAL ... LIMIT 1 cannot be flattened into a join):
# as `id = ANY($1) AND status = 'pending'` the planner, its statistics taken while few
# incidents were pending, walked the queue index through every pending incident to find
# these few (5 ms a pass once a surge had left thousands pending).
UNTOUCHED = """SELECT x.id FROM unnest($1::bigint[]) AS x(id)
    CROSS JOIN LATERAL (SELECT i.status, i.merged_into FROM incidents i
                        WHERE i.id = x.id LIMIT 1) i
    WHERE i.status = 'pending' AND i.merged_into IS NULL
      AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.incident_id = x.id
                      AND a.status IN ('dispatched', 'en_route', 'on_scene'))"""


async def untouched(conn: asyncpg.Connection, incident_ids: list[int]) -> set[int]:
    """Of these incidents, those still pending with no unit on them: what an arrival
    from its incident.created event says (an emergency or an import may have sent units
    in the transaction that created it)."""
    rows = await conn.fetch(UNTOUCHED, incident_ids)
    return {r["id"] for r in rows}


async def upsert_unit(conn: asyncpg.Connection, unit: dict[str, Any]) -> int:
    unit_id: int = await conn.fetchval(
        """INSERT INTO units (callsign, unit_type, capabilities, home_station, area_code, status,
                              lat, lng, position_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (callsign) DO UPDATE
              SET unit_type = EXCLUDED.unit_type, capabilities = EXCLUDED.capabilities,
                  home_station = EXCLUDED.home_station, area_code = EXCLUDED.area_code
           RETURNING id""",
        unit["callsign"],
        unit["unit_type"],
        unit["capabilities"],
        unit.get("home_station"),
        unit.get("area_code"),
        unit.get("status", "available"),
        unit.get("lat"),
        unit.get("lng"),
        unit.get("position_at"),
    )
    return unit_id
