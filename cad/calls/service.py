"""Call intake: validate, locate, grade, find likely duplicates, record.

One transaction writes the incident (or the link), the call and their events; the 201
goes out only after it commits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from cad.calls.schemas import CallIn, GradePreviewIn, Location
from cad.errors import Conflict, Invalid
from cad.events.writer import append_event
from cad.grading import GradeDecision, duplicate_score, grade_call, related_types, target_at
from cad.incidents import repository as incidents_repo
from cad.incidents.service import get_or_404, incident_out, local_day, ref_suffix
from cad.places import service as places
from cad.state import AppState

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


async def locate(conn: asyncpg.Connection, state: AppState, location: Location) -> Located:
    """The call's place inside the service area, or a 422 naming the field (and, for an
    address, the nearest suggestions). Addresses go through the gazetteer."""
    label: str | None = None
    precision: int | None = None
    if location.lat is not None and location.lng is not None:
        lat, lng = location.lat, location.lng
        if not state.areas.contains(lat, lng):
            raise Invalid("location", f"({lat:.5f}, {lng:.5f}) is outside the service area")
    else:
        assert location.address is not None
        resolved = await places.resolve_address(conn, state, location.address)
        lat, lng = resolved.lat, resolved.lng
        label, precision = resolved.label, resolved.precision_m
    area = state.areas.area_for(lat, lng)
    ward = state.wards.area_for(lat, lng) if state.wards is not None else None
    near = await places.reverse(conn, state, lat, lng)
    return Located(
        lat=lat,
        lng=lng,
        address=location.address,
        label=label,
        precision_m=precision,
        area_code=area.code if area else None,
        ward_code=ward.code if ward else None,
        line=places.address_line(label, near),
        near=near,
    )


def decide_grade(state: AppState, type_code: str, risk: dict[str, Any]) -> GradeDecision:
    itype = state.catalogue.get(type_code)
    if itype is None:
        raise Invalid(
            "incident_type", f"unknown incident type {type_code!r}; see GET /api/incident-types"
        )
    return grade_call(itype, risk, state.rules, state.scheme)


async def preview(
    conn: asyncpg.Connection, state: AppState, body: GradePreviewIn
) -> dict[str, Any]:
    decision = decide_grade(state, body.incident_type, body.risk.model_dump())
    grade = state.scheme[decision.grade]
    out: dict[str, Any] = {
        "grade": decision.grade,
        "grade_name": grade.name,
        "rule": decision.rule_id,
        "reason": decision.reason,
        "target_s": grade.target_s,
        "auto_dispatch": grade.auto_dispatch,
    }
    if body.location is not None:
        where = await locate(conn, state, body.location)
        area = state.areas.by_code(where.area_code) if where.area_code else None
        out.update(
            lat=where.lat,
            lng=where.lng,
            area=area.name if area else None,
            location_label=where.label,
            precision_m=where.precision_m,
            address_line=where.line,
        )
        out["possible_duplicates"] = await possible_duplicates(
            conn, state, where.lat, where.lng, body.incident_type, "", datetime.now(UTC)
        )
    return out


def _metres_between(lat: float, lng: float, lat2: float, lng2: float) -> float:
    """Equirectangular distance: within 0.1% at the duplicate radius, and a few hundred
    times cheaper than projecting each candidate (scoring, not navigation)."""
    k = math.cos(math.radians((lat + lat2) / 2))
    return 111_195.0 * math.hypot(lat2 - lat, (lng2 - lng) * k)


async def possible_duplicates(
    conn: asyncpg.Connection,
    state: AppState,
    lat: float,
    lng: float,
    type_code: str,
    phone: str,
    now: datetime,
) -> list[dict[str, Any]]:
    dlat = DUPLICATE_RADIUS_M / 111_000
    dlng = DUPLICATE_RADIUS_M / (111_000 * max(math.cos(math.radians(lat)), 0.1))
    since = now - timedelta(seconds=DUPLICATE_WINDOW_S)
    rows = await incidents_repo.nearby_open_incidents(conn, lat, lng, dlat, dlng, since, phone)
    found = []
    for row in rows:
        distance = _metres_between(lat, lng, row["lat"], row["lng"])
        age = max(0.0, (now - row["created_at"]).total_seconds())
        same = row["type_code"] == type_code
        score = duplicate_score(
            distance,
            age,
            same_type=same,
            related=related_types(row["type_code"], type_code, state.catalogue),
            same_phone=row["same_phone"],
            max_distance_m=DUPLICATE_RADIUS_M,
            max_age_s=DUPLICATE_WINDOW_S,
        )
        if score <= 0.05:
            continue
        found.append(
            {
                "id": row["id"],
                "ref": row["ref"],
                "type_code": row["type_code"],
                "grade": row["grade"],
                "status": row["status"],
                "distance_m": round(distance),
                "age_s": round(age),
                "score": round(score, 3),
                "created_at": row["created_at"].isoformat(),
            }
        )
    found.sort(key=lambda d: -d["score"])
    return found[:5]


async def record_call(
    conn: asyncpg.Connection, state: AppState, body: CallIn, user_id: int, actor: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    where = await locate(conn, state, body.location)
    lat, lng = where.lat, where.lng
    risk = body.risk.model_dump(exclude_defaults=True)
    decision = decide_grade(state, body.incident_type, body.risk.model_dump())
    received = body.received_at or now
    answered = body.answered_at or received
    if received > now + timedelta(minutes=1):
        raise Invalid("received_at", "is in the future")
    if answered > now + timedelta(minutes=1):
        raise Invalid("answered_at", "is in the future")
    # received_at defaults to now: an earlier answered_at alone would be stored out of order.
    if answered < received:
        raise Invalid("answered_at", "is before received_at (give received_at as well)")
    area_code = where.area_code
    duplicates = await possible_duplicates(
        conn, state, lat, lng, body.incident_type, body.caller.phone, now
    )
    call_values: dict[str, Any] = {
        "caller_name": body.caller.name,
        "caller_phone": body.caller.phone,
        "location_source": body.location_source.value,
        "lat": lat,
        "lng": lng,
        "address": where.address,
        "area_code": area_code,
        "type_code": body.incident_type,
        "description": body.description,
        "risk": risk,
        "received_at": received,
        "answered_at": answered,
        "handler_id": user_id,
        "location_label": where.label,
        "precision_m": where.precision_m,
        "ward_code": where.ward_code,
    }
    if body.link_to is not None:
        incident = await get_or_404(conn, body.link_to, for_update=True)
        if incident["status"] == "closed":
            raise Conflict(f"incident {incident['ref']} is closed; link to an open incident")
        call = await incidents_repo.insert_call(
            conn, {**call_values, "incident_id": incident["id"], "outcome": "attached"}
        )
        await append_event(
            conn,
            "call.linked",
            actor,
            incident_id=incident["id"],
            data={
                "call_id": call["id"],
                "ref": incident["ref"],
                "type_code": body.incident_type,
                "suggested_grade": decision.grade,
            },
        )
        log.info("call.linked", call_id=call["id"], incident_id=incident["id"])
        return {
            "call": _call_out(call),
            "incident": incident_out(incident, state),
            "grading": _grading_out(decision),
            "possible_duplicates": [d for d in duplicates if d["id"] != incident["id"]],
        }
    if body.outcome is not None:
        call = await incidents_repo.insert_call(
            conn, {**call_values, "incident_id": None, "outcome": body.outcome}
        )
        await append_event(
            conn, "call.closed", actor, data={"call_id": call["id"], "outcome": body.outcome}
        )
        return {
            "call": _call_out(call),
            "incident": None,
            "grading": _grading_out(decision),
            "possible_duplicates": duplicates,
        }

    grade = state.scheme[decision.grade]
    closes = grade.closes_on_creation
    # Everything above reads or validates; from here on the transaction holds locks, so
    # keep it short: one statement for reference, incident and call, the event, commit.
    day = local_day(now)
    row = await incidents_repo.insert_incident_with_call(
        conn,
        {
            "type_code": body.incident_type,
            "grade": decision.grade,
            "grade_rule": decision.rule_id,
            "status": "closed" if closes else "pending",
            "lat": lat,
            "lng": lng,
            "address": where.address,
            "area_code": area_code,
            "location_label": where.label,
            "precision_m": where.precision_m,
            "ward_code": where.ward_code,
            "address_line": where.line,
            "description": body.description,
            "risk": risk,
            "received_at": received,
            "answered_at": answered,
            "created_at": now,
            "target_at": target_at(grade, now),
            "created_by": user_id,
            "closed_at": now if closes else None,
            "result_code": "REFERRED" if closes else None,
        },
        call_values,
        day,
        ref_suffix(day),
    )
    incident = {k: v for k, v in row.items() if k not in ("call_id", "call_created_at")}
    shown = incident_out(incident, state)
    ref = incident["ref"]
    call = {
        "id": row["call_id"],
        "incident_id": row["id"],
        "outcome": "incident_created",
        "received_at": row["call_received_at"],
        "answered_at": row["call_answered_at"],
        "created_at": row["call_created_at"],
    }
    await append_event(
        conn,
        "incident.created",
        actor,
        incident_id=incident["id"],
        data={
            "ref": ref,
            "call_id": call["id"],
            "type_code": body.incident_type,
            "grade": decision.grade,
            "rule": decision.rule_id,
            "reason": decision.reason,
            "status": incident["status"],
            "lat": lat,
            "lng": lng,
            "area_code": area_code,
            "area": shown["area"],
            "ward_code": where.ward_code,
            "ward": shown["ward"],
            "address_line": where.line,
            "target_at": incident["target_at"].isoformat() if incident["target_at"] else None,
            "possible_duplicates": [d["id"] for d in duplicates],
        },
    )
    if closes:
        await append_event(
            conn,
            "incident.closed",
            actor,
            incident_id=incident["id"],
            data={
                "ref": ref,
                "result_code": "REFERRED",
                "auto": True,
                "reason": f"grade {decision.grade} closes on creation",
            },
        )
    log.info("call.recorded", call_id=call["id"], incident_id=incident["id"], grade=decision.grade)
    return {
        "call": _call_out(call),
        "incident": shown,
        "grading": _grading_out(decision),
        "possible_duplicates": duplicates,
    }


def _call_out(call: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(call).items()}


def _grading_out(decision: GradeDecision) -> dict[str, str]:
    return {"grade": decision.grade, "rule": decision.rule_id, "reason": decision.reason}
