from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import asyncpg

from cad.markers.repository import MATCH_FIELDS, match_sql
from cad.places.repository import NEAREST_POSTCODES, NEAREST_POSTCODES_SQL, POSTCODE_FIELDS

GET_INCIDENT = """SELECT i.id, i.ref, i.type_code, i.grade, i.grade_rule, i.status, i.lat, i.lng,
    i.address, i.area_code, i.description, i.risk, i.call_received_at, i.call_answered_at,
    i.created_at, i.target_at, i.first_assigned_at, i.first_on_scene_at, i.closed_at,
    i.result_code, i.merged_into, i.updated_at, i.location_label, i.precision_m, i.ward_code,
    i.address_line, i.postcode FROM incidents i WHERE i.id = $1"""
GET_INCIDENT_FOR_UPDATE = GET_INCIDENT + " FOR UPDATE"


@dataclass(frozen=True, slots=True)
class IntakeRead:
    """What a new incident's call needs from the database before anything is written."""

    ids: dict[str, Any]  # id, call_id, ref: drawn now, used when it is written
    postcodes: list[dict[str, Any]]  # the nearest postcodes, with distance_m
    markers: list[dict[str, Any]]  # candidate markers (markers.service.matched decides)
    duplicates: list[tuple[Any, ...]]  # open incidents near in place and time (DUPLICATE_FIELDS)


@dataclass(frozen=True, slots=True)
class IntakeQuery:
    """What one new incident's call asks of the database (INTAKE_READ_COLUMNS)."""

    lat: float
    lng: float
    dlat: float
    dlng: float
    since: datetime
    phone: str
    day: date
    suffix: str
    easting: float
    northing: float
    postcode: str | None
    postcode_within_m: float
    has_phone: bool
    now: datetime
    marker_dlat: float
    marker_dlng: float


async def read_for_new_incidents(
    conn: asyncpg.Connection, queries: Sequence[IntakeQuery]
) -> list[IntakeRead]:
    """For each call, in ONE round trip for all of them: its new numbers, its place (the
    nearest postcodes), its markers and its duplicate search, each as an array of rows.
    The markers' postcode candidates are the given one and every postcode near enough
    to be the place's (the service keeps those of the one it settles on). Numbers drawn
    for a call that is then refused or replayed are gaps, as a rolled-back call's always
    were."""
    rows = await conn.fetch(
        READ_FOR_NEW_INCIDENTS,
        [{name: getattr(q, name) for name in _READ_NAMES} for q in queries],
    )
    assert [r["k"] for r in rows] == list(range(1, len(queries) + 1))
    return [
        IntakeRead(
            ids={"id": r["new_id"], "call_id": r["new_call_id"], "ref": r["new_ref"]},
            postcodes=[dict(zip(POSTCODE_FIELDS, p, strict=True)) for p in r["postcodes"] or ()],
            markers=[dict(zip(MATCH_FIELDS, m, strict=True)) for m in r["markers"]],
            duplicates=r["duplicates"],
        )
        for r in rows
    ]


# New incidents, each with its first call, its events and the Idempotency-Key's answer,
# in ONE statement for any number of calls: outside an explicit transaction, one round
# trip and one commit, atomic as a transaction is (inside one, it commits with the
# rest). The events take the writers' shared marker before drawing a seq (see
# cad/events/writer.py), held to the statement's commit, and are numbered in the order
# given. A call whose key is already taken writes nothing at all: its caller replays the
# answer. The caller gives each (user, key) once per statement.
NEW_INCIDENT_COLUMNS = (
    ("id", "bigint"), ("ref", "text"), ("type_code", "text"), ("grade", "text"),
    ("grade_rule", "text"), ("status", "text"), ("lat", "float8"), ("lng", "float8"),
    ("address", "text"), ("area_code", "text"), ("description", "text"), ("risk", "jsonb"),
    ("call_received_at", "timestamptz"), ("call_answered_at", "timestamptz"),
    ("created_at", "timestamptz"), ("target_at", "timestamptz"), ("created_by", "bigint"),
    ("closed_at", "timestamptz"), ("result_code", "text"), ("location_label", "text"),
    ("precision_m", "integer"), ("ward_code", "text"), ("address_line", "text"),
    ("postcode", "text"), ("type_name", "text"), ("place_text", "text"),
    ("call_id", "bigint"), ("caller_name", "text"), ("caller_phone", "text"),
    ("location_source", "text"), ("actor", "text"), ("user_id", "bigint"), ("key", "text"),
    ("route", "text"), ("request_hash", "text"), ("response", "jsonb"),
)  # fmt: skip


