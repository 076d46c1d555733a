"""The event log writer every command uses: one event appended in the caller's transaction.

Sequences hand out numbers at INSERT time, but transactions commit in any order, so a
reader at "seq > N" could pass over a number that commits later. Drawing seq under a
transaction-scoped advisory lock makes seq order equal commit order: a later seq is only
drawn after every earlier one has committed or rolled back (a rollback leaves a permanent
gap, never a late arrival). The lock is held from the append to the commit, so commands
append their events last. Measured cost: see bench/results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# Arbitrary constant, chosen once: the key all event writers serialise on.
EVENTS_LOCK_KEY = 0x0CAD_0E0E
NOTIFY_CHANNEL = "cad_events"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: datetime
    type: str
    incident_id: int | None
    unit_id: int | None
    actor: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "type": self.type,
            "incident_id": self.incident_id,
            "unit_id": self.unit_id,
            "actor": self.actor,
            "data": self.data,
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
    """Append one event; it becomes visible (and is announced) when the caller commits."""
    if not conn.is_in_transaction():
        raise RuntimeError("append_event needs the caller's transaction")
    row = await conn.fetchrow(
        """WITH lock AS (SELECT pg_advisory_xact_lock($1::bigint)),
           ins AS (
               INSERT INTO events (seq, type, incident_id, unit_id, actor, data)
               SELECT nextval('events_seq_seq'), $2, $3, $4, $5, $6 FROM lock
               RETURNING seq, at)
           -- NOTIFY is delivered only on commit: listeners never see an uncommitted event.
           SELECT seq, at, pg_notify($7, seq::text) FROM ins""",
        EVENTS_LOCK_KEY,
        type,
        incident_id,
        unit_id,
        actor,
        data or {},
        NOTIFY_CHANNEL,
    )
    assert row is not None
    return Event(row["seq"], row["at"], type, incident_id, unit_id, actor, data or {})


def event_from_row(row: asyncpg.Record) -> Event:
    return Event(
        row["seq"],
        row["at"],
        row["type"],
        row["incident_id"],
        row["unit_id"],
        row["actor"],
        row["data"],
    )
