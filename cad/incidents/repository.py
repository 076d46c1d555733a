from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

GET_INCIDENT = """SELECT i.id, i.ref, i.type_code, i.grade, i.grade_rule, i.status, i.lat, i.lng,
    i.address, i.area_code, i.description, i.risk, i.call_received_at, i.call_answered_at,
    i.created_at, i.target_at, i.first_assigned_at, i.first_on_scene_at, i.closed_at,
    i.result_code, i.merged_into, i.updated_at, i.location_label, i.precision_m, i.ward_code,
    i.address_line, i.postcode FROM incidents i WHERE i.id = $1"""
GET_INCIDENT_FOR_UPDATE = GET_INCIDENT + " FOR UPDATE"


async def insert_incident_with_call(
    conn: asyncpg.Connection, v: dict[str, Any], call: dict[str, Any], day: date, suffix: str
) -> asyncpg.Record:
    """The new incident, its reference and its first call in one round trip (intake's
    hot path). The row carries the incident's columns plus call_id / call_created_at."""
    row: asyncpg.Record = await conn.fetchrow(
        """WITH r AS (SELECT 'CAD ' || incident_ref_next($18::date) || '/' || $19 AS ref),
           i AS (
               INSERT INTO incidents (ref, type_code, grade, grade_rule, status, lat, lng,
                   address, area_code, description, risk, call_received_at, call_answered_at,
                   created_at, target_at, created_by, closed_at, result_code, location_label,
                   precision_m, ward_code, address_line, postcode, search_tsv)
               SELECT r.ref, $1, $2, $3, $4, $5::float8, $6::float8, $7::text, $8, $9::text,
                      $10::jsonb, $11::timestamptz, $12::timestamptz, $13::timestamptz,
                      $14::timestamptz, $15::bigint, $16::timestamptz, $17, $23::text,
                      $24::integer, $25, $26::text, $27,
                      cad_search_doc(r.ref, $28::text, $29::text, $9::text, $20::text)
               FROM r
               RETURNING *),
           c AS (
               INSERT INTO calls (incident_id, outcome, caller_name, caller_phone,
                   location_source, lat, lng, address, area_code, type_code, description, risk,
                   received_at, answered_at, handler_id, location_label, precision_m, ward_code,
                   postcode)
               SELECT i.id, 'incident_created', $20, $21, $22, i.lat, i.lng, i.address,
                      i.area_code, i.type_code, i.description, i.risk, i.call_received_at,
                      i.call_answered_at, i.created_by, i.location_label, i.precision_m,
                      i.ward_code, i.postcode
               FROM i
               RETURNING id, created_at)
           SELECT i.id, i.ref, i.type_code, i.grade, i.grade_rule, i.status, i.lat, i.lng,
                  i.address, i.area_code, i.description, i.risk, i.call_received_at,
                  i.call_answered_at, i.created_at, i.target_at, i.first_assigned_at,
                  i.first_on_scene_at, i.closed_at, i.result_code, i.merged_into, i.updated_at,
                  i.location_label, i.precision_m, i.ward_code, i.address_line, i.postcode,
                  c.id AS call_id, c.created_at AS call_created_at
           FROM i, c""",
        v["type_code"],
        v["grade"],
        v["grade_rule"],
        v["status"],
        v["lat"],
        v["lng"],
        v["address"],
        v["area_code"],
        v["description"],
        v["risk"],
        v["received_at"],
        v["answered_at"],
        v["created_at"],
        v["target_at"],
        v["created_by"],
        v.get("closed_at"),
        v.get("result_code"),
        day,
        suffix,
        call["caller_name"],
        call["caller_phone"],
        call["location_source"],
        v.get("location_label"),
        v.get("precision_m"),
        v.get("ward_code"),
        v.get("address_line"),
        v.get("postcode"),
        v["type_name"],
        v["place_text"],
    )
    return row


async def insert_call(conn: asyncpg.Connection, v: dict[str, Any]) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        """INSERT INTO calls (incident_id, outcome, caller_name, caller_phone, location_source,
                lat, lng, address, area_code, type_code, description, risk, received_at,
                answered_at, handler_id, location_label, precision_m, ward_code, postcode)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19)
           RETURNING id, incident_id, outcome, received_at, answered_at, created_at""",
        v["incident_id"],
        v["outcome"],
        v["caller_name"],
        v["caller_phone"],
        v["location_source"],
        v["lat"],
        v["lng"],
        v["address"],
        v["area_code"],
        v["type_code"],
        v["description"],
        v["risk"],
        v["received_at"],
        v["answered_at"],
        v["handler_id"],
        v.get("location_label"),
        v.get("precision_m"),
        v.get("ward_code"),
        v.get("postcode"),
    )
    return row


