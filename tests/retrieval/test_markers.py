"""Warning markers: create and edit (audited), match a call's place and phone, the snapshot
recorded on an incident, who may see what, and grading rules on marker categories."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cad.places.service import bng
from tests.conftest import Api
from tests.intake._support import db, events_for, offset
from tests.intake.test_intake_grading import MARKER_RULES
from tests.retrieval._support import (
    CAMDEN,
    EALING,
    GREENWICH,
    HACKNEY,
    LAMBETH,
    TRAFALGAR,
    assign,
    call,
    fields,
    incident,
    ok,
    table_counts,
)

REVIEW = (date.today() + timedelta(days=180)).isoformat()


def at_point(lat: float, lng: float, radius_m: int = 30, **extra: Any) -> dict[str, Any]:
    return {
        "category": "firearms",
        "text": "Licensed shotgun holder",
        "lat": lat,
        "lng": lng,
        "radius_m": radius_m,
        "review_at": REVIEW,
        **extra,
    }


def on_phone(phone: str, **extra: Any) -> dict[str, Any]:
    return {
        "category": "vulnerable_person",
        "text": "Caller has dementia",
        "phone": phone,
        "review_at": REVIEW,
        **extra,
    }


async def create(api: Api, body: dict[str, Any], user: str = "supervisor") -> dict[str, Any]:
    out: dict[str, Any] = await ok(await api.as_(user, "POST", "/api/markers", json=body), 201)
    return out


async def matched(api: Api, **body: Any) -> list[tuple[int, str]]:
    """(marker id, how it matched) for a grade preview of an ASB call."""
    out = await ok(
        await api.as_(
            "handler", "POST", "/api/calls/grade-preview", json={"incident_type": "ASB", **body}
        )
    )
    return [(m["id"], m["match"]) for m in out["markers"]]


async def marker_events(api: Api) -> list[Any]:
    async with db(api.settings.database_url) as conn:
        return list(
            await conn.fetch(
                "SELECT type, actor, data FROM events WHERE type LIKE 'marker.%' ORDER BY seq"
            )
        )


async def test_create_each_anchor_and_refusals_change_nothing(api: Api) -> None:
    lat, lng = CAMDEN
    point = await create(api, at_point(lat, lng))
    assert {k: point[k] for k in ("category", "category_name", "severity", "officer_safety")} == {
        "category": "firearms",
        "category_name": "Firearms",
        "severity": "high",
        "officer_safety": True,
    }
    assert (point["lat"], point["lng"], point["radius_m"], point["postcode"], point["phone"]) == (
        lat,
        lng,
        30,
        None,
        None,
    )
    assert (point["review_at"], point["expires_at"], point["active"]) == (REVIEW, None, True)
    assert "supervisor" in point["author"] and point["updated_by"] == point["author"]
    assert "match" not in point
    phone = await create(api, on_phone("+44 7700 900123"), user="admin")
    assert (phone["phone"], phone["lat"], phone["category_name"]) == (
        "+44 7700 900123",
        None,
        "Vulnerable person",
    )
    assert (phone["severity"], phone["officer_safety"]) == ("medium", False)
    expiring = await create(
        api, at_point(*HACKNEY, 1000, category="dangerous_dog", expires_at="2099-01-01T00:00:00Z")
    )
    assert expiring["expires_at"] == "2099-01-01T00:00:00+00:00"
    assert await ok(await api.as_("supervisor", "GET", f"/api/markers/{point['id']}")) == point
    created = await marker_events(api)
    assert [(e["type"], e["data"]["marker_id"]) for e in created] == [
        ("marker.created", point["id"]),
        ("marker.created", phone["id"]),
        ("marker.created", expiring["id"]),
    ]
    assert created[0]["data"]["marker"] == point

    before = await table_counts(api, "markers", "events")
    yesterday = (date.today() - timedelta(days=2)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    refused: list[tuple[dict[str, Any], str]] = [
        ({"category": "firearms", "text": "No anchor", "review_at": REVIEW}, "body"),
        ({**at_point(lat, lng), "phone": "07700 900123"}, "body"),
        ({**on_phone("07700 900123"), "postcode": "SE1 7PB"}, "body"),
        ({k: v for k, v in at_point(lat, lng).items() if k != "radius_m"}, "body"),
        ({k: v for k, v in at_point(lat, lng).items() if k != "lng"}, "body"),
        (at_point(lat, lng, 1001), "radius_m"),
        (at_point(lat, lng, 0), "radius_m"),
        (at_point(lat, lng, category="unicorns"), "category"),
        (at_point(52.4862, -1.8904), "lat"),  # Birmingham: outside the service area
        (at_point(lat, lng, review_at=yesterday), "review_at"),
        (at_point(lat, lng, review_at="soon"), "review_at"),
        ({k: v for k, v in at_point(lat, lng).items() if k != "review_at"}, "review_at"),
        (at_point(lat, lng, expires_at=past), "expires_at"),
        (at_point(lat, lng, expires_at="2099-01-01T00:00:00"), "expires_at"),  # no zone
        (on_phone("12345"), "phone"),
        (on_phone("call 07700 900123"), "phone"),
        ({**on_phone("07700 900123"), "text": "x"}, "text"),
        (
            {
                "category": "firearms",
                "text": "Bad postcode",
                "postcode": "XYZ12",
                "review_at": REVIEW,
            },
            "postcode",
        ),
        ({**at_point(lat, lng), "colour": "red"}, "colour"),
    ]
    for body, field in refused:
        r = await api.as_("supervisor", "POST", "/api/markers", json=body)
        assert field in fields(r), (body, r.json())
    assert await table_counts(api, "markers", "events") == before


async def test_edits_are_audited_and_no_change_writes_nothing(api: Api) -> None:
    m = await create(api, at_point(*LAMBETH))
    url = f"/api/markers/{m['id']}"
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    edited = await ok(
        await api.as_(
            "supervisor",
            "PATCH",
            url,
            json={"text": "Two shotguns", "radius_m": 60, "expires_at": expires.isoformat()},
        )
    )
    assert (edited["text"], edited["radius_m"], edited["expires_at"]) == (
        "Two shotguns",
        60,
        expires.isoformat(),
    )
    assert (edited["category"], edited["review_at"], edited["created_at"]) == (
        "firearms",
        REVIEW,
        m["created_at"],
    )
    assert edited["updated_at"] > m["updated_at"]
    events = await marker_events(api)
    assert events[-1]["type"] == "marker.updated"
    assert events[-1]["data"] == {
        "marker_id": m["id"],
        "changes": {
            "text": ["Licensed shotgun holder", "Two shotguns"],
            "radius_m": [30, 60],
            "expires_at": [None, expires.isoformat()],
        },
    }
    assert "supervisor" in events[-1]["actor"]
    assert await ok(await api.as_("dispatcher", "GET", url)) == edited

    # The same values again: nothing changes, nothing is written.
    n = len(await marker_events(api))
    same = await ok(
        await api.as_("supervisor", "PATCH", url, json={"text": "Two shotguns", "radius_m": 60})
    )
    assert same == edited
    assert len(await marker_events(api)) == n

    review = (date.today() + timedelta(days=400)).isoformat()
    later = await ok(
        await api.as_(
            "admin",
            "PATCH",
            url,
            json={"category": "weapons", "review_at": review, "expires_at": None},
        )
    )
    assert (later["category"], later["category_name"], later["expires_at"]) == (
        "weapons",
        "Weapons",
        None,
    )
    events = await marker_events(api)
    assert len(events) == n + 1
    assert events[-1]["data"]["changes"] == {
        "category": ["firearms", "weapons"],
        "review_at": [REVIEW, review],
        "expires_at": [expires.isoformat(), None],
    }
    assert "admin" in later["updated_by"]

    phone = await create(api, on_phone("07700 900123"))
    before = await table_counts(api, "markers", "events")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    refused: list[tuple[str, dict[str, Any], str]] = [
        (url, {}, "body"),
        (url, {"text": None}, "body"),
        (url, {"radius_m": 2000}, "radius_m"),
        (url, {"category": "unicorns"}, "category"),
        (url, {"review_at": (date.today() - timedelta(days=2)).isoformat()}, "review_at"),
        (url, {"expires_at": past}, "expires_at"),
        (url, {"expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        (url, {"lat": 51.5}, "lat"),  # the anchor is not editable
        (f"/api/markers/{phone['id']}", {"radius_m": 50}, "radius_m"),
    ]
    for path, body, field in refused:
        r = await api.as_("supervisor", "PATCH", path, json=body)
        assert field in fields(r), (body, r.json())
    r = await api.as_("supervisor", "PATCH", "/api/markers/999999", json={"text": "Nobody here"})
    assert r.status_code == 404, r.text
    assert await table_counts(api, "markers", "events") == before
    assert (await ok(await api.as_("supervisor", "GET", url)))["text"] == "Two shotguns"


async def test_matching_by_radius_phone_and_expiry(api: Api) -> None:
    lat, lng = GREENWICH
    point = await create(api, at_point(lat, lng, 30))
    phone = await create(api, on_phone("07700 900123"))
    inside, outside = offset(lat, lng, north_m=20), offset(lat, lng, east_m=45)

    assert await matched(api, location={"lat": inside[0], "lng": inside[1]}) == [
        (point["id"], "location")
    ]
    assert await matched(api, location={"lat": outside[0], "lng": outside[1]}) == []
    for form in ("07700900123", "+44 7700 900123", "0044 7700 900123", "+44 (0)7700 900123"):
        assert await matched(api, caller={"phone": form}) == [(phone["id"], "phone")], form
    assert await matched(api, caller={"phone": "07700 900124"}) == []
    assert await matched(api, caller={"phone": ""}) == []
    # Both: most severe first (firearms is high, vulnerable person medium).
    assert await matched(
        api,
        location={"lat": inside[0], "lng": inside[1]},
        caller={"phone": "+447700900123"},
    ) == [(point["id"], "location"), (phone["id"], "phone")]

    async def listed(**params: Any) -> list[int]:
        out = await ok(await api.as_("handler", "GET", "/api/markers", params=params))
        return [m["id"] for m in out["markers"]]

    assert await listed() == [phone["id"], point["id"]]
    assert await listed(near=f"{outside[0]},{outside[1]},20") == [point["id"]]
    assert await listed(near=f"{outside[0]},{outside[1]},10") == []
    assert await listed(phone="+44 7700 900123") == [phone["id"]]
    assert await listed(category="firearms") == [point["id"]]
    assert await listed(category="hazmat") == []
    r = await api.as_("handler", "GET", "/api/markers", params={"near": "51.5,-0.1"})
    assert "near" in fields(r)

    # Expiry: a near-future expiry still matches; once past, it never matches again but
    # the row stays for audit.
    url = f"/api/markers/{point['id']}"
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await ok(await api.as_("supervisor", "PATCH", url, json={"expires_at": soon}))
    where = {"lat": inside[0], "lng": inside[1]}
    assert await matched(api, location=where) == [(point["id"], "location")]
    async with db(api.settings.database_url) as conn:
        await conn.execute(
            "UPDATE markers SET expires_at = now() - interval '1 minute' WHERE id = $1", point["id"]
        )
    assert await matched(api, location=where) == []
    answer = await call(api, "ASB", at=inside)
    assert answer["markers"] == []
    types = [
        e["type"] for e in await events_for(api.settings.database_url, answer["incident"]["id"])
    ]
    assert "incident.markers" not in types
    assert await listed() == [phone["id"]]
    assert await listed(near=f"{lat},{lng},50") == []
    assert await listed(include_expired="true") == [phone["id"], point["id"]]
    assert await listed(near=f"{lat},{lng},50", include_expired="true") == [point["id"]]
    expired = await ok(await api.as_("handler", "GET", url))
    assert expired["active"] is False


async def test_snapshot_on_the_incident_and_new_markers_from_a_linked_call(api: Api) -> None:
    lat, lng = HACKNEY
    first = await create(api, at_point(lat, lng, 50))
    answer = await call(
        api,
        "ASB",
        at=offset(lat, lng, north_m=10),
        caller={"name": "First Caller", "phone": "07700 900555"},
    )
    inc = answer["incident"]
    assert [(m["id"], m["match"], m["text"]) for m in answer["markers"]] == [
        (first["id"], "location", "Licensed shotgun holder")
    ]
    events = await events_for(api.settings.database_url, inc["id"])
    recorded = [e["data"] for e in events if e["type"] == "incident.markers"]
    assert len(recorded) == 1
    assert recorded[0]["markers"] == answer["markers"]
    assert recorded[0]["ref"] == inc["ref"]
    created = next(e for e in events if e["type"] == "incident.created")
    assert created["data"]["markers"] == [first["id"]]

    # Later edits never rewrite what was shown on the incident.
    await ok(
        await api.as_(
            "supervisor",
            "PATCH",
            f"/api/markers/{first['id']}",
            json={"text": "Shotguns surrendered", "category": "officer_safety"},
        )
    )
    url = f"/api/incidents/{inc['id']}"
    shown = (await ok(await api.as_("dispatcher", "GET", url)))["markers"]
    assert [(m["id"], m["text"], m["category"]) for m in shown] == [
        (first["id"], "Licensed shotgun holder", "firearms")
    ]
    listed = await ok(
        await api.as_("handler", "GET", "/api/markers", params={"incident_id": inc["id"]})
    )
    assert listed["markers"] == shown

    # A second caller, linked with no location of their own, from a number with a marker:
    # the call takes the incident's place; only the new marker is recorded.
    second = await create(api, on_phone("07700 900666"))
    linked = await call(
        api,
        "ASB",
        link_to=inc["id"],
        location=None,
        caller={"name": "Second Caller", "phone": "+44 7700 900666"},
    )
    assert linked["incident"]["id"] == inc["id"]
    assert {(m["id"], m["match"]) for m in linked["markers"]} == {
        (first["id"], "location"),
        (second["id"], "phone"),
    }
    async with db(api.settings.database_url) as conn:
        row = await conn.fetchrow(
            "SELECT lat, lng, area_code, ward_code, postcode FROM calls WHERE id = $1",
            linked["call"]["id"],
        )
        own = await conn.fetchrow(
            "SELECT lat, lng, area_code, ward_code, postcode FROM incidents WHERE id = $1",
            inc["id"],
        )
    assert dict(row) == dict(own)
    events = await events_for(api.settings.database_url, inc["id"])
    recorded = [e["data"] for e in events if e["type"] == "incident.markers"]
    assert len(recorded) == 2
    assert [m["id"] for m in recorded[1]["markers"]] == [second["id"]]
    assert recorded[1]["markers"][0]["match"] == "phone"
    shown = (await ok(await api.as_("dispatcher", "GET", url)))["markers"]
    assert [(m["id"], m["text"]) for m in shown] == [
        (first["id"], "Licensed shotgun holder"),
        (second["id"], "Caller has dementia"),
    ]
    # The same caller again brings nothing new: nothing more is recorded.
    await call(api, "ASB", link_to=inc["id"], location=None, caller={"phone": "07700900666"})
    events = await events_for(api.settings.database_url, inc["id"])
    assert [e["type"] for e in events].count("incident.markers") == 2


async def test_who_may_see_and_change_markers(api: Api) -> None:
    lat, lng = EALING
    m = await create(api, at_point(lat, lng))
    own = await incident(api, "ASB", at=(lat, lng))
    other = await incident(api, "ASB", at=offset(lat, lng, north_m=5))
    await assign(api, own["id"], "CW11")

    for user in ("handler", "dispatcher", "supervisor", "admin"):
        assert [
            x["id"] for x in (await ok(await api.as_(user, "GET", "/api/markers")))["markers"]
        ] == [m["id"]]
        assert (await ok(await api.as_(user, "GET", f"/api/markers/{m['id']}")))["id"] == m["id"]
    before = await table_counts(api, "markers", "events")
    for user in ("handler", "dispatcher", "unit"):
        r = await api.as_(user, "POST", "/api/markers", json=at_point(*LAMBETH))
        assert r.status_code == 403, (user, r.text)
        r = await api.as_(user, "PATCH", f"/api/markers/{m['id']}", json={"text": "Changed"})
        assert r.status_code == 403, (user, r.text)
    assert await table_counts(api, "markers", "events") == before

    categories = await ok(await api.as_("unit", "GET", "/api/marker-categories"))
    assert {c["code"] for c in categories} >= {"firearms", "high_risk_domestic", "hazmat"}
    assert (await api.as_("unit", "GET", "/api/markers")).status_code == 403
    assert (await api.as_("unit", "GET", f"/api/markers/{m['id']}")).status_code == 403
    mine = await ok(await api.as_("unit", "GET", "/api/markers", params={"incident_id": own["id"]}))
    assert [x["id"] for x in mine["markers"]] == [m["id"]]
    r = await api.as_("unit", "GET", "/api/markers", params={"incident_id": other["id"]})
    assert r.status_code == 403, r.text
    job = (await ok(await api.as_("unit", "GET", "/api/units/me")))["job"]
    assert job["incident"]["id"] == own["id"]
    assert [(x["id"], x["officer_safety"], x["text"]) for x in job["markers"]] == [
        (m["id"], True, "Licensed shotgun holder")
    ]
    assert (await api.client.get("/api/markers")).status_code == 401
    assert (await api.client.get("/api/marker-categories")).status_code == 401


# rule id -> (marker category, anchored on, incident type, grade without the marker, with it).
MARKER_CASES: dict[str, tuple[str, str, str, str, str]] = {
    "M1-weapons-marker": ("weapons", "point", "ASB", "S", "I"),
    "M2-high-risk-domestic-marker": ("high_risk_domestic", "phone", "NOISE", "R", "S"),
}


def test_every_marker_rule_has_a_case() -> None:
    assert set(MARKER_CASES) == MARKER_RULES


async def test_marker_rules_grade_calls_through_the_api(api: Api) -> None:
    names = {
        c["code"]: c["name"]
        for c in await ok(await api.as_("handler", "GET", "/api/marker-categories"))
    }
    places = [CAMDEN, GREENWICH, TRAFALGAR]
    for i, (rule_id, (category, anchor, type_code, plain, marked)) in enumerate(
        MARKER_CASES.items()
    ):
        lat, lng = places[i]
        phone = f"07700 90100{i}"
        body = {
            "incident_type": type_code,
            "location": {"lat": lat, "lng": lng},
            "caller": {"name": "", "phone": phone},
        }
        before = await ok(await api.as_("handler", "POST", "/api/calls/grade-preview", json=body))
        assert (before["grade"], before["rule"]) == (plain, "default"), rule_id
        if anchor == "point":
            await create(api, at_point(lat, lng, 100, category=category))
        else:
            await create(api, on_phone(phone, category=category))
        shown = await ok(await api.as_("handler", "POST", "/api/calls/grade-preview", json=body))
        assert (shown["grade"], shown["rule"]) == (marked, rule_id), shown
        assert shown["reason"].startswith(f"Rule {rule_id}: ")
        assert shown["reason"].endswith(f"(marker: {names[category]})"), shown["reason"]
        answer = await call(api, type_code, at=(lat, lng), caller=body["caller"])
        assert answer["grading"] == {k: shown[k] for k in ("grade", "rule", "reason")}
        assert answer["incident"]["grade"] == marked
        events = await events_for(api.settings.database_url, answer["incident"]["id"])
        created = next(e for e in events if e["type"] == "incident.created")
        assert (created["data"]["rule"], created["data"]["reason"]) == (rule_id, shown["reason"])

    # M1 needs violence or disorder: a theft beside a weapons marker keeps its grade.
    lat, lng = places[0]
    body = {"incident_type": "THEFT", "location": {"lat": lat, "lng": lng}}
    theft = await ok(await api.as_("handler", "POST", "/api/calls/grade-preview", json=body))
    assert (theft["grade"], theft["rule"]) == ("E", "default")
    assert [m["category"] for m in theft["markers"]] == ["weapons"]


@pytest.mark.gazetteer
async def test_a_postcode_marker_applies_to_calls_at_that_postcode_not_its_neighbours(
    api: Api,
) -> None:
    """Intake reads every postcode near the call with the markers in one statement, so a
    neighbour's postcode marker is a candidate there: only the call's own postcode (the
    nearest) may match."""

    async def nearest(lat: float, lng: float) -> str:
        out = await ok(
            await api.as_("handler", "GET", "/api/places/reverse", params={"lat": lat, "lng": lng})
        )
        return str(out["postcode"]["postcode"])

    here = LAMBETH
    own = await nearest(*here)
    # A point a few metres off whose nearest postcode is another, with this one among the
    # few read around it: the case where the candidates hold a postcode that is not its.
    for metres in range(10, 200, 10):
        there = offset(*here, east_m=metres)
        if await nearest(*there) != own:
            break
    async with db(api.settings.database_url) as conn:
        e, n = bng(api.state, *there)
        around = await conn.fetch(
            "SELECT postcode FROM postcodes ORDER BY point(easting, northing) <-> point($1, $2) "
            "LIMIT 8",
            e,
            n,
        )
    assert own in [r["postcode"] for r in around]
    marker = await create(
        api,
        {
            "category": "firearms",
            "text": "Licensed shotgun holder",
            "postcode": own,
            "review_at": REVIEW,
        },
    )
    answer = await call(api, at=here)
    assert [(m["id"], m["match"]) for m in answer["markers"]] == [(marker["id"], "postcode")]
    events = await events_for(api.settings.database_url, answer["incident"]["id"])
    recorded = [e["data"] for e in events if e["type"] == "incident.markers"]
    assert [m["id"] for m in recorded[0]["markers"]] == [marker["id"]]
    assert (await call(api, at=there))["markers"] == []
    # The preview reads the place and the markers apart, and agrees.
    assert await matched(api, location={"lat": here[0], "lng": here[1]}) == [
        (marker["id"], "postcode")
    ]
    assert await matched(api, location={"lat": there[0], "lng": there[1]}) == []
