import copy
import json
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import shape

from gis.areas import Area, AreaImportError, AreaSet

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BOROUGHS_FILE = DATA_DIR / "london_boroughs.geojson"

INSIDE = {
    "Trafalgar Square": (51.508, -0.128),
    "Heathrow": (51.470, -0.454),
    "Romford": (51.575, 0.183),
    "Croydon": (51.372, -0.100),
    "Enfield": (51.652, -0.081),
    "Uxbridge": (51.546, -0.479),
    "Upminster": (51.556, 0.251),
    "Biggin Hill": (51.31, 0.035),
}
OUTSIDE = {"Brighton": (50.82, -0.14), "Reading": (51.45, -0.97), "Cambridge": (52.2, 0.12)}
KNOWN = [
    ((51.372, -0.100), "Croydon"),
    ((51.4975, -0.1357), "Westminster"),
    ((51.575, 0.183), "Havering"),
    ((51.508, -0.128), "Westminster"),
    # Where the old centroid approximation went wrong (issue 10).
    ((51.5031, -0.1132), "Lambeth"),  # Waterloo station, not City of London
    ((51.5308, -0.1238), "Camden"),  # King's Cross, not Islington
    ((51.4700, -0.4543), "Hillingdon"),  # Heathrow, not Hounslow
]
# On the Thames, outside every ONS borough polygon (they stop at the bank): the borough
# whose 2014 ward covers the river there.
THAMES = [
    ((51.5055, -0.1190), "Lambeth", "Bishop's"),  # by the London Eye
    ((51.5065, -0.1205), "Westminster", "St. James's"),  # off Whitehall Gardens
]


@pytest.fixture(scope="module")
def london() -> AreaSet:
    return AreaSet.london_default()


@pytest.fixture(scope="module")
def boroughs_json() -> dict[str, Any]:
    # CI ships this file: a missing file must fail loudly, never skip.
    assert BOROUGHS_FILE.is_file(), f"test data missing: {BOROUGHS_FILE} (../shared/data)"
    data: dict[str, Any] = json.loads(BOROUGHS_FILE.read_text())
    return data


def _square(x0: float, y0: float, s: float = 0.01) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [[[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s], [x0, y0]]],
    }


def _fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def _feature(props: dict[str, Any], geom: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geom}


# -- built-in London --------------------------------------------------------------------


def test_london_default_has_33_ons_areas(london: AreaSet) -> None:
    assert len(london.areas) == 33
    codes = sorted(a.code for a in london.areas)
    assert codes == [f"E090000{i:02d}" for i in range(1, 34)]
    names = {a.name for a in london.areas}
    assert {"City of London", "Barking and Dagenham", "Kensington and Chelsea"} <= names
    assert "Richmond upon Thames" in names


@pytest.mark.parametrize("name", INSIDE)
def test_london_default_inside(london: AreaSet, name: str) -> None:
    lat, lng = INSIDE[name]
    assert london.contains(lat, lng)
    assert london.area_for(lat, lng) is not None


@pytest.mark.parametrize("name", OUTSIDE)
def test_london_default_outside(london: AreaSet, name: str) -> None:
    lat, lng = OUTSIDE[name]
    assert not london.contains(lat, lng)
    assert london.area_for(lat, lng) is None


@pytest.mark.parametrize("point,expected", KNOWN)
def test_london_default_area_for(
    london: AreaSet, point: tuple[float, float], expected: str
) -> None:
    area = london.area_for(*point)
    assert area is not None and area.name == expected


@pytest.mark.parametrize("point,borough,ward", THAMES)
def test_thames_gets_the_borough_of_its_ward(
    london: AreaSet,
    boroughs_json: dict[str, Any],
    point: tuple[float, float],
    borough: str,
    ward: str,
) -> None:
    land = [shape(f["geometry"]) for f in boroughs_json["features"]]
    lat, lng = point
    assert not any(g.covers(shapely.Point(lng, lat)) for g in land)  # really on the river
    b, w = london.area_for(lat, lng), AreaSet.london_wards().area_for(lat, lng)
    assert b is not None and w is not None
    assert (b.name, w.name, w.parent) == (borough, ward, b.code)


