"""Unit positions reach the staff consoles as pushes computed once per worker."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import websockets

from cad.events.hub import Hub, Positions
from tests.conftest import Server, login


async def _positions(url: str, until: float) -> list[dict[str, object]]:
    """Every positions push a console gets before ``until`` (loop time)."""
    got: list[dict[str, object]] = []
    async with websockets.connect(url, max_size=2**22) as ws:
        await ws.recv()  # hello
        loop = asyncio.get_running_loop()
        while (left := until - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            msg = orjson.loads(raw)
            if msg.get("type") == "positions":
                assert "seq" not in msg
                got.append(msg)
    return got


async def test_staff_consoles_get_one_push_of_what_moved_units_do_not(server: Server) -> None:
    dispatcher = await login(server.url, "dispatcher")
    unit = await login(server.url, "unit")
    h = {"Authorization": f"Bearer {dispatcher}"}
    async with httpx.AsyncClient(base_url=server.url, headers=h, timeout=10) as client:
        units = (await client.get("/api/units")).json()
        units = units["units"] if isinstance(units, dict) else units
        moving = units[0]["id"]
        ws = server.url.replace("http", "ws") + "/ws/events?batch=1&token="
        until = asyncio.get_running_loop().time() + 5.0
        consoles = [
            asyncio.create_task(_positions(ws + dispatcher, until)),
            asyncio.create_task(_positions(ws + dispatcher, until)),
            asyncio.create_task(_positions(ws + unit, until)),
        ]
        await asyncio.sleep(0.5)
        r = await client.post(
            "/api/units/positions", json=[{"unit_id": moving, "lat": 51.5012, "lng": -0.1213}]
        )
        assert r.status_code == 202
        first, second, unit_console = await asyncio.gather(*consoles)
    for pushes in (first, second):
        moved = [u for p in pushes for u in p["units"]]  # type: ignore[attr-defined]
        assert any(
            u["id"] == moving and u["lat"] == 51.5012 and u["lng"] == -0.1213 for u in moved
        ), pushes
        # Only what moved: not the whole fleet every push.
        assert len(moved) < len(units), pushes
    assert first == second  # the same push, built once for the worker
    assert unit_console == []  # a unit's terminal is not sent the fleet


async def test_the_fleet_is_not_diffed_while_no_console_takes_positions() -> None:
    """A worker with no staff console open does not walk the fleet every push (10,000
    units a second on each worker, for nobody)."""
    walks: list[int] = []

    def moved() -> list[dict[str, object]]:
        walks.append(1)
        return [{"id": 1, "lat": 51.5, "lng": -0.1, "at": None}]

    hub = Hub(None, None, "t")  # type: ignore[arg-type]  # the ticker uses neither
    hub.push_positions(moved, 0.01)
    ticker = asyncio.create_task(hub._push_positions())
    try:
        unit_terminal = hub.subscribe(positions=False)
        await asyncio.sleep(0.1)
        assert walks == [] and unit_terminal.queue.empty()
        console = hub.subscribe(positions=True)
        await asyncio.sleep(0.1)
        assert walks and isinstance(console.queue.get_nowait(), Positions)
        assert unit_terminal.queue.empty()
        hub.unsubscribe(console)
        await asyncio.sleep(0.03)
        seen = len(walks)
        await asyncio.sleep(0.1)
        assert len(walks) == seen
    finally:
        ticker.cancel()
