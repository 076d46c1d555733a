"""Intake resolves addresses through the gazetteer; every incident carries its ward and a
readable address line; an unresolvable or out-of-area address is a 422 with suggestions
that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, call_body
from tests.intake._support import counts, db, post_call

WESTMINSTER = "E09000033"
LAMBETH = "E09000022"


def _address(text: str, **extra: Any) -> dict[str, Any]:
    return call_body(location={"address": text}, location_source="address", **extra)


async def _errors(r: Any) -> dict[str, str]:
    return {e["field"]: e["reason"] for e in r.json()["errors"]}


async def test_a_postcode_creates_an_incident_in_its_borough(api: Api, db_url: str) -> None:
    r = await post_call(api, _address("SW1A 2AA"))
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["area_code"] == WESTMINSTER and inc["area"] == "Westminster"
    assert inc["address"] == "SW1A 2AA"
    assert inc["location_label"] == "SW1A 2AA"
    assert isinstance(inc["precision_m"], int) and 0 < inc["precision_m"] <= 100
    assert inc["ward_code"] and inc["ward"]
    assert inc["address_line"].startswith("SW1A 2AA · ")
    assert inc["address_line"].endswith("Westminster")
    # Downing Street, to about a hundred metres.
    assert inc["lat"] == pytest.approx(51.5035, abs=0.001)
    assert inc["lng"] == pytest.approx(-0.1276, abs=0.0015)


@pytest.mark.parametrize("typed", ["se1 7pb", " SE1  7PB", "Se17pb", "SE17PB"])
async def test_a_postcode_in_any_case_and_spacing(api: Api, typed: str) -> None:
    r = await post_call(api, _address(typed))
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["address"] == typed  # what the handler typed is kept
    assert inc["location_label"] == "SE1 7PB"
    assert inc["area_code"] == LAMBETH
    assert inc["ward"] == "Bishop's"
    assert inc["address_line"] == "SE1 7PB · Bishop's · Lambeth"


async def test_the_record_keeps_typed_resolved_point_and_precision(api: Api, db_url: str) -> None:
    r = await post_call(api, _address("se1 7pb"))
    inc_id = r.json()["incident"]["id"]
    async with db(db_url) as conn:
        row = await conn.fetchrow(
            """SELECT address, location_label, precision_m, ward_code, address_line, lat, lng
               FROM incidents WHERE id = $1""",
            inc_id,
        )
        call = await conn.fetchrow(
            "SELECT address, location_label, precision_m, ward_code FROM calls "
            "WHERE incident_id = $1",
            inc_id,
        )
        event = await conn.fetchval(
            "SELECT data FROM events WHERE type = 'incident.created' AND incident_id = $1", inc_id
        )
    assert row["address"] == "se1 7pb" and row["location_label"] == "SE1 7PB"
    assert row["precision_m"] > 0 and row["ward_code"]
    assert dict(call) == {
        "address": "se1 7pb",
        "location_label": "SE1 7PB",
        "precision_m": row["precision_m"],
        "ward_code": row["ward_code"],
    }
    # The consoles draw the board from the event alone.
    assert event["address_line"] == "SE1 7PB · Bishop's · Lambeth"
    assert event["ward"] == "Bishop's" and event["area"] == "Lambeth"


@pytest.mark.parametrize(
    ("place", "borough"),
    [
        ("Waterloo station", "Lambeth"),
        ("King's Cross", "Camden"),
        ("Tower of London", "Tower Hamlets"),
        ("Heathrow Airport", "Hillingdon"),
    ],
)
async def test_named_places_resolve_to_their_real_borough(
    api: Api, place: str, borough: str
) -> None:
    r = await post_call(api, _address(place))
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["area"] == borough
    assert inc["location_label"] and inc["ward"]
    assert borough in inc["address_line"]


async def test_coordinates_read_as_near_a_postcode(api: Api) -> None:
    # A handset fix just off Lambeth North: no address typed, a line all the same.
    r = await post_call(api, call_body(lat=51.4989, lng=-0.1118))
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["address"] is None and inc["location_label"] is None
    assert inc["address_line"].startswith("near SE1 ")
    assert inc["address_line"].endswith(" · Lambeth")
    assert inc["ward"]


async def test_an_out_of_area_postcode_is_422_naming_the_nearest(api: Api, db_url: str) -> None:
    # London's postcodes ship with the service; a force that loads all of Great Britain's
    # (`cad gazetteer import`) knows Chelmsford's too. One such row, as Code-Point has it.
    async with db(db_url) as conn:
        await conn.execute(
            """INSERT INTO postcodes (postcode, positional_quality, easting, northing, lat, lng,
                   district_code) VALUES ('CM1 1AA', 10, 570851, 206742, 51.7343, 0.4690,
                   'E07000070')"""
        )
    before = await counts(db_url)
    r = await post_call(api, _address("cm1 1aa"))
    assert r.status_code == 422, r.text
    reason = (await _errors(r))["location.address"]
    assert "CM1 1AA is outside the service area" in reason, reason
    near = r.json()["suggestions"]
    # The nearest in-area postcodes are on London's north-eastern edge (Havering).
    assert near and all(s["area"] for s in near)
    assert {s["area"]["name"] for s in near} <= {"Havering", "Redbridge", "Barking and Dagenham"}
    assert await counts(db_url) == before


async def test_a_postcode_the_gazetteer_lacks_is_422(api: Api, db_url: str) -> None:
    before = await counts(db_url)
    r = await post_call(api, _address("CM1 1AA"))
    assert r.status_code == 422, r.text
    assert "CM1" in (await _errors(r))["location.address"]
    assert await counts(db_url) == before


async def test_an_unknown_address_is_422_with_suggestions(api: Api, db_url: str) -> None:
    before = await counts(db_url)
    r = await post_call(api, _address("Watreloo statoin"))
    assert r.status_code == 422, r.text
    reason = (await _errors(r))["location.address"]
    assert "Waterloo" in reason, reason
    labels = [s["label"] for s in r.json()["suggestions"]]
    assert any("Waterloo" in label for label in labels)
    assert await counts(db_url) == before


async def test_grade_preview_resolves_the_address(api: Api) -> None:
    r = await api.as_(
        "handler",
        "POST",
        "/api/calls/grade-preview",
        json={"incident_type": "BURGLARY", "location": {"address": "sw1a2aa"}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["area"] == "Westminster" and body["location_label"] == "SW1A 2AA"
    assert body["address_line"].startswith("SW1A 2AA · ")
    assert "possible_duplicates" in body


async def test_units_carry_their_ward(api: Api) -> None:
    units = (await api.as_("dispatcher", "GET", "/api/units")).json()
    placed = [u for u in units if u["lat"] is not None]
    assert placed
    assert sum(1 for u in placed if u["ward_code"] and u["ward"]) == len(placed)
