"""Search and history SQL. Statements are assembled from fixed fragments for the filters
given (each value a $n parameter), so every combination gets a plan of its own that
uses the index its most selective filter has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from cad.db.sql import Params

TSQUERY = "websearch_to_tsquery('english', {q}::text)"
HEADLINE_OPTIONS = (
    'StartSel=\x02, StopSel=\x03, MaxWords=24, MinWords=10, MaxFragments=2, FragmentDelimiter=" … "'
)


@dataclass
class Filters:
    text: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    grades: list[str] | None = None
    types: list[str] | None = None
    statuses: list[str] | None = None
    open_only: bool = False
    area_code: str | None = None
    ward_code: str | None = None
    unit_id: int | None = None
    phone: str | None = None
    postcode: str | None = None
    postcode_range: tuple[str, str] | None = None
    # (lat, lng, radius_m, dlat, dlng, metres per degree of longitude here)
    near: tuple[float, float, float, float, float, float] | None = None


def _where(f: Filters, arg: Params) -> list[str]:
    w: list[str] = []
    if f.text is not None:
        w.append(f"i.search_tsv @@ {TSQUERY.format(q=arg(f.text))}")
    if f.created_from is not None:
        w.append(f"i.created_at >= {arg(f.created_from)}")
    if f.created_to is not None:
        w.append(f"i.created_at < {arg(f.created_to)}")
    if f.grades:
        w.append(f"i.grade = ANY({arg(f.grades)}::text[])")
    if f.types:
        w.append(f"i.type_code = ANY({arg(f.types)}::text[])")
    if f.open_only:
        w.append("i.status <> 'closed'")
    elif f.statuses:
        w.append(f"i.status = ANY({arg(f.statuses)}::text[])")
    if f.area_code is not None:
        w.append(f"i.area_code = {arg(f.area_code)}")
    if f.ward_code is not None:
        w.append(f"i.ward_code = {arg(f.ward_code)}")
    if f.unit_id is not None:
        unit = arg(f.unit_id)
        w.append(f"i.id IN (SELECT a.incident_id FROM assignments a WHERE a.unit_id = {unit})")  # noqa: S608
    if f.phone is not None:
        phone = arg(f.phone)
        # The number's incidents as an array, read once from calls_phone_idx: as IN (…)
        # the planner walked the time index and probed calls per incident (13,767 probes
        # for a caller with 3,396 calls).
        w.append(
            "i.id = ANY(ARRAY(SELECT c.incident_id FROM calls c WHERE c.phone_key <> '' "  # noqa: S608
            f"AND c.phone_key = cad_phone_key({phone}::text) AND c.incident_id IS NOT NULL))"
        )
    if f.postcode is not None:
        w.append(f"i.postcode = {arg(f.postcode)}::text")
    if f.postcode_range is not None:
        lo, hi = f.postcode_range
        w.append(f"i.postcode >= {arg(lo)}::text AND i.postcode < {arg(hi)}::text")
    if f.near is not None:
        lat, lng, radius, dlat, dlng, m_lng = f.near
        la, ln, dla, dln = arg(lat), arg(lng), arg(dlat), arg(dlng)
        w.append(
            f"point(i.lng, i.lat) <@ box(point({ln}::float8 - {dln}::float8, "
            f"{la}::float8 - {dla}::float8), point({ln}::float8 + {dln}::float8, "
            f"{la}::float8 + {dla}::float8))"
        )
        # The exact circle; inputs are rounded to 1 cm so no difference underflows.
        w.append(
            f"((i.lat - {la}::float8) * 111195.0) ^ 2 + ((i.lng - {ln}::float8) * "
            f"{arg(m_lng)}::float8) ^ 2 <= {arg(radius * radius)}::float8"
        )
    return w or ["true"]


async def begin_search(conn: asyncpg.Connection, text: str) -> tuple[int, bool]:
    """Plan this transaction's statements for their own values (a word's selectivity
    varies by orders of magnitude: a generic plan fits none), and read the newest id and
    whether the text has any searchable word, in one round trip."""
    row = await conn.fetchrow(
        """SELECT set_config('plan_cache_mode', 'force_custom_plan', true) AS mode,
                  (SELECT max(id) FROM incidents) AS newest,
                  numnode(websearch_to_tsquery('english', $1::text)) AS terms""",
        text,
    )
    assert row is not None
    return int(row["newest"] or 0), int(row["terms"]) > 0


async def page_recent(
    conn: asyncpg.Connection,
    f: Filters,
    max_id: int,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first over every match, keyset-paged on (created_at, id)."""
    arg = Params()
    where = _where(f, arg)
    where.append(f"i.id <= {arg(max_id)}")
    if after is not None:
        where.append(
            f"(i.created_at, i.id) < ({arg(after[0])}::timestamptz, {arg(after[1])}::bigint)"
        )
    # Near a point, newest first straight from the GiST index on (point, time): a KNN
    # order on time from a far future, instead of fetching and sorting every incident of a
    # busy place's year (7,416 within 200 m of one postcode). Microsecond creation times
    # make ties (which this order leaves unsorted by id) practically absent.
    order = (
        "i.created_at <-> '3000-01-01'::timestamptz"
        if f.near is not None
        else "i.created_at DESC, i.id DESC"
    )
    sql = (
        "SELECT i.id, i.created_at, NULL::float8 AS rank FROM incidents i WHERE "  # noqa: S608
        + " AND ".join(where)
        + f" ORDER BY {order} LIMIT {arg(limit)}"
    )
    rows: list[asyncpg.Record] = await conn.fetch(sql, *arg.values)
    return rows


