"""`cad eta calibrate`: the ETA model's parameters learned from observed attendances.

The source is an LFB-layout incident file (first pump's attendance time and the station
it came from) with station positions from one or more station lists; distances are
straight lines in British National Grid metres, as the service measures them.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gis.eta import DEFAULT_PARAMS
from gis.eta_fit import (
    VehicleFit,
    error_stats,
    fit_vehicle,
    holdout_split,
    params_document,
    predict,
)

# Today's generic vehicle: what every unit type without its own params falls back to.
BASELINE_TYPE = "response_car"
# A borough or hour band with fewer fitting rows than this keeps the overall fit.
MIN_GROUP_FIT = 30
HOUR_BANDS = (
    (0, 7, "00-06"),
    (7, 10, "07-09"),
    (10, 16, "10-15"),
    (16, 20, "16-19"),
    (20, 24, "20-23"),
)


class CalibrationError(Exception):
    pass


def station_key(name: str) -> str:
    """Names as the incident file writes them: LFB's property list adds notes in
    brackets ("BARKING (including workshop)") and stray spaces ("HARROW ")."""
    return re.sub(r"\s+", " ", re.sub(r"\(.*?\)", "", name)).strip().upper()


def load_stations(paths: list[Path]) -> tuple[dict[str, tuple[float, float]], dict[str, int]]:
    """Station positions by key; an earlier file wins a name both list (the 2009
    property list before today's station list: Deptford and West Norwood have moved)."""
    stations: dict[str, tuple[float, float]] = {}
    taken: dict[str, int] = {}
    for path in paths:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or ())
            if {"name", "easting", "northing"} <= cols:
                name_col, e_col, n_col, kind_col = "name", "easting", "northing", None
            elif {"Holding_Name", "Easting", "Northing"} <= cols:
                name_col, e_col, n_col, kind_col = (
                    "Holding_Name",
                    "Easting",
                    "Northing",
                    "Description",
                )
            else:
                raise CalibrationError(
                    f"{path}: not a station list (want name,easting,northing or "
                    "Holding_Name,Easting,Northing columns)"
                )
            n = 0
            for row in reader:
                # Offices, workshops and sites for future stations send no pumps.
                if kind_col and kind_col in cols and row[kind_col].strip() != "Fire Station":
                    continue
                key = station_key(row[name_col])
                try:
                    pos = (float(row[e_col]), float(row[n_col]))
                except ValueError:
                    continue
                if key and key not in stations and all(map(math.isfinite, pos)):
                    stations[key] = pos
                    n += 1
            taken[path.name] = n
    return stations, taken


@dataclass
class Attendances:
    distance_m: np.ndarray
    observed_s: np.ndarray
    borough: list[str]
    hour: list[int]
    nearest: np.ndarray  # bool: the deployed-from station was the nearest listed one
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    senders: int = 0


def load_attendances(path: Path, stations: dict[str, tuple[float, float]]) -> Attendances:
    dist: list[float] = []
    obs: list[float] = []
    boroughs: list[str] = []
    hours: list[int] = []
    incident_xy: list[tuple[float, float]] = []
    skipped: Counter[str] = Counter()
    rows = 0
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {
            "Easting_m",
            "Northing_m",
            "FirstPumpArriving_AttendanceTime",
            "FirstPumpArriving_DeployedFromStation",
        }
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise CalibrationError(
                f"{path}: not an LFB incident file (no {', '.join(sorted(missing))})"
            )
        senders: set[str] = set()
        for row in reader:
            rows += 1
            try:
                x, y = float(row["Easting_m"]), float(row["Northing_m"])
            except ValueError:
                skipped["no incident position"] += 1
                continue
            try:
                t = float(row["FirstPumpArriving_AttendanceTime"])
            except ValueError:
                skipped["no first-pump attendance time"] += 1
                continue
            if not math.isfinite(t) or t <= 0:
                skipped["attendance time not positive"] += 1
                continue
            name = row["FirstPumpArriving_DeployedFromStation"]
            key = station_key(name)
            if key not in stations:
                skipped[f"station not in the station lists: {name.strip() or 'NULL'}"] += 1
                continue
            senders.add(key)
            sx, sy = stations[key]
            dist.append(math.hypot(x - sx, y - sy))
            incident_xy.append((x, y))
            obs.append(t)
            boroughs.append(row.get("BoroughName", "").strip() or "?")
            hours.append(_hour(row.get("TimeOfCall", "")))
    # "Nearest" among the stations that sent a first pump that year: the lists also hold
    # river stations and stations opened since, which never sent a pump to these fires.
    # One unit type, so nearest by ETA is nearest by distance (the curve increases).
    xy = np.array([stations[k] for k in sorted(senders)], dtype=np.float64).reshape(-1, 2)
    d = np.array(dist, dtype=np.float64)
    nearest = np.zeros(d.size, dtype=bool)
    for i, (x, y) in enumerate(incident_xy):
        nearest[i] = d[i] <= float(np.hypot(xy[:, 0] - x, xy[:, 1] - y).min()) + 1e-6
    return Attendances(
        d, np.array(obs, dtype=np.float64), boroughs, hours, nearest, rows, skipped, len(senders)
    )