def _rows_of(param: str, columns: Sequence[tuple[str, str]], alias: str) -> str:
    """The rows of a JSON array of objects given as one parameter, numbered in the order
    given (``k``). One jsonb parameter rather than an array per column: asyncpg encodes
    an array element by element (with isinstance checks against abstract classes, in
    Python, for each), where the pool's jsonb codec (orjson) writes the whole batch in C."""
    typed = ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
    names = ", ".join(name for name, _ in columns)
    return f"ROWS FROM (jsonb_to_recordset({param}::jsonb) AS ({typed})) WITH ORDINALITY AS {alias}({names}, k)"


_NEW_NAMES = tuple(name for name, _ in NEW_INCIDENT_COLUMNS)
_EVENT_COLUMNS = (("incident_id", "bigint"), ("type", "text"), ("data", "jsonb"))
RECORD_NEW_INCIDENTS = f"""
WITH v AS MATERIALIZED (
    SELECT * FROM {_rows_of("$1", NEW_INCIDENT_COLUMNS, "v")}),
claim AS (
    INSERT INTO idempotency_keys (user_id, key, route, request_hash, status_code, response)
    SELECT v.user_id, v.key, v.route, v.request_hash, 201, v.response FROM v
    WHERE v.key IS NOT NULL
    ON CONFLICT DO NOTHING RETURNING user_id, key),
go AS MATERIALIZED (
    SELECT v.* FROM v
    WHERE v.key IS NULL
       OR EXISTS (SELECT 1 FROM claim WHERE claim.user_id = v.user_id AND claim.key = v.key)),
marker AS MATERIALIZED (
    SELECT pg_advisory_xact_lock_shared($3::bigint) FROM (SELECT 1 FROM go LIMIT 1) one),
i AS (
    INSERT INTO incidents (id, ref, type_code, grade, grade_rule, status, lat, lng, address,
        area_code, description, risk, call_received_at, call_answered_at, created_at,
        target_at, created_by, closed_at, result_code, location_label, precision_m,
        ward_code, address_line, postcode, updated_at, search_tsv)
    SELECT go.id, go.ref, go.type_code, go.grade, go.grade_rule, go.status, go.lat, go.lng,
           go.address, go.area_code, go.description, go.risk, go.call_received_at,
           go.call_answered_at, go.created_at, go.target_at, go.created_by, go.closed_at,
           go.result_code, go.location_label, go.precision_m, go.ward_code, go.address_line,
           go.postcode, go.created_at,
           cad_search_doc(go.ref, go.type_name, go.place_text, go.description, go.caller_name)
    FROM go
    RETURNING id),
c AS (
    INSERT INTO calls (id, incident_id, outcome, caller_name, caller_phone, location_source,
        lat, lng, address, area_code, type_code, description, risk, received_at,
        answered_at, handler_id, location_label, precision_m, ward_code, postcode,
        created_at)
    SELECT go.call_id, i.id, 'incident_created', go.caller_name, go.caller_phone,
           go.location_source, go.lat, go.lng, go.address, go.area_code, go.type_code,
           go.description, go.risk, go.call_received_at, go.call_answered_at, go.created_by,
           go.location_label, go.precision_m, go.ward_code, go.postcode, go.created_at
    FROM go JOIN i ON i.id = go.id
    RETURNING id),
e AS (
    INSERT INTO events (seq, type, incident_id, unit_id, actor, data, areas, grade)
    SELECT nextval('events_seq_seq'), x.type, x.incident_id, NULL, x.actor, x.data,
           -- What append_event records for a filter (its subselects would not see the
           -- incidents this statement inserts): the incident's area and grade.
           CASE WHEN x.area_code IS NULL THEN '{{}}'::text[] ELSE ARRAY[x.area_code] END,
           x.grade
    FROM marker, (SELECT t.incident_id, t.type, t.data, go.actor, go.area_code, go.grade
                  FROM {_rows_of("$2", _EVENT_COLUMNS, "t")}
                  JOIN go ON go.id = t.incident_id JOIN i ON i.id = t.incident_id
                  ORDER BY t.k) x
    RETURNING seq)
SELECT ARRAY(SELECT id FROM i) AS written, (SELECT count(*) FROM c) AS calls,
       (SELECT count(*) FROM e) AS events"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class NewIncident:
    """One call's new incident as RECORD_NEW_INCIDENTS writes it."""

    values: dict[str, Any]  # the incident's columns, its call's and the type and place text
    actor: str
    events: Sequence[tuple[str, dict[str, Any]]]
    # (user id, key, route, request hash, answer) when the request came with a key.
    claim: tuple[int, str, str, str, str] | None


