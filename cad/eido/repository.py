from __future__ import annotations

import asyncpg

# Arbitrary constant, chosen once: the advisory lock space of EIDO document ids.
EIDO_LOCK = 0x0CAD_0E1D


async def lock_document_id(conn: asyncpg.Connection, eido_id: str) -> None:
    """Two deliveries of one incident's documents are applied one after the other."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", EIDO_LOCK, eido_id)


async def applied(
    conn: asyncpg.Connection, eido_id: str, last_update: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT d.incident_id, i.ref, d.source_agency FROM eido_documents d
             JOIN incidents i ON i.id = d.incident_id
            WHERE d.eido_id = $1 AND d.last_update = $2""",
        eido_id,
        last_update,
    )


async def incident_for(conn: asyncpg.Connection, eido_id: str) -> int | None:
    value: int | None = await conn.fetchval(
        """SELECT incident_id FROM eido_documents WHERE eido_id = $1
            ORDER BY received_at LIMIT 1""",
        eido_id,
    )
    return value


async def record(
    conn: asyncpg.Connection,
    eido_id: str,
    last_update: str,
    incident_id: int,
    source_agency: str,
    source_incident_id: str | None,
    created: bool,
) -> None:
    await conn.execute(
        """INSERT INTO eido_documents (eido_id, last_update, incident_id, source_agency,
                                       source_incident_id, created_incident)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        eido_id,
        last_update,
        incident_id,
        source_agency,
        source_incident_id,
        created,
    )


async def new_notes(conn: asyncpg.Connection, incident_id: int, note_ids: list[str]) -> set[str]:
    """Mark these notes seen; the ids not seen before."""
    rows = await conn.fetch(
        """INSERT INTO eido_notes_seen (incident_id, note_id)
           SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING note_id""",
        incident_id,
        note_ids,
    )
    return {r["note_id"] for r in rows}


async def source_of(conn: asyncpg.Connection, incident_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT eido_id, source_agency, source_incident_id FROM eido_documents
            WHERE incident_id = $1 ORDER BY received_at LIMIT 1""",
        incident_id,
    )
