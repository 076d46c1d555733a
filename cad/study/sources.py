"""Call logs and fleets for `cad study`: read into plain records the simulator replays.

A log gives when each call was received, where, and what it was; the call becomes one of
our incident types with the risk answers a handler would have recorded (a data file
per log says how), and our own grading rules then decide its grade.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gis.areas import AreaSet

DATA = Path(__file__).parent / "data"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SF_WEEK = SHARED_DATA / "sf_fire_calls_for_service_2016-12-31_2017-01-07.csv"
MONTGOMERY = SHARED_DATA / "montgomery_911_sample.csv"
# The snowstorm of 2018-11-15: 302 calls 13:00-14:00 against a typical 10-15 an hour.
MONTGOMERY_SURGE_DAY = "2018-11-15"

# San Francisco's land, roughly: fixed (not taken from the log) so a part of the week
# maps its points exactly where the whole week does.
SF_BBOX = (37.705, -122.515, 37.835, -122.355)  # lat_min, lng_min, lat_max, lng_max
MONTGOMERY_BBOX = (39.97, -75.72, 40.43, -75.02)


class SourceError(ValueError):
    """A log or fleet file cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    ref: str
    received_s: float  # seconds after the log's first call
    lat: float
    lng: float
    incident_type: str
    risk: Mapping[str, object] = field(default_factory=dict)
    source_type: str = ""
    # The borough the call falls in (set by `with_areas`), for the area-aware policies.
    area_code: str | None = None


@dataclass(frozen=True, slots=True)
class CallLog:
    name: str
    start: datetime
    calls: list[CallRecord]


@dataclass(frozen=True, slots=True)
class FleetUnit:
    callsign: str
    unit_type: str
    capabilities: frozenset[str]
    lat: float
    lng: float
    area_code: str | None = None
    # On duty from shift_start_h to shift_end_h each day (hours of the day, may wrap past
    # midnight); equal values mean always on duty.
    shift_start_h: float = 0.0
    shift_end_h: float = 0.0


def with_areas(calls: Sequence[CallRecord], areas: AreaSet) -> list[CallRecord]:
    codes = areas.areas_for_many([c.lat for c in calls], [c.lng for c in calls])
    return [dataclasses.replace(c, area_code=code) for c, code in zip(calls, codes, strict=True)]


class BoxMap:
    """An affine map of one lat/lng box onto another (in British National Grid metres on
    the London side), so the log's spatial pattern lands on London stretched to fit."""

    def __init__(self, src: tuple[float, float, float, float], areas: AreaSet) -> None:
        self.src = src
        minx, miny, maxx, maxy = areas.projector.project_geometry(areas.service_area).bounds
        self.dst = (minx, miny, maxx, maxy)
        self.projector = areas.projector

    def __call__(self, lat: float, lng: float) -> tuple[float, float]:
        lat0, lng0, lat1, lng1 = self.src
        minx, miny, maxx, maxy = self.dst
        fx = min(max((lng - lng0) / (lng1 - lng0), 0.0), 1.0)
        fy = min(max((lat - lat0) / (lat1 - lat0), 0.0), 1.0)
        return self.projector.to_wgs84(minx + fx * (maxx - minx), miny + fy * (maxy - miny))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc


def read_sf(
    path: Path,
    areas: AreaSet,
    *,
    hours: float | None = None,
    types_file: Path = DATA / "sf_types.json",
) -> CallLog:
    """SF Fire's calls for service: one row per unit sent, grouped by Call Number."""
    mapping = _load_json(types_file)
    call_types: dict[str, str] = mapping["call_types"]
    default_type: str = mapping["default_type"]
    priority_risk: dict[str, dict[str, object]] = mapping.get("priority_risk", {})
    fmt = "%m/%d/%Y %I:%M:%S %p"
    first: dict[str, dict[str, str]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                key = row["Call Number"]
                if key not in first or row["Received DtTm"] < first[key]["Received DtTm"]:
                    first[key] = row
    except (OSError, KeyError) as exc:
        raise SourceError(f"{path}: not an SF calls-for-service file: {exc}") from exc
    box = BoxMap(SF_BBOX, areas)
    parsed: list[tuple[datetime, str, dict[str, str]]] = []
    for key, row in first.items():
        try:
            # The log's local times are replayed as they are, read as UTC: only
            # differences and hour-of-day matter to the study.
            at = datetime.strptime(row["Received DtTm"], fmt).replace(tzinfo=UTC)
        except ValueError as exc:
            raise SourceError(f"{path}: call {key}: bad Received DtTm: {exc}") from exc
        parsed.append((at, key, row))
    if not parsed:
        raise SourceError(f"{path}: no calls")
    parsed.sort(key=lambda p: (p[0], p[1]))
    start = parsed[0][0]
    calls: list[CallRecord] = []
    for at, key, row in parsed:
        received = (at - start).total_seconds()
        if hours is not None and received >= hours * 3600:
            break
        try:
            lat_s, lng_s = row["Location"].strip("() ").split(",")
            lat, lng = box(float(lat_s), float(lng_s))
        except ValueError:
            continue  # no usable position: a call the study cannot place
        sf_type = row["Call Type"]
        calls.append(
            CallRecord(
                ref=key,
                received_s=received,
                lat=lat,
                lng=lng,
                incident_type=call_types.get(sf_type, default_type),
                risk=dict(priority_risk.get(row["Priority"], {})),
                source_type=sf_type,
            )
        )
    return CallLog("sf", start, calls)


def read_montgomery(
    path: Path,
    areas: AreaSet,
    *,
    hours: float | None = None,
    day: str | None = MONTGOMERY_SURGE_DAY,
    types_file: Path = DATA / "montgomery_types.json",
) -> CallLog:
    """Montgomery County's 911 feed (lat,lng,title,timestamp,township,address; no
    header), one row a call. The sample holds scattered days: ``day`` (YYYY-MM-DD) picks
    one, None replays them all (the gaps between days cost nothing on a virtual clock)."""
    mapping = _load_json(types_file)
    titles: dict[str, str] = mapping["titles"]
    prefixes: dict[str, str] = mapping["prefixes"]
    default_type: str = mapping["default_type"]
    box = BoxMap(MONTGOMERY_BBOX, areas)
    rows: list[tuple[datetime, int, list[str]]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for n, row in enumerate(csv.reader(fh), start=1):
                if day is not None and not row[3].startswith(day):
                    continue
                at = datetime.strptime(row[3], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
                rows.append((at, n, row))
    except (OSError, IndexError, ValueError) as exc:
        raise SourceError(f"{path}: not a Montgomery 911 file: {exc}") from exc
    if not rows:
        raise SourceError(f"{path}: no calls" + (f" on {day}" if day else ""))
    rows.sort(key=lambda r: (r[0], r[1]))
    start = rows[0][0]
    calls: list[CallRecord] = []
    for at, n, row in rows:
        received = (at - start).total_seconds()
        if hours is not None and received >= hours * 3600:
            break
        try:
            lat, lng = box(float(row[0]), float(row[1]))
        except ValueError:
            continue
        title = row[2].strip()
        itype = titles.get(title) or prefixes.get(title.split(":")[0].strip(), default_type)
        calls.append(CallRecord(str(n), received, lat, lng, itype, {}, title))
    return CallLog("montgomery", start, calls)


def demo_units(areas: AreaSet) -> list[FleetUnit]:
    from cad.seed import demo_fleet

    return [
        FleetUnit(
            callsign=u["callsign"],
            unit_type=u["unit_type"],
            capabilities=frozenset(u["capabilities"]),
            lat=u["lat"],
            lng=u["lng"],
            area_code=u["area_code"],
        )
        for u in demo_fleet(areas)
    ]


def _unit(raw: Mapping[str, Any], where: str, areas: AreaSet) -> FleetUnit:
    from cad.seed import UNIT_TYPES

    try:
        unit_type = str(raw["unit_type"])
        caps = raw.get("capabilities") or UNIT_TYPES.get(unit_type)
        if isinstance(caps, str):
            caps = [c for c in caps.replace(";", " ").replace("|", " ").split() if c]
        if not caps:
            raise SourceError(f"{where}: no capabilities for unit type {unit_type!r}")
        lat, lng = float(raw["lat"]), float(raw["lng"])
        area = areas.area_for(lat, lng)
        return FleetUnit(
            callsign=str(raw["callsign"]),
            unit_type=unit_type,
            capabilities=frozenset(str(c) for c in caps),
            lat=lat,
            lng=lng,
            area_code=area.code if area else None,
            shift_start_h=float(raw.get("shift_start_h") or 0),
            shift_end_h=float(raw.get("shift_end_h") or 0),
        )
    except KeyError as exc:
        raise SourceError(f"{where}: missing field {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{where}: {exc}") from exc


def read_fleet(path: Path, areas: AreaSet) -> list[FleetUnit]:
    """A fleet file: CSV with a header, or JSON (a list, or {"units": [...]}), fields
    callsign, unit_type, capabilities (optional: the unit type's usual ones; in CSV
    separated by spaces, ';' or '|'), lat, lng (the base), shift_start_h, shift_end_h
    (optional hours of the day)."""
    rows: Sequence[Mapping[str, Any]]
    if path.suffix.lower() == ".json":
        doc = _load_json(path)
        rows = doc.get("units", []) if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise SourceError(f"{path}: expected a list of units")
    else:
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc}") from exc
    units = [_unit(r, f"{path}: unit {i + 1}", areas) for i, r in enumerate(rows)]
    if not units:
        raise SourceError(f"{path}: no units")
    return units
