"""Retrieval: search over the record, and the history shown while a call is taken."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from cad.errors import Invalid
from cad.places.codepoint import canonical_postcode, compact_postcode
from cad.places.service import postcode_prefixes
from cad.search import repository as repo
from cad.search.repository import Filters
from cad.search.schemas import decode_cursor, encode_cursor, parse_reference
from cad.state import AppState
from gis.areas import Area, AreaSet
from gis.projection import nearby_metres

LONDON = ZoneInfo("Europe/London")
STATUSES = ("pending", "dispatched", "on_scene", "closed")
HISTORY_ITEMS = 10
SNIPPET_CHARS = 200


# -- parameters -------------------------------------------------------------------------


def _area(areas: AreaSet | None, value: str, field: str) -> str:
    """An area by code or (case-insensitive) name; an ambiguous name names the codes."""
    if areas is None:
        raise Invalid(field, "no areas of this level are loaded")
    if (hit := areas.by_code(value)) is not None:
        return hit.code
    key = value.strip().casefold()
    named: list[Area] = [a for a in areas.areas if a.name.casefold() == key]
    if len(named) == 1:
        return named[0].code
    if named:
        codes = ", ".join(a.code for a in named)
        raise Invalid(field, f"{value!r} names several areas; use a code: {codes}")
    raise Invalid(field, f"unknown area {value!r}")


def _postcode_filter(text: str) -> tuple[str | None, tuple[str, str] | None]:
    """A full postcode (equality) or a district / sector ("SE1", "SE1 7": a key range)."""
    full = canonical_postcode(text)
    if full is not None:
        return full, None
    prefixes = postcode_prefixes(text)
    if not prefixes or len(compact_postcode(text)) > 7:
        raise Invalid("postcode", f"{text!r} is not a postcode, district or sector")
    lo = prefixes[0]
    return None, (lo, lo[:-1] + chr(ord(lo[-1]) + 1))


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Invalid(field, "must include a timezone (e.g. 2026-11-26T10:00:00Z)")
    return value


async def build_filters(
    conn: asyncpg.Connection,
    state: AppState,
    *,
    text: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    grades: list[str] | None,
    types: list[str] | None,
    status: list[str] | None,
    area: str | None,
    ward: str | None,
    unit: str | None,
    phone: str | None,
    postcode: str | None,
    near: tuple[float, float, float] | None,
) -> Filters:
    f = Filters(text=text)
    f.created_from = _aware(created_from, "from")
    f.created_to = _aware(created_to, "to")
    if f.created_from and f.created_to and f.created_to <= f.created_from:
        raise Invalid("to", "must be after from")
    if grades:
        unknown = [g for g in grades if g not in state.scheme]
        if unknown:
            raise Invalid("grade", f"unknown grade {unknown[0]!r}; one of {sorted(state.scheme)}")
        f.grades = grades
    if types:
        unknown = [t for t in types if t not in state.catalogue]
        if unknown:
            raise Invalid("type", f"unknown incident type {unknown[0]!r}")
        f.types = types
    if status:
        if status == ["open"]:
            f.open_only = True
        else:
            bad = [s for s in status if s not in STATUSES]
            if bad:
                raise Invalid("status", f"unknown status {bad[0]!r}; open or one of {STATUSES}")
            f.statuses = status
    if area:
        f.area_code = _area(state.areas, area, "area")
    if ward:
        f.ward_code = _area(state.wards, ward, "ward")
    if unit:
        f.unit_id = await repo.unit_id_by_callsign(conn, unit.strip())
        if f.unit_id is None:
            raise Invalid("unit", f"no unit with callsign {unit!r}")
    if phone is not None:
        if sum(ch.isdigit() for ch in phone) < 3:
            raise Invalid("phone", "needs at least 3 digits")
        f.phone = phone
    if postcode:
        f.postcode, f.postcode_range = _postcode_filter(postcode)
    if near is not None:
        lat, lng, radius = near
        m_lng = 111_195.0 * math.cos(math.radians(lat))
        dlat = radius / 111_000
        dlng = radius / max(m_lng * 0.998, 1.0)
        f.near = (lat, lng, radius, dlat, dlng, m_lng)
    return f


# -- search -----------------------------------------------------------------------------


def _fingerprint(f: Filters, sort: str) -> str:
    """Which query a cursor belongs to: a cursor used with other filters is refused."""
    return hashlib.sha256(repr((sorted(vars(f).items()), sort)).encode()).hexdigest()[:12]


def snippet_parts(headline: str | None, description: str) -> list[dict[str, Any]]:
    """PostgreSQL's headline (\\x02 … \\x03 around matches) as plain-text parts: markup in
    what callers said can never become markup in a console."""
    if headline is None:
        text = (
            description if len(description) <= SNIPPET_CHARS else description[:SNIPPET_CHARS] + "…"
        )
        return [{"text": text, "match": False}] if text else []
    parts: list[dict[str, Any]] = []
    for i, chunk in enumerate(headline.split("\x02")):
        hit, _, rest = chunk.partition("\x03") if i else ("", "", chunk)
        if hit:
            parts.append({"text": hit, "match": True})
        if rest:
            parts.append({"text": rest, "match": False})
    return parts


def _result(
    row: asyncpg.Record, state: AppState, rank: float | None, matched: str
) -> dict[str, Any]:
    itype = state.catalogue.get(row["type_code"])
    grade = state.scheme.get(row["grade"])
    area = state.areas.by_code(row["area_code"]) if row["area_code"] else None
    ward = (
        state.wards.by_code(row["ward_code"])
        if row["ward_code"] and state.wards is not None
        else None
    )
    return {
        "id": row["id"],
        "ref": row["ref"],
        "type_code": row["type_code"],
        "type_name": itype.name if itype else row["type_code"],
        "grade": row["grade"],
        "grade_name": grade.name if grade else row["grade"],
        "status": row["status"],
        "result_code": row["result_code"],
        "area": area.name if area else row["area_code"],
        "ward": ward.name if ward else row["ward_code"],
        "postcode": row["postcode"],
        "address_line": row["address_line"],
        "lat": row["lat"],
        "lng": row["lng"],
        "created_at": row["created_at"].isoformat(),
        "closed_at": row["closed_at"].isoformat() if row["closed_at"] else None,
        "call_count": row["call_count"],
        "units": sorted(row["units"]),
        "matched": matched,
        "rank": round(rank, 4) if rank is not None else None,
        "snippet": snippet_parts(row["headline"], row["description"]),
    }


async def search(
    conn: asyncpg.Connection,
    state: AppState,
    q: str | None,
    f: Filters,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    q = q.strip() if q else None
    reference = None
    if q and cursor is None and (ref := parse_reference(q)) is not None:
        # A reference is unambiguous: that incident, whatever the other filters say.
        found = await repo.incident_by_ref(conn, ref)
        if found is not None:
            rows = await repo.results(conn, [found], None)
            reference = {"id": found, "ref": ref}
            return {
                "results": [_result(rows[0], state, None, "reference")],
                "next_cursor": None,
                "reference": reference,
            }
    # One round trip: plan settings, the newest id (the first page's pin) and whether the
    # text leaves any searchable word.
    newest, terms = await repo.begin_search(conn, q or "")
    if q:
        if not terms:
            raise Invalid("q", "no searchable words (only very common words like 'the')")
        f.text = q
    sort = sort or ("relevance" if f.text else "recent")
    if sort == "relevance" and f.text is None:
        raise Invalid("sort", "relevance needs a text query (q)")
    fingerprint = _fingerprint(f, sort)
    max_id, after_r, after_t = newest, None, None
    if cursor is not None:
        max_id, after_r, after_t = _resume(decode_cursor(cursor), fingerprint, sort)
    if sort == "relevance":
        page = await repo.page_relevance(
            conn, f, max_id, state.settings.search_candidates, after_r, limit + 1, datetime.now(UTC)
        )
    else:
        page = await repo.page_recent(conn, f, max_id, after_t, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    by_id = {r["id"]: r for r in await repo.results(conn, [r["id"] for r in page], f.text)}
    matched = "text" if f.text else "filter"
    results = [_result(by_id[r["id"]], state, r["rank"], matched) for r in page]
    next_cursor = None
    if more and page:
        last = page[-1]
        next_cursor = encode_cursor(
            {
                "f": fingerprint,
                "m": max_id,
                "i": last["id"],
                "c": last["created_at"].isoformat(),
                "r": last["rank"],
            }
        )
    return {"results": results, "next_cursor": next_cursor, "reference": reference}


def _resume(
    c: dict[str, Any], fingerprint: str, sort: str
) -> tuple[int, tuple[float, int] | None, tuple[datetime, int] | None]:
    """Where a cursor's page ends: the newest id pinned, and the last (rank | time, id)."""
    if c.get("f") != fingerprint:
        raise Invalid("cursor", "belongs to another search; start again without it")
    try:
        max_id, last_id = int(c["m"]), int(c["i"])
        if not (0 <= max_id < 2**62 and 0 <= last_id < 2**62):
            raise ValueError("id out of range")
        if sort == "relevance":
            rank = float(c["r"])
            if not math.isfinite(rank):
                raise ValueError("rank not finite")
            return max_id, (rank, last_id), None
        at = datetime.fromisoformat(c["c"])
        if at.tzinfo is None:
            raise ValueError("naive time")
        return max_id, None, (at, last_id)
    except (KeyError, TypeError, ValueError, OverflowError):
        # Right fingerprint, edited inside: still not a cursor this search returned.
        raise Invalid("cursor", "not a cursor this search returned") from None


