"""Service area and response areas (boroughs, sectors): point-in-area lookups."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from gis.projection import FloatArray, Projector, validate_lat_lng


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    geometry: BaseGeometry  # WGS84 (lng, lat) Polygon or MultiPolygon


class AreaImportError(ValueError):
    """A GeoJSON area file cannot be used; the message names the feature and field."""


_NAME_FIELDS = ("NAME", "name", "Name", "BOROUGH", "borough", "Borough")
_CODE_FIELDS = ("GSS_CODE", "gss_code", "code", "CODE", "Code", "id", "ID")
# ONS boundary files name columns by vintage: LAD23NM / LAD23CD, WD22NM, ...
_NAME_RE = re.compile(r"^[A-Z]{2,4}\d{2}NM$", re.IGNORECASE)
_CODE_RE = re.compile(r"^[A-Z]{2,4}\d{2}CD$", re.IGNORECASE)


class AreaSet:
    """Response areas plus the service area (their union unless given)."""

    def __init__(
        self,
        areas: Sequence[Area],
        service_area: BaseGeometry | None = None,
        projector: Projector | None = None,
    ) -> None:
        if not areas:
            raise ValueError("an AreaSet needs at least one area")
        self.areas: list[Area] = list(areas)
        self._projector = projector
        self._geoms = np.array([a.geometry for a in self.areas], dtype=object)
        for g in self._geoms:
            shapely.prepare(g)
        self._tree = shapely.STRtree(self._geoms)
        if service_area is None:
            service_area = shapely.union_all(self._geoms)
        shapely.prepare(service_area)
        self.service_area: BaseGeometry = service_area
        self._by_code = {a.code: a for a in self.areas}

    def __len__(self) -> int:
        return len(self.areas)

    def __repr__(self) -> str:
        return f"AreaSet({len(self.areas)} areas)"

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            self._projector = Projector()
        return self._projector

    def by_code(self, code: str) -> Area | None:
        return self._by_code.get(code)

    def contains(self, lat: float, lng: float) -> bool:
        """Whether the point is in the service area (its boundary counts as inside)."""
        validate_lat_lng(lat, lng)
        return bool(self.service_area.covers(shapely.Point(lng, lat)))

    def area_for(self, lat: float, lng: float) -> Area | None:
        """The response area of a point; None outside the service area.

        On a shared boundary the area listed first wins. Points inside the service area but
        in no area (slivers between imported polygons) get the nearest area.
        """
        validate_lat_lng(lat, lng)
        pt = shapely.Point(lng, lat)
        if not self.service_area.covers(pt):
            return None
        for i in sorted(self._tree.query(pt).tolist()):
            if self._geoms[i].covers(pt):
                return self.areas[int(i)]
        # Nearest in degrees: slivers are metres wide, so the distortion cannot matter.
        nearest = self._tree.query_nearest(pt)
        return self.areas[int(min(nearest.tolist()))]

    # -- GeoJSON ----------------------------------------------------------------------

    @classmethod
    def from_geojson(
        cls,
        data: dict[str, Any],
        name_field: str | None = None,
        code_field: str | None = None,
        projector: Projector | None = None,
    ) -> AreaSet:
        """Areas from a parsed GeoJSON FeatureCollection of (Multi)Polygons in WGS84.

        Name and code fields are detected unless given; without any code field the
        feature's top-level "id" is used, then the name. Invalid polygons are repaired.
        """
        if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
            got = data.get("type") if isinstance(data, dict) else type(data).__name__
            raise AreaImportError(f"expected a GeoJSON FeatureCollection, got {got!r}")
        features = data.get("features")
        if not isinstance(features, list) or not features:
            raise AreaImportError("FeatureCollection has no features")

        props_list: list[dict[str, Any]] = []
        for i, f in enumerate(features):
            if not isinstance(f, dict) or f.get("type") != "Feature":
                raise AreaImportError(f"feature {i}: not a GeoJSON Feature")
            props = f.get("properties") or {}
            if not isinstance(props, dict):
                raise AreaImportError(f"feature {i}: properties is not an object")
            props_list.append(props)

        nf = name_field or _detect_field(props_list, _NAME_FIELDS, _NAME_RE)
        if nf is None:
            raise AreaImportError(
                f"feature 0: no name property (looked for {', '.join(_NAME_FIELDS)}, "
                "or an ONS ..NM column; pass name_field)"
            )
        cf = code_field or _detect_field(props_list, _CODE_FIELDS, _CODE_RE)

        areas: list[Area] = []
        seen: dict[str, int] = {}
        for i, (f, props) in enumerate(zip(features, props_list, strict=True)):
            name = props.get(nf)
            if name is None or (isinstance(name, str) and not name.strip()):
                raise AreaImportError(f"feature {i}: property {nf!r} missing")
            name = str(name).strip()
            if cf is not None:
                code_v = props.get(cf)
                if code_v is None or not str(code_v).strip():
                    raise AreaImportError(f"feature {i}: property {cf!r} missing")
                code = str(code_v).strip()
            elif f.get("id") is not None:
                code = str(f["id"])
            else:
                code = name
            if code in seen:
                field = repr(cf) if cf is not None else "code"
                raise AreaImportError(
                    f"feature {i}: duplicate {field} {code!r} (also feature {seen[code]})"
                )
            seen[code] = i
            areas.append(Area(code=code, name=name, geometry=_feature_polygon(i, f)))
        return cls(areas, projector=projector)

    def to_geojson(self, simplify_m: float = 0) -> dict[str, Any]:
        """FeatureCollection with properties {code, name}, WGS84 rounded to 5 decimals.

        `simplify_m` > 0 simplifies each area independently (tolerance in metres), which
        is meant for browser maps: neighbours may then gap or overlap slightly.
        """
        features: list[dict[str, Any]] = []
        for a in self.areas:
            g = a.geometry
            if simplify_m > 0:
                p = self.projector
                g = p.unproject_geometry(
                    p.project_geometry(g).simplify(simplify_m, preserve_topology=True)
                )
            g = shapely.transform(g, _round5)
            features.append(
                {
                    "type": "Feature",
                    "properties": {"code": a.code, "name": a.name},
                    "geometry": json.loads(shapely.to_geojson(g)),
                }
            )
        return {"type": "FeatureCollection", "features": features}

    # -- built-in London --------------------------------------------------------------

    @classmethod
    def london_default(cls) -> AreaSet:
        """An approximate Greater London that needs no file.

        Areas are Voronoi cells of hand-placed borough centroids clipped to a hand-drawn
        outline: good to a kilometre or so near borough boundaries. Import the real
        boundaries (`cad areas import`) for production.
        """
        return _london_default()


def _round5(coords: FloatArray) -> FloatArray:
    return np.round(coords, 5)


def _detect_field(
    props_list: list[dict[str, Any]], candidates: tuple[str, ...], pattern: re.Pattern[str]
) -> str | None:
    keys: set[str] = set()
    for p in props_list:
        keys.update(p)
    for c in candidates:
        if c in keys:
            return c
    matches = sorted(k for k in keys if pattern.match(k))
    return matches[0] if matches else None


def _feature_polygon(i: int, f: dict[str, Any]) -> BaseGeometry:
    gj = f.get("geometry")
    if not isinstance(gj, dict):
        raise AreaImportError(f"feature {i}: geometry missing")
    gtype = gj.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise AreaImportError(f"feature {i}: geometry is {gtype}, expected Polygon or MultiPolygon")
    try:
        g = shape(gj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise AreaImportError(f"feature {i}: geometry unreadable: {exc}") from None
    if g.is_empty:
        raise AreaImportError(f"feature {i}: geometry is empty")
    minx, miny, maxx, maxy = g.bounds
    if not (
        all(math.isfinite(v) for v in g.bounds)
        and -180 <= minx <= maxx <= 180
        and -90 <= miny <= maxy <= 90
    ):
        raise AreaImportError(
            f"feature {i}: geometry coordinates are not WGS84 lng/lat "
            "(a projected file? reproject to EPSG:4326)"
        )
    if not g.is_valid:
        g = _polygonal(shapely.make_valid(g))
        if g.is_empty:
            raise AreaImportError(f"feature {i}: geometry has no area after repair")
    return g


def _polygonal(g: BaseGeometry) -> BaseGeometry:
    # make_valid may return a GeometryCollection mixing polygons with stray lines/points.
    if isinstance(g, Polygon | MultiPolygon):
        return g
    polys: list[Polygon] = []
    for part in getattr(g, "geoms", []):
        if isinstance(part, Polygon):
            polys.append(part)
        elif isinstance(part, MultiPolygon):
            polys.extend(part.geoms)
    return MultiPolygon(polys) if len(polys) != 1 else polys[0]


# Approximate centroids (lat, lng) of the 33 London local authorities, with ONS GSS codes.
_LONDON_BOROUGHS: tuple[tuple[str, str, float, float], ...] = (
    ("E09000001", "City of London", 51.5155, -0.0922),
    ("E09000002", "Barking and Dagenham", 51.5450, 0.1290),
    ("E09000003", "Barnet", 51.6150, -0.2070),
    ("E09000004", "Bexley", 51.4580, 0.1450),
    ("E09000005", "Brent", 51.5640, -0.2750),
    ("E09000006", "Bromley", 51.3670, 0.0560),
    ("E09000007", "Camden", 51.5460, -0.1620),
    ("E09000008", "Croydon", 51.3550, -0.0870),
    ("E09000009", "Ealing", 51.5130, -0.3090),
    ("E09000010", "Enfield", 51.6480, -0.0870),
    ("E09000011", "Greenwich", 51.4750, 0.0580),
    ("E09000012", "Hackney", 51.5450, -0.0600),
    ("E09000013", "Hammersmith and Fulham", 51.4930, -0.2230),
    ("E09000014", "Haringey", 51.5880, -0.1100),
    ("E09000015", "Harrow", 51.5900, -0.3350),
    ("E09000016", "Havering", 51.5600, 0.2350),
    ("E09000017", "Hillingdon", 51.5400, -0.4450),
    ("E09000018", "Hounslow", 51.4600, -0.3800),
    ("E09000019", "Islington", 51.5470, -0.1060),
    ("E09000020", "Kensington and Chelsea", 51.4990, -0.1900),
    ("E09000021", "Kingston upon Thames", 51.3900, -0.2850),
    ("E09000022", "Lambeth", 51.4600, -0.1170),
    ("E09000023", "Lewisham", 51.4450, -0.0180),
    ("E09000024", "Merton", 51.4100, -0.1900),
    ("E09000025", "Newham", 51.5250, 0.0350),
    ("E09000026", "Redbridge", 51.5850, 0.0700),
    ("E09000027", "Richmond upon Thames", 51.4400, -0.3100),
    ("E09000028", "Southwark", 51.4700, -0.0730),
    ("E09000029", "Sutton", 51.3570, -0.1730),
    ("E09000030", "Tower Hamlets", 51.5150, -0.0350),
    ("E09000031", "Waltham Forest", 51.5900, -0.0200),
    ("E09000032", "Wandsworth", 51.4500, -0.2000),
    ("E09000033", "Westminster", 51.5130, -0.1600),
)

# Hand-drawn Greater London boundary (lat, lng), clockwise from Enfield's northern tip.
_LONDON_OUTLINE: tuple[tuple[float, float], ...] = (
    (51.692, -0.105),
    (51.684, -0.010),
    (51.650, 0.020),
    (51.630, 0.090),
    (51.630, 0.180),
    (51.610, 0.240),
    (51.580, 0.300),
    (51.550, 0.330),
    (51.505, 0.250),
    (51.480, 0.220),
    (51.440, 0.180),
    (51.400, 0.150),
    (51.350, 0.150),
    (51.290, 0.090),
    (51.290, 0.000),
    (51.315, -0.050),
    (51.286, -0.120),
    (51.320, -0.170),
    (51.340, -0.250),
    (51.330, -0.310),
    (51.380, -0.330),
    (51.400, -0.390),
    (51.430, -0.460),
    (51.460, -0.510),
    (51.530, -0.510),
    (51.600, -0.500),
    (51.630, -0.470),
    (51.630, -0.390),
    (51.640, -0.310),
    (51.670, -0.260),
    (51.670, -0.180),
    (51.685, -0.140),
)


@functools.cache
def _london_default() -> AreaSet:
    proj = Projector(27700)
    outline_wgs = Polygon([(lng, lat) for lat, lng in _LONDON_OUTLINE])
    outline_m = proj.project_geometry(outline_wgs)
    lats = np.array([b[2] for b in _LONDON_BOROUGHS])
    lngs = np.array([b[3] for b in _LONDON_BOROUGHS])
    xs, ys = proj.to_metres_many(lats, lngs)
    # Voronoi in metres so cells split the ground fairly; ordered=True returns cell k for
    # input point k.
    cells = shapely.voronoi_polygons(
        shapely.multipoints(np.column_stack((xs, ys))),
        extend_to=outline_m.buffer(10_000),
        ordered=True,
    )
    areas = []
    for (code, name, _, _), cell in zip(_LONDON_BOROUGHS, cells.geoms, strict=True):
        clipped = _polygonal(cell.intersection(outline_m))
        areas.append(Area(code=code, name=name, geometry=proj.unproject_geometry(clipped)))
    return AreaSet(areas, service_area=outline_wgs, projector=proj)