async def add_search_text(conn: asyncpg.Connection, incident_id: int, text: str) -> None:
    """Make later words (a remark, a linked caller's account) findable on the incident,
    weighted as what was said (C)."""
    await conn.execute(
        """UPDATE incidents
           SET search_tsv = search_tsv || setweight(to_tsvector('english', $2::text), 'C')
           WHERE id = $1""",
        incident_id,
        text,
    )


async def get_incident(
    conn: asyncpg.Connection, incident_id: int, for_update: bool = False
) -> asyncpg.Record | None:
    query = GET_INCIDENT_FOR_UPDATE if for_update else GET_INCIDENT
    row: asyncpg.Record | None = await conn.fetchrow(query, incident_id)
    return row


async def list_incidents(
    conn: asyncpg.Connection,
    statuses: list[str] | None,
    grades: list[str] | None,
    limit: int,
    open_only: bool,
    grade_order: Sequence[str],
) -> list[asyncpg.Record]:
    """Open before closed, then by grade (`grade_order`, most urgent first), newest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id, i.ref, i.type_code, i.grade, i.grade_rule, i.status, i.lat, i.lng,
    i.address, i.area_code, i.description, i.risk, i.call_received_at, i.call_answered_at,
    i.created_at, i.target_at, i.first_assigned_at, i.first_on_scene_at, i.closed_at,
    i.result_code, i.merged_into, i.updated_at, i.location_label, i.precision_m, i.ward_code,
    i.address_line, i.postcode,
                   (SELECT count(*) FROM calls c WHERE c.incident_id = i.id) AS call_count,
                   coalesce((SELECT array_agg(u.callsign ORDER BY a.id)
                             FROM assignments a JOIN units u ON u.id = a.unit_id
                             WHERE a.incident_id = i.id
                               AND a.status IN ('dispatched','en_route','on_scene')), '{}')
                       AS units
            FROM incidents i
            WHERE ($1::text[] IS NULL OR i.status = ANY($1))
              AND ($2::text[] IS NULL OR i.grade = ANY($2))
              AND (NOT $4 OR i.status <> 'closed')
            ORDER BY CASE WHEN i.status = 'closed' THEN 1 ELSE 0 END,
                     array_position($5::text[], i.grade), i.created_at DESC
            LIMIT $3""",
        statuses,
        grades,
        limit,
        open_only,
        list(grade_order),
    )
    return rows


async def calls_for_incident(conn: asyncpg.Connection, incident_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, outcome, caller_name, caller_phone, location_source, lat, lng, address,
                  area_code, type_code, description, risk, received_at, answered_at, created_at,
                  handler_id, location_label, precision_m, ward_code, postcode
           FROM calls WHERE incident_id = $1 ORDER BY id""",
        incident_id,
    )
    return rows


async def assignments_for_incident(
    conn: asyncpg.Connection, incident_id: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT a.id, a.unit_id, u.callsign, u.unit_type, a.status, a.auto, a.assigned_by,
                  a.dispatched_at, a.acknowledged_at, a.en_route_at, a.on_scene_at,
                  a.cleared_at, a.cleared_reason
           FROM assignments a JOIN units u ON u.id = a.unit_id
           WHERE a.incident_id = $1 ORDER BY a.id""",
        incident_id,
    )
    return rows


async def nearby_open_incidents(
    conn: asyncpg.Connection,
    lat: float,
    lng: float,
    dlat: float,
    dlng: float,
    since: datetime,
    phone: str = "",
) -> list[asyncpg.Record]:
    """Open incidents in a lat/lng box since a time, and whether a call from `phone` is on
    them: rows read are bounded by the GiST index on
    (point, created_at), whatever the size of the backlog."""
    rows: list[asyncpg.Record] = await conn.fetch(
        NEARBY_OPEN_INCIDENTS, lat, lng, dlat, dlng, since, phone
    )
    return rows


