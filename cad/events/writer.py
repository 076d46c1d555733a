"""The event log writer every command uses: one event appended in the caller's transaction.

Sequences hand out numbers when a row is inserted, but transactions commit in any order,
so a reader at "seq > N" could pass over a number that commits later. Writers therefore
hold a *shared* transaction-scoped advisory lock (the "marker") from before they draw a
seq until they commit. Shared locks never wait for each other, so writers run in
parallel; readers use the marker to find the highest seq below which nothing can still
arrive (see ``horizon.py``) and never read past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# Arbitrary constant, chosen once: the advisory key of the writers' marker.
EVENTS_LOCK_KEY = 0x0CAD_0E0E


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: datetime
    type: str
    incident_id: int | None
    unit_id: int | None
    actor: str
    data: dict[str, Any]
    # What the event concerns, recorded when it was written (migration 0012), so that a
    # subscription filter is a function of the event alone: the incident's and the unit's
    # areas, and the incident's grade. None on events written before the migration.
    areas: tuple[str, ...] | None = None
    grade: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "type": self.type,
            "incident_id": self.incident_id,
            "unit_id": self.unit_id,
            "actor": self.actor,
            "data": self.data,
            "areas": list(self.areas) if self.areas is not None else None,
            "grade": self.grade,
        }


async def append_event(
    conn: asyncpg.Connection,
    type: str,
    actor: str,
    *,
    incident_id: int | None = None,
    unit_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Append one event; it becomes visible to readers once the caller commits."""
    if not conn.is_in_transaction():
        raise RuntimeError("append_event needs the caller's transaction")
    # The areas and grade come from subselects in the same statement (no extra round trip);
    # in the caller's transaction they see the incident as this command left it.
    row = await conn.fetchrow(
        """WITH marker AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($1::bigint))
           INSERT INTO events (seq, type, incident_id, unit_id, actor, data, areas, grade)
           SELECT nextval('events_seq_seq'), $2, $3, $4, $5, $6,
                  ARRAY(SELECT a FROM (SELECT area_code FROM incidents WHERE id = $3
                                       UNION
                                       SELECT area_code FROM units WHERE id = $4) AS s (a)
                        WHERE a IS NOT NULL ORDER BY a),
                  (SELECT grade FROM incidents WHERE id = $3)
           FROM marker
           RETURNING seq, at, areas, grade""",
        EVENTS_LOCK_KEY,
        type,
        incident_id,
        unit_id,
        actor,
        data or {},
    )
    assert row is not None
    return Event(
        row["seq"],
        row["at"],
        type,
        incident_id,
        unit_id,
        actor,
        data or {},
        _areas(row["areas"]),
        row["grade"],
    )


def event_from_row(row: asyncpg.Record) -> Event:
    return Event(
        row["seq"],
        row["at"],
        row["type"],
        row["incident_id"],
        row["unit_id"],
        row["actor"],
        row["data"],
        _areas(row["areas"]),
        row["grade"],
    )


def _areas(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)
