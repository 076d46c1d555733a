"""An incident's life, recorded: every change an event in order with its actor, per
assignment timestamps kept, KPI timestamps set once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.conftest import Api, call_body
from tests.intake._support import db, error_fields, events_for, new_incident


async def _available_units(api: Api, n: int) -> list[dict[str, Any]]:
    r = await api.as_("dispatcher", "GET", "/api/units?status=available")
    assert r.status_code == 200, r.text
    units: list[dict[str, Any]] = r.json()[:n]
    assert len(units) == n
    return units


async def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_incident_life_timeline(api: Api, db_url: str) -> None:
    inc = await new_incident(api, call_body("VIOLENCE", 51.5074, -0.1278))
    iid = inc["id"]
    url = f"/api/incidents/{iid}"
    unit, second = await _available_units(api, 2)

    a1 = await _ok(
        await api.as_("dispatcher", "POST", f"{url}/assignments", json={"unit_id": unit["id"]}),
        201,
    )
    assert a1["incident_status"] == "dispatched"
    for status in ("en_route", "on_scene"):
        await _ok(
            await api.as_(
                "dispatcher",
                "POST",
                f"/api/units/{unit['id']}/status",
                json={"status": status, "incident_id": iid},
            )
        )
    await _ok(
        await api.as_("handler", "POST", f"{url}/remarks", json={"text": "caller rang back"}), 201
    )

    before = await counts_events(db_url, iid)
    r = await api.as_("dispatcher", "POST", f"{url}/grade", json={"grade": "S"})
    assert r.status_code == 422 and "reason" in error_fields(r)
    r = await api.as_("dispatcher", "POST", f"{url}/grade", json={"grade": "S", "reason": ""})
    assert r.status_code == 422 and "reason" in error_fields(r)
    r = await api.as_("dispatcher", "POST", f"{url}/grade", json={"grade": "Q", "reason": "typo"})
    assert r.status_code == 422 and "grade" in error_fields(r)
    r = await api.as_("handler", "POST", f"{url}/grade", json={"grade": "S", "reason": "no"})
    assert r.status_code == 403
    assert await counts_events(db_url, iid) == before
    regraded = await _ok(
        await api.as_(
            "dispatcher", "POST", f"{url}/grade", json={"grade": "S", "reason": "fight over"}
        )
    )
    created = datetime.fromisoformat(inc["created_at"])
    assert regraded["grade"] == "S"
    # The target runs from creation, not from the regrade.
    assert datetime.fromisoformat(regraded["target_at"]) == created + timedelta(hours=1)

    mid = await _ok(await api.as_("dispatcher", "GET", url))
    assert mid["status"] == "on_scene"
    first_assigned, first_on_scene = mid["first_assigned_at"], mid["first_on_scene_at"]
    assert first_assigned is not None and first_on_scene is not None

    r = await api.as_("dispatcher", "POST", f"{url}/close", json={"result_code": "no_crime"})
    assert r.status_code == 422 and "result_code" in error_fields(r)
    closed = await _ok(
        await api.as_(
            "dispatcher",
            "POST",
            f"{url}/close",
            json={"result_code": "NO_CRIME", "remarks": "words only"},
        )
    )
    assert (closed["status"], closed["result_code"]) == ("closed", "NO_CRIME")
    closed_at = closed["closed_at"]
    assert closed_at is not None
    # Closing again is refused and does not move closed_at.
    r = await api.as_("dispatcher", "POST", f"{url}/close", json={"result_code": "NFA"})
    assert r.status_code == 409
    assert (await _ok(await api.as_("dispatcher", "GET", url)))["closed_at"] == closed_at

    # Closing freed the unit; its assignment keeps every timestamp.
    units = {u["id"]: u for u in await _ok_list(api, "/api/units")}
    assert units[unit["id"]]["status"] == "available"
    assert units[unit["id"]]["incident_id"] is None
    async with db(db_url) as conn:
        a = await conn.fetchrow("SELECT * FROM assignments WHERE id = $1", a1["assignment_id"])
    assert a["status"] == "cleared" and a["assigned_by"] == "dispatcher:dispatcher"
    assert a["dispatched_at"] <= a["en_route_at"] <= a["on_scene_at"] <= a["cleared_at"]

    r = await api.as_("dispatcher", "POST", f"{url}/reopen", json={})
    assert r.status_code == 422 and "reason" in error_fields(r)
    reopened = await _ok(
        await api.as_("dispatcher", "POST", f"{url}/reopen", json={"reason": "victim rang again"})
    )
    assert reopened["status"] != "closed" and reopened["closed_at"] is None
    assert reopened["result_code"] is None

    # A second unit sent and on scene: the first-assigned/on-scene KPIs do not move.
    await _ok(
        await api.as_("dispatcher", "POST", f"{url}/assignments", json={"unit_id": second["id"]}),
        201,
    )
    await _ok(
        await api.as_(
            "dispatcher", "POST", f"/api/units/{second['id']}/status", json={"status": "on_scene"}
        )
    )
    detail = await _ok(await api.as_("dispatcher", "GET", url))
    assert detail["first_assigned_at"] == first_assigned
    assert detail["first_on_scene_at"] == first_on_scene
    assert [a["unit_id"] for a in detail["assignments"]] == [unit["id"], second["id"]]
    assert detail["assignments"][0]["status"] == "cleared"
    assert detail["assignments"][0]["on_scene_at"] is not None
    assert len(detail["calls"]) == 1

    # The timeline is the event log for this incident, in seq order, with actors.
    stored = await events_for(db_url, iid)
    timeline = detail["timeline"]
    assert [(e["seq"], e["type"], e["actor"]) for e in timeline] == [
        (e["seq"], e["type"], e["actor"]) for e in stored
    ]
    seqs = [e["seq"] for e in timeline]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    steps = [(e["type"], e["actor"]) for e in timeline]
    expected = [
        ("incident.created", "call_handler:handler"),
        ("unit.assigned", "dispatcher:dispatcher"),
        ("unit.status", "dispatcher:dispatcher"),  # en route
        ("unit.status", "dispatcher:dispatcher"),  # on scene
        ("incident.remark", "call_handler:handler"),
        ("incident.graded", "dispatcher:dispatcher"),
        ("unit.status", "dispatcher:dispatcher"),  # freed by the close
        ("incident.closed", "dispatcher:dispatcher"),
        ("incident.reopened", "dispatcher:dispatcher"),
        ("unit.assigned", "dispatcher:dispatcher"),
    ]
    assert _is_subsequence(expected, steps), steps
    by_type = {e["type"]: e for e in timeline}
    assert by_type["incident.graded"]["data"]["reason"] == "fight over"
    assert (
        by_type["incident.graded"]["data"]["from"],
        by_type["incident.graded"]["data"]["to"],
    ) == ("I", "S")
    assert by_type["incident.remark"]["data"]["text"] == "caller rang back"
    assert by_type["incident.closed"]["data"]["units_freed"] == [unit["id"]]
    assert by_type["incident.reopened"]["data"]["reason"] == "victim rang again"
    assert by_type["incident.reopened"]["data"]["previous_result"] == "NO_CRIME"


async def counts_events(db_url: str, incident_id: int) -> int:
    return len(await events_for(db_url, incident_id))


async def _ok_list(api: Api, path: str) -> list[dict[str, Any]]:
    r = await api.as_("dispatcher", "GET", path)
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()
    return out


def _is_subsequence(wanted: list[Any], actual: list[Any]) -> bool:
    it = iter(actual)
    return all(any(w == a for a in it) for w in wanted)


async def test_regrade_same_grade_or_closed_is_409(api: Api) -> None:
    inc = await new_incident(api, call_body("VIOLENCE"))
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{inc['id']}/grade",
        json={"grade": "I", "reason": "same"},
    )
    assert r.status_code == 409
    referred = await new_incident(api, call_body("ADVICE"))
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{referred['id']}/grade",
        json={"grade": "S", "reason": "more info"},
    )
    assert r.status_code == 409
    r = await api.as_(
        "dispatcher", "POST", f"/api/incidents/{inc['id']}/reopen", json={"reason": "not closed"}
    )
    assert r.status_code == 409


async def test_an_attended_incident_reopens_pending_when_no_unit_is_there(api: Api) -> None:
    """Closing cleared the unit that attended: reopened, the job waits for a unit again
    (it used to claim on_scene with nobody there), and the event says who is on it."""
    inc = await new_incident(api, call_body("VIOLENCE", 51.5074, -0.1278))
    url = f"/api/incidents/{inc['id']}"
    (unit,) = await _available_units(api, 1)
    await _ok(
        await api.as_("dispatcher", "POST", f"{url}/assignments", json={"unit_id": unit["id"]}),
        201,
    )
    for status in ("en_route", "on_scene"):
        await _ok(
            await api.as_(
                "dispatcher", "POST", f"/api/units/{unit['id']}/status", json={"status": status}
            )
        )
    await _ok(await api.as_("dispatcher", "POST", f"{url}/close", json={"result_code": "NFA"}))
    reopened = await _ok(
        await api.as_("dispatcher", "POST", f"{url}/reopen", json={"reason": "caller rang back"})
    )
    assert reopened["status"] == "pending"
    assert reopened["first_on_scene_at"] is not None  # the record of the attendance stays
    events = await api.as_("dispatcher", "GET", url)
    event = [e for e in events.json()["timeline"] if e["type"] == "incident.reopened"][-1]
    assert event["data"]["status"] == "pending" and event["data"]["units"] == []