# The newest matches are gathered window by window, newest window first: a common word
# fills its candidates from the last month by walking the time index, a rare one reaches
# back further; either way only the rows kept are ranked. (One query over all time made
# the planner fetch and sort every match of a common pair of words: 17,000 rows.)
RELEVANCE_WINDOWS = (timedelta(days=30), timedelta(days=365), None)


async def page_relevance(
    conn: asyncpg.Connection,
    f: Filters,
    max_id: int,
    candidates: int,
    after: tuple[float, int] | None,
    limit: int,
    now: datetime,
) -> list[asyncpg.Record]:
    """Best first among the newest `candidates` matches (the same set however the
    windows fall), keyset-paged on (rank, id)."""
    assert f.text is not None
    found: list[asyncpg.Record] = []
    upper = f.created_to
    for span in RELEVANCE_WINDOWS:
        lower = now - span if span is not None else None
        if f.created_from is not None and (lower is None or lower < f.created_from):
            lower = f.created_from
        if upper is not None and lower is not None and lower >= upper:
            continue
        arg = Params()
        where = _where(Filters(**{**vars(f), "created_from": None, "created_to": None}), arg)
        where.append(f"i.id <= {arg(max_id)}")
        if lower is not None:
            where.append(f"i.created_at >= {arg(lower)}")
        if upper is not None:
            where.append(f"i.created_at < {arg(upper)}")
        sql = f"""SELECT i.id, i.created_at,
                         ts_rank_cd(i.search_tsv, {TSQUERY.format(q=arg(f.text))})::float8 AS rank
                  FROM incidents i WHERE {" AND ".join(where)}
                  ORDER BY i.created_at DESC, i.id DESC
                  LIMIT {arg(candidates - len(found))}"""  # noqa: S608
        found.extend(await conn.fetch(sql, *arg.values))
        if len(found) >= candidates or lower is None or lower == f.created_from:
            break
        upper = lower
    found.sort(key=lambda r: (-r["rank"], -r["id"]))
    if after is not None:
        found = [r for r in found if (r["rank"], r["id"]) < after]
    return found[:limit]


