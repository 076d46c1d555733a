"""Call intake: validate, locate, grade, find likely duplicates, record.

One transaction writes the incident (or the link), the call and their events; the 201
goes out only after it commits.
"""

from __future__ import annotations

import math
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
from cad.state import AppState
from gis.gazetteer import resolve, suggestions

log = structlog.get_logger(__name__)

DUPLICATE_RADIUS_M = 500.0
DUPLICATE_WINDOW_S = 3600.0


def locate(state: AppState, location: Location) -> tuple[float, float, str | None]:
    """(lat, lng, address) inside the service area, or a 422 naming the field."""
    if location.lat is not None and location.lng is not None:
        lat, lng, field = location.lat, location.lng, "location"
    else:
        assert location.address is not None
        place = resolve(location.address)
        if place is None:
            hint = suggestions(location.address)
            raise Invalid(
                "location.address",
                f"could not resolve {location.address!r} to a place"
                + (f"; did you mean {', '.join(hint)}?" if hint else "")
                + " Give a borough, station or landmark, or lat/lng",
            )
        lat, lng, field = place.lat, place.lng, "location.address"
    if not state.areas.contains(lat, lng):
        raise Invalid(field, f"({lat:.5f}, {lng:.5f}) is outside the service area")
    return lat, lng, location.address


def decide_grade(state: AppState, type_code: str, risk: dict[str, Any]) -> GradeDecision:
    itype = state.catalogue.get(type_code)
    if itype is None:
        raise Invalid(
            "incident_type", f"unknown incident type {type_code!r}; see GET /api/incident-types"
        )
    return grade_call(itype, risk, state.rules, state.scheme)


def preview(state: AppState, body: GradePreviewIn) -> dict[str, Any]:
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
        lat, lng, _ = locate(state, body.location)
        area = state.areas.area_for(lat, lng)
        out.update(lat=lat, lng=lng, area=area.name if area else None)
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
    dlat = DUPLICATE_RADIUS_M / 111_000
    dlng = DUPLICATE_RADIUS_M / (111_000 * max(math.cos(math.radians(lat)), 0.1))
    since = now - timedelta(seconds=DUPLICATE_WINDOW_S)
    rows = await incidents_repo.nearby_open_incidents(conn, lat, lng, dlat, dlng, since)
    x, y = state.projector.to_metres(lat, lng)
    found = []
    for row in rows:
        ix, iy = state.projector.to_metres(row["lat"], row["lng"])
        distance = math.hypot(ix - x, iy - y)
        age = max(0.0, (now - row["created_at"]).total_seconds())
        same = row["type_code"] == type_code
        score = duplicate_score(
            distance,
            age,
            same_type=same,
            related=related_types(row["type_code"], type_code, state.catalogue),
            same_phone=bool(phone) and phone in (row["phones"] or []),
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
    lat, lng, address = locate(state, body.location)
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
    area = state.areas.area_for(lat, lng)
    area_code = area.code if area else None
    duplicates = await possible_duplicates(
        conn, state, lat, lng, body.incident_type, body.caller.phone, now
    )
    call_values: dict[str, Any] = {
        "caller_name": body.caller.name,
        "caller_phone": body.caller.phone,
        "location_source": body.location_source.value,
        "lat": lat,
        "lng": lng,
        "address": address,
        "area_code": area_code,
        "type_code": body.incident_type,
        "description": body.description,
        "risk": risk,
        "received_at": received,
        "answered_at": answered,
        "handler_id": user_id,
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
            "address": address,
            "area_code": area_code,
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
        "incident": incident_out(incident, state),
        "grading": _grading_out(decision),
        "possible_duplicates": duplicates,
    }


def _call_out(call: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(call).items()}


def _grading_out(decision: GradeDecision) -> dict[str, str]:
    return {"grade": decision.grade, "rule": decision.rule_id, "reason": decision.reason}
