"""The simulator drives real units through a real server: en route, on scene, clear."""

from __future__ import annotations

import asyncio

import httpx

from dispatch.simulator import Simulator, SimulatorConfig
from tests.conftest import Server, call_body, login


async def test_simulated_unit_attends_and_clears(server: Server) -> None:
    token = await login(server.url, "handler")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.post(
            "/api/calls",
            headers={"Authorization": f"Bearer {token}"},
            json=call_body("CONCERN_WELFARE", 51.5155, -0.0922),
        )
        assert r.status_code == 201
        incident_id = r.json()["incident"]["id"]
        config = SimulatorConfig(
            url=server.url, ack_delay_s=(0.0, 0.0), on_scene_s=(0.0, 0.0), tick_s=0.1
        )
        sim = Simulator(config, http)
        await sim.sign_in()
        statuses: list[str] = []
        for _ in range(100):
            # A large dt moves units the whole way in one step; statuses still go in order.
            await sim.step(3600.0)
            detail = (await http.get(f"/api/incidents/{incident_id}")).json()
            statuses = [e["data"]["to"] for e in detail["timeline"] if e["type"] == "unit.status"]
            if detail["status"] == "closed":
                break
            await asyncio.sleep(0.05)
        assert detail["status"] == "closed", detail["timeline"]
        assert statuses[:3] == ["en_route", "on_scene", "available"]
        assignment = detail["assignments"][0]
        assert assignment["en_route_at"] <= assignment["on_scene_at"] <= assignment["cleared_at"]
        units = (await http.get("/api/units")).json()
        unit = next(u for u in units if u["id"] == assignment["unit_id"])
        assert abs(unit["lat"] - 51.5155) < 0.001 and abs(unit["lng"] + 0.0922) < 0.001
