"""The audit trail: every command leaves an event saying who did it, and the supervisor's
export of an incident is exactly what the database holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import Api, call_body


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def test_full_incident_life_is_audited_and_exported_faithfully(api: Api) -> None:
    pool = api.state.pool
    first_seq = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM events")
    r = await api.as_("handler", "POST", "/api/calls", json=call_body(description="audit me"))
    assert r.status_code == 201, r.text
    incident_id = r.json()["incident"]["id"]
    second = await api.as_(
        "supervisor", "POST", "/api/calls", json=call_body(link_to=incident_id, description="2nd")
    )
    assert second.status_code == 201, second.text
    unit_id = (await api.as_("unit", "GET", "/api/units/me")).json()["id"]
    steps: list[tuple[str, str, str, Any]] = [
        ("dispatcher", "POST", f"/api/incidents/{incident_id}/assignments", {"unit_id": unit_id}),
        ("unit", "POST", f"/api/units/{unit_id}/status", {"status": "en_route", "incident_id": incident_id}),
        ("unit", "POST", f"/api/units/{unit_id}/status", {"status": "on_scene", "incident_id": incident_id}),
        ("dispatcher", "POST", f"/api/incidents/{incident_id}/remarks", {"text": "armed?"}),
        ("supervisor", "POST", f"/api/incidents/{incident_id}/grade", {"grade": "S", "reason": "calmer"}),
        ("dispatcher", "POST", f"/api/incidents/{incident_id}/close", {"result_code": "ARREST", "remarks": "done"}),
        ("supervisor", "POST", f"/api/incidents/{incident_id}/reopen", {"reason": "new info"}),
        ("admin", "POST", f"/api/incidents/{incident_id}/close", {"result_code": "NFA"}),
    ]  # fmt: skip
    for user, method, url, body in steps:
        r = await api.as_(user, method, url, json=body)
        assert r.status_code in (200, 201), (url, r.text)

    events = await pool.fetch("SELECT * FROM events WHERE seq > $1 ORDER BY seq", first_seq)
    assert events, "commands left no events"
    for e in events:
        assert e["actor"] and e["at"] is not None, dict(e)
    actors = {e["type"]: set() for e in events}
    for e in events:
        actors[e["type"]].add(e["actor"])
    assert actors["incident.created"] == {"call_handler:handler"}
    assert "supervisor:supervisor" in actors["call.linked"]
    assert actors["unit.assigned"] == {"dispatcher:dispatcher"}
    assert "unit:unit" in actors["unit.status"]
    assert actors["incident.remark"] == {"dispatcher:dispatcher"}
    assert actors["incident.graded"] == {"supervisor:supervisor"}
    assert actors["incident.closed"] == {"dispatcher:dispatcher", "admin:admin"}
    assert actors["incident.reopened"] == {"supervisor:supervisor"}
    # Closing cleared the unit: that too is an event, by whoever closed.
    freed = [e for e in events if e["type"] == "unit.status" and e["data"].get("to") == "available"]
    assert freed and freed[0]["actor"] == "dispatcher:dispatcher"

    # Units may not export; supervisors may, and the export is the database's record.
    assert (await api.as_("unit", "GET", f"/api/incidents/{incident_id}/export")).status_code == 403
    assert (
        await api.as_("dispatcher", "GET", f"/api/incidents/{incident_id}/export")
    ).status_code == 403
    r = await api.as_("supervisor", "GET", f"/api/incidents/{incident_id}/export")
    assert r.status_code == 200, r.text
    exported = r.json()["incident"]

    incident = await pool.fetchrow("SELECT * FROM incidents WHERE id = $1", incident_id)
    for key in ("ref", "grade", "status", "result_code", "type_code"):
        assert exported[key] == incident[key], key
    assert incident["status"] == "closed" and incident["result_code"] == "NFA"

    calls = await pool.fetch("SELECT * FROM calls WHERE incident_id = $1 ORDER BY id", incident_id)
    assert len(calls) == 2
    assert [c["id"] for c in exported["calls"]] == [c["id"] for c in calls]
    for got, row in zip(exported["calls"], calls, strict=True):
        for key in ("outcome", "description", "caller_name", "received_at", "type_code"):
            assert got[key] == _norm(row[key]), key

    assignments = await pool.fetch(
        "SELECT * FROM assignments WHERE incident_id = $1 ORDER BY id", incident_id
    )
    assert len(assignments) == 1
    for got, row in zip(exported["assignments"], assignments, strict=True):
        for key in (
            "id", "unit_id", "status", "assigned_by", "dispatched_at",
            "en_route_at", "on_scene_at", "cleared_at",
        ):  # fmt: skip
            assert got[key] == _norm(row[key]), key
    assert assignments[0]["assigned_by"] == "dispatcher:dispatcher"
    assert assignments[0]["en_route_at"] and assignments[0]["on_scene_at"]
    assert assignments[0]["cleared_at"]

    db_events = await pool.fetch(
        "SELECT seq, type, actor, data FROM events WHERE incident_id = $1 ORDER BY seq",
        incident_id,
    )
    timeline = [(e["seq"], e["type"], e["actor"], e["data"]) for e in exported["timeline"]]
    assert timeline == [(e["seq"], e["type"], e["actor"], e["data"]) for e in db_events]
    assert len(timeline) >= len(steps) + 2