async def results(
    conn: asyncpg.Connection, ids: list[int], text: str | None
) -> list[asyncpg.Record]:
    """What a result shows, for one page of ids; the snippet is PostgreSQL's headline
    over what was said (first account, linked callers, remarks, closing remarks)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id, i.ref, i.type_code, i.grade, i.status, i.result_code, i.area_code,
                  i.ward_code, i.postcode, i.address_line, i.created_at, i.closed_at, i.lat,
                  i.lng, i.description,
                  (SELECT count(*) FROM calls c WHERE c.incident_id = i.id) AS call_count,
                  coalesce((SELECT array_agg(DISTINCT u.callsign)
                            FROM assignments a JOIN units u ON u.id = a.unit_id
                            WHERE a.incident_id = i.id), '{}') AS units,
                  CASE WHEN $2::text IS NULL THEN NULL ELSE ts_headline('english',
                      -- The match delimiters, chr(2) and chr(3), taken out of what was said, so
                      -- a caller's text cannot forge or break a highlight.
                      translate(concat_ws(' … ', i.description,
                          (SELECT string_agg(c.description, ' … ' ORDER BY c.id) FROM calls c
                           WHERE c.incident_id = i.id AND c.outcome = 'attached'
                             AND c.description <> ''),
                          (SELECT string_agg(coalesce(e.data->>'text', e.data->>'remarks'),
                                             ' … ' ORDER BY e.seq)
                           FROM events e
                           WHERE e.incident_id = i.id
                             AND e.type IN ('incident.remark', 'incident.closed'))),
                          chr(2) || chr(3), ''),
                      websearch_to_tsquery('english', $2::text), $3) END AS headline
           FROM incidents i WHERE i.id = ANY($1::bigint[])""",
        ids,
        text,
        HEADLINE_OPTIONS,
    )
    return rows


async def incident_by_ref(conn: asyncpg.Connection, ref: str) -> int | None:
    value: int | None = await conn.fetchval("SELECT id FROM incidents WHERE ref = $1", ref)
    return value


async def unit_id_by_callsign(conn: asyncpg.Connection, callsign: str) -> int | None:
    value: int | None = await conn.fetchval(
        "SELECT id FROM units WHERE upper(callsign) = upper($1)", callsign
    )
    return value


# -- history ----------------------------------------------------------------------------

HISTORY_CAP = 500


async def incidents_near(
    conn: asyncpg.Connection,
    lat: float,
    lng: float,
    dlat: float,
    dlng: float,
    since: datetime,
    until: datetime,
    exclude_id: int | None,
) -> list[asyncpg.Record]:
    """Incidents in a lat/lng box within a time window, newest first: the GiST index on
    (point, created_at) bounds the rows read by place and time together."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id, i.ref, i.type_code, i.grade, i.status, i.result_code, i.created_at,
                  i.lat, i.lng
           FROM incidents i
           WHERE point(i.lng, i.lat) <@ box(point($2::float8 - $4::float8, $1::float8 - $3::float8),
                                            point($2::float8 + $4::float8, $1::float8 + $3::float8))
             AND i.created_at >= $5 AND i.created_at < $6
             AND i.merged_into IS NULL AND i.id IS DISTINCT FROM $7::bigint
           ORDER BY i.created_at DESC LIMIT $8""",
        lat,
        lng,
        dlat,
        dlng,
        since,
        until,
        exclude_id,
        HISTORY_CAP,
    )
    return rows


async def calls_from_phone(
    conn: asyncpg.Connection,
    phone: str,
    since: datetime,
    until: datetime,
    exclude_incident_id: int | None,
) -> list[asyncpg.Record]:
    """Calls from one number within a window, newest first, with their incidents."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT c.id AS call_id, c.incident_id, c.outcome AS call_outcome, c.type_code,
                  c.created_at, c.caller_name, i.ref, i.grade, i.status, i.result_code
           FROM calls c LEFT JOIN incidents i ON i.id = c.incident_id
           WHERE c.phone_key = cad_phone_key($1::text) AND c.phone_key <> ''
             AND c.created_at >= $2 AND c.created_at < $3
             -- With nothing to leave out, calls with no incident (advice…) count too:
             -- NULL IS DISTINCT FROM NULL is false.
             AND ($4::bigint IS NULL OR c.incident_id IS DISTINCT FROM $4::bigint)
           ORDER BY c.created_at DESC LIMIT $5""",
        phone,
        since,
        until,
        exclude_incident_id,
        HISTORY_CAP,
    )
    return rows


async def first_caller_phone(conn: asyncpg.Connection, incident_id: int) -> str | None:
    value: str | None = await conn.fetchval(
        """SELECT caller_phone FROM calls WHERE incident_id = $1 AND phone_key <> ''
           ORDER BY id LIMIT 1""",
        incident_id,
    )
    return value
