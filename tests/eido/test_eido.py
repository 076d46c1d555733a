"""EIDO out and in: every incident shape the service makes exports as a document NENA's
schema accepts; partner documents import, idempotently; a round trip to a second
deployment keeps type, grade, place, calls, remarks and unit times."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cad.eido.schema import EidoSchema
from tests.conftest import (
    PASSWORDS,
    ROOT,
    Api,
    Server,
    Templates,
    call_body,
    login,
    make_settings,
    start_server,
)

EIDO_DIR = ROOT.parent / "shared" / "standards" / "eido"


@pytest.fixture(scope="module")
def schema() -> EidoSchema:
    if not (EIDO_DIR / "openapi.yaml").is_file():
        pytest.fail(f"NENA's EIDO schema is missing at {EIDO_DIR}")
    return EidoSchema.load(EIDO_DIR)


def sample() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EIDO_DIR / "sample_call_transfer_eido.json").read_text())
    return doc


async def _eido(api: Api, incident_id: int, user: str = "supervisor") -> dict[str, Any]:
    r = await api.as_(user, "GET", f"/api/incidents/{incident_id}/eido")
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _valid(schema: EidoSchema, doc: dict[str, Any]) -> None:
    errors = schema.validate(doc)
    assert not errors, [(e.pointer, e.reason) for e in errors[:10]]


async def _new(api: Api, **extra: Any) -> int:
    r = await api.as_("handler", "POST", "/api/calls", json=call_body(**extra))
    assert r.status_code == 201, r.text
    return int(r.json()["incident"]["id"])


async def test_every_incident_shape_exports_as_valid_eido(api: Api, schema: EidoSchema) -> None:
    marker = {"category": "dangerous_dog", "text": "dog at no. 4", "lat": 51.5074,
              "lng": -0.1278, "radius_m": 50, "review_at": "2099-01-01"}  # fmt: skip
    assert (await api.as_("supervisor", "POST", "/api/markers", json=marker)).status_code == 201
    fresh = await _new(api, description="new incident")
    doc = await _eido(api, fresh)
    _valid(schema, doc)
    assert doc["cautionComponent"][0]["cautionTypeInternalText"] == "dangerous_dog"
    assert doc["incidentComponent"]["incidentCommonPriorityNumber"] == 1  # VIOLENCE is I
    assert doc["$id"] == f"urn:emergency:uid:incidentid:{fresh}:{api.settings.eido_agency_id}"

    # Linked call, assigned unit through its steps, remarks, closed, reopened.
    r = await api.as_("handler", "POST", "/api/calls",
                      json=call_body(link_to=fresh, caller={"name": "B", "phone": "07700 900123"}))  # fmt: skip
    assert r.status_code == 201
    unit = (await api.as_("unit", "GET", "/api/units/me")).json()["id"]
    steps: list[tuple[str, str, str, Any]] = [
        ("dispatcher", "POST", f"/api/incidents/{fresh}/assignments", {"unit_id": unit}),
        ("unit", "POST", f"/api/units/{unit}/status", {"status": "en_route", "incident_id": fresh}),
        ("unit", "POST", f"/api/units/{unit}/status", {"status": "on_scene", "incident_id": fresh}),
        ("dispatcher", "POST", f"/api/incidents/{fresh}/remarks", {"text": "<b>armed?</b> & more"}),
    ]  # fmt: skip
    for user, method, url, body in steps:
        assert (await api.as_(user, method, url, json=body)).status_code in (200, 201)
    busy = await _eido(api, fresh)
    _valid(schema, busy)
    assert len(busy["callComponent"]) == 2 and busy["callbackComponent"]
    res = busy["emergencyResourceComponent"][0]
    assert res["primaryUnitStatusRegistryText"] == "OnScene"
    assert any(s.startswith("on_scene=") for s in res["unitStatusInternal"])
    assert busy["notesComponent"][0]["notesActionComments"] == "<b>armed?</b> & more"
    close = {"result_code": "ARREST", "remarks": "done"}
    assert (
        await api.as_("dispatcher", "POST", f"/api/incidents/{fresh}/close", json=close)
    ).status_code == 200
    closed = await _eido(api, fresh)
    _valid(schema, closed)
    assert closed["incidentComponent"]["incidentStatusCommonRegistryText"] == ["Closed"]
    assert (
        closed["incidentComponent"]["dispositionComponent"][0]["dispositionCommonRegistryCode"]
        == "ARREST"
    )
    reopen = {"reason": "more information"}
    assert (
        await api.as_("supervisor", "POST", f"/api/incidents/{fresh}/reopen", json=reopen)
    ).status_code == 200
    _valid(schema, await _eido(api, fresh))

    # Merged: both sides say so.
    a, b = await _new(api, lat=51.52, lng=-0.10), await _new(api, lat=51.521, lng=-0.101)
    merge = {"into_id": b, "reason": "same event"}
    assert (
        await api.as_("dispatcher", "POST", f"/api/incidents/{a}/merge", json=merge)
    ).status_code == 200
    gone, kept = await _eido(api, a), await _eido(api, b)
    _valid(schema, gone)
    _valid(schema, kept)
    assert gone["mergeComponent"][0]["incidentMergeDirectionCode"] == "REPLACED"
    assert kept["mergeComponent"][0]["incidentMergeDirectionCode"] == "REPLACING"
    assert kept["linkComponent"][0]["linkDirectionCode"] == "PARENT"

    # A partner may read it; a call handler may not; every read is audited.
    assert (await api.as_("partner", "GET", f"/api/incidents/{fresh}/eido")).status_code == 200
    assert (await api.as_("handler", "GET", f"/api/incidents/{fresh}/eido")).status_code == 403
    reads = await api.state.pool.fetchval(
        "SELECT count(*) FROM access_log WHERE action = 'eido.read'"
    )
    assert reads == 7  # the six above and the partner's; the refused read is not one


async def test_import_refuses_an_invalid_document_with_pointers(api: Api) -> None:
    bad = sample()
    bad["callComponent"][0]["direction"] = "sideways"
    del bad["agencyComponent"]
    r = await api.as_("partner", "POST", "/api/eido", json=bad)
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert "/callComponent/0/direction" in fields, fields
    assert any(f in ("", "/") for f in fields), fields  # the missing agencyComponent
    assert (await api.as_("partner", "POST", "/api/eido", json=[1, 2])).status_code == 422
    assert (await api.state.pool.fetchval("SELECT count(*) FROM eido_documents")) == 0
    assert (await api.as_("dispatcher", "POST", "/api/eido", json=sample())).status_code == 403


async def test_nena_sample_imports_once_and_an_update_adds_only_what_is_new(api: Api) -> None:
    doc = sample()
    first = await api.as_("partner", "POST", "/api/eido", json=doc)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["created"] and body["applied"] and body["source_agency"] == "state.pa.us"
    again = await api.as_("partner", "POST", "/api/eido", json=doc)
    assert again.json() == {**body, "created": False, "applied": False, "remarks_added": 0}
    incident = (await api.as_("dispatcher", "GET", f"/api/incidents/{body['incident_id']}")).json()
    assert incident["type_code"] == "SUSPICIOUS"  # the sample has no incident type
    # Its location is a civic address in Delaware: kept as text, placed at the fallback.
    assert "Wilmington" in incident["description"]
    assert incident["calls"][0]["caller_phone"] == "8195551212"

    update = copy.deepcopy(doc)
    update["lastUpdateTimeStamp"] = "2021-04-30T14:50:00.0-04:00"
    note = {"$id": "note-1", "lastUpdateTimeStamp": "2021-04-30T14:49:00.0-04:00",
            "updatedByAgencyReference": {"$ref": "state.pa.us"},
            "notesActionComments": "caller now says two men, one with a bat"}  # fmt: skip
    update["notesComponent"] = [note]
    applied = (await api.as_("partner", "POST", "/api/eido", json=update)).json()
    assert applied["incident_id"] == body["incident_id"] and not applied["created"]
    assert applied["applied"] and applied["remarks_added"] == 1
    later = copy.deepcopy(update)
    later["lastUpdateTimeStamp"] = "2021-04-30T14:55:00.0-04:00"
    assert (await api.as_("partner", "POST", "/api/eido", json=later)).json()["remarks_added"] == 0
    remarks = await api.state.pool.fetch(
        "SELECT data->>'text' AS t FROM events WHERE type = 'incident.remark' AND incident_id = $1",
        body["incident_id"],
    )
    assert [r["t"] for r in remarks] == ["[state.pa.us] caller now says two men, one with a bat"]


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (a[0] - b[0]) * 111_320
    dx = (a[1] - b[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


@pytest.fixture
async def second(templates: Templates, redis_prefix: str) -> AsyncIterator[Server]:
    """A second deployment: its own database and its own server process."""
    import uuid

    import asyncpg

    from tests.conftest import PG_BASE

    name = f"cad_t2_{uuid.uuid4().hex[:12]}"
    template = await templates.name(False)
    admin = await asyncpg.connect(f"{PG_BASE}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    settings = make_settings(f"{PG_BASE}/{name}", f"{redis_prefix}:second")
    srv = start_server(settings, name="eido-second", CAD_EIDO_AGENCY_ID="second.police.example.uk")
    try:
        yield srv
    finally:
        srv.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_round_trip_to_a_second_deployment(api: Api, second: Server) -> None:
    incident_id = await _new(api, incident_type="BURGLARY", lat=51.5155, lng=-0.0922,
                             description="rear window smashed")  # fmt: skip
    await api.as_("handler", "POST", "/api/calls", json=call_body(link_to=incident_id))
    unit = (await api.as_("unit", "GET", "/api/units/me")).json()["id"]
    for user, url, body in [
        ("dispatcher", f"/api/incidents/{incident_id}/assignments", {"unit_id": unit}),
        ("unit", f"/api/units/{unit}/status", {"status": "on_scene", "incident_id": incident_id}),
        ("dispatcher", f"/api/incidents/{incident_id}/remarks", {"text": "keyholder on way"}),
    ]:
        assert (await api.as_(user, "POST", url, json=body)).status_code in (200, 201)
    here = (await api.as_("dispatcher", "GET", f"/api/incidents/{incident_id}")).json()
    doc = await _eido(api, incident_id)

    token = await login(second.url, "partner")
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as c:
        headers = {"Authorization": f"Bearer {token}"}
        r = await c.post("/api/eido", json=doc, headers=headers)
        assert r.status_code == 200, r.text
        assert (await c.post("/api/eido", json=doc, headers=headers)).json()["applied"] is False
        theirs_id = r.json()["incident_id"]
        sup = await c.post("/api/auth/token",
                           data={"username": "supervisor", "password": PASSWORDS["supervisor"]})  # fmt: skip
        theirs = (await c.get(f"/api/incidents/{theirs_id}",
                              headers={"Authorization": f"Bearer {sup.json()['access_token']}"})).json()  # fmt: skip
    assert theirs["type_code"] == here["type_code"] == "BURGLARY"
    assert theirs["grade"] == here["grade"]
    assert _metres((theirs["lat"], theirs["lng"]), (here["lat"], here["lng"])) < 1.0
    assert len(theirs["calls"]) == len(here["calls"]) == 2
    assert [c["received_at"][:19] for c in theirs["calls"]] == [
        c["received_at"][:19] for c in here["calls"]
    ]
    remarks = [e["data"]["text"] for e in theirs["timeline"] if e["type"] == "incident.remark"]
    agency = api.settings.eido_agency_id
    assert f"[{agency}] keyholder on way" in remarks
    unit_note = next(t for t in remarks if t.startswith(f"[{agency}] unit CW11"))
    job = next(a for a in here["assignments"] if a["callsign"] == "CW11")
    assert f"on_scene={job['on_scene_at']}" in unit_note.replace("+00:00", "+00:00")
    assert f"dispatched={job['dispatched_at']}" in unit_note
