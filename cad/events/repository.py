from __future__ import annotations

import asyncpg

from cad.events.writer import Event, event_from_row


async def events_between(conn: asyncpg.Connection, after: int, before: int) -> list[Event]:
    rows = await conn.fetch(
        """SELECT seq, at, type, incident_id, unit_id, actor, data, areas, grade FROM events
           WHERE seq > $1 AND seq < $2 ORDER BY seq""",
        after,
        before,
    )
    return [event_from_row(r) for r in rows]


async def incident_events(conn: asyncpg.Connection, incident_id: int) -> list[Event]:
    rows = await conn.fetch(
        """SELECT seq, at, type, incident_id, unit_id, actor, data, areas, grade FROM events
           WHERE incident_id = $1 ORDER BY seq""",
        incident_id,
    )
    return [event_from_row(r) for r in rows]