# -- history ----------------------------------------------------------------------------


def _day(at: datetime) -> str:
    local = at.astimezone(LONDON)
    return f"{local.day} {local.strftime('%b')}"


def _type_name(state: AppState, code: str | None) -> str:
    itype = state.catalogue.get(code) if code else None
    return itype.name if itype else (code or "call")


async def location_history(
    conn: asyncpg.Connection,
    state: AppState,
    lat: float,
    lng: float,
    until: datetime,
    exclude_id: int | None = None,
) -> dict[str, Any]:
    s = state.settings
    radius = s.history_radius_m
    since = until - timedelta(days=s.history_location_days)
    dlat = radius / 111_000
    dlng = radius / (111_000 * max(math.cos(math.radians(lat)), 0.1))
    rows = await repo.incidents_near(conn, lat, lng, dlat, dlng, since, until, exclude_id)
    near = []
    for r in rows:
        d = nearby_metres(lat, lng, r["lat"], r["lng"])
        if d <= radius:
            near.append((r, d))
    items = [
        {
            "id": r["id"],
            "ref": r["ref"],
            "type_code": r["type_code"],
            "type_name": _type_name(state, r["type_code"]),
            "grade": r["grade"],
            "status": r["status"],
            "outcome": r["result_code"] or r["status"],
            "created_at": r["created_at"].isoformat(),
            "distance_m": round(d),
        }
        for r, d in near[:HISTORY_ITEMS]
    ]
    return {
        "count": len(near),
        "capped": len(rows) >= repo.HISTORY_CAP,
        "radius_m": radius,
        "days": s.history_location_days,
        "items": items,
        "last": near[0][0] if near else None,
    }


