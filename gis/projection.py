"""WGS84 <-> projected metres.

Everything that measures distance works in a projected CRS (British National Grid by
default) because degrees of longitude shrink with latitude; lat/lng is only for I/O.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

FloatArray = npt.NDArray[np.float64]

WGS84_EPSG = 4326


def validate_lat_lng(lat: float, lng: float) -> None:
    """Raise ValueError with a human-readable reason if (lat, lng) is not a WGS84 point."""
    try:
        flat, flng = float(lat), float(lng)
    except (TypeError, ValueError):
        raise ValueError(f"lat/lng must be numbers, got {lat!r}, {lng!r}") from None
    if math.isnan(flat) or math.isnan(flng):
        raise ValueError("lat/lng must not be NaN")
    if not -90.0 <= flat <= 90.0:
        raise ValueError(f"latitude {flat} out of range [-90, 90]")
    if not -180.0 <= flng <= 180.0:
        raise ValueError(f"longitude {flng} out of range [-180, 180]")


class Projector:
    """Transforms between WGS84 (lat, lng) and a projected CRS in metres (x, y)."""

    def __init__(self, epsg: int = 27700) -> None:
        self.epsg = epsg
        # always_xy: pyproj would otherwise follow the CRS axis order (lat first for
        # EPSG:4326, northing first for some grids), which silently swaps coordinates.
        self._fwd = Transformer.from_crs(WGS84_EPSG, epsg, always_xy=True)
        self._inv = Transformer.from_crs(epsg, WGS84_EPSG, always_xy=True)

    def __repr__(self) -> str:
        return f"Projector(epsg={self.epsg})"

    def to_metres(self, lat: float, lng: float) -> tuple[float, float]:
        x, y = self._fwd.transform(lng, lat)
        return float(x), float(y)

    def to_metres_many(
        self, lats: npt.ArrayLike, lngs: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        x, y = self._fwd.transform(
            np.asarray(lngs, dtype=np.float64), np.asarray(lats, dtype=np.float64)
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_wgs84(self, x: float, y: float) -> tuple[float, float]:
        lng, lat = self._inv.transform(x, y)
        return float(lat), float(lng)

    def project_geometry(self, geom: BaseGeometry) -> BaseGeometry:
        """A WGS84 geometry (GeoJSON axis order: lng, lat) in projected metres."""
        return self._apply(self._fwd, geom)

    def unproject_geometry(self, geom: BaseGeometry) -> BaseGeometry:
        """A projected geometry back to WGS84 (lng, lat)."""
        return self._apply(self._inv, geom)

    @staticmethod
    def _apply(transformer: Transformer, geom: BaseGeometry) -> BaseGeometry:
        def fn(coords: FloatArray) -> FloatArray:
            a, b = transformer.transform(coords[:, 0], coords[:, 1])
            return np.column_stack((a, b))

        return shapely.transform(geom, fn)


def nearby_metres(lat: float, lng: float, lat2: float, lng2: float) -> float:
    """Distance between two close WGS84 points (equirectangular on a sphere): within 0.5%
    (the sphere is 0.3% narrower east-west than the ellipsoid at London) over a few
    kilometres and hundreds of times cheaper than projecting each point. For scoring and
    radius checks (duplicates, history, markers), not for navigation."""
    k = math.cos(math.radians((lat + lat2) / 2))
    return 111_195.0 * math.hypot(lat2 - lat, (lng2 - lng) * k)