def _hour(text: str) -> int:
    try:
        return int(text.strip()[:2])
    except ValueError:
        return -1


def _hour_band(hour: int) -> str:
    for lo, hi, name in HOUR_BANDS:
        if lo <= hour < hi:
            return name
    return "?"


def calibrate(
    file: Path,
    station_files: list[Path],
    unit_type: str = "pump",
    by: str | None = None,
    seed: int = 0,
    only_nearest: bool = False,
    sample: int = 0,
    test_fraction: float = 0.2,
) -> tuple[dict[str, Any], list[str]]:
    """The params document and the lines to print, from an LFB-layout attendance file."""
    stations, taken = load_stations(station_files)
    att = load_attendances(file, stations)
    lines = [
        f"stations: {len(stations)} ("
        + ", ".join(f"{n} from {name}" for name, n in taken.items())
        + ")",
        f"rows read: {att.rows:,}; matched: {att.distance_m.size:,}; "
        f"skipped: {sum(att.skipped.values()):,}",
    ]
    for reason, n in att.skipped.most_common():
        lines.append(f"  skipped {n:,}: {reason}")
    source = {"file": str(file), "stations": [str(p) for p in station_files]}
    return fit_attendances(
        att, source, lines, unit_type=unit_type, by=by, seed=seed,
        only_nearest=only_nearest, sample=sample, test_fraction=test_fraction,
    )  # fmt: skip


def fit_attendances(
    att: Attendances,
    source: dict[str, Any],
    lines: list[str],
    *,
    unit_type: str,
    by: str | None = None,
    seed: int = 0,
    only_nearest: bool = False,
    sample: int = 0,
    test_fraction: float = 0.2,
) -> tuple[dict[str, Any], list[str]]:
    """Fit on a seeded share of the attendances and test on the rest."""
    keep = np.arange(att.distance_m.size)
    if only_nearest:
        keep = keep[att.nearest]
        lines.append(
            f"--only-nearest: {keep.size:,} rows whose deployed-from station was the nearest "
            f"of the {att.senders} that sent a first pump ({att.distance_m.size - keep.size:,} "
            "dropped)"
        )
    if sample and keep.size > sample:
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=sample, replace=False))
        lines.append(f"--sample: {sample:,} rows drawn (seed {seed})")
    if keep.size < 10:
        raise CalibrationError(f"only {keep.size} usable rows: too few to fit and test")
    fit_pos, test_pos = holdout_split(keep.size, test_fraction, seed)
    fit_idx, test_idx = keep[fit_pos], keep[test_pos]
    d, t = att.distance_m, att.observed_s
    fit = fit_vehicle(d[fit_idx], t[fit_idx])
    baseline = DEFAULT_PARAMS[BASELINE_TYPE]
    before = error_stats(predict(baseline, d[test_idx]), t[test_idx])
    after = error_stats(predict(fit.params, d[test_idx]), t[test_idx])
    lines.append(
        f"fit on {fit_idx.size:,} rows, tested on {test_idx.size:,} held out "
        f"(seeded split, seed {seed}, {test_fraction:.0%} held out)"
    )
    lines.append(
        f"{unit_type}: mobilise {fit.mobilise_s:.1f} s, effective acceleration "
        f"{fit.accel_mps2:.4f} m/s^2, cruise {fit.cruise_mps:.2f} m/s "
        f"({fit.cruise_mps * 3.6:.1f} km/h), d_crit {fit.params.d_crit_m:.0f} m"
    )
    lines.append("hold-out errors (predicted - observed, s):   n   median   MAE   p90|err|")
    for label, s in ((f"before ({BASELINE_TYPE} defaults)", before), ("after (fitted)", after)):
        lines.append(
            f"  {label:<30} {s.n:>6} {s.median_signed_s:>8.1f} {s.mae_s:>5.1f} {s.p90_abs_s:>9.1f}"
        )
    doc: dict[str, Any] = {
        "model": "kolesar",
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            **source,
            "rows_read": att.rows,
            "rows_matched": int(att.distance_m.size),
            "rows_used": int(keep.size),
            "skipped": dict(att.skipped),
            "only_nearest": only_nearest,
            "sample": sample or None,
            "seed": seed,
        },
        "unit_types": {unit_type: params_document(fit)},
        "holdout": {
            "test_fraction": test_fraction,
            "before": {"baseline": BASELINE_TYPE, **before.as_dict()},
            "after": after.as_dict(),
        },
    }
    if unit_type not in DEFAULT_PARAMS:
        lines.append(
            f"note: the service dispatches no {unit_type!r} units and will ignore these params; "
            f"name one of {', '.join(DEFAULT_PARAMS)} with --unit-type to use them"
        )
    if by is not None:
        doc["by"] = {by: _fit_groups(att, by, fit_idx, test_idx, fit, lines)}
    return doc, lines