async def caller_history(
    conn: asyncpg.Connection,
    state: AppState,
    phone: str,
    until: datetime,
    exclude_incident_id: int | None = None,
) -> dict[str, Any] | None:
    if sum(ch.isdigit() for ch in phone) < 6:
        return None
    days = state.settings.history_phone_days
    since = until - timedelta(days=days)
    rows = await repo.calls_from_phone(conn, phone, since, until, exclude_incident_id)
    items = [
        {
            "call_id": r["call_id"],
            "incident_id": r["incident_id"],
            "ref": r["ref"],
            "type_code": r["type_code"],
            "type_name": _type_name(state, r["type_code"]),
            "grade": r["grade"],
            "outcome": (r["result_code"] or r["status"]) if r["incident_id"] else r["call_outcome"],
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows[:HISTORY_ITEMS]
    ]
    last_name = next((r["caller_name"] for r in rows if r["caller_name"]), None)
    return {
        "count": len(rows),
        "capped": len(rows) >= repo.HISTORY_CAP,
        "days": days,
        "last_name": last_name,
        "items": items,
        "last": rows[0] if rows else None,
    }


def _plural(n: int, one: str, many: str, capped: bool) -> str:
    return f"{n}{'+' if capped else ''} {one if n == 1 else many}"


def history_lines(
    state: AppState, location: dict[str, Any] | None, caller: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """ "3 previous incidents here; last: Domestic incident, 12 Nov" and the caller's."""
    line = caller_line = None
    if location and location["count"]:
        last = location["last"]
        line = (
            f"{_plural(location['count'], 'previous incident', 'previous incidents', location['capped'])}"
            f" here; last: {_type_name(state, last['type_code'])}, {_day(last['created_at'])}"
        )
    if caller and caller["count"]:
        last = caller["last"]
        caller_line = (
            f"{_plural(caller['count'], 'call', 'calls', caller['capped'])} from this phone in "
            f"{caller['days']} days; last: {_type_name(state, last['type_code'])}, "
            f"{_day(last['created_at'])}"
        )
    return line, caller_line


def _public(part: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if part is None else {k: v for k, v in part.items() if k != "last"}


async def history(
    conn: asyncpg.Connection,
    state: AppState,
    *,
    lat: float | None,
    lng: float | None,
    phone: str | None,
    until: datetime | None = None,
    exclude_incident_id: int | None = None,
) -> dict[str, Any]:
    """Previous incidents at a place and calls from a phone, up to ``until`` (now)."""
    until = until or datetime.now(UTC)
    location = (
        await location_history(conn, state, lat, lng, until, exclude_incident_id)
        if lat is not None and lng is not None
        else None
    )
    caller = await caller_history(conn, state, phone, until, exclude_incident_id) if phone else None
    line, caller_line = history_lines(state, location, caller)
    return {
        "location": _public(location),
        "caller": _public(caller),
        "line": line,
        "caller_line": caller_line,
    }


async def incident_history(
    conn: asyncpg.Connection,
    state: AppState,
    incident: asyncpg.Record | dict[str, Any],
    calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """History as it stood when the incident was created (the incident itself left out).
    ``calls``: the incident's calls when the caller has read them already."""
    created = incident["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    if calls is None:
        phone = await repo.first_caller_phone(conn, incident["id"])
    else:
        phone = next(
            (
                c["caller_phone"]
                for c in calls
                if any(ch.isdigit() for ch in c["caller_phone"] or "")
            ),
            None,
        )
    return await history(
        conn,
        state,
        lat=incident["lat"],
        lng=incident["lng"],
        phone=phone,
        until=created,
        exclude_incident_id=incident["id"],
    )
