"""Warning markers SQL. Rows are never deleted: expiry ends matching, the row stays."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from cad.db.sql import Params

COLS = """m.id, m.category, m.text, m.lat, m.lng, m.radius_m, m.postcode, m.phone,
          m.phone_key, m.author, m.created_at, m.updated_at, m.updated_by, m.review_at,
          m.expires_at"""


async def insert(conn: asyncpg.Connection, v: dict[str, Any]) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO markers AS m (category, text, lat, lng, radius_m, postcode, phone,
                phone_key, author, updated_by, review_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7::text IS NULL THEN NULL
                    ELSE cad_phone_key($7) END, $8, $8, $9, $10)
            RETURNING {COLS}""",  # noqa: S608
        v["category"],
        v["text"],
        v.get("lat"),
        v.get("lng"),
        v.get("radius_m"),
        v.get("postcode"),
        v.get("phone"),
        v["author"],
        v["review_at"],
        v.get("expires_at"),
    )
    return row


async def get(conn: asyncpg.Connection, marker_id: int, for_update: bool = False) -> Any:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {COLS} FROM markers m WHERE m.id = $1{lock}",  # noqa: S608
        marker_id,
    )


async def update(
    conn: asyncpg.Connection,
    marker_id: int,
    category: str,
    text: str,
    radius_m: int | None,
    review_at: date,
    expires_at: datetime | None,
    actor: str,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE markers m SET category = $2, text = $3, radius_m = $4, review_at = $5,
                   expires_at = $6, updated_by = $7, updated_at = now()
            WHERE m.id = $1 RETURNING {COLS}""",  # noqa: S608
        marker_id,
        category,
        text,
        radius_m,
        review_at,
        expires_at,
        actor,
    )
    return row


# Markers that may match a place or a phone. Points come from a box of the largest radius
# (the exact circle is checked in Python: a radius is per marker); the three anchors are
# three indexes, OR-ed by a bitmap. The placeholders are named so that intake's one read
# (cad/incidents/repository.py) can hold the same text with its own numbering.
def match_sql(
    *, lat: str, lng: str, postcodes: str, has_phone: str, now: str, phone: str, dlat: str,
    dlng: str,
) -> str:  # fmt: skip
    """MATCH with the given parameter expressions (``postcodes``: a text[] of candidates)."""
    return f"""SELECT {COLS},
        CASE WHEN m.phone_key IS NOT NULL THEN cad_phone_key({phone}::text) END AS call_phone_key
    FROM markers m
    WHERE (m.expires_at IS NULL OR m.expires_at > {now})
      AND ((m.lat IS NOT NULL
            AND point(m.lng, m.lat) <@ box(point({lng}::float8 - {dlng}::float8, {lat}::float8 - {dlat}::float8),
                                           point({lng}::float8 + {dlng}::float8, {lat}::float8 + {dlat}::float8)))
           OR m.postcode = ANY({postcodes})
           OR ({has_phone} AND m.phone_key = cad_phone_key({phone}::text)))
    ORDER BY m.id"""  # noqa: S608


MATCH = match_sql(
    lat="$1", lng="$2", postcodes="ARRAY[$3::text]", has_phone="$4", now="$5", phone="$6",
    dlat="$7", dlng="$8",
)  # fmt: skip
# The names of MATCH's columns, in order (intake reads them as anonymous rows).
MATCH_FIELDS = (*(c.strip().removeprefix("m.") for c in COLS.split(",")), "call_phone_key")


def has_phone(phone: str | None) -> bool:
    return bool(phone and any(ch.isdigit() for ch in phone))


async def matching(
    conn: asyncpg.Connection,
    lat: float | None,
    lng: float | None,
    postcode: str | None,
    phone: str | None,
    now: datetime,
    dlat: float,
    dlng: float,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        MATCH,
        lat if lat is not None else 1000.0,  # no point: a box nothing lies in
        lng if lng is not None else 1000.0,
        postcode,
        has_phone(phone),
        now,
        phone or "",
        dlat,
        dlng,
    )
    return rows


async def search(
    conn: asyncpg.Connection,
    *,
    category: str | None,
    postcode: str | None,
    phone: str | None,
    box: tuple[float, float, float, float] | None,
    include_expired: bool,
    now: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """Markers by anchor or category, newest first (the supervisors' list)."""
    where = ["true"]
    arg = Params()

    if category is not None:
        where.append(f"m.category = {arg(category)}")
    if postcode is not None:
        where.append(f"m.postcode = {arg(postcode)}::text")
    if phone is not None:
        where.append(f"m.phone_key = cad_phone_key({arg(phone)}::text)")
    if box is not None:
        lat0, lng0, lat1, lng1 = box
        where.append(
            f"m.lat IS NOT NULL AND point(m.lng, m.lat) <@ box(point({arg(lng0)}::float8, "
            f"{arg(lat0)}::float8), point({arg(lng1)}::float8, {arg(lat1)}::float8))"
        )
    if not include_expired:
        where.append(f"(m.expires_at IS NULL OR m.expires_at > {arg(now)})")
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {COLS} FROM markers m WHERE {' AND '.join(where)} "  # noqa: S608
        f"ORDER BY m.id DESC LIMIT {arg(limit)}",
        *arg.values,
    )
    return rows


async def snapshots_for_incident(conn: asyncpg.Connection, incident_id: int) -> list[Any]:
    """What was shown on an incident: the data of its incident.markers events, in order."""
    rows = await conn.fetch(
        """SELECT data FROM events
           WHERE incident_id = $1 AND type = 'incident.markers' ORDER BY seq""",
        incident_id,
    )
    return [r["data"] for r in rows]
