"""One unit, one job: under real concurrency, across processes; and the engine's rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from cad.db.pool import connect
from cad.events.writer import Event, append_event
from cad.leader import Leader
from dispatch import repository as repo
from dispatch.engine import EngineMemory, QueueItem, arrival, run_once
from dispatch.model import Need
from dispatch.status import UnitStatus
from gis.spatial import UnitIndex
from tests.conftest import Api, call_body, login, start_server


async def only_units_on_duty(api: Api, callsigns: dict[str, tuple[float, float]]) -> dict[str, int]:
    """Everyone off duty except the named units, placed where the test wants them."""
    conn = await connect(api.settings.database_url)
    try:
        await conn.execute("UPDATE units SET status = 'off_duty'")
        ids = {}
        for callsign, (lat, lng) in callsigns.items():
            ids[callsign] = await conn.fetchval(
                """UPDATE units SET status = 'available', lat = $2, lng = $3, position_at = now()
                   WHERE callsign = $1 RETURNING id""",
                callsign,
                lat,
                lng,
            )
    finally:
        await conn.close()
    await api.state.fleet.reload()
    return ids


async def create(api: Api, type_code: str, lat: float, lng: float, **risk: Any) -> dict[str, Any]:
    r = await api.as_(
        "handler", "POST", "/api/calls", json=call_body(type_code, lat, lng, risk=risk)
    )
    assert r.status_code == 201, r.text
    return r.json()["incident"]


async def engine_pass(
    api: Api,
    memory: EngineMemory | None = None,
    arrived: list[QueueItem] | None = None,
    transaction: Any = None,
) -> list[Any]:
    state = api.state
    return await run_once(
        transaction or api.tx,
        append_event,
        state.directory,
        state.plans,
        state.eta,
        datetime.now(UTC),
        grades=["I", "S"],
        stale_after_s=1800,
        divert_min_saving_s=120,
        memory=memory,
        arrived=arrived,
    )


async def available_uncounted(api: Api, callsign: str, lat: float, lng: float) -> int:
    """A unit comes free in the database and appears in this worker's picture without
    the availability change being counted (as the engine's memory sees it)."""
    state = api.state
    conn = await connect(api.settings.database_url)
    try:
        unit_id: int = await conn.fetchval(
            "UPDATE units SET status = 'available', lat = $2, lng = $3, position_at = now() "
            "WHERE callsign = $1 RETURNING id",
            callsign,
            lat,
            lng,
        )
    finally:
        await conn.close()
    ghost = state.directory.units[unit_id]
    ghost.status, ghost.lat, ghost.lng = UnitStatus.AVAILABLE, lat, lng
    ghost.position_at = datetime.now(UTC)
    for cap in ghost.capabilities:
        index = state.directory.available.setdefault(cap, UnitIndex())
        index.upsert(unit_id, *state.projector.to_metres(lat, lng))
    return unit_id


async def open_assignments(api: Api, unit_id: int) -> list[Any]:
    conn = await connect(api.settings.database_url)
    try:
        return list(
            await conn.fetch(
                "SELECT incident_id FROM assignments WHERE unit_id = $1 "
                "AND status IN ('dispatched','en_route','on_scene')",
                unit_id,
            )
        )
    finally:
        await conn.close()


async def test_hundred_concurrent_assignments_two_processes_one_winner(api: Api) -> None:
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.13), "CW12": (51.51, -0.13)})
    incidents = [await create(api, "THEFT", 51.50 + i * 1e-4, -0.13) for i in range(100)]
    assert {i["grade"] for i in incidents} == {"E"}  # not auto-dispatched
    servers = [
        # Enough connections that no request waits for the pool: the race is on the row.
        start_server(
            api.settings, name=f"assign{n}", CAD_AUTO_DISPATCH_GRADES="", CAD_DB_POOL_MAX="25"
        )
        for n in range(2)
    ]
    try:
        token = await login(servers[0].url, "dispatcher")
        headers = {"Authorization": f"Bearer {token}"}
        clients = [httpx.AsyncClient(base_url=s.url, headers=headers, timeout=30) for s in servers]
        results = await asyncio.gather(
            *[
                clients[n % 2].post(
                    f"/api/incidents/{inc['id']}/assignments", json={"unit_id": ids["CW11"]}
                )
                for n, inc in enumerate(incidents)
            ]
        )
        for c in clients:
            await c.aclose()
    finally:
        for s in servers:
            s.stop()
    codes = [r.status_code for r in results]
    odd = [r.text for r in results if r.status_code not in (201, 409)][:3]
    assert not odd, odd
    assert codes.count(201) == 1, codes
    assert codes.count(409) == 99, codes
    losers = [r.json() for r in results if r.status_code == 409]
    assert all("CW11" in body["detail"] for body in losers)
    # The loser is offered the next best unit that is still free.
    offered = {
        body["next_recommendation"]["callsign"] for body in losers if body["next_recommendation"]
    }
    assert offered <= {"CW12"} and offered
    held = await open_assignments(api, ids["CW11"])
    assert len(held) == 1
    winner = next(r.json() for r in results if r.status_code == 201)
    assert held[0]["incident_id"] == winner["incident_id"]