async def record_new_incidents(
    conn: asyncpg.Connection, news: Sequence[NewIncident], events_lock_key: int
) -> set[int]:
    """Write new incidents with everything that goes with them; the ids written (a call
    whose key turns out to be taken is left out, and nothing of it is written)."""
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for new in news:
        user_id, key, route, body_hash, answer = new.claim or (None, None, None, None, None)
        row = new.values | {
            "actor": new.actor, "user_id": user_id, "key": key, "route": route,
            "request_hash": body_hash, "response": answer,
        }  # fmt: skip
        rows.append({name: row[name] for name in _NEW_NAMES})
        for event_type, data in new.events:
            events.append({"incident_id": row["id"], "type": event_type, "data": data})
    got = await conn.fetchrow(RECORD_NEW_INCIDENTS, rows, events, events_lock_key)
    assert got is not None
    written = set(got["written"])
    assert got["calls"] == len(written)
    assert got["events"] == sum(len(n.events) for n in news if n.values["id"] in written)
    return written


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


# What scoring and the answer use: a call has up to 50 candidates, and their texts were
# read, sent and decoded for nothing.
DUPLICATE_FIELDS = (
    "id", "ref", "type_code", "grade", "status", "lat", "lng", "created_at", "same_phone",
)  # fmt: skip


def nearby_open_sql(
    *, lat: str, lng: str, dlat: str, dlng: str, since: str, phone: str
) -> str:  # fmt: skip
    """The duplicate search with the given parameter expressions (its columns are
    DUPLICATE_FIELDS).

    The box and the time window are both index conditions of incidents_near_idx (GiST
    on point and time). same_phone: the incidents this phone has called about are read
    once (``caller``, materialized so that neither the key nor the lookup is worked out
    again for every candidate), through the phone index (its key, then the number
    exactly), not looked up per candidate (50 index probes a call in a busy hour, a third
    of the search); a number whose key is empty (no digits) is looked up per candidate
    as before. (As EXISTS the planner hashed it, scanning the whole calls table on every
    intake.)
    No float arithmetic here: PostgreSQL raises on float underflow (a fuzzed 5e-324
    degrees), Python does not."""
    return f"""WITH caller AS MATERIALIZED (
               SELECT k.key, ARRAY(
                   SELECT c.incident_id FROM calls c
                   WHERE c.phone_key = k.key AND c.phone_key <> ''
                     AND c.caller_phone = {phone}::text) AS incidents
               FROM (SELECT cad_phone_key({phone}::text) AS key) k)
           SELECT i.id, i.ref, i.type_code, i.grade, i.status, i.lat, i.lng,
                  i.created_at,
                  ({phone}::text <> '' AND CASE WHEN caller.key <> ''
                      THEN i.id = ANY(caller.incidents)
                      ELSE coalesce((
                          SELECT true FROM calls c
                          WHERE c.incident_id = i.id AND c.caller_phone = {phone}::text
                          LIMIT 1), false) END
                  ) AS same_phone
           FROM caller, incidents i
           WHERE i.status <> 'closed' AND i.merged_into IS NULL
             AND point(i.lng, i.lat) <@ box(point({lng}::float8 - {dlng}::float8, {lat}::float8 - {dlat}::float8),
                                            point({lng}::float8 + {dlng}::float8, {lat}::float8 + {dlat}::float8))
             AND i.created_at >= {since}
           ORDER BY i.created_at DESC LIMIT 50"""  # noqa: S608


