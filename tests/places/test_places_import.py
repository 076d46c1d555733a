"""`cad gazetteer import`: the official headerless layout and the header form, idempotent,
with a summary; a bad line names the file and line and loads nothing of that file."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from pyproj import Transformer

from cad.db.pool import connect
from cad.places import service
from gis.areas import AreaSet
from tests.conftest import run_cad as cad
from tests.conftest import shared_file
from tests.places._support import CODEPOINT, official_line, postcodes

BNG = Transformer.from_crs(27700, 4326, always_xy=True)


def sample() -> list[dict[str, str]]:
    """50 real rows from across London (every 3,600th)."""
    return postcodes().rows[::3600][:50]


async def rows_of(db_url: str, names: list[str]) -> dict[str, tuple[int, int, float, float]]:
    conn = await connect(db_url)
    try:
        got = await conn.fetch(
            "SELECT postcode, easting, northing, lat, lng FROM postcodes "
            "WHERE postcode = ANY($1::text[])",
            names,
        )
        return {r["postcode"]: (r["easting"], r["northing"], r["lat"], r["lng"]) for r in got}
    finally:
        await conn.close()


async def count(db_url: str) -> int:
    conn = await connect(db_url)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM postcodes")
        return n
    finally:
        await conn.close()


def summary_row(stdout: str, name: str) -> list[int]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith(name))
    return [int(v.replace(",", "")) for v in line.split()[1:]]


async def test_headerless_import_is_idempotent_and_updates(db_url: str, tmp_path: Path) -> None:
    rows = sample()
    names = [r["postcode"] for r in rows]
    conn = await connect(db_url)
    try:
        await conn.execute("DELETE FROM postcodes WHERE postcode = ANY($1::text[])", names)
    finally:
        await conn.close()
    before = await count(db_url)
    f = tmp_path / "london_sample.csv"
    no_position = '"ZZ9 9ZZ",60,0,0,"E92000001","","","","",""'
    f.write_text("\n".join([official_line(r) for r in rows] + [no_position]) + "\n")

    first = cad(db_url, "gazetteer", "import", str(f))
    assert first.returncode == 0, first.stderr
    # read, inserted, updated, unchanged, skipped
    assert summary_row(first.stdout, "london_sample.csv") == [51, 50, 0, 0, 1]
    assert "skipped 1: positional quality 60 (no position)" in first.stdout
    assert "[1/1] london_sample.csv [" in first.stderr and "100%" in first.stderr
    assert await count(db_url) == before + 50
    stored = await rows_of(db_url, names)
    for r in rows:
        e, n, lat, lng = stored[r["postcode"]]
        assert (e, n) == (int(r["easting"]), int(r["northing"]))
        want_lng, want_lat = BNG.transform(float(e), float(n))
        assert (lat, lng) == pytest.approx((want_lat, want_lng), abs=2e-6)

    again = cad(db_url, "gazetteer", "import", str(f))
    assert again.returncode == 0, again.stderr
    assert summary_row(again.stdout, "london_sample.csv") == [51, 0, 0, 50, 1]
    assert await count(db_url) == before + 50

    # A postcode moves 120 m east: the re-import updates it, and only it.
    moved = dict(rows[7], easting=str(int(rows[7]["easting"]) + 120))
    f.write_text("\n".join(official_line(moved if r is rows[7] else r) for r in rows) + "\n")
    third = cad(db_url, "gazetteer", "import", str(f))
    assert third.returncode == 0, third.stderr
    assert summary_row(third.stdout, "london_sample.csv") == [50, 0, 1, 49, 0]
    assert await count(db_url) == before + 50
    e, _, lat, lng = (await rows_of(db_url, [moved["postcode"]]))[moved["postcode"]]
    assert e == int(moved["easting"])
    want_lng, want_lat = BNG.transform(float(moved["easting"]), float(moved["northing"]))
    assert (lat, lng) == pytest.approx((want_lat, want_lng), abs=2e-6)


async def test_header_form_and_gzip(db_url: str, tmp_path: Path) -> None:
    lines = shared_file(CODEPOINT).read_text().splitlines()
    header_file = tmp_path / "with_header.csv"
    header_file.write_text("\n".join(lines[:21]) + "\n")  # the header and 20 rows
    gz = tmp_path / "official.csv.gz"
    gz.write_bytes(gzip.compress(("\n".join(official_line(r) for r in sample()) + "\n").encode()))
    r = cad(db_url, "gazetteer", "import", str(header_file), str(gz))
    assert r.returncode == 0, r.stderr
    # The template already holds every London postcode: nothing new, nothing changed.
    assert summary_row(r.stdout, "with_header.csv") == [20, 0, 0, 20, 0]
    assert summary_row(r.stdout, "official.csv.gz") == [50, 0, 0, 50, 0]
    assert summary_row(r.stdout, "total") == [70, 0, 0, 70, 0]
    assert f"postcodes in the gazetteer: {len(postcodes().rows):,}" in r.stdout


async def test_a_bad_line_names_file_and_line_and_loads_nothing_of_it(
    db_url: str, tmp_path: Path
) -> None:
    rows = sample()[:10]
    conn = await connect(db_url)
    try:
        await conn.execute(
            "DELETE FROM postcodes WHERE postcode = ANY($1::text[])", [r["postcode"] for r in rows]
        )
    finally:
        await conn.close()
    before = await count(db_url)
    bad = tmp_path / "bad.csv"
    text = [official_line(r) for r in rows]
    text.insert(6, '"SE1 7PB",10,five hundred,179850,"E92000001","","","","",""')
    bad.write_text("\n".join(text) + "\n")
    r = cad(db_url, "gazetteer", "import", str(bad))
    assert r.returncode == 2
    assert f"{bad}: line 7: positional quality, easting and northing must be numbers" in r.stderr
    assert await count(db_url) == before

    for content, reason in (
        (
            '"NOT A POSTCODE",10,1,1,"","","","","",""\n',
            "line 1: 'NOT A POSTCODE' is not a postcode",
        ),
        ('"SE1 7PB",10\n', "line 1: 2 columns"),
        ("postcode,quality\nSE1 7PB,10\n", "line 1: header lacks"),
    ):
        bad.write_text(content)
        r = cad(db_url, "gazetteer", "import", str(bad))
        assert r.returncode == 2 and f"{bad}: {reason}" in r.stderr, r.stderr
    r = cad(db_url, "gazetteer", "import", str(tmp_path / "missing.csv"))
    assert r.returncode == 2 and "missing.csv: no such file" in r.stderr


async def test_seed_loads_the_packaged_postcodes_once(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        areas, wards = AreaSet.london_default(), AreaSet.london_wards()
        # The template was seeded: the packaged copy is current, so nothing is re-read.
        async with conn.transaction():
            done = await service.ensure_gazetteer(conn, areas, wards)
        assert done["postcodes"] is None
        assert done["postcode_count"] == len(postcodes().rows)
        assert done["places"] == await conn.fetchval("SELECT count(*) FROM places")
        assert await conn.fetchval("SELECT count(*) FROM places WHERE kind = 'ward'") == 630
        assert await conn.fetchval("SELECT count(*) FROM places WHERE kind = 'borough'") == 33
        # An older packaged copy (another version recorded) is refreshed in place.
        await conn.execute("UPDATE gazetteer_sources SET version = 'older'")
        async with conn.transaction():
            done = await service.ensure_gazetteer(conn, areas, wards)
        assert done["postcodes"]["unchanged"] == len(postcodes().rows)
        assert done["postcode_count"] == len(postcodes().rows)
    finally:
        await conn.close()
