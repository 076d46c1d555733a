"""Gazetteer SQL: postcodes (prefix ranges, KNN on BNG points) and named places (trigram)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

_POSTCODE_COLS = "postcode, positional_quality, easting, northing, lat, lng"
_PLACE_COLS = "key, kind, name, terms, lat, lng, precision_m"

# -- postcodes: reads -------------------------------------------------------------------


async def postcode(conn: asyncpg.Connection, canonical: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_POSTCODE_COLS} FROM postcodes WHERE postcode = $1",  # noqa: S608
        canonical,
    )


async def postcodes_in_range(
    conn: asyncpg.Connection, lo: str, hi: str, limit: int
) -> list[asyncpg.Record]:
    """Postcodes with lo <= postcode < hi in order: a prefix search as an index range (a
    LIKE $1 with a parameter loses the index once the plan goes generic)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_POSTCODE_COLS} FROM postcodes "  # noqa: S608
        "WHERE postcode >= $1 AND postcode < $2 ORDER BY postcode LIMIT $3",
        lo,
        hi,
        limit,
    )
    return rows


# Postcodes read around a point: several often share one spot (a block of flats).
NEAREST_POSTCODES = 8
# The nearest postcodes to a BNG point (KNN on the SP-GiST index), with distance_m; {e}
# and {n} are parameter placeholders (intake's one read numbers its own).
NEAREST_POSTCODES_SQL = f"""SELECT {_POSTCODE_COLS},
                   point(easting, northing) <-> point({{e}}, {{n}}) AS distance_m
            FROM postcodes
            ORDER BY point(easting, northing) <-> point({{e}}, {{n}})
            LIMIT {{limit}}"""  # noqa: S608
POSTCODE_FIELDS = (*(c.strip() for c in _POSTCODE_COLS.split(",")), "distance_m")


async def nearest_postcodes(
    conn: asyncpg.Connection, easting: float, northing: float, limit: int
) -> list[asyncpg.Record]:
    """The nearest postcodes to a BNG point, with distance_m."""
    rows: list[asyncpg.Record] = await conn.fetch(
        NEAREST_POSTCODES_SQL.format(e="$1", n="$2", limit="$3"), easting, northing, limit
    )
    return rows


async def postcode_count(conn: asyncpg.Connection) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM postcodes")
    return n


# -- postcodes: import ------------------------------------------------------------------

_STAGE_COLS = [
    "postcode",
    "positional_quality",
    "easting",
    "northing",
    "lat",
    "lng",
    "district_code",
    "ward_code",
    "line",
]


async def create_stage(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """CREATE TEMP TABLE postcodes_stage (
               postcode text COLLATE "C" NOT NULL,
               positional_quality smallint NOT NULL,
               easting integer NOT NULL,
               northing integer NOT NULL,
               lat double precision NOT NULL,
               lng double precision NOT NULL,
               district_code text,
               ward_code text,
               line integer NOT NULL
           ) ON COMMIT DROP"""
    )


