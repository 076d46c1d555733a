"""PostgreSQL goes away and comes back: requests get a prompt 503 that says why (not a
500, not a hang), the running service recovers by itself, and nothing acknowledged
before the outage is lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import asyncpg
import httpx
import pytest

from tests.conftest import ROOT, call_body, login, make_settings, start_server
from tests.faults.conftest import PgCluster, record_figures

pytestmark = pytest.mark.fault


def cad_cli(database_url: str, *args: str) -> None:
    env = {**os.environ, "CAD_DATABASE_URL": database_url, "CAD_LOG_LEVEL": "WARNING"}
    r = subprocess.run(
        [sys.executable, "-m", "cad.cli", *args],
        cwd=ROOT, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


async def test_postgres_restart_gives_503_then_recovers(
    own_postgres: PgCluster, redis_prefix: str
) -> None:
    cad_cli(own_postgres.url, "migrate")
    cad_cli(own_postgres.url, "seed-demo")
    settings = make_settings(own_postgres.url, redis_prefix)
    server = start_server(
        settings, name="fault-pg", CAD_DB_ACQUIRE_TIMEOUT_S="3", CAD_DB_COMMAND_TIMEOUT_S="3"
    )
    tried = 0
    try:
        token = await login(server.url, "handler")
        h = {"Authorization": f"Bearer {token}"}
        acknowledged: list[int] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=h) as client:
            for i in range(10):
                r = await client.post("/api/calls", json=call_body(description=f"before {i}"))
                tried += 1
                assert r.status_code == 201, r.text
                acknowledged.append(r.json()["call"]["id"])

            own_postgres.stop("fast")
            down_answers = []
            for method, url, body in [
                ("POST", "/api/calls", call_body(description="during")),
                ("GET", "/api/incidents", None),
                ("GET", "/api/units", None),
                ("GET", "/api/events", None),
                ("POST", "/api/calls", call_body(description="during 2")),
            ]:
                started = time.monotonic()
                r = await client.request(method, url, json=body)
                tried += 1
                elapsed = time.monotonic() - started
                down_answers.append(r.status_code)
                assert r.status_code == 503, (url, r.status_code, r.text)
                assert "database" in r.json()["detail"], r.text
                assert "Traceback" not in r.text
                assert elapsed < 20, (url, elapsed)  # bounded by the timeouts, not a hang
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "down" in ready.json()["checks"]["postgres"]
            # A sign-in needs the database too: 503, never a misleading 401.
            r = await client.post(
                "/api/auth/token", data={"username": "handler", "password": "handler-999"}
            )
            tried += 1
            assert r.status_code == 503, r.text

            own_postgres.start()
            recovered_after = 0
            deadline = time.monotonic() + 60
            while True:
                r = await client.post("/api/calls", json=call_body(description="after"))
                tried += 1
                if r.status_code == 201:
                    acknowledged.append(r.json()["call"]["id"])
                    break
                assert r.status_code == 503, r.text
                recovered_after += 1
                assert time.monotonic() < deadline, "service did not recover by itself"
                await asyncio.sleep(0.5)
            for i in range(5):
                r = await client.post("/api/calls", json=call_body(description=f"after {i}"))
                tried += 1
                assert r.status_code == 201, r.text
                acknowledged.append(r.json()["call"]["id"])
            assert (await client.get("/readyz")).status_code == 200
            assert server.proc.poll() is None  # the same process, never restarted
    finally:
        server.stop()
    conn = await asyncpg.connect(own_postgres.url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE id = ANY($1::bigint[])", acknowledged
        )
        during = await conn.fetchval("SELECT count(*) FROM calls WHERE description LIKE 'during%'")
    finally:
        await conn.close()
    assert found == len(acknowledged)
    assert during == 0  # refused with 503 means not recorded
    record_figures(
        "postgres_restart",
        requests_tried=tried,
        faults_injected=1,
        answers_while_down=down_answers,
        retries_until_recovered=recovered_after,
        calls_acknowledged=len(acknowledged),
        calls_found=found,
    )