NEARBY_OPEN_INCIDENTS = nearby_open_sql(
    lat="$1", lng="$2", dlat="$3", dlng="$4", since="$5", phone="$6"
)

# IntakeQuery's fields, with the type each takes in SQL (a field of a type not here fails
# at import).
_PG_TYPES = {
    "float": "float8", "str": "text", "str | None": "text", "datetime": "timestamptz",
    "date": "date", "bool": "boolean",
}  # fmt: skip
INTAKE_READ_COLUMNS = tuple((f.name, _PG_TYPES[str(f.type)]) for f in fields(IntakeQuery))
# Made once from constants: no value ever reaches the text. One row per call read, in
# the order given (k); the postcodes near each are read once, for the place and for the
# markers' candidates.
_INTAKE_MARKERS = match_sql(
    lat="q.lat", lng="q.lng", has_phone="q.has_phone", now="q.now", phone="q.phone",
    dlat="q.marker_dlat", dlng="q.marker_dlng",
    postcodes="array_append(near.candidates, q.postcode)",
)  # fmt: skip
_INTAKE_DUPLICATES = nearby_open_sql(
    lat="q.lat", lng="q.lng", dlat="q.dlat", dlng="q.dlng", since="q.since", phone="q.phone"
)
_READ_NAMES = tuple(name for name, _ in INTAKE_READ_COLUMNS)
READ_FOR_NEW_INCIDENTS = f"""
SELECT q.k, nextval('incidents_id_seq') AS new_id, nextval('calls_id_seq') AS new_call_id,
       'CAD ' || incident_ref_next(q.day) || '/' || q.suffix AS new_ref,
       near.postcodes,
       ARRAY(SELECT ROW(m.*) FROM ({_INTAKE_MARKERS}) m) AS markers,
       ARRAY(SELECT ROW(d.*) FROM ({_INTAKE_DUPLICATES}) d ORDER BY d.created_at DESC)
           AS duplicates
FROM {_rows_of("$1", INTAKE_READ_COLUMNS, "q")}
CROSS JOIN LATERAL (
    -- Each NULL when there is no postcode at all (a gazetteer not loaded).
    SELECT array_agg(ROW(p.*) ORDER BY p.distance_m, p.postcode) AS postcodes,
           array_agg(p.postcode) FILTER (WHERE p.distance_m <= q.postcode_within_m) AS candidates
    FROM ({NEAREST_POSTCODES_SQL.format(e="q.easting", n="q.northing", limit=NEAREST_POSTCODES)}) p
) near
ORDER BY q.k"""  # noqa: S608


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


async def open_page(
    conn: asyncpg.Connection, after_id: int, limit: int, areas: list[str] | None = None
) -> list[asyncpg.Record]:
    """One page of the open board by id: an index range scan, so a board of 10,000 open
    incidents loads in bounded pages; units and call counts come in two grouped reads.
    With ``areas`` (a desk's boroughs), the incidents in them and those in no borough."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id, i.ref, i.type_code, i.grade, i.grade_rule, i.status, i.lat, i.lng,
                   i.address, i.area_code, i.description, i.risk, i.call_received_at,
                   i.call_answered_at, i.created_at, i.target_at, i.first_assigned_at,
                   i.first_on_scene_at, i.closed_at, i.result_code, i.merged_into, i.updated_at,
                   i.location_label, i.precision_m, i.ward_code, i.address_line, i.postcode,
                   coalesce(c.n, 0) AS call_count,
                   coalesce(a.units, '{}') AS units
            FROM (SELECT id FROM incidents WHERE status <> 'closed' AND id > $1
                    AND ($3::text[] IS NULL OR area_code IS NULL OR area_code = ANY($3))
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
        areas,
    )
    return rows


async def open_counts(
    conn: asyncpg.Connection, areas: list[str] | None = None
) -> list[asyncpg.Record]:
    """Open incidents counted by grade and status, and how many are past their target."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT grade, status, count(*) AS n,
                  count(*) FILTER (WHERE target_at < now() AND first_on_scene_at IS NULL)
                      AS breached
           FROM incidents WHERE status <> 'closed'
             AND ($1::text[] IS NULL OR area_code IS NULL OR area_code = ANY($1))
           GROUP BY grade, status""",
        areas,
    )
    return rows