def _fit_groups(
    att: Attendances,
    by: str,
    fit_idx: np.ndarray,
    test_idx: np.ndarray,
    overall: VehicleFit,
    lines: list[str],
) -> dict[str, Any]:
    labels = att.borough if by == "borough" else [_hour_band(h) for h in att.hour]
    groups = sorted({labels[i] for i in fit_idx} | {labels[i] for i in test_idx})
    out: dict[str, Any] = {}
    lines.append(f"by {by} (hold-out MAE overall fit -> group fit):")
    d, t = att.distance_m, att.observed_s
    for g in groups:
        g_fit = np.array([i for i in fit_idx if labels[i] == g], dtype=np.intp)
        g_test = np.array([i for i in test_idx if labels[i] == g], dtype=np.intp)
        own = g_fit.size >= MIN_GROUP_FIT
        fit = fit_vehicle(d[g_fit], t[g_fit]) if own else overall
        base = error_stats(predict(overall.params, d[g_test]), t[g_test])
        mine = error_stats(predict(fit.params, d[g_test]), t[g_test])
        out[g] = {
            **params_document(fit),
            "n_fit": int(g_fit.size),
            "own_fit": own,
            "holdout": mine.as_dict(),
            "holdout_overall_fit": base.as_dict(),
        }
        note = "" if own else f" (too few to fit: < {MIN_GROUP_FIT}, overall params kept)"
        lines.append(
            f"  {g:<24} fit {g_fit.size:>5} test {g_test.size:>4}  "
            f"MAE {base.mae_s:>6.1f} -> {mine.mae_s:>6.1f}{note}"
        )
    return out


# Closed assignments whose unit's starting point was recorded (unit.assigned carries
# from_lat/from_lng since the assignment began to), of one unit type.
_DB_ATTENDANCES = """
    SELECT extract(epoch FROM a.on_scene_at - a.dispatched_at) AS seconds,
           i.lat, i.lng, (e.data->>'from_lat')::float8 AS from_lat,
           (e.data->>'from_lng')::float8 AS from_lng, coalesce(i.area_code, '?') AS area,
           extract(hour FROM a.dispatched_at AT TIME ZONE 'Europe/London')::int AS hour
      FROM assignments a
      JOIN incidents i ON i.id = a.incident_id
      JOIN units u ON u.id = a.unit_id
      JOIN events e ON e.type = 'unit.assigned' AND e.unit_id = a.unit_id
                   AND e.incident_id = a.incident_id
                   AND (e.data->>'assignment_id')::bigint = a.id
     WHERE a.on_scene_at IS NOT NULL AND u.unit_type = $1
       AND e.data->>'from_lat' IS NOT NULL AND e.data->>'from_lng' IS NOT NULL"""


async def load_db_attendances(database_url: str, unit_type: str, epsg: int) -> Attendances:
    """The service's own record as attendances: where each unit was sent from, where the
    incident was, and how long it took to get there."""
    import asyncpg

    from gis.projection import Projector

    projector = Projector(epsg)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(_DB_ATTENDANCES, unit_type)
    finally:
        await conn.close()
    dist: list[float] = []
    obs: list[float] = []
    areas: list[str] = []
    hours: list[int] = []
    skipped: Counter[str] = Counter()
    for r in rows:
        seconds = float(r["seconds"])
        if not math.isfinite(seconds) or seconds <= 0:
            skipped["on scene not after dispatch"] += 1
            continue
        ix, iy = projector.to_metres(r["lat"], r["lng"])
        ux, uy = projector.to_metres(r["from_lat"], r["from_lng"])
        dist.append(math.hypot(ix - ux, iy - uy))
        obs.append(seconds)
        areas.append(r["area"])
        hours.append(int(r["hour"]))
    d = np.array(dist, dtype=np.float64)
    # Every unit the service sends is the one it recommended (or a dispatcher's choice):
    # there is no "nearest station" filter to apply to its own record.
    return Attendances(
        d, np.array(obs, dtype=np.float64), areas, hours, np.ones(d.size, dtype=bool),
        len(rows), skipped, 0,
    )  # fmt: skip


def calibrate_from_database(
    database_url: str,
    unit_type: str,
    epsg: int = 27700,
    by: str | None = None,
    seed: int = 0,
    sample: int = 0,
    test_fraction: float = 0.2,
) -> tuple[dict[str, Any], list[str]]:
    import asyncio

    att = asyncio.run(load_db_attendances(database_url, unit_type, epsg))
    lines = [
        f"closed {unit_type} assignments with a recorded start: {att.rows:,}; "
        f"usable: {att.distance_m.size:,}"
    ]
    for reason, n in att.skipped.most_common():
        lines.append(f"  skipped {n:,}: {reason}")
    source = {"database": "closed assignments (unit.assigned from_lat/from_lng → on_scene_at)"}
    return fit_attendances(
        att, source, lines, unit_type=unit_type, by=by, seed=seed, sample=sample,
        test_fraction=test_fraction,
    )  # fmt: skip