async def test_pending_queue_most_urgent_first(api: Api) -> None:
    await only_units_on_duty(api, {})
    slow = await create(api, "THEFT", 51.50, -0.12, offender_detained=True)  # S, older
    urgent = await create(api, "VIOLENCE", 51.52, -0.10, ongoing=True)  # I, newer
    assert (slow["grade"], urgent["grade"]) == ("S", "I")
    assert await engine_pass(api) == []  # nobody free: both wait
    # One unit comes on duty near the older S job: the I job still gets it first.
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.12)})
    done = await engine_pass(api)
    assert [(a.incident_id, a.unit_id) for a in done] == [(urgent["id"], ids["CW11"])]
    r = await api.as_("dispatcher", "GET", f"/api/incidents/{slow['id']}")
    assert r.json()["status"] == "pending"


async def test_unit_becoming_available_goes_to_most_urgent_it_can_serve(api: Api) -> None:
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.12)})
    first = await create(api, "VIOLENCE", 51.50, -0.12, ongoing=True)
    await engine_pass(api)
    second = await create(api, "THEFT", 51.50, -0.121, offender_detained=True)  # S
    third = await create(api, "VIOLENCE", 51.55, -0.2, ongoing=True)  # I, farther
    assert await engine_pass(api) == []
    # CW11 clears from the first job: offered to the I-grade one, not the nearer S one.
    for status in ("en_route", "on_scene", "available"):
        r = await api.as_(
            "dispatcher", "POST", f"/api/units/{ids['CW11']}/status", json={"status": status}
        )
        assert r.status_code == 200, r.text
    await api.state.fleet.reload()
    done = await engine_pass(api)
    assert [(a.incident_id, a.unit_id) for a in done][:1] == [(third["id"], ids["CW11"])]
    r = await api.as_("dispatcher", "GET", f"/api/incidents/{first['id']}")
    assert r.json()["status"] == "closed"  # last unit cleared from scene: auto-closed, audited
    assert r.json()["timeline"][-1]["type"] == "incident.closed"
    assert r.json()["timeline"][-1]["data"]["auto"] is True
    r = await api.as_("dispatcher", "GET", f"/api/incidents/{second['id']}")
    assert r.json()["status"] == "pending"


