import math

import numpy as np
import pytest

from gis.projection import Projector, nearby_metres, validate_lat_lng

TRAFALGAR = (51.508, -0.128)


def test_trafalgar_square_in_bng() -> None:
    x, y = Projector().to_metres(*TRAFALGAR)
    # The brief's figure is itself rounded; 100 m still catches swapped axes or a wrong CRS.
    assert math.hypot(x - 529_980, y - 180_500) < 100


def test_round_trip() -> None:
    p = Projector()
    lat, lng = p.to_wgs84(*p.to_metres(*TRAFALGAR))
    assert lat == pytest.approx(TRAFALGAR[0], abs=1e-7)
    assert lng == pytest.approx(TRAFALGAR[1], abs=1e-7)


def test_many_matches_single() -> None:
    p = Projector()
    lats = np.array([51.5, 51.3, 51.7])
    lngs = np.array([-0.1, 0.2, -0.5])
    xs, ys = p.to_metres_many(lats, lngs)
    for lat, lng, x, y in zip(lats, lngs, xs, ys, strict=True):
        assert (x, y) == pytest.approx(p.to_metres(lat, lng))


def test_project_geometry_distance_in_metres() -> None:
    from shapely.geometry import LineString

    p = Projector()
    # One minute of latitude is ~1852 m.
    line = p.project_geometry(LineString([(-0.128, 51.5), (-0.128, 51.5 + 1 / 60)]))
    assert line.length == pytest.approx(1853, abs=5)
    back = p.unproject_geometry(line)
    assert back.coords[0] == pytest.approx((-0.128, 51.5))


@pytest.mark.parametrize(
    "lat,lng",
    [(91, 0), (-90.5, 0), (0, 180.1), (0, -181), (float("nan"), 0), (0, float("nan")), ("x", 0)],
)
def test_validate_rejects(lat: float, lng: float) -> None:
    with pytest.raises(ValueError):
        validate_lat_lng(lat, lng)


def test_validate_accepts_edges() -> None:
    validate_lat_lng(90, 180)
    validate_lat_lng(-90, -180)


def test_nearby_metres_agrees_with_the_national_grid_within_half_a_percent() -> None:
    bng = Projector(27700)
    lat, lng = 51.5033, -0.1195
    for north, east in ((40.0, 0.0), (0.0, 50.0), (300.0, -400.0), (1500.0, 1500.0)):
        lat2 = lat + north / 111_200
        lng2 = lng + east / (111_200 * 0.6225)
        x1, y1 = bng.to_metres(lat, lng)
        x2, y2 = bng.to_metres(lat2, lng2)
        exact = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        # The sphere is 0.3% narrower east-west than the ellipsoid at London.
        assert abs(nearby_metres(lat, lng, lat2, lng2) - exact) <= 0.005 * exact
