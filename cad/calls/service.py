"""Call intake: validate, locate, grade, find likely duplicates, record.

One transaction writes the incident (or the link), the call and their events; the 201
goes out only after it commits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from cad.calls.schemas import CallIn, GradePreviewIn, Location
from cad.db.group_commit import GroupCommit
from cad.errors import Conflict, Invalid
from cad.events.writer import EVENTS_LOCK_KEY, append_event
from cad.grading import (
    GradeDecision,
    IncidentType,
    duplicate_score,
    grade_call,
    related_types,
    target_at,
)
from cad.http import JSON
from cad.idempotency import service as idempotency
from cad.incidents import repository as incidents_repo
from cad.incidents.service import get_or_404, incident_out, local_day, ref_suffix
from cad.markers import repository as markers_repo
from cad.markers import service as markers_service
from cad.places import service as places
from cad.search import service as search_service
from cad.state import AppState
from gis.projection import nearby_metres

log = structlog.get_logger(__name__)

DUPLICATE_RADIUS_M = 500.0
DUPLICATE_WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class Located:
    """Where a call is: the point, what the handler typed and what it resolved to, and
    the readable line ("SE1 7PB · Bishop's · Lambeth") every console shows."""

    lat: float
    lng: float
    address: str | None
    label: str | None
    precision_m: int | None
    area_code: str | None
    ward_code: str | None
    line: str
    near: dict[str, Any]
    # The resolved postcode, else the nearest one (markers and search key on it).
    postcode: str | None = None


@dataclass(frozen=True, slots=True)
class Spot:
    """A call's point inside the service area, before its surroundings are read."""

    lat: float
    lng: float
    address: str | None
    label: str | None = None
    precision_m: int | None = None
    postcode: str | None = None  # the address resolved to this postcode


async def locate(conn: asyncpg.Connection, state: AppState, location: Location) -> Located:
    """The call's place inside the service area, or a 422 naming the field (and, for an
    address, the nearest suggestions). Addresses go through the gazetteer."""
    spot = await find_spot(conn, state, location)
    return located(state, spot, await places.reverse(conn, state, spot.lat, spot.lng))


async def find_spot(conn: asyncpg.Connection, state: AppState, location: Location) -> Spot:
    spot = point_spot(state, location)
    if spot is not None:
        return spot
    assert location.address is not None
    resolved = await places.resolve_address(conn, state, location.address)
    return Spot(
        resolved.lat,
        resolved.lng,
        location.address,
        resolved.label,
        resolved.precision_m,
        resolved.label if resolved.kind == "postcode" else None,
    )


def point_spot(state: AppState, location: Location) -> Spot | None:
    """The spot of a location given as a point (no database needed), or None for an
    address, which the gazetteer resolves (find_spot)."""
    if location.lat is None or location.lng is None:
        return None
    lat, lng = location.lat, location.lng
    if not state.areas.contains(lat, lng):
        raise Invalid("location", f"({lat:.5f}, {lng:.5f}) is outside the service area")
    return Spot(lat, lng, location.address)


def located(state: AppState, spot: Spot, near: dict[str, Any]) -> Located:
    """The spot with what surrounds it (places.reverse's answer)."""
    area = state.areas.area_for(spot.lat, spot.lng)
    ward = state.wards.area_for(spot.lat, spot.lng) if state.wards is not None else None
    postcode = spot.postcode
    if postcode is None and near.get("postcode"):
        postcode = near["postcode"]["postcode"]
    return Located(
        lat=spot.lat,
        lng=spot.lng,
        address=spot.address,
        label=spot.label,
        precision_m=spot.precision_m,
        area_code=area.code if area else None,
        ward_code=ward.code if ward else None,
        line=places.address_line(spot.label, near),
        near=near,
        postcode=postcode,
    )


def place_text(where: Located) -> str:
    """The words that find a place, each once: the line (which begins with the resolved
    label) and what was typed when the line does not already hold it. A word said three
    times would outrank the incident's own type."""
    parts = [where.line]
    if where.address and where.address.casefold() not in where.line.casefold():
        parts.append(where.address)
    return " ".join(p for p in parts if p)


