"""Redis restarts under load (invariants 5 and 6): intake and assignment keep working
while it is down, and a connected console receives every event exactly once, in seq
order, with no gap against the record in PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
import websockets

from cad.config import Settings
from tests.conftest import call_body, login, start_server, wait_for
from tests.faults.conftest import RedisServer, record_figures

pytestmark = pytest.mark.fault

PER_PHASE = 4


async def test_redis_restart_under_load_console_misses_nothing(
    settings: Settings, own_redis: RedisServer
) -> None:
    server = start_server(
        settings.model_copy(update={"redis_url": own_redis.url}),
        name="fault-redis",
        # Manual assignment only, so the engine cannot take the units this test assigns.
        CAD_AUTO_DISPATCH_GRADES="X",
    )
    tried = 0
    received: list[dict[str, Any]] = []
    try:
        token = await login(server.url, "dispatcher")
        handler = await login(server.url, "handler")
        h_disp = {"Authorization": f"Bearer {token}"}
        h_call = {"Authorization": f"Bearer {handler}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            since = (await client.get("/api/events?limit=1", headers=h_disp)).json()["last_seq"]
            units = (await client.get("/api/units?status=available", headers=h_disp)).json()
            free_units = [u["id"] for u in units][: 3 * PER_PHASE]
            ws_url = (
                server.url.replace("http://", "ws://") + f"/ws/events?token={token}&since={since}"
            )

            async with websockets.connect(ws_url, max_size=2**22) as ws:
                hello = orjson.loads(await ws.recv())
                assert hello["type"] == "hello"

                async def read() -> None:
                    async for message in ws:
                        received.append(orjson.loads(message))

                reader = asyncio.create_task(read())

                async def burst(phase: str) -> None:
                    nonlocal tried
                    for _ in range(PER_PHASE):
                        r = await client.post(
                            "/api/calls", json=call_body(description=phase), headers=h_call
                        )
                        tried += 1
                        assert r.status_code == 201, (phase, r.text)
                        incident = r.json()["incident"]["id"]
                        r = await client.post(
                            f"/api/incidents/{incident}/assignments",
                            json={"unit_id": free_units.pop()},
                            headers=h_disp,
                        )
                        tried += 1
                        assert r.status_code == 201, (phase, r.text)

                await burst("redis up")
                own_redis.stop()
                await burst("redis down")
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and "down" in ready.json()["checks"]["redis"]
                own_redis.start()  # same port, empty: the stream is gone
                await burst("redis back")

                head = (await client.get("/api/events?limit=1", headers=h_disp)).json()["last_seq"]

                async def caught_up() -> bool:
                    return bool(received) and received[-1]["seq"] >= head

                await wait_for(caught_up, timeout=30)
                reader.cancel()

            record: list[int] = []
            cursor = since
            while True:
                page = (
                    await client.get(f"/api/events?since={cursor}&limit=500", headers=h_disp)
                ).json()
                record += [e["seq"] for e in page["events"] if e["seq"] <= head]
                if not page["events"] or page["events"][-1]["seq"] >= head:
                    break
                cursor = page["events"][-1]["seq"]
    finally:
        server.stop()
    seqs = [e["seq"] for e in received if e["seq"] <= head]
    assert len(seqs) == len(set(seqs)), "an event was delivered twice"
    assert seqs == sorted(seqs), "events out of seq order"
    assert seqs == record, f"console missed {sorted(set(record) - set(seqs))[:10]}"
    types = [e["type"] for e in received]
    assert types.count("incident.created") == 3 * PER_PHASE
    assert types.count("unit.assigned") == 3 * PER_PHASE
    record_figures(
        "redis_restart",
        requests_tried=tried,
        faults_injected=2,  # Redis killed, then restarted empty
        events_in_record=len(record),
        events_received=len(seqs),
        calls_acknowledged=3 * PER_PHASE,
        calls_found=types.count("incident.created"),
    )
