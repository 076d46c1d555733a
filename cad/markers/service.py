"""Warning markers: create, edit (audited), match to a call's place and phone, and the
snapshot recorded on an incident so later edits never rewrite what was shown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from cad.errors import Invalid, NotFound
from cad.events.writer import append_event
from cad.markers import repository as repo
from cad.markers.catalogue import SEVERITIES, MarkerCategory
from cad.markers.schemas import MarkerIn, MarkerPatch
from cad.places import repository as places_repo
from cad.places.codepoint import canonical_postcode
from cad.state import AppState
from gis.projection import nearby_metres

MAX_RADIUS_M = 1000.0
_EDITABLE = ("category", "text", "radius_m", "review_at", "expires_at")


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime | date) else v


def marker_out(
    row: Mapping[str, Any],
    categories: dict[str, MarkerCategory],
    now: datetime | None = None,
    match: str | None = None,
) -> dict[str, Any]:
    r = dict(row)
    now = now or datetime.now(UTC)
    cat = categories.get(r["category"])
    out = {
        "id": r["id"],
        "category": r["category"],
        "category_name": cat.name if cat else r["category"],
        "severity": cat.severity if cat else "high",
        "officer_safety": cat.officer_safety if cat else True,
        "text": r["text"],
        "lat": r["lat"],
        "lng": r["lng"],
        "radius_m": r["radius_m"],
        "postcode": r["postcode"],
        "phone": r["phone"],
        "author": r["author"],
        "created_at": _iso(r["created_at"]),
        "updated_at": _iso(r["updated_at"]),
        "updated_by": r["updated_by"],
        "review_at": _iso(r["review_at"]),
        "expires_at": _iso(r["expires_at"]),
        "active": r["expires_at"] is None or r["expires_at"] > now,
    }
    if match is not None:
        out["match"] = match
    return out


def _category(state: AppState, code: str) -> str:
    if code not in state.marker_categories:
        known = ", ".join(sorted(state.marker_categories))
        raise Invalid("category", f"unknown category {code!r}; one of: {known}")
    return code


def _check_dates(review_at: date | None, expires_at: datetime | None, now: datetime) -> None:
    if review_at is not None and review_at < now.date():
        raise Invalid("review_at", "is in the past")
    if expires_at is not None and expires_at <= now:
        raise Invalid("expires_at", "is in the past")


async def create(
    conn: asyncpg.Connection, state: AppState, body: MarkerIn, actor: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    _category(state, body.category)
    _check_dates(body.review_at, body.expires_at, now)
    values: dict[str, Any] = body.model_dump()
    if body.lat is not None and body.lng is not None:
        if not state.areas.contains(body.lat, body.lng):
            raise Invalid("lat", f"({body.lat:.5f}, {body.lng:.5f}) is outside the service area")
    if body.postcode is not None:
        canonical = canonical_postcode(body.postcode)
        if canonical is None:
            raise Invalid("postcode", f"{body.postcode!r} is not a full postcode")
        if await places_repo.postcode(conn, canonical) is None:
            raise Invalid("postcode", f"{canonical} is not in the gazetteer")
        values["postcode"] = canonical
    if body.phone is not None and sum(ch.isdigit() for ch in body.phone) < 6:
        raise Invalid("phone", "needs at least 6 digits")
    values["author"] = actor
    row = await repo.insert(conn, values)
    out = marker_out(row, state.marker_categories, now)
    await append_event(conn, "marker.created", actor, data={"marker_id": row["id"], "marker": out})
    return out


async def get(conn: asyncpg.Connection, state: AppState, marker_id: int) -> dict[str, Any]:
    row = await repo.get(conn, marker_id)
    if row is None:
        raise NotFound(f"marker {marker_id} not found")
    return marker_out(row, state.marker_categories)


async def update(
    conn: asyncpg.Connection, state: AppState, marker_id: int, patch: MarkerPatch, actor: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    row = await repo.get(conn, marker_id, for_update=True)
    if row is None:
        raise NotFound(f"marker {marker_id} not found")
    new = {k: row[k] for k in _EDITABLE}
    for name in patch.model_fields_set:
        new[name] = getattr(patch, name)
    if "category" in patch.model_fields_set:
        _category(state, new["category"])
    if "radius_m" in patch.model_fields_set and row["lat"] is None:
        raise Invalid("radius_m", "only a marker on a point has a radius")
    _check_dates(
        patch.review_at if "review_at" in patch.model_fields_set else None,
        patch.expires_at if "expires_at" in patch.model_fields_set else None,
        now,
    )
    changes = {k: [_iso(row[k]), _iso(new[k])] for k in _EDITABLE if row[k] != new[k]}
    if not changes:
        return marker_out(row, state.marker_categories, now)
    updated = await repo.update(
        conn,
        marker_id,
        new["category"],
        new["text"],
        new["radius_m"],
        new["review_at"],
        new["expires_at"],
        actor,
    )
    await append_event(
        conn, "marker.updated", actor, data={"marker_id": marker_id, "changes": changes}
    )
    return marker_out(updated, state.marker_categories, now)


async def search(
    conn: asyncpg.Connection,
    state: AppState,
    *,
    category: str | None = None,
    postcode: str | None = None,
    phone: str | None = None,
    near: tuple[float, float, float] | None = None,
    include_expired: bool = False,
    limit: int = 100,
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    if postcode is not None:
        canonical = canonical_postcode(postcode)
        if canonical is None:
            raise Invalid("postcode", f"{postcode!r} is not a full postcode")
        postcode = canonical
    box = None
    if near is not None:
        lat, lng, r = near
        dlat, dlng = _box(lat, r + MAX_RADIUS_M)
        box = (lat - dlat, lng - dlng, lat + dlat, lng + dlng)
    rows = await repo.search(
        conn,
        category=category,
        postcode=postcode,
        phone=phone,
        box=box,
        include_expired=include_expired,
        now=now,
        limit=limit,
    )
    if near is not None:
        lat, lng, r = near
        rows = [m for m in rows if nearby_metres(lat, lng, m["lat"], m["lng"]) <= r + m["radius_m"]]
    return [marker_out(m, state.marker_categories, now) for m in rows]


def _box(lat: float, metres: float) -> tuple[float, float]:
    return metres / 111_000, metres / (111_000 * max(math.cos(math.radians(lat)), 0.1))


def _severity_key(m: dict[str, Any]) -> tuple[int, int]:
    return (SEVERITIES.index(m["severity"]) if m["severity"] in SEVERITIES else 0, m["id"])


async def matching(
    conn: asyncpg.Connection,
    state: AppState,
    *,
    lat: float | None,
    lng: float | None,
    postcode: str | None,
    phone: str | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Active markers that apply to a call: its point inside a marker's circle, its
    postcode, or its caller's phone. Most severe first."""
    now = now or datetime.now(UTC)
    dlat, dlng = search_box(lat)
    rows = await repo.matching(conn, lat, lng, postcode, phone, now, dlat, dlng)
    return matched(state, rows, lat=lat, lng=lng, postcode=postcode, now=now)


