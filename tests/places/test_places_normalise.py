"""Postcode and name normalisation, the address line: pure functions."""

from __future__ import annotations

import pytest

from cad.places.codepoint import canonical_postcode
from cad.places.service import address_line, normalise_name, place_terms, postcode_prefixes


@pytest.mark.parametrize(
    "typed",
    ["sw1a2aa", " SW1A  2AA", "Sw1a 2aa", "SW1A 2AA", "sw1a\t2aa ", "S W 1 A 2 A A"],
)
def test_every_spelling_of_a_postcode_is_one(typed: str) -> None:
    assert canonical_postcode(typed) == "SW1A 2AA"


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("N1  6AA", "N1 6AA"),  # Code-Point's fixed 7-character form
        ("EC1A1BB", "EC1A 1BB"),
        ("se17pb", "SE1 7PB"),
        ("SE171AA", "SE17 1AA"),
        ("W1A 0AX", "W1A 0AX"),
        ("E1 6AN", "E1 6AN"),
    ],
)
def test_canonical_forms(typed: str, canonical: str) -> None:
    assert canonical_postcode(typed) == canonical


@pytest.mark.parametrize(
    "typed", ["", "SE1", "SE1 7", "Waterloo", "1SE 7PB", "SE1 7PBX", "AAA1 1AA"]
)
def test_not_full_postcodes(typed: str) -> None:
    assert canonical_postcode(typed) is None


@pytest.mark.parametrize(
    ("typed", "prefixes"),
    [
        ("SE1 7", ["SE1 7"]),
        ("se1 7p", ["SE1 7P"]),
        ("SE1 ", ["SE1 "]),
        ("SE1", ["SE1 "]),
        ("se17", ["SE17 ", "SE1 7"]),  # outward SE17, or SE1 then the inward 7
        ("SW1A2", ["SW1A 2"]),
        ("SW1", ["SW1 "]),
        ("Waterloo", []),
        ("SE1 X", []),
    ],
)
def test_postcode_prefixes(typed: str, prefixes: list[str]) -> None:
    assert postcode_prefixes(typed) == prefixes


def test_name_normalisation_and_terms() -> None:
    assert normalise_name("King's Cross St. Pancras") == "kings cross st pancras"
    assert normalise_name("Elephant & Castle") == "elephant and castle"
    assert normalise_name("The O2") == "o2"
    assert normalise_name("Saint Paul’s") == "st pauls"
    assert normalise_name("Harrow-on-the-Hill") == "harrow on hill"
    assert place_terms("station", "Waterloo Station", ["London Waterloo"]) == [
        "waterloo station",
        "london waterloo",
        "waterloo",
    ]
    # A fire station keeps "fire": "Paddington" is the railway station.
    assert place_terms("station", "Paddington Fire Station", ["A21"]) == [
        "paddington fire station",
        "a21",
    ]


def test_address_line() -> None:
    rev = {
        "postcode": {"postcode": "SE1 7PB", "distance_m": 12.0, "lat": 51.5, "lng": -0.12},
        "ward": {"code": "E05000416", "name": "Bishop's"},
        "area": {"code": "E09000022", "name": "Lambeth"},
    }
    assert address_line("SE1 7PB", rev) == "SE1 7PB · Bishop's · Lambeth"
    assert address_line("Waterloo Station", rev) == "Waterloo Station · Bishop's · Lambeth"
    assert address_line(None, rev) == "near SE1 7PB · Bishop's · Lambeth"
    # A borough's own name is not repeated.
    assert address_line("Lambeth", {**rev, "ward": None}) == "Lambeth"
    nothing = {"postcode": None, "ward": None, "area": None}
    assert address_line(None, nothing) == ""
    assert address_line(None, {**nothing, "area": rev["area"]}) == "Lambeth"
