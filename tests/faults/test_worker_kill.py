"""Invariants 1 and 2 under a crash: SIGKILL a uvicorn worker in the middle of a burst of
calls. Every call acknowledged with a 201 is in PostgreSQL exactly once, and retrying with
the same Idempotency-Key never makes a second incident."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import asyncpg
import httpx
import psutil
import pytest

from cad.config import Settings
from tests.conftest import call_body, login, start_server
from tests.faults.conftest import record_figures, worker_pids

pytestmark = pytest.mark.fault

CALLS = 160
CONCURRENCY = 16


async def test_kill_a_worker_mid_burst_loses_and_duplicates_nothing(settings: Settings) -> None:
    server = start_server(settings, workers=2, name="fault-kill")
    try:
        workers = worker_pids(server.proc.pid)
        assert len(workers) >= 2, workers
        token = await login(server.url, "handler")
        headers = {"Authorization": f"Bearer {token}"}
        keys = [f"burst-{uuid.uuid4()}" for _ in range(CALLS)]
        acknowledged: dict[str, dict[str, int]] = {}
        attempts = 0
        failures = 0
        sem = asyncio.Semaphore(CONCURRENCY)
        killed = asyncio.Event()
        quarter_done = asyncio.Event()

        async def one(client: httpx.AsyncClient, key: str) -> None:
            nonlocal attempts, failures
            async with sem:
                for _ in range(200):
                    attempts += 1
                    try:
                        r = await client.post(
                            "/api/calls",
                            json=call_body(description=key),
                            headers={**headers, "Idempotency-Key": key},
                        )
                    except httpx.HTTPError:
                        failures += 1
                        await asyncio.sleep(0.05)
                        continue
                    if r.status_code == 201:
                        body = r.json()
                        acknowledged[key] = {
                            "call": body["call"]["id"],
                            "incident": body["incident"]["id"],
                        }
                        if len(acknowledged) >= CALLS // 4:
                            quarter_done.set()
                        return
                    failures += 1
                    assert r.status_code in (409, 502, 503), r.text
                    await asyncio.sleep(0.05)
                raise AssertionError(f"{key} never acknowledged")

        async def killer() -> None:
            await quarter_done.wait()
            os.kill(workers[0], signal.SIGKILL)
            killed.set()

        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
            kill_task = asyncio.create_task(killer())
            await asyncio.gather(*(one(client, k) for k in keys))
            await kill_task
        assert killed.is_set()
        assert not psutil.pid_exists(workers[0]) or psutil.Process(workers[0]).status() == "zombie"
        assert len(acknowledged) == CALLS

        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT description, count(*) AS n, array_agg(id) AS ids,"
                " array_agg(DISTINCT incident_id) AS incidents"
                " FROM calls WHERE description = ANY($1::text[]) GROUP BY description",
                keys,
            )
            event_incidents = await conn.fetchval(
                "SELECT count(DISTINCT incident_id) FROM events WHERE type = 'incident.created'"
                " AND incident_id = ANY($1::bigint[])",
                [a["incident"] for a in acknowledged.values()],
            )
        finally:
            await conn.close()
        by_key = {r["description"]: r for r in rows}
        found = sum(1 for k in acknowledged if k in by_key)
        duplicated = [k for k, r in by_key.items() if r["n"] != 1]
        assert not duplicated, f"keys that made more than one call: {duplicated[:5]}"
        for key, ack in acknowledged.items():
            assert list(by_key[key]["ids"]) == [ack["call"]], key
            assert list(by_key[key]["incidents"]) == [ack["incident"]], key
        assert event_incidents == CALLS  # each acknowledged incident has its created event
        record_figures(
            "worker_kill",
            requests_tried=attempts,
            failed_attempts=failures,
            faults_injected=1,
            calls_acknowledged=len(acknowledged),
            calls_found=found,
            duplicates=len(duplicated),
        )
    finally:
        server.stop()