def search_box(lat: float | None) -> tuple[float, float]:
    """The half-sides (degrees) of the box that holds every circle a point can be in."""
    return _box(lat if lat is not None else 51.5, MAX_RADIUS_M)


def matched(
    state: AppState,
    rows: Sequence[Mapping[str, Any]],
    *,
    lat: float | None,
    lng: float | None,
    postcode: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Of the candidate rows (repository.MATCH, or intake's one read), those that apply:
    the exact circle, this postcode (a candidate may carry a neighbour's), this phone."""
    found = []
    for m in rows:
        how = None
        if m["phone_key"] is not None:
            how = "phone" if m["call_phone_key"] and m["phone_key"] == m["call_phone_key"] else None
        elif m["postcode"] is not None:
            how = "postcode" if m["postcode"] == postcode else None
        elif lat is not None and lng is not None:
            d = nearby_metres(lat, lng, m["lat"], m["lng"])
            how = "location" if d <= m["radius_m"] else None
        if how is not None:
            found.append(marker_out(m, state.marker_categories, now, match=how))
    found.sort(key=_severity_key)
    return found


async def record_on_incident(
    conn: asyncpg.Connection,
    incident_id: int,
    markers: list[dict[str, Any]],
    actor: str,
    reason: str,
    ref: str,
) -> None:
    """The markers shown, as they were: an event, so a later edit never rewrites it."""
    if markers:
        await append_event(
            conn,
            "incident.markers",
            actor,
            incident_id=incident_id,
            data=recorded(ref, reason, markers),
        )


def recorded(ref: str, reason: str, markers: list[dict[str, Any]]) -> dict[str, Any]:
    """The incident.markers event's data."""
    return {"ref": ref, "reason": reason, "markers": markers}


def latest_recorded(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every marker in a run of incident.markers data, each as last recorded; most
    severe first."""
    latest: dict[int, dict[str, Any]] = {}
    for data in snapshots:
        for m in data.get("markers", []):
            latest[m["id"]] = m
    return sorted(latest.values(), key=_severity_key)


async def for_incident(conn: asyncpg.Connection, incident_id: int) -> list[dict[str, Any]]:
    """Every marker recorded on an incident, as last recorded."""
    return latest_recorded(await repo.snapshots_for_incident(conn, incident_id))


def from_timeline(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same, from a timeline already read."""
    return latest_recorded([e["data"] for e in timeline if e["type"] == "incident.markers"])
