"""The skeleton's promises: migrations, the append-only log, health, config."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest
from pydantic import ValidationError

from cad.config import DEV_JWT_SECRET, Settings
from cad.db.migrate import available_migrations, migrate
from cad.db.pool import connect
from cad.events.writer import append_event
from tests.conftest import PG_BASE, ROOT, Api


async def test_events_refuse_update_delete_truncate(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        async with conn.transaction():
            event = await append_event(conn, "test.event", "tester", data={"n": 1})
        for sql in (
            "UPDATE events SET type = 'forged' WHERE seq = $1",
            "DELETE FROM events WHERE seq = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql, event.seq)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("TRUNCATE events")
        assert (
            await conn.fetchval("SELECT type FROM events WHERE seq = $1", event.seq) == "test.event"
        )
    finally:
        await conn.close()


async def test_append_event_needs_a_transaction(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        with pytest.raises(RuntimeError, match="transaction"):
            await append_event(conn, "x", "tester")
    finally:
        await conn.close()


async def test_rolled_back_event_is_never_visible(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM events")
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await append_event(conn, "doomed", "tester")
                raise ZeroDivisionError
        assert await conn.fetchval("SELECT count(*) FROM events") == before
    finally:
        await conn.close()


async def test_migrate_twice_in_parallel_processes() -> None:
    name = "cad_mig_parallel"
    admin = await asyncpg.connect(f"{PG_BASE}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    env = {"CAD_DATABASE_URL": f"{PG_BASE}/{name}", "PATH": "/usr/bin:/bin"}
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cad.cli",
                "migrate",
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        outputs = [(await p.communicate())[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        applied = [o for o in outputs if "0001_init" in o and "applied: 0001" in o]
        assert len(applied) == 1, outputs  # exactly one process did the work
        conn = await connect(f"{PG_BASE}/{name}")
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        assert [r["version"] for r in versions] == [m.version for m in available_migrations()]
        assert await migrate(conn) == []  # and a third run applies nothing
        await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_health_ready_metrics_docs(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
    metrics = await api.client.get("/metrics")
    assert "cad_http_requests_total" in metrics.text
    assert (await api.client.get("/docs")).status_code == 200
    spec = (await api.client.get("/openapi.json")).json()
    assert "/api/calls" in spec["paths"]
    assert "x-request-id" in ready.headers


async def test_readyz_names_redis_when_it_is_down(db_url: str, redis_prefix: str) -> None:
    from tests.conftest import make_settings, start_api

    dead = make_settings(db_url, redis_prefix, redis_url="redis://127.0.0.1:1/0")
    app, lifespan, client = await start_api(dead, background=False)
    try:
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["postgres"] == "ok"
        assert r.json()["checks"]["redis"].startswith("down")
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


def test_production_refuses_default_secret() -> None:
    with pytest.raises(ValidationError, match="CAD_JWT_SECRET"):
        Settings(env="production", jwt_secret=DEV_JWT_SECRET)
    with pytest.raises(ValidationError, match="CAD_JWT_SECRET"):
        Settings(env="production", jwt_secret="short")
    ok = Settings(env="production", jwt_secret="x" * 40)
    assert ok.env == "production"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAD_DATABASE_URL", "postgresql://example/db")
    monkeypatch.setenv("CAD_REDIS_PREFIX", "deployment-b")
    s = Settings()
    assert s.database_url == "postgresql://example/db"
    assert s.redis_prefix == "deployment-b"


async def test_seed_demo_is_idempotent_and_big_enough(db_url: str) -> None:
    from cad.seed import seed_demo
    from gis.areas import AreaSet

    conn = await connect(db_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM units")
        async with conn.transaction():
            await seed_demo(conn, AreaSet.london_default())
        assert await conn.fetchval("SELECT count(*) FROM units") == before
        assert before >= 120
        areas = await conn.fetchval("SELECT count(DISTINCT area_code) FROM units")
        assert areas == 33
        roles = {r["role"] for r in await conn.fetch("SELECT role FROM users")}
        assert roles == {"call_handler", "dispatcher", "supervisor", "unit", "admin", "partner"}
    finally:
        await conn.close()
