"""The cad CLI: area import on the real borough boundaries, users, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from cad.db.pool import connect
from tests.conftest import make_settings, shared_file, start_api
from tests.conftest import run_cad as cad


async def test_areas_import_real_boroughs_then_used_by_the_app(
    db_url: str, redis_prefix: str
) -> None:
    result = cad(db_url, "areas", "import", str(shared_file("london_boroughs.geojson")))
    assert result.returncode == 0, result.stderr
    assert "imported 33 response areas" in result.stdout
    conn = await connect(db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM area_sets WHERE active") == 1
        event = await conn.fetchrow("SELECT type, data FROM events ORDER BY seq DESC LIMIT 1")
        assert event["type"] == "areas.imported" and event["data"]["count"] == 33
    finally:
        await conn.close()
    app, lifespan, client = await start_api(make_settings(db_url, redis_prefix), background=False)
    try:
        state = app.state.cad
        # The real boundary puts Heathrow in Hillingdon (the built-in approximation does not).
        assert state.areas.area_for(51.4700, -0.4543).name == "Hillingdon"
        assert state.areas.area_for(51.372, -0.100).name == "Croydon"
        token = (
            await client.post(
                "/api/auth/token", data={"username": "handler", "password": "handler-999"}
            )
        ).json()["access_token"]
        geo = (await client.get("/api/areas", headers={"Authorization": f"Bearer {token}"})).json()
        assert len(geo["features"]) == 33
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


def test_areas_import_errors_name_the_file_and_feature(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[0, 51], [0.1, 51], [0.1, 51.1], [0, 51]]],
                        },
                    }
                ],
            }
        )
    )
    result = cad(db_url, "areas", "import", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "feature 0" in result.stderr
    assert "Traceback" not in result.stderr
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection",\n "features": [,]}')
    result = cad(db_url, "areas", "import", str(broken))
    assert result.returncode == 2 and "line 2" in result.stderr
    missing = cad(db_url, "areas", "import", str(tmp_path / "nope.geojson"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


async def test_users_add(db_url: str) -> None:
    ok = cad(
        db_url,
        "users",
        "add",
        "pc1234",
        "--role",
        "unit",
        "--password",
        "long-enough",
        "--unit",
        "ZD11",
    )
    assert ok.returncode == 0, ok.stderr
    conn = await connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT u.role, un.callsign FROM users u JOIN units un ON un.id = u.unit_id WHERE username = 'pc1234'"
        )
        assert (row["role"], row["callsign"]) == ("unit", "ZD11")
    finally:
        await conn.close()
    bad_role = cad(db_url, "users", "add", "x", "--role", "chief", "--password", "long-enough")
    assert bad_role.returncode == 2 and "role" in bad_role.stderr
    bad_unit = cad(
        db_url,
        "users",
        "add",
        "y",
        "--role",
        "unit",
        "--password",
        "long-enough",
        "--unit",
        "NOPE1",
    )
    assert bad_unit.returncode == 2 and "NOPE1" in bad_unit.stderr
    short = cad(db_url, "users", "add", "z", "--role", "dispatcher", "--password", "short")
    assert short.returncode == 2 and "password" in short.stderr


def test_cli_says_what_to_do_when_postgres_is_unreachable() -> None:
    result = cad("postgresql://postgres@127.0.0.1:1/cad", "migrate")
    assert result.returncode == 2
    assert "cannot reach PostgreSQL" in result.stderr and "Traceback" not in result.stderr