async def test_immediate_grade_diverts_unit_from_lower_grade_job(api: Api) -> None:
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.12)})
    s_job = await create(api, "THEFT", 51.53, -0.12, offender_detained=True)
    await engine_pass(api)
    r = await api.as_(
        "dispatcher", "POST", f"/api/units/{ids['CW11']}/status", json={"status": "en_route"}
    )
    assert r.status_code == 200
    await api.state.fleet.reload()
    i_job = await create(api, "VIOLENCE", 51.501, -0.12, ongoing=True)
    done = await engine_pass(api)
    assert [(a.incident_id, a.unit_id, a.divert_from_incident) for a in done] == [
        (i_job["id"], ids["CW11"], s_job["id"])
    ]
    s_detail = (await api.as_("dispatcher", "GET", f"/api/incidents/{s_job['id']}")).json()
    assert s_detail["status"] == "pending"
    assert "incident.returned_to_queue" in [e["type"] for e in s_detail["timeline"]]
    assert s_detail["assignments"][0]["status"] == "cancelled"
    assert s_detail["assignments"][0]["cleared_reason"] == "diverted"
    i_detail = (await api.as_("dispatcher", "GET", f"/api/incidents/{i_job['id']}")).json()
    assigned = [e for e in i_detail["timeline"] if e["type"] == "unit.assigned"]
    assert assigned[0]["data"]["diverted_from"] == s_job["id"]


async def test_no_divert_from_scene_or_same_grade(api: Api) -> None:
    ids = await only_units_on_duty(
        api, {"CW11": (51.50, -0.12), "CW12": (51.502, -0.12), "CW13": (51.60, -0.40)}
    )
    first = await create(api, "VIOLENCE", 51.50, -0.12, ongoing=True)  # plan: 2 response
    await engine_pass(api)
    held = await open_assignments(api, ids["CW11"])
    assert held and held[0]["incident_id"] == first["id"]
    await api.state.fleet.reload()
    await create(api, "VIOLENCE", 51.501, -0.12, ongoing=True)  # also I: no divert
    done = await engine_pass(api)
    # The far free one, and no diversion from the other I job to fill the second place.
    assert [a.unit_id for a in done] == [ids["CW13"]]
    assert (await open_assignments(api, ids["CW11"]))[0]["incident_id"] == first["id"]


async def test_status_changes_apply_to_the_one_assignment(api: Api) -> None:
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.12)})
    inc = await create(api, "THEFT", 51.50, -0.12)
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{inc['id']}/assignments",
        json={"unit_id": ids["CW11"]},
    )
    assert r.status_code == 201, r.text
    other = await create(api, "THEFT", 51.51, -0.12)
    # A late "on scene" for another job is refused, not applied to this one.
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/units/{ids['CW11']}/status",
        json={"status": "on_scene", "incident_id": other["id"]},
    )
    assert r.status_code == 409
    r = await api.as_(
        "dispatcher", "POST", f"/api/units/{ids['CW11']}/status", json={"status": "off_duty"}
    )
    assert r.status_code == 409
    body = r.json()
    assert "expected a move from dispatched to one of" in body["detail"]
    assert set(body["allowed"]) == {"en_route", "on_scene", "available", "unavailable"}
    for status in ("en_route", "on_scene"):
        r = await api.as_(
            "dispatcher",
            "POST",
            f"/api/units/{ids['CW11']}/status",
            json={"status": status, "incident_id": inc["id"]},
        )
        assert r.status_code == 200, r.text
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{inc['id']}/close",
        json={"result_code": "ADVICE_GIVEN", "remarks": "music turned down"},
    )
    assert r.status_code == 200, r.text
    detail = (await api.as_("dispatcher", "GET", f"/api/incidents/{inc['id']}")).json()
    a = detail["assignments"][0]
    assert a["status"] == "cleared" and a["on_scene_at"] and a["en_route_at"] and a["cleared_at"]
    units = (await api.as_("dispatcher", "GET", "/api/units?status=available")).json()
    assert ids["CW11"] in [u["id"] for u in units]
    # Assigning to a closed incident is refused.
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{inc['id']}/assignments",
        json={"unit_id": ids["CW11"]},
    )
    assert r.status_code == 409


