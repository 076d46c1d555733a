"""Real call logs and load profiles, parsed into calls our API accepts.

Standard library only: this module is imported under locust (gevent monkey-patching), so
it must not pull in cad/dispatch/gis or anything asyncio-based.
"""

from __future__ import annotations

import csv
import json
import random
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A box well inside Greater London (checked against the built-in service area in
# tests): foreign logs are mapped onto it so their spatial pattern survives.
LONDON_BOX = (51.40, -0.30, 51.60, 0.10)  # south, west, north, east

# Police incident types for generated calls, weighted like a London control room's mix.
CALL_MIX: list[tuple[str, int]] = [
    ("ASB", 14),
    ("CONCERN_WELFARE", 12),
    ("VIOLENCE", 10),
    ("DOMESTIC", 10),
    ("THEFT", 8),
    ("SUSPICIOUS", 8),
    ("NOISE", 6),
    ("RTC_DAMAGE", 5),
    ("BURGLARY", 4),
    ("BURGLARY_IN_PROGRESS", 4),
    ("MISSING_PERSON", 4),
    ("ALARM", 4),
    ("ADVICE", 4),
    ("RTC_INJURY", 3),
    ("ROBBERY", 3),
    ("SHOPLIFTING_DETAINED", 3),
    ("CRIMINAL_DAMAGE", 3),
    ("VEHICLE_CRIME", 3),
    ("HATE_CRIME", 1),
    ("KNIFE", 2),
]

# Montgomery County titles ("EMS: FALL VICTIM") onto our police types; anything not
# listed falls back on its prefix.
MONTGOMERY_TYPES: dict[str, str] = {
    "Traffic: VEHICLE ACCIDENT": "RTC_DAMAGE",
    "EMS: VEHICLE ACCIDENT": "RTC_INJURY",
    "Fire: VEHICLE ACCIDENT": "RTC_INJURY",
    "Traffic: DISABLED VEHICLE": "ADVICE",
    "Traffic: ROAD OBSTRUCTION": "RTC_DAMAGE",
    "Traffic: HAZARDOUS ROAD CONDITIONS": "RTC_DAMAGE",
    "Traffic: DEBRIS/FLUIDS ON HIGHWAY": "RTC_DAMAGE",
    "Traffic: VEHICLE FIRE": "VEHICLE_CRIME",
    "Fire: VEHICLE FIRE": "VEHICLE_CRIME",
    "EMS: VEHICLE FIRE": "VEHICLE_CRIME",
    "Fire: FIRE ALARM": "ALARM",
    "Fire: CARBON MONOXIDE DETECTOR": "ALARM",
    "EMS: MEDICAL ALERT ALARM": "ALARM",
    "Fire: FIRE POLICE NEEDED": "RTC_DAMAGE",
    "Fire: FIRE INVESTIGATION": "SUSPICIOUS",
    "Fire: TRASH/DUMPSTER FIRE": "CRIMINAL_DAMAGE",
    "Fire: WOODS/FIELD FIRE": "CRIMINAL_DAMAGE",
    "EMS: ASSAULT VICTIM": "VIOLENCE",
    "EMS: OVERDOSE": "CONCERN_WELFARE",
    "Fire: TRANSFERRED CALL": "ADVICE",
}
MONTGOMERY_PREFIX_TYPES = {
    "EMS": "CONCERN_WELFARE",
    "Fire": "CONCERN_WELFARE",
    "Traffic": "RTC_DAMAGE",
}
# Life-threatening medical titles: the caller's answers make them Immediate (THRIVE harm).
_HIGH_HARM = ("CARDIAC ARREST", "UNCONSCIOUS", "UNRESPONSIVE", "CHOKING", "HEMORRHAGING")


@dataclass
class LogCall:
    """One call from a real log, already placed in London and typed for our API."""

    at: datetime
    lat: float
    lng: float
    incident_type: str
    description: str
    risk: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def body(self, tag: str = "") -> dict[str, Any]:
        return {
            "caller": {"name": "Replay caller", "phone": "07700 900999"},
            "location": {"lat": round(self.lat, 6), "lng": round(self.lng, 6)},
            "location_source": "aml",
            "incident_type": self.incident_type,
            "description": (self.description + (f" [lt:{tag}]" if tag else ""))[:500],
            "risk": self.risk,
        }


class SourceError(ValueError):
    """A log cannot be parsed; the message names the file and line."""


# -- mapping foreign coordinates into London ----------------------------------------------


@dataclass(frozen=True)
class AffineBox:
    """Maps a source bounding box linearly onto a target box (lat/lng each scaled)."""

    src: tuple[float, float, float, float]  # south, west, north, east
    dst: tuple[float, float, float, float] = LONDON_BOX

    def __call__(self, lat: float, lng: float) -> tuple[float, float]:
        s, w, n, e = self.src
        ds, dw, dn, de = self.dst
        fy = (lat - s) / (n - s) if n > s else 0.5
        fx = (lng - w) / (e - w) if e > w else 0.5
        # Stragglers outside the robust box are pinned to its edge, never thrown outside.
        fy, fx = min(max(fy, 0.0), 1.0), min(max(fx, 0.0), 1.0)
        return round(ds + fy * (dn - ds), 6), round(dw + fx * (de - dw), 6)


def robust_box(
    points: Iterable[tuple[float, float]], trim: float = 0.005
) -> tuple[float, float, float, float]:
    """The bounding box of the points without the outer `trim` share on each side.

    Real logs carry a few geocoding blunders (a call placed in another state); a plain
    min/max would let one of them squash everybody else into a corner.
    """
    lats = sorted(p[0] for p in points)
    lngs = sorted(p[1] for p in points)
    if not lats:
        raise SourceError("no positions to take a bounding box of")
    k = int(len(lats) * trim)
    return (lats[k], lngs[k], lats[-1 - k], lngs[-1 - k])


def in_london_box(lat: float, lng: float) -> bool:
    s, w, n, e = LONDON_BOX
    return s <= lat <= n and w <= lng <= e


# An ellipse that lies inside Greater London's real boundary (tests check it against the
# built-in service area): the in-area test used where gis cannot be imported (locust).
LONDON_CENTRE = (51.495, -0.105)
_ELLIPSE = (0.136, 0.24)  # semi-axes in degrees of lat, lng


def in_london_ellipse(lat: float, lng: float) -> bool:
    dy = (lat - LONDON_CENTRE[0]) / _ELLIPSE[0]
    dx = (lng - LONDON_CENTRE[1]) / _ELLIPSE[1]
    return dx * dx + dy * dy <= 1.0


def pull_inside(
    lat: float, lng: float, inside: Callable[[float, float], bool] = in_london_ellipse
) -> tuple[float, float]:
    """Move a point towards London's centre until `inside` accepts it (unchanged if it does).

    Only a fringe point moves, and only as far as it has to, so the pattern survives.
    """
    clat, clng = LONDON_CENTRE
    dlat, dlng = lat - clat, lng - clng
    for step in range(51):
        f = 1.0 - step * 0.02
        plat, plng = round(clat + dlat * f, 6), round(clng + dlng * f, 6)
        if inside(plat, plng):
            return plat, plng
    return clat, clng


# -- Montgomery County 911 (lat,lng,title,timestamp,township,address; no header) ---------


def montgomery_type(title: str) -> tuple[str, dict[str, Any]]:
    key = title.rstrip(" -").strip()
    prefix = key.split(":", 1)[0]
    code = MONTGOMERY_TYPES.get(key) or MONTGOMERY_PREFIX_TYPES.get(prefix, "CONCERN_WELFARE")
    risk: dict[str, Any] = {}
    if code == "RTC_INJURY" or code == "VIOLENCE":
        risk["injuries"] = True
    if any(word in key for word in _HIGH_HARM):
        risk["harm"] = "high"
    elif prefix == "EMS":
        risk["vulnerable"] = True
    return code, risk


def read_montgomery(path: Path) -> list[LogCall]:
    rows: list[tuple[int, float, float, str, datetime, str]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 4:
                raise SourceError(f"{path}: line {lineno}: expected lat,lng,title,timestamp,...")
            try:
                lat, lng = float(row[0]), float(row[1])
            except ValueError:
                if lineno == 1:
                    continue  # tolerate a header line
                raise SourceError(f"{path}: line {lineno}: lat/lng not numbers") from None
            try:
                at = datetime.strptime(row[3].strip(), "%Y-%m-%d %H:%M")
            except ValueError:
                try:
                    at = datetime.fromisoformat(row[3].strip())
                except ValueError:
                    raise SourceError(
                        f"{path}: line {lineno}: timestamp {row[3]!r} not YYYY-MM-DD HH:MM"
                    ) from None
            place = ", ".join(x.strip() for x in row[4:6] if x.strip())
            rows.append((lineno, lat, lng, row[2].strip(), at, place))
    if not rows:
        raise SourceError(f"{path}: no calls")
    box = AffineBox(robust_box([(r[1], r[2]) for r in rows]))
    calls = []
    for lineno, lat, lng, title, at, place in rows:
        mlat, mlng = box(lat, lng)
        code, risk = montgomery_type(title)
        calls.append(LogCall(at, mlat, mlng, code, f"{title.rstrip(' -')} ({place})", risk, lineno))
    calls.sort(key=lambda c: (c.at, c.line))
    spread_within_minute(calls)
    return calls


def spread_within_minute(calls: list[LogCall]) -> None:
    """The log has minute resolution: spread each minute's calls evenly across it, so a
    fast replay does not turn every minute into one burst."""
    i = 0
    while i < len(calls):
        j = i
        while j < len(calls) and calls[j].at == calls[i].at:
            j += 1
        n = j - i
        for k in range(n):
            calls[i + k].at += timedelta(seconds=60.0 * k / n)
        i = j


# -- LFB dwelling fires (GeoJSON points; incidents have no time) --------------------------

LFB_EPOCH = datetime(2009, 1, 1)
# ~100,000 LFB incidents a year: an arrival every ~5 minutes on average.
LFB_MEAN_GAP_S = 315.0


def read_lfb_geojson(
    path: Path, seed: int = 2009, inside: Callable[[float, float], bool] | None = None
) -> list[LogCall]:
    """Fire incidents (not stations) as calls, with Poisson arrival times (the file has no
    times). The log is London already: points `inside` accepts (default: an ellipse inside
    Greater London) stay put, the few others are pulled in towards the centre."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise SourceError(f"{path}: not a GeoJSON FeatureCollection")
    points: list[tuple[int, float, float, dict[str, Any]]] = []
    for i, feat in enumerate(features):
        props = feat.get("properties") or {}
        if props.get("type") == "station":
            continue
        geom = feat.get("geometry") or {}
        if geom.get("type") != "Point":
            raise SourceError(f"{path}: feature {i}: geometry is not a Point")
        lng, lat = geom["coordinates"][:2]
        points.append((i, float(lat), float(lng), props))
    if not points:
        raise SourceError(f"{path}: no incidents")
    rng = random.Random(seed)
    t = LFB_EPOCH
    calls = []
    for i, lat, lng, props in points:
        t += timedelta(seconds=rng.expovariate(1.0 / LFB_MEAN_GAP_S))
        lat, lng = pull_inside(lat, lng, inside or in_london_ellipse)
        kind = str(props.get("property_type") or "dwelling").strip()
        calls.append(
            LogCall(
                t,
                lat,
                lng,
                "CONCERN_WELFARE",
                f"Dwelling fire, {kind}",
                {"harm": "high"},
                i + 1,
            )
        )
    return calls


def read_log(
    path: str | Path, inside: Callable[[float, float], bool] | None = None
) -> list[LogCall]:
    """Any supported log, chosen by file type."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file")
    if p.suffix.lower() in (".geojson", ".json"):
        return read_lfb_geojson(p, inside=inside)
    return read_montgomery(p)


def window(
    calls: list[LogCall], start: datetime | None, limit: int = 0, hours: float | None = None
) -> list[LogCall]:
    out = [c for c in calls if start is None or c.at >= start]
    if hours is not None and out:
        end = (start or out[0].at) + timedelta(hours=hours)
        out = [c for c in out if c.at < end]
    return out[:limit] if limit > 0 else out


def schedule(
    calls: list[LogCall], speed: float, multiply: int = 1
) -> Iterator[tuple[float, LogCall, int]]:
    """(seconds from the start of the replay, call, copy number) in time order."""
    if not calls:
        return
    t0 = calls[0].at
    for call in calls:
        offset = (call.at - t0).total_seconds() / max(speed, 1e-9)
        for copy in range(max(multiply, 1)):
            yield offset, call, copy


# -- hourly profiles for load shapes -----------------------------------------------------


def seattle_hour_of_day(path: Path | None = None) -> list[float]:
    """Mean Seattle Fire 911 calls per hour for each hour of the day (24 values)."""
    path = path or SHARED_DATA / "seattle_fire_911_hourly_counts_2015-2022.csv"
    sums = [0.0] * 24
    counts = [0] * 24
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for lineno, row in enumerate(reader, start=2):
            try:
                hour, calls = int(row["hour"]), float(row["calls"])
            except (KeyError, ValueError):
                raise SourceError(f"{path}: line {lineno}: hour/calls not numbers") from None
            sums[hour] += calls
            counts[hour] += 1
    return [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]


def montgomery_surge_minutes(path: Path | None = None) -> list[float]:
    """Calls per 5 minutes around the 2018-11-15 snowstorm surge (quiet edges trimmed)."""
    path = path or SHARED_DATA / "montgomery_911_sample.csv"
    start = datetime(2018, 11, 15, 11, 0)
    bins = [0.0] * 60
    for call in read_montgomery(path):
        k = int((call.at - start).total_seconds() // 300)
        if 0 <= k < len(bins):
            bins[k] += 1
    while bins and bins[0] == 0:
        bins.pop(0)
    while bins and bins[-1] == 0:
        bins.pop()
    return bins


# Fallback when the shared data is absent (a machine without ../shared/data): the Seattle
# mean hour-of-day profile, rounded.
SEATTLE_FALLBACK = [
    11.0, 10.3, 9.3, 8.1, 7.2, 6.9, 7.4, 8.7, 10.5, 12.0, 12.9, 13.4,
    13.8, 13.7, 13.8, 14.0, 14.2, 14.3, 14.1, 13.8, 13.3, 12.9, 12.4, 11.8,
]  # fmt: skip


def load_profile(name: str) -> list[float]:
    try:
        if name == "montgomery":
            return montgomery_surge_minutes()
        if name == "flat":
            return [1.0]
        return seattle_hour_of_day()
    except (OSError, SourceError):
        return SEATTLE_FALLBACK


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(int(q * 10) - 1, 998)]


def random_london_point(rng: random.Random) -> tuple[float, float]:
    """A point in the London box, clustered like calls (denser towards the centre)."""
    s, w, n, e = LONDON_BOX
    lat = min(max(rng.gauss((s + n) / 2, (n - s) / 5), s), n)
    lng = min(max(rng.gauss((w + e) / 2, (e - w) / 5), w), e)
    return round(lat, 6), round(lng, 6)


def random_risk(rng: random.Random, incident_type: str) -> dict[str, Any]:
    """Risk answers a handler records; roughly a third of calls say it is happening now."""
    risk: dict[str, Any] = {
        "ongoing": rng.random() < 0.3,
        "injuries": rng.random() < 0.12,
        "weapons": incident_type in ("KNIFE", "ROBBERY") and rng.random() < 0.5,
        "offender_present": rng.random() < 0.2,
        "vulnerable": rng.random() < 0.15,
    }
    if rng.random() < 0.1:
        risk["threat"] = rng.choice(["low", "medium", "high"])
    return risk


def random_call(rng: random.Random, tag: str = "") -> dict[str, Any]:
    types, weights = zip(*CALL_MIX, strict=True)
    code = rng.choices(types, weights)[0]
    lat, lng = random_london_point(rng)
    return {
        "caller": {"name": "Load test caller", "phone": f"07700 9{rng.randint(0, 99999):05d}"},
        "location": {"lat": lat, "lng": lng},
        "location_source": rng.choice(["aml", "aml", "aml", "map", "caller"]),
        "incident_type": code,
        "description": f"load test {code.lower().replace('_', ' ')}"
        + (f" [lt:{tag}]" if tag else ""),
        "risk": random_risk(rng, code),
    }
