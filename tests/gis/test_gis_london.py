"""The built-in London boroughs and wards against real data: every Code-Point postcode,
well-known places, ward parents, and the grid index against the plain polygon lookup."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from gis.areas import AreaSet
from gis.projection import Projector
from tests.conftest import ARTIFACTS, shared_file

POSTCODES = "london_postcodes_codepoint_2025.csv"
ACCURACY_GOAL = 0.995


@dataclass(frozen=True)
class Postcodes:
    postcode: list[str]
    quality: np.ndarray[Any, np.dtype[np.int64]]
    easting: np.ndarray[Any, np.dtype[np.float64]]
    northing: np.ndarray[Any, np.dtype[np.float64]]
    lat: np.ndarray[Any, np.dtype[np.float64]]
    lng: np.ndarray[Any, np.dtype[np.float64]]
    district: np.ndarray[Any, np.dtype[np.object_]]


@pytest.fixture(scope="module")
def boroughs() -> AreaSet:
    return AreaSet.london_default()


@pytest.fixture(scope="module")
def wards() -> AreaSet:
    return AreaSet.london_wards()


@pytest.fixture(scope="module")
def postcodes() -> Postcodes:
    with shared_file(POSTCODES).open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        cols = [header.index(c) for c in ("postcode", "positional_quality", "easting")]
        cols += [header.index(c) for c in ("northing", "admin_district_code")]
        rows = [[r[i] for i in cols] for r in reader]
    easting = np.array([float(r[2]) for r in rows])
    northing = np.array([float(r[3]) for r in rows])
    lng, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(easting, northing)
    return Postcodes(
        postcode=[r[0] for r in rows],
        quality=np.array([int(r[1]) for r in rows]),
        easting=easting,
        northing=northing,
        lat=np.asarray(lat),
        lng=np.asarray(lng),
        district=np.array([r[4] for r in rows], dtype=object),
    )


# -- (a) every London postcode --------------------------------------------------------


def test_postcodes_land_in_the_borough_code_point_names(
    boroughs: AreaSet, postcodes: Postcodes
) -> None:
    pc = postcodes
    assert len(pc.postcode) == 180_792
    got = np.array(boroughs.areas_for_many(pc.lat, pc.lng), dtype=object)
    hit = got == pc.district
    share = float(hit.mean())

    # Why each miss misses: how far (BNG metres) the postcode lies from the borough that
    # Code-Point names, and its positional quality (60 = no position at all).
    proj = Projector(27700)
    named = {a.code: proj.project_geometry(a.geometry) for a in boroughs.areas}
    misses: list[dict[str, Any]] = []
    for i in np.flatnonzero(~hit).tolist():
        gap = named[pc.district[i]].distance(shapely.Point(pc.easting[i], pc.northing[i]))
        if pc.quality[i] == 60:
            reason = "positional quality 60: no position"
        elif gap <= 5:
            reason = f"on the boundary: {gap:.1f} m from its borough (positions are whole metres)"
        else:
            reason = f"{gap:.0f} m inside the neighbour"
        misses.append(
            {
                "postcode": pc.postcode[i],
                "quality": int(pc.quality[i]),
                "easting": int(pc.easting[i]),
                "northing": int(pc.northing[i]),
                "code_point": pc.district[i],
                "lookup": got[i],
                "gap_m": round(gap, 2),
                "reason": reason,
            }
        )
    report = {
        "postcodes": len(pc.postcode),
        "in_named_borough": int(hit.sum()),
        "share": round(share, 6),
        "by_quality": {str(k): v for k, v in sorted(Counter(pc.quality.tolist()).items())},
        "misses": misses,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "postcode_accuracy.json").write_text(json.dumps(report, indent=2))
    print(f"\npostcode -> borough: {int(hit.sum())}/{len(hit)} = {share:.4%}")
    for m in misses:
        print(f"  miss {m['postcode']}: {m['code_point']} -> {m['lookup']}: {m['reason']}")

    assert share >= ACCURACY_GOAL
    # Every miss is a postcode on a borough line (measured: all within 2.4 m).
    assert all(m["gap_m"] <= 5 for m in misses), misses


# -- (b) well-known places --------------------------------------------------------------

PLACES = [
    ("Waterloo station", 51.5031, -0.1132, "Lambeth"),
    ("King's Cross station", 51.5308, -0.1238, "Camden"),
    ("Camden Town station", 51.5392, -0.1426, "Camden"),
    ("Heathrow airport", 51.4700, -0.4543, "Hillingdon"),
    ("Richmond station", 51.4631, -0.3013, "Richmond upon Thames"),
    ("Tower of London", 51.5081, -0.0759, "Tower Hamlets"),
]


@pytest.mark.parametrize("name,lat,lng,borough", PLACES, ids=[p[0] for p in PLACES])
def test_well_known_places_land_in_their_real_borough(
    boroughs: AreaSet, wards: AreaSet, name: str, lat: float, lng: float, borough: str
) -> None:
    area = boroughs.area_for(lat, lng)
    assert area is not None and area.name == borough, name
    ward = wards.area_for(lat, lng)
    assert ward is not None and ward.parent == area.code, name


# -- (c) wards --------------------------------------------------------------------------


def test_wards_are_the_630_of_2014_with_borough_parents(boroughs: AreaSet, wards: AreaSet) -> None:
    assert len(wards) == 630
    assert len({w.code for w in wards.areas}) == 630
    # The City is one "ward" in this file, coded as the borough ("City merged").
    assert {w.code for w in wards.areas if not w.code.startswith("E05")} == {"E09000001"}
    codes = {b.code for b in boroughs.areas}
    assert {w.parent for w in wards.areas} == codes  # every borough has wards, no stray parent
    per = Counter(w.parent for w in wards.areas)
    assert per["E09000001"] == 1 and per["E09000007"] == 18  # Camden's 18 wards of 2014
    assert wards.service_area is boroughs.service_area


@pytest.mark.parametrize(
    "lat,lng,ward,borough",
    [
        (51.5033, -0.1145, "Bishop's", "Lambeth"),  # Waterloo Road by the station
        (51.5010, -0.1246, "St. James's", "Westminster"),  # Parliament Square
        (51.5308, -0.1238, "St. Pancras and Somers Town", "Camden"),
        (51.4700, -0.4543, "Heathrow Villages", "Hillingdon"),
    ],
)
def test_ward_lookup(
    boroughs: AreaSet, wards: AreaSet, lat: float, lng: float, ward: str, borough: str
) -> None:
    w, b = wards.area_for(lat, lng), boroughs.area_for(lat, lng)
    assert w is not None and b is not None
    assert (w.name, b.name, w.parent) == (ward, borough, b.code)


def test_outside_london_has_no_ward(wards: AreaSet) -> None:
    assert wards.area_for(51.7356, 0.4685) is None  # Chelmsford
    assert wards.area_for(51.6700, -0.5500) is None  # Chorleywood, just past Hillingdon


def test_ward_parent_matches_the_borough_for_postcodes(
    boroughs: AreaSet, wards: AreaSet, postcodes: Postcodes
) -> None:
    rng = np.random.default_rng(10)
    pick = rng.choice(len(postcodes.postcode), 20_000, replace=False)
    lat, lng = postcodes.lat[pick], postcodes.lng[pick]
    b = boroughs.areas_for_many(lat, lng)
    w = wards.indices_for_many(lat, lng)
    assert (w >= 0).all()
    parents = [wards.areas[i].parent for i in w.tolist()]
    same = sum(p == c for p, c in zip(parents, b, strict=True))
    assert same / len(b) >= ACCURACY_GOAL  # measured: all 20,000


# -- (d) the grid index equals the plain lookup ---------------------------------------


def _test_points(areas: AreaSet, n: int, seed: int) -> tuple[list[float], list[float]]:
    """Half uniform over (and a little beyond) the service area's box, half within a few
    metres (down to nanometres) of a boundary vertex, plus exact vertices."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = areas.service_area.bounds
    lat = rng.uniform(y0 - 0.02, y1 + 0.02, n // 2)
    lng = rng.uniform(x0 - 0.02, x1 + 0.02, n // 2)
    edges = shapely.get_coordinates(
        shapely.boundary(np.array([a.geometry for a in areas.areas], dtype=object))
    )
    near = edges[rng.choice(len(edges), n // 2 - 500)]
    near = near + 10 ** rng.uniform(-9, -3.5, (len(near), 1)) * rng.normal(size=near.shape)
    exact = edges[rng.choice(len(edges), 500)]
    pts = np.concatenate([np.column_stack((lng, lat)), near, exact])
    return pts[:, 1].tolist(), pts[:, 0].tolist()


@pytest.mark.parametrize("level", ["borough", "ward"])
def test_grid_lookup_equals_polygon_lookup(level: str, boroughs: AreaSet, wards: AreaSet) -> None:
    areas = boroughs if level == "borough" else wards
    lats, lngs = _test_points(areas, 20_000, seed=len(areas))
    fast = [a.code if a else None for a in map(areas.area_for, lats, lngs)]
    slow = [a.code if a else None for a in map(areas.area_for_reference, lats, lngs)]
    many = areas.areas_for_many(lats, lngs)
    differ = [(lats[i], lngs[i], fast[i], slow[i]) for i in range(len(lats)) if fast[i] != slow[i]]
    assert differ == []
    assert many == slow
    # The sample exercises every path: outside, inside, and boundary cells.
    assert None in slow and len(set(slow)) > len(areas) // 2


def test_contains_equals_the_service_area(boroughs: AreaSet) -> None:
    lats, lngs = _test_points(boroughs, 6_000, seed=3)
    for lat, lng in zip(lats, lngs, strict=True):
        expected = bool(boroughs.service_area.covers(shapely.Point(lng, lat)))
        assert boroughs.contains(lat, lng) == expected, (lat, lng)


def test_many_validates_and_handles_empty(boroughs: AreaSet) -> None:
    assert boroughs.areas_for_many([], []) == []
    with pytest.raises(ValueError):
        boroughs.indices_for_many([51.5, float("nan")], [0.0, 0.0])
    with pytest.raises(ValueError):
        boroughs.indices_for_many([51.5], [0.0, 0.1])


def test_package_data_is_what_the_builder_makes(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("builder", root / "scripts/build_package_data.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    builder.build(shared_file("london_boroughs.geojson").parent, tmp_path)
    packaged = root / "gis" / "data"
    for name in ("london_boroughs.geojson.gz", "london_wards_2014.geojson.gz"):
        assert (tmp_path / name).read_bytes() == (packaged / name).read_bytes(), name
