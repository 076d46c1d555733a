"""The unit app's server side: presses queued offline arrive late, maybe twice, maybe at
once; each applies once, in the officer's time. And the emergency button."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cad.alarms.service import check_timers
from cad.events.writer import append_event
from tests.conftest import Api, call_body


async def _unit_with_job(api: Api, grade_type: str = "VIOLENCE") -> tuple[int, int, int]:
    me = (await api.as_("unit", "GET", "/api/units/me")).json()
    r = await api.as_("handler", "POST", "/api/calls", json=call_body(grade_type))
    incident_id = r.json()["incident"]["id"]
    a = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident_id}/assignments",
        json={"unit_id": me["id"]},
    )
    assert a.status_code == 201, a.text
    return int(me["id"]), int(incident_id), int(a.json()["assignment_id"])


async def _send(api: Api, url: str, body: dict[str, Any], key: str, copies: int) -> list[Any]:
    """One queued press sent several times at once (a flaky link retrying)."""
    return list(
        await asyncio.gather(
            *(
                api.as_("unit", "POST", url, json=body, headers={"Idempotency-Key": key})
                for _ in range(copies)
            )
        )
    )


async def test_queued_presses_apply_once_in_order_with_their_times(api: Api) -> None:
    unit_id, incident_id, assignment_id = await _unit_with_job(api)
    # Pressed after the dispatch, sent later (the phone was in a tunnel).
    await asyncio.sleep(0.05)
    pressed_route = datetime.now(UTC)
    await asyncio.sleep(0.05)
    pressed_scene = datetime.now(UTC)
    url = f"/api/units/{unit_id}/status"
    first = await _send(
        api, url,
        {"status": "en_route", "incident_id": incident_id, "pressed_at": pressed_route.isoformat()},
        "press-1", 4,
    )  # fmt: skip
    second = await _send(
        api, url,
        {"status": "on_scene", "incident_id": incident_id, "pressed_at": pressed_scene.isoformat()},
        "press-2", 4,
    )  # fmt: skip
    # Concurrent copies: one runs, the others wait on its key and get its answer, or
    # (if they ran first) the unit is already there: nothing doubles either way.
    assert {r.status_code for r in first + second} == {200}, [r.text for r in first + second]
    detail = (await api.as_("dispatcher", "GET", f"/api/incidents/{incident_id}")).json()
    job = next(a for a in detail["assignments"] if a["id"] == assignment_id)
    assert datetime.fromisoformat(job["en_route_at"]) == pressed_route
    assert datetime.fromisoformat(job["on_scene_at"]) == pressed_scene
    assert datetime.fromisoformat(job["acknowledged_at"]) == pressed_route
    events = await api.state.pool.fetch(
        "SELECT data FROM events WHERE type = 'unit.status' AND unit_id = $1 ORDER BY seq", unit_id
    )
    moves = [(e["data"]["to"], e["data"].get("pressed_at")) for e in events]
    assert moves == [
        ("en_route", pressed_route.isoformat()),
        ("on_scene", pressed_scene.isoformat()),
    ]
    assert all("received_at" in e["data"] for e in events)


async def test_a_press_in_the_future_or_before_the_job_is_refused(api: Api) -> None:
    unit_id, incident_id, _ = await _unit_with_job(api)
    url = f"/api/units/{unit_id}/status"
    for when in (datetime.now(UTC) + timedelta(minutes=5), datetime.now(UTC) - timedelta(hours=1)):
        body = {"status": "en_route", "incident_id": incident_id, "pressed_at": when.isoformat()}
        r = await api.as_("unit", "POST", url, json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "pressed_at", r.text
    naive = {"status": "en_route", "pressed_at": "2026-12-01T10:00:00"}
    assert (await api.as_("unit", "POST", url, json=naive)).status_code == 422
    me = (await api.as_("unit", "GET", "/api/units/me")).json()
    assert me["status"] == "dispatched"  # nothing changed


async def test_a_queued_press_for_a_cancelled_job_is_refused_with_the_reason(api: Api) -> None:
    unit_id, incident_id, _ = await _unit_with_job(api)
    # Meanwhile the dispatcher stood the unit down (the job went to another unit).
    r = await api.as_(
        "dispatcher", "POST", f"/api/units/{unit_id}/status", json={"status": "available"}
    )
    assert r.status_code == 200, r.text
    late = {"status": "en_route", "incident_id": incident_id,
            "pressed_at": datetime.now(UTC).isoformat()}  # fmt: skip
    refused = await api.as_(
        "unit", "POST", f"/api/units/{unit_id}/status", json=late,
        headers={"Idempotency-Key": "late-1"},
    )  # fmt: skip
    assert refused.status_code == 409
    assert "not assigned to incident" in refused.json()["detail"]


async def test_remarks_and_acknowledgement_from_the_unit(api: Api) -> None:
    unit_id, incident_id, assignment_id = await _unit_with_job(api)
    written = datetime.now(UTC)
    body = {"text": "suspect ran north", "pressed_at": written.isoformat()}
    copies = await _send(api, f"/api/incidents/{incident_id}/remarks", body, "remark-1", 3)
    assert {r.status_code for r in copies} == {201}
    remarks = await api.state.pool.fetch(
        "SELECT data FROM events WHERE type = 'incident.remark' AND incident_id = $1", incident_id
    )
    assert [r["data"]["written_at"] for r in remarks] == [written.isoformat()]
    seen = datetime.now(UTC)
    ack = await api.as_(
        "unit", "POST", f"/api/units/{unit_id}/acknowledge",
        json={"assignment_id": assignment_id, "pressed_at": seen.isoformat()},
    )  # fmt: skip
    assert ack.status_code == 200 and ack.json()["changed"] is True, ack.text
    again = await api.as_(
        "unit", "POST", f"/api/units/{unit_id}/acknowledge", json={"assignment_id": assignment_id}
    )
    assert again.json()["changed"] is False
    # Acknowledged: no "has not acknowledged" alarm, however long it stays dispatched.
    api.state.settings.ack_timeout_s = 0
    await check_timers(api.tx, append_event, api.state)
    kinds = {a["kind"] for a in (await api.as_("dispatcher", "GET", "/api/alarms")).json()}
    assert "ack_timeout" not in kinds
    wrong = await api.as_(
        "unit", "POST", f"/api/units/{unit_id}/acknowledge", json={"assignment_id": 2**40}
    )
    assert wrong.status_code == 409


async def test_emergency_end_to_end(api: Api) -> None:
    unit_id, old_incident, _ = await _unit_with_job(api, "ASB")
    pressed = datetime.now(UTC) - timedelta(seconds=1)
    key = uuid.uuid4().hex
    # A frantic officer: several presses at once, and the app's own resend.
    presses = await asyncio.gather(
        *(
            api.as_(
                "unit", "POST", f"/api/units/{unit_id}/emergency",
                json={"pressed_at": pressed.isoformat()},
                headers={"Idempotency-Key": key if i < 2 else uuid.uuid4().hex},
            )
            for i in range(5)
        )
    )  # fmt: skip
    assert {p.status_code for p in presses} == {201}, [p.text for p in presses]
    bodies = [p.json() for p in presses]
    assert len({b["emergency_id"] for b in bodies}) == 1
    # One press made it; the others found it open, or (same key) were given its answer.
    fresh = [p.json() for p in presses if p.headers.get("Idempotent-Replay") != "true"]
    assert sum(not b["already_open"] for b in fresh) == 1
    assert sum(p.headers.get("Idempotent-Replay") == "true" for p in presses) <= 1
    em = next(b for b in bodies if not b["already_open"])
    assert len(em["assigned"]) == 3 and em["shortfall"] == 0
    assert unit_id not in {a["unit_id"] for a in em["assigned"]}
    assert datetime.fromisoformat(em["pressed_at"]) == pressed
    assert em["position_age_s"] is not None

    incident = (await api.as_("dispatcher", "GET", f"/api/incidents/{em['incident_id']}")).json()
    assert incident["grade"] == "I" and incident["type_code"] == "OFFICER_ASSIST"
    open_jobs = {a["unit_id"]: a["status"] for a in incident["assignments"]
                 if a["status"] in ("dispatched", "en_route", "on_scene")}  # fmt: skip
    assert open_jobs[unit_id] == "on_scene"  # the officer is at their own emergency
    assert len(open_jobs) == 4
    old = (await api.as_("dispatcher", "GET", f"/api/incidents/{old_incident}")).json()
    assert old["status"] == "pending"  # back in the queue for the dispatcher

    alarms = (await api.as_("dispatcher", "GET", "/api/alarms")).json()
    alarm = next(a for a in alarms if a["kind"] == "officer_emergency")
    assert alarm["id"] == em["alarm_id"] and "urgent assistance" in alarm["message"]
    # The timers never clear it: it waits for a person.
    await check_timers(api.tx, append_event, api.state)
    assert any(
        a["id"] == alarm["id"] for a in (await api.as_("handler", "GET", "/api/alarms")).json()
    )
    assert (
        await api.as_("handler", "POST", f"/api/alarms/{alarm['id']}/acknowledge")
    ).status_code == 403
    ack = await api.as_("dispatcher", "POST", f"/api/alarms/{alarm['id']}/acknowledge")
    assert ack.status_code == 200 and ack.json()["acknowledged_by"] == "dispatcher:dispatcher"
    assert (
        await api.as_("supervisor", "POST", f"/api/alarms/{alarm['id']}/acknowledge")
    ).status_code == 409
    cleared = await api.state.pool.fetchval(
        "SELECT data FROM events WHERE type = 'alarm.cleared' AND data->>'kind' = 'officer_emergency'"
    )
    assert cleared["acknowledged_by"] == "dispatcher:dispatcher"

    cancel = await api.as_(
        "unit",
        "POST",
        f"/api/units/{unit_id}/emergency/cancel",
        json={"reason": "false alarm, all ok"},
    )
    assert cancel.status_code == 200 and cancel.json()["cancel_reason"] == "false alarm, all ok"
    again = await api.as_(
        "unit", "POST", f"/api/units/{unit_id}/emergency/cancel", json={"reason": "x"}
    )
    assert again.status_code == 409
    kept = (await api.as_("dispatcher", "GET", f"/api/incidents/{em['incident_id']}")).json()
    assert kept["status"] != "closed"
    record = await api.state.pool.fetch(
        "SELECT type, actor FROM events WHERE incident_id = $1 ORDER BY seq", em["incident_id"]
    )
    types = [r["type"] for r in record]
    assert "emergency.raised" in types and "emergency.cancelled" in types
    pressed_by = next(r["actor"] for r in record if r["type"] == "emergency.raised")
    assert pressed_by == "unit:unit"


async def test_the_unit_app_learns_its_open_emergency_and_a_cancel_resend_is_harmless(
    api: Api,
) -> None:
    me = (await api.as_("unit", "GET", "/api/units/me")).json()
    assert me["emergency"] is None
    raised = await api.as_("unit", "POST", f"/api/units/{me['id']}/emergency", json={})
    assert raised.status_code == 201, raised.text
    seen = (await api.as_("unit", "GET", "/api/units/me")).json()["emergency"]
    assert seen["emergency_id"] == raised.json()["emergency_id"] and seen["already_open"]
    alarms = (await api.as_("dispatcher", "GET", "/api/alarms")).json()
    alarm = next(a for a in alarms if a["kind"] == "officer_emergency")
    assert alarm["callsign"] == "CW11" and alarm["ref"] == raised.json()["ref"]
    url = f"/api/units/{me['id']}/emergency/cancel"
    headers = {"Idempotency-Key": "cancel-1"}
    first = await api.as_("unit", "POST", url, json={"reason": "all ok"}, headers=headers)
    again = await api.as_("unit", "POST", url, json={"reason": "all ok"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replay") == "true"
    assert (await api.as_("unit", "GET", "/api/units/me")).json()["emergency"] is None


async def test_a_remark_written_in_the_future_is_refused(api: Api) -> None:
    _, incident_id, _ = await _unit_with_job(api)
    ahead = {
        "text": "from a fast clock",
        "pressed_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    }
    r = await api.as_("unit", "POST", f"/api/incidents/{incident_id}/remarks", json=ahead)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "pressed_at", r.text
    remarks = await api.state.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'incident.remark' AND incident_id = $1",
        incident_id,
    )
    assert remarks == 0