def located_at_incident(incident: asyncpg.Record) -> Located:
    """A linked call with no location of its own takes its incident's place."""
    return Located(
        lat=incident["lat"],
        lng=incident["lng"],
        address=incident["address"],
        label=incident["location_label"],
        precision_m=incident["precision_m"],
        area_code=incident["area_code"],
        ward_code=incident["ward_code"],
        line=incident["address_line"] or "",
        near={},
        postcode=incident["postcode"],
    )


def known_type(state: AppState, type_code: str) -> IncidentType:
    """The catalogue's incident type, or the 422 naming the field."""
    itype = state.catalogue.get(type_code)
    if itype is None:
        raise Invalid(
            "incident_type", f"unknown incident type {type_code!r}; see GET /api/incident-types"
        )
    return itype


def decide_grade(
    state: AppState,
    type_code: str,
    risk: dict[str, Any],
    markers: list[dict[str, Any]] | None = None,
) -> GradeDecision:
    itype = known_type(state, type_code)
    named = {m["category"]: m["category_name"] for m in markers or []}
    return grade_call(itype, risk, state.rules, state.scheme, named)


async def preview(
    conn: asyncpg.Connection, state: AppState, body: GradePreviewIn
) -> dict[str, Any]:
    """The grade a call would get, with what the handler should see before submitting:
    likely duplicates, the place's and the caller's history, and warning markers."""
    if body.incident_type is not None:
        known_type(state, body.incident_type)
    phone = body.caller.phone if body.caller is not None else ""
    where = await locate(conn, state, body.location) if body.location is not None else None
    markers = await markers_service.matching(
        conn,
        state,
        lat=where.lat if where else None,
        lng=where.lng if where else None,
        postcode=where.postcode if where else None,
        phone=phone or None,
    )
    out: dict[str, Any] = {
        "grade": None,
        "grade_name": None,
        "rule": None,
        "reason": None,
        "target_s": None,
        "auto_dispatch": None,
        "markers": markers,
    }
    if body.incident_type is not None:
        decision = decide_grade(state, body.incident_type, body.risk.model_dump(), markers)
        grade = state.scheme[decision.grade]
        out.update(
            grade=decision.grade,
            grade_name=grade.name,
            rule=decision.rule_id,
            reason=decision.reason,
            target_s=grade.target_s,
            auto_dispatch=state.auto_dispatches(decision.grade),
        )
    if where is not None:
        area = state.areas.by_code(where.area_code) if where.area_code else None
        out.update(
            lat=where.lat,
            lng=where.lng,
            area=area.name if area else None,
            location_label=where.label,
            precision_m=where.precision_m,
            address_line=where.line,
            postcode=where.postcode,
        )
        out["possible_duplicates"] = await possible_duplicates(
            conn, state, where.lat, where.lng, body.incident_type or "", phone, datetime.now(UTC)
        )
    out["history"] = await search_service.history(
        conn,
        state,
        lat=where.lat if where else None,
        lng=where.lng if where else None,
        phone=phone or None,
    )
    return out


async def possible_duplicates(
    conn: asyncpg.Connection,
    state: AppState,
    lat: float,
    lng: float,
    type_code: str,
    phone: str,
    now: datetime,
) -> list[dict[str, Any]]:
    dlat, dlng, since = _duplicate_window(lat, now)
    rows = await incidents_repo.nearby_open_incidents(conn, lat, lng, dlat, dlng, since, phone)
    return scored_duplicates(state, rows, lat, lng, type_code, now)


def _duplicate_window(lat: float, now: datetime) -> tuple[float, float, datetime]:
    dlat = DUPLICATE_RADIUS_M / 111_000
    dlng = DUPLICATE_RADIUS_M / (111_000 * max(math.cos(math.radians(lat)), 0.1))
    return dlat, dlng, now - timedelta(seconds=DUPLICATE_WINDOW_S)