async def test_positions_bulk_and_freshness_across_workers(api: Api) -> None:
    ids = await only_units_on_duty(api, {"CW11": (51.60, -0.10), "CW12": (51.45, -0.10)})
    inc = await create(api, "THEFT", 51.45, -0.10)
    servers = [
        start_server(api.settings, name=f"pos{n}", CAD_AUTO_DISPATCH_GRADES="") for n in range(2)
    ]
    try:
        token = await login(servers[0].url, "dispatcher")
        h = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=h, timeout=10) as client:

            async def best(url: str) -> str:
                r = await client.get(f"{url}/api/incidents/{inc['id']}/recommendations")
                return str(r.json()["recommended"][0]["callsign"])

            assert await best(servers[1].url) == "CW12"
            r = await client.post(
                f"{servers[0].url}/api/units/positions",
                json=[
                    {"unit_id": ids["CW11"], "lat": 51.4501, "lng": -0.1001},
                    {"unit_id": ids["CW12"], "lat": 51.65, "lng": -0.10},
                ],
            )
            assert r.status_code == 202 and r.json()["applied"] == 2
            # The other process hears of it through Redis: bounded wait, no fixed sleep.
            deadline = asyncio.get_running_loop().time() + 3
            while await best(servers[1].url) != "CW11":
                assert asyncio.get_running_loop().time() < deadline, "stale index on worker 2"
                await asyncio.sleep(0.05)
            r = await client.post(
                f"{servers[0].url}/api/units/positions",
                json=[{"unit_id": 10**9, "lat": 51.5, "lng": -0.1}],
            )
            assert r.status_code == 404
    finally:
        for s in servers:
            s.stop()


async def test_engine_memory_skips_unchanged_short_incidents(api: Api) -> None:
    await only_units_on_duty(api, {})
    memory = EngineMemory()
    state = api.state
    short = await create(api, "THEFT", 51.50, -0.12, offender_detained=True)  # S

    async def run() -> list[Any]:
        return await engine_pass(api, memory)

    assert await run() == []
    assert (short["id"], (Need("response", 1),)) in memory.short
    # Without the availability change counted, the memory holds: the short incident is
    # not planned again (without the memory it would be served right here).
    unit_id = await available_uncounted(api, "CW11", 51.5, -0.12)
    assert await run() == []
    # Once an availability change is counted, the incident is planned and served.
    await state.fleet.reload()
    done = await run()
    assert [(a.incident_id, a.unit_id) for a in done] == [(short["id"], unit_id)]
    assert memory.short == frozenset()


async def test_engine_plans_arrivals_without_reading_the_queue(api: Api) -> None:
    await only_units_on_duty(api, {})
    memory = EngineMemory()
    assert await engine_pass(api, memory) == []  # a full read: nothing to plan
    told = await create(api, "VIOLENCE", 51.50, -0.12, ongoing=True)
    untold = await create(api, "VIOLENCE", 51.50, -0.12, ongoing=True)
    assert told["grade"] == untold["grade"] == "I"
    # With no unit to send, an arrival costs no round trip: nothing to ask the
    # database about (and it is remembered, as any arrival left short).
    opened: list[int] = []

    @asynccontextmanager
    async def counted() -> AsyncIterator[asyncpg.Connection]:
        opened.append(1)
        async with api.tx() as conn:
            yield conn

    early = arrival(untold["id"], "I", "VIOLENCE", 51.5, -0.12, api.state.plans)
    assert await engine_pass(api, memory, arrived=[early], transaction=counted) == []
    assert opened == [] and untold["id"] in memory.seen
    units = [
        await available_uncounted(api, c, 51.5, -0.12) for c in ("CW11", "CW12", "CW13", "CL11")
    ]

    def item(incident: dict[str, Any]) -> QueueItem:
        return arrival(
            incident["id"], "I", "VIOLENCE", incident["lat"], incident["lng"], api.state.plans
        )

    # One more, with a unit sent to it in the transaction that created it (as an
    # emergency sends its units): its incident.created event still says "pending".
    sent = await create(api, "VIOLENCE", 51.50, -0.12, ongoing=True)
    conn = await connect(api.settings.database_url)
    try:
        await conn.execute(
            """WITH u AS (UPDATE units SET status = 'dispatched' WHERE callsign = 'CL12'
                          RETURNING id)
               INSERT INTO assignments (incident_id, unit_id, assigned_by)
               SELECT $1, u.id, 'test' FROM u""",
            sent["id"],
        )
    finally:
        await conn.close()
    assert memory.only_arrivals(api.state.directory, datetime.now(UTC))

    # No unit counted as come free since the read: only the incident its event told of
    # is planned (a read of the queue would have served both), and not the one that
    # already has a unit, though its event said it had none.
    first = await engine_pass(api, memory, arrived=[item(told), item(sent)])
    assert {a.incident_id for a in first} == {told["id"]} and len(first) == 2
    # The same arrival told again (an event that a read had already covered): planned
    # once only, though two units stand free beside it.
    assert await engine_pass(api, memory, arrived=[item(told)]) == []
    # A counted change: the queue is read, and the untold incident served.
    await api.state.fleet.reload()
    then = await engine_pass(api, memory, arrived=[])
    assert {a.incident_id for a in then} == {untold["id"]} and len(then) == 2
    assert sorted(a.unit_id for a in first + then) == sorted(units)


