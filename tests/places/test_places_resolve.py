"""resolve_address / reverse / address_line: the Python API intake calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from cad.errors import Invalid
from cad.places import service
from cad.places.service import Resolved, address_line, resolve_address
from tests.conftest import Api
from tests.places._support import official_line, postcodes


async def resolve(api: Api, text: str, field: str = "location.address") -> Resolved:
    async with api.tx() as conn:
        return await resolve_address(conn, api.state, text, field)


async def refused(api: Api, text: str, field: str = "location.address") -> Invalid:
    with pytest.raises(Invalid) as info:
        await resolve(api, text, field)
    assert info.value.field == field
    return info.value


async def test_postcodes_resolve_to_their_point_and_real_borough(api: Api) -> None:
    for typed, label, borough in (
        ("SW1A 2AA", "SW1A 2AA", "Westminster"),
        ("se1 7pb", "SE1 7PB", "Lambeth"),
        ("se17pb", "SE1 7PB", "Lambeth"),
        ("Flat 2, 12 Baylis Road, London SE1 7AA", "SE1 7AA", "Lambeth"),
    ):
        r = await resolve(api, typed)
        assert (r.text, r.label, r.kind, r.precision_m) == (typed, label, "postcode", 25)
        row = postcodes().by_postcode[label]
        assert api.state.projector.to_metres(r.lat, r.lng) == pytest.approx(
            (float(row["easting"]), float(row["northing"])), abs=0.5
        )
        assert api.state.areas.area_for(r.lat, r.lng).name == borough
        # The postcode file names the same borough.
        assert api.state.areas.area_for(r.lat, r.lng).code == row["admin_district_code"]


async def test_names_resolve_exact_alias_and_misspelt(api: Api) -> None:
    for typed, label, kind, borough in (
        ("Waterloo station", "Waterloo Station", "station", "Lambeth"),
        ("waterloo", "Waterloo Station", "station", "Lambeth"),
        ("watreloo", "Waterloo Station", "station", "Lambeth"),
        ("Kings X", "King's Cross Station", "station", "Camden"),
        ("kings cros", "King's Cross Station", "station", "Camden"),
        ("10 Downing Street", "10 Downing Street", "place", "Westminster"),
        ("big ben", "Houses of Parliament", "place", "Westminster"),
        ("outside waterloo station, by the taxi rank", "Waterloo Station", "station", "Lambeth"),
        ("Heathrow", "Heathrow Airport", "place", "Hillingdon"),
        ("Lambeth", "Lambeth", "borough", "Lambeth"),
        ("Bishop's ward", "Bishop's", "ward", "Lambeth"),
    ):
        r = await resolve(api, typed)
        assert (r.label, r.kind) == (label, kind), typed
        assert api.state.areas.area_for(r.lat, r.lng).name == borough, typed
        assert r.precision_m > 0


async def test_unknown_postcode_suggests_units_of_its_sector(api: Api) -> None:
    exc = await refused(api, "SE1 7ZZ", field="address")
    assert "could not resolve 'SE1 7ZZ'" in exc.detail and "did you mean SE1 7" in exc.detail
    suggestions = exc.extra["suggestions"]
    assert suggestions and all(s["label"].startswith("SE1 7") for s in suggestions)
    assert set(suggestions[0]) == {"label", "kind", "lat", "lng", "area", "ward", "precision_m"}
    # An unknown district has nothing near to offer, and says so.
    exc = await refused(api, "ZE9 9ZZ")
    assert "no postcode district ZE9" in exc.detail and exc.extra["suggestions"] == []


async def test_partial_postcode_asks_for_the_rest(api: Api) -> None:
    exc = await refused(api, "SE1 7")
    assert "incomplete postcode" in exc.detail
    assert [s["label"] for s in exc.extra["suggestions"]] == sorted(
        n for n in postcodes().names if n.startswith("SE1 7")
    )[:5]


async def test_unresolvable_and_ambiguous_names_suggest(api: Api) -> None:
    exc = await refused(api, "Hethrow")
    labels = [s["label"] for s in exc.extra["suggestions"]]
    assert "Heathrow Airport" in labels and "did you mean" in exc.detail
    # A near miss of one word is not a match: no "Xyzzy Street" -> Oxford Street.
    exc = await refused(api, "Xyzzy Street")
    assert "not a known postcode or place" in exc.detail
    # Three wards are called Village: ask which.
    exc = await refused(api, "Village")
    assert "several places" in exc.detail
    assert {s["area"]["name"] for s in exc.extra["suggestions"]} == {
        "Barking and Dagenham",
        "Merton",
        "Southwark",
    }
    exc = await refused(api, "   ")
    assert exc.detail == "an address is required"


async def test_outside_the_service_area_names_nearest_in_area(api: Api, tmp_path: Path) -> None:
    # A postcode in Chelmsford (Essex), loaded the way a user loads the GB files.
    f = tmp_path / "cm.csv"
    f.write_text('"CM1 1HT",10,570880,206920,"E92000001","","","","E07000070",""\n')
    async with api.tx() as conn:
        summary = await service.import_codepoint(conn, f)
    assert summary.inserted == 1
    exc = await refused(api, "cm1 1ht")
    assert exc.detail.startswith("CM1 1HT is outside the service area; nearest in area: ")
    near = exc.extra["suggestions"]
    assert len(near) == 3
    # Havering is London's borough nearest Chelmsford.
    assert all(s["kind"] == "postcode" and s["area"]["name"] == "Havering" for s in near)
    assert all(s["label"] in exc.detail for s in near)


async def test_reverse_and_address_line_for_intake(api: Api) -> None:
    r = await resolve(api, "se1 7pb")
    async with api.tx() as conn:
        rev = await service.reverse(conn, api.state, r.lat, r.lng)
    assert rev["area"]["name"] == "Lambeth" and rev["ward"]["name"] == "Bishop's"
    assert rev["postcode"]["distance_m"] <= 0.5
    assert address_line(r.label, rev) == "SE1 7PB · Bishop's · Lambeth"
    w = await resolve(api, "Waterloo Station")
    async with api.tx() as conn:
        rev = await service.reverse(conn, api.state, w.lat, w.lng)
    assert address_line(w.label, rev) == "Waterloo Station · Bishop's · Lambeth"
    assert rev["line"] == f"near {rev['postcode']['postcode']} · Bishop's · Lambeth"


def test_official_line_layout() -> None:
    row = postcodes().by_postcode["N1 0AA"]
    assert official_line(row).startswith('"N1  0AA",10,')
