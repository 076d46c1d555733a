from __future__ import annotations

import asyncpg

# Each query returns the conditions that should have an open alarm right now.
TARGET_BREACHED = """
    SELECT 'target_breached' AS kind, i.id AS incident_id, NULL::bigint AS unit_id,
           NULL::bigint AS assignment_id,
           format('%s grade %s past its target with no unit on scene', i.ref, i.grade) AS message
    FROM incidents i
    WHERE i.status IN ('pending','dispatched') AND i.target_at < now()
      AND i.first_on_scene_at IS NULL AND i.grade = ANY($1::text[])"""

ACK_TIMEOUT = """
    SELECT 'ack_timeout' AS kind, a.incident_id, a.unit_id, a.id AS assignment_id,
           format('%s has not acknowledged %s after %s s', u.callsign, i.ref,
                  extract(epoch FROM now() - a.dispatched_at)::int) AS message
    FROM assignments a JOIN units u ON u.id = a.unit_id JOIN incidents i ON i.id = a.incident_id
    WHERE a.status = 'dispatched' AND a.acknowledged_at IS NULL
      AND a.dispatched_at < now() - make_interval(secs => $1)"""

WELFARE = """
    SELECT 'welfare_check' AS kind, a.incident_id, a.unit_id, a.id AS assignment_id,
           format('%s on scene at %s for %s min: welfare check', u.callsign, i.ref,
                  (extract(epoch FROM now() - a.on_scene_at) / 60)::int) AS message
    FROM assignments a JOIN units u ON u.id = a.unit_id JOIN incidents i ON i.id = a.incident_id
    JOIN unnest($1::text[], $2::int[]) AS lim(type_code, minutes) ON lim.type_code = i.type_code
    WHERE a.status = 'on_scene' AND a.on_scene_at < now() - make_interval(mins => lim.minutes)"""


async def due_alarms(
    conn: asyncpg.Connection,
    ack_timeout_s: int,
    type_codes: list[str],
    limits_min: list[int],
    attended_grades: list[str],
) -> list[asyncpg.Record]:
    """`attended_grades`: the grades with an attendance target (the scheme's target_s)."""
    rows: list[asyncpg.Record] = []
    rows += await conn.fetch(TARGET_BREACHED, attended_grades)
    rows += await conn.fetch(ACK_TIMEOUT, float(ack_timeout_s))
    rows += await conn.fetch(WELFARE, type_codes, limits_min)
    return rows


async def open_alarms(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT a.id, a.kind, a.incident_id, a.unit_id, a.assignment_id, a.raised_at,
                  a.message, u.callsign, i.ref
           FROM alarms a LEFT JOIN units u ON u.id = a.unit_id
                LEFT JOIN incidents i ON i.id = a.incident_id
           WHERE a.cleared_at IS NULL ORDER BY a.raised_at"""
    )
    return rows


# The kinds the timers raise and clear by themselves; any other waits for a person.
TIMER_KINDS = frozenset({"target_breached", "ack_timeout", "welfare_check"})


async def raise_alarm(conn: asyncpg.Connection, row: asyncpg.Record) -> int | None:
    value: int | None = await conn.fetchval(
        """INSERT INTO alarms (kind, incident_id, unit_id, assignment_id, message)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id""",
        row["kind"],
        row["incident_id"],
        row["unit_id"],
        row["assignment_id"],
        row["message"],
    )
    return value


async def clear_alarm(conn: asyncpg.Connection, alarm_id: int) -> None:
    await conn.execute("UPDATE alarms SET cleared_at = now() WHERE id = $1", alarm_id)


async def get_alarm(conn: asyncpg.Connection, alarm_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, kind, incident_id, unit_id, cleared_at, cleared_by FROM alarms
            WHERE id = $1 FOR UPDATE""",
        alarm_id,
    )


async def acknowledge_alarm(conn: asyncpg.Connection, alarm_id: int, by: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        """UPDATE alarms SET cleared_at = now(), cleared_by = $2 WHERE id = $1
           RETURNING id, kind, incident_id, cleared_by AS acknowledged_by,
                     cleared_at AS acknowledged_at""",
        alarm_id,
        by,
    )
    return row