async def stage(conn: asyncpg.Connection, records: Sequence[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table("postcodes_stage", records=records, columns=_STAGE_COLS)


async def merge_stage(conn: asyncpg.Connection) -> dict[str, int]:
    """Upsert the staged rows (a postcode listed twice: its last line wins); rows equal to
    what is stored are left alone, so a re-import writes nothing."""
    row = await conn.fetchrow(
        """WITH latest AS (
               SELECT DISTINCT ON (postcode) postcode, positional_quality, easting, northing,
                      lat, lng, district_code, ward_code
               FROM postcodes_stage
               ORDER BY postcode, line DESC
           ), up AS (
               INSERT INTO postcodes AS p (postcode, positional_quality, easting, northing,
                                           lat, lng, district_code, ward_code)
               SELECT postcode, positional_quality, easting, northing, lat, lng,
                      district_code, ward_code
               FROM latest
               ON CONFLICT (postcode) DO UPDATE SET
                   positional_quality = EXCLUDED.positional_quality,
                   easting = EXCLUDED.easting,
                   northing = EXCLUDED.northing,
                   lat = EXCLUDED.lat,
                   lng = EXCLUDED.lng,
                   district_code = EXCLUDED.district_code,
                   ward_code = EXCLUDED.ward_code
               WHERE (p.positional_quality, p.easting, p.northing, p.lat, p.lng,
                      p.district_code, p.ward_code)
                     IS DISTINCT FROM
                     (EXCLUDED.positional_quality, EXCLUDED.easting, EXCLUDED.northing,
                      EXCLUDED.lat, EXCLUDED.lng, EXCLUDED.district_code, EXCLUDED.ward_code)
               RETURNING (xmax = 0) AS inserted
           )
           SELECT (SELECT count(*) FROM postcodes_stage) AS staged,
                  (SELECT count(*) FROM latest) AS distinct_rows,
                  count(*) FILTER (WHERE inserted) AS inserted,
                  count(*) FILTER (WHERE NOT inserted) AS updated
           FROM up"""
    )
    assert row is not None
    return {k: int(row[k]) for k in ("staged", "distinct_rows", "inserted", "updated")}


async def source_version(conn: asyncpg.Connection, source: str) -> str | None:
    version: str | None = await conn.fetchval(
        "SELECT version FROM gazetteer_sources WHERE source = $1", source
    )
    return version


async def record_source(conn: asyncpg.Connection, source: str, version: str, rows: int) -> None:
    await conn.execute(
        """INSERT INTO gazetteer_sources (source, version, rows, imported_at)
           VALUES ($1, $2, $3, now())
           ON CONFLICT (source) DO UPDATE
           SET version = EXCLUDED.version, rows = EXCLUDED.rows, imported_at = now()""",
        source,
        version,
        rows,
    )


# -- places -----------------------------------------------------------------------------


async def replace_places(
    conn: asyncpg.Connection, sources: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Replace every place of the given sources by ``rows`` (key, kind, name, terms,
    search, lat, lng, area_code, ward_code, precision_m, source)."""
    await conn.execute("DELETE FROM places WHERE source = ANY($1::text[])", list(sources))
    await conn.copy_records_to_table(
        "places",
        records=rows,
        columns=[
            "key",
            "kind",
            "name",
            "terms",
            "search",
            "lat",
            "lng",
            "area_code",
            "ward_code",
            "precision_m",
            "source",
        ],
    )


async def places_matching(
    conn: asyncpg.Connection, text: str, exact_limit: int, similar_limit: int
) -> list[asyncpg.Record]:
    """Places named exactly ``text`` (a term: name or alias, normalised; score 1) and the
    nearest by trigram word similarity (KNN on the GiST index, best first: no threshold,
    the caller decides what is close enough), in one round trip."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_PLACE_COLS},
                   CASE WHEN terms @> ARRAY[$1::text] THEN 1.0::real
                        ELSE word_similarity($1, search) END AS score
            FROM ((SELECT {_PLACE_COLS}, search FROM places
                   WHERE terms @> ARRAY[$1::text] LIMIT $2)
                  UNION
                  (SELECT {_PLACE_COLS}, search FROM places
                   ORDER BY $1 <<-> search LIMIT $3)) AS found""",  # noqa: S608
        text,
        exact_limit,
        similar_limit,
    )
    return rows


async def places_nearest(
    conn: asyncpg.Connection, lat: float, lng: float, kinds: Sequence[str], limit: int
) -> list[asyncpg.Record]:
    """Places of the given kinds nearest a point (an equirectangular distance is exact
    enough to rank a few hundred rows across London)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_PLACE_COLS}, 0.0::real AS score
            FROM places
            WHERE kind = ANY($3::text[])
            ORDER BY (lat - $1) ^ 2 + ((lng - $2) * cos(radians($1))) ^ 2
            LIMIT $4""",  # noqa: S608
        lat,
        lng,
        list(kinds),
        limit,
    )
    return rows


async def place_count(conn: asyncpg.Connection) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM places")
    return n


async def places_within_text(conn: asyncpg.Connection, text: str) -> list[asyncpg.Record]:
    """Places one of whose terms (5+ characters) appears as whole words in a normalised
    text. Terms hold only [a-z0-9 ], so they are safe inside a LIKE pattern."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_PLACE_COLS}, 1.0::real AS score, t AS term
            FROM places, unnest(terms) AS t
            WHERE length(t) >= 5 AND ' ' || $1 || ' ' LIKE '% ' || t || ' %'""",  # noqa: S608
        text,
    )
    return rows
