"""GET /api/places (type-ahead) and /api/places/reverse over the real London postcodes."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer

from cad.places.service import _packaged
from tests.conftest import Api
from tests.places._support import postcodes

BNG = Transformer.from_crs(27700, 4326, always_xy=True)
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)


async def places(api: Api, q: str, **params: Any) -> list[dict[str, Any]]:
    r = await api.as_("handler", "GET", "/api/places", params={"q": q, **params})
    assert r.status_code == 200, r.text
    hits: list[dict[str, Any]] = r.json()
    return hits


async def reverse(api: Api, lat: float, lng: float, user: str = "dispatcher") -> dict[str, Any]:
    r = await api.as_(user, "GET", "/api/places/reverse", params={"lat": lat, "lng": lng})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_postcode_in_any_case_and_spacing_is_one_postcode(api: Api) -> None:
    row = postcodes().by_postcode["SW1A 2AA"]
    lng, lat = BNG.transform(float(row["easting"]), float(row["northing"]))
    for typed in ("sw1a2aa", " SW1A  2AA", "Sw1a 2aa"):
        hits = await places(api, typed)
        assert [h["label"] for h in hits] == ["SW1A 2AA"], (typed, hits)
        hit = hits[0]
        assert hit["kind"] == "postcode" and hit["precision_m"] == 25
        assert hit["lat"] == pytest.approx(lat, abs=1e-5)
        assert hit["lng"] == pytest.approx(lng, abs=1e-5)
        assert hit["area"] == {"code": "E09000033", "name": "Westminster"}
        assert hit["ward"]["name"] == "St. James's"


async def test_partial_postcode_lists_its_units_in_order(api: Api) -> None:
    names = postcodes().names
    for typed, prefix in (("SE1 7", "SE1 7"), ("se1 7p", "SE1 7P"), ("sw1a 2", "SW1A 2")):
        expected = sorted(n for n in names if n.startswith(prefix))[:10]
        hits = await places(api, typed)
        assert [h["label"] for h in hits] == expected, typed
        assert all(h["kind"] == "postcode" for h in hits)
    # Typed without the space: SE17P can only be SE1 7P… (an inward code starts with a digit).
    expected = sorted(n for n in names if n.startswith("SE1 7P"))[:5]
    assert [h["label"] for h in await places(api, "se17p", limit=5)] == expected
    # A whole district: its own units, not SE10…SE19.
    hits = await places(api, "SE1", limit=50)
    assert len(hits) == 50 and all(h["label"].startswith("SE1 ") for h in hits)
    assert [h["label"] for h in hits] == sorted(n for n in names if n.startswith("SE1 "))[:50]


async def test_names_are_typo_tolerant(api: Api) -> None:
    for typed, label, borough in (
        ("watreloo", "Waterloo Station", "Lambeth"),
        ("kings cros", "King's Cross Station", "Camden"),
        ("padington statoin", "Paddington Station", "Westminster"),
        ("towr of london", "Tower of London", "Tower Hamlets"),
        ("wembly stadium", "Wembley Stadium", "Brent"),
    ):
        hits = await places(api, typed)
        assert hits, typed
        assert (hits[0]["label"], hits[0]["area"]["name"]) == (label, borough), (typed, hits[:3])
    assert await places(api, "qqxqzz") == []


async def test_every_kind_is_returned(api: Api) -> None:
    cases = {
        "postcode": ("SE1 7PB", "SE1 7PB"),
        "station": ("Waterloo", "Waterloo Station"),
        "place": ("Tower of London", "Tower of London"),
        "borough": ("Lambeth", "Lambeth"),
        "ward": ("Bishop's", "Bishop's"),
    }
    for kind, (typed, label) in cases.items():
        hit = (await places(api, typed))[0]
        assert (hit["kind"], hit["label"]) == (kind, label), (typed, hit)
        assert set(hit) == {"label", "kind", "lat", "lng", "area", "ward", "precision_m"}
        assert hit["area"]["name"] == ("Tower Hamlets" if kind == "place" else "Lambeth")
        assert set(hit["ward"]) == {"code", "name"} and hit["precision_m"] > 0
    fire = await places(api, "Paddington fire station")
    assert fire[0]["label"] == "Paddington Fire Station" and fire[0]["kind"] == "station"


async def test_well_known_places_land_in_their_real_borough(api: Api) -> None:
    for typed, borough in (
        ("Waterloo station", "Lambeth"),
        ("King's Cross", "Camden"),
        ("Camden Town", "Camden"),
        ("Heathrow", "Hillingdon"),
        ("Richmond", "Richmond upon Thames"),
        ("Tower of London", "Tower Hamlets"),
    ):
        hit = (await places(api, typed))[0]
        assert hit["area"]["name"] == borough, (typed, hit)


async def test_every_listed_place_lies_in_its_stated_borough(api: Api) -> None:
    doc = json.loads(_packaged("places.json").read_text(encoding="utf-8"))
    wrong = []
    for p in doc["places"]:
        area = api.state.areas.area_for(p["lat"], p["lng"])
        if area is None or area.name != p["borough"]:
            wrong.append((p["name"], p["borough"], area.name if area else None))
    assert not wrong
    assert sum(p["source"] == "lfb_stations.csv" for p in doc["places"]) == 103
    assert sum(p["source"] == "curated" for p in doc["places"]) >= 60


async def test_limit_and_bad_input_are_422_naming_the_field(api: Api) -> None:
    assert len(await places(api, "E1", limit=3)) == 3
    for params, field in (
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"q": "SE1", "limit": 0}, "limit"),
        ({"q": "SE1", "limit": 51}, "limit"),
        ({"q": "SE1", "limit": "ten"}, "limit"),
    ):
        r = await api.as_("handler", "GET", "/api/places", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"][0]["field"] == field, (params, r.text)
    for params, field in (
        ({"lng": -0.1}, "lat"),
        ({"lat": 91, "lng": -0.1}, "lat"),
        ({"lat": 51.5, "lng": 180.5}, "lng"),
        ({"lat": "nan", "lng": -0.1}, "lat"),
        ({"lat": 51.5, "lng": "west"}, "lng"),
    ):
        r = await api.as_("handler", "GET", "/api/places/reverse", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"][0]["field"] == field, (params, r.text)


def _unique_point_postcode(name: str) -> dict[str, str]:
    """A postcode no other postcode shares a point with (blocks of flats often do)."""
    pcs = postcodes()
    row = pcs.by_postcode[name]
    same = np.all(pcs.xy == (float(row["easting"]), float(row["northing"])), axis=1)
    assert same.sum() == 1, f"{name} shares its point; pick another"
    return row


async def test_reverse_of_a_postcode_point_is_that_postcode(api: Api) -> None:
    row = _unique_point_postcode("SW1A 2AA")
    lng, lat = BNG.transform(float(row["easting"]), float(row["northing"]))
    body = await reverse(api, lat, lng)
    assert body["postcode"]["postcode"] == "SW1A 2AA"
    assert body["postcode"]["distance_m"] <= 0.5
    assert body["area"]["name"] == "Westminster"
    assert body["line"] == f"near SW1A 2AA · {body['ward']['name']} · Westminster"
    # A unit may ask too (its terminal shows the same line).
    assert (await reverse(api, lat, lng, user="unit"))["line"] == body["line"]


async def test_reverse_matches_a_brute_force_nearest_postcode(api: Api) -> None:
    pcs = postcodes()
    rng = random.Random(10)
    for _ in range(25):
        # Between two real postcodes a few hundred metres apart, somewhere in London.
        a = pcs.xy[rng.randrange(len(pcs.xy))]
        b = a + (rng.uniform(-400, 400), rng.uniform(-400, 400))
        x, y = a + (b - a) * rng.uniform(0.2, 0.8)
        lng, lat = BNG.transform(x, y)
        body = await reverse(api, lat, lng)
        d = np.hypot(pcs.xy[:, 0] - x, pcs.xy[:, 1] - y)
        best = float(d.min())
        # The same distance as brute force; among equally near ones, the first by name.
        assert body["postcode"]["distance_m"] == pytest.approx(best, abs=0.5)
        tied = sorted(pcs.names[i] for i in np.flatnonzero(d <= best + 0.01))
        assert body["postcode"]["postcode"] == tied[0]
        assert body["area"] is not None and body["line"].startswith("near ")


async def test_reverse_far_from_any_postcode(api: Api) -> None:
    body = await reverse(api, 51.0, 0.0)  # East Sussex: outside London and its postcodes
    assert body == {"postcode": None, "ward": None, "area": None, "line": ""}
