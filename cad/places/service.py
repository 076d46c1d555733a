"""The gazetteer: one resolver for type-ahead, intake's {address} and reverse lookup.

Postcodes come from OS Code-Point Open (any part of GB; London's are packaged), names from
places.json plus the active boroughs and wards. Every answer carries the borough and ward
of its point from the worker's in-memory areas, so an imported area set is reflected at
once without touching the gazetteer.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import hashlib
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import shapely
import structlog

from cad.errors import Invalid
from cad.places import repository
from cad.places.codepoint import (
    BNG_EPSG,
    CodePointError,
    canonical_postcode,
    compact_postcode,
    is_outward,
    read_batches,
)
from gis.areas import Area, AreaSet
from gis.projection import Projector, validate_lat_lng

if TYPE_CHECKING:
    from cad.state import AppState

log = structlog.get_logger(__name__)

__all__ = [
    "CodePointError",
    "ImportSummary",
    "Resolved",
    "address_line",
    "ensure_gazetteer",
    "import_codepoint",
    "load_places",
    "resolve_address",
    "reverse",
    "search",
]

PACKAGED_SOURCE = "packaged:london_postcodes"
# Beyond this the nearest postcode says nothing useful about a point (open water, a park
# the size of Richmond's, or outside the loaded postcodes altogether).
REVERSE_MAX_M = 2000.0
# Code-Point positional quality -> how far the point may be from the address (m): 10/20
# are a matched address's building, 30 approximate, 40 the unit mean, 50 the sector.
_QUALITY_PRECISION = {10: 25, 20: 25, 30: 50, 40: 100, 50: 500}
# Trigram word similarity: what type-ahead lists, and what intake accepts on its own.
TYPEAHEAD_MIN_SCORE = 0.4
RESOLVE_MIN_SCORE = 0.5
SUGGEST_MIN_SCORE = 0.25
WORD_MATCH_RATIO = 0.75
_FILLERS = frozenset({"the", "and", "near", "outside", "opposite", "behind", "next", "london"})
# Equal names: a borough before a station before a landmark before a ward.
_KIND_RANK = {"borough": 0, "station": 1, "place": 2, "ward": 3}

_POSTCODE_START = re.compile(r"^[A-Z]{1,2}[0-9]")
_INWARD_PREFIX = re.compile(r"^[0-9][A-Z]{0,2}$")
_EMBEDDED_POSTCODE = re.compile(r"\b([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})\b")


# A /api/places hit: {label, kind, lat, lng, area, ward, precision_m}.
Hit = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resolved:
    text: str  # what was typed
    label: str  # canonical: "SE1 7PB", "Waterloo Station", "Lambeth"
    kind: str  # postcode|place|station|borough|ward
    lat: float
    lng: float
    precision_m: int


# -- pure helpers -----------------------------------------------------------------------


def normalise_name(text: str) -> str:
    """What names are matched on: "King's Cross St. Pancras" -> "kings cross st pancras"."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"\bsaint\b", "st", text)
    text = re.sub(r"\b(the|london borough of|royal borough of)\b", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def place_terms(kind: str, name: str, aliases: Sequence[str] = ()) -> list[str]:
    """Exact-match terms: the name, its aliases, and a station's name without "station"
    (a caller says "Waterloo"; a fire station keeps its "fire")."""
    terms = [normalise_name(name), *(normalise_name(a) for a in aliases)]
    first = terms[0]
    if kind == "station" and first.endswith(" station") and not first.endswith(" fire station"):
        terms.append(first.removesuffix(" station"))
    return list(dict.fromkeys(t for t in terms if t))


def every_word_matches(norm: str, terms: Sequence[str]) -> bool:
    """Whether each word typed (fillers aside) is a close spelling of a word of the place:
    "watreloo" is Waterloo, but "xyzzy street" is not Oxford Street."""
    words = {w for t in terms for w in t.split()}
    return all(
        any(difflib.SequenceMatcher(None, q, w).ratio() >= WORD_MATCH_RATIO for w in words)
        for q in norm.split()
        if len(q) >= 3 and q not in _FILLERS
    )


def postcode_precision(quality: int) -> int:
    return _QUALITY_PRECISION.get(quality, 500)


def _after(prefix: str) -> str:
    """The smallest string after every string starting with ``prefix`` (byte order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def postcode_prefixes(text: str) -> list[str]:
    """Canonical postcode prefixes that what was typed may be the start of, most specific
    first: "SE1 7" -> ["SE1 7"]; "se17" -> ["SE17 ", "SE1 7"]; "SE1" -> ["SE1 "]."""
    up = re.sub(r"\s+", " ", text.upper()).lstrip()
    if not _POSTCODE_START.match(up):
        return []
    if " " in up.rstrip() or up.endswith(" "):
        outward, _, inward = up.partition(" ")
        inward = inward.strip()
        if " " in inward or not is_outward(outward):
            return []
        if inward and not _INWARD_PREFIX.match(inward):
            return []
        return [f"{outward} {inward}"]
    out = []
    for k in (4, 3, 2):
        outward, rest = up[:k], up[k:]
        if len(outward) == k and is_outward(outward) and (not rest or _INWARD_PREFIX.match(rest)):
            out.append(f"{outward} {rest}")
    return out


def _wgs_distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[0] + b[0]) / 2)
    dy = (a[0] - b[0]) * 111_320.0
    dx = (a[1] - b[1]) * 111_320.0 * math.cos(lat)
    return math.hypot(dx, dy)


def address_line(label: str | None, reverse: dict[str, Any]) -> str:
    """ "SE1 7PB · Bishop's · Lambeth" (resolved from a label), "near SE1 7PB · Bishop's ·
    Lambeth" (coordinates: label None). Parts that repeat the label are left out."""
    parts: list[str] = []
    if label:
        parts.append(label)
    elif reverse.get("postcode"):
        parts.append(f"near {reverse['postcode']['postcode']}")
    for key in ("ward", "area"):
        value = reverse.get(key)
        name = value.get("name") if isinstance(value, dict) else None
        if name and name not in parts:
            parts.append(name)
    return " · ".join(parts)


# -- state helpers ----------------------------------------------------------------------


def _code_name(area: Area | None) -> dict[str, str] | None:
    return {"code": area.code, "name": area.name} if area is not None else None


def _wards(state: AppState) -> AreaSet | None:
    wards: AreaSet | None = getattr(state, "wards", None)
    return wards


def _areas_of(state: AppState, lat: float, lng: float) -> tuple[Area | None, Area | None]:
    wards = _wards(state)
    return state.areas.area_for(lat, lng), wards.area_for(lat, lng) if wards else None


def _hit(state: AppState, label: str, kind: str, lat: float, lng: float, precision: int) -> Hit:
    area, ward = _areas_of(state, lat, lng)
    return {
        "label": label,
        "kind": kind,
        "lat": lat,
        "lng": lng,
        "area": _code_name(area),
        "ward": _code_name(ward),
        "precision_m": precision,
    }


def _postcode_hit(state: AppState, row: asyncpg.Record) -> Hit:
    return _hit(
        state,
        row["postcode"],
        "postcode",
        row["lat"],
        row["lng"],
        postcode_precision(row["positional_quality"]),
    )


def _place_hit(state: AppState, row: asyncpg.Record) -> Hit:
    return _hit(state, row["name"], row["kind"], row["lat"], row["lng"], row["precision_m"])


@functools.cache
def _bng() -> Projector:
    return Projector(BNG_EPSG)


def _to_bng(state: AppState, lat: float, lng: float) -> tuple[float, float]:
    projector = state.projector if state.projector.epsg == BNG_EPSG else _bng()
    return projector.to_metres(lat, lng)


# -- type-ahead -------------------------------------------------------------------------


async def _postcode_rows(conn: asyncpg.Connection, text: str, limit: int) -> list[asyncpg.Record]:
    compact = compact_postcode(text)
    if not compact or len(compact) > 7 or not _POSTCODE_START.match(compact):
        return []
    full = canonical_postcode(compact)
    if full is not None:
        row = await repository.postcode(conn, full)
        if row is not None:
            return [row]
    rows: list[asyncpg.Record] = []
    for prefix in postcode_prefixes(text):
        rows += await repository.postcodes_in_range(conn, prefix, _after(prefix), limit - len(rows))
        if len(rows) >= limit:
            return rows
    if not rows:
        # An outward code still being typed ("SW1" of SW1A): the canonical form has no
        # space yet, so the typed letters are the prefix.
        rows = await repository.postcodes_in_range(conn, compact, _after(compact), limit)
    return rows


def _rank(rows: Sequence[asyncpg.Record], norm: str) -> list[asyncpg.Record]:
    wants = "station" if " station" in f" {norm}" else "ward" if " ward" in f" {norm}" else None

    def key(r: asyncpg.Record) -> tuple[Any, ...]:
        return (
            norm not in r["terms"],
            -round(float(r["score"]), 2),
            r["kind"] != wants,
            _KIND_RANK.get(r["kind"], 9),
            len(r["name"]),
            r["name"],
            r["key"],
        )

    return sorted(rows, key=key)


async def _name_rows(
    conn: asyncpg.Connection, norm: str, limit: int, min_score: float
) -> list[asyncpg.Record]:
    if len(norm) < 2:
        return []
    found = await repository.places_matching(conn, norm, limit, max(limit * 3, 30))
    return _rank([r for r in found if float(r["score"]) >= min_score], norm)


async def search(conn: asyncpg.Connection, state: AppState, q: str, limit: int = 10) -> list[Hit]:
    """Type-ahead: postcodes (full or partial, any case or spacing), then names."""
    rows = await _postcode_rows(conn, q, limit)
    hits = [_postcode_hit(state, r) for r in rows]
    if len(hits) < limit and not (len(rows) == 1 and canonical_postcode(q)):
        names = await _name_rows(conn, normalise_name(q), limit, TYPEAHEAD_MIN_SCORE)
        hits += [_place_hit(state, r) for r in names[: limit - len(hits)]]
    return hits


# -- resolution (intake) ----------------------------------------------------------------


def _resolved(text: str, hit: Hit) -> Resolved:
    return Resolved(text, hit["label"], hit["kind"], hit["lat"], hit["lng"], hit["precision_m"])


def _fmt(hits: Sequence[Hit]) -> str:
    """Labels, with the borough where a label repeats ("Village (Merton)")."""
    counts = Counter(h["label"] for h in hits)
    return ", ".join(
        f"{h['label']} ({h['area']['name']})"
        if counts[h["label"]] > 1 and h["area"]
        else h["label"]
        for h in hits
    )


async def _in_area_near(
    conn: asyncpg.Connection, state: AppState, lat: float, lng: float, n: int = 3
) -> list[Hit]:
    """The n postcodes nearest a point that lie in the service area (bounded KNN), or the
    nearest named places if the loaded postcodes near it are all outside."""
    e, no = _to_bng(state, lat, lng)
    out = []
    for row in await repository.nearest_postcodes(conn, e, no, 200):
        if state.areas.contains(row["lat"], row["lng"]):
            out.append(_postcode_hit(state, row))
            if len(out) == n:
                return out
    if out:
        return out
    rows = await repository.places_nearest(conn, lat, lng, ["borough", "station", "place"], 50)
    return [h for h in (_place_hit(state, r) for r in rows) if h["area"] is not None][:n]


async def _postcode_suggestions(
    conn: asyncpg.Connection, state: AppState, canonical: str, n: int = 5
) -> list[Hit]:
    """Units sharing the longest prefix, widening to the sector and then the district:
    "SE1 7ZZ" -> SE1 7ZL, then SE1 7AA, ..."""
    outward, _, inward = canonical.partition(" ")
    rows: list[asyncpg.Record] = []
    seen: set[str] = set()
    for prefix in (f"{outward} {inward[:2]}", f"{outward} {inward[:1]}", f"{outward} "):
        for r in await repository.postcodes_in_range(conn, prefix, _after(prefix), n):
            if r["postcode"] not in seen and len(rows) < n:
                seen.add(r["postcode"])
                rows.append(r)
        if len(rows) >= n:
            break
    return [_postcode_hit(state, r) for r in rows]


def _outside(field: str, label: str, near: list[Hit]) -> Invalid:
    where = f"; nearest in area: {_fmt(near)}" if near else ""
    return Invalid(field, f"{label} is outside the service area{where}", suggestions=near)


def _unresolved(field: str, text: str, why: str, suggestions: list[Hit]) -> Invalid:
    hint = f"; did you mean {_fmt(suggestions)}?" if suggestions else ""
    return Invalid(
        field,
        f"could not resolve {text.strip()!r}: {why}{hint}",
        suggestions=suggestions,
    )


async def _checked(
    conn: asyncpg.Connection, state: AppState, text: str, field: str, hit: Hit
) -> Resolved:
    if not state.areas.contains(hit["lat"], hit["lng"]):
        near = await _in_area_near(conn, state, hit["lat"], hit["lng"])
        raise _outside(field, hit["label"], near)
    return _resolved(text, hit)


async def resolve_address(
    conn: asyncpg.Connection, state: AppState, text: str, field: str = "location.address"
) -> Resolved:
    """A typed address as one point: a postcode (any spacing, or inside a longer text),
    else a named place (exact, alias, then close spelling). Raises Invalid(field, ...) with
    suggestions (also in ``extra["suggestions"]``, shaped like /api/places hits) when
    nothing matches well enough or the place is outside the service area."""
    if not text or not text.strip():
        raise Invalid(field, "an address is required")
    if len(text) > 200:
        raise Invalid(field, "at most 200 characters")
    up = text.upper()
    full = canonical_postcode(text)
    if full is None:
        m = _EMBEDDED_POSTCODE.search(re.sub(r"\s+", " ", up))
        full = f"{m[1]} {m[2]}" if m else None
    if full is not None:
        row = await repository.postcode(conn, full)
        if row is not None:
            return await _checked(conn, state, text, field, _postcode_hit(state, row))
        suggestions = await _postcode_suggestions(conn, state, full)
        if not suggestions:
            why = f"no postcode district {full.partition(' ')[0]} in the gazetteer"
        else:
            why = f"{full} is not a known postcode"
        raise _unresolved(field, text, why, suggestions)

    prefixes = postcode_prefixes(text)
    if prefixes and len(compact_postcode(text)) <= 7:
        # "SE1", "SE1 7": a postcode still being typed, not a name to guess from.
        rows = await _postcode_rows(conn, text, 5)
        if rows:
            suggestions = [_postcode_hit(state, r) for r in rows]
            raise _unresolved(field, text, "an incomplete postcode", suggestions)

    norm = normalise_name(text)
    rows = await _name_rows(conn, norm, 10, SUGGEST_MIN_SCORE)
    best, ambiguous = _pick(rows, norm)
    if best is None and not ambiguous:
        best, ambiguous = _pick(await repository.places_within_text(conn, norm), norm)
    if best is not None:
        return await _checked(conn, state, text, field, _place_hit(state, best))
    same_name = bool(ambiguous) and ("term" in ambiguous[0].keys() or norm in ambiguous[0]["terms"])
    if same_name:
        listed, why = ambiguous, "several places have this name"
    else:
        keys = {r["key"] for r in ambiguous}
        listed = (ambiguous + [r for r in rows if r["key"] not in keys])[:5]
        why = "not a known postcode or place"
    raise _unresolved(field, text, why, [_place_hit(state, r) for r in listed])


def _pick(
    rows: Sequence[asyncpg.Record], norm: str
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    """(the one place the text names, []), or (None, the equally good candidates when
    they are different places), or (None, []) when nothing matches well enough: a wrong
    point is worse than a question back to the handler."""
    if not rows:
        return None, []
    best = rows[0]
    contained = "term" in best.keys()  # a name found inside a longer text
    if contained:
        rows = sorted(rows, key=lambda r: (-len(r["term"]), _KIND_RANK.get(r["kind"], 9)))
        best = rows[0]
    exact = contained or norm in best["terms"]
    if not exact and (
        float(best["score"]) < RESOLVE_MIN_SCORE
        or len(norm) < 4
        or not every_word_matches(norm, best["terms"])
    ):
        return None, []
    ties = [best]
    for other in rows[1:]:
        if contained:
            same = len(other["term"]) == len(best["term"])
        elif exact:
            same = norm in other["terms"]
        else:
            same = float(other["score"]) >= float(best["score"]) - 0.05
        if not same:
            break
        if _KIND_RANK.get(other["kind"], 9) != _KIND_RANK.get(best["kind"], 9):
            continue  # kinds rank the tie: "Kings Cross" the station before the ward
        far = _wgs_distance_m((best["lat"], best["lng"]), (other["lat"], other["lng"]))
        if far > max(best["precision_m"], other["precision_m"], 500):
            ties.append(other)
    return (best, []) if len(ties) == 1 else (None, ties)


# -- reverse ----------------------------------------------------------------------------


async def reverse(
    conn: asyncpg.Connection, state: AppState, lat: float, lng: float
) -> dict[str, Any]:
    """Nearest postcode (within REVERSE_MAX_M), ward and borough of a point, and its line
    "near SE1 7PB · Bishop's · Lambeth"."""
    e, n = bng(state, lat, lng)
    rows = await repository.nearest_postcodes(conn, e, n, repository.NEAREST_POSTCODES)
    return reverse_from_rows(state, lat, lng, rows)


def bng(state: AppState, lat: float, lng: float) -> tuple[float, float]:
    """A valid point in British National Grid metres (the postcodes' index), or a 422."""
    try:
        validate_lat_lng(lat, lng)
    except ValueError as exc:
        raise Invalid("lat", str(exc)) from None
    return _to_bng(state, lat, lng)


def reverse_from_rows(
    state: AppState, lat: float, lng: float, rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """reverse() from the nearest postcodes (repository.NEAREST_POSTCODES_SQL), however read."""
    # Several postcodes often share one point (a block of flats): the first in postcode
    # order among the equally near, so the same point always reads the same.
    postcode = None
    if rows and min(float(r["distance_m"]) for r in rows) <= REVERSE_MAX_M:
        r = min(rows, key=lambda r: (round(float(r["distance_m"]), 3), r["postcode"]))
        postcode = {
            "postcode": r["postcode"],
            "distance_m": round(float(r["distance_m"]), 1),
            "lat": r["lat"],
            "lng": r["lng"],
        }
    area, ward = _areas_of(state, lat, lng)
    out: dict[str, Any] = {"postcode": postcode, "ward": _code_name(ward), "area": _code_name(area)}
    out["line"] = address_line(None, out)
    return out


# -- loading ----------------------------------------------------------------------------


@dataclass
class ImportSummary:
    file: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # a postcode listed again in the same file: the last line wins
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "skipped": dict(self.skipped),
        }


async def import_codepoint(
    conn: asyncpg.Connection,
    path: Path,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Load one Code-Point Open file (official headerless layout or with a header, plain or
    .gz): COPY into a staging table, then upsert. Idempotent: a re-import updates changed
    postcodes and adds new ones, never duplicates. Runs in the caller's transaction, so a
    bad line (CodePointError naming file and line) loads nothing of the file."""
    summary = ImportSummary(str(path))
    await repository.create_stage(conn)
    batches = read_batches(path, progress=progress)
    while True:
        item = await asyncio.to_thread(next, batches, None)
        if item is None:
            break
        records, stats = item
        summary.rows_read += stats.rows
        summary.skipped.update(stats.skipped)
        if records:
            await repository.stage(conn, records)
    counts = await repository.merge_stage(conn)
    summary.inserted, summary.updated = counts["inserted"], counts["updated"]
    summary.duplicates = counts["staged"] - counts["distinct_rows"]
    summary.unchanged = counts["distinct_rows"] - counts["inserted"] - counts["updated"]
    await conn.execute("DROP TABLE postcodes_stage")
    log.info("gazetteer.imported", **summary.as_dict())
    return summary


def _packaged(name: str) -> Any:
    return resources.files("cad.places") / "data" / name


def packaged_postcodes_version() -> str:
    return hashlib.sha256(_packaged("london_postcodes.csv.gz").read_bytes()).hexdigest()[:16]


def _representative(geom: Any) -> tuple[float, float]:
    c = geom.centroid
    p = c if geom.covers(c) else geom.representative_point()
    return round(p.y, 6), round(p.x, 6)


def _area_rows(
    areas: AreaSet, kind: str, source: str, wards: AreaSet | None
) -> list[tuple[Any, ...]]:
    projector = areas.projector
    rows = []
    for a in areas.areas:
        lat, lng = _representative(a.geometry)
        radius = math.sqrt(shapely.area(projector.project_geometry(a.geometry)) / math.pi)
        terms = place_terms(kind, a.name)
        area_code: str | None
        ward_code: str | None
        if kind == "ward":
            area_code, ward_code = getattr(a, "parent", None), a.code
        else:
            ward = wards.area_for(lat, lng) if wards is not None else None
            area_code, ward_code = a.code, ward.code if ward else None
        rows.append(
            (
                f"{kind}:{a.code}",
                kind,
                a.name,
                terms,
                " | ".join(terms),
                lat,
                lng,
                area_code,
                ward_code,
                int(round(radius, -1)),
                source,
            )
        )
    return rows


def place_rows(areas: AreaSet, wards: AreaSet | None) -> list[tuple[Any, ...]]:
    """Rows for the places table: places.json, then the areas' boroughs and wards."""
    doc = json.loads(_packaged("places.json").read_text(encoding="utf-8"))
    rows: list[tuple[Any, ...]] = []
    for p in doc["places"]:
        lat, lng = float(p["lat"]), float(p["lng"])
        terms = place_terms(p["kind"], p["name"], p.get("aliases", ()))
        area = areas.area_for(lat, lng)
        ward = wards.area_for(lat, lng) if wards is not None else None
        rows.append(
            (
                f"{p['kind']}:{terms[0]}",
                p["kind"],
                p["name"],
                terms,
                " | ".join(terms),
                lat,
                lng,
                area.code if area else None,
                ward.code if ward else None,
                int(p["precision_m"]),
                "places.json",
            )
        )
    rows += _area_rows(areas, "borough", "areas", wards)
    if wards is not None:
        rows += _area_rows(wards, "ward", "wards", None)
    return rows


async def load_places(conn: asyncpg.Connection, areas: AreaSet, wards: AreaSet | None) -> int:
    """(Re)load the named places: places.json, and boroughs and wards from the areas in
    use (call again after the areas change)."""
    rows = await asyncio.to_thread(place_rows, areas, wards)
    await repository.replace_places(conn, ["places.json", "areas", "wards"], rows)
    return len(rows)


async def ensure_gazetteer(
    conn: asyncpg.Connection,
    areas: AreaSet,
    wards: AreaSet | None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Make sure the packaged London postcodes (if absent or an older copy) and the named
    places are loaded. Cheap when they are: one version check and the places reload."""
    version = packaged_postcodes_version()
    summary: ImportSummary | None = None
    stored = await repository.source_version(conn, PACKAGED_SOURCE)
    if stored != version or await repository.postcode_count(conn) == 0:
        with resources.as_file(_packaged("london_postcodes.csv.gz")) as path:
            summary = await import_codepoint(conn, path, progress)
        await repository.record_source(
            conn, PACKAGED_SOURCE, version, summary.inserted + summary.updated + summary.unchanged
        )
    places = await load_places(conn, areas, wards)
    return {
        "postcodes": summary.as_dict() if summary else None,
        "postcode_count": await repository.postcode_count(conn),
        "places": places,
    }
