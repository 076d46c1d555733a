"""GET /api/areas?level=borough|ward through the app, and the ward level on the CLI."""

from __future__ import annotations

from shapely.geometry import Point, shape

from cad.db.pool import connect
from gis.areas import AreaSet
from tests.conftest import Api, make_settings, shared_file, start_api
from tests.conftest import run_cad as cad


async def test_default_state_has_london_boroughs_and_wards(api: Api) -> None:
    assert api.state.areas is AreaSet.london_default()
    assert api.state.wards is AreaSet.london_wards()


async def test_areas_by_level(api: Api) -> None:
    boroughs = (await api.as_("dispatcher", "GET", "/api/areas")).json()
    assert len(boroughs["features"]) == 33
    assert {f["properties"]["code"] for f in boroughs["features"]} == {
        f"E090000{i:02d}" for i in range(1, 34)
    }
    assert all(set(f["properties"]) == {"code", "name"} for f in boroughs["features"])
    same = (await api.as_("dispatcher", "GET", "/api/areas?level=borough")).json()
    assert same == boroughs

    r = await api.as_("unit", "GET", "/api/areas?level=ward")
    assert r.status_code == 200
    wards = r.json()
    assert wards["type"] == "FeatureCollection" and len(wards["features"]) == 630
    props = {f["properties"]["code"]: f["properties"] for f in wards["features"]}
    codes = {f["properties"]["code"] for f in boroughs["features"]}
    assert all(set(p) == {"code", "name", "parent"} for p in props.values())
    assert {p["parent"] for p in props.values()} == codes
    bishops = next(p for p in props.values() if p["name"] == "Bishop's")
    assert bishops["parent"] == "E09000022"  # Lambeth
    # Simplified for browsers, but still a valid polygon around its streets.
    feature = next(f for f in wards["features"] if f["properties"]["name"] == "Bishop's")
    g = shape(feature["geometry"])
    assert g.is_valid and g.contains(Point(-0.1145, 51.5033))  # Waterloo Road
    vertices = sum(len(str(f["geometry"]["coordinates"])) for f in wards["features"])
    full = AreaSet.london_wards().to_geojson()
    assert vertices < sum(len(str(f["geometry"]["coordinates"])) for f in full["features"])


async def test_unknown_level_is_422_naming_the_field(api: Api) -> None:
    r = await api.as_("dispatcher", "GET", "/api/areas?level=sector")
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "level", "reason": "must be one of borough, ward"}]


async def test_imported_boroughs_without_wards_serve_an_empty_ward_level(
    db_url: str, redis_prefix: str
) -> None:
    result = cad(db_url, "areas", "import", str(shared_file("london_boroughs.geojson")))
    assert result.returncode == 0, result.stderr
    app, lifespan, client = await start_api(make_settings(db_url, redis_prefix), background=False)
    try:
        state = app.state.cad
        assert state.areas is not AreaSet.london_default() and state.wards is None
        token = (
            await client.post(
                "/api/auth/token", data={"username": "handler", "password": "handler-999"}
            )
        ).json()["access_token"]
        r = await client.get("/api/areas?level=ward", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert r.json() == {"type": "FeatureCollection", "features": []}
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_cli_imports_a_ward_level_beside_the_boroughs(db_url: str, redis_prefix: str) -> None:
    boroughs = cad(db_url, "areas", "import", str(shared_file("london_boroughs.geojson")))
    assert boroughs.returncode == 0, boroughs.stderr
    wards = cad(
        db_url, "areas", "import", str(shared_file("london_wards_2014.geojson")), "--level", "ward"
    )
    assert wards.returncode == 0, wards.stderr
    assert "imported 630 wards" in wards.stdout
    bad = cad(
        db_url, "areas", "import", str(shared_file("london_wards_2014.geojson")), "--level", "x"
    )
    assert bad.returncode == 2 and "--level" in bad.stderr
    conn = await connect(db_url)
    try:
        active = await conn.fetch(
            "SELECT level, jsonb_array_length(geojson->'features') AS n FROM area_sets "
            "WHERE active ORDER BY level"
        )
        assert [(r["level"], r["n"]) for r in active] == [("borough", 33), ("ward", 630)]
        event = await conn.fetchrow("SELECT data FROM events ORDER BY seq DESC LIMIT 1")
        assert event["data"]["level"] == "ward" and event["data"]["count"] == 630
    finally:
        await conn.close()
    app, lifespan, client = await start_api(make_settings(db_url, redis_prefix), background=False)
    try:
        state = app.state.cad
        assert len(state.areas) == 33 and state.wards is not None and len(state.wards) == 630
        ward = state.wards.area_for(51.5033, -0.1145)
        assert (ward.name, ward.parent) == ("Bishop's", "E09000022")
        assert state.wards.service_area is state.areas.service_area
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
