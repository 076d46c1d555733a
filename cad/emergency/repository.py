from __future__ import annotations

from datetime import datetime

import asyncpg

COLUMNS = """e.id AS emergency_id, e.incident_id, i.ref, e.unit_id, u.callsign, e.pressed_by,
             e.pressed_at, e.received_at, e.lat, e.lng, e.position_at, e.cancelled_at,
             e.cancel_reason,
             (SELECT a.id FROM alarms a WHERE a.kind = 'officer_emergency'
                 AND a.incident_id = e.incident_id ORDER BY a.id DESC LIMIT 1) AS alarm_id"""
FROM = (
    "FROM emergencies e JOIN incidents i ON i.id = e.incident_id JOIN units u ON u.id = e.unit_id"
)


# Arbitrary constant, chosen once: the advisory lock space of emergency presses.
EMERGENCY_LOCK = 0x0CAD_0911


async def lock_unit(conn: asyncpg.Connection, unit_id: int) -> asyncpg.Record | None:
    """The pressing unit, its presses serialised (two at once are one emergency) by a
    transaction-scoped advisory lock: a row lock here would take the unit before its
    incidents, against the lock order every assignment follows."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", EMERGENCY_LOCK, unit_id)
    return await conn.fetchrow(
        "SELECT id, callsign, status, lat, lng, position_at FROM units WHERE id = $1",
        unit_id,
    )


async def open_for_unit(conn: asyncpg.Connection, unit_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} {FROM} WHERE e.unit_id = $1 AND e.cancelled_at IS NULL",
        unit_id,
    )


async def get(conn: asyncpg.Connection, emergency_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} {FROM} WHERE e.id = $1",
        emergency_id,
    )


async def insert(
    conn: asyncpg.Connection,
    unit_id: int,
    incident_id: int,
    pressed_by: str,
    pressed_at: datetime,
    lat: float,
    lng: float,
    position_at: datetime | None,
) -> int:
    emergency_id: int = await conn.fetchval(
        """INSERT INTO emergencies
               (unit_id, incident_id, pressed_by, pressed_at, lat, lng, position_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
        unit_id,
        incident_id,
        pressed_by,
        pressed_at,
        lat,
        lng,
        position_at,
    )
    return emergency_id


async def cancel(conn: asyncpg.Connection, emergency_id: int, by: str, reason: str) -> None:
    await conn.execute(
        """UPDATE emergencies SET cancelled_at = now(), cancelled_by = $2, cancel_reason = $3
            WHERE id = $1""",
        emergency_id,
        by,
        reason,
    )


async def raise_alarm(
    conn: asyncpg.Connection, incident_id: int, unit_id: int, message: str
) -> int:
    alarm_id: int = await conn.fetchval(
        """INSERT INTO alarms (kind, incident_id, unit_id, message)
           VALUES ('officer_emergency', $1, $2, $3) RETURNING id""",
        incident_id,
        unit_id,
        message,
    )
    return alarm_id
