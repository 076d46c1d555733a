"""Service area and response areas (boroughs, wards, sectors): point-in-area lookups.

Lookups go through a regular grid over the service area's bounding box (~50 m cells). A cell
that no boundary crosses lies wholly inside one area (or wholly outside the service area),
so its answer is stored and a lookup is two multiplications and an array read. Only cells
that a boundary crosses keep a short list of candidate areas, tested with prepared polygons.
`area_for_reference` is the plain STRtree + prepared-polygon lookup the grid must agree with.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from gis.projection import FloatArray, Projector, validate_lat_lng

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    geometry: BaseGeometry  # WGS84 (lng, lat) Polygon or MultiPolygon
    parent: str | None = None  # wards: the borough's GSS code


class AreaImportError(ValueError):
    """A GeoJSON area file cannot be used; the message names the feature and field."""


_NAME_FIELDS = ("NAME", "name", "Name", "BOROUGH", "borough", "Borough")
_CODE_FIELDS = ("GSS_CODE", "gss_code", "code", "CODE", "Code", "id", "ID")
_PARENT_FIELDS = ("parent", "PARENT", "parent_code", "LB_GSS_CD")
# ONS boundary files name columns by vintage: LAD23NM / LAD23CD, WD22NM, ...
_NAME_RE = re.compile(r"^[A-Z]{2,4}\d{2}NM$", re.IGNORECASE)
_CODE_RE = re.compile(r"^[A-Z]{2,4}\d{2}CD$", re.IGNORECASE)
_PARENT_RE = re.compile(r"^LAD\d{2}CD$", re.IGNORECASE)

# Grid cells: ~50 m keeps most lookups off the polygons; the cap bounds memory (4 bytes a
# cell) for a service area as large as Great Britain, where cells grow instead.
_CELL_M = 50.0
_MAX_CELLS = 2_000_000
_M_PER_DEG = 111_320.0
# Boundary marks are widened by this much (degrees, ~0.1 mm) so that float rounding in the
# cell index of a point can never land it in a cell believed to be boundary-free.
_EPS = 1e-9
_OUTSIDE = -1  # grid value: no area (outside the service area)
_NO_AREA = -2  # while building: in the service area but in no area


@dataclass(frozen=True, slots=True)
class _Mixed:
    """A grid cell crossed by a boundary: test these areas, in list order."""

    geoms: npt.NDArray[np.object_]
    indices: tuple[int, ...]
    check_service: bool  # the service area's own boundary crosses the cell


class _Grid:
    def __init__(self, x0: float, y0: float, x1: float, y1: float, dx: float, dy: float) -> None:
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1
        self.kx, self.ky = 1.0 / dx, 1.0 / dy
        self.dx, self.dy = dx, dy
        self.nx = int((x1 - x0) * self.kx) + 1
        self.ny = int((y1 - y0) * self.ky) + 1
        # values: >= 0 area index, -1 outside, <= -2 mixed cell number (-2 - value)
        self.values: npt.NDArray[np.int32] = np.full(self.nx * self.ny, _OUTSIDE, np.int32)
        self.cells: array[int] = array("i")
        self.mixed: list[_Mixed] = []


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
        self._grid = self._build_grid()
        # Browser bodies take seconds to simplify (630 wards) and never change: made once
        # per set, shared by every app in the process. Callers must not mutate them.
        self._geojson: dict[tuple[float, int], dict[str, Any]] = {}

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
        lat, lng = float(lat), float(lng)
        g = self._grid
        if not (g.x0 <= lng <= g.x1 and g.y0 <= lat <= g.y1):
            return False
        v = g.cells[int((lat - g.y0) * g.ky) * g.nx + int((lng - g.x0) * g.kx)]
        if v != _OUTSIDE and (v >= 0 or not g.mixed[-2 - v].check_service):
            return True
        return bool(shapely.intersects_xy(self.service_area, lng, lat))

    def area_for(self, lat: float, lng: float) -> Area | None:
        """The response area of a point; None outside the service area.

        On a shared boundary the area listed first wins. Points inside the service area but
        in no area (slivers between imported polygons) get the nearest area.
        """
        validate_lat_lng(lat, lng)
        lat, lng = float(lat), float(lng)
        g = self._grid
        if not (g.x0 <= lng <= g.x1 and g.y0 <= lat <= g.y1):
            return None
        v = g.cells[int((lat - g.y0) * g.ky) * g.nx + int((lng - g.x0) * g.kx)]
        if v >= 0:
            return self.areas[v]
        if v == _OUTSIDE:
            return None
        m = g.mixed[-2 - v]
        if m.check_service and not shapely.intersects_xy(self.service_area, lng, lat):
            return None
        if m.indices:
            # One call for all candidates: per-call overhead is most of the cost here.
            hits = shapely.intersects_xy(m.geoms, lng, lat).tolist()
            for k, hit in zip(m.indices, hits, strict=True):
                if hit:
                    return self.areas[k]
        return self.areas[self._nearest(shapely.Point(lng, lat))]

    def area_for_reference(self, lat: float, lng: float) -> Area | None:
        """`area_for` without the grid: STRtree + prepared polygons for every point.

        Same answers, several times slower; kept as the yardstick the grid is tested and
        benchmarked against.
        """
        validate_lat_lng(lat, lng)
        pt = shapely.Point(lng, lat)
        if not self.service_area.covers(pt):
            return None
        for i in sorted(self._tree.query(pt).tolist()):
            if self._geoms[i].covers(pt):
                return self.areas[int(i)]
        return self.areas[self._nearest(pt)]

    def _covering(self, pts: npt.NDArray[np.object_]) -> tuple[IntArray, IntArray]:
        """(point, area) index pairs where the area covers the point."""
        # The tree's own predicate would prepare the points, not the polygons: filter the
        # bounding-box hits with the prepared polygons instead.
        pi, ai = self._tree.query(pts)
        keep = shapely.intersects(self._geoms[ai], pts[pi])
        return pi[keep].astype(np.int64), ai[keep].astype(np.int64)

    def _nearest(self, pt: BaseGeometry) -> int:
        # Nearest in degrees: slivers are metres wide, so the distortion cannot matter.
        return int(min(self._tree.query_nearest(pt).tolist()))

    def indices_for_many(self, lats: npt.ArrayLike, lngs: npt.ArrayLike) -> IntArray:
        """`area_for` over arrays: the index into `areas` of each point, -1 for none.

        Raises ValueError when any point is not a WGS84 coordinate.
        """
        lat = np.asarray(lats, dtype=np.float64).ravel()
        lng = np.asarray(lngs, dtype=np.float64).ravel()
        if lat.shape != lng.shape:
            raise ValueError("lats and lngs differ in length")
        bad = ~((np.abs(lat) <= 90.0) & (np.abs(lng) <= 180.0))  # also catches NaN
        if bad.any():
            i = int(bad.argmax())
            validate_lat_lng(lat[i], lng[i])
        g = self._grid
        out = np.full(lat.shape, _OUTSIDE, dtype=np.int64)
        inside = (g.x0 <= lng) & (lng <= g.x1) & (g.y0 <= lat) & (lat <= g.y1)
        rows = ((lat[inside] - g.y0) * g.ky).astype(np.int64)
        cols = ((lng[inside] - g.x0) * g.kx).astype(np.int64)
        out[inside] = g.values[rows * g.nx + cols]
        slow = np.flatnonzero(out <= -2)
        if slow.size:
            out[slow] = self._indices_exact(lat[slow], lng[slow])
        return out

    def areas_for_many(self, lats: npt.ArrayLike, lngs: npt.ArrayLike) -> list[str | None]:
        """`area_for` over arrays: the code of each point's area, None for none."""
        codes = [a.code for a in self.areas]
        return [codes[i] if i >= 0 else None for i in self.indices_for_many(lats, lngs).tolist()]

    def _indices_exact(self, lat: FloatArray, lng: FloatArray) -> IntArray:
        """The reference lookup, vectorised: used for points in boundary cells."""
        pts = shapely.points(lng, lat)
        out = np.full(len(pts), _OUTSIDE, dtype=np.int64)
        served = shapely.intersects(self.service_area, pts)
        if not served.any():
            return out
        idx = np.flatnonzero(served)
        pi, ai = self._covering(pts[idx])
        best = np.full(len(idx), len(self.areas), dtype=np.int64)
        np.minimum.at(best, pi, ai)
        found = best < len(self.areas)
        out[idx[found]] = best[found]
        for j in idx[~found].tolist():
            out[j] = self._nearest(pts[j])
        return out

    # -- the grid ---------------------------------------------------------------------

    def _build_grid(self) -> _Grid:
        x0, y0, x1, y1 = (float(v) for v in self.service_area.bounds)
        mid = math.cos(math.radians(max(-89.0, min(89.0, (y0 + y1) / 2))))
        cell_m = _CELL_M
        w_m, h_m = (x1 - x0) * _M_PER_DEG * mid, (y1 - y0) * _M_PER_DEG
        if (w_m / cell_m + 1) * (h_m / cell_m + 1) > _MAX_CELLS:
            cell_m = math.sqrt(w_m * h_m / _MAX_CELLS) * 1.05
        g = _Grid(x0, y0, x1, y1, cell_m / (_M_PER_DEG * mid), cell_m / _M_PER_DEG)
        n_cells, n_areas = g.nx * g.ny, len(self.areas)

        # 1. Which cells each boundary crosses (owner n_areas: the service area's own).
        cell, owner = self._boundary_cells(g)
        crossed = np.zeros(n_cells, dtype=bool)
        crossed[cell] = True
        service_crossed = np.zeros(n_cells, dtype=bool)
        service_crossed[cell[owner == n_areas]] = True

        # 2. Boundary-free cells: a run of them along a row lies wholly within the same
        # areas, so one point per run classifies the whole run.
        flat = np.arange(n_cells)
        starts = flat[~crossed & ((flat % g.nx == 0) | np.roll(crossed, 1))]
        values = np.full(n_cells, _OUTSIDE, dtype=np.int64)
        if len(starts):
            run_of = np.zeros(n_cells, dtype=np.int64)
            run_of[starts] = np.arange(len(starts))
            values = self._classify_points(g, starts)[np.maximum.accumulate(run_of)]

        # 3. Cells left to the polygons: crossed cells in the service area, and boundary-
        # free cells in the service area but in no area (slivers: nearest area). Their
        # candidates: areas whose boundary crosses the cell + areas covering its centre
        # (which may cover all of it).
        centres = self._cell_centres(g, np.flatnonzero(crossed))
        served = np.zeros(n_cells, dtype=bool)
        served[flat[crossed]] = shapely.intersects(self.service_area, centres)
        pi, ai = self._covering(centres)
        slow = (crossed & (served | service_crossed)) | (~crossed & (values == _NO_AREA))
        values[crossed & ~slow] = _OUTSIDE
        pairs = np.unique(
            np.concatenate(
                [
                    (cell * (n_areas + 1) + owner)[owner < n_areas],
                    flat[crossed][pi] * (n_areas + 1) + ai,
                ]
            )
        )
        pair_cell, pair_area = pairs // (n_areas + 1), (pairs % (n_areas + 1)).tolist()
        slow_cells = np.flatnonzero(slow)
        lo = np.searchsorted(pair_cell, slow_cells, "left").tolist()
        hi = np.searchsorted(pair_cell, slow_cells, "right").tolist()
        keyed: dict[tuple[tuple[int, ...], bool], int] = {}
        kinds: list[int] = []
        for a, b, check in zip(lo, hi, service_crossed[slow_cells].tolist(), strict=True):
            key = (tuple(pair_area[a:b]), check)
            k = keyed.get(key)
            if k is None:
                k = keyed[key] = len(g.mixed)
                geoms = np.array([self._geoms[i] for i in key[0]], dtype=object)
                g.mixed.append(_Mixed(geoms, key[0], check))
            kinds.append(k)
        values[slow_cells] = -2 - np.array(kinds, dtype=np.int64)
        g.cells = array("i", values.astype(np.int32).tobytes())
        # The same memory seen by numpy, for the vectorised lookups.
        g.values = np.frombuffer(g.cells, dtype=np.int32)
        return g

    def _boundary_cells(self, g: _Grid) -> tuple[IntArray, IntArray]:
        """Distinct (cell, owner) pairs: the cells each boundary passes through or touches,
        owner = area index, or len(areas) for the service area's boundary."""
        # Segments are cut shorter than half a cell, so each (widened by _EPS) lies in the
        # 2x2 block of cells around the cells of its end points.
        owners = np.array([*self._geoms, self.service_area], dtype=object)
        rings = shapely.segmentize(shapely.boundary(owners), 0.5 * min(g.dx, g.dy))
        # A MultiLineString's lines are separate paths: no segment joins one to the next.
        parts, part_owner = shapely.get_parts(rings, return_index=True)
        xy, part_of = shapely.get_coordinates(parts, return_index=True)
        same = part_of[1:] == part_of[:-1]
        a, b = xy[:-1][same], xy[1:][same]
        owner = part_owner[part_of[:-1][same]].astype(np.int64)
        lo, hi = np.minimum(a, b) - _EPS, np.maximum(a, b) + _EPS
        c_lo = np.clip(np.floor((lo[:, 0] - g.x0) * g.kx), 0, g.nx - 1).astype(np.int64)
        c_hi = np.clip(np.floor((hi[:, 0] - g.x0) * g.kx), 0, g.nx - 1).astype(np.int64)
        r_lo = np.clip(np.floor((lo[:, 1] - g.y0) * g.ky), 0, g.ny - 1).astype(np.int64)
        r_hi = np.clip(np.floor((hi[:, 1] - g.y0) * g.ky), 0, g.ny - 1).astype(np.int64)
        n = len(self.areas) + 1
        keys = np.concatenate(
            [(r * g.nx + c) * n + owner for r in (r_lo, r_hi) for c in (c_lo, c_hi)]
        )
        keys = np.unique(keys)
        return keys // n, keys % n

    def _cell_centres(self, g: _Grid, cells: IntArray) -> npt.NDArray[np.object_]:
        xs = g.x0 + (cells % g.nx + 0.5) * g.dx
        ys = g.y0 + (cells // g.nx + 0.5) * g.dy
        pts: npt.NDArray[np.object_] = shapely.points(xs, ys)
        return pts

    def _classify_points(self, g: _Grid, cells: IntArray) -> IntArray:
        """The lookup at each cell's centre: area index, _OUTSIDE, or _NO_AREA (in the
        service area but in no area)."""
        pts = self._cell_centres(g, cells)
        served = shapely.intersects(self.service_area, pts)
        out = np.where(served, _NO_AREA, _OUTSIDE).astype(np.int64)
        pi, ai = self._covering(pts)
        best = np.full(len(cells), len(self.areas), dtype=np.int64)
        np.minimum.at(best, pi, ai)
        found = served & (best < len(self.areas))
        out[found] = best[found]
        return out

    # -- GeoJSON ----------------------------------------------------------------------

    @classmethod
    def from_geojson(
        cls,
        data: dict[str, Any],
        name_field: str | None = None,
        code_field: str | None = None,
        projector: Projector | None = None,
        parent_field: str | None = None,
        service_area: BaseGeometry | None = None,
    ) -> AreaSet:
        """Areas from a parsed GeoJSON FeatureCollection of (Multi)Polygons in WGS84.

        Name, code and parent fields are detected unless given; without any code field the
        feature's top-level "id" is used, then the name. A parent (for wards, the borough
        code) is optional. Invalid polygons are repaired.
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
        pf = parent_field or _detect_field(props_list, _PARENT_FIELDS, _PARENT_RE)
        if pf == cf:
            pf = None

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
            parent_v = props.get(pf) if pf is not None else None
            parent = str(parent_v).strip() or None if parent_v is not None else None
            areas.append(Area(code=code, name=name, geometry=_feature_polygon(i, f), parent=parent))
        return cls(areas, service_area=service_area, projector=projector)

    def to_geojson(self, simplify_m: float = 0, decimals: int = 5) -> dict[str, Any]:
        """FeatureCollection with properties {code, name, parent?}, WGS84 rounded to
        `decimals` (5: ~1 m).

        `simplify_m` > 0 simplifies each area independently (tolerance in metres), which
        is meant for browser maps: neighbours may then gap or overlap slightly.
        """
        key = (simplify_m, decimals)
        if key not in self._geojson:
            self._geojson[key] = self._make_geojson(simplify_m, decimals)
        return self._geojson[key]

    def _make_geojson(self, simplify_m: float, decimals: int) -> dict[str, Any]:
        def rounded(coords: FloatArray) -> FloatArray:
            return np.round(coords, decimals)

        geoms = self._geoms
        if simplify_m > 0:
            # All areas in one collection: one projection call each way instead of one per
            # area, and GEOS simplifies the lot in one go (630 wards: ~5x faster).
            p = self.projector
            metres = shapely.get_parts(p.project_geometry(shapely.geometrycollections(geoms)))
            simple = shapely.simplify(metres, simplify_m, preserve_topology=True)
            geoms = shapely.get_parts(p.unproject_geometry(shapely.geometrycollections(simple)))
        texts = shapely.to_geojson(shapely.transform(geoms, rounded)).tolist()
        features: list[dict[str, Any]] = []
        for a, text in zip(self.areas, texts, strict=True):
            props: dict[str, str] = {"code": a.code, "name": a.name}
            if a.parent is not None:
                props["parent"] = a.parent
            features.append({"type": "Feature", "properties": props, "geometry": json.loads(text)})
        return {"type": "FeatureCollection", "features": features}

    # -- built-in London --------------------------------------------------------------

    @classmethod
    def london_default(cls) -> AreaSet:
        """The 33 London local authorities (32 boroughs + City), real boundaries.

        From the ONS / London Datastore boundary files shipped as package data
        (gis/data, built by scripts/build_package_data.py), extended to the middle of the
        Thames along the 2014 ward lines. Built once per process.
        """
        return _london_boroughs()

    @classmethod
    def london_wards(cls) -> AreaSet:
        """The 630 London wards of 2014, each with `parent` = its borough's GSS code.

        Shares the boroughs' service area: a point in London always gets a ward (the
        nearest, for the few metres where ward and borough files disagree), a point
        outside gets none. Built once per process.
        """
        return _london_wards()


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
    if len(matches) > 1:
        # An ONS ward file has WD22CD and LAD22CD: the ward's own column has the most
        # distinct values.
        matches.sort(key=lambda k: -len({str(p.get(k)) for p in props_list}))
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


def _package_geojson(name: str) -> dict[str, Any]:
    raw = resources.files("gis").joinpath("data", name).read_bytes()
    data: dict[str, Any] = json.loads(gzip.decompress(raw))
    return data


@functools.cache
def _london_boroughs() -> AreaSet:
    data = _package_geojson("london_boroughs.geojson.gz")
    return AreaSet.from_geojson(data, "name", "code", projector=Projector(27700))


@functools.cache
def _london_wards() -> AreaSet:
    boroughs = _london_boroughs()
    data = _package_geojson("london_wards_2014.geojson.gz")
    return AreaSet.from_geojson(
        data,
        "name",
        "code",
        projector=boroughs.projector,
        parent_field="parent",
        service_area=boroughs.service_area,
    )
