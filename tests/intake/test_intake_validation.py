"""Bad input: 422 naming the field with a reason, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, call_body
from tests.intake._support import counts, error_fields, new_incident, post_call


def _with(**changes: Any) -> dict[str, Any]:
    return call_body(**changes)


def _risk(**risk: Any) -> dict[str, Any]:
    return call_body(risk=risk)


def _caller(**caller: Any) -> dict[str, Any]:
    return call_body(caller={"name": "A Caller", **caller})


# (case id, body, field the error must name, words its reason must contain)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("lat_high", _with(location={"lat": 91, "lng": 0}), "location.lat", "less than or equal"),
    (
        "lng_low",
        _with(location={"lat": 51.5, "lng": -181}),
        "location.lng",
        "greater than or equal",
    ),
    ("only_lat", _with(location={"lat": 51.5}), "location", "both lat and lng"),
    ("only_lng", _with(location={"lng": -0.1}), "location", "both lat and lng"),
    ("no_location", _with(location={}), "location", "lat and lng, or an address"),
    ("nan_string", _with(location={"lat": 51.5, "lng": "NaN"}), "location.lng", "finite"),
    ("infinity", _with(location={"lat": "Infinity", "lng": -0.1}), "location.lat", "finite"),
    ("brighton", call_body(lat=50.82, lng=-0.14), "location", "outside the service area"),
    ("unknown_type", call_body("TEA_PARTY"), "incident_type", "unknown incident type"),
    ("empty_type", call_body(""), "incident_type", "at least 1"),
    ("description_long", _with(description="x" * 4001), "description", "at most 4000"),
    ("extra_field", _with(colour="red"), "colour", "not permitted"),
    ("extra_risk_field", _risk(colour="red"), "risk.colour", "not permitted"),
    ("bad_risk_level", _risk(threat="extreme"), "risk.threat", "'low', 'medium' or 'high'"),
    ("risk_not_bool", _risk(weapons="maybe"), "risk.weapons", "boolean"),
    ("phone_letters", _caller(phone="0207 CALL ME"), "caller.phone", "pattern"),
    ("name_long", _caller(name="n" * 201), "caller.name", "at most 200"),
    ("bad_source", _with(location_source="psychic"), "location_source", "aml"),
    (
        "unresolvable_address",
        _with(location={"address": "Nowhere Lane, Atlantis"}, location_source="address"),
        "location.address",
        "could not resolve",
    ),
    (
        "address_too_short",
        _with(location={"address": "x"}, location_source="address"),
        "location.address",
        "at least 2",
    ),
    (
        "received_naive",
        _with(received_at="2026-11-26T10:00:00"),
        "received_at",
        "timezone",
    ),
    (
        "answered_before_received",
        _with(received_at="2026-11-26T10:00:05Z", answered_at="2026-11-26T10:00:00Z"),
        "answered_at",
        "answered_at is before received_at",
    ),
    ("received_future", _with(received_at="2099-01-01T00:00:00Z"), "received_at", "future"),
    ("answered_future", _with(answered_at="2099-01-01T00:00:00Z"), "answered_at", "future"),
    # received_at defaults to now, so an answer time in the past would be stored out of order.
    ("answered_only_past", _with(answered_at="2020-01-01T00:00:00Z"), "answered_at", "before"),
    ("link_to_zero", _with(link_to=0), "link_to", "greater than 0"),
    ("bad_outcome", _with(outcome="pizza"), "outcome", "advice"),
]


@pytest.mark.parametrize(
    ("body", "field", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_call_is_422_and_writes_nothing(
    api: Api, db_url: str, body: dict[str, Any], field: str, words: str
) -> None:
    before = await counts(db_url)
    r = await post_call(api, body)
    assert r.status_code == 422, r.text
    fields = error_fields(r)
    assert field in fields, fields
    assert words.lower() in fields[field].lower(), fields[field]
    assert field in r.json()["detail"]
    assert await counts(db_url) == before


async def test_nan_number_literal_is_refused(api: Api, db_url: str) -> None:
    # A bare NaN token (what Python's json.dumps writes), not the string "NaN".
    before = await counts(db_url)
    raw = (
        '{"location": {"lat": 51.5, "lng": NaN}, "incident_type": "VIOLENCE",'
        ' "location_source": "aml"}'
    )
    headers = {"Content-Type": "application/json"}
    r = await api.as_("handler", "POST", "/api/calls", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert "finite" in error_fields(r)["location.lng"]
    assert await counts(db_url) == before


async def test_resolvable_address_sets_address(api: Api, db_url: str) -> None:
    body = call_body(location={"address": "Waterloo station"}, location_source="address")
    r = await post_call(api, body)
    assert r.status_code == 201, r.text
    incident = r.json()["incident"]
    assert incident["address"] == "Waterloo station"
    assert incident["lat"] == pytest.approx(51.5031, abs=0.01)
    assert incident["lng"] == pytest.approx(-0.1132, abs=0.01)
    assert incident["area"] is not None


async def test_link_to_closed_incident_is_409(api: Api, db_url: str) -> None:
    referred = await new_incident(api, call_body("ADVICE"))
    assert referred["status"] == "closed"
    before = await counts(db_url)
    r = await post_call(api, call_body("ADVICE", link_to=referred["id"]))
    assert r.status_code == 409, r.text
    assert referred["ref"] in r.json()["detail"]
    assert await counts(db_url) == before


async def test_link_to_missing_incident_is_404(api: Api, db_url: str) -> None:
    before = await counts(db_url)
    r = await post_call(api, call_body(link_to=424242))
    assert r.status_code == 404, r.text
    assert "424242" in r.json()["detail"]
    assert await counts(db_url) == before


async def test_preview_validates_like_intake(api: Api) -> None:
    r = await api.as_(
        "handler", "POST", "/api/calls/grade-preview", json={"incident_type": "NOPE", "risk": {}}
    )
    assert r.status_code == 422 and "incident_type" in error_fields(r)
    r = await api.as_(
        "handler",
        "POST",
        "/api/calls/grade-preview",
        json={"incident_type": "VIOLENCE", "location": {"lat": 50.82, "lng": -0.14}},
    )
    assert r.status_code == 422 and "location" in error_fields(r)
