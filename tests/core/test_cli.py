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
        "long enough words",
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
    bad_role = cad(
        db_url, "users", "add", "x", "--role", "chief", "--password", "long enough words"
    )
    assert bad_role.returncode == 2 and "role" in bad_role.stderr
    bad_unit = cad(
        db_url,
        "users",
        "add",
        "y",
        "--role",
        "unit",
        "--password",
        "long enough words",
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


async def test_users_admin_commands(db_url: str) -> None:
    listed = cad(db_url, "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert "dispatcher" in listed.stdout and "supervisor" in listed.stdout
    conn = await connect(db_url)
    try:
        user_id = await conn.fetchval("SELECT id FROM users WHERE username = 'dispatcher'")
        await conn.execute(
            "INSERT INTO sessions (id, user_id, expires_at) "
            "VALUES (gen_random_uuid(), $1, now() + interval '1 hour')",
            user_id,
        )
        disabled = cad(db_url, "users", "disable", "dispatcher")
        assert disabled.returncode == 0, disabled.stderr
        assert "1 session(s) ended" in disabled.stdout
        row = await conn.fetchrow(
            "SELECT disabled, (SELECT count(*) FROM sessions WHERE user_id = u.id AND ended_at IS NULL) AS open FROM users u WHERE username = 'dispatcher'"
        )
        assert row["disabled"] and row["open"] == 0
        # The workers learn of it from the event log.
        ended = await conn.fetchval(
            "SELECT data->>'reason' FROM events WHERE type = 'auth.sessions_ended'"
        )
        assert ended == "account disabled"
        assert cad(db_url, "users", "enable", "dispatcher").returncode == 0
        reset = cad(db_url, "users", "reset", "handler")
        assert reset.returncode == 0 and "temporary password: " in reset.stdout
        flags = await conn.fetchval(
            "SELECT must_change_password FROM users WHERE username = 'handler'"
        )
        assert flags is True
        await conn.execute(
            "INSERT INTO signin_locks (scope, key, until, failures) "
            "VALUES ('account', 'unit', now() + interval '10 minutes', 5)"
        )
        unlocked = cad(db_url, "users", "unlock", "unit")
        assert unlocked.returncode == 0 and "unlocked" in unlocked.stdout
        audit = await conn.fetch("SELECT action, detail->>'by' AS by FROM access_log ORDER BY id")
        actions = [r["action"] for r in audit]
        assert actions.count("user.change") == 3 and "unlock" in actions
        missing = cad(db_url, "users", "disable", "nobody")
        assert missing.returncode == 2 and "nobody" in missing.stderr
    finally:
        await conn.close()
