"""Invariant 7: a worker that dies and restarts rebuilds its unit index from PostgreSQL.
Positions reported while it was down (to another worker) are used in its first
recommendations after the restart."""

from __future__ import annotations

import httpx
import pytest

from cad.config import Settings
from tests.conftest import call_body, login, start_server
from tests.faults.conftest import record_figures

pytestmark = pytest.mark.fault

SCENE = (51.5074, -0.1278)


async def recommendations(url: str, token: str, incident_id: int) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.get(
            f"/api/incidents/{incident_id}/recommendations",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 200, r.text
    return list(r.json()["recommendations"])


async def test_restarted_worker_rebuilds_unit_index_from_postgres(settings: Settings) -> None:
    env = {"CAD_AUTO_DISPATCH_GRADES": "X"}  # keep units where the test puts them
    first = start_server(settings, name="fault-index-a", **env)
    tried = 0
    try:
        token = await login(first.url, "dispatcher")
        handler = await login(first.url, "handler")
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            r = await client.post(
                "/api/calls",
                json=call_body(lat=SCENE[0], lng=SCENE[1]),
                headers={"Authorization": f"Bearer {handler}"},
            )
            tried += 1
            assert r.status_code == 201, r.text
            incident_id = r.json()["incident"]["id"]
        before = await recommendations(first.url, token, incident_id)
        tried += 1
        near_ids = {c["unit_id"] for c in before}
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            units = (
                await client.get(
                    "/api/units?status=available", headers={"Authorization": f"Bearer {token}"}
                )
            ).json()
        far = next(
            u for u in units
            if u["id"] not in near_ids and "response" in u["capabilities"]
        )  # fmt: skip
    finally:
        first.proc.kill()  # the crash: no shutdown, nothing saved on the way out
        first.proc.wait(10)

    other = start_server(settings, name="fault-index-b", **env)
    try:
        async with httpx.AsyncClient(base_url=other.url, timeout=30) as client:
            r = await client.post(
                "/api/units/positions",
                json=[{"unit_id": far["id"], "lat": SCENE[0] + 0.0002, "lng": SCENE[1]}],
                headers={"Authorization": f"Bearer {token}"},
            )
            tried += 1
            assert r.status_code == 202, r.text
    finally:
        other.stop()

    restarted = start_server(settings, name="fault-index-a2", **env)
    try:
        after = await recommendations(restarted.url, token, incident_id)
        tried += 1
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as client:
            ready = (await client.get("/readyz")).json()
    finally:
        restarted.stop()
    top = after[0]
    assert top["unit_id"] == far["id"], (far["callsign"], after[:3])
    assert float(top["distance_m"]) < 100  # type: ignore[arg-type]
    assert top["position_age_s"] is not None
    assert top["position_age_s"] < settings.stale_position_s
    assert ready["units_indexed"] >= len(units)
    record_figures(
        "index_rebuild",
        requests_tried=tried,
        faults_injected=1,
        unit_moved=far["callsign"],
        top_recommendation_after_restart=top["callsign"],
        distance_m=top["distance_m"],
    )