def scored_duplicates(
    state: AppState,
    rows: Sequence[Sequence[Any]],
    lat: float,
    lng: float,
    type_code: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """The likely duplicates among open incidents near and recent, best first. Every
    candidate is scored; only the five shown are described (in a busy hour a call has
    dozens of candidates). ``rows``: the duplicate search's, in DUPLICATE_FIELDS order
    (asyncpg records or the shared read's tuples, taken as they come)."""
    scored = []
    related_to: dict[str, bool] = {}  # candidates share a few dozen types at most
    for row in rows:
        other = row[_TYPE]
        related = related_to.get(other)
        if related is None:
            related = related_to[other] = related_types(other, type_code, state.catalogue)
        distance = nearby_metres(lat, lng, row[_LAT], row[_LNG])
        age = max(0.0, (now - row[_CREATED]).total_seconds())
        score = duplicate_score(
            distance,
            age,
            same_type=other == type_code,
            related=related,
            same_phone=row[_SAME_PHONE],
            max_distance_m=DUPLICATE_RADIUS_M,
            max_age_s=DUPLICATE_WINDOW_S,
        )
        if score > 0.05:
            scored.append((round(score, 3), distance, age, row))
    # Stable on the rounded score, as the answer shows it: ties keep the rows' order.
    scored.sort(key=lambda s: -s[0])
    return [
        {
            "id": row[_ID],
            "ref": row[_REF],
            "type_code": row[_TYPE],
            "grade": row[_GRADE],
            "status": row[_STATUS],
            "distance_m": round(distance),
            "age_s": round(age),
            "score": score,
            "created_at": row[_CREATED].isoformat(),
        }
        for score, distance, age, row in scored[:5]
    ]


_ID, _REF, _TYPE, _GRADE, _STATUS, _LAT, _LNG, _CREATED, _SAME_PHONE = (
    incidents_repo.DUPLICATE_FIELDS.index(name)
    for name in (
        "id", "ref", "type_code", "grade", "status", "lat", "lng", "created_at", "same_phone"
    )
)  # fmt: skip


def _check_times(body: CallIn, now: datetime) -> tuple[datetime, datetime]:
    received = body.received_at or now
    answered = body.answered_at or received
    if received > now + timedelta(minutes=1):
        raise Invalid("received_at", "is in the future")
    if answered > now + timedelta(minutes=1):
        raise Invalid("answered_at", "is in the future")
    # received_at defaults to now: an earlier answered_at alone would be stored out of order.
    if answered < received:
        raise Invalid("answered_at", "is before received_at (give received_at as well)")
    return received, answered


def makes_new_incident(body: CallIn) -> bool:
    """Most calls: neither linked to an incident nor closed with an outcome."""
    return body.link_to is None and body.outcome is None


def _call_values(
    body: CallIn, where: Located, received: datetime, answered: datetime, user_id: int
) -> dict[str, Any]:
    return {
        "caller_name": body.caller.name,
        "caller_phone": body.caller.phone,
        "location_source": body.location_source.value,
        "lat": where.lat,
        "lng": where.lng,
        "address": where.address,
        "area_code": where.area_code,
        "type_code": body.incident_type,
        "description": body.description,
        "risk": body.risk.model_dump(exclude_defaults=True),
        "received_at": received,
        "answered_at": answered,
        "handler_id": user_id,
        "location_label": where.label,
        "precision_m": where.precision_m,
        "ward_code": where.ward_code,
        "postcode": where.postcode,
    }


async def record_call(
    conn: asyncpg.Connection, state: AppState, body: CallIn, user_id: int, actor: str
) -> dict[str, Any]:
    """A call in the caller's transaction: linked to an open incident, closed with an
    outcome (advice, hoax…), or as a new incident (record_new_incident, which the API's
    intake runs on its own). Everything is read and validated first; the writes come
    last, so the transaction holds its locks briefly."""
    if makes_new_incident(body):
        new = await record_new_incident(conn, state, body, user_id, actor, None)
        assert new is not None  # without a key there is no claim to find taken
        return new.answer
    now = datetime.now(UTC)
    received, answered = _check_times(body, now)
    linked = None
    if body.link_to is not None:
        linked = await get_or_404(conn, body.link_to, for_update=True)
        if linked["status"] == "closed":
            raise Conflict(f"incident {linked['ref']} is closed; link to an open incident")
    if body.location is not None:
        where = await locate(conn, state, body.location)
    else:
        assert linked is not None  # the schema asks for a location without link_to
        where = located_at_incident(linked)
    known_type(state, body.incident_type)
    markers = await markers_service.matching(
        conn,
        state,
        lat=where.lat,
        lng=where.lng,
        postcode=where.postcode,
        phone=body.caller.phone or None,
        now=now,
    )
    decision = decide_grade(state, body.incident_type, body.risk.model_dump(), markers)
    duplicates = await possible_duplicates(
        conn, state, where.lat, where.lng, body.incident_type, body.caller.phone, now
    )
    call_values = _call_values(body, where, received, answered, user_id)
    answer = {"grading": _grading_out(decision), "markers": markers}
    if linked is not None:
        return answer | await _link(
            conn, state, linked, call_values, decision, markers, duplicates, actor
        )
    call = await incidents_repo.insert_call(
        conn, {**call_values, "incident_id": None, "outcome": body.outcome}
    )
    await append_event(
        conn, "call.closed", actor, data={"call_id": call["id"], "outcome": body.outcome}
    )
    return answer | {
        "call": _call_out(call),
        "incident": None,
        "possible_duplicates": duplicates,
    }


async def _link(
    conn: asyncpg.Connection,
    state: AppState,
    incident: asyncpg.Record,
    call_values: dict[str, Any],
    decision: GradeDecision,
    markers: list[dict[str, Any]],
    duplicates: list[dict[str, Any]],
    actor: str,
) -> dict[str, Any]:
    """Another caller about an incident already open: the call joins it, what they said
    becomes findable on it, and markers it brings (their phone) are recorded."""
    call = await incidents_repo.insert_call(
        conn, {**call_values, "incident_id": incident["id"], "outcome": "attached"}
    )
    said = " ".join(p for p in (call_values["description"], call_values["caller_name"]) if p)
    if said:
        await incidents_repo.add_search_text(conn, incident["id"], said)
    await append_event(
        conn,
        "call.linked",
        actor,
        incident_id=incident["id"],
        data={
            "call_id": call["id"],
            "ref": incident["ref"],
            "type_code": call_values["type_code"],
            "suggested_grade": decision.grade,
        },
    )
    known = {m["id"] for m in await markers_service.for_incident(conn, incident["id"])}
    await markers_service.record_on_incident(
        conn,
        incident["id"],
        [m for m in markers if m["id"] not in known],
        actor,
        "matched a linked call",
        incident["ref"],
    )
    log.info("call.linked", call_id=call["id"], incident_id=incident["id"])
    return {
        "call": _call_out(call),
        "incident": incident_out(incident, state),
        "possible_duplicates": [d for d in duplicates if d["id"] != incident["id"]],
    }


@dataclass(frozen=True, slots=True)
class Recorded:
    """A new incident's answer: as sent (and kept under the Idempotency-Key), and its
    grade (for the metrics)."""

    content: bytes
    grade: str
    answer: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A new incident's call, read and decided: its answer, and what writing it takes."""

    recorded: Recorded
    new: incidents_repo.NewIncident


async def prepare_new_incident(
    conn: asyncpg.Connection | None,
    state: AppState,
    body: CallIn,
    user_id: int,
    actor: str,
    claim: idempotency.Claim | None,
    *,
    spot: Spot | None = None,
) -> Prepared:
    """The call that makes a new incident, in two round trips (three for an address,
    which the gazetteer resolves first): ONE read of the new numbers, the place, the
    markers and the duplicate search, then ONE statement that writes the incident, its
    call, its events and the answer kept under the Idempotency-Key, on a connection
    outside any transaction (the statement commits as a whole), with other calls of the
    moment (commit_new_incident) or alone (record_new_incident). Here: the read, the
    decisions and the answer; nothing is written yet. Without ``conn`` the read is the
    worker's shared one (AppState.intake) and ``spot`` comes found: a request waiting
    for a shared statement holds no pool connection, or fifty of them would hold every
    connection that statement needs."""
    assert body.location is not None and makes_new_incident(body)
    now = datetime.now(UTC)
    received, answered = _check_times(body, now)
    if spot is None:
        assert conn is not None
        spot = await find_spot(conn, state, body.location)
    itype = known_type(state, body.incident_type)
    phone = body.caller.phone
    easting, northing = places.bng(state, spot.lat, spot.lng)
    day = local_day(now)
    dlat, dlng, since = _duplicate_window(spot.lat, now)
    marker_dlat, marker_dlng = markers_service.search_box(spot.lat)
    query = incidents_repo.IntakeQuery(
        lat=spot.lat, lng=spot.lng, dlat=dlat, dlng=dlng, since=since, phone=phone, day=day,
        suffix=ref_suffix(day), easting=easting, northing=northing, postcode=spot.postcode,
        postcode_within_m=places.REVERSE_MAX_M, has_phone=markers_repo.has_phone(phone),
        now=now, marker_dlat=marker_dlat, marker_dlng=marker_dlng,
    )  # fmt: skip
    if conn is None:
        assert state.intake is not None
        read = await state.intake.reads.submit(query)
    else:
        (read,) = await incidents_repo.read_for_new_incidents(conn, [query])
    where = located(
        state, spot, places.reverse_from_rows(state, spot.lat, spot.lng, read.postcodes)
    )
    markers = markers_service.matched(
        state, read.markers, lat=where.lat, lng=where.lng, postcode=where.postcode, now=now
    )
    decision = decide_grade(state, body.incident_type, body.risk.model_dump(), markers)
    grade = state.scheme[decision.grade]
    closes = grade.closes_on_creation
    ids = read.ids
    duplicates = scored_duplicates(
        state, read.duplicates, where.lat, where.lng, body.incident_type, now
    )
    ref = ids["ref"]
    # The row as PostgreSQL will hold it, in its column order (the answer shows it).
    incident: dict[str, Any] = {
        "id": ids["id"],
        "ref": ref,
        "type_code": body.incident_type,
        "grade": decision.grade,
        "grade_rule": decision.rule_id,
        "status": "closed" if closes else "pending",
        "lat": where.lat,
        "lng": where.lng,
        "address": where.address,
        "area_code": where.area_code,
        "description": body.description,
        "risk": body.risk.model_dump(exclude_defaults=True),
        "call_received_at": received,
        "call_answered_at": answered,
        "created_at": now,
        "target_at": target_at(grade, now),
        "first_assigned_at": None,
        "first_on_scene_at": None,
        "closed_at": now if closes else None,
        "result_code": "REFERRED" if closes else None,
        "merged_into": None,
        "updated_at": now,
        "location_label": where.label,
        "precision_m": where.precision_m,
        "ward_code": where.ward_code,
        "address_line": where.line,
        "postcode": where.postcode,
    }
    shown = incident_out(incident, state)
    call = {
        "id": ids["call_id"],
        "incident_id": ids["id"],
        "outcome": "incident_created",
        "received_at": received,
        "answered_at": answered,
        "created_at": now,
    }
    answer = {
        "grading": _grading_out(decision),
        "markers": markers,
        "call": _call_out(call),
        "incident": shown,
        "possible_duplicates": duplicates,
    }
    content = bytes(JSON(answer).body)
    events = _new_incident_events(incident, shown, call, decision, duplicates, markers, closes)
    new = incidents_repo.NewIncident(
        incident | {"created_by": user_id, "type_name": itype.name, "place_text": place_text(where),
                    "call_id": call["id"], "caller_name": body.caller.name,
                    "caller_phone": phone, "location_source": body.location_source.value},
        actor,
        events,
        None if claim is None else (claim.user_id, claim.key, claim.route, claim.request_hash,
                                     content.decode()),
    )  # fmt: skip
    return Prepared(Recorded(content, decision.grade, answer), new)


async def record_new_incident(
    conn: asyncpg.Connection,
    state: AppState,
    body: CallIn,
    user_id: int,
    actor: str,
    claim: idempotency.Claim | None,
) -> Recorded | None:
    """A new incident's call read and written on ``conn``: in the caller's transaction
    (an EIDO import, an officer's emergency), it commits with the rest. None when the key
    turns out to be taken: nothing was written, and the caller replays the answer."""
    prepared = await prepare_new_incident(conn, state, body, user_id, actor, claim)
    written = await incidents_repo.record_new_incidents(conn, [prepared.new], EVENTS_LOCK_KEY)
    return _recorded(prepared, prepared.new.values["id"] in written)


async def commit_new_incident(state: AppState, prepared: Prepared) -> Recorded | None:
    """Write a prepared new incident with the worker's other calls of the moment, in one
    statement (cad/db/group_commit.py); answered once that statement has committed."""
    assert state.intake is not None
    return _recorded(prepared, await state.intake.writes.submit(prepared.new))


def _recorded(prepared: Prepared, written: bool) -> Recorded | None:
    if not written:
        return None
    v = prepared.new.values
    log.info("call.recorded", call_id=v["call_id"], incident_id=v["id"], grade=v["grade"])
    return prepared.recorded


class IntakeBatching:
    """AppState.intake: each of a worker's concurrent new incidents' calls is one row of a
    shared read and of a shared write (cad/db/group_commit.py); the reads may wait a
    moment for the calls under way to join them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        acquire_timeout_s: float,
        linger_s: float = 0.0,
        min_batch: int = 1,
    ) -> None:
        async def write(
            conn: asyncpg.Connection, news: Sequence[incidents_repo.NewIncident]
        ) -> list[bool]:
            written = await incidents_repo.record_new_incidents(conn, news, EVENTS_LOCK_KEY)
            return [new.values["id"] in written for new in news]

        self.calls = 0
        self.reads: GroupCommit[incidents_repo.IntakeQuery, incidents_repo.IntakeRead] = (
            GroupCommit(
                pool,
                incidents_repo.read_for_new_incidents,
                acquire_timeout_s=acquire_timeout_s,
                linger_s=linger_s,
                min_batch=min_batch,
                active=lambda: self.calls,
            )
        )
        # No wait here: a read's calls come to the write together.
        self.writes: GroupCommit[incidents_repo.NewIncident, bool] = GroupCommit(
            pool,
            write,
            key=lambda new: None if new.claim is None else (new.claim[0], new.claim[1]),
            acquire_timeout_s=acquire_timeout_s,
        )

    @contextmanager
    def call(self) -> Iterator[None]:
        """A new incident's call under way, from its arrival to its answer."""
        self.calls += 1
        try:
            yield
        finally:
            self.calls -= 1


def _new_incident_events(
    incident: dict[str, Any],
    shown: dict[str, Any],
    call: dict[str, Any],
    decision: GradeDecision,
    duplicates: list[dict[str, Any]],
    markers: list[dict[str, Any]],
    closes: bool,
) -> list[tuple[str, dict[str, Any]]]:
    """incident.created, then the markers shown (as they were), then, for a grade that
    closes on creation, incident.closed: in this order, in seq order."""
    ref = incident["ref"]
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "incident.created",
            {
                "ref": ref,
                "call_id": call["id"],
                "type_code": incident["type_code"],
                "grade": decision.grade,
                "rule": decision.rule_id,
                "reason": decision.reason,
                "status": incident["status"],
                "lat": incident["lat"],
                "lng": incident["lng"],
                "area_code": incident["area_code"],
                "area": shown["area"],
                "ward_code": incident["ward_code"],
                "ward": shown["ward"],
                "address_line": incident["address_line"],
                "target_at": shown["target_at"],
                "possible_duplicates": [d["id"] for d in duplicates],
                "markers": [m["id"] for m in markers],
            },
        )
    ]
    if markers:
        events.append(
            ("incident.markers", markers_service.recorded(ref, "matched at intake", markers))
        )
    if closes:
        events.append(
            (
                "incident.closed",
                {
                    "ref": ref,
                    "result_code": "REFERRED",
                    "auto": True,
                    "reason": f"grade {decision.grade} closes on creation",
                },
            )
        )
    return events


def _call_out(call: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(call).items()}


def _grading_out(decision: GradeDecision) -> dict[str, str]:
    return {"grade": decision.grade, "rule": decision.rule_id, "reason": decision.reason}