# The box and the time window are both index conditions of incidents_near_idx (GiST on
# point and time). No float arithmetic here: PostgreSQL raises on float underflow (a fuzzed 5e-324 degrees), Python does not.
NEARBY_OPEN_INCIDENTS = """SELECT i.id, i.ref, i.type_code, i.grade, i.status, i.lat, i.lng,
                  i.created_at, i.address, i.address_line, i.description,
                  ($6::text <> '' AND EXISTS (
                      SELECT 1 FROM calls c
                      WHERE c.incident_id = i.id AND c.caller_phone = $6::text)) AS same_phone
           FROM incidents i
           WHERE i.status <> 'closed' AND i.merged_into IS NULL
             AND point(i.lng, i.lat) <@ box(point($2::float8 - $4::float8, $1::float8 - $3::float8),
                                            point($2::float8 + $4::float8, $1::float8 + $3::float8))
             AND i.created_at >= $5
           ORDER BY i.created_at DESC LIMIT 50"""


async def set_grade(
    conn: asyncpg.Connection, incident_id: int, grade: str, rule: str, target_at: datetime | None
) -> None:
    await conn.execute(
        """UPDATE incidents SET grade = $2, grade_rule = $3, target_at = $4, updated_at = now()
           WHERE id = $1""",
        incident_id,
        grade,
        rule,
        target_at,
    )


async def reopen(conn: asyncpg.Connection, incident_id: int, status: str) -> None:
    await conn.execute(
        """UPDATE incidents SET status = $2, closed_at = NULL, result_code = NULL,
               updated_at = now() WHERE id = $1""",
        incident_id,
        status,
    )


async def mark_merged(conn: asyncpg.Connection, incident_id: int, into_id: int) -> None:
    await conn.execute(
        """UPDATE incidents SET merged_into = $2, status = 'closed', closed_at = now(),
               result_code = 'MERGED', updated_at = now() WHERE id = $1""",
        incident_id,
        into_id,
    )


async def merge_search_text(conn: asyncpg.Connection, from_id: int, into_id: int) -> None:
    """The survivor of a merge is found by everything the merged incident was found by."""
    await conn.execute(
        """UPDATE incidents t SET search_tsv = t.search_tsv || f.search_tsv
           FROM incidents f WHERE f.id = $1 AND t.id = $2""",
        from_id,
        into_id,
    )


async def move_calls(conn: asyncpg.Connection, from_id: int, into_id: int) -> int:
    result: str = await conn.execute(
        "UPDATE calls SET incident_id = $2 WHERE incident_id = $1", from_id, into_id
    )
    return int(result.split()[-1])


async def open_page(conn: asyncpg.Connection, after_id: int, limit: int) -> list[asyncpg.Record]:
    """One page of the open board by id: an index range scan, so a board of 10,000 open
    incidents loads in bounded pages; units and call counts come in two grouped reads."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id, i.ref, i.type_code, i.grade, i.grade_rule, i.status, i.lat, i.lng,
                   i.address, i.area_code, i.description, i.risk, i.call_received_at,
                   i.call_answered_at, i.created_at, i.target_at, i.first_assigned_at,
                   i.first_on_scene_at, i.closed_at, i.result_code, i.merged_into, i.updated_at,
                   i.location_label, i.precision_m, i.ward_code, i.address_line, i.postcode,
                   coalesce(c.n, 0) AS call_count,
                   coalesce(a.units, '{}') AS units
            FROM (SELECT id FROM incidents WHERE status <> 'closed' AND id > $1
                  ORDER BY id LIMIT $2) page
            JOIN incidents i ON i.id = page.id
            LEFT JOIN LATERAL (SELECT count(*) AS n FROM calls WHERE incident_id = i.id) c
                ON true
            LEFT JOIN LATERAL (
                SELECT array_agg(u.callsign ORDER BY a.id) AS units
                FROM assignments a JOIN units u ON u.id = a.unit_id
                WHERE a.incident_id = i.id
                  AND a.status IN ('dispatched','en_route','on_scene')) a ON true
            ORDER BY i.id""",
        after_id,
        limit,
    )
    return rows


async def open_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Open incidents counted by grade and status, and how many are past their target."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT grade, status, count(*) AS n,
                  count(*) FILTER (WHERE target_at < now() AND first_on_scene_at IS NULL)
                      AS breached
           FROM incidents WHERE status <> 'closed'
           GROUP BY grade, status"""
    )
    return rows