def test_london_default_names_match_ons(london: AreaSet, boroughs_json: dict[str, Any]) -> None:
    ons = {f["properties"]["GSS_CODE"]: f["properties"]["NAME"] for f in boroughs_json["features"]}
    assert {a.code: a.name for a in london.areas} == ons


def test_every_point_of_service_area_gets_an_area(london: AreaSet) -> None:
    # Vertices of the outline sit on the boundary, where the areas and the outline may not
    # meet exactly; the nearest-area fallback must cover them.
    for lng, lat in london.service_area.exterior.coords[::7]:
        assert london.contains(lat, lng)
        assert london.area_for(lat, lng) is not None


def test_london_default_is_the_real_boundary(
    london: AreaSet, boroughs_json: dict[str, Any]
) -> None:
    # Each packaged borough is the ONS polygon (to 0.1 m), plus river only where the ONS
    # file has none: it covers the original and adds at most a few km² of Thames.
    ons = {f["properties"]["GSS_CODE"]: shape(f["geometry"]) for f in boroughs_json["features"]}
    for area in london.areas:
        original = ons[area.code]
        assert area.geometry.buffer(1e-6).covers(original), area.name
        extra_km2 = (area.geometry.area - original.area) * 111.32**2 * 0.6225
        assert extra_km2 < 4.0, (area.name, extra_km2)
    assert len(london.service_area.interiors) == 0  # no holes: every London point has an area


def test_invalid_coordinates_raise(london: AreaSet) -> None:
    with pytest.raises(ValueError):
        london.contains(float("nan"), 0)
    with pytest.raises(ValueError):
        london.area_for(95, 0)


def test_to_geojson_round_trips(london: AreaSet) -> None:
    gj = london.to_geojson()
    json.dumps(gj)
    again = AreaSet.from_geojson(gj)
    assert [(a.code, a.name) for a in again.areas] == [(a.code, a.name) for a in london.areas]
    assert again.area_for(51.372, -0.100).name == "Croydon"  # type: ignore[union-attr]
    coords = gj["features"][0]["geometry"]["coordinates"]
    flat = json.dumps(coords)
    assert all(
        len(tok.split(".")[-1]) <= 5 for tok in flat.replace("]", "").split(",") if "." in tok
    )


def test_to_geojson_simplify_reduces_vertices(boroughs_json: dict[str, Any]) -> None:
    real = AreaSet.from_geojson(boroughs_json)

    def n_vertices(gj: dict[str, Any]) -> int:
        return sum(len(json.dumps(f["geometry"]["coordinates"])) for f in gj["features"])

    full, simple = real.to_geojson(), real.to_geojson(simplify_m=50)
    assert n_vertices(simple) < n_vertices(full) / 2
    croydon = next(f for f in simple["features"] if f["properties"]["name"] == "Croydon")
    assert shape(croydon["geometry"]).is_valid


# -- import ---------------------------------------------------------------------------


def test_import_real_boroughs(boroughs_json: dict[str, Any]) -> None:
    areas = AreaSet.from_geojson(boroughs_json)
    assert len(areas.areas) == 33
    croydon = areas.area_for(51.372, -0.100)
    assert croydon is not None and (croydon.name, croydon.code) == ("Croydon", "E09000008")
    heathrow = areas.area_for(51.470, -0.454)
    assert heathrow is not None and heathrow.name == "Hillingdon"
    for name, (lat, lng) in INSIDE.items():
        assert areas.contains(lat, lng), name
    for name, (lat, lng) in OUTSIDE.items():
        assert not areas.contains(lat, lng), name


def test_import_explicit_fields() -> None:
    fc = _fc(_feature({"label": "A", "ref": 7}, _square(0, 51)))
    areas = AreaSet.from_geojson(fc, name_field="label", code_field="ref")
    assert areas.areas[0].name == "A" and areas.areas[0].code == "7"


