"""The engine as it runs in production: elected, woken by events, timers in the database."""

from __future__ import annotations

from typing import Any

from cad.alarms.service import check_timers
from cad.db.pool import connect
from cad.events.writer import append_event
from tests.conftest import Api, call_body, wait_for
from tests.dispatch.test_assignment import create, engine_pass, only_units_on_duty


async def test_immediate_call_is_assigned_by_the_running_engine(live_api: Api) -> None:
    r = await live_api.as_(
        "handler", "POST", "/api/calls", json=call_body("VIOLENCE", risk={"ongoing": True})
    )
    assert r.status_code == 201
    incident = r.json()["incident"]
    assert incident["grade"] == "I"

    async def assigned() -> Any:
        d = (await live_api.as_("dispatcher", "GET", f"/api/incidents/{incident['id']}")).json()
        return d if len(d["assignments"]) == 2 else None

    detail = await wait_for(assigned, timeout=5)
    assert detail["status"] == "dispatched"
    assert all(
        a["auto"] and a["assigned_by"] == "engine:auto-dispatch" for a in detail["assignments"]
    )
    assert detail["first_assigned_at"] is not None


async def test_extended_grade_waits_for_a_dispatcher(live_api: Api) -> None:
    r = await live_api.as_("handler", "POST", "/api/calls", json=call_body("THEFT"))
    incident = r.json()["incident"]
    assert incident["grade"] == "E" and incident["target_at"] is not None
    # Give the engine a few passes; it must leave E alone.
    r2 = await live_api.as_(
        "handler", "POST", "/api/calls", json=call_body("VIOLENCE", risk={"ongoing": True})
    )

    async def other_done() -> Any:
        d = (
            await live_api.as_("dispatcher", "GET", f"/api/incidents/{r2.json()['incident']['id']}")
        ).json()
        return d["assignments"]

    await wait_for(other_done, timeout=5)
    d = (await live_api.as_("dispatcher", "GET", f"/api/incidents/{incident['id']}")).json()
    assert d["assignments"] == [] and d["status"] == "pending"


async def timers(api: Api, **overrides: Any) -> tuple[int, int]:
    for k, v in overrides.items():
        setattr(api.state.settings, k, v)
    return await check_timers(api.tx, append_event, api.state)


async def test_unacknowledged_assignment_raises_alarm_and_offers_next_unit(api: Api) -> None:
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.12), "CW12": (51.51, -0.12)})
    inc = await create(api, "THEFT", 51.50, -0.12)
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{inc['id']}/assignments",
        json={"unit_id": ids["CW11"]},
    )
    assert r.status_code == 201
    assert await timers(api, ack_timeout_s=3600) == (0, 0)
    assert await timers(api, ack_timeout_s=0) == (1, 0)
    assert await timers(api, ack_timeout_s=0) == (0, 0)  # raised once, not every pass
    alarms = (await api.as_("dispatcher", "GET", "/api/alarms")).json()
    assert [(a["kind"], a["unit_id"]) for a in alarms] == [("ack_timeout", ids["CW11"])]
    events = (await api.as_("dispatcher", "GET", "/api/events?since=0")).json()["events"]
    raised = [e for e in events if e["type"] == "alarm.raised"]
    assert raised[0]["data"]["next_recommendation"]["callsign"] == "CW12"
    # The unit acknowledges (goes en route): the alarm clears, with an event.
    r = await api.as_(
        "dispatcher", "POST", f"/api/units/{ids['CW11']}/status", json={"status": "en_route"}
    )
    assert r.status_code == 200
    assert await timers(api, ack_timeout_s=0) == (0, 1)
    assert (await api.as_("dispatcher", "GET", "/api/alarms")).json() == []


async def test_target_breach_and_welfare_alarms(api: Api) -> None:
    ids = await only_units_on_duty(api, {})
    inc = await create(api, "VIOLENCE", 51.50, -0.12, ongoing=True)
    conn = await connect(api.settings.database_url)
    try:
        await conn.execute(
            "UPDATE incidents SET target_at = now() - interval '1 minute' WHERE id = $1", inc["id"]
        )
    finally:
        await conn.close()
    raised, _ = await timers(api, ack_timeout_s=3600)
    assert raised == 1
    alarms = (await api.as_("dispatcher", "GET", "/api/alarms")).json()
    assert alarms[0]["kind"] == "target_breached" and inc["ref"] in alarms[0]["message"]
    # A unit arrives: the breach alarm clears; a long stay on scene raises a welfare check.
    ids = await only_units_on_duty(api, {"CW11": (51.50, -0.12), "CW12": (51.50, -0.121)})
    await engine_pass(api)
    for unit in ("CW11", "CW12"):
        for status in ("en_route", "on_scene"):
            r = await api.as_(
                "dispatcher", "POST", f"/api/units/{ids[unit]}/status", json={"status": status}
            )
            assert r.status_code == 200, r.text
    conn = await connect(api.settings.database_url)
    try:
        await conn.execute(
            "UPDATE assignments SET on_scene_at = now() - interval '5 hours' WHERE unit_id = $1",
            ids["CW11"],
        )
    finally:
        await conn.close()
    raised, cleared = await timers(api, ack_timeout_s=3600)
    assert (raised, cleared) == (1, 1)
    kinds = {
        (a["kind"], a["unit_id"])
        for a in (await api.as_("dispatcher", "GET", "/api/alarms")).json()
    }
    assert kinds == {("welfare_check", ids["CW11"])}