async def test_unit_sees_its_own_job_with_names(api: Api) -> None:
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.12)})
    inc = await create(api, "THEFT", 51.50, -0.12)
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{inc['id']}/assignments",
        json={"unit_id": ids["CW11"]},
    )
    assert r.status_code == 201
    me = (await api.as_("unit", "GET", "/api/units/me")).json()
    assert me["callsign"] == "CW11" and me["status"] == "dispatched"
    job = me["job"]
    assert job["assignment_status"] == "dispatched"
    assert job["incident"]["ref"] == inc["ref"]
    assert job["incident"]["type_name"] == "Theft"
    assert job["incident"]["area"] == api.state.areas.area_for(51.50, -0.12).name


async def test_the_leader_reads_the_queue_after_a_regrade_or_a_return(api: Api) -> None:
    """Arrivals stand in for the queue only while nothing but new incidents happened:
    an incident graded up into an auto grade, or back in the queue, is not new."""
    leader = Leader(api.state)
    now = datetime.now(UTC)

    def event(type_: str, **data: Any) -> Event:
        return Event(1, now, type_, 7, None, "test", data)

    created = event(
        "incident.created", status="pending", grade="I", type_code="VIOLENCE", lat=51.5,
        lng=-0.12,
    )  # fmt: skip
    leader.on_event(created)  # before the first pass nothing is gathered:
    assert leader._take_arrivals() is None  # that pass reads the queue
    leader.on_event(created)
    assert [a.incident_id for a in leader._take_arrivals() or ()] == [7]
    for other in ("incident.graded", "incident.returned_to_queue"):
        leader.on_event(created)
        leader.on_event(event(other))
        assert leader._take_arrivals() is None, other
        assert leader._take_arrivals() == []


async def test_arrivals_are_checked_by_key_whatever_the_statistics_say(db_url: str) -> None:
    """The engine's check of its arrivals probes each incident by its key, even when the
    statistics date from an hour with nothing pending and a surge has left thousands
    pending since (the plan that walked them all cost 5 ms a pass)."""
    conn = await connect(db_url)
    try:
        await conn.execute("ANALYZE incidents")
        ids = await conn.fetchval(
            """WITH n AS (
                   INSERT INTO incidents (ref, type_code, grade, grade_rule, lat, lng,
                                          call_received_at, call_answered_at)
                   SELECT 'CAD T' || g, 'BURG', 'S', 'test', 51.5, -0.12, now(), now()
                   FROM generate_series(1, 5000) g RETURNING id)
               SELECT array_agg(id ORDER BY id DESC) FROM n"""
        )
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {repo.UNTOUCHED}", ids[:40])
        scans: list[tuple[str, str | None]] = []

        def walk(node: dict[str, Any]) -> None:
            if node.get("Relation Name") == "incidents":
                scans.append((node["Node Type"], node.get("Index Name")))
            for child in node.get("Plans", ()):
                walk(child)

        walk((orjson.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
        assert scans == [("Index Scan", "incidents_pkey")], scans
        assert await repo.untouched(conn, ids[:40]) == set(ids[:40])
    finally:
        await conn.close()