def test_import_detects_ons_columns_and_falls_back_to_id() -> None:
    fc = _fc(_feature({"LAD23NM": "A", "LAD23CD": "E1"}, _square(0, 51)))
    assert AreaSet.from_geojson(fc).areas[0].code == "E1"
    feat = _feature({"name": "B"}, _square(0, 51))
    feat["id"] = 42
    assert AreaSet.from_geojson(_fc(feat)).areas[0].code == "42"


def test_import_ons_ward_file_detects_ward_columns_and_parent() -> None:
    # An ONS ward file carries the ward's and the district's columns side by side.
    fc = _fc(
        _feature(
            {"WD22CD": "E05000001", "WD22NM": "North", "LAD22CD": "E09000007", "LAD22NM": "C"},
            _square(0, 51),
        ),
        _feature(
            {"WD22CD": "E05000002", "WD22NM": "South", "LAD22CD": "E09000007", "LAD22NM": "C"},
            _square(0, 51.01),
        ),
    )
    wards = AreaSet.from_geojson(fc)
    assert [(a.code, a.name, a.parent) for a in wards.areas] == [
        ("E05000001", "North", "E09000007"),
        ("E05000002", "South", "E09000007"),
    ]
    assert wards.to_geojson()["features"][0]["properties"]["parent"] == "E09000007"
    boroughs = AreaSet.from_geojson(
        _fc(_feature({"LAD22CD": "E1", "LAD22NM": "A"}, _square(0, 51)))
    )
    assert boroughs.areas[0].parent is None  # its own code is no parent


def test_import_repairs_bow_tie() -> None:
    bow = {"type": "Polygon", "coordinates": [[[0, 51], [1, 52], [1, 51], [0, 52], [0, 51]]]}
    areas = AreaSet.from_geojson(_fc(_feature({"name": "Bow", "code": "B"}, bow)))
    g = areas.areas[0].geometry
    assert g.is_valid and g.area == pytest.approx(0.5)
    assert areas.area_for(51.5, 0.1) is not None


def test_sliver_gets_nearest_area() -> None:
    # A gap between two areas that the service area covers: points there get the nearest.
    a = Area("A", "A", shape(_square(0, 51, 0.1)))
    b = Area("B", "B", shape(_square(0.101, 51, 0.1)))
    hull = shape(_square(0, 51, 0.201))
    areas = AreaSet([a, b], service_area=hull)
    assert areas.area_for(51.05, 0.1004).code == "A"  # type: ignore[union-attr]
    assert areas.area_for(51.05, 0.1008).code == "B"  # type: ignore[union-attr]


def test_boundary_counts_as_inside() -> None:
    areas = AreaSet([Area("A", "A", shape(_square(0, 51, 0.1)))])
    assert areas.contains(51.0, 0.05)
    assert areas.area_for(51.0, 0.0) is not None


@pytest.mark.parametrize(
    "data,message",
    [
        (_fc(), "no features"),
        ({"type": "Feature"}, "FeatureCollection"),
        (
            _fc(
                _feature({"NAME": "A", "code": "1"}, _square(0, 51)),
                _feature({"code": "2"}, _square(1, 51)),
            ),
            "feature 1: property 'NAME' missing",
        ),
        (
            _fc(_feature({"code": "1"}, _square(0, 51))),
            "feature 0: no name property",
        ),
        (
            _fc(_feature({"name": "P", "code": "1"}, {"type": "Point", "coordinates": [0, 51]})),
            "feature 0: geometry is Point",
        ),
        (
            _fc(
                _feature({"name": "A", "code": "X"}, _square(0, 51)),
                _feature({"name": "B", "code": "Y"}, _square(1, 51)),
                _feature({"name": "C", "code": "X"}, _square(2, 51)),
            ),
            "feature 2: duplicate 'code' 'X' (also feature 0)",
        ),
        (
            _fc(_feature({"name": "A", "code": "1"}, _square(530_000, 180_000, 100))),
            "feature 0: geometry coordinates are not WGS84",
        ),
        (
            _fc(_feature({"name": "A", "code": "1"}, None)),  # type: ignore[arg-type]
            "feature 0: geometry missing",
        ),
    ],
)
def test_import_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(AreaImportError) as exc:
        AreaSet.from_geojson(copy.deepcopy(data))
    assert message in str(exc.value)
